//! `berth run` and the tasks API against the real berthd and runc, on a busybox rootfs
//! directory: output, exit statuses, stdin, a real pty with resizing, exec, signals,
//! pause/resume, read-only rootfs, bind mounts, network namespaces and a daemon restart.
//! Every test checks that nothing was left behind.

mod tasks_support;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth, berth_out, stdout, until, Cleanup, Rootfs};

fn run(
    d: &TestDaemon,
    rootfs: &Rootfs,
    flags: &[&str],
    id: &str,
    cmd: &[&str],
) -> std::process::Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    let r = rootfs.arg();
    args.extend_from_slice(&["--rootfs", &r, id]);
    args.extend_from_slice(cmd);
    berth_out(d, &args, b"")
}

#[test]
fn run_prints_output_and_exits_with_the_task_status() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (a, b) = (unique_id("echo"), unique_id("exit"));
    let out = run(&d, &rootfs, &[], &a, &["echo", "hello", "berth"]);
    assert_eq!(stdout(&out), "hello berth\n", "{out:?}");
    assert_eq!(out.status.code(), Some(0));
    let out = run(
        &d,
        &rootfs,
        &[],
        &b,
        &["sh", "-c", "echo oops >&2; exit 42"],
    );
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_clean(&d, &[a, b]);
}

#[test]
fn stdin_is_piped_through_cat() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("cat");
    let r = rootfs.arg();
    let input = b"line one\nline two\n".repeat(2000);
    let out = berth_out(&d, &["run", "--rm", "--rootfs", &r, &id, "cat"], &input);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, input);
    assert_clean(&d, &[id]);
}

fn set_size(fd: &OwnedFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize from `ws` on an open pty fd.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(rc, 0);
}

/// Reads from the pty master until `want` shows up (or the time runs out).
fn read_until(master: &mut std::fs::File, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !seen.contains(want) {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen
}

#[test]
fn a_real_pty_follows_resizes_and_the_exit_status_comes_back() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("tty");
    let (mut master_fd, mut slave_fd) = (-1, -1);
    // SAFETY: openpty writes two fds into the given ints; the other pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master_fd,
            &mut slave_fd,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: openpty just returned these fds to us.
    let (master, slave) = unsafe {
        (
            OwnedFd::from_raw_fd(master_fd),
            OwnedFd::from_raw_fd(slave_fd),
        )
    };
    set_size(&master, 100, 30);
    let mut cmd = berth(&d);
    cmd.args(["run", "--rm", "-t", "--rootfs", &rootfs.arg(), &id, "sh"]);
    let dup = || Stdio::from(slave.try_clone().expect("dup slave"));
    cmd.stdin(dup()).stdout(dup()).stderr(dup());
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn berth run -t");
    drop(slave);
    let mut m = std::fs::File::from(master.try_clone().expect("dup master"));
    std::io::Write::write_all(&mut m, b"stty size\n").expect("write");
    let seen = read_until(&mut m, "30 100", Duration::from_secs(20));
    assert!(seen.contains("30 100"), "{seen:?}");
    set_size(&master, 132, 50);
    // The resize reaches the task asynchronously (SIGWINCH to berth, then
    // tasks.resize_pty): ask again until the task sees it, against a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while !seen.contains("50 132") {
        assert!(
            Instant::now() < deadline,
            "the task never saw 50 132: {seen:?}"
        );
        std::io::Write::write_all(&mut m, b"stty size\n").expect("write");
        seen = read_until(&mut m, "50 132", Duration::from_millis(500));
    }
    std::io::Write::write_all(&mut m, b"exit 7\n").expect("write");
    let status = berth_tests::process::wait_within(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(status.and_then(|s| s.code()), Some(7));
    assert_clean(&d, &[id]);
}

/// Creates and starts a task the way `berth run -d --rootfs` does; returns its process.
fn create_task(d: &TestDaemon, rootfs: &Rootfs, id: &str, args: &[&str]) -> Value {
    let r = rootfs.arg();
    let mut argv = vec!["run", "-d", "--rootfs", r.as_str(), id];
    argv.extend_from_slice(args);
    let out = berth_out(d, &argv, b"");
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok("tasks.get", json!({"container_id": id}))["process"].clone()
}

