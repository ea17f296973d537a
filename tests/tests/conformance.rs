//! JSON-RPC 2.0 protocol errors, each checked on HTTP (curl) and on NDJSON (a raw stream):
//! both transports must answer the same body with the same code.

use berth_tests::{TestDaemon, CLIENT_LIMIT};
use serde_json::{json, Value};

/// The reply to `body` on each transport, labelled for failure messages.
fn replies(d: &TestDaemon, body: &str) -> Vec<(String, Value)> {
    let (status, http) = d.curl(body);
    let mut conn = d.ndjson();
    conn.send_raw(format!("{body}\n").as_bytes())
        .expect("send the line");
    let ndjson = conn
        .recv(CLIENT_LIMIT)
        .unwrap_or_else(|e| panic!("no NDJSON reply to {body}: {e:?}"));
    vec![
        (format!("http (status {status})"), http),
        ("ndjson".to_owned(), ndjson),
    ]
}

#[track_caller]
fn assert_code(d: &TestDaemon, body: &str, code: i64, id: Option<Value>) {
    for (transport, reply) in replies(d, body) {
        assert_eq!(
            reply["jsonrpc"],
            json!("2.0"),
            "{transport}: {body} -> {reply}"
        );
        assert_eq!(
            reply["error"]["code"],
            json!(code),
            "{transport}: {body} -> {reply}"
        );
        assert!(
            reply["error"]["message"].is_string(),
            "{transport}: {reply}"
        );
        assert!(reply.get("result").is_none(), "{transport}: {reply}");
        if let Some(id) = &id {
            assert_eq!(&reply["id"], id, "{transport}: {body} -> {reply}");
        }
    }
}

#[test]
fn malformed_json_is_a_parse_error_with_null_id() {
    let d = TestDaemon::start();
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"system.version""#,
        -32700,
        Some(Value::Null),
    );
    assert_code(&d, r#"{"jsonrpc": tru}"#, -32700, Some(Value::Null));
}

#[test]
fn request_without_method_is_an_invalid_request() {
    let d = TestDaemon::start();
    for (transport, reply) in replies(&d, r#"{"jsonrpc":"2.0","id":1}"#) {
        assert_eq!(
            reply["error"]["code"],
            json!(-32600),
            "{transport}: {reply}"
        );
        assert!(
            reply["id"] == json!(1) || reply["id"].is_null(),
            "{transport}: id is the request's or null: {reply}"
        );
    }
}

#[test]
fn empty_batch_is_a_single_invalid_request_error() {
    let d = TestDaemon::start();
    for (transport, reply) in replies(&d, "[]") {
        assert!(
            reply.is_object(),
            "{transport}: one error object, not an array: {reply}"
        );
        assert_eq!(
            reply["error"]["code"],
            json!(-32600),
            "{transport}: {reply}"
        );
        assert!(reply["id"].is_null(), "{transport}: {reply}");
    }
}

#[test]
fn wrong_jsonrpc_version_is_an_invalid_request() {
    let d = TestDaemon::start();
    for (transport, reply) in replies(
        &d,
        r#"{"jsonrpc":"1.0","id":4,"method":"system.version","params":{}}"#,
    ) {
        assert_eq!(
            reply["error"]["code"],
            json!(-32600),
            "{transport}: {reply}"
        );
    }
}

#[test]
fn unknown_method_is_method_not_found_with_the_request_id() {
    let d = TestDaemon::start();
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":7,"method":"containers.frobnicate","params":{}}"#,
        -32601,
        Some(json!(7)),
    );
}

#[test]
fn an_unknown_method_is_named_and_the_closest_one_suggested() {
    let d = TestDaemon::start();
    let (_, reply) = d.curl(r#"{"jsonrpc":"2.0","id":1,"method":"containers.lst","params":{}}"#);
    let e = &reply["error"];
    assert_eq!(e["code"], -32601, "{reply}");
    let msg = e["message"].as_str().expect("message");
    assert!(
        msg.contains("containers.lst") && msg.contains("containers.list"),
        "{msg}"
    );
    assert_eq!(e["data"]["suggestion"], "containers.list", "{reply}");
    // WebSocket (jsonrpsee's dispatch) answers alike.
    let mut ws = d.websocket();
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "containers.lst", "params": {}});
    ws.send_json(&req);
    let web = ws
        .recv_json(std::time::Duration::from_secs(10))
        .expect("a reply");
    assert_eq!(web, reply, "the same error on WebSocket as on HTTP");
    let far = d.ndjson().call("zzz.qqq", json!({})).expect_err("unknown");
    assert_eq!(far["code"], -32601, "{far}");
    assert!(
        far.get("data").and_then(|d| d.get("suggestion")).is_none(),
        "{far}"
    );
    assert!(
        far["message"]
            .as_str()
            .expect("message")
            .contains("rpc.discover"),
        "{far}"
    );
    // A GET says how to call berthd, in JSON.
    let (status, body) = berth_tests::abuse::http_exchange(
        d.socket(),
        b"GET / HTTP/1.1\r\nHost: berth\r\n\r\n",
        std::time::Duration::from_secs(10),
    )
    .expect("an answer");
    assert_eq!(status, 405);
    let msg = body["error"]["message"].as_str().expect("a JSON error");
    assert!(
        msg.contains("POST") && msg.contains("curl --unix-socket"),
        "{msg}"
    );
}

#[test]
fn param_of_the_wrong_type_is_invalid_params() {
    let d = TestDaemon::start();
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":8,"method":"containers.get","params":{"id":5}}"#,
        -32602,
        Some(json!(8)),
    );
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":9,"method":"containers.list","params":{"limit":"ten"}}"#,
        -32602,
        Some(json!(9)),
    );
}

#[test]
fn unknown_param_field_is_invalid_params() {
    let d = TestDaemon::start();
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":10,"method":"containers.get","params":{"id":"web","colour":"red"}}"#,
        -32602,
        Some(json!(10)),
    );
}

#[test]
fn missing_required_param_is_invalid_params() {
    let d = TestDaemon::start();
    assert_code(
        &d,
        r#"{"jsonrpc":"2.0","id":11,"method":"containers.get","params":{}}"#,
        -32602,
        Some(json!(11)),
    );
}
