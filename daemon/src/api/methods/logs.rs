//! `containers.logs` and the `logs.subscribe` subscription (berth extensions).

use schema::methods::{ContainersLogs, LogsSubscribe, Method, Subscription};
use schema::LogBatch;

use super::events::subscription_error;
use super::stream::{encode, open, Queued, Unsent};
use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<ContainersLogs, _, _>(m, |app, p| async move { app.logs.read(&p).await });
    let registered = m.register_subscription(
        LogsSubscribe::NAME,
        LogsSubscribe::NOTIFICATION,
        LogsSubscribe::UNSUBSCRIBE,
        |params, pending, app, _| async move {
            let started = open::<LogsSubscribe, _, _, _>(params, pending, |p| async move {
                Ok((app.logs.follow(&p).await?, p.follow))
            })
            .await;
            let Some((sink, (mut follower, follow))) = started else {
                return Ok(());
            };
            let mut queued = Queued::default();
            loop {
                let (f, entries, writing) = follower.batch().await.map_err(subscription_error)?;
                follower = f;
                let end = entries.is_empty() && (!writing || !follow);
                if entries.is_empty() && !end {
                    tokio::select! {
                        _ = sink.closed() => return Ok(()),
                        _ = follower.changed() => continue,
                    }
                }
                let batch = LogBatch {
                    entries,
                    truncated: false,
                    end,
                };
                let msg = encode::<LogsSubscribe>(&batch)?;
                // A follower that stops reading only holds its own connection; the task
                // writes the file regardless, so there is no reason to cut it off.
                match queued.send(&sink, msg, None).await {
                    Ok(()) if end => return Ok(()),
                    Ok(()) => {}
                    Err(Unsent::Closed | Unsent::Stuck(_)) => return Ok(()),
                }
            }
        },
    );
    if let Err(e) = registered {
        panic!("registering {}: {e}", LogsSubscribe::NAME);
    }
}
