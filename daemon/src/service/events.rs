//! Events: every change is recorded with a seq in its own transaction (see `store`); this
//! module lists them and fans them out live. A subscriber that falls behind by more than the
//! bus capacity is dropped with `resource_exhausted` instead of growing memory without bound;
//! it can resubscribe with `since` and miss nothing that is still retained.
//!
//! The bus keeps its last [`BUS_CAPACITY`] entries alive whether or not anyone reads them,
//! so only small events travel on it whole; a larger one travels as its seq and is read
//! back from the store by each subscriber that gets to it. The bus thus holds at most
//! `BUS_CAPACITY * INLINE_EVENT_BYTES` of event bodies, however large events are.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use schema::{Event, EventList, EventListParams};
use tokio::sync::broadcast;

use super::{Error, Result};
use crate::filter::{self, Adaptor, Filter};
use crate::store::{self, Store};

/// Live events buffered per subscriber before it counts as too slow.
pub const BUS_CAPACITY: usize = 4096;
/// Default and maximum page of `events.list`.
pub const MAX_LIST: u32 = 10_000;
/// Events whose body encodes larger than this are not kept on the bus, only their seq.
pub const INLINE_EVENT_BYTES: usize = 4 << 10;

/// One bus entry: the event, or (for a large one) its envelope with a null body that
/// subscribers replace by reading the stored event.
#[derive(Clone)]
struct Live {
    event: Arc<Event>,
    stored_only: bool,
}

/// Fan-out of committed events. Fed by the store's commit hook, in seq order.
///
/// The channel is made at the first subscription: its slots are allocated up front (160 KiB
/// for 4,096), which a daemon nobody watches need not hold. Publishing before then finds no
/// channel, as it finds no receiver after the last one left: both skip the send, and a
/// subscriber misses nothing because it subscribes before reading the store.
#[derive(Clone, Default)]
pub struct EventBus {
    tx: Arc<OnceLock<broadcast::Sender<Live>>>,
}

