//! A full disk, on a small tmpfs root: every failure is `resource_exhausted` (never
//! `internal`), deletes and `gc.run` still work, and the space comes back.

#[path = "../src/images.rs"]
mod images;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::{expect_error, unique_id, TestDaemon};
use images::{oci_image, ImageParts, Layer};
use serde_json::{json, Map, Value};

const PATIENCE: Duration = Duration::from_secs(30);

/// Bytes free on the filesystem holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: statvfs is plain data for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and outlives the call; `st` is writable.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    st.f_bavail * st.f_frsize
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Labels adding up to about 240 KiB, each within the 4 KiB limit.
fn big_labels(seed: usize) -> Value {
    let mut m = Map::new();
    for i in 0..60 {
        // Different per container and label, so nothing compresses or dedups.
        let v: String = (0..4000)
            .map(|j| char::from(b'a' + ((seed * 31 + i * 7 + j * 13) % 26) as u8))
            .collect();
        m.insert(format!("fill.{i}"), Value::String(v));
    }
    Value::Object(m)
}

/// A layer of `mib` MiB that does not compress.
fn incompressible_layer(mib: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    Layer::new().file("big", &data, 0o644).finish()
}

fn kind(err: &Value) -> &str {
    err["data"]["kind"].as_str().unwrap_or_default()
}

