//! Tasks that outlive berthd: kill -9 of berthd while tasks run, exit, are created, started
//! or deleted; the keeper's own death; a host restart (state dir wiped); a reused pid; a
//! runc that hangs. Every test drives the real berthd, keeper and runc.

mod tasks_support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_tests::clients::RecvError;
use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, Cleanup, Rootfs};

const LIMIT: Duration = Duration::from_secs(20);

/// `berth run -d --rootfs R [--runtime RT] ID ARGS...`, asserted to succeed.
fn run_d(d: &TestDaemon, rootfs: &Rootfs, runtime: Option<&str>, id: &str, args: &[&str]) {
    let r = rootfs.arg();
    let mut argv = vec!["run", "-d", "--rootfs", r.as_str()];
    if let Some(rt) = runtime {
        argv.extend(["--runtime", rt]);
    }
    argv.push(id);
    argv.extend_from_slice(args);
    let out = berth_out(d, &argv, b"");
    assert!(out.status.success(), "run {id}: {out:?}");
}

fn process(d: &TestDaemon, id: &str, exec_id: &str) -> Value {
    d.rpc_ok("tasks.get", json!({"container_id": id, "exec_id": exec_id}))["process"].clone()
}

fn wait(d: &TestDaemon, id: &str, exec_id: &str) -> Value {
    d.rpc_ok(
        "tasks.wait",
        json!({"container_id": id, "exec_id": exec_id}),
    )
}

fn pid_of(d: &TestDaemon, id: &str) -> i32 {
    process(d, id, "")["pid"].as_i64().expect("pid") as i32
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false)
}

/// Polls until `cond` holds, failing the test at the deadline.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn time_of(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Opens the write end of a FIFO whose reader (the container) is open.
fn fifo_writer(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open FIFO for writing")
}

