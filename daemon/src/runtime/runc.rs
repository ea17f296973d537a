//! A typed client for the `runc` binary: global options as a builder, one async
//! method per verb. The verbs that leave a container process behind (`create`, a
//! detached `exec`) are started by the [`Keeper`] when one is set, so that process is
//! the keeper's child and its exit outlives berthd; every other invocation is started
//! through the [`Reaper`] (it subscribes before it spawns). This module never waits for
//! a process itself, and every invocation has a deadline after which runc is killed.
//! Container stdio is handed to runc as file descriptors (no copy loop here); runc's
//! own output is captured only where it cannot be the container's.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::pidfd;
use super::reaper::{Reaper, ReaperError};
use crate::keeper::{ExitWait, Identity, Keeper, KeeperError};

/// How long one runc invocation may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the runc client.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    /// runc ran and reported failure; `log` holds the errors it wrote to `--log`.
    #[error("runc {verb} of container {id:?} exited with status {status}: {}", detail(.stderr, .stdout, .log))]
    CommandFailed {
        verb: &'static str,
        id: String,
        status: i32,
        stdout: String,
        stderr: String,
        log: String,
    },
    /// runc could not be started or awaited.
    #[error("runc {verb} of container {id:?}: {source}")]
    Launch {
        verb: &'static str,
        id: String,
        #[source]
        source: ReaperError,
    },
    /// The keeper could not start runc or report its exit.
    #[error("runc {verb} of container {id:?}: {source}")]
    Keeper {
        verb: &'static str,
        id: String,
        #[source]
        source: KeeperError,
    },
    /// runc did not finish in time and was killed.
    #[error("runc {verb} of container {id:?} did not finish within {after:?} and was killed")]
    Timeout {
        verb: &'static str,
        id: String,
        after: Duration,
    },
    /// A pipe for runc's output could not be set up.
    #[error("runc {verb} of container {id:?}: cannot set up output pipe: {source}")]
    Pipe {
        verb: &'static str,
        id: String,
        #[source]
        source: io::Error,
    },
    /// runc succeeded but printed something we could not parse.
    #[error("runc {verb} of container {id:?} printed unexpected output: {source}")]
    Decode {
        verb: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

fn detail(stderr: &str, stdout: &str, log: &str) -> String {
    let parts: Vec<&str> = [log, stderr, stdout]
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        "no output".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The container process's stdin/stdout/stderr, handed to runc as they are: runc
/// passes its own stdio on to the container. `None` means /dev/null (or, with a
/// console socket, a pipe whose content shows up in errors: the pty replaces it).
#[derive(Debug, Default)]
pub struct ProcessStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Options of `runc create`.
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// Where runc writes the container init's pid.
    pub pid_file: PathBuf,
    /// Start it too: `runc run --detach`, one runc execution instead of `create` + `start`.
    pub start: bool,
    pub console_socket: Option<PathBuf>,
    pub stdio: ProcessStdio,
}

/// Options of `runc exec`.
#[derive(Debug, Default)]
pub struct ExecOpts {
    /// An OCI `process` object as JSON.
    pub process: PathBuf,
    pub pid_file: PathBuf,
    /// Return once the process started instead of when it exits.
    pub detach: bool,
    pub console_socket: Option<PathBuf>,
    pub stdio: ProcessStdio,
}

/// `runc state` output.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub pid: i32,
    pub status: ContainerStatus,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 time, as runc prints it.
    pub created: String,
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// One `runc events --stats` record; `data` is runc's cgroup stats object.
#[derive(Debug, Clone, Deserialize)]
pub struct StatsEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// What runc printed and how it exited.
struct Output {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// With the keeper: the container process runc left behind.
    target: Option<Started>,
}

/// A container process runc left running, as the keeper names it, with its exit to come.
#[derive(Debug)]
pub struct Started {
    pub who: Identity,
    pub exit: ExitWait,
}

/// Who starts runc: berthd's reaper, or the keeper (verbs that leave a process behind).
enum Launch {
    Reaper,
    Keeper(Keeper, Option<PathBuf>),
}

/// The `--pid-file` argument of an argument list.
fn opts_pid(a: &[OsString]) -> Option<PathBuf> {
    a.iter()
        .position(|x| x == "--pid-file")
        .and_then(|i| a.get(i + 1))
        .map(PathBuf::from)
}

/// Kills a runc that is abandoned (its deadline passed) unless disarmed.
struct KillOnDrop(Option<OwnedFd>);

impl KillOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(fd) = &self.0 {
            let _ = pidfd::send_signal(fd, libc::SIGKILL);
        }
    }
}

/// How one of runc's stdio slots is wired.
enum Slot {
    Null,
    Capture,
    Fd(OwnedFd),
}