#[test]
fn exec_runs_in_a_running_container_and_reports_its_status() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("exec");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    create_task(&d, &rootfs, &id, &["sleep", "1000"]);
    let out = berth_out(
        &d,
        &[
            "t",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo inside $(hostname); exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout(&out), format!("inside {id}\n"));
    let err = d
        .rpc("tasks.get", json!({"container_id": id, "exec_id": "e1"}))
        .expect_err("deleted");
    assert_eq!(err["data"]["kind"], "not_found");
    let out = berth_out(&d, &["t", "kill", "-s", "KILL", &id], b"");
    assert!(out.status.success(), "{out:?}");
    let out = berth_out(&d, &["t", "wait", &id], b"");
    assert_eq!(out.status.code(), Some(137));
    assert!(berth_out(&d, &["t", "rm", &id], b"").status.success());
    assert!(berth_out(&d, &["c", "rm", &id], b"").status.success());
    assert_clean(&d, &[id]);
}

#[test]
fn kill_and_wait_report_sigterm_and_sigkill_and_waits_before_start_see_the_exit() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("kill");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &id, "sleep", "1000"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    // An exec process (not the namespace's init) dies of SIGTERM: 128 + 15.
    let process = json!({"args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"],
                         "user": {"uid": 0, "gid": 0}});
    d.rpc_ok(
        "tasks.exec",
        json!({"container_id": id, "exec_id": "s", "process": process}),
    );
    d.rpc_ok("tasks.start", json!({"container_id": id, "exec_id": "s"}));
    // A waiter the daemon has read, and not answered, before the task is killed.
    let mut waiter = berth_tests::Ndjson::connect(d.socket()).expect("connect");
    waiter.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tasks.wait",
                        "params": {"container_id": id}}));
    read_by_daemon(&mut waiter);
    d.rpc_ok(
        "tasks.kill",
        json!({"container_id": id, "exec_id": "s", "signal": "SIGTERM"}),
    );
    let exit = d.rpc_ok("tasks.wait", json!({"container_id": id, "exec_id": "s"}));
    assert_eq!(exit["exit_status"], 143);
    d.rpc_ok("tasks.kill", json!({"container_id": id, "signal": 9}));
    let exit = d.rpc_ok("tasks.wait", json!({"container_id": id}));
    assert_eq!(exit["exit_status"], 137);
    let early = waiter
        .recv(Duration::from_secs(30))
        .expect("the waiter's reply");
    assert_eq!(early["result"], exit, "many waiters agree");
    let again = d.rpc_ok("tasks.wait", json!({"container_id": id}));
    assert_eq!(
        again, exit,
        "a wait after the exit returns the stored status"
    );
    let err = d
        .rpc("tasks.kill", json!({"container_id": id}))
        .expect_err("finished");
    assert_eq!(err["data"]["kind"], "not_found");
    let events = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/tasks/exit\""]}),
    );
    let exits: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert_eq!(exits[1]["event"]["exit_status"], 137);
    assert!(exits[1]["event"]["pid"].as_i64().unwrap_or(0) > 0);
    assert!(exits[1]["event"]["exited_at"].is_string());

    // A wait issued before start sees the exit of the started task.
    let id3 = unique_id("prestart");
    let _c3 = Cleanup {
        d: &d,
        ids: vec![id3.clone()],
    };
    let spec = d.rpc_ok("containers.get", json!({"id": id}))["container"]["spec"].clone();
    let mut spec3 = spec.clone();
    spec3["process"]["args"] = json!(["sh", "-c", "exit 5"]);
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": id3, "spec": spec3}}),
    );
    d.rpc_ok("tasks.create", json!({"container_id": id3}));
    let mut early = berth_tests::Ndjson::connect(d.socket()).expect("connect");
    early.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tasks.wait",
                       "params": {"container_id": id3}}));
    read_by_daemon(&mut early);
    d.rpc_ok("tasks.start", json!({"container_id": id3}));
    let reply = early
        .recv(Duration::from_secs(30))
        .expect("the wait's reply");
    assert_eq!(reply["result"]["exit_status"], 5, "{reply}");
    let err = d
        .rpc("containers.delete", json!({"id": id3}))
        .expect_err("task exists");
    assert_eq!(err["data"]["kind"], "failed_precondition");
    drop(_c3);
    drop(_cleanup);
    assert_clean(&d, &[id, id3]);
}

