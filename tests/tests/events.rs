//! The event log: what container and namespace changes publish, `events.list` paging and
//! filters, and `events.subscribe` replaying from `since` then streaming live events on
//! every streaming transport (raw NDJSON, socat, WebSocket).

use std::time::{Duration, Instant};

use berth_tests::contract::Tracker;
use berth_tests::{container, is_rfc3339_nanos, process::Pipe, Ndjson, TestDaemon, WebSocket};
use serde_json::{json, Value};

fn list_events(d: &TestDaemon, params: Value) -> (Vec<Value>, Value) {
    let reply = d.rpc_ok("events.list", params);
    let events = reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {reply}"))
        .clone();
    (events, reply["last_seq"].clone())
}

fn seq(e: &Value) -> u64 {
    e["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric seq in {e}"))
}

fn seq_of(d: &TestDaemon, topic: &str, id: &str) -> u64 {
    let (events, _) = list_events(d, json!({}));
    events
        .iter()
        .find(|e| e["topic"] == json!(topic) && e["event"]["id"] == json!(id))
        .map(seq)
        .unwrap_or_else(|| panic!("no {topic} event for {id} in {events:?}"))
}

#[track_caller]
fn assert_strictly_increasing(events: &[Value]) {
    for pair in events.windows(2) {
        assert!(
            seq(&pair[0]) < seq(&pair[1]),
            "seq goes up: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn container_changes_publish_events_with_increasing_seq() {
    let d = TestDaemon::start();
    let mut c = container("ev");
    c["image"] = json!("busybox:latest");
    d.rpc_ok("containers.create", json!({"container": c}));
    d.rpc_ok(
        "containers.update",
        json!({"container": {"id": "ev", "labels": {"k": "v"}}, "update_mask": ["labels"]}),
    );
    d.rpc_ok("containers.delete", json!({"id": "ev"}));

    let (events, last_seq) = list_events(&d, json!({}));
    assert_strictly_increasing(&events);
    assert_eq!(
        Some(&last_seq),
        events.last().map(|e| &e["seq"]),
        "last_seq is the newest"
    );
    for e in &events {
        assert!(
            is_rfc3339_nanos(e["timestamp"].as_str().unwrap_or("")),
            "timestamp of {e}"
        );
    }
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["topic"]
                .as_str()
                .is_some_and(|t| t.starts_with("/containers/"))
        })
        .collect();
    let topics: Vec<&str> = ours
        .iter()
        .map(|e| e["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        topics,
        [
            "/containers/create",
            "/containers/update",
            "/containers/delete"
        ]
    );
    for e in &ours {
        assert_eq!(e["namespace"], json!("default"), "{e}");
        assert_eq!(e["event"]["id"], json!("ev"), "{e}");
    }
    assert_eq!(
        ours[0]["event"]["image"],
        json!("busybox:latest"),
        "{}",
        ours[0]
    );
    assert!(
        !ours[0]["event"]["runtime"].is_null(),
        "create names the runtime: {}",
        ours[0]
    );
    assert_eq!(ours[1]["event"]["labels"], json!({"k": "v"}), "{}", ours[1]);
}

#[test]
fn namespace_changes_publish_events() {
    let d = TestDaemon::start();
    d.rpc_ok(
        "namespaces.create",
        json!({"name": "team", "labels": {"a": "b"}}),
    );
    d.rpc_ok("namespaces.delete", json!({"name": "team"}));
    let (events, _) = list_events(&d, json!({"filters": ["event.name==team"]}));
    let topics: Vec<&str> = events
        .iter()
        .map(|e| e["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        topics,
        ["/namespaces/create", "/namespaces/delete"],
        "{events:?}"
    );
    assert_eq!(events[0]["event"]["labels"], json!({"a": "b"}));
}

#[test]
fn events_list_honours_since_limit_and_filters() {
    let d = TestDaemon::start();
    for i in 0..5 {
        d.rpc_ok(
            "containers.create",
            json!({"container": container(&format!("e{i}"))}),
        );
    }
    d.rpc_ok(
        "containers.create",
        json!({"namespace": "other", "container": container("e9")}),
    );
    d.rpc_ok("containers.delete", json!({"id": "e4"}));
    let (all, last_seq) = list_events(&d, json!({}));
    assert!(all.len() >= 7, "{all:?}");
    assert_strictly_increasing(&all);

    let since = seq(&all[1]);
    let (after, _) = list_events(&d, json!({"since": since}));
    assert_eq!(
        after,
        all[2..].to_vec(),
        "since resumes right after that seq"
    );

    let (page, page_last) = list_events(&d, json!({"since": since, "limit": 2}));
    assert_eq!(page, all[2..4].to_vec(), "limit takes the oldest first");
    assert_eq!(
        page_last, last_seq,
        "last_seq is the store's newest, whatever the page"
    );

    let (creates, _) = list_events(&d, json!({"filters": [r#"topic=="/containers/create""#]}));
    let ids: Vec<&str> = creates
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e9"]);

    let (one, _) = list_events(&d, json!({"filters": ["event.id==e4"]}));
    let topics: Vec<&str> = one
        .iter()
        .map(|e| e["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(topics, ["/containers/create", "/containers/delete"]);

    let (other, _) = list_events(
        &d,
        json!({"filters": ["namespace==other,topic~=^/containers/", "event.id==e0"]}),
    );
    let ids: Vec<&str> = other
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["e0", "e9"], "OR of two filters, oldest first");
    assert!(other
        .iter()
        .all(|e| e["namespace"] == json!("other") || e["event"]["id"] == json!("e0")));
}

/// A streaming connection of any transport.
enum Stream {
    Raw(Ndjson),
    Socat(Pipe, Tracker),
    Ws(WebSocket),
}

impl Stream {
    fn send(&mut self, msg: &Value) {
        match self {
            Stream::Raw(c) => c.send(msg),
            Stream::Socat(p, contract) => {
                contract.sent(&msg.to_string());
                p.write(format!("{msg}\n").as_bytes())
            }
            Stream::Ws(ws) => ws.send_json(msg),
        }
    }

    fn recv(&mut self, timeout: Duration) -> Option<Value> {
        match self {
            Stream::Raw(c) => c.recv(timeout).ok(),
            Stream::Socat(p, contract) => p.read_line(timeout).map(|l| {
                let msg =
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
                contract.received(&msg);
                msg
            }),
            Stream::Ws(ws) => ws.recv_json(timeout),
        }
    }
}

/// Subscribes with `since` = the seq of the first container's create, then creates one more
/// container live; the stream must carry exactly the stored events after `since`, in order,
/// the replayed ones and the live one with no gap or duplicate between them.
fn subscribe_replays_since_then_streams_live(d: &TestDaemon, mut stream: Stream) {
    for id in ["s1", "s2", "s3"] {
        d.rpc_ok("containers.create", json!({"container": container(id)}));
    }
    let since = seq_of(d, "/containers/create", "s1");
    stream.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                        "params": {"since": since}}),
    );
    let mut subscription = None;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut created_live = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = stream
            .recv(left)
            .unwrap_or_else(|| panic!("stream ended or timed out; got {got:?}"));
        if msg["id"] == json!(1) {
            assert!(msg.get("error").is_none(), "subscribe failed: {msg}");
            subscription = Some(msg["result"].clone());
        } else {
            assert_eq!(msg["method"], json!("events.event"), "{msg}");
            got.push(msg["params"].clone());
        }
        let replayed_s3 = got
            .iter()
            .any(|p| p["result"]["event"]["id"] == json!("s3"));
        if subscription.is_some() && replayed_s3 && !created_live {
            d.rpc_ok("containers.create", json!({"container": container("live")}));
            created_live = true;
        }
        if got
            .iter()
            .any(|p| p["result"]["event"]["id"] == json!("live"))
        {
            break;
        }
    }
    let subscription = subscription.expect("a subscribe reply");
    assert!(
        got.iter().all(|p| p["subscription"] == subscription),
        "{got:?}"
    );
    let streamed: Vec<Value> = got.into_iter().map(|p| p["result"].clone()).collect();
    let (stored, _) = list_events(d, json!({"since": since}));
    let live_seq = seq_of(d, "/containers/create", "live");
    let stored: Vec<Value> = stored.into_iter().filter(|e| seq(e) <= live_seq).collect();
    assert_eq!(streamed, stored, "the stream is the stored log after since");
    assert!(
        streamed.iter().all(|e| seq(e) > since),
        "nothing at or before since"
    );
}

#[test]
fn subscribe_with_since_replays_then_streams_live_over_raw_ndjson() {
    let d = TestDaemon::start();
    let stream = Stream::Raw(d.ndjson());
    subscribe_replays_since_then_streams_live(&d, stream);
}

#[test]
fn subscribe_with_since_replays_then_streams_live_over_socat() {
    let d = TestDaemon::start();
    let stream = Stream::Socat(d.socat_session(), Tracker::default());
    subscribe_replays_since_then_streams_live(&d, stream);
}

#[test]
fn subscribe_with_since_replays_then_streams_live_over_websocket() {
    let d = TestDaemon::start();
    let stream = Stream::Ws(d.websocket());
    subscribe_replays_since_then_streams_live(&d, stream);
}

#[test]
fn subscription_filters_select_live_events() {
    let d = TestDaemon::start();
    let mut conn = d.ndjson();
    conn.call(
        "events.subscribe",
        json!({"filters": [r#"topic=="/containers/delete""#]}),
    )
    .expect("subscribe");
    d.rpc_ok(
        "containers.create",
        json!({"container": container("doomed")}),
    );
    d.rpc_ok("containers.delete", json!({"id": "doomed"}));
    let note = conn
        .next_notification("events.event", Duration::from_secs(10))
        .expect("the delete event");
    let event = &note["params"]["result"];
    assert_eq!(
        event["topic"],
        json!("/containers/delete"),
        "the create is filtered out: {note}"
    );
    assert_eq!(event["event"]["id"], json!("doomed"));
}

/// Subscribes, sees one event, unsubscribes with `params`, and expects silence after.
fn unsubscribe_stops_events(unsubscribe_params: impl FnOnce(&Value) -> Value) {
    let d = TestDaemon::start();
    let mut conn = d.ndjson();
    let sub = conn.call("events.subscribe", json!({})).expect("subscribe");
    d.rpc_ok(
        "containers.create",
        json!({"container": container("first")}),
    );
    conn.next_notification("events.event", Duration::from_secs(10))
        .expect("an event while subscribed");
    // Drain whatever else the first create published (e.g. its namespace's creation).
    while conn
        .next_notification("events.event", Duration::from_millis(300))
        .is_some()
    {}
    let reply = conn
        .call("events.unsubscribe", unsubscribe_params(&sub))
        .expect("unsubscribe");
    assert_eq!(reply, json!(true), "unsubscribe succeeded");
    d.rpc_ok(
        "containers.create",
        json!({"container": container("second")}),
    );
    let late = conn.next_notification("events.event", Duration::from_millis(500));
    assert!(late.is_none(), "no event after unsubscribe: {late:?}");
}

#[test]
fn unsubscribe_by_name_stops_events() {
    unsubscribe_stops_events(|sub| json!({"subscription": sub}));
}

#[test]
fn unsubscribe_positionally_stops_events() {
    unsubscribe_stops_events(|sub| json!([sub]));
}

/// `berth events --json` with `args`, its stderr into `err`.
fn follower(d: &TestDaemon, args: &str, err: &std::path::Path) -> Pipe {
    let berth = TestDaemon::binary().with_file_name("berth");
    Pipe::spawn(std::process::Command::new("sh").arg("-c").arg(format!(
        "exec {} --socket {} --json events {args} 2>{}",
        berth.display(),
        d.socket().display(),
        err.display()
    )))
}

fn create(d: &TestDaemon, id: &str) {
    d.rpc_ok("containers.create", json!({"container": container(id)}));
}

/// The ids of the next `n` events the follower prints.
fn next_ids(f: &mut Pipe, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = f
                .read_line(Duration::from_secs(30))
                .expect("the follower prints an event");
            let ev: Value = serde_json::from_str(&line).expect("a JSON event");
            ev["event"]["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

/// berthd restarts under `berth events`: the client says so on stderr, reconnects and
/// resumes after the last seq it printed, so what was committed while it was away (here,
/// before it reconnected) shows once, and nothing shows twice.
#[test]
fn berth_events_follows_across_a_restart_with_no_gap_and_no_duplicate() {
    let mut d = TestDaemon::start();
    let err = d.dir().join("events.err");
    let mut f = follower(&d, "topic~=^/containers/create", &err);
    // Subscribed once a container created after it started shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the follower never showed an event"
        );
        create(&d, &format!("probe-{n}"));
        n += 1;
        if let Some(line) = f.read_line(Duration::from_millis(300)) {
            assert!(line.contains("probe-"), "{line}");
            break;
        }
    }
    // Whatever probes it has not printed yet come next, then the rest, in order.
    create(&d, "before");
    let mut seen = Vec::new();
    while !seen.contains(&"before".to_owned()) {
        seen.extend(next_ids(&mut f, 1));
    }
    d.stop();
    d.restart();
    // Committed before the follower is back (it backs off from 100 ms).
    create(&d, "after-1");
    create(&d, "after-2");
    assert_eq!(next_ids(&mut f, 2), ["after-1", "after-2"]);
    create(&d, "after-3");
    assert_eq!(
        next_ids(&mut f, 1),
        ["after-3"],
        "and live events after that"
    );
    let said = std::fs::read_to_string(&err).expect("stderr");
    assert!(said.contains("lost berthd; reconnecting"), "{said}");
    assert!(
        said.contains("reconnected to berthd; resuming after seq"),
        "{said}"
    );
}

/// `--since S --until U` prints the stored events in (S, U] and exits.
#[test]
fn berth_events_since_until_prints_that_range_and_exits() {
    let d = TestDaemon::start();
    for i in 0..6 {
        create(&d, &format!("r{i}"));
    }
    let (s, u) = (
        seq_of(&d, "/containers/create", "r1"),
        seq_of(&d, "/containers/create", "r4"),
    );
    let err = d.dir().join("range.err");
    let mut f = follower(
        &d,
        &format!("--since {s} --until {u} topic~=^/containers/create"),
        &err,
    );
    assert_eq!(next_ids(&mut f, 3), ["r2", "r3", "r4"]);
    assert!(f.at_eof(Duration::from_secs(10)), "it exits after --until");
}

#[test]
fn an_update_of_a_container_with_large_labels_records_a_bounded_event_and_the_log_a_bounded_size() {
    let d = TestDaemon::start();
    let mut c = container("wide");
    c["labels"] = berth_tests::abuse::big_labels(100, 3900, "");
    d.rpc_ok("containers.create", json!({"container": c.clone()}));
    for i in 0..40 {
        c["labels"]["round"] = json!(i.to_string());
        d.rpc_ok("containers.update", json!({"container": c}));
    }
    let updates = d.rpc_ok(
        "events.list",
        json!({"filters": [r#"topic=="/containers/update""#], "limit": 1000}),
    )["events"]
        .as_array()
        .expect("events")
        .clone();
    assert!(!updates.is_empty());
    for ev in &updates {
        let size = ev.to_string().len();
        // 390 KB of labels each: the event holds 16 KiB of them and says so.
        assert!(size < 20 << 10, "an event of {size} bytes");
        assert_eq!(ev["event"]["labels_truncated"], true, "{ev}");
    }
    // The object still has them all.
    let got = d.rpc_ok("containers.get", json!({"id": "wide"}));
    assert_eq!(
        got["container"]["labels"].as_object().map(|l| l.len()),
        Some(101)
    );
}