/// One info line per committed lifecycle event, for operators: the topic, the namespace and
/// the object's id, and an exit's status. Only those fields: never labels, specs or
/// anything else a client put in an object.
fn log_event(ev: &Event) {
    let field = |k: &str| {
        ev.event
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let id = [
        field("id"),
        field("container_id"),
        field("name"),
        field("key"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("");
    let exec_id = field("exec_id");
    match ev
        .event
        .get("exit_status")
        .and_then(serde_json::Value::as_i64)
    {
        Some(status) => tracing::info!(
            seq = ev.seq, namespace = %ev.namespace, topic = %ev.topic, id = %id,
            exec_id = %exec_id, status, reason = %field("exit_reason"), "event"
        ),
        None => tracing::info!(
            seq = ev.seq, namespace = %ev.namespace, topic = %ev.topic, id = %id,
            exec_id = %exec_id, "event"
        ),
    }
}

impl EventBus {
    pub fn publish(&self, events: &[Event]) {
        for ev in events {
            log_event(ev);
        }
        let Some(tx) = self.tx.get().filter(|tx| tx.receiver_count() > 0) else {
            return;
        };
        for ev in events {
            let stored_only = encoded_len(&ev.event) > INLINE_EVENT_BYTES;
            let event = if stored_only {
                Event {
                    event: serde_json::Value::Null,
                    seq: ev.seq,
                    timestamp: ev.timestamp.clone(),
                    namespace: ev.namespace.clone(),
                    topic: ev.topic.clone(),
                }
            } else {
                ev.clone()
            };
            // No subscriber is not an error.
            let _ = tx.send(Live {
                event: Arc::new(event),
                stored_only,
            });
        }
    }
}

/// The length of `v` encoded as JSON, without keeping the encoding.
fn encoded_len(v: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Lets filters see an event's fields: `topic`, `namespace`, `event.<field>...`.
struct EventFields<'a>(&'a Event);

impl Adaptor for EventFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [f] if f == "topic" => Some(Cow::Borrowed(&self.0.topic)),
            [f] if f == "namespace" => Some(Cow::Borrowed(&self.0.namespace)),
            [f, rest @ ..] if f == "event" && !rest.is_empty() => {
                let mut v = &self.0.event;
                for key in rest {
                    v = v.get(key)?;
                }
                match v {
                    serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
                    serde_json::Value::Null => None,
                    other => Some(Cow::Owned(other.to_string())),
                }
            }
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Events {
    store: Store,
    bus: EventBus,
}

impl Events {
    pub fn new(store: Store, bus: EventBus) -> Self {
        Events { store, bus }
    }

    pub fn list(&self, p: &EventListParams) -> Result<EventList> {
        let filter = filter::parse(&p.filters)?;
        let limit = p.limit.unwrap_or(1000).clamp(1, MAX_LIST) as usize;
        let mut since = p.since;
        let mut events = Vec::new();
        // Without a filter one page of `limit` rows is the answer; filtered lists read
        // forward in pages until the result is full or the log ends.
        let page_size = if filter.matches_all() {
            limit as u32
        } else {
            MAX_LIST
        };
        loop {
            let page = self
                .store
                .read(|c| store::events::list_since(c, since, page_size))?;
            let done = page.len() < page_size as usize;
            for ev in page {
                since = ev.seq;
                if filter.matches(&EventFields(&ev)) {
                    events.push(ev);
                    if events.len() == limit {
                        break;
                    }
                }
            }
            if done || events.len() == limit {
                break;
            }
        }
        let last_seq = self.store.read(store::events::last_seq)?;
        Ok(EventList { events, last_seq })
    }

    /// Starts a subscription: stored events after `since` (if given), then live ones.
    pub fn subscribe(&self, filters: &[String], since: Option<i64>) -> Result<Subscription> {
        let filter = filter::parse(filters)?;
        // Subscribe before reading the store: nothing committed in between can be missed.
        let live = self
            .bus
            .tx
            .get_or_init(|| broadcast::channel(BUS_CAPACITY).0)
            .subscribe();
        Ok(Subscription {
            store: self.store.clone(),
            filter,
            live,
            replay: Vec::new(),
            replay_from: since,
            delivered: since.unwrap_or(0),
        })
    }
}

/// One subscriber's stream of events.
pub struct Subscription {
    store: Store,
    filter: Filter,
    live: broadcast::Receiver<Live>,
    /// Stored events read but not yet handed out, newest last.
    replay: Vec<Event>,
    /// Where the next replay page starts; `None` once replay has caught up.
    replay_from: Option<i64>,
    /// Highest seq handed out (or skipped by filter); live events at or below it are dups.
    delivered: i64,
}

impl Subscription {
    /// The next matching event. Fails with `resource_exhausted` when the subscriber fell behind.
    pub async fn next(&mut self) -> Result<Arc<Event>> {
        loop {
            if let Some(ev) = self.next_replayed()? {
                return Ok(ev);
            }
            let live = match self.live.recv().await {
                Ok(live) => live,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(Error::ResourceExhausted(format!(
                        "event subscriber too slow: {n} events were dropped; \
                         subscribe again with since={} to resume",
                        self.delivered
                    )))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Error::Unavailable("berthd is shutting down".into()))
                }
            };
            if live.event.seq <= self.delivered {
                continue;
            }
            let ev = if live.stored_only {
                self.stored(live.event.seq)?
            } else {
                live.event
            };
            self.delivered = ev.seq;
            if self.filter.matches(&EventFields(&ev)) {
                return Ok(ev);
            }
        }
    }

    /// The seq after which a new subscription would continue where this one stands.
    pub fn resume_seq(&self) -> i64 {
        self.delivered
    }

    /// Reads the stored event `seq` (one too large for the bus).
    fn stored(&self, seq: i64) -> Result<Arc<Event>> {
        let found = self
            .store
            .read(|c| store::events::list_since(c, seq - 1, 1))?
            .into_iter()
            .next()
            .filter(|e| e.seq == seq);
        found.map(Arc::new).ok_or_else(|| {
            Error::ResourceExhausted(format!(
                "event {seq} left the retained log before this subscriber read it; \
                 subscribe again with since={} to resume",
                self.delivered
            ))
        })
    }

    fn next_replayed(&mut self) -> Result<Option<Arc<Event>>> {
        loop {
            if let Some(ev) = self.replay.pop() {
                self.delivered = ev.seq;
                if self.filter.matches(&EventFields(&ev)) {
                    return Ok(Some(Arc::new(ev)));
                }
                continue;
            }
            let Some(from) = self.replay_from else {
                return Ok(None);
            };
            let mut page = self
                .store
                .read(|c| store::events::list_since(c, from, 1000))?;
            if page.is_empty() {
                self.replay_from = None;
                return Ok(None);
            }
            self.replay_from = page.last().map(|e| e.seq);
            page.reverse();
            self.replay = page;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Store, EventBus) {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = EventBus::default();
        let publisher = bus.clone();
        let store = Store::open(
            &dir.path().join("meta.db"),
            Arc::new(move |evs| publisher.publish(evs)),
        )
        .expect("store");
        (dir, store, bus)
    }

    async fn emit(store: &Store, n: usize) {
        store
            .write(move |tx| {
                for i in 0..n {
                    tx.emit_untyped("default", "/test", serde_json::json!({ "i": i }))?;
                }
                Ok(())
            })
            .await
            .expect("write");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_with_resource_exhausted() {
        let (_dir, store, bus) = setup();
        let events = Events::new(store.clone(), bus);
        let mut sub = events.subscribe(&[], None).expect("subscribe");
        emit(&store, BUS_CAPACITY + 10).await;
        let err = sub.next().await.expect_err("lagged");
        assert!(matches!(err, Error::ResourceExhausted(_)), "{err}");
        assert!(
            err.to_string().contains("since="),
            "says how to resume: {err}"
        );
        store.close();
    }

    #[tokio::test]
    async fn since_replays_stored_events_then_continues_live_without_gaps_or_duplicates() {
        let (_dir, store, bus) = setup();
        let events = Events::new(store.clone(), bus);
        emit(&store, 2500).await;
        let mut sub = events.subscribe(&[], Some(1000)).expect("subscribe");
        emit(&store, 5).await;
        let mut seqs = Vec::new();
        for _ in 0..1505 {
            seqs.push(sub.next().await.expect("event").seq);
        }
        let expected: Vec<i64> = (1001..=2505).collect();
        assert_eq!(seqs, expected);
        store.close();
    }

    #[tokio::test]
    async fn large_events_reach_subscribers_whole_without_riding_on_the_bus() {
        let (_dir, store, bus) = setup();
        let events = Events::new(store.clone(), bus.clone());
        let mut sub = events
            .subscribe(&["event.big==yes".to_owned()], None)
            .expect("subscribe");
        let pad = "x".repeat(INLINE_EVENT_BYTES * 4);
        store
            .write(move |tx| {
                tx.emit_untyped(
                    "default",
                    "/test",
                    serde_json::json!({"big": "yes", "pad": pad}),
                )?;
                Ok(())
            })
            .await
            .expect("write");
        let ev = sub.next().await.expect("event");
        assert_eq!(
            ev.event["pad"].as_str().map(str::len),
            Some(INLINE_EVENT_BYTES * 4)
        );
        store.close();
    }

    #[tokio::test]
    async fn filters_apply_to_replayed_and_live_events() {
        let (_dir, store, bus) = setup();
        let events = Events::new(store.clone(), bus);
        emit(&store, 3).await;
        let mut sub = events
            .subscribe(&["event.i==1".to_owned()], Some(0))
            .expect("subscribe");
        emit(&store, 3).await;
        assert_eq!(sub.next().await.expect("replayed").seq, 2);
        assert_eq!(sub.next().await.expect("live").seq, 5);
        store.close();
    }
}
