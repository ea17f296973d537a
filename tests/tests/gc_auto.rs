//! The automatic collector: what a crash leaves on disk is swept at start-up, and what a
//! delete leaves unreferenced goes without anyone calling `gc.run`.

#[path = "../src/images.rs"]
mod images;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::TestDaemon;
use images::{busybox_layer, oci_image, ImageParts};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `done` until it holds or `PATIENCE` runs out; panics with `what` then.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn import_busybox(d: &TestDaemon, name: &str) -> Value {
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let path = d.dir().join(format!("{}.tar", name.replace(':', "-")));
    std::fs::write(&path, oci_image(name, &parts)).expect("write archive");
    d.rpc_ok("images.import", json!({"path": path}))
}

fn digests(d: &TestDaemon) -> Vec<String> {
    d.rpc_ok("content.list", json!({}))["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .map(|b| b["digest"].as_str().expect("digest").to_owned())
        .collect()
}

fn blob_file(d: &TestDaemon, digest: &str) -> std::path::PathBuf {
    d.root()
        .join("content/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn mount_tmpfs(at: &Path) {
    std::fs::create_dir_all(at).expect("mkdir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "berth-test"])
        .arg(at)
        .status()
        .expect("run mount")
        .success();
    assert!(ok, "mount a tmpfs on {}", at.display());
}

#[test]
fn crash_leftovers_are_swept_at_start_up_but_not_a_mounted_directory() {
    let mut d = TestDaemon::start();
    import_busybox(&d, "bb:1");
    let kept = digests(&d);
    d.kill9();

    let overlay = d.root().join("snapshots/overlayfs");
    let orphan_blob = blob_file(&d, &images::sha256(b"left by a crash"));
    std::fs::write(&orphan_blob, b"left by a crash").expect("orphan blob");
    let orphan_dir = overlay.join("99999");
    std::fs::create_dir_all(orphan_dir.join("fs/etc")).expect("orphan dir");
    std::fs::write(orphan_dir.join("fs/etc/passwd"), b"x").expect("file");
    let staging = overlay.join("new-1-2-3");
    std::fs::create_dir_all(staging.join("fs")).expect("staging dir");
    let in_use = overlay.join("88888");
    mount_tmpfs(&in_use.join("fs"));

    d.restart();
    eventually("the orphan blob file and directories are swept", || {
        !orphan_blob.exists() && !orphan_dir.exists() && !staging.exists()
    });
    assert!(
        in_use.join("fs").is_dir(),
        "a directory something is mounted on stays"
    );
    for digest in &kept {
        assert!(blob_file(&d, digest).is_file(), "{digest} is the image's");
    }
    assert_eq!(digests(&d), kept, "no row went");
    d.rpc_ok("images.get", json!({"name": "bb:1"}));
    let chain = images::sha256(&busybox_layer());
    d.rpc_ok("snapshots.stat", json!({"key": chain}));
    let ok = Command::new("umount")
        .arg(in_use.join("fs"))
        .status()
        .expect("umount")
        .success();
    assert!(ok, "umount");
}

#[test]
fn deleting_an_image_frees_its_blobs_without_gc_run() {
    let d = TestDaemon::start();
    import_busybox(&d, "bb:1");
    d.rpc_ok("snapshots.prepare", json!({"key": "mine"}));
    let blobs = digests(&d);
    assert_eq!(blobs.len(), 3, "manifest, config, layer: {blobs:?}");
    d.rpc_ok("images.delete", json!({"name": "bb:1"}));
    // Rows first, files right after the transaction commits.
    eventually("the deleted image's blobs go, rows and files", || {
        digests(&d).is_empty() && blobs.iter().all(|b| !blob_file(&d, b).exists())
    });
    let removed = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/content/delete\""]}),
    );
    assert_eq!(removed["events"].as_array().expect("events").len(), 3);
    d.rpc_ok("snapshots.stat", json!({"key": "mine"}));
}
