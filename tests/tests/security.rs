//! Who may talk to berthd and how much: socket ownership and mode, the SO_PEERCRED check,
//! the request size and connection limits, and a slow client not starving others.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use berth_tests::{expect_error, message, spec, Ndjson, RecvError, TestDaemon, CLIENT_LIMIT};
use serde_json::{json, Value};

/// Runs a client as `nobody` with no supplementary groups.
const AS_NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

const VERSION_LINE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"system.version","params":{}}"#;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// Lets any user reach the socket's directory (the temp dir is 0700 by default).
fn open_dirs_to_everyone(d: &TestDaemon) {
    chmod(d.dir(), 0o755);
    chmod(d.socket().parent().expect("socket dir"), 0o755);
}

#[track_caller]
fn assert_permission_denied(reply: &Value) {
    assert_eq!(reply["error"]["code"], json!(-32005), "{reply}");
    assert_eq!(
        reply["error"]["data"]["kind"],
        json!("permission_denied"),
        "{reply}"
    );
    assert!(reply["id"].is_null(), "{reply}");
    assert!(reply.get("result").is_none(), "{reply}");
}

#[test]
fn socket_is_mode_0660_owned_by_root() {
    let d = TestDaemon::start();
    let meta = fs::metadata(d.socket()).expect("stat the socket");
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode {:o}", meta.mode());
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "owner root:root without socket_group"
    );
}

#[test]
fn unprivileged_peer_is_refused_on_ndjson_even_with_a_world_writable_socket() {
    let d = TestDaemon::start();
    open_dirs_to_everyone(&d);
    chmod(d.socket(), 0o666);
    let replies = d.socat_as(AS_NOBODY, VERSION_LINE);
    assert_eq!(
        replies.len(),
        1,
        "one error line, then the connection closes: {replies:?}"
    );
    assert_permission_denied(&replies[0]);
    assert!(
        message(&replies[0]["error"]).contains("permission denied"),
        "{replies:?}"
    );
    d.rpc_ok("system.version", json!({}));
}

#[test]
fn unprivileged_peer_is_refused_on_http_with_403() {
    let d = TestDaemon::start();
    open_dirs_to_everyone(&d);
    chmod(d.socket(), 0o666);
    let (status, reply) = d.curl_as(AS_NOBODY, VERSION_LINE);
    assert_eq!(status, 403, "{reply}");
    assert_permission_denied(&reply);
}

#[test]
fn socket_group_members_are_served() {
    let d = TestDaemon::start_with("socket_group = 65534\n");
    let meta = fs::metadata(d.socket()).expect("stat the socket");
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode {:o}", meta.mode());
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 65534),
        "group from socket_group"
    );
    open_dirs_to_everyone(&d);
    let replies = d.socat_as(AS_NOBODY, VERSION_LINE);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0]["result"]["api_version"],
        json!("v1"),
        "{replies:?}"
    );
}

#[test]
fn oversized_request_is_resource_exhausted_and_the_daemon_keeps_serving() {
    let d = TestDaemon::start_with("max_request_bytes = 4096\n");
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "containers.create",
                     "params": {"container": {"id": "big", "labels": {"pad": "x".repeat(8192)}}}});

    let mut conn = d.ndjson();
    conn.send(&big);
    let reply = conn
        .recv(CLIENT_LIMIT)
        .expect("an error line for the oversized request");
    assert_eq!(reply["error"]["code"], json!(-32006), "{reply}");
    assert_eq!(
        reply["error"]["data"]["kind"],
        json!("resource_exhausted"),
        "{reply}"
    );
    assert!(
        message(&reply["error"]).contains("4096"),
        "names the limit: {reply}"
    );
    assert_eq!(
        conn.recv(Duration::from_secs(10)).err(),
        Some(RecvError::Closed),
        "then the connection closes"
    );

    let (status, reply) = d.curl(&big.to_string());
    assert!(
        status == 413 || reply["error"].is_object(),
        "HTTP refuses it: status {status}, {reply}"
    );
    assert!(reply.get("result").is_none(), "{reply}");

    // Requests under the limit are still served, on both transports.
    let fits =
        json!({"container": {"id": "fits", "spec": spec(), "labels": {"pad": "x".repeat(2500)}}});
    d.rpc_ok("containers.create", fits);
    let (status, reply) = d.curl(VERSION_LINE);
    assert_eq!(
        (status, &reply["result"]["api_version"]),
        (200, &json!("v1")),
        "{reply}"
    );
    expect_error(d.rpc("containers.get", json!({"id": "big"})), "not_found");
}

