//! Issue 31, "Nothing lost when the operator slips": an emptied, deleted or damaged
//! `meta.db`, a second berthd on the same state dir, and a restart right after `kill -9`
//! never cost an image, a snapshot or a running task.

#[path = "../src/images.rs"]
mod images;
mod tasks_support;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::process::output_within;
use berth_tests::{container, create_container, unique_id, TestDaemon};
use images::{busybox_parts, import, oci_image};
use serde_json::json;
use tasks_support::{berth_out, Cleanup, Rootfs};

const PATIENCE: Duration = Duration::from_secs(20);

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file below the root's blob and snapshot directories with its size and a hash of
/// its bytes (symlinks by target): what "intact" means for the test.
fn content_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).expect("below base").to_owned();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(&path, base, out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(rel, format!("-> {}", target.display()));
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(rel, images::sha256(&bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    for sub in ["content/blobs", "snapshots"] {
        walk(&root.join(sub), root, &mut out);
    }
    out
}

/// Runs berthd on `d`'s dirs with `args` added, where it must refuse to start; its stderr.
fn refused_start(d: &TestDaemon, args: &[&str]) -> String {
    let out = output_within(d.command().args(args), b"", Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "berthd {args:?} must refuse to start; stderr:\n{stderr}"
    );
    stderr
}

fn file_hash(path: &Path) -> String {
    images::sha256(&std::fs::read(path).expect("read"))
}

#[test]
fn an_emptied_or_missing_database_on_a_used_root_is_refused_and_nothing_is_deleted() {
    let mut d = TestDaemon::start();
    import(&d, "bb.tar", &oci_image("bb:1", &busybox_parts())).expect("import");
    let id = unique_id("kept");
    let out = berth_out(&d, &["containers", "create", "bb:1", &id], b"");
    assert!(out.status.success(), "create: {out:?}");
    d.stop();
    let before = content_tree(d.root());
    let blobs = before
        .keys()
        .filter(|p| p.starts_with("content/blobs/sha256/"))
        .count();
    let dirs = before
        .keys()
        .filter(|p| p.components().count() == 3 && p.starts_with("snapshots"))
        .count();
    assert!(
        blobs >= 3 && dirs >= 2,
        "an image and a container's snapshot: {before:?}"
    );
    let db = d.root().join("meta.db");
    let db_name = db.display().to_string();

    // `: > meta.db`
    std::fs::write(&db, b"").expect("empty meta.db");
    let stderr = refused_start(&d, &[]);
    assert!(stderr.contains(&db_name), "names the file: {stderr}");
    assert!(
        stderr.contains("--reset-store"),
        "says what to do: {stderr}"
    );
    assert_eq!(
        content_tree(d.root()),
        before,
        "every blob and snapshot dir kept"
    );
    assert_eq!(
        std::fs::metadata(&db).expect("meta.db").len(),
        0,
        "untouched"
    );

    // `rm meta.db*`
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db_name}{suffix}"));
    }
    let stderr = refused_start(&d, &[]);
    assert!(
        stderr.contains(&db_name) && stderr.contains("missing"),
        "{stderr}"
    );
    assert_eq!(
        content_tree(d.root()),
        before,
        "every blob and snapshot dir kept"
    );
    assert!(!db.exists(), "no database was created");

    // The explicit start-over: an empty store, whose gc then removes what nothing names.
    d.restart_with(&["--reset-store"]);
    assert_eq!(d.rpc_ok("images.list", json!({}))["images"], json!([]));
    assert!(d.rpc("containers.get", json!({"id": id})).is_err());
    eventually("gc removes the blobs no database names", || {
        std::fs::read_dir(d.root().join("content/blobs/sha256"))
            .map(|rd| rd.count() == 0)
            .unwrap_or(false)
    });
    d.stop();
    // The flag on a sound database is refused (left in a unit file, it must not wipe one).
    let stderr = refused_start(&d, &["--reset-store"]);
    assert!(stderr.contains("passed its checks"), "{stderr}");
    d.restart();
    d.rpc_ok("system.version", json!({}));
}