/// Reads `fifo` (opened non-blocking) until its text contains `want`.
fn read_until(fifo: &mut std::fs::File, seen: &mut String, want: &str) {
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(Instant::now() < deadline, "{want:?} not seen; got {seen:?}");
        match fifo.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The scenario: kill -9 of berthd while 10 tasks run and 5 more exit while it is
/// down; then everything works on the re-adopted tasks and every status is the real one.
#[test]
fn tasks_outlive_a_berthd_crash_with_their_real_exit_statuses() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let runners: Vec<String> = (0..10).map(|i| unique_id(&format!("run{i}"))).collect();
    let leavers: Vec<String> = (0..5).map(|i| unique_id(&format!("exit{i}"))).collect();
    let (late, tty, cat) = (unique_id("late"), unique_id("tty"), unique_id("cat"));
    let mut all: Vec<String> = runners.iter().chain(&leavers).cloned().collect();
    all.extend([late.clone(), tty.clone(), cat.clone()]);
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    let fifos = tempfile::tempdir().expect("fifo dir");
    let trap = "trap 'exit 42' TERM; while true; do sleep 0.05; done";
    for id in &runners {
        run_d(&d, &rootfs, None, id, &["sh", "-c", trap]);
    }
    for (i, id) in leavers.iter().enumerate() {
        let script = format!(
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit {}",
            11 + i
        );
        run_d(&d, &rootfs, None, id, &["sh", "-c", &script]);
    }
    // A task created before the crash and started after it.
    run_d(&d, &rootfs, None, &late, &["sh", "-c", "exit 7"]);
    assert_eq!(wait(&d, &late, "")["exit_status"], 7);
    d.rpc_ok("tasks.delete", json!({"container_id": late}));
    d.rpc_ok("tasks.create", json!({"container_id": late}));
    // A terminal task whose client keeps its FIFOs across the crash.
    let r = rootfs.arg();
    let out = berth_out(&d, &["run", "-d", "-t", "--rootfs", &r, &tty, "cat"], b"");
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok("tasks.delete", json!({"container_id": tty, "force": true}));
    let (tin, tout) = (fifos.path().join("tty-in"), fifos.path().join("tty-out"));
    mkfifo(&tin);
    mkfifo(&tout);
    let mut tty_out = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&tout)
        .expect("tty out");
    let tp = json!({"container_id": tty, "terminal": true, "stdin": tin, "stdout": tout});
    d.rpc_ok("tasks.create", tp);
    let mut tty_in = fifo_writer(&tin);
    d.rpc_ok("tasks.start", json!({"container_id": tty}));
    let mut seen = String::new();
    tty_in.write_all(b"before\n").expect("write");
    read_until(&mut tty_out, &mut seen, "before");
    // A non-terminal task whose stdin FIFO nobody holds open across the crash.
    let (cin, cout) = (fifos.path().join("cat-in"), fifos.path().join("cat.out"));
    mkfifo(&cin);
    run_d(&d, &rootfs, None, &cat, &["cat"]);
    wait(&d, &cat, "");
    d.rpc_ok("tasks.delete", json!({"container_id": cat}));
    d.rpc_ok(
        "tasks.create",
        json!({"container_id": cat, "stdin": cin, "stdout": cout}),
    );
    d.rpc_ok("tasks.start", json!({"container_id": cat}));
    let exec = json!({"container_id": runners[0], "exec_id": "across",
        "process": {"args": ["sh", "-c", "while [ ! -e /tmp/go2 ]; do sleep 0.05; done; exit 9"],
                    "cwd": "/", "env": ["PATH=/bin"]}});
    d.rpc_ok("tasks.exec", exec);
    d.rpc_ok(
        "tasks.start",
        json!({"container_id": runners[0], "exec_id": "across"}),
    );
    let pids: Vec<i32> = runners.iter().map(|id| pid_of(&d, id)).collect();
    let leaver_pids: Vec<i32> = leavers.iter().map(|id| pid_of(&d, id)).collect();

    d.kill9();
    std::fs::write(rootfs.path().join("tmp/go"), b"").expect("go");
    until("the five leavers exit while berthd is down", || {
        leaver_pids.iter().all(|p| !alive(*p))
    });
    let before_restart = SystemTime::now();
    d.restart();

    for (i, id) in leavers.iter().enumerate() {
        let p = process(&d, id, "");
        assert_eq!(
            (&p["status"], &p["exit_status"], &p["exit_reason"]),
            (&json!("stopped"), &json!(11 + i), &json!("exited")),
            "{id}"
        );
        assert!(
            time_of(&p["exited_at"]) <= before_restart,
            "real exit time: {p}"
        );
    }
    for (id, pid) in runners.iter().zip(&pids) {
        let p = process(&d, id, "");
        assert_eq!(
            (&p["status"], p["pid"].as_i64()),
            (&json!("running"), Some(i64::from(*pid)))
        );
    }
    // Signals, waits, exec, pids and pause/resume work on re-adopted tasks.
    d.rpc_ok(
        "tasks.kill",
        json!({"container_id": runners[1], "signal": "SIGKILL"}),
    );
    assert_eq!(wait(&d, &runners[1], "")["exit_status"], 137);
    assert_eq!(wait(&d, &runners[1], "")["exit_reason"], "signaled");
    d.rpc_ok(
        "tasks.kill",
        json!({"container_id": runners[2], "signal": "SIGTERM"}),
    );
    assert_eq!(wait(&d, &runners[2], "")["exit_status"], 42);
    d.rpc_ok("tasks.pause", json!({"container_id": runners[3]}));
    assert_eq!(process(&d, &runners[3], "")["status"], "paused");
    d.rpc_ok("tasks.resume", json!({"container_id": runners[3]}));
    assert_eq!(process(&d, &runners[3], "")["status"], "running");
    let listed = d.rpc_ok("tasks.pids", json!({"container_id": runners[4]}));
    assert!(
        listed["processes"]
            .as_array()
            .expect("pids")
            .iter()
            .any(|p| p["pid"] == pids[4]),
        "{listed}"
    );
    let exec = json!({"container_id": runners[5], "exec_id": "after",
        "process": {"args": ["sh", "-c", "exit 5"], "cwd": "/", "env": ["PATH=/bin"]}});
    d.rpc_ok("tasks.exec", exec);
    d.rpc_ok(
        "tasks.start",
        json!({"container_id": runners[5], "exec_id": "after"}),
    );
    assert_eq!(wait(&d, &runners[5], "after")["exit_status"], 5);
    std::fs::write(rootfs.path().join("tmp/go2"), b"").expect("go2");
    assert_eq!(wait(&d, &runners[0], "across")["exit_status"], 9);
    d.rpc_ok("tasks.start", json!({"container_id": late}));
    assert_eq!(wait(&d, &late, "")["exit_status"], 7);
    // The terminal still echoes, through the master the keeper kept.
    tty_in.write_all(b"after\n").expect("write");
    read_until(&mut tty_out, &mut seen, "after");
    d.rpc_ok(
        "tasks.resize_pty",
        json!({"container_id": tty, "width": 100, "height": 30}),
    );
    drop(tty_in);
    d.rpc_ok("tasks.close_io", json!({"container_id": tty}));
    assert_eq!(wait(&d, &tty, "")["exit_status"], 0);
    // stdin's writer was held by the keeper: `cat` saw no end of file when berthd died.
    fifo_writer(&cin).write_all(b"still here\n").expect("write");
    d.rpc_ok("tasks.close_io", json!({"container_id": &cat}));
    assert_eq!(wait(&d, &cat, "")["exit_status"], 0);
    assert_eq!(
        std::fs::read_to_string(&cout).expect("cat output"),
        "still here\n"
    );

    let events = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/tasks/exit\""]}),
    );
    let mut exits: Vec<String> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let ev = &e["event"];
            format!("{}/{}/{}", ev["container_id"], ev["id"], ev["pid"])
        })
        .collect();
    let count = exits.len();
    exits.sort();
    exits.dedup();
    assert_eq!(count, exits.len(), "no duplicate /tasks/exit events");
    for id in &all {
        d.rpc_ok("tasks.delete", json!({"container_id": id, "force": true}));
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
    assert_clean(&d, &all);
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

/// Only the keeper's own death may lose a status, and then it says so: a keeper started
/// by an earlier berthd (killed since) leaves its orphans to no berthd (the berthd that
/// started it reaps them, see keeper_death.rs).
#[test]
fn the_keepers_death_is_reported_as_a_lost_status_never_a_silent_255() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("lost");
    run_d(&d, &rootfs, None, &id, &["sleep", "1000"]);
    d.kill9();
    d.restart();
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    d.kill_keeper();
    // The task outlives its keeper (runc put it in a session of its own); when it ends,
    // nobody here can reap it and learn its status.
    d.rpc_ok("tasks.kill", json!({"container_id": id, "signal": 9}));
    let got = wait(&d, &id, "");
    assert_eq!(
        (&got["exit_status"], &got["exit_reason"]),
        (&json!(255), &json!("lost"))
    );
    let events = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/tasks/exit\""]}),
    );
    let ev = &events["events"][0]["event"];
    assert_eq!(ev["exit_reason"], "lost", "{events}");
    // A new keeper serves the next task.
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("tasks.create", json!({"container_id": id}));
    d.rpc_ok("tasks.start", json!({"container_id": id}));
    d.rpc_ok("tasks.kill", json!({"container_id": id, "signal": 9}));
    assert_eq!(wait(&d, &id, "")["exit_status"], 137);
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// Spawns `sleep` until one gets `pid` (through ns_last_pid); `None` after many tries.
fn spawn_with_pid(pid: i32) -> Option<std::process::Child> {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .ok()?;
        if child.id() as i32 == pid {
            return Some(child);
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// A task's pid taken by another process while berthd is down is neither adopted nor
/// signalled, and the task reports the exit the keeper saw.
#[test]
fn a_reused_pid_is_never_taken_for_the_task() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("reuse");
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    run_d(&d, &rootfs, None, &id, &["sleep", "1000"]);
    let pid = pid_of(&d, &id);
    d.kill9();
    // SAFETY: kill(2) with plain integers; `pid` is the container's init, still running.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    until("the task is reaped by the keeper", || {
        !alive(pid) && !Path::new(&format!("/proc/{pid}")).exists()
    });
    let mut impostor = spawn_with_pid(pid).expect("a process that reuses the task's pid");
    d.restart();
    let p = process(&d, &id, "");
    assert_eq!(
        (&p["status"], &p["exit_status"], &p["exit_reason"]),
        (&json!("stopped"), &json!(137), &json!("signaled")),
        "{p}"
    );
    let err = d
        .rpc("tasks.kill", json!({"container_id": id, "signal": 9}))
        .expect_err("the task has exited");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    assert!(alive(pid), "the impostor was not signalled");
    let _ = impostor.kill();
    let _ = impostor.wait();
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// With the state dir gone, as after a reboot, every task is stopped with reason
/// `host_restarted` and can be deleted, container and all.
#[test]
fn after_a_host_restart_every_task_is_stopped_and_deletable() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (running, created) = (unique_id("boot-run"), unique_id("boot-new"));
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    run_d(&d, &rootfs, None, &running, &["sleep", "1000"]);
    run_d(&d, &rootfs, None, &created, &["true"]);
    wait(&d, &created, "");
    d.rpc_ok("tasks.delete", json!({"container_id": created}));
    d.rpc_ok("tasks.create", json!({"container_id": created}));
    d.kill9();
    d.delete_runc_containers();
    d.kill_keeper();
    berth_tests::mounts::unmount_below(d.state());
    std::fs::remove_dir_all(d.state()).expect("wipe the state dir");
    d.restart();
    for id in [&running, &created] {
        let p = process(&d, id, "");
        assert_eq!(
            (&p["status"], &p["exit_status"], &p["exit_reason"]),
            (&json!("stopped"), &json!(255), &json!("host_restarted")),
            "{id}: {p}"
        );
        d.rpc_ok("tasks.delete", json!({"container_id": id}));
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
    assert_clean(&d, &[running, created]);
}

