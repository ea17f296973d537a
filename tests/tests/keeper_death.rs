//! The keeper's death while berthd runs (issue 31, item 3): its tasks are re-parented to
//! berthd, which records their real exit statuses; a successor keeper is started at once
//! and holds the tasks' output pipes, so their logs go on, across a berthd restart too.
//! Every test drives the real berthd, keeper and runc.

mod tasks_support;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, Cleanup, Rootfs};

const LIMIT: Duration = Duration::from_secs(20);

/// `berth run -d [FLAGS] --rootfs R ID ARGS...`, asserted to succeed.
fn run_d(d: &TestDaemon, rootfs: &Rootfs, flags: &[&str], id: &str, args: &[&str]) {
    let r = rootfs.arg();
    let mut argv = vec!["run", "-d"];
    argv.extend_from_slice(flags);
    argv.extend(["--rootfs", r.as_str(), id]);
    argv.extend_from_slice(args);
    let out = berth_out(d, &argv, b"");
    assert!(out.status.success(), "run {id}: {out:?}");
}

fn wait(d: &TestDaemon, id: &str) -> Value {
    d.rpc_ok("tasks.wait", json!({"container_id": id}))
}

fn kill(d: &TestDaemon, id: &str, signal: i32) {
    d.rpc_ok("tasks.kill", json!({"container_id": id, "signal": signal}));
}

/// Polls until `cond` holds, failing the test at the deadline.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host directory bind-mounted at /data, where the test drops `go` to let a task go on.
fn gate() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-gate-")
        .tempdir_in("/tmp")
        .expect("gate dir")
}

/// Waits for the keeper berthd runs now, other than `old`, with no call to berthd.
fn successor(d: &TestDaemon, old: i32) -> i32 {
    let t0 = Instant::now();
    let mut new = None;
    until("a new keeper starts by itself", || {
        new = d.keeper_pid().filter(|p| *p != old);
        new.is_some()
    });
    eprintln!(
        "a new keeper runs {:?} after the old one died",
        t0.elapsed()
    );
    new.expect("a keeper")
}

/// The counter values in the task's log, in order, asserted to be 0, 1, 2, ... with no
/// gap and no repeat; the last one.
fn counter(d: &TestDaemon, id: &str) -> u64 {
    let log = d.rpc_ok("containers.logs", json!({"id": id}));
    let values: Vec<u64> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            e["text"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("a counter line: {e}"))
        })
        .collect();
    let want: Vec<u64> = (0..values.len() as u64).collect();
    assert_eq!(values, want, "the log has a gap or a repeat");
    values.last().copied().unwrap_or(0)
}

/// Waits until the counter in the log is past `n` (checking it is gap-free each time).
fn counter_past(d: &TestDaemon, id: &str, n: u64) -> u64 {
    let mut last = 0;
    until(&format!("the log's counter passes {n}"), || {
        last = counter(d, id);
        last > n
    });
    last
}

const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done";