#[test]
fn a_damaged_database_is_refused_unmodified_with_a_recovery_hint() {
    let mut d = TestDaemon::start();
    for i in 0..300 {
        create_container(&d, container(&format!("c{i:03}")));
    }
    d.stop();
    let db = d.root().join("meta.db");
    let (page_size, root_page): (u64, u64) = {
        let c = rusqlite::Connection::open(&db).expect("open meta.db");
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        let page_size = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'containers'",
                [],
                |r| r.get(0),
            )
            .expect("containers' root page");
        (page_size, root)
    };
    assert!(root_page > 1, "a table's root is not the header page");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open for damage");
        f.seek(SeekFrom::Start((root_page - 1) * page_size))
            .expect("seek");
        f.write_all(&vec![0xa5; page_size as usize])
            .expect("garbage");
        f.sync_all().expect("sync");
    }
    let damaged = file_hash(&db);
    let stderr = refused_start(&d, &[]);
    let db_name = db.display().to_string();
    assert!(stderr.contains(&db_name), "names the file: {stderr}");
    assert!(stderr.contains("quick_check"), "says what failed: {stderr}");
    assert!(
        stderr.contains(".recover") && stderr.contains("--reset-store"),
        "a recovery hint: {stderr}"
    );
    assert_eq!(
        file_hash(&db),
        damaged,
        "a refused start leaves the file as it was"
    );

    // Starting over sets the damaged file aside instead of deleting it.
    d.restart_with(&["--reset-store"]);
    assert_eq!(
        d.rpc_ok("containers.list", json!({}))["containers"],
        json!([])
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(d.root())
        .expect("root")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("meta.db.reset-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(file_hash(&aside[0]), damaged, "kept byte for byte");
}

/// flock(2) on `path`, non-blocking: whether someone holds it.
fn held(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor we own; no memory is passed.
    let taken = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    taken != 0
}

#[test]
fn a_second_berthd_on_the_same_state_dir_is_refused_at_once_and_the_first_keeps_its_task() {
    let d = TestDaemon::start();
    let rootfs = Rootfs::new();
    let id = unique_id("long");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &rootfs.arg(), &id, "sleep", "1000"],
        b"",
    );
    assert!(out.status.success(), "run -d: {out:?}");
    let task = d.rpc_ok("tasks.get", json!({"container_id": id}));
    assert_eq!(task["process"]["status"], "running", "{task}");
    let pid = task["process"]["pid"].as_u64().expect("pid");
    let keeper = d.keeper_pid().expect("a keeper");

    let other = d.dir().join("other");
    let started = Instant::now();
    let out = output_within(
        Command::new(TestDaemon::binary())
            .arg("--root")
            .arg(other.join("root"))
            .arg("--state")
            .arg(d.state())
            .arg("--socket")
            .arg(other.join("s.sock")),
        b"",
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused; stderr:\n{stderr}");
    assert!(
        stderr.contains(&d.state().display().to_string()) && stderr.contains("--state"),
        "names the state dir and what to do: {stderr}"
    );
    assert!(
        took < Duration::from_secs(1),
        "refused at once, not after {took:?}"
    );
    assert!(
        !other.join("root/meta.db").exists() && !other.join("s.sock").exists(),
        "refused before opening a store or a socket"
    );
    assert_eq!(d.keeper_pid(), Some(keeper), "the same keeper");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the task lives"
    );
    let task = d.rpc_ok("tasks.get", json!({"container_id": id}));
    assert_eq!(task["process"]["status"], "running", "{task}");
    assert_eq!(task["process"]["pid"].as_u64(), Some(pid), "{task}");
    d.rpc_ok("tasks.kill", json!({"container_id": id, "signal": 9}));
    let waited = d.rpc_ok("tasks.wait", json!({"container_id": id}));
    assert_eq!(waited["exit_status"], 137, "{waited}");
}

#[test]
fn a_restart_right_after_kill9_waits_for_the_dead_daemons_lock() {
    let mut d = TestDaemon::start();
    create_container(&d, container("before"));
    for round in 0..8 {
        d.kill9_and_restart_at_once();
        let v = d.rpc("system.version", json!({}));
        assert!(
            v.is_ok(),
            "round {round}: the restarted berthd serves ({v:?}); stderr:\n{}",
            d.stderr()
        );
    }
    assert!(!d.stderr().contains("already running"), "{}", d.stderr());

    // The same moment made deterministic: the lock still held, as a dying daemon's
    // descriptor holds it, by a pid that is gone. berthd waits instead of refusing.
    d.kill9();
    let lock_path = d.root().join("berthd.lock");
    let lock = std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .expect("the root's lock file");
    // SAFETY: flock(2) on a descriptor we own; no memory is passed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let log = d.dir().join("berthd.log");
    let waiting_before = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("waiting for it")
        .count();
    std::thread::scope(|s| {
        let restarted = s.spawn(|| d.restart());
        eventually("berthd to wait for the lock", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("waiting for it")
                .count()
                > waiting_before
        });
        drop(lock);
        restarted
            .join()
            .expect("berthd started once the lock was free");
    });
    assert!(held(&lock_path), "the new berthd holds the lock");
    assert_eq!(
        d.rpc_ok("containers.get", json!({"id": "before"}))["container"]["id"],
        "before"
    );
}