/// A runtime wrapper that runs the real runc, and for `verb` writes `mark` and then
/// sleeps `secs` (after runc for create, run and start, before it for delete, instead of
/// it for pause): the window in which the tests kill berthd or hit the deadline.
fn wrapper(dir: &Path, verb: &str, secs: u32) -> (PathBuf, PathBuf) {
    let mark = dir.join(format!("{verb}.mark"));
    let script = dir.join(format!("runc-{verb}"));
    let runc = which_runc();
    let body = format!(
        "#!/bin/sh\nfor a in \"$@\"; do v=\"$a\"; case \"$a\" in {verb}) break;; esac; done\n\
         if [ \"$v\" = {verb} ]; then\n\
           case {verb} in pause) touch {m}; exec sleep {secs};; esac\n\
           case {verb} in delete) touch {m}; sleep {secs}; exec {runc} \"$@\";; esac\n\
           {runc} \"$@\"; rc=$?; touch {m}; sleep {secs}; exit $rc\nfi\nexec {runc} \"$@\"\n",
        m = mark.display(),
        runc = runc.display(),
    );
    std::fs::write(&script, body).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, mark)
}

fn which_runc() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .expect("runc on PATH")
}

fn daemon_with_runtime(dir: &Path, verb: &str, secs: u32, extra: &str) -> (TestDaemon, PathBuf) {
    let (script, mark) = wrapper(dir, verb, secs);
    let config = format!(
        "{extra}\n[runtimes.wrapped]\npath = \"{}\"\n",
        script.display()
    );
    (TestDaemon::start_with(&config), mark)
}