#[test]
fn pause_and_resume_freeze_and_thaw_the_task() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("pause");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    create_task(&d, &rootfs, &id, &["sleep", "1000"]);
    assert!(berth_out(&d, &["t", "pause", &id], b"").status.success());
    let p = d.rpc_ok("tasks.get", json!({"container_id": id}));
    assert_eq!(p["process"]["status"], "paused");
    let listed = d.rpc_ok("tasks.list", json!({"filters": ["status==paused"]}));
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(1));
    let freezer = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/berth/default/{id}/freezer.state"
    ))
    .unwrap_or_default();
    assert_eq!(freezer.trim(), "FROZEN");
    assert!(berth_out(&d, &["t", "resume", &id], b"").status.success());
    let p = d.rpc_ok("tasks.get", json!({"container_id": id}));
    assert_eq!(p["process"]["status"], "running");
    let pids = d.rpc_ok("tasks.pids", json!({"container_id": id}));
    assert_eq!(pids["processes"][0]["pid"], p["process"]["pid"]);
    let m = d.rpc_ok("tasks.metrics", json!({"container_id": id}));
    assert_eq!(m["pids"]["current"], 1, "{m}");
    assert!(m["memory"].is_object() && m["cpu"].is_object(), "{m}");
    let topics: Vec<String> = d.rpc_ok("events.list", json!({}))["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["topic"].as_str().unwrap_or("").to_owned())
        .collect();
    for t in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing in {topics:?}");
    }
    d.rpc_ok("tasks.delete", json!({"container_id": id, "force": true}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}

#[test]
fn readonly_rootfs_is_enforced_and_bind_mounts_are_visible() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (a, b) = (unique_id("ro"), unique_id("bind"));
    let out = run(&d, &rootfs, &["--readonly"], &a, &["touch", "/written"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only"),
        "{out:?}"
    );
    assert!(!rootfs.path().join("written").exists());
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("note"), "from the host").expect("write");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:ro",
        host.path().display()
    );
    let out = run(
        &d,
        &rootfs,
        &["--mount", &mount],
        &b,
        &["cat", "/data/note"],
    );
    assert_eq!(stdout(&out), "from the host", "{out:?}");
    assert_clean(&d, &[a, b]);
}

#[test]
fn net_host_shares_the_host_network_namespace_and_the_default_has_its_own() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (a, b) = (unique_id("nethost"), unique_id("netns"));
    let host = std::fs::read_link("/proc/self/ns/net").expect("host netns");
    let host = host.display().to_string();
    let out = run(
        &d,
        &rootfs,
        &["--net-host"],
        &a,
        &["readlink", "/proc/self/ns/net"],
    );
    assert_eq!(stdout(&out).trim(), host, "{out:?}");
    let out = run(&d, &rootfs, &[], &b, &["readlink", "/proc/self/ns/net"]);
    let own = stdout(&out);
    assert!(own.starts_with("net:[") && own.trim() != host, "{out:?}");
    assert_clean(&d, &[a, b]);
}

#[test]
fn exit_status_survives_a_daemon_restart_and_deaths_while_down_keep_their_real_status() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (a, b) = (unique_id("kept"), unique_id("orphan"));
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &a, "sh", "-c", "exit 42"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        d.rpc_ok("tasks.wait", json!({"container_id": a}))["exit_status"],
        42
    );
    let out = berth_out(&d, &["run", "-d", "--rootfs", &r, &b, "sleep", "1000"], b"");
    assert!(out.status.success(), "{out:?}");
    let pid = d.rpc_ok("tasks.get", json!({"container_id": b}))["process"]["pid"]
        .as_i64()
        .expect("pid") as libc::pid_t;
    d.stop();
    // The task dies while berthd is down; the keeper reaps it and keeps its real status.
    // SAFETY: kill(2) with plain integers; `pid` is the container's init.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let gone = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
        && Instant::now() < gone
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.restart();
    let p = d.rpc_ok("tasks.get", json!({"container_id": a}))["process"].clone();
    assert_eq!(
        (p["status"].clone(), p["exit_status"].clone()),
        (json!("stopped"), json!(42))
    );
    let p = d.rpc_ok("tasks.get", json!({"container_id": b}))["process"].clone();
    assert_eq!(
        (
            p["status"].clone(),
            p["exit_status"].clone(),
            p["exit_reason"].clone()
        ),
        (json!("stopped"), json!(137), json!("signaled"))
    );
    for id in [&a, &b] {
        let out = berth_out(&d, &["c", "rm", id], b"");
        assert!(
            out.status.success(),
            "containers rm deletes the stopped task first: {out:?}"
        );
    }
    assert_clean(&d, &[a, b]);
}

