//! berth's integration-test harness: a real `berthd` per test ([`TestDaemon`]) and the
//! clients a user would point at it (curl, socat, WebSocket bytes over socat, raw NDJSON),
//! plus small builders and checks shared by the test files under `tests/`.
//!
//! It depends on the daemon only through its binary and the wire contract (API.md), never
//! on its crates, so the tests prove what a client sees.

pub mod abuse;
pub mod clients;
pub mod contract;
pub mod crash;
pub mod daemon;
pub mod mounts;
pub mod peers;
pub mod process;
pub mod ws;

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

pub use clients::{Ndjson, RecvError, CLIENT_LIMIT};
pub use daemon::TestDaemon;
pub use ws::WebSocket;

/// A fresh identifier that satisfies the identifier rule: `prefix-<pid>-<n>`.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minimal but complete OCI runtime spec, stored as given by `containers.create`.
pub fn spec() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/bin"],
            "cwd": "/"
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth",
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
    })
}

/// A container object with an explicit spec (no image needed).
pub fn container(id: &str) -> Value {
    json!({"id": id, "spec": spec()})
}

/// Creates `container` in the default namespace and returns the stored object.
pub fn create_container(d: &TestDaemon, container: Value) -> Value {
    d.rpc_ok("containers.create", json!({"container": container}))["container"].clone()
}

/// The ids `containers.list` returns for `params`, in order.
pub fn container_ids(d: &TestDaemon, params: Value) -> Vec<String> {
    let reply = d.rpc_ok("containers.list", params);
    reply["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers array: {reply}"))
        .iter()
        .map(|c| c["id"].as_str().expect("string id").to_owned())
        .collect()
}

/// The JSON-RPC code API.md assigns to a domain error kind.
pub fn code_of_kind(kind: &str) -> i64 {
    match kind {
        "invalid_argument" => -32602,
        "not_found" => -32001,
        "already_exists" => -32002,
        "failed_precondition" => -32003,
        "unavailable" => -32004,
        "permission_denied" => -32005,
        "resource_exhausted" => -32006,
        "internal" => -32603,
        other => panic!("no such error kind {other:?} in API.md"),
    }
}

/// Asserts that `res` is a domain error of `kind` (checking `data.kind` and the code) and
/// returns the error object.
#[track_caller]
pub fn expect_error(res: Result<Value, Value>, kind: &str) -> Value {
    let err = match res {
        Ok(v) => panic!("expected a {kind} error, got result {v}"),
        Err(e) => e,
    };
    assert_eq!(err["data"]["kind"], json!(kind), "error {err}");
    assert_eq!(err["code"], json!(code_of_kind(kind)), "error {err}");
    err
}

/// The error message of an error object.
pub fn message(err: &Value) -> &str {
    err["message"].as_str().unwrap_or_default()
}

/// Whether `s` is an RFC 3339 UTC time with nanoseconds: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn is_rfc3339_nanos(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddddddddZ";
    s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

/// Runs the `berth` client against `d`: `(success, stdout, stderr)`.
pub fn berth_cli(d: &TestDaemon, args: &[&str]) -> (bool, String, String) {
    let bin = TestDaemon::binary().with_file_name("berth");
    let out = std::process::Command::new(bin)
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("run berth");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_differ_and_follow_the_identifier_rule() {
        let (a, b) = (unique_id("web"), unique_id("web"));
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(id.len() <= 76);
            assert!(id
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric())));
        }
    }

    #[test]
    fn rfc3339_nanos_shape_is_strict() {
        assert!(is_rfc3339_nanos("2024-05-01T12:34:56.123456789Z"));
        assert!(!is_rfc3339_nanos("2024-05-01T12:34:56Z"));
        assert!(!is_rfc3339_nanos("2024-05-01T12:34:56.123456Z"));
        assert!(!is_rfc3339_nanos("2024-05-01T12:34:56.123456789+00:00"));
    }
}