#[test]
fn a_full_disk_answers_resource_exhausted_and_deletes_reclaim_the_space() {
    let d = TestDaemon::start_on_tmpfs(40);
    let root = d.root().to_owned();
    let db = root.join("meta.db");
    let free_at_start = free_bytes(&root);

    // Blobs and layers: an image larger than the disk fails in the content store or while
    // unpacking, as resource_exhausted.
    let parts = ImageParts::new(vec![incompressible_layer(20)], json!({"Cmd": ["sh"]}));
    let archive = d.dir().join("big.tar");
    std::fs::write(&archive, oci_image("big:1", &parts)).expect("write archive");
    let err = expect_error(
        d.rpc("images.import", json!({"path": archive})),
        "resource_exhausted",
    );
    assert!(
        err["message"].as_str().expect("message").contains("full"),
        "{err}"
    );
    d.rpc_ok("gc.run", json!({}));
    assert!(
        free_bytes(&root) + (1 << 20) >= free_at_start,
        "gc.run gave the failed import's space back"
    );

    // Metadata: containers with large labels until the disk is full.
    let mut created = Vec::new();
    let mut refusals = 0;
    for i in 0..400 {
        let id = unique_id("fill");
        let c = json!({"id": id, "spec": berth_tests::spec(), "labels": big_labels(i)});
        match d.rpc("containers.create", json!({"container": c})) {
            Ok(_) => created.push(id),
            Err(e) => {
                assert_eq!(kind(&e), "resource_exhausted", "never internal: {e}");
                refusals += 1;
                if refusals == 3 {
                    break;
                }
            }
        }
    }
    assert!(
        refusals == 3,
        "the disk never filled ({} containers)",
        created.len()
    );
    assert!(created.len() > 10, "only {} containers fit", created.len());
    let full_free = free_bytes(&root);
    let full_db = file_len(&db);
    expect_error(
        d.rpc("images.import", json!({"path": archive})),
        "resource_exhausted",
    );
    let small = ImageParts::new(
        vec![Layer::new().file("f", b"x", 0o644).finish()],
        json!({"Cmd": ["sh"]}),
    );
    let small_archive = d.dir().join("small.tar");
    std::fs::write(&small_archive, oci_image("small:1", &small)).expect("write archive");
    expect_error(
        d.rpc("images.import", json!({"path": small_archive})),
        "resource_exhausted",
    );

    // Deletes and gc run on the full disk.
    for id in &created {
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
    d.rpc_ok("gc.run", json!({}));
    assert_eq!(
        d.rpc_ok("containers.list", json!({}))["containers"],
        json!([])
    );

    // The file shrinks and the disk takes writes again.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let c = json!({"id": unique_id("after"), "spec": berth_tests::spec()});
        let created_again = d.rpc("containers.create", json!({"container": c}));
        let db_now = file_len(&db);
        if created_again.is_ok() && db_now < full_db / 2 {
            eprintln!(
                "containers: {}; free at start {free_at_start}, when full {full_free}, \
                 after deletes {}; meta.db full {full_db}, after {db_now}",
                created.len(),
                free_bytes(&root)
            );
            break;
        }
        if let Err(e) = &created_again {
            assert_eq!(kind(e), "resource_exhausted", "never internal: {e}");
        }
        assert!(
            Instant::now() < deadline,
            "not within {PATIENCE:?}: meta.db {db_now} bytes (full: {full_db}), create: \
             {created_again:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.rpc_ok("images.import", json!({"path": small_archive}));
    let log = d.stderr();
    assert!(
        !log.contains("internal error answered"),
        "no internal error was answered:\n{log}"
    );
    assert!(
        log.contains("released the space reserve") && log.contains("took the space reserve back"),
        "the deletes ran in the reserve's room, and it was taken back:\n{log}"
    );
    assert_eq!(file_len(&root.join("reserve")), 8 << 20);
}

/// Fills `d`'s root with containers carrying large labels until three creates are refused;
/// returns the ids created.
fn fill_with_containers(d: &TestDaemon) -> Vec<String> {
    let mut created = Vec::new();
    let mut refusals = 0;
    for i in 0..400 {
        let id = unique_id("fill");
        let c = json!({"id": id, "spec": berth_tests::spec(), "labels": big_labels(i)});
        match d.rpc("containers.create", json!({"container": c})) {
            Ok(_) => created.push(id),
            Err(e) => {
                assert_eq!(kind(&e), "resource_exhausted", "never internal: {e}");
                refusals += 1;
                if refusals == 3 {
                    return created;
                }
            }
        }
    }
    panic!("the disk never filled ({} containers)", created.len());
}

/// Issue 31 item 6: on a root so small that the 8 MiB reserve is 40% of it, the reserve
/// still comes back once everything is deleted, the WAL left by the episode is truncated,
/// and imports are accepted again, also after a restart (which must not take the reserve
/// only to give it back at once).
#[test]
fn a_small_root_takes_imports_again_after_everything_is_deleted() {
    let mut d = TestDaemon::start_on_tmpfs(20);
    let root = d.root().to_owned();
    let wal = root.join("meta.db-wal");
    let small = ImageParts::new(
        vec![Layer::new().file("f", b"x", 0o644).finish()],
        json!({"Cmd": ["sh"]}),
    );
    let archive = d.dir().join("small.tar");
    std::fs::write(&archive, oci_image("small:1", &small)).expect("write archive");

    let created = fill_with_containers(&d);
    assert!(created.len() > 5, "only {} containers fit", created.len());
    expect_error(
        d.rpc("images.import", json!({"path": archive})),
        "resource_exhausted",
    );
    for id in &created {
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
    d.rpc_ok("gc.run", json!({}));

    let deadline = Instant::now() + PATIENCE;
    let imported = loop {
        match d.rpc("images.import", json!({"path": archive})) {
            Ok(reply) => break reply["images"][0]["name"].clone(),
            Err(e) => {
                assert_eq!(kind(&e), "resource_exhausted", "never internal: {e}");
                assert!(
                    Instant::now() < deadline,
                    "imports still refused after {PATIENCE:?} with {} bytes free, wal {} \
                     bytes, reserve {} bytes: {e}",
                    free_bytes(&root),
                    file_len(&wal),
                    file_len(&root.join("reserve"))
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "after the episode: free {} bytes, wal {} bytes, reserve {} bytes",
        free_bytes(&root),
        file_len(&wal),
        file_len(&root.join("reserve"))
    );
    assert_eq!(
        file_len(&root.join("reserve")),
        8 << 20,
        "the reserve is held"
    );
    assert!(
        file_len(&wal) < 1 << 20,
        "the WAL was truncated after the episode: {} bytes",
        file_len(&wal)
    );

    // A restart keeps the reserve and does not give it back.
    d.stop();
    let released_before = d.stderr().matches("released the space reserve").count();
    d.restart();
    d.rpc_ok("images.delete", json!({"name": imported}));
    d.rpc_ok("images.import", json!({"path": archive}));
    let c = json!({"id": unique_id("after"), "spec": berth_tests::spec()});
    d.rpc_ok("containers.create", json!({"container": c}));
    d.rpc_ok("gc.run", json!({}));
    let log = d.stderr();
    assert_eq!(
        log.matches("released the space reserve").count(),
        released_before,
        "the restart did not release the reserve:\n{log}"
    );
    assert_eq!(file_len(&root.join("reserve")), 8 << 20);
}
