//! `berth attach` driven as a person would, through a real pty: a detached terminal task
//! shows its last screen on attach, takes keys, and Ctrl-P Ctrl-Q (or `--detach-keys`)
//! leaves it running; a task without a terminal detaches with the same keys; attaching
//! until the task exits returns its status.

mod tasks_support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use berth_tests::{unique_id, TestDaemon};
use serde_json::json;
use tasks_support::{assert_clean, berth, berth_out, Cleanup, Rootfs};

const LIMIT: Duration = Duration::from_secs(30);

/// `berth ARGS` with a pty as its controlling terminal; the master side for the test.
struct PtyClient {
    child: Child,
    master: std::fs::File,
    seen: String,
}

impl PtyClient {
    fn spawn(d: &TestDaemon, args: &[&str]) -> PtyClient {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two fds into the given ints; the other pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: openpty just returned these fds to us.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize on an open pty fd.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        let mut cmd = berth(d);
        cmd.args(args);
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
        let child = cmd.spawn().expect("spawn berth");
        drop(slave);
        PtyClient {
            child,
            master: std::fs::File::from(master),
            seen: String::new(),
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("type");
    }

    /// Reads the screen until `want` shows up; fails the test at the deadline.
    fn expect(&mut self, want: &str) {
        let deadline = Instant::now() + LIMIT;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(want) {
            assert!(
                Instant::now() < deadline,
                "{want:?} never showed; screen: {:?}",
                self.seen
            );
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
                continue;
            }
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) => {
                    assert!(
                        self.seen.contains(want),
                        "{want:?} never showed: {:?}",
                        self.seen
                    );
                }
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    /// The client's exit status, within the deadline.
    fn status(&mut self) -> Option<i32> {
        let status = berth_tests::process::wait_within(&mut self.child, LIMIT);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status.and_then(|s| s.code())
    }
}

fn running(d: &TestDaemon, id: &str) -> bool {
    d.rpc_ok("tasks.get", json!({ "container_id": id }))["process"]["status"] == "running"
}

#[test]
fn attach_shows_the_last_screen_takes_keys_and_detaches_with_ctrl_p_ctrl_q() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("attach");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(&d, &["run", "-d", "-t", "--rootfs", &r, &id, "sh"], b"");
    assert!(out.status.success(), "{out:?}");
    // Typed through the API before anyone attaches: it must be on the screen shown.
    let keys = base64::engine::general_purpose::STANDARD.encode("echo before-$((40+2))\n");
    d.rpc_ok(
        "tasks.write_stdin",
        json!({ "container_id": id, "data": keys }),
    );

    let mut a = PtyClient::spawn(&d, &["attach", &id]);
    a.expect("before-42");
    a.type_keys(b"echo live-$((6*7))\r");
    a.expect("live-42");
    // Output without a newline (a prompt, a progress bar) shows at once, not at the next
    // newline.
    a.type_keys(b"printf no-newline-$((1+1))\r");
    a.expect("no-newline-2");
    a.type_keys(b"\x10\x11");
    a.expect("detached");
    assert_eq!(a.status(), Some(0), "{:?}", a.seen);
    assert!(running(&d, &id), "detaching leaves the task running");

    // Custom keys; and a partial sequence goes through to the shell.
    let mut b = PtyClient::spawn(&d, &["attach", "--detach-keys", "ctrl-x", &id]);
    b.expect("live-42");
    b.type_keys(b"\x10echo third\r");
    b.expect("third");
    b.type_keys(b"\x18");
    assert_eq!(b.status(), Some(0), "{:?}", b.seen);
    assert!(running(&d, &id));

    // Attached until the task exits: its status.
    let mut c = PtyClient::spawn(&d, &["attach", &id]);
    c.expect("third");
    c.type_keys(b"exit 5\r");
    assert_eq!(c.status(), Some(5), "{:?}", c.seen);
    d.rpc_ok("tasks.delete", json!({ "container_id": id }));
    d.rpc_ok("containers.delete", json!({ "id": id }));
    assert_clean(&d, &[id]);
}

#[test]
fn a_task_without_a_terminal_detaches_with_the_same_keys() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("attach-nt");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &id, "sh", "-c", script],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let mut a = PtyClient::spawn(&d, &["attach", &id]);
    // Only live output for a task without a terminal, and it keeps coming.
    a.expect("tick");
    let first = a.seen.clone();
    a.expect(&format!("tick {}", next_tick(&first) + 1));
    a.type_keys(b"\x10\x11");
    assert_eq!(a.status(), Some(0), "{:?}", a.seen);
    assert!(running(&d, &id));
    // Attaching to what is not running says so, and how to see its output.
    d.rpc_ok(
        "tasks.kill",
        json!({ "container_id": id, "signal": "SIGKILL" }),
    );
    d.rpc_ok("tasks.wait", json!({ "container_id": id }));
    let out = berth_out(&d, &["attach", &id], b"");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("berth logs"),
        "{out:?}"
    );
    let err = d
        .rpc(
            "tasks.write_stdin",
            json!({ "container_id": id, "data": "aGk=" }),
        )
        .expect_err("no stdin");
    assert_eq!(err["data"]["kind"], "failed_precondition", "{err}");
    d.rpc_ok("tasks.delete", json!({ "container_id": id }));
    d.rpc_ok("containers.delete", json!({ "id": id }));
    assert_clean(&d, &[id]);
}

/// The number of the last `tick N` seen.
fn next_tick(seen: &str) -> u64 {
    seen.rsplit("tick ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Issue 31, item 17. A signal forwarded after berthd's idle timeout (here 1 s) still
/// reaches the task: the client no longer keeps an idle connection for signals, which
/// berthd closed, silently dropping the next one. And SIGTERM ends `berth attach` at once
/// (`timeout 3 berth attach web`) with 143, as a client the signal killed would, after
/// forwarding it: the task, a PID 1 without a handler for it, runs on.
#[test]
fn attach_forwards_signals_after_the_idle_timeout_and_sigterm_ends_it_with_143() {
    let d = TestDaemon::start_with("idle_timeout_secs = 1\n");
    let rootfs = Rootfs::new();
    let id = unique_id("sigs");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let script = "trap 'echo got-usr1-$((n+=1))' USR1; while true; do echo tick; sleep 0.2; done";
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &id, "sh", "-c", script],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let mut a = PtyClient::spawn(&d, &["attach", &id]);
    let pid = a.child.id() as libc::pid_t;
    let signal = |sig| {
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {sig}");
    };
    // Live output shows once attach is set up (its signals are taken from then on).
    a.expect("tick");
    signal(libc::SIGUSR1);
    a.expect("got-usr1-1");
    // Idle longer than berthd's idle timeout: a connection kept since the last signal is
    // closed by now.
    std::thread::sleep(Duration::from_millis(2500));
    signal(libc::SIGUSR1);
    a.expect("got-usr1-2");
    let sent = Instant::now();
    signal(libc::SIGTERM);
    assert_eq!(
        a.status(),
        Some(143),
        "SIGTERM ends berth attach; {:?}",
        a.seen
    );
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "promptly: {:?}",
        sent.elapsed()
    );
    assert!(running(&d, &id), "the task runs on");
}
