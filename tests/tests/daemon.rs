//! berthd as a process: the root lock, clean shutdown on signals, persistence across a
//! restart and across `kill -9` in the middle of concurrent writes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use berth_tests::{container, Ndjson, TestDaemon};
use serde_json::{json, Value};

/// Every stored event, paging through `events.list` with `since`.
fn all_events(d: &TestDaemon) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    loop {
        let since = events.last().map_or(0, |e| e["seq"].as_u64().expect("seq"));
        let reply = d.rpc_ok("events.list", json!({"since": since, "limit": 500}));
        let page = reply["events"].as_array().expect("events array").clone();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

#[test]
fn second_daemon_on_the_same_root_is_refused() {
    let d = TestDaemon::start();
    let (status, stderr) = d.run_second_daemon();
    assert!(
        !status.success(),
        "second berthd must fail; stderr:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("lock") || stderr.contains(&d.root().display().to_string()),
        "says the root is locked: {stderr}"
    );
    d.rpc_ok("system.version", json!({}));
}

/// Runs a berthd on its own root and state with `--socket socket`; bounded.
fn berthd_on_socket(dir: &std::path::Path, socket: &std::path::Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(TestDaemon::binary());
    cmd.arg("--root")
        .arg(dir.join("root"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(socket);
    let out = berth_tests::process::output_within(&mut cmd, b"", Duration::from_secs(30));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_socket_path_holding_a_live_daemon_a_file_or_a_directory_is_refused_and_kept() {
    let d = TestDaemon::start();
    let other = tempfile::Builder::new()
        .prefix("berth-")
        .tempdir_in("/tmp")
        .expect("dir");
    // Another root, the live daemon's socket: refused, and the first daemon keeps serving.
    let (ok, stderr) = berthd_on_socket(other.path(), d.socket());
    assert!(!ok, "took over a live socket: {stderr}");
    assert!(stderr.contains("another daemon answers"), "{stderr}");
    d.rpc_ok("system.version", json!({}));
    let file = other.path().join("notes.txt");
    std::fs::write(&file, "keep me").expect("write");
    let (ok, stderr) = berthd_on_socket(other.path(), &file);
    assert!(!ok && stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");
    let dir = other.path().join("a-dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let (ok, stderr) = berthd_on_socket(other.path(), &dir);
    assert!(!ok && stderr.contains("is not a socket"), "{stderr}");
    assert!(dir.is_dir(), "the directory is kept");
}

#[test]
fn an_existing_root_is_narrowed_to_root_only() {
    // Issue 30: what lies under the root (layers with setuid binaries, the database) is
    // root's alone, so a root berth uses is 0700 whatever mode it had (a root that held
    // other files before berth used it keeps its mode: layout's unit tests).
    use std::os::unix::fs::PermissionsExt;
    let mut d = TestDaemon::start();
    d.stop();
    std::fs::set_permissions(d.root(), std::fs::Permissions::from_mode(0o750)).expect("chmod");
    d.restart();
    let mode = std::fs::metadata(d.root())
        .expect("root")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700, "{}", d.stderr());
}

#[test]
fn sigterm_removes_the_socket_and_exits_zero() {
    let mut d = TestDaemon::start();
    d.rpc_ok(
        "containers.create",
        json!({"container": container("before-stop")}),
    );
    let status = d.stop();
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        d.stderr()
    );
    assert!(
        !d.socket().exists(),
        "socket {} left behind",
        d.socket().display()
    );
}

#[test]
fn sigint_also_stops_cleanly() {
    let mut d = TestDaemon::start();
    let status = d.stop_with(libc::SIGINT);
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        d.stderr()
    );
    assert!(
        !d.socket().exists(),
        "socket {} left behind",
        d.socket().display()
    );
}

#[test]
fn sigterm_exits_promptly_after_a_subscriber_disconnected() {
    let mut d = TestDaemon::start();
    {
        let mut conn = d.ndjson();
        conn.call("events.subscribe", json!({})).expect("subscribe");
        d.rpc_ok("containers.create", json!({"container": container("seen")}));
        conn.next_notification("events.event", Duration::from_secs(10))
            .expect("an event");
    }
    let started = Instant::now();
    assert!(d.stop().success(), "stderr:\n{}", d.stderr());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a closed subscriber held up shutdown for {took:?}; stderr:\n{}",
        d.stderr()
    );
}

#[test]
fn sigterm_does_not_wait_for_idle_connections() {
    let mut d = TestDaemon::start();
    let mut idle = d.ndjson();
    idle.call("system.version", json!({})).expect("served");
    let started = Instant::now();
    assert!(d.stop().success(), "stderr:\n{}", d.stderr());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "an idle connection held up shutdown for {took:?}"
    );
    drop(idle);
}

#[test]
fn data_survives_a_restart() {
    let mut d = TestDaemon::start();
    let mut c = container("keeper");
    c["labels"] = json!({"k": "v"});
    let created = d.rpc_ok("containers.create", json!({"container": c}))["container"].clone();
    d.rpc_ok(
        "namespaces.create",
        json!({"name": "kept", "labels": {"x": "y"}}),
    );
    let events_before = all_events(&d);
    assert!(d.stop().success());

    d.restart();
    let got = d.rpc_ok("containers.get", json!({"id": "keeper"}))["container"].clone();
    assert_eq!(got, created);
    let spaces = d.rpc_ok("namespaces.list", json!({}));
    assert!(
        spaces["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .any(|n| n["name"] == json!("kept")),
        "{spaces}"
    );
    assert_eq!(all_events(&d), events_before, "the event log survives");

    let last = events_before.last().expect("events before the restart")["seq"].as_u64();
    d.rpc_ok(
        "containers.create",
        json!({"container": container("after")}),
    );
    let newest = all_events(&d).last().expect("an event")["seq"].as_u64();
    assert!(
        newest > last,
        "seq continues after a restart: {last:?} -> {newest:?}"
    );
}

#[test]
fn kill9_during_concurrent_creates_keeps_every_acknowledged_container() {
    let mut d = TestDaemon::start();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let socket = d.socket().to_path_buf();
    let writers: Vec<_> = (0..6)
        .map(|t| {
            let (acked, socket) = (Arc::clone(&acked), socket.clone());
            thread::spawn(move || {
                let Ok(mut conn) = Ndjson::connect(&socket) else {
                    return;
                };
                for n in 0.. {
                    let id = format!("w{t}-{n}");
                    let params = json!({"container": container(&id)});
                    match conn.try_call("containers.create", params) {
                        Ok(Ok(_)) => acked.lock().expect("acked list").push(id),
                        Ok(Err(e)) => panic!("create {id} refused while the daemon ran: {e}"),
                        Err(_) => return, // the daemon died under us
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("acked list").len() < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = acked.lock().expect("acked list").clone();
    assert!(
        acked.len() >= 200,
        "burst too small to mean anything: {}",
        acked.len()
    );

    d.restart();
    let mut stored = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = json!({"limit": 200});
        if let Some(a) = &after {
            params["after"] = json!(a);
        }
        let page = d.rpc_ok("containers.list", params);
        for c in page["containers"].as_array().expect("containers") {
            stored.insert(c["id"].as_str().expect("id").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );

    let events = all_events(&d);
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs.first(), Some(&1), "the log starts at seq 1");
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "no gap or repeat in the event log: {seqs:?}"
        );
    }
    let created: BTreeSet<String> = events
        .iter()
        .filter(|e| e["topic"] == json!("/containers/create"))
        .map(|e| e["event"]["id"].as_str().expect("event id").to_owned())
        .collect();
    assert_eq!(
        created, stored,
        "one create event per stored container, and no other"
    );

    d.rpc_ok(
        "containers.create",
        json!({"container": container("after-crash")}),
    );
    let newest = all_events(&d).last().expect("an event")["seq"].as_u64();
    assert_eq!(
        newest,
        seqs.last().map(|s| s + 1),
        "seq continues after the crash"
    );
}

#[test]
fn system_info_reports_paths_and_counts() {
    let d = TestDaemon::start();
    for id in ["one", "two"] {
        d.rpc_ok("containers.create", json!({"container": container(id)}));
    }
    let info = d.rpc_ok("system.info", json!({}));
    let path = |p: &std::path::Path| json!(p.display().to_string());
    assert_eq!(info["root"], path(d.root()), "{info}");
    assert_eq!(info["state"], path(d.state()), "{info}");
    assert_eq!(info["socket"], path(d.socket()), "{info}");
    assert!(info["snapshotters"].is_array(), "{info}");
    assert_eq!(info["counts"]["containers"], json!(2), "{info}");
    assert!(
        info["counts"]["events"].as_u64().is_some_and(|n| n >= 2),
        "{info}"
    );
    assert!(
        info["counts"]["namespaces"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{info}"
    );
}

#[test]
fn berthd_logs_one_line_per_lifecycle_event_without_labels_or_specs() {
    let d = TestDaemon::start();
    let mut container = berth_tests::container("logged");
    container["labels"] = serde_json::json!({"secret": "hunter2"});
    d.rpc_ok(
        "containers.create",
        serde_json::json!({ "container": container }),
    );
    d.rpc_ok("containers.delete", serde_json::json!({ "id": "logged" }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = d.stderr();
        if log.contains("/containers/delete") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for topic in ["/containers/create", "/containers/delete"] {
        let line = log
            .lines()
            .find(|l| l.contains(topic))
            .unwrap_or_else(|| panic!("no {topic} line in:\n{log}"));
        assert!(
            line.contains("id=logged") && line.contains("namespace=default"),
            "{line}"
        );
    }
    assert!(
        !log.contains("hunter2"),
        "a label value reached the log:\n{log}"
    );
    assert!(!log.contains("ociVersion"), "a spec reached the log");
}

/// Whether a `berth-keeper` (or `berthd keeper`) for `state` is running.
fn keeper_running(state: &std::path::Path) -> bool {
    let want = state.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .any(|c| c.contains("keeper") && c.contains("--state") && c.contains(&want))
}

fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// An idle keeper removes its socket before it lets go of its lock. A berthd restarted in
/// that moment (an operator's quick `systemctl restart`) starts a keeper that finds the lock
/// held: it waits for it instead of failing berthd's start-up.
#[test]
fn a_restart_while_the_old_keeper_is_exiting_waits_for_its_lock() {
    use std::os::fd::AsRawFd;
    let mut d = TestDaemon::start();
    d.stop();
    let state = d.state().to_owned();
    until("the idle keeper to exit", Duration::from_secs(20), || {
        !keeper_running(&state)
    });
    assert!(!state.join("keeper.sock").exists());
    // Hold the lock as the exiting keeper did, its socket already gone.
    let lock = std::fs::File::options()
        .write(true)
        .open(state.join("keeper/lock"))
        .expect("the keeper's lock file");
    // SAFETY: flock(2) on a descriptor we own; no memory is passed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    thread::scope(|s| {
        let restarted = s.spawn(|| d.restart());
        // The new keeper is up and, the lock being held, waiting for it.
        until("berthd to start a keeper", Duration::from_secs(10), || {
            keeper_running(&state)
        });
        drop(lock);
        restarted
            .join()
            .expect("berthd started once the lock was free");
    });
    d.rpc_ok(
        "containers.create",
        json!({"container": container("after")}),
    );
    assert!(keeper_running(&state), "the new keeper serves");
}

/// A SIGTERM while berthd is still starting (its root locked, recovery under way, the
/// socket perhaps not yet served) is kept and stops it cleanly once it serves: exit 0 and
/// no socket left, never a death by the signal's default action (as a service manager's
/// quick stop-after-start would cause).
#[test]
fn a_sigterm_during_start_up_stops_berthd_cleanly() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;
    let mut d = TestDaemon::start();
    d.stop();
    for round in 0..5 {
        let mut child = d
            .command()
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("berthd");
        // Its root's lock held: berthd is inside its start-up.
        let lock = std::fs::File::open(d.root().join("berthd.lock"));
        until("berthd to lock its root", Duration::from_secs(20), || {
            lock.as_ref().is_ok_and(|f| {
                // SAFETY: flock(2) on a descriptor we own; no memory is passed.
                let taken = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if taken == 0 {
                    // SAFETY: as above; gives back what we just took.
                    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
                }
                taken != 0
            })
        });
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = berth_tests::process::wait_within(&mut child, Duration::from_secs(30))
            .expect("berthd exits");
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "round {round}: a clean exit, not killed by SIGTERM"
        );
        assert!(!d.socket().exists(), "round {round}: its socket is removed");
    }
    d.restart();
    d.rpc_ok("system.version", json!({}));
}