#[test]
fn idle_client_with_half_a_line_does_not_block_others() {
    let d = TestDaemon::start();
    let mut idle = d.ndjson();
    idle.send_raw(br#"{"jsonrpc":"2.0","id":1,"method":"sys"#)
        .expect("send half a line");

    let started = Instant::now();
    d.rpc_ok("system.version", json!({}));
    let (status, _) = d.curl(VERSION_LINE);
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others served promptly"
    );

    idle.send_raw(b"tem.version\",\"params\":{}}\n")
        .expect("finish the line");
    let reply = idle
        .recv(CLIENT_LIMIT)
        .expect("the slow client is answered too");
    assert_eq!(reply["result"]["api_version"], json!("v1"), "{reply}");
}

#[test]
fn connections_over_the_limit_are_refused_until_one_closes() {
    let d = TestDaemon::start_with("max_connections = 4\n");
    // A slot is given back once berthd has seen its connection close, asynchronously: the
    // start-up probe's may still be held for a moment, so each of the four is retried
    // against a deadline until it is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held: Vec<Ndjson> = Vec::new();
    while held.len() < 4 {
        let mut c = d.ndjson();
        match c.try_call("system.version", json!({})) {
            Ok(Ok(_)) => held.push(c),
            other => {
                assert!(Instant::now() < deadline, "within the limit: {other:?}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    let mut extra = d.ndjson();
    // The refusal may be written and the connection closed before this line arrives.
    let _ = extra.send_raw(format!("{VERSION_LINE}\n").as_bytes());
    let reply = extra
        .recv(CLIENT_LIMIT)
        .expect("an error line for the fifth connection");
    assert_eq!(
        reply["error"]["code"],
        json!(-32006),
        "served past the limit? {reply}"
    );
    assert_eq!(
        reply["error"]["data"]["kind"],
        json!("resource_exhausted"),
        "{reply}"
    );
    assert_eq!(
        extra.recv(Duration::from_secs(10)).err(),
        Some(RecvError::Closed),
        "then the connection closes"
    );

    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = Ndjson::connect(d.socket())
            .ok()
            .and_then(|mut c| c.try_call("system.version", json!({})).ok())
            .is_some_and(|r| r.is_ok());
        if served {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is never reused");
        thread::sleep(Duration::from_millis(50));
    }
}

/// images.import of a file that is not a tar must not quote it: the tar reader's errors
/// hold header bytes, the first line of `/etc/shadow` for instance.
#[test]
fn import_errors_never_quote_the_file_they_read() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("shadow");
    // Long enough to fill a tar header's name field and reach its numeric fields.
    let line = format!(
        "root:$6$SECRETSALT$SECRETHASH{}:19000:0:99999:7:::\n",
        "x".repeat(200)
    );
    std::fs::write(&secret, line.repeat(20)).expect("write");
    chmod(&secret, 0o600);
    let err = d
        .rpc("images.import", json!({"path": secret}))
        .expect_err("not an image archive");
    let text = err.to_string();
    assert!(
        !text.contains("SECRET"),
        "the error quotes the file: {text}"
    );
    assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");
    // berthd's own environment (it has PATH) and the host's shadow file (root's line).
    for (path, quoted) in [("/proc/self/environ", "PATH="), ("/etc/shadow", "root:")] {
        let err = d
            .rpc("images.import", json!({"path": path}))
            .expect_err("not an image archive");
        let text = err.to_string();
        assert!(!text.contains(quoted), "the error quotes {path}: {text}");
    }
}

/// images.import of a FIFO (which would never yield data) or a device is refused at once,
/// without holding the GC lock: gc.run still answers.
#[test]
fn import_of_a_fifo_or_device_is_refused_at_once_and_holds_no_lock() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().expect("dir");
    let fifo = dir.path().join("never");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf8")).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    for (path, what) in [
        (fifo.to_str().expect("utf8"), "FIFO"),
        ("/dev/tty", "device"),
    ] {
        let started = Instant::now();
        let err = d
            .rpc("images.import", json!({"path": path}))
            .expect_err("not a regular file");
        assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");
        assert!(message(&err).contains(what), "{err}");
        assert!(started.elapsed() < CLIENT_LIMIT, "refused at once");
    }
    d.rpc_ok("gc.run", json!({}));
}