/// A namespace's cgroup parent (`/berth/<ns>`) goes with its last task.
#[test]
fn the_namespace_cgroup_goes_with_its_last_task() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let ns = unique_id("cgns");
    let id = unique_id("cg");
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["-n", &ns, "run", "-d", "--rootfs", &r, &id, "sleep", "1000"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let parents: Vec<std::path::PathBuf> = ["pids", "memory", "freezer", "unified"]
        .iter()
        .map(|c| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("berth")
                .join(&ns)
        })
        .filter(|p| p.is_dir())
        .collect();
    assert!(
        !parents.is_empty(),
        "the running task has a /berth/{ns} cgroup"
    );
    let out = berth_out(&d, &["-n", &ns, "t", "rm", "-f", &id], b"");
    assert!(out.status.success(), "{out:?}");
    // The teardown follows the delete's answer.
    for p in &parents {
        until(
            &format!("{} removed after the last task", p.display()),
            || !p.exists(),
        );
    }
    assert!(berth_out(&d, &["-n", &ns, "c", "rm", &id], b"")
        .status
        .success());
}

#[test]
fn start_and_kill_without_a_task_are_not_found_naming_the_container() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("notask");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    create_task(&d, &rootfs, &id, &["true"]);
    d.rpc_ok("tasks.wait", json!({"container_id": id}));
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    for method in ["tasks.start", "tasks.kill"] {
        let err = d
            .rpc(method, json!({"container_id": id}))
            .expect_err("no task");
        assert_eq!(err["data"]["kind"], "not_found", "{method}: {err}");
        let message = err["message"].as_str().unwrap_or_default();
        assert!(message.contains(&id), "{method}: {message}");
    }
    assert!(berth_out(&d, &["c", "rm", &id], b"").status.success());
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

