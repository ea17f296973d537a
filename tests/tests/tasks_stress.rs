//! Many tasks: 50 concurrent `berth run --rm`, and 500 short-lived tasks after which
//! berthd has no zombies and no more open fds than before.

mod tasks_support;

use std::time::{Duration, Instant};

use berth_tests::{unique_id, TestDaemon};
use serde_json::json;
use tasks_support::{assert_clean, berth_out, children, stdout, Rootfs};

#[test]
fn fifty_concurrent_runs_with_rm_all_succeed_and_leave_nothing() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let ids: Vec<String> = (0..50).map(|_| unique_id("many")).collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = ids
            .iter()
            .map(|id| {
                let (d, r) = (&d, rootfs.arg());
                s.spawn(move || berth_out(d, &["run", "--rm", "--rootfs", &r, id, "echo", id], b""))
            })
            .collect();
        for (run, id) in runs.into_iter().zip(&ids) {
            let out = run.join().expect("thread");
            assert_eq!(out.status.code(), Some(0), "{id}: {out:?}");
            assert_eq!(stdout(&out), format!("{id}\n"));
        }
    });
    let left = d.rpc_ok("containers.list", json!({}));
    assert_eq!(left["containers"].as_array().map(Vec::len), Some(0));
    assert_clean(&d, &ids);
}

#[test]
fn five_hundred_short_lived_tasks_leave_no_zombies_and_no_fds() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let warm = unique_id("warm");
    let out = berth_out(
        &d,
        &["run", "--rm", "--rootfs", &rootfs.arg(), &warm, "true"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let before = task_fds(d.pid());
    let mut ids = Vec::new();
    // 4 at a time to keep the machine usable; statuses alternate to exercise both paths.
    for batch in 0..125 {
        let batch_ids: Vec<String> = (0..4).map(|_| unique_id("short")).collect();
        std::thread::scope(|s| {
            for (i, id) in batch_ids.iter().enumerate() {
                let (d, r) = (&d, rootfs.arg());
                let code = (batch * 4 + i) % 3;
                s.spawn(move || {
                    let script = format!("exit {code}");
                    let out = berth_out(
                        d,
                        &["run", "--rm", "--rootfs", &r, id, "sh", "-c", &script],
                        b"",
                    );
                    assert_eq!(out.status.code(), Some(code as i32), "{id}: {out:?}");
                });
            }
        });
        ids.extend(batch_ids);
    }
    // Reaping is asynchronous (an exit is acked after it is stored), so it is polled
    // against a deadline rather than looked at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let zombies: Vec<_> = children(d.pid())
            .into_iter()
            .filter(|(_, s)| *s == 'Z')
            .collect();
        let after = task_fds(d.pid());
        if zombies.is_empty() && after.len() <= before.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s: zombies {zombies:?}; berthd's descriptors other than the store's \
             were {before:?}, now {after:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ids.push(warm);
    assert_clean(&d, &ids);
}

/// What `pid`'s descriptors point at, but the metadata store's files: each thread that
/// reads the store opens its own connection (the database and its WAL) the first time it
/// does, which says nothing about tasks, and when that happens depends on scheduling.
fn task_fds(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| !t.contains("/meta.db"))
        .collect();
    out.sort();
    out
}
