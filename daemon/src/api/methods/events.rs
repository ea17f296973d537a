//! events.list and the events.subscribe subscription.

use std::collections::VecDeque;
use std::time::Duration;

use jsonrpsee::core::SubscriptionError;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::SubscriptionMessage;
use schema::{EventListParams, EventSubscribeParams};

use super::{method, Module};
use crate::api::parse_params;
use crate::service;

/// Notification method name of `events.subscribe`.
pub(crate) const EVENTS_NOTIFICATION: &str = "events.event";

pub(super) fn register(m: &mut Module) {
    method(m, "events.list", |app, p: EventListParams| async move {
        app.events.list(&p)
    });
    register_subscribe(m);
}

fn subscription_error(e: service::Error) -> SubscriptionError {
    let obj = ErrorObjectOwned::from(e);
    match serde_json::value::to_raw_value(&obj) {
        Ok(raw) => SubscriptionError::from_json(raw),
        Err(_) => SubscriptionError::from(obj.message()),
    }
}

/// How long a notification may wait for a subscriber's connection before it counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of notifications one subscriber may have queued (sent, not yet written to its
/// socket). Counting messages alone would let a few huge events pin megabytes each.
pub(crate) const SUBSCRIBER_BYTES: usize = 4 << 20;
/// How often a subscriber over its byte bound is looked at again while it drains.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What a subscriber still has queued: the sizes of the newest notifications sent, as many
/// as the connection's buffer still holds (it is first in, first out).
#[derive(Default)]
struct Queued {
    sizes: VecDeque<usize>,
    bytes: usize,
}

impl Queued {
    fn refresh(&mut self, in_buffer: usize) {
        while self.sizes.len() > in_buffer {
            if let Some(size) = self.sizes.pop_front() {
                self.bytes -= size;
            }
        }
    }

    fn push(&mut self, size: usize) {
        self.sizes.push_back(size);
        self.bytes += size;
    }
}

fn stopped_reading(resume: i64, why: &str) -> SubscriptionError {
    subscription_error(service::Error::ResourceExhausted(format!(
        "event subscriber stopped reading ({why}); subscription dropped; subscribe again \
         with since={resume} to resume"
    )))
}

fn register_subscribe(m: &mut Module) {
    let registered = m.register_subscription(
        "events.subscribe",
        EVENTS_NOTIFICATION,
        "events.unsubscribe",
        |params, pending, app, _| async move {
            let p: EventSubscribeParams = match parse_params(&params) {
                Ok(p) => p,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let mut sub = match app.events.subscribe(&p.filters, p.since) {
                Ok(s) => s,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let Ok(sink) = pending.accept().await else {
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
                let msg = serde_json::value::to_raw_value(&*ev)
                    .map_err(|e| SubscriptionError::from(format!("encoding event: {e}")))?;
                drop(ev);
                let size = msg.get().len();
                let deadline = tokio::time::Instant::now() + SEND_TIMEOUT;
                loop {
                    queued.refresh(sink.max_capacity() - sink.capacity());
                    if queued.bytes == 0 || queued.bytes + size <= SUBSCRIBER_BYTES {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let why = format!(
                            "{} bytes of events unread, over the bound of {SUBSCRIBER_BYTES}",
                            queued.bytes
                        );
                        return Err(stopped_reading(resume, &why));
                    }
                    tokio::select! {
                        _ = sink.closed() => return Ok(()),
                        _ = tokio::time::sleep(DRAIN_POLL) => {}
                    }
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if sink
                    .send_timeout(SubscriptionMessage::from(msg), left)
                    .await
                    .is_err()
                {
                    return Err(stopped_reading(resume, "its buffer stayed full"));
                }
                queued.push(size);
            }
        },
    );
    if let Err(e) = registered {
        panic!("registering events.subscribe: {e}");
    }
}