#[test]
fn a_76_character_id_runs_with_its_hostname_cut_to_64_bytes() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let short = unique_id("long");
    let id = format!("{short}{}", "x".repeat(76 - short.len()));
    assert_eq!(id.len(), 76);
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let out = run(&d, &rootfs, &[], &id, &["hostname"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("{}\n", &id[..64]));
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

#[test]
fn a_bind_mount_without_options_is_an_rbind() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("bind");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("hello"), "from the host\n").expect("write");
    let flag = format!("type=bind,src={},dst=/data", host.path().display());
    let out = run(
        &d,
        &rootfs,
        &["--mount", &flag],
        &id,
        &["cat", "/data/hello"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "from the host\n");
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

#[test]
fn run_never_takes_an_unknown_flag_for_the_image_or_the_id() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let r = rootfs.arg();
    for argv in [
        vec!["run", "--rm", "--foo", "busybox", "x1", "true"],
        vec!["run", "-P", "busybox", "x1", "true"],
        vec!["run", "--rootfs", r.as_str(), "--bogus", "x1", "true"],
    ] {
        let out = berth_out(&d, &argv, b"");
        assert_eq!(out.status.code(), Some(125), "{argv:?}: {out:?}");
        let flag = argv
            .iter()
            .find(|w| w.starts_with('-') && **w != "--rm" && **w != "--rootfs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag.expect("a flag")), "{argv:?}: {err}");
    }
    let listed = d.rpc_ok("containers.list", json!({}));
    assert_eq!(listed["containers"], json!([]), "nothing was created");
    // A daemon error is berth's own failure too: 125, not a container's status.
    let out = berth_out(&d, &["run", "--rm", "no-such-image", "x2", "true"], b"");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
}

#[test]
fn run_detached_prints_the_container_id() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("detached");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(&d, &["run", "-d", "--rootfs", &r, &id, "true"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("{id}\n"));
    d.rpc_ok("tasks.wait", json!({"container_id": id}));
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

#[test]
fn volumes_and_tmpfs_mount_as_docker_s() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("vol");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("hello"), "via -v\n").expect("write");
    let vol = format!("{}:/data:ro", host.path().display());
    let out = run(
        &d,
        &rootfs,
        &["-v", &vol, "--tmpfs", "/scratch"],
        &id,
        &["sh", "-c", "cat /data/hello; touch /data/x || echo ro; touch /scratch/y && grep -c ' /scratch tmpfs' /proc/mounts"],
    );
    assert_eq!(stdout(&out), "via -v\nro\n1\n", "{out:?}");
    let missing = format!("{}/nope:/data", host.path().display());
    let out = run(&d, &rootfs, &["-v", &missing], "x4", &["true"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

/// `tasks.create {start: true}` (one `runc run --detach`): no `tasks.start` is needed, and an
/// init that is gone before the create answers still has its exit, stored after its start.
#[test]
fn a_task_created_with_start_runs_at_once_and_keeps_a_quick_exit() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("started");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    // A container whose task exits at once, made by the CLI, its first task deleted.
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &id, "sh", "-c", "exit 5"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok("tasks.wait", json!({"container_id": id}));
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    let since = d.rpc_ok("events.list", json!({"limit": 1000}))["events"]
        .as_array()
        .and_then(|e| e.last().map(|e| e["seq"].clone()))
        .expect("events");
    for round in 0..5 {
        let task = d.rpc_ok("tasks.create", json!({"container_id": id, "start": true}));
        assert!(task["pid"].as_i64().is_some_and(|p| p > 0), "{task}");
        let exit = d.rpc_ok("tasks.wait", json!({"container_id": id}));
        assert_eq!(exit["exit_status"], 5, "round {round}: {exit}");
        let got = d.rpc_ok("tasks.get", json!({"container_id": id}));
        assert_eq!(got["process"]["status"], "stopped", "{got}");
        assert!(got["process"]["started_at"].is_string(), "{got}");
        d.rpc_ok("tasks.delete", json!({"container_id": id}));
    }
    let events = d.rpc_ok("events.list", json!({"since": since, "limit": 1000}))["events"].clone();
    let topics: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["topic"].as_str())
        .collect();
    let round = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ];
    assert_eq!(topics, round.repeat(5), "each round in order, by seq");
    drop(_cleanup);
    assert_clean(&d, &[id]);
}

/// Evidence, not a pause: berthd has read what was sent on `c` (nothing is left unread in
/// the socket) and has not answered it yet.
fn read_by_daemon(c: &mut berth_tests::Ndjson) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.unread_by_daemon() > 0 {
        assert!(Instant::now() < deadline, "berthd did not read the request");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        c.recv(Duration::ZERO).expect_err("not answered yet"),
        berth_tests::RecvError::Timeout
    );
}

/// A foreground `berth run` passes the signals it gets on to the task (`tasks.kill`, on a
/// connection it opens at the first signal) and exits with the status the task then has;
/// its wait for the exit is its main connection's call meanwhile.
#[test]
fn a_foreground_run_forwards_the_signals_it_gets_to_the_task() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("fwd");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let script = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    let r = rootfs.arg();
    let mut child = berth(&d)
        .args(["run", "--rm", "--rootfs", &r, &id, "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("berth run");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(text.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while !seen.contains("ready\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(text) => seen = text,
            Err(_) => {
                let _ = child.kill();
                panic!("the task never printed ready: {seen:?}");
            }
        }
    }
    // SAFETY: kill(2) on our own child, which has not been waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth run did not end after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(text) = rx.recv_timeout(Duration::from_secs(5)) {
        seen = text;
    }
    assert_eq!(status.code(), Some(7), "the trap's status; output {seen:?}");
    assert!(seen.contains("got TERM"), "{seen:?}");
    assert_clean(&d, &[id]);
}
