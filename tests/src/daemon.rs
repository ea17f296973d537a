//! `TestDaemon`: the real `berthd` binary on a private temp dir and socket, one per test, so
//! tests run in parallel. The daemon and everything it spawns live in one process group;
//! `Drop` terminates the group, unmounts what was left mounted below the temp dir, then
//! removes it, also when the test is panicking.

use std::fs::{self, File};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::mounts::unmount_below;
use crate::process::output_within;

/// How long a daemon may take to start accepting or to stop after SIGTERM.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A running `berthd` on its own root, state dir and socket.
pub struct TestDaemon {
    child: Option<Child>,
    root: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    config: Option<PathBuf>,
    /// RLIMIT_NOFILE (soft, hard) the daemon starts under, when the test sets one.
    nofile: Option<(u64, u64)>,
    log: PathBuf,
    // Last field: dropped after `Drop::drop` has stopped the daemon and unmounted.
    dir: TempDir,
}

impl TestDaemon {
    /// Starts a daemon with the default configuration.
    pub fn start() -> TestDaemon {
        TestDaemon::launch(None)
    }

    /// Starts a daemon with `config_toml` written to a file passed as `--config`.
    pub fn start_with(config_toml: &str) -> TestDaemon {
        TestDaemon::launch(Some(config_toml))
    }

    /// Starts a daemon whose root is a fresh tmpfs of `mib` MiB, to fill the disk on
    /// purpose. `Drop` unmounts it (with everything below the temp dir), also on failure.
    pub fn start_on_tmpfs(mib: u64) -> TestDaemon {
        TestDaemon::launch_on(None, Some(mib), None)
    }

    /// Starts a daemon under RLIMIT_NOFILE `soft`/`hard` (as an inherited limit would be),
    /// with `config_toml`.
    pub fn start_with_nofile(config_toml: &str, soft: u64, hard: u64) -> TestDaemon {
        TestDaemon::launch_on(Some(config_toml), None, Some((soft, hard)))
    }

    fn launch(config_toml: Option<&str>) -> TestDaemon {
        TestDaemon::launch_on(config_toml, None, None)
    }

    fn launch_on(
        config_toml: Option<&str>,
        tmpfs_mib: Option<u64>,
        nofile: Option<(u64, u64)>,
    ) -> TestDaemon {
        // Under /tmp with a short prefix: a unix socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("berth-")
            .tempdir_in("/tmp")
            .expect("create the test's temp dir");
        let base = dir.path().to_path_buf();
        let config = config_toml.map(|text| {
            let path = base.join("berthd.toml");
            fs::write(&path, text).expect("write berthd.toml");
            path
        });
        let mut daemon = TestDaemon {
            child: None,
            root: base.join("root"),
            state: base.join("state"),
            socket: base.join("state").join("berthd.sock"),
            config,
            nofile,
            log: base.join("berthd.log"),
            dir,
        };
        assert!(
            daemon.socket.as_os_str().len() < 100,
            "socket path too long"
        );
        if let Some(mib) = tmpfs_mib {
            // The guard exists already: a failure from here on still unmounts.
            fs::create_dir_all(&daemon.root).expect("mkdir root");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={mib}m,mode=0711"))
                .arg("berth-test")
                .arg(&daemon.root)
                .output()
                .expect("run mount");
            assert!(
                out.status.success(),
                "mount a tmpfs on {}: {}",
                daemon.root.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        daemon.restart();
        daemon
    }

    /// The `berthd` binary built next to the test executable (target/<profile>/berthd);
    /// tests live in target/<profile>/deps, harness binaries such as `crash` one level up.
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().expect("locate the test executable");
        let dir = exe.parent().expect("the executable lives in a directory");
        let profile = if dir.ends_with("deps") {
            dir.parent().expect("target/<profile>/deps has a parent")
        } else {
            dir
        };
        let bin = profile.join("berthd");
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (make test does)",
            bin.display()
        );
        bin
    }

    /// A `berthd` command on this daemon's root, state, socket and config, stderr appended
    /// to the daemon's log, in its own process group.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(TestDaemon::binary());
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.process_group(0);
        if let Some((soft, hard)) = self.nofile {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: the closure runs in the forked child before exec and only calls
            // setrlimit(2), which is async-signal-safe, on a value copied into it.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Starts the daemon again on the same dirs (after `stop` or `kill9`) and waits until
    /// its socket accepts.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// [`TestDaemon::restart`] with `args` added to berthd's command line.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.spawn(args);
        self.wait_until_accepting();
    }

