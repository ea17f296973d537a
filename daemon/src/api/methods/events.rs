//! events.list and the events.subscribe subscription.

use jsonrpsee::core::SubscriptionError;
use jsonrpsee::types::ErrorObjectOwned;
use schema::methods::{EventsList, EventsSubscribe, Method, Subscription};

use super::stream::{encode, open, Queued, Unsent};
use super::{method, Module};
use crate::service;

pub(super) fn register(m: &mut Module) {
    method::<EventsList, _, _>(m, |app, p| async move { app.events.list(&p) });
    register_subscribe(m);
}

pub(super) fn subscription_error(e: service::Error) -> SubscriptionError {
    let obj = ErrorObjectOwned::from(e);
    match serde_json::value::to_raw_value(&obj) {
        Ok(raw) => SubscriptionError::from_json(raw),
        Err(_) => SubscriptionError::from(obj.message()),
    }
}

/// How long a notification may wait for a subscriber's connection before it counts as stuck.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn stopped_reading(resume: i64, why: &str) -> SubscriptionError {
    subscription_error(service::Error::ResourceExhausted(format!(
        "event subscriber stopped reading ({why}); subscription dropped; subscribe again \
         with since={resume} to resume"
    )))
}

fn register_subscribe(m: &mut Module) {
    let registered = m.register_subscription(
        EventsSubscribe::NAME,
        EventsSubscribe::NOTIFICATION,
        EventsSubscribe::UNSUBSCRIBE,
        |params, pending, app, _| async move {
            let started = open::<EventsSubscribe, _, _, _>(params, pending, |p| async move {
                app.events.subscribe(&p.filters, p.since)
            })
            .await;
            let Some((sink, mut sub)) = started else {
                return Ok(());
            };
            let mut queued = Queued::default();
            loop {
                let ev = tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    ev = sub.next() => ev.map_err(subscription_error)?,
                };
                // Everything before this event was handed to the connection.
                let resume = ev.seq - 1;
                let msg = encode::<EventsSubscribe>(&ev)?;
                drop(ev);
                match queued.send(&sink, msg, Some(SEND_TIMEOUT)).await {
                    Ok(()) => {}
                    Err(Unsent::Closed) => return Ok(()),
                    Err(Unsent::Stuck(why)) => return Err(stopped_reading(resume, &why)),
                }
            }
        },
    );
    if let Err(e) = registered {
        panic!("registering {}: {e}", EventsSubscribe::NAME);
    }
}