/// The scenario: the keeper is killed while three tasks run; they then exit 13,
/// are killed (137) and exit 42 from a trap on SIGTERM, and berthd records exactly that.
#[test]
fn tasks_of_a_killed_keeper_report_their_real_exit_statuses() {
    let (d, rootfs, gate) = (TestDaemon::start(), Rootfs::new(), gate());
    let (exits, killed, trapped) = (unique_id("k13"), unique_id("k137"), unique_id("k42"));
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![exits.clone(), killed.clone(), trapped.clone()],
    };
    let volume = format!("{}:/data", gate.path().display());
    let gated = "while [ ! -e /data/go ]; do sleep 0.05; done; exit 13";
    run_d(&d, &rootfs, &["-v", &volume], &exits, &["sh", "-c", gated]);
    run_d(&d, &rootfs, &[], &killed, &["sleep", "1000"]);
    let trap = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done";
    run_d(&d, &rootfs, &[], &trapped, &["sh", "-c", trap]);
    until("the trap is set", || {
        let log = d.rpc_ok("containers.logs", json!({"id": trapped}));
        log["entries"][0]["text"] == "ready"
    });
    // A detached exec process, which the keeper parented as it did the inits.
    let exec = json!({"container_id": killed, "exec_id": "x7",
        "process": {"args": ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7"],
                    "cwd": "/", "env": ["PATH=/bin"]}});
    d.rpc_ok("tasks.exec", exec);
    d.rpc_ok(
        "tasks.start",
        json!({"container_id": killed, "exec_id": "x7"}),
    );
    let old = d.keeper_pid().expect("a keeper");
    d.kill_keeper();
    successor(&d, old);
    // The exec's /tmp is the rootfs directory's (no snapshot under --rootfs).
    std::fs::write(rootfs.path().join("tmp/go"), "").expect("let the exec end");
    let x7 = d.rpc_ok(
        "tasks.wait",
        json!({"container_id": killed, "exec_id": "x7"}),
    );
    assert_eq!(
        (&x7["exit_status"], &x7["exit_reason"]),
        (&json!(7), &json!("exited")),
        "{x7}"
    );
    std::fs::write(gate.path().join("go"), "").expect("open the gate");
    kill(&d, &killed, libc::SIGKILL);
    kill(&d, &trapped, libc::SIGTERM);
    let got: Vec<(Value, Value)> = [&exits, &killed, &trapped]
        .iter()
        .map(|id| {
            let w = wait(&d, id);
            (w["exit_status"].clone(), w["exit_reason"].clone())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(13), json!("exited")),
            (json!(137), json!("signaled")),
            (json!(42), json!("exited")),
        ]
    );
    // What SQLite keeps and the events say the same, not 255.
    let p = d.rpc_ok("tasks.get", json!({"container_id": killed}))["process"].clone();
    assert_eq!(
        (&p["status"], &p["exit_status"]),
        (&json!("stopped"), &json!(137))
    );
    let events = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/tasks/exit\""]}),
    );
    let statuses: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["event"]["exit_status"])
        .collect();
    assert_eq!(statuses.len(), 4, "the inits' and the exec's: {events}");
    assert!(!statuses.contains(&&json!(255)), "{events}");
    for id in [&exits, &killed, &trapped] {
        d.rpc_ok("tasks.delete", json!({"container_id": id}));
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
    assert_clean(&d, &[exits, killed, trapped]);
}

/// A logged task printing a counter every 100 ms keeps logging, with no gap, after the
/// keeper is killed and after berthd is then killed and restarted: the successor keeper
/// holds the pipe's read end, so the task never gets EPIPE and `berth ps` tells the truth.
#[test]
fn a_logged_task_keeps_logging_after_the_keeper_is_killed_and_berthd_restarts() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("count");
    run_d(&d, &rootfs, &[], &id, &["sh", "-c", COUNTER]);
    let before = counter_past(&d, &id, 5);
    let pid = d.rpc_ok("tasks.get", json!({"container_id": id}))["process"]["pid"]
        .as_i64()
        .expect("pid") as i32;
    let old = d.keeper_pid().expect("a keeper");
    d.kill_keeper();
    successor(&d, old);
    let after_kill = counter_past(&d, &id, before + 20);
    d.kill9();
    // A window in which the task writes while no berthd runs and only the new keeper
    // holds the pipe's read end (what it wrote then must reach the log too).
    std::thread::sleep(Duration::from_millis(500));
    d.restart();
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    counter_past(&d, &id, after_kill + 20);
    let ps = berth_out(&d, &["ps"], b"");
    let line = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .find(|l| l.contains(&id))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("Up"), "berth ps: {line:?}");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the task still runs"
    );
    // Its orphans went with the berthd that was killed: this status is beyond anyone's
    // reach, and said so.
    kill(&d, &id, libc::SIGKILL);
    let w = wait(&d, &id);
    assert_eq!(
        (&w["exit_status"], &w["exit_reason"]),
        (&json!(255), &json!("lost")),
        "{w}"
    );
    let last = counter(&d, &id);
    assert!(last > after_kill + 20, "{last}");
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}