    fn spawn(&mut self, args: &[&str]) {
        assert!(
            self.child.is_none(),
            "restart of a daemon that is still running"
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open berthd.log");
        let child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", TestDaemon::binary().display()));
        self.child = Some(child);
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let child = self.child.as_mut().expect("daemon running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                panic!(
                    "berthd exited ({status}) before its socket accepted; stderr:\n{}",
                    self.stderr()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "berthd's socket {} did not accept within {START_LIMIT:?}; stderr:\n{}",
                    self.socket.display(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the daemon to exit; returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `sig` to the daemon and waits (bounded) for it to exit; returns its status.
    pub fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("stop of a daemon that is not running");
        signal(child.id(), sig);
        let exited = exited_within(&child, STOP_LIMIT);
        let status = kill_group(&mut child);
        assert!(
            exited,
            "berthd ignored signal {sig} for {STOP_LIMIT:?}; stderr:\n{}",
            self.stderr()
        );
        status
    }

    /// SIGKILLs the daemon's whole process group, as a crash would, and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("kill of a daemon that is not running");
        kill_group(&mut child);
    }

    /// SIGKILLs the daemon's process group and starts the next daemon at once, before the
    /// killed one is reaped or has even finished dying (an operator's `kill -9 PID;
    /// berthd ...`), then reaps it; waits until the new one accepts.
    pub fn kill9_and_restart_at_once(&mut self) {
        let mut old = self
            .child
            .take()
            .expect("kill of a daemon that is not running");
        signal_group(old.id(), libc::SIGKILL);
        self.spawn(&[]);
        // Reaped before the new one is awaited: until then the dying one's socket may
        // still accept a connection.
        old.wait().expect("reap the killed berthd");
        self.wait_until_accepting();
    }

    /// Runs another `berthd` with this daemon's root and config but its own state dir and
    /// socket, waits (bounded) for it to exit and returns its status and stderr.
    pub fn run_second_daemon(&self) -> (ExitStatus, String) {
        let state = self.dir.path().join("state2");
        let mut cmd = Command::new(TestDaemon::binary());
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&state)
            .arg("--socket")
            .arg(state.join("berthd.sock"))
            .process_group(0);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let out = output_within(&mut cmd, b"", STOP_LIMIT);
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The temp dir holding root, state, socket, config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the daemon has written to stderr so far (all runs).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl TestDaemon {
    /// The pid of the keeper berthd started for this state dir, while it runs.
    pub fn keeper_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.state.join("keeper").join("pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// `runc delete --force` of every container runc keeps under this daemon's state dir
    /// (their processes and cgroups go with them), as a host shutdown would end them.
    pub fn delete_runc_containers(&self) {
        let runc_root = self.state.join("runc");
        for ns in fs::read_dir(&runc_root).into_iter().flatten().flatten() {
            for c in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let mut cmd = Command::new("runc");
                cmd.arg("--root")
                    .arg(ns.path())
                    .args(["delete", "--force"])
                    .arg(c.file_name())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                let _ = output_within(&mut cmd, b"", STOP_LIMIT);
            }
        }
    }

    /// SIGKILLs the keeper's session (the keeper and the tasks it started), as its crash
    /// or a host restart would.
    pub fn kill_keeper(&self) {
        if let Some(pid) = self.keeper_pid() {
            signal_group(pid as u32, libc::SIGKILL);
            let deadline = Instant::now() + STOP_LIMIT;
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            exited_within(&child, STOP_LIMIT);
            kill_group(&mut child);
        }
        // The keeper outlives berthd by design; a test's must not outlive the test, nor
        // the containers runc still knows (their processes and cgroups).
        self.delete_runc_containers();
        self.kill_keeper();
        unmount_below(self.dir.path());
    }
}

/// SIGKILLs the group led by `child` (sweeping whatever the daemon left in it) and only
/// then reaps the leader: an unreaped leader keeps the group id from being reused.
fn kill_group(child: &mut Child) -> ExitStatus {
    signal_group(child.id(), libc::SIGKILL);
    child.wait().expect("reap berthd")
}

/// Waits up to `limit` for `child` to exit, without reaping it.
fn exited_within(child: &Child, limit: Duration) -> bool {
    let pid: libc::id_t = child.id();
    let deadline = Instant::now() + limit;
    loop {
        // SAFETY: siginfo_t is plain data for which all-zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child reapable
        // by `Child::wait` later, and WNOHANG makes the call return at once.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed); si_pid reads the pid field.
        if rc != 0 || unsafe { info.si_pid() } != 0 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; `pid` is our own unreaped child, so it cannot
    // name an unrelated process.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: killpg(2) takes plain integers; the group was created by our spawn with
    // `process_group(0)`, and its id is not reused while any member lives.
    unsafe {
        libc::killpg(pgid, sig);
    }
}
