//! The transport against a scripted NDJSON server on a temp unix socket: what goes out on
//! the wire, and how interleaved notifications, errors and hang-ups come back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

use serde_json::json;

use super::*;

/// A one-connection server: for each request line it reads, it writes the next batch of
/// scripted reply lines; then it hangs up. Joining yields the request lines received.
struct FakeServer {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    thread: JoinHandle<Vec<String>>,
}

impl FakeServer {
    fn start(script: Vec<Vec<String>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("berthd.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake socket");
        let thread = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut received = Vec::new();
            for replies in script {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read request") == 0 {
                    break;
                }
                received.push(line);
                for reply in replies {
                    writer.write_all(reply.as_bytes()).expect("write reply");
                    writer.write_all(b"\n").expect("write newline");
                }
            }
            received
        });
        Self {
            _dir: dir,
            socket,
            thread,
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket, "default").expect("connect to fake server")
    }

    fn requests(self) -> Vec<String> {
        self.thread.join().expect("fake server panicked")
    }
}

fn line(value: Value) -> String {
    value.to_string()
}

#[test]
fn call_sends_one_request_line_with_namespace_and_increasing_ids() {
    let server = FakeServer::start(vec![
        vec![line(
            json!({"jsonrpc": "2.0", "id": 1, "result": {"container": {"id": "web"}}}),
        )],
        vec![line(json!({"jsonrpc": "2.0", "id": 2, "result": {}}))],
    ]);
    let mut client = server.client();
    let result = client
        .call("containers.get", json!({"id": "web"}))
        .expect("call succeeds");
    assert_eq!(result, json!({"container": {"id": "web"}}));
    client
        .call("namespaces.list", json!({"namespace": "other"}))
        .expect("second call succeeds");
    drop(client);
    assert_eq!(
        server.requests(),
        [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"containers.get\",\
             \"params\":{\"id\":\"web\",\"namespace\":\"default\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"namespaces.list\",\
             \"params\":{\"namespace\":\"other\"}}\n",
        ]
    );
}

#[test]
fn notifications_and_stale_responses_before_the_response_are_skipped() {
    let server = FakeServer::start(vec![vec![
        line(json!({"jsonrpc": "2.0", "method": "events.event",
                    "params": {"subscription": 7, "result": {"seq": 1}}})),
        line(json!({"jsonrpc": "2.0", "id": 99, "result": "not ours"})),
        String::new(),
        line(json!({"jsonrpc": "2.0", "id": 1, "result": {"version": "0.1.0"}})),
    ]]);
    let mut client = server.client();
    let result = client.call("system.version", Value::Null).expect("call");
    assert_eq!(result, json!({"version": "0.1.0"}));
    assert_eq!(client.pending.len(), 1);
    drop(client);
    assert!(server.requests()[0].contains("\"params\":{\"namespace\":\"default\"}"));
}

#[test]
fn error_response_carries_code_message_and_kind() {
    let server = FakeServer::start(vec![vec![line(json!({
        "jsonrpc": "2.0", "id": 1,
        "error": {"code": -32001, "message": "container \"web\" not found in namespace \"default\"",
                  "data": {"kind": "not_found"}}
    }))]]);
    let err = server
        .client()
        .call("containers.get", json!({"id": "web"}))
        .expect_err("daemon error");
    assert_eq!(
        err.to_string(),
        "container \"web\" not found in namespace \"default\" (not_found)"
    );
    match err {
        RpcError::Daemon { code, kind, .. } => {
            assert_eq!(code, -32001);
            assert_eq!(kind.as_deref(), Some("not_found"));
        }
        other => panic!("expected a daemon error, got {other:?}"),
    }
}

#[test]
fn connection_level_error_with_null_id_fails_the_call() {
    let server = FakeServer::start(vec![vec![line(json!({
        "jsonrpc": "2.0", "id": null,
        "error": {"code": -32005, "message": "permission denied: uid 1000",
                  "data": {"kind": "permission_denied"}}
    }))]]);
    let err = server
        .client()
        .call("system.info", json!({}))
        .expect_err("refused");
    assert!(
        matches!(err, RpcError::Daemon { code: -32005, .. }),
        "{err:?}"
    );
}

#[test]
fn hang_up_before_the_response_names_the_method() {
    let server = FakeServer::start(vec![vec![]]);
    let err = server
        .client()
        .call("tasks.wait", json!({}))
        .expect_err("closed");
    assert!(matches!(err, RpcError::Closed { ref method, .. } if method == "tasks.wait"));
}

#[test]
fn garbage_line_is_a_protocol_error() {
    let server = FakeServer::start(vec![vec!["HTTP/1.1 400 Bad Request".into()]]);
    let err = server.client().call("x", json!({})).expect_err("garbage");
    assert!(matches!(err, RpcError::Protocol { .. }), "{err:?}");
}

#[test]
fn subscription_yields_its_notifications_including_ones_sent_before_the_response() {
    let note = |sub: &str, seq: u64| {
        line(json!({"jsonrpc": "2.0", "method": "events.event",
                    "params": {"subscription": sub, "result": {"seq": seq}}}))
    };
    let server = FakeServer::start(vec![vec![
        note("s1", 1),
        line(json!({"jsonrpc": "2.0", "id": 1, "result": "s1"})),
        note("other", 9),
        note("s1", 2),
    ]]);
    let mut events = server
        .client()
        .subscribe("events.subscribe", json!({"since": 0}))
        .expect("subscribed");
    assert_eq!(events.next().map(Result::ok), Some(Some(json!({"seq": 1}))));
    assert_eq!(events.next().map(Result::ok), Some(Some(json!({"seq": 2}))));
    assert!(matches!(events.next(), Some(Err(RpcError::Closed { .. }))));
    assert!(events.next().is_none());
    drop(events);
    assert_eq!(
        server.requests(),
        [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\",\
          \"params\":{\"namespace\":\"default\",\"since\":0}}\n"
        ]
    );
}

#[test]
fn connect_failure_names_the_socket_and_suggests_starting_berthd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("missing.sock");
    let err = Client::connect(&socket, "default")
        .err()
        .expect("no server listens there");
    let message = err.to_string();
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(message.contains("is berthd running?"), "{message}");
}

#[test]
fn namespace_is_added_only_to_by_name_params_that_lack_one() {
    assert_eq!(scoped(Value::Null, "ns"), json!({"namespace": "ns"}));
    assert_eq!(
        scoped(json!({"namespace": "x"}), "ns"),
        json!({"namespace": "x"})
    );
    assert_eq!(scoped(json!(["s1"]), "ns"), json!(["s1"]));
}
