//! The three ways in on one socket, with the real client binaries: HTTP POST via curl,
//! NDJSON via socat, WebSocket frames written by hand through socat.

use std::collections::BTreeSet;
use std::time::Duration;

use berth_tests::{container, unique_id, TestDaemon};
use serde_json::{json, Value};

fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A batch of: a request (id 1), a notification, and an invalid request (id 3).
fn mixed_batch() -> String {
    json!([
        request(json!(1), "system.version", json!({})),
        notification("system.version", json!({})),
        {"jsonrpc": "2.0", "id": 3},
    ])
    .to_string()
}

/// The replies to `mixed_batch`: exactly one result for id 1 and one -32600 error,
/// nothing for the notification.
fn assert_mixed_batch_replies(reply: &Value) {
    let replies = reply
        .as_array()
        .unwrap_or_else(|| panic!("not a batch reply: {reply}"));
    assert_eq!(
        replies.len(),
        2,
        "one reply per request, none for the notification: {reply}"
    );
    let ok: Vec<&Value> = replies.iter().filter(|r| r["id"] == json!(1)).collect();
    assert_eq!(ok.len(), 1, "{reply}");
    assert_eq!(ok[0]["result"]["api_version"], json!("v1"), "{reply}");
    let bad: Vec<&Value> = replies.iter().filter(|r| r["id"] != json!(1)).collect();
    assert_eq!(bad[0]["error"]["code"], json!(-32600), "{reply}");
    assert!(
        bad[0]["id"] == json!(3) || bad[0]["id"].is_null(),
        "invalid request answered with id 3 or null: {reply}"
    );
}

#[test]
fn http_post_single_request_gets_its_result() {
    let d = TestDaemon::start();
    let (status, reply) = d.curl(&request(json!(1), "system.version", json!({})).to_string());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["jsonrpc"], json!("2.0"));
    assert_eq!(reply["id"], json!(1));
    let result = &reply["result"];
    assert_eq!(result["api_version"], json!("v1"), "{reply}");
    assert!(result["version"].is_string(), "{reply}");
    assert!(result["runtime"]["name"].is_string(), "{reply}");
}

#[test]
fn http_post_batch_gets_one_reply_per_request() {
    let d = TestDaemon::start();
    let batch = json!([
        request(json!(1), "system.version", json!({})),
        request(json!("two"), "containers.list", json!({})),
    ]);
    let (status, reply) = d.curl(&batch.to_string());
    assert_eq!(status, 200, "{reply}");
    let replies = reply
        .as_array()
        .unwrap_or_else(|| panic!("not a batch reply: {reply}"));
    let ids: BTreeSet<String> = replies.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(ids, BTreeSet::from(["1".to_owned(), "\"two\"".to_owned()]));
    let list = replies
        .iter()
        .find(|r| r["id"] == json!("two"))
        .expect("reply two");
    assert_eq!(list["result"]["containers"], json!([]), "{reply}");
}

#[test]
fn http_batch_with_notification_and_bad_request_replies_to_requests_only() {
    let d = TestDaemon::start();
    let (status, reply) = d.curl(&mixed_batch());
    assert_eq!(status, 200, "{reply}");
    assert_mixed_batch_replies(&reply);
}

#[test]
fn ndjson_single_request_over_socat_gets_one_reply_line() {
    let d = TestDaemon::start();
    let replies = d.socat(&request(json!(1), "system.version", json!({})).to_string());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["id"], json!(1));
    assert_eq!(
        replies[0]["result"]["api_version"],
        json!("v1"),
        "{replies:?}"
    );
}

#[test]
fn ndjson_batch_over_socat_gets_one_array_line() {
    let d = TestDaemon::start();
    let batch = json!([
        request(json!(1), "system.version", json!({})),
        request(json!(2), "namespaces.list", json!({})),
    ]);
    let replies = d.socat(&batch.to_string());
    assert_eq!(
        replies.len(),
        1,
        "one line for the whole batch: {replies:?}"
    );
    let items = replies[0].as_array().expect("an array reply");
    let ids: BTreeSet<i64> = items.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, BTreeSet::from([1, 2]), "{replies:?}");
    assert!(
        items.iter().all(|r| r.get("result").is_some()),
        "{replies:?}"
    );
}

#[test]
fn ndjson_notifications_over_socat_get_no_reply() {
    let d = TestDaemon::start();
    let lines = [
        notification("system.version", json!({})),
        json!([
            notification("system.version", json!({})),
            notification("system.info", json!({}))
        ]),
        request(json!(2), "system.version", json!({})),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let replies = d.socat(&lines);
    assert_eq!(
        replies.len(),
        1,
        "only the request is answered: {replies:?}"
    );
    assert_eq!(replies[0]["id"], json!(2));
}

#[test]
fn ndjson_batch_with_notification_and_bad_request_replies_to_requests_only() {
    let d = TestDaemon::start();
    let replies = d.socat(&mixed_batch());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_mixed_batch_replies(&replies[0]);
}

#[test]
fn ndjson_pipelined_requests_on_one_connection_are_all_answered() {
    let d = TestDaemon::start();
    let lines: Vec<String> = (1..=20)
        .map(|i| request(json!(i), "system.version", json!({})).to_string())
        .collect();
    let replies = d.socat(&lines.join("\n"));
    let ids: BTreeSet<i64> = replies.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (1..=20).collect::<BTreeSet<i64>>(), "{replies:?}");
    assert_eq!(replies.len(), 20);
}

#[test]
fn websocket_upgrade_serves_requests() {
    let d = TestDaemon::start();
    let mut ws = d.websocket();
    ws.send_json(&request(json!(1), "system.version", json!({})));
    let reply = ws
        .recv_json(Duration::from_secs(10))
        .expect("a reply frame");
    assert_eq!(reply["id"], json!(1), "{reply}");
    assert_eq!(reply["result"]["api_version"], json!("v1"), "{reply}");

    ws.send_json(&request(json!(2), "containers.list", json!({})));
    let reply = ws
        .recv_json(Duration::from_secs(10))
        .expect("a second reply frame");
    assert_eq!(reply["id"], json!(2), "{reply}");
    assert_eq!(reply["result"]["containers"], json!([]), "{reply}");
}

#[test]
fn websocket_subscription_receives_event_notifications() {
    let d = TestDaemon::start();
    let mut ws = d.websocket();
    ws.send_json(&request(json!(1), "events.subscribe", json!({})));
    let reply = ws
        .recv_json(Duration::from_secs(10))
        .expect("subscribe reply");
    assert_eq!(reply["id"], json!(1), "{reply}");
    let subscription = reply["result"].clone();
    assert!(
        subscription.is_string() || subscription.is_number(),
        "a subscription id: {reply}"
    );

    let id = unique_id("ws");
    d.rpc_ok("containers.create", json!({"container": container(&id)}));
    loop {
        let note = ws
            .recv_json(Duration::from_secs(10))
            .expect("an events.event notification for the create");
        assert_eq!(note["method"], json!("events.event"), "{note}");
        assert_eq!(note["params"]["subscription"], subscription, "{note}");
        let event = &note["params"]["result"];
        if event["topic"] == json!("/containers/create") {
            assert_eq!(event["event"]["id"], json!(id), "{note}");
            assert_eq!(event["namespace"], json!("default"), "{note}");
            break;
        }
    }
}
