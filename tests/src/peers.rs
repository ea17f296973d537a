//! The other runtimes' own tools, each on its own temp dirs, so the image tests exchange
//! archives with what users actually run: containerd (`ctr`), dockerd (`docker load`/`save`)
//! and podman. Each guard stops its daemon, unmounts what it left and removes its dirs on
//! drop, also when the test fails. `install-deps.sh` installs them; a missing tool fails the
//! test (it is not skipped).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mounts::unmount_below;

/// How long a daemon may take to serve its socket.
const START: Duration = Duration::from_secs(60);

fn wait_for(what: &str, child: &mut Child, socket: &Path, log: &Path) {
    let deadline = Instant::now() + START;
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before serving: {log}");
        }
        assert!(Instant::now() < deadline, "{what} did not serve {socket:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid, which is not reaped before the wait below.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    if crate::process::wait_within(child, Duration::from_secs(30)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds; its stdout.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/install-deps.sh installs it)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawns the daemon `cmd` (stdout discarded, stderr into `<dir>/log`) and waits until it
/// serves `<dir>/sock`; `what` names it in failures.
fn spawn_serving(what: &str, cmd: &mut Command, dir: &Path) -> Child {
    let log = dir.join("log");
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/install-deps.sh installs it)"));
    wait_for(what, &mut child, &dir.join("sock"), &log);
    child
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    // Short paths: containerd and dockerd put unix sockets below these dirs.
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir")
}

/// A containerd on its own root, state and socket.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = temp_dir("ctd");
        let d = dir.path();
        std::fs::write(d.join("config.toml"), "version = 2\n").expect("config");
        let child = spawn_serving(
            "containerd",
            Command::new("containerd")
                .arg("--config")
                .arg(d.join("config.toml"))
                .arg("--root")
                .arg(d.join("root"))
                .arg("--state")
                .arg(d.join("state"))
                .arg("--address")
                .arg(d.join("sock")),
            d,
        );
        Containerd { child, dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ctr -a SOCK ARGS...`, which must succeed; its stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        run(
            &format!("ctr {}", args.join(" ")),
            Command::new("ctr").arg("-a").arg(self.socket()).args(args),
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop(&mut self.child);
        unmount_below(self.dir.path());
    }
}

/// A dockerd without networking (no bridge, no iptables) on the vfs storage driver, using
/// its own [`Containerd`], so nothing of the host's docker is touched.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    _containerd: Containerd,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let containerd = Containerd::start();
        let dir = temp_dir("dkd");
        let d = dir.path();
        let child = spawn_serving(
            "dockerd",
            Command::new("dockerd")
                .arg("--data-root")
                .arg(d.join("root"))
                .arg("--exec-root")
                .arg(d.join("exec"))
                .arg("--pidfile")
                .arg(d.join("pid"))
                .arg("-H")
                .arg(format!("unix://{}", d.join("sock").display()))
                .arg("--containerd")
                .arg(containerd.socket())
                .args([
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                    "--storage-driver=vfs",
                ]),
            d,
        );
        Dockerd {
            child,
            dir,
            _containerd: containerd,
        }
    }

    /// `docker -H SOCK ARGS...`, which must succeed; its stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        run(
            &format!("docker {}", args.join(" ")),
            Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.dir.path().join("sock").display()))
                .args(args),
        )
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        stop(&mut self.child);
        unmount_below(self.dir.path());
    }
}

/// podman (no daemon) on its own storage (vfs) and run root.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            dir: temp_dir("pdm"),
        }
    }

    /// `podman --root .. --runroot .. ARGS...`, which must succeed; its stdout.
    pub fn podman(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        run(
            &format!("podman {}", args.join(" ")),
            Command::new("podman")
                .arg("--root")
                .arg(d.join("root"))
                .arg("--runroot")
                .arg(d.join("run"))
                .arg("--tmpdir")
                .arg(d.join("tmp"))
                .args([
                    "--storage-driver=vfs",
                    "--cgroup-manager=cgroupfs",
                    "--events-backend=none",
                ])
                .args(args),
        )
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        unmount_below(self.dir.path());
    }
}
