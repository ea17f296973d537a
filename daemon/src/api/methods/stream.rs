//! Sending a subscription's notifications with the bytes a subscriber has queued bounded:
//! jsonrpsee bounds a subscription's buffer in messages, which would let a few large
//! notifications pin megabytes each for a client that stopped reading.

use std::collections::VecDeque;
use std::time::Duration;

use jsonrpsee::core::SubscriptionError;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage, SubscriptionSink};
use schema::methods::Subscription;
use serde_json::value::RawValue;

use crate::api::parse_params;
use crate::service;

/// The start every subscription shares: its params parsed and `start` run on them; a bad
/// param or a refused start rejects the subscription with that error. `None` once rejected
/// or when the client left before the accept.
pub(super) async fn open<S, T, F, Fut>(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    start: F,
) -> Option<(SubscriptionSink, T)>
where
    S: Subscription,
    F: FnOnce(S::Params) -> Fut,
    Fut: std::future::Future<Output = service::Result<T>>,
{
    let started = match parse_params::<S::Params>(&params) {
        Ok(p) => start(p).await.map_err(ErrorObjectOwned::from),
        Err(e) => Err(e),
    };
    match started {
        Ok(t) => pending.accept().await.ok().map(|sink| (sink, t)),
        Err(e) => {
            pending.reject(e).await;
            None
        }
    }
}

/// One notification of subscription `S`, encoded: only its documented item type compiles.
pub(super) fn encode<S: Subscription>(item: &S::Item) -> Result<Box<RawValue>, SubscriptionError> {
    serde_json::value::to_raw_value(item)
        .map_err(|e| SubscriptionError::from(format!("encoding {}: {e}", S::NOTIFICATION)))
}

/// Bytes of notifications one subscriber may have queued (sent, not yet written to its
/// socket).
pub(crate) const SUBSCRIBER_BYTES: usize = 4 << 20;
/// How often a subscriber over its byte bound is looked at again while it drains.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Why a notification was not sent.
pub(super) enum Unsent {
    /// The subscriber went away.
    Closed,
    /// It stopped reading for longer than the send's patience; says how.
    Stuck(String),
}

/// What a subscriber still has queued: the sizes of the newest notifications sent, as many
/// as the connection's buffer still holds (it is first in, first out).
#[derive(Default)]
pub(super) struct Queued {
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

    /// Sends `msg` once what is queued leaves room for it, waiting at most `patience`
    /// (`None`: as long as the subscriber stays connected).
    pub(super) async fn send(
        &mut self,
        sink: &SubscriptionSink,
        msg: Box<RawValue>,
        patience: Option<Duration>,
    ) -> Result<(), Unsent> {
        let size = msg.get().len();
        let deadline = patience.map(|p| tokio::time::Instant::now() + p);
        loop {
            self.refresh(sink.max_capacity() - sink.capacity());
            if self.bytes == 0 || self.bytes + size <= SUBSCRIBER_BYTES {
                break;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(Unsent::Stuck(format!(
                    "{} bytes of notifications unread, over the bound of {SUBSCRIBER_BYTES}",
                    self.bytes
                )));
            }
            tokio::select! {
                _ = sink.closed() => return Err(Unsent::Closed),
                _ = tokio::time::sleep(DRAIN_POLL) => {}
            }
        }
        let msg = SubscriptionMessage::from(msg);
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(tokio::time::Instant::now());
                sink.send_timeout(msg, left).await.map_err(|e| match e {
                    jsonrpsee::core::server::SendTimeoutError::Closed(_) => Unsent::Closed,
                    jsonrpsee::core::server::SendTimeoutError::Timeout(_) => {
                        Unsent::Stuck("its buffer stayed full".into())
                    }
                })?
            }
            None => sink.send(msg).await.map_err(|_| Unsent::Closed)?,
        }
        self.push(size);
        Ok(())
    }
}
