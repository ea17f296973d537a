//! The three ways in on one socket, with the real client binaries: HTTP POST via curl,
//! NDJSON via socat, WebSocket frames written by hand through socat.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_tests::ws::{client_frame, parse_frame, upgrade_request, OP_TEXT};
use berth_tests::{container, expect_error, message, unique_id, Ndjson, TestDaemon};
use serde_json::{json, Value};

/// How long berthd may take to answer and close a refused request.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

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

/// Writes `request` on a fresh connection and reads until berthd closes it; panics unless it
/// closes within `limit`. A reset after the answer counts as the end.
fn exchange_until_closed(d: &TestDaemon, request: &[u8], limit: Duration) -> String {
    let mut s = UnixStream::connect(d.socket()).expect("connect");
    // berthd may answer and close before reading all of a request it refuses.
    let _ = s.write_all(request);
    s.set_read_timeout(Some(limit)).expect("timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !got.is_empty() => break,
            Err(e) => panic!(
                "not closed after {:?} ({e}); got {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Asserts exactly one response, a 400 with an `invalid_argument` JSON body, and nothing
/// after it (the connection was closed, so nothing smuggled behind the request ran).
#[track_caller]
fn assert_one_400(answer: &str, what: &str) {
    assert!(answer.starts_with("HTTP/1.1 400 "), "{what}: {answer:?}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{what}: {answer:?}");
    assert!(answer.contains("connection: close"), "{what}: {answer:?}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        body["error"]["data"]["kind"],
        json!("invalid_argument"),
        "{what}: {body}"
    );
}

/// A POST of `body` with `headers` (each ending in CRLF) in place of its framing.
fn post_with(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: berth\r\ncontent-type: application/json\r\n{headers}\r\n{body}"
    )
    .into_bytes()
}

#[test]
fn http_request_smuggling_with_both_transfer_encoding_and_content_length_gets_400_and_close() {
    let d = TestDaemon::start();
    let id = unique_id("smuggled");
    let smuggled = request(
        json!(2),
        "containers.create",
        json!({"container": container(&id)}),
    )
    .to_string();
    let inner = String::from_utf8(post_with(
        &format!("content-length: {}\r\n", smuggled.len()),
        &smuggled,
    ))
    .expect("utf-8");
    // A chunked reader sees an empty body and then a second request; a length reader sees
    // one body. Either order of the two headers.
    let body = format!("0\r\n\r\n{inner}");
    for headers in [
        format!(
            "transfer-encoding: chunked\r\ncontent-length: {}\r\n",
            body.len()
        ),
        format!(
            "content-length: {}\r\ntransfer-encoding: chunked\r\n",
            body.len()
        ),
    ] {
        let answer = exchange_until_closed(&d, &post_with(&headers, &body), CLOSE_LIMIT);
        assert_one_400(&answer, &headers);
        assert!(answer.contains("ambiguous"), "{answer}");
    }
    expect_error(d.rpc("containers.get", json!({"id": id})), "not_found");
}

#[test]
fn http_malformed_or_conflicting_content_length_gets_400_and_close() {
    let d = TestDaemon::start();
    let call = request(json!(1), "system.version", json!({})).to_string();
    let n = call.len();
    let digits = n.to_string();
    let spaced = format!("{} {}", &digits[..1], &digits[1..]);
    let mut cases: Vec<String> = [
        format!("+{n}"),
        "-1".into(),
        "0x10".into(),
        "".into(),
        spaced,
    ]
    .iter()
    .map(|v| format!("content-length: {v}\r\n"))
    .collect();
    cases.push(format!(
        "content-length: {n}\r\ncontent-length: {}\r\n",
        n + 1
    ));
    cases.push(format!("content-length: {n}\r\ncontent-length: 0\r\n"));
    for headers in &cases {
        let answer = exchange_until_closed(&d, &post_with(headers, &call), CLOSE_LIMIT);
        assert_one_400(&answer, headers);
        assert!(answer.contains("Content-Length"), "{headers:?}: {answer}");
    }
    // Trailing whitespace around a value is not part of it (RFC 9110 section 5.5).
    let (status, reply) = berth_tests::abuse::http_exchange(
        d.socket(),
        &post_with(&format!("content-length: {n} \r\n"), &call),
        CLOSE_LIMIT,
    )
    .expect("an answer");
    assert_eq!(
        (status, &reply["result"]["api_version"]),
        (200, &json!("v1")),
        "{reply}"
    );
}

#[test]
fn http_control_bytes_in_header_names_or_values_get_400_and_close() {
    let d = TestDaemon::start();
    let call = request(json!(1), "system.version", json!({})).to_string();
    let length = format!("content-length: {}\r\n", call.len());
    for header in [
        "x-a: a\0b\r\n",
        "x-a: a\x01b\r\n",
        "x-a: a\x1bb\r\n",
        "x-a: a\x7fb\r\n",
        "x-a: a\rb\r\n",
        "x\0a: b\r\n",
        "x-a : b\r\n",
        "x-a: b\r\n folded\r\n",
    ] {
        let answer = exchange_until_closed(
            &d,
            &post_with(&format!("{header}{length}"), &call),
            CLOSE_LIMIT,
        );
        assert_one_400(&answer, &format!("{header:?}"));
    }
    // A horizontal tab inside a value is allowed.
    let (status, reply) = berth_tests::abuse::http_exchange(
        d.socket(),
        &post_with(&format!("x-a: a\tb\r\n{length}"), &call),
        CLOSE_LIMIT,
    )
    .expect("an answer");
    assert_eq!(
        (status, &reply["result"]["api_version"]),
        (200, &json!("v1")),
        "{reply}"
    );
}

#[test]
fn http_head_and_other_methods_get_valid_responses_and_head_gets_no_body() {
    let d = TestDaemon::start();
    let call = request(json!(1), "system.version", json!({})).to_string();
    let then_post = String::from_utf8(berth_tests::abuse::post(&call)).expect("utf-8");
    for method in [
        "HEAD", "GET", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "OPTIONS", "BREW",
    ] {
        // Keep-alive: the POST behind it must be answered next, so a body sent after a HEAD
        // answer (where HTTP forbids one) would show up in front of the POST's status line.
        let req = format!("{method} /_ping HTTP/1.1\r\nHost: berth\r\n\r\n{then_post}");
        let mut s = UnixStream::connect(d.socket()).expect("connect");
        s.write_all(req.as_bytes()).expect("send");
        s.set_read_timeout(Some(CLOSE_LIMIT)).expect("timeout");
        let head = read_head(&mut s);
        let expected = if method == "OPTIONS" { 204 } else { 405 };
        assert!(
            head.starts_with(&format!("HTTP/1.1 {expected} ")),
            "{method}: {head:?}"
        );
        assert!(
            head.to_ascii_lowercase().contains("\r\nallow: post\r\n"),
            "{method}: {head:?}"
        );
        let length: usize =
            header(&head, "content-length").map_or(0, |v| v.parse().expect("length"));
        if method != "HEAD" && method != "OPTIONS" {
            let mut body = vec![0u8; length];
            s.read_exact(&mut body).expect("the 405 body");
            let body: Value = serde_json::from_slice(&body).expect("a JSON body");
            assert_eq!(
                body["error"]["data"]["kind"],
                json!("invalid_argument"),
                "{body}"
            );
            assert!(message(&body["error"]).contains(method), "{body}");
        }
        let (status, reply) = berth_tests::abuse::read_http_response(&mut s)
            .unwrap_or_else(|| panic!("{method}: the POST behind it was not answered"));
        assert_eq!(
            (status, &reply["result"]["api_version"]),
            (200, &json!("v1")),
            "{method}: the next response is the POST's: {reply}"
        );
    }
}

/// Reads one response head (up to the blank line) byte by byte.
fn read_head(s: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            other => panic!(
                "head cut short ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[test]
fn ndjson_lines_that_are_not_objects_are_answered_at_once_with_invalid_request() {
    let d = TestDaemon::start();
    for line in ["null", "42", "\"x\"", "true", "false", "-1", "0", "\t\"x\""] {
        let started = Instant::now();
        let mut conn = Ndjson::connect(d.socket()).expect("connect");
        conn.send_raw(format!("{line}\n").as_bytes()).expect("send");
        let reply = conn
            .recv(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{line:?}: no reply line ({e:?})"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{line:?} answered after {:?}",
            started.elapsed()
        );
        assert_eq!(reply["error"]["code"], json!(-32600), "{line:?}: {reply}");
        assert!(reply["id"].is_null(), "{line:?}: {reply}");
        // The connection still serves requests.
        let v = conn.call("system.version", json!({}));
        assert!(v.is_ok(), "{line:?}: {v:?}");
    }
    // Whitespace (blank lines included) before a request is not HTTP either.
    let mut conn = Ndjson::connect(d.socket()).expect("connect");
    let line = request(json!(7), "system.version", json!({})).to_string();
    conn.send_raw(format!("\n  {line}\n").as_bytes())
        .expect("send");
    let reply = conn.recv(Duration::from_secs(2)).expect("a reply");
    assert_eq!(reply["id"], json!(7), "{reply}");
}

#[test]
fn unmasked_websocket_frames_close_the_connection() {
    let d = TestDaemon::start();
    let mut s = UnixStream::connect(d.socket()).expect("connect");
    s.write_all(upgrade_request().as_bytes()).expect("upgrade");
    s.set_read_timeout(Some(CLOSE_LIMIT)).expect("timeout");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A masked call is served...
    let call = request(json!(1), "system.version", json!({})).to_string();
    s.write_all(&client_frame(OP_TEXT, call.as_bytes(), [1, 2, 3, 4]))
        .expect("masked frame");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    // jsonrpsee may ping first; the reply is the first text frame.
    let reply = loop {
        if let Some((frame, used)) = parse_frame(&got) {
            got.drain(..used);
            if frame.opcode == OP_TEXT {
                break frame;
            }
            continue;
        }
        let n = s.read(&mut chunk).expect("a reply to the masked frame");
        assert!(n > 0, "closed before replying to a masked frame");
        got.extend_from_slice(&chunk[..n]);
    };
    let reply: Value =
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
    assert_eq!(reply["result"]["api_version"], json!("v1"), "{reply}");
    // ...the same call unmasked (RFC 6455 section 5.1) ends the connection, unanswered.
    let call = request(json!(2), "system.version", json!({})).to_string();
    let mut frame = vec![0x80 | OP_TEXT, call.len() as u8];
    frame.extend_from_slice(call.as_bytes());
    s.write_all(&frame).expect("unmasked frame");
    let started = Instant::now();
    let mut after = Vec::new();
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => after.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    let text = String::from_utf8_lossy(&after);
    assert!(
        !text.contains("api_version"),
        "the unmasked call was served: {text:?}"
    );
}
