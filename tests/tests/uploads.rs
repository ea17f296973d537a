//! `images.upload_*` as a capability of the peer that began it: unguessable ids bound to
//! the uid and namespace, per-peer slots, a byte cap, and no lock held while an upload
//! trickles.

#[path = "../src/images.rs"]
mod images;

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use berth_tests::{expect_error, message, TestDaemon};
use images::{busybox_layer, import, oci_image, ImageParts};
use serde_json::{json, Value};

/// A group member with a uid nobody on the host has: admitted by `socket_group`.
const GID: u32 = 61714;
const MEMBER: &[&str] = &[
    "setpriv",
    "--reuid=61714",
    "--regid=61714",
    "--clear-groups",
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn start(extra: &str) -> TestDaemon {
    let d = TestDaemon::start_with(&format!("socket_group = {GID}\n{extra}"));
    // The test's temp dir is 0700; berth's own dirs decide from here on.
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// One NDJSON call as the group member; its reply.
fn as_member(d: &TestDaemon, method: &str, params: Value) -> Value {
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let replies = d.socat_as(MEMBER, &line.to_string());
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies[0].clone()
}

#[test]
fn an_upload_answers_only_the_uid_and_namespace_that_began_it() {
    let d = start("");
    let a = d.rpc_ok("images.upload_begin", json!({}))["upload"].clone();
    let b = d.rpc_ok("images.upload_begin", json!({}))["upload"].clone();
    for id in [&a, &b] {
        let s = id.as_str().expect("a string id");
        let hex = s.strip_prefix("upload-").expect("upload- prefix");
        assert!(
            hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "128 random bits: {s}"
        );
    }
    assert_ne!(a, b);

    // Another namespace: as if it did not exist.
    let other_ns = json!({"upload": a, "namespace": "other"});
    let write = json!({"upload": a, "namespace": "other", "data": b64(b"x")});
    expect_error(d.rpc("images.upload_write", write), "not_found");
    expect_error(d.rpc("images.upload_commit", other_ns.clone()), "not_found");
    assert_eq!(d.rpc_ok("images.upload_abort", other_ns)["aborted"], false);

    // Another uid, admitted to the socket: the same.
    let member_sees = as_member(&d, "system.version", json!({}));
    assert!(
        member_sees.get("result").is_some(),
        "admitted: {member_sees}"
    );
    let w = as_member(
        &d,
        "images.upload_write",
        json!({"upload": a, "data": b64(b"x")}),
    );
    assert_eq!(w["error"]["data"]["kind"], "not_found", "{w}");
    let c = as_member(&d, "images.upload_commit", json!({"upload": a}));
    assert_eq!(c["error"]["data"]["kind"], "not_found", "{c}");
    let x = as_member(&d, "images.upload_abort", json!({"upload": a}));
    assert_eq!(x["result"]["aborted"], false, "{x}");

    // Its owner still has it, untouched.
    d.rpc_ok(
        "images.upload_write",
        json!({"upload": a, "data": b64(b"abc")}),
    );
    let spool = d.root().join("uploads").join(a.as_str().expect("id"));
    assert_eq!(std::fs::read(&spool).expect("the spool"), b"abc");
    assert_eq!(
        d.rpc_ok("images.upload_abort", json!({"upload": a}))["aborted"],
        true
    );
    assert_eq!(
        d.rpc_ok("images.upload_abort", json!({"upload": b}))["aborted"],
        true
    );
}

#[test]
fn one_peer_cannot_hold_every_slot_or_send_past_the_byte_cap() {
    let d = start("max_uploads_per_peer = 2\nmax_upload_bytes = 1000\n");
    let mine: Vec<Value> = (0..2)
        .map(|_| d.rpc_ok("images.upload_begin", json!({}))["upload"].clone())
        .collect();
    let err = expect_error(
        d.rpc("images.upload_begin", json!({})),
        "resource_exhausted",
    );
    assert!(message(&err).contains("max_uploads_per_peer"), "{err}");
    // Another uid still gets one.
    let theirs = as_member(&d, "images.upload_begin", json!({}));
    assert!(theirs["result"]["upload"].is_string(), "{theirs}");

    d.rpc_ok(
        "images.upload_write",
        json!({"upload": mine[0], "data": b64(&[7; 800])}),
    );
    let err = expect_error(
        d.rpc(
            "images.upload_write",
            json!({"upload": mine[0], "data": b64(&[7; 300])}),
        ),
        "resource_exhausted",
    );
    assert!(message(&err).contains("max_upload_bytes"), "{err}");
    let spool = d.root().join("uploads").join(mine[0].as_str().expect("id"));
    assert_eq!(std::fs::metadata(&spool).expect("spool").len(), 800);
    for id in &mine {
        assert_eq!(
            d.rpc_ok("images.upload_abort", json!({"upload": id}))["aborted"],
            true
        );
    }
    // A slot freed is a slot to take.
    d.rpc_ok("images.upload_begin", json!({}));
}

#[test]
fn a_trickling_upload_holds_back_neither_gc_nor_container_creates() {
    let d = start("");
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    import(&d, "bb.tar", &oci_image("bb:1", &parts)).expect("import busybox");
    let archive = oci_image("late:1", &parts);
    let up = d.rpc_ok("images.upload_begin", json!({}))["upload"].clone();
    // Half the archive, then nothing: a client that trickles or stalls.
    let half = archive.len() / 2;
    d.rpc_ok(
        "images.upload_write",
        json!({"upload": up, "data": b64(&archive[..half])}),
    );

    // Both would wait until the upload went idle (60 s) if it held the GC lock.
    let (tx, rx) = mpsc::channel();
    let socket = d.socket().to_owned();
    std::thread::spawn(move || {
        let mut c = berth_tests::Ndjson::connect(&socket).expect("connect");
        let gc = c.call("gc.run", json!({}));
        let create = c.call(
            "containers.create",
            json!({"container": {"id": "made-meanwhile", "image": "bb:1"}}),
        );
        let _ = tx.send((gc, create));
    });
    let (gc, create) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gc.run and containers.create answered while the upload is open");
    gc.expect("gc.run");
    create.expect("containers.create from an image");

    // The rest arrives late; the import runs at commit and succeeds.
    d.rpc_ok(
        "images.upload_write",
        json!({"upload": up, "data": b64(&archive[half..])}),
    );
    let done = d.rpc_ok("images.upload_commit", json!({"upload": up}));
    assert_eq!(
        done["images"][0]["name"], "docker.io/library/late:1",
        "{done}"
    );
    d.rpc_ok("images.get", json!({"name": "late:1"}));
    let left = std::fs::read_dir(d.root().join("uploads"))
        .expect("dir")
        .count();
    assert_eq!(left, 0, "the commit removed the spool");
}
