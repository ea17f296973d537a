//! `containers.logs` and the `logs.subscribe` subscription (berth extensions).

use jsonrpsee::core::SubscriptionError;
use schema::{LogBatch, LogsParams};

use super::events::subscription_error;
use super::stream::{open, Queued, Unsent};
use super::{method, Module};

/// Notification method name of `logs.subscribe`.
pub(crate) const LOGS_NOTIFICATION: &str = "logs.entries";

pub(super) fn register(m: &mut Module) {
    method(m, "containers.logs", |app, p: LogsParams| async move {
        app.logs.read(&p).await
    });
    let registered = m.register_subscription(
        "logs.subscribe",
        LOGS_NOTIFICATION,
        "logs.unsubscribe",
        |params, pending, app, _| async move {
            let started = open(params, pending, |p: LogsParams| async move {
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
                let msg = serde_json::value::to_raw_value(&batch)
                    .map_err(|e| SubscriptionError::from(format!("encoding logs: {e}")))?;
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
        panic!("registering logs.subscribe: {e}");
    }
}