/// Client for one runc binary with fixed global options.
#[derive(Clone)]
pub struct Runc {
    binary: PathBuf,
    reaper: Reaper,
    root: Option<PathBuf>,
    log: Option<PathBuf>,
    log_json: bool,
    systemd_cgroup: bool,
    keeper: Option<Keeper>,
    timeout: Duration,
}

impl Runc {
    /// The reaper is required: it is the only way runc's exit can be learnt.
    pub fn new(binary: impl Into<PathBuf>, reaper: Reaper) -> Self {
        Runc {
            binary: binary.into(),
            reaper,
            root: None,
            log: None,
            log_json: false,
            systemd_cgroup: false,
            keeper: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Starts `create` and detached `exec` through `keeper`, which then parents (and
    /// reports the exit of) the container process.
    pub fn keeper(mut self, keeper: Keeper) -> Self {
        self.keeper = Some(keeper);
        self
    }

    /// The deadline of every invocation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// runc's state directory (`--root`).
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// runc's log file (`--log`); its new entries are added to failure messages.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub fn log_format_json(mut self) -> Self {
        self.log_json = true;
        self
    }

    pub fn systemd_cgroup(mut self, enabled: bool) -> Self {
        self.systemd_cgroup = enabled;
        self
    }

    /// `runc create`: returns once the container's init waits for `start`; its pid is in
    /// `opts.pid_file`. With a keeper, the init is the keeper's child, named in the answer.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        opts: CreateOpts,
    ) -> Result<Option<Started>, RuncError> {
        let verb = if opts.start { "run" } else { "create" };
        let mut args = match opts.start {
            true => args(&["run", "--detach", "--bundle"]),
            false => args(&["create", "--bundle"]),
        };
        args.push(bundle.into());
        args.extend(["--pid-file".into(), opts.pid_file.into()]);
        let console = opts.console_socket.is_some();
        if let Some(socket) = opts.console_socket {
            args.extend(["--console-socket".into(), socket.into()]);
        }
        args.push(id.into());
        let io = stdio_slots(opts.stdio, console);
        let launch = self.launch_with_keeper(&opts_pid(&args));
        self.run_checked(verb, id, args, io, launch)
            .await
            .map(|o| o.target)
    }

    pub async fn start(&self, id: &str) -> Result<(), RuncError> {
        self.simple("start", id, args(&["start", id]))
            .await
            .map(drop)
    }

    pub async fn state(&self, id: &str) -> Result<ContainerState, RuncError> {
        let out = self.simple("state", id, args(&["state", id])).await?;
        decode("state", id, &out)
    }

    /// Sends `signal` to the init (or, with `all`, to every process of the container).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuncError> {
        let mut a = args(&["kill"]);
        if all {
            a.push("--all".into());
        }
        a.extend([id.into(), signal.to_string().into()]);
        self.simple("kill", id, a).await.map(drop)
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuncError> {
        let mut a = args(&["delete"]);
        if force {
            a.push("--force".into());
        }
        a.push(id.into());
        self.simple("delete", id, a).await.map(drop)
    }

    /// `runc exec`, attached: returns the process's exit status, which runc passes on; a
    /// non-zero status is then not an error. See [`Runc::exec_detached`].
    pub async fn exec(&self, id: &str, opts: ExecOpts) -> Result<i32, RuncError> {
        Ok(self.exec_inner(id, opts).await?.status)
    }

    /// `runc exec --detach`: returns once the process started (its pid in
    /// `opts.pid_file`); with a keeper, the process is the keeper's child, named here.
    pub async fn exec_detached(
        &self,
        id: &str,
        mut opts: ExecOpts,
    ) -> Result<Option<Started>, RuncError> {
        opts.detach = true;
        Ok(self.exec_inner(id, opts).await?.target)
    }

    async fn exec_inner(&self, id: &str, opts: ExecOpts) -> Result<Output, RuncError> {
        let mut a = args(&["exec", "--process"]);
        a.push(opts.process.into());
        a.extend(["--pid-file".into(), opts.pid_file.into()]);
        if opts.detach {
            a.push("--detach".into());
        }
        let console = opts.console_socket.is_some();
        if let Some(socket) = opts.console_socket {
            a.extend(["--console-socket".into(), socket.into()]);
        }
        a.push(id.into());
        let io = stdio_slots(opts.stdio, console);
        if opts.detach {
            let launch = self.launch_with_keeper(&opts_pid(&a));
            return self.run_checked("exec", id, a, io, launch).await;
        }
        self.run("exec", id, a, io, Launch::Reaper).await
    }

    fn launch_with_keeper(&self, pid_file: &Option<PathBuf>) -> Launch {
        match &self.keeper {
            Some(k) => Launch::Keeper(k.clone(), pid_file.clone()),
            None => Launch::Reaper,
        }
    }

    pub async fn pause(&self, id: &str) -> Result<(), RuncError> {
        self.simple("pause", id, args(&["pause", id]))
            .await
            .map(drop)
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuncError> {
        self.simple("resume", id, args(&["resume", id]))
            .await
            .map(drop)
    }

    /// Pids of every process in the container, as seen from the host.
    pub async fn ps(&self, id: &str) -> Result<Vec<i32>, RuncError> {
        let out = self
            .simple("ps", id, args(&["ps", "--format", "json", id]))
            .await?;
        decode("ps", id, &out)
    }

    /// One snapshot of the container's cgroup stats.
    pub async fn stats(&self, id: &str) -> Result<StatsEvent, RuncError> {
        let out = self
            .simple("events", id, args(&["events", "--stats", id]))
            .await?;
        decode("events", id, &out)
    }

    async fn simple(
        &self,
        verb: &'static str,
        id: &str,
        a: Vec<OsString>,
    ) -> Result<Output, RuncError> {
        let io = [Slot::Null, Slot::Capture, Slot::Capture];
        self.run_checked(verb, id, a, io, Launch::Reaper).await
    }

    async fn run_checked(
        &self,
        verb: &'static str,
        id: &str,
        a: Vec<OsString>,
        io: [Slot; 3],
        launch: Launch,
    ) -> Result<Output, RuncError> {
        let log_start = self.log_len();
        let out = self.run(verb, id, a, io, launch).await?;
        if out.status == 0 {
            return Ok(out);
        }
        Err(RuncError::CommandFailed {
            verb,
            id: id.to_owned(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            log: self.log_since(log_start),
        })
    }

    async fn run(
        &self,
        verb: &'static str,
        id: &str,
        a: Vec<OsString>,
        [stdin, stdout, stderr]: [Slot; 3],
        launch: Launch,
    ) -> Result<Output, RuncError> {
        let pipe_err = |source| RuncError::Pipe {
            verb,
            id: id.to_owned(),
            source,
        };
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(3);
        let mut captures = Vec::new();
        for (slot, fd) in [stdin, stdout, stderr].into_iter().zip(0..) {
            let own = match slot {
                Slot::Null => std::fs::OpenOptions::new()
                    .read(fd == 0)
                    .write(fd != 0)
                    .open("/dev/null")
                    .map_err(pipe_err)?
                    .into(),
                Slot::Fd(fd) => fd,
                Slot::Capture => {
                    let (read, write) =
                        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| pipe_err(e.into()))?;
                    captures.push((fd, read));
                    write
                }
            };
            fds.push(own);
        }
        let mut out = Capture::default();
        let mut err = Capture::default();
        for (fd, read) in captures {
            let rx = pipe::Receiver::from_owned_fd(read).map_err(pipe_err)?;
            if fd == 1 { &mut out } else { &mut err }.rx = Some(rx);
        }
        let mut argv: Vec<OsString> = vec![self.binary.clone().into()];
        argv.extend(self.global_args());
        argv.extend(a);
        let mut running = pin!(self.spawn(verb, id, argv, fds, launch));
        // Read while runc runs (it could fill a pipe and block), but stop at its exit:
        // a container that inherited a write end would otherwise keep us waiting for EOF.
        let deadline = tokio::time::sleep(self.timeout);
        let mut deadline = pin!(deadline);
        let (status, target) = loop {
            tokio::select! {
                done = &mut running => break done?,
                _ = out.read_some(), if out.rx.is_some() => {}
                _ = err.read_some(), if err.rx.is_some() => {}
                _ = &mut deadline => {
                    return Err(RuncError::Timeout { verb, id: id.to_owned(), after: self.timeout });
                }
            }
        };
        out.drain();
        err.drain();
        Ok(Output {
            status,
            stdout: out.buf,
            stderr: err.buf,
            target,
        })
    }

    /// Starts runc and waits for its exit. Dropped before then (the deadline passed), it
    /// kills runc through a pidfd opened while runc was certainly alive.
    async fn spawn(
        &self,
        verb: &'static str,
        id: &str,
        argv: Vec<OsString>,
        fds: Vec<OwnedFd>,
        launch: Launch,
    ) -> Result<(i32, Option<Started>), RuncError> {
        match launch {
            Launch::Reaper => {
                let launch_err = |source| RuncError::Launch {
                    verb,
                    id: id.to_owned(),
                    source,
                };
                let mut command = Command::new(&argv[0]);
                command.args(&argv[1..]);
                let [i, o, e]: [OwnedFd; 3] = fds.try_into().map_err(|_| {
                    launch_err(ReaperError::Spawn {
                        program: "runc".into(),
                        source: io::Error::other("three stdio descriptors expected"),
                    })
                })?;
                command
                    .stdin(Stdio::from(i))
                    .stdout(Stdio::from(o))
                    .stderr(Stdio::from(e));
                // Our copies of the write ends and of the caller's fds close with `command`,
                // dropped once it has spawned.
                let mut launched = self.reaper.launch(command).await.map_err(launch_err)?;
                tracing::debug!(verb, id, pid = launched.pid, "runc started");
                let kill = KillOnDrop(launched.pidfd.take());
                let exit = launched.wait().await.map_err(launch_err)?;
                kill.disarm();
                Ok((exit.status, None))
            }
            Launch::Keeper(keeper, pid_file) => {
                let keeper_err = |source| RuncError::Keeper {
                    verb,
                    id: id.to_owned(),
                    source,
                };
                let argv = argv
                    .into_iter()
                    .map(|a| a.into_string().map_err(|a| format!("{a:?} is not UTF-8")))
                    .collect::<Result<Vec<String>, String>>()
                    .map_err(|reason| {
                        keeper_err(KeeperError::Spawn {
                            program: "runc".into(),
                            reason,
                        })
                    })?;
                let [i, o, e]: [OwnedFd; 3] = fds.try_into().map_err(|_| {
                    keeper_err(KeeperError::Spawn {
                        program: "runc".into(),
                        reason: "three stdio descriptors expected".into(),
                    })
                })?;
                let spawned = keeper
                    .spawn(argv, [i, o, e], pid_file)
                    .await
                    .map_err(keeper_err)?;
                tracing::debug!(
                    verb,
                    id,
                    pid = spawned.who.pid,
                    "runc started by the keeper"
                );
                let kill = KillOnDrop(pidfd::open_checked(spawned.who).ok().flatten());
                let done = spawned.wait().await.map_err(keeper_err)?;
                kill.disarm();
                let target = done.target.map(|(who, exit)| Started { who, exit });
                Ok((done.exit.status, target))
            }
        }
    }

    fn global_args(&self) -> Vec<OsString> {
        let mut a = Vec::new();
        if let Some(root) = &self.root {
            a.extend(["--root".into(), root.into()]);
        }
        if let Some(log) = &self.log {
            a.extend(["--log".into(), log.into()]);
        }
        if self.log_json {
            a.extend(["--log-format".into(), "json".into()]);
        }
        if self.systemd_cgroup {
            a.push("--systemd-cgroup".into());
        }
        a
    }

    fn log_len(&self) -> u64 {
        self.log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// The errors runc logged since `offset` (the whole entry text if not JSON).
    fn log_since(&self, offset: u64) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_to_string(&mut text)
        });
        if read.is_err() {
            return String::new();
        }
        if !self.log_json {
            return text;
        }
        #[derive(Deserialize)]
        struct Entry {
            level: String,
            msg: String,
        }
        text.lines()
            .filter_map(|line| serde_json::from_str::<Entry>(line).ok())
            .filter(|e| matches!(e.level.as_str(), "error" | "fatal" | "panic"))
            .map(|e| e.msg)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// runc's stdio for create/exec: the caller's fds; gaps become /dev/null, or a
/// captured pipe with a console socket (runc's errors then cannot reach the pty).
fn stdio_slots(stdio: ProcessStdio, console: bool) -> [Slot; 3] {
    let gap = |fd: Option<OwnedFd>, output: bool| match fd {
        Some(fd) => Slot::Fd(fd),
        None if console && output => Slot::Capture,
        None => Slot::Null,
    };
    [
        gap(stdio.stdin, false),
        gap(stdio.stdout, true),
        gap(stdio.stderr, true),
    ]
}

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn decode<T: serde::de::DeserializeOwned>(
    verb: &'static str,
    id: &str,
    out: &Output,
) -> Result<T, RuncError> {
    serde_json::from_slice(&out.stdout).map_err(|source| RuncError::Decode {
        verb,
        id: id.to_owned(),
        source,
    })
}

/// One captured output pipe of a runc invocation.
#[derive(Default)]
struct Capture {
    rx: Option<pipe::Receiver>,
    buf: Vec<u8>,
}

impl Capture {
    /// Reads what is there (cancel-safe); closes on EOF or error.
    async fn read_some(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = match self.rx.as_mut() {
            Some(rx) => rx.read(&mut chunk).await,
            None => return,
        };
        match n {
            Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
            _ => self.rx = None,
        }
    }

    /// Takes what runc wrote before it exited without waiting for EOF.
    fn drain(&mut self) {
        let Some(rx) = self.rx.take() else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = rx.try_read(&mut chunk) {
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