/// `berth run -d` of a `sleep` on the wrapped runtime.
fn run_wrapped(rootfs: &Rootfs, id: &str) -> Vec<String> {
    let r = rootfs.arg();
    [
        "run",
        "-d",
        "--rootfs",
        &r,
        "--runtime",
        "wrapped",
        id,
        "sleep",
        "1000",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `berth ARGS`, kill -9s berthd once the runtime wrapper wrote `mark` (runc is inside
/// the verb under test), then restarts berthd.
fn crash_during<S: AsRef<std::ffi::OsStr>>(d: &mut TestDaemon, mark: &Path, args: &[S]) {
    let mut client = tasks_support::berth(d);
    client
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = client.spawn().expect("berth");
    until("the runtime wrapper reached its verb", || mark.exists());
    d.kill9();
    let _ = child.kill();
    let _ = child.wait();
    d.restart();
}

/// A container on the wrapped runtime without a task: `berth run -d` (one `runc run`,
/// which the wrappers of `create` and `start` pass through), its task deleted.
fn wrapped_container(d: &TestDaemon, rootfs: &Rootfs, id: &str) {
    let args = run_wrapped(rootfs, id);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = berth_out(d, &args, b"");
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok("tasks.delete", json!({"container_id": id, "force": true}));
}

/// `berth call METHOD PARAMS`: one raw call, for a crash in its middle.
fn call(method: &str, params: Value) -> Vec<String> {
    vec!["call".into(), method.into(), params.to_string()]
}

/// kill -9 of berthd while runc creates the task: start-up undoes the create (no runc
/// container, mount, cgroup or bundle is left) and the same id can be created again.
#[test]
fn a_create_cut_off_by_a_crash_is_undone_at_start_up() {
    let tools = tempfile::tempdir().expect("dir");
    let (mut d, mark) = daemon_with_runtime(tools.path(), "create", 2, "");
    let rootfs = Rootfs::new();
    let id = unique_id("cut-create");
    wrapped_container(&d, &rootfs, &id);
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    crash_during(
        &mut d,
        &mark,
        &call("tasks.create", json!({"container_id": id})),
    );
    let err = d
        .rpc("tasks.get", json!({"container_id": id}))
        .expect_err("undone");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    assert_clean(&d, std::slice::from_ref(&id));
    d.rpc_ok("tasks.create", json!({"container_id": id}));
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// kill -9 of berthd while `runc run --detach` of `tasks.create {start}` (what `berth run`
/// does) has started the init but the create has not answered: start-up undoes it, as any
/// unanswered create, killing the init; nothing is left and the id can run again.
#[test]
fn a_create_with_start_cut_off_by_a_crash_is_undone_and_its_init_killed() {
    let tools = tempfile::tempdir().expect("dir");
    let (mut d, mark) = daemon_with_runtime(tools.path(), "run", 3, "");
    let rootfs = Rootfs::new();
    let id = unique_id("cut-run");
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    crash_during(&mut d, &mark, &run_wrapped(&rootfs, &id));
    let err = d
        .rpc("tasks.get", json!({"container_id": id}))
        .expect_err("undone");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    assert_clean(&d, std::slice::from_ref(&id));
    let task = d.rpc_ok("tasks.create", json!({"container_id": id, "start": true}));
    assert!(
        task["pid"].as_i64().is_some_and(|p| alive(p as i32)),
        "{task}"
    );
    d.rpc_ok("tasks.delete", json!({"container_id": id, "force": true}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// kill -9 of berthd while `berth run --rm` (attached, and `-d`) is inside its
/// `tasks.create`: the intent to remove came with the create, so start-up removes the
/// container along with the undone task, and nothing is left.
#[test]
fn a_run_rm_cut_off_by_a_crash_leaves_no_container() {
    let tools = tempfile::tempdir().expect("dir");
    let (mut d, mark) = daemon_with_runtime(tools.path(), "run", 3, "");
    let rootfs = Rootfs::new();
    let r = rootfs.arg();
    let mut ids = Vec::new();
    for detach in [false, true] {
        let id = unique_id(if detach { "cut-rm-d" } else { "cut-rm" });
        let mut args = vec!["run", "--rm"];
        if detach {
            args.push("-d");
        }
        args.extend(["--rootfs", &r, "--runtime", "wrapped", &id, "sleep", "1000"]);
        let _ = std::fs::remove_file(&mark);
        // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
        crash_during(&mut d, &mark, &args);
        until("start-up removes the container", || {
            d.rpc("containers.get", json!({"id": id}))
                .is_err_and(|e| e["data"]["kind"] == "not_found")
        });
        let err = d
            .rpc("tasks.get", json!({"container_id": id}))
            .expect_err("undone");
        assert_eq!(err["data"]["kind"], "not_found", "{err}");
        ids.push(id);
    }
    assert_clean(&d, &ids);
}

/// kill -9 of berthd after runc started the task but before it was recorded: start-up
/// takes the status from runc, so the task is `running` and can be killed and waited for.
#[test]
fn a_start_cut_off_by_a_crash_takes_its_status_from_runc() {
    let tools = tempfile::tempdir().expect("dir");
    let (mut d, mark) = daemon_with_runtime(tools.path(), "start", 5, "");
    let rootfs = Rootfs::new();
    let id = unique_id("cut-start");
    wrapped_container(&d, &rootfs, &id);
    d.rpc_ok("tasks.create", json!({"container_id": id}));
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    crash_during(
        &mut d,
        &mark,
        &call("tasks.start", json!({"container_id": id})),
    );
    assert_eq!(process(&d, &id, "")["status"], "running");
    d.rpc_ok(
        "tasks.kill",
        json!({"container_id": id, "signal": "SIGKILL"}),
    );
    assert_eq!(wait(&d, &id, "")["exit_status"], 137);
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// kill -9 of berthd inside `tasks.delete`: start-up finishes the delete.
#[test]
fn a_delete_cut_off_by_a_crash_is_finished_at_start_up() {
    let tools = tempfile::tempdir().expect("dir");
    let (mut d, mark) = daemon_with_runtime(tools.path(), "delete", 5, "");
    let rootfs = Rootfs::new();
    let id = unique_id("cut-delete");
    // No Cleanup guard: the daemon restarts; TestDaemon's Drop removes what runc holds.
    run_d(&d, &rootfs, Some("wrapped"), &id, &["true"]);
    wait(&d, &id, "");
    crash_during(&mut d, &mark, &["t", "rm", &id]);
    let err = d
        .rpc("tasks.get", json!({"container_id": id}))
        .expect_err("deleted");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// `tasks.delete` answers before `runc delete` and the bundle are done (they run in the
/// background), the task is gone for clients from that answer on, and a create of the same
/// id waits for the teardown. A runtime wrapper holds `runc delete` at a barrier this test
/// opens, and marks when the real `runc delete` has finished.
#[test]
fn a_delete_answers_before_its_teardown_and_a_create_of_the_same_id_waits_for_it() {
    let tools = tempfile::tempdir().expect("dir");
    let (entered, release, done) = (
        tools.path().join("entered"),
        tools.path().join("release"),
        tools.path().join("done"),
    );
    let script = tools.path().join("runc-barrier");
    let body = format!(
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in delete) touch {e}; \
         while [ ! -e {r} ]; do sleep 0.02; done; {runc} \"$@\"; rc=$?; touch {dn}; \
         exit $rc;; esac; done\nexec {runc} \"$@\"\n",
        e = entered.display(),
        r = release.display(),
        dn = done.display(),
        runc = which_runc().display(),
    );
    std::fs::write(&script, body).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = TestDaemon::start_with(&format!(
        "[runtimes.barrier]\npath = \"{}\"\n",
        script.display()
    ));
    let rootfs = Rootfs::new();
    let id = unique_id("bg-delete");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    run_d(&d, &rootfs, Some("barrier"), &id, &["true"]);
    wait(&d, &id, "");
    let exit = d.rpc_ok("tasks.delete", json!({"container_id": id}));
    assert_eq!(exit["exit_status"], 0, "{exit}");
    until("runc delete began", || entered.exists());
    assert!(!done.exists(), "runc delete is held at the barrier");
    let err = d
        .rpc("tasks.get", json!({"container_id": id}))
        .expect_err("deleted");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    let listed = d.rpc_ok("tasks.list", json!({}));
    assert!(
        !listed.to_string().contains(&id),
        "a deleted task is not listed: {listed}"
    );
    // The create is sent while the teardown is held; its answer comes after the teardown.
    let mut nd = d.ndjson();
    nd.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tasks.create",
                    "params": {"container_id": id, "start": true}}));
    assert!(
        matches!(nd.recv(Duration::from_millis(300)), Err(RecvError::Timeout)),
        "the create waits while the old task is held in its teardown"
    );
    std::fs::write(&release, b"").expect("release");
    let created = nd.recv(LIMIT).expect("the create's answer");
    assert!(created.get("result").is_some(), "{created}");
    assert!(
        done.exists(),
        "the create was answered only after the old task's runc delete"
    );
    d.rpc_ok("tasks.delete", json!({"container_id": id, "force": true}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

/// A runc that hangs is killed at the configured deadline; the RPC says `unavailable`
/// and names the verb, and nothing else of the task waits on it.
#[test]
fn a_hung_runc_is_killed_at_its_deadline_and_blocks_nothing_else() {
    let tools = tempfile::tempdir().expect("dir");
    let (d, _mark) = daemon_with_runtime(tools.path(), "pause", 1000, "runc_timeout_secs = 2");
    let rootfs = Rootfs::new();
    let id = unique_id("hung");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    run_d(&d, &rootfs, Some("wrapped"), &id, &["sleep", "1000"]);
    let started = Instant::now();
    let err = d
        .rpc("tasks.pause", json!({"container_id": id}))
        .expect_err("runc pause hangs");
    assert_eq!(err["data"]["kind"], "unavailable", "{err}");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("pause")),
        "{err}"
    );
    assert!(
        started.elapsed() < LIMIT,
        "answered at the deadline, not later"
    );
    d.rpc_ok(
        "tasks.kill",
        json!({"container_id": id, "signal": "SIGKILL"}),
    );
    assert_eq!(wait(&d, &id, "")["exit_status"], 137);
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}
