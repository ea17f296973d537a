//! Attaching the user's terminal to a task's process, as `ctr run` does: stdio through
//! FIFOs in a private temp dir, a raw terminal with `-t` (restored on every exit path),
//! SIGWINCH turned into `tasks.resize_pty`, other signals forwarded with `tasks.kill`, and
//! the process's exit status from `tasks.wait` (berthd keeps an exit until the task is
//! deleted, so a wait issued after a quick process has ended still gets it).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cmd::Ctx;
use crate::rpc::Client;

/// How long output may keep flowing after the process's exit was reported.
const DRAIN: Duration = Duration::from_secs(2);

/// The signals forwarded to the task (and SIGWINCH, which resizes its pty).
const SIGNALS: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// A private directory (mode 0700) with the stdio FIFOs of one process; removed on drop.
pub struct Fifos {
    dir: PathBuf,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

impl Fifos {
    pub fn new(id: &str, tty: bool) -> anyhow::Result<Fifos> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("berth-{id}-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create FIFO dir {}", dir.display()))?;
        let fifos = Fifos {
            stdin: dir.join("stdin").display().to_string(),
            stdout: dir.join("stdout").display().to_string(),
            stderr: if tty {
                String::new()
            } else {
                dir.join("stderr").display().to_string()
            },
            dir,
        };
        for path in [&fifos.stdin, &fifos.stdout, &fifos.stderr] {
            if !path.is_empty() {
                mkfifo(Path::new(path))?;
            }
        }
        Ok(fifos)
    }

    /// A task's existing stdio paths (for attach); nothing is removed on drop.
    pub fn existing(stdin: &str, stdout: &str, stderr: &str) -> Fifos {
        Fifos {
            dir: PathBuf::new(),
            stdin: stdin.to_owned(),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        }
    }

    pub fn params(&self) -> Value {
        json!({ "stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr })
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn mkfifo(path: &Path) -> anyhow::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot create FIFO {}", path.display()));
    }
    Ok(())
}

/// Opens a FIFO end without blocking (berthd holds the other end), then makes it blocking.
fn open_fifo(path: &str, write: bool) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open FIFO {path}"))?;
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    Ok(file)
}

fn no_reader(e: &anyhow::Error) -> bool {
    e.root_cause()
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.raw_os_error() == Some(libc::ENXIO))
}

/// Which process to attach to.
#[derive(Clone)]
pub struct Target {
    pub container_id: String,
    pub exec_id: String,
}

impl Target {
    fn params(&self, extra: Value) -> Value {
        let mut p = json!({ "container_id": self.container_id });
        if !self.exec_id.is_empty() {
            p["exec_id"] = json!(self.exec_id);
        }
        if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
            p.extend(extra);
        }
        p
    }
}

/// How the user's terminal is set while attached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TerminalMode {
    /// Every key goes to the task's terminal (`-t`).
    Raw,
    /// Keys arrive one by one and are not echoed, so a detach sequence works without
    /// Enter; Ctrl-C still raises SIGINT, which is forwarded (a task without a terminal).
    Keys,
}

/// The terminal's mode before attaching changed it; restored on drop.
pub struct Terminal {
    saved: libc::termios,
}

impl Terminal {
    /// `None` when stdin is not a terminal (nothing to change or restore).
    pub fn enter(mode: TerminalMode) -> Option<Terminal> {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a properly sized termios.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut set = saved;
            match mode {
                TerminalMode::Raw => libc::cfmakeraw(&mut set),
                TerminalMode::Keys => {
                    // IXON would swallow Ctrl-Q (XON), IEXTEN Ctrl-V and Ctrl-O.
                    set.c_lflag &= !(libc::ICANON | libc::ECHO | libc::IEXTEN);
                    set.c_iflag &= !libc::IXON;
                    set.c_cc[libc::VMIN] = 1;
                    set.c_cc[libc::VTIME] = 0;
                }
            }
            libc::tcsetattr(0, libc::TCSANOW, &set);
            Some(Terminal { saved })
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SAFETY: restores the termios read from fd 0 in `enter`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// The size of the user's terminal (columns, rows), if stdin is one.
pub fn window_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, which is valid and writable.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some((ws.ws_col, ws.ws_row))
    }
}

/// Blocks the forwarded signals in this thread and every thread it starts afterwards, so
/// only the signal thread's `sigwait` sees them.
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a local, zero-initialised set; pthread_sigmask only
    // reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Called after SIGTERM or SIGHUP was forwarded, for a session that ends on them.
pub type Leave = Box<dyn Fn(libc::c_int) + Send>;

/// Forwards the signals of `set` to the task (SIGWINCH resizes its terminal); with
/// `leave`, SIGTERM and SIGHUP also end the session (`berth attach`: `timeout 3 berth
/// attach web` must end even when the task ignores the signal, as a PID 1 does).
pub fn signal_thread(
    ctx: &Ctx,
    target: Target,
    tty: bool,
    set: libc::sigset_t,
    leave: Option<Leave>,
) {
    let (socket, ns) = (ctx.socket.clone(), ctx.namespace.clone());
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised sigset and `sig` a writable int.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        // A connection per signal: signals are rare, and a kept one is closed by berthd's
        // idle timeout (60 s), which silently lost the next signal.
        let sent = Client::connect(&socket, &ns).and_then(|mut client| {
            if sig == libc::SIGWINCH {
                if let (true, Some((w, h))) = (tty, window_size()) {
                    let p = target.params(json!({ "width": w, "height": h }));
                    client.call("tasks.resize_pty", p)?;
                }
                return Ok(());
            }
            client
                .call("tasks.kill", target.params(json!({ "signal": sig })))
                .map(drop)
        });
        if let Err(e) = sent {
            eprintln!("berth: signal {sig} was not forwarded: {e}\r");
        }
        if let (Some(leave), libc::SIGTERM | libc::SIGHUP) = (&leave, sig) {
            leave(sig);
            return;
        }
    });
}

fn copy_out(mut from: File, to_stderr: bool, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let written = if to_stderr {
                io::stderr().write_all(&buf[..n])
            } else {
                let mut out = io::stdout().lock();
                out.write_all(&buf[..n]).and_then(|()| out.flush())
            };
            if written.is_err() {
                break;
            }
        }
        let _ = done.send(());
    });
}

/// What ends an attached session.
enum Ended {
    Exited(Result<Value, crate::rpc::RpcError>),
    Detached,
}

/// Copies the user's input to the task's stdin FIFO; with `keys`, the detach sequence
/// ends the session instead (the task's stdin stays open: berthd holds it).
fn copy_in(
    ctx: &Ctx,
    target: Target,
    mut to: File,
    keys: Option<Vec<u8>>,
    ended: mpsc::Sender<Ended>,
) {
    let (socket, ns) = (ctx.socket.clone(), ctx.namespace.clone());
    std::thread::spawn(move || {
        // The process may exit (closing the FIFO's reader) while input is still coming:
        // that is EPIPE for this thread, not a SIGPIPE that kills berth. SIGPIPE is
        // thread-directed, so blocking it here keeps `berth | head` behaving elsewhere.
        // SAFETY: sigset operations on a local set; pthread_sigmask only reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut detector = keys.map(crate::cmd::attach::Detector::new);
        let mut buf = [0u8; 8192];
        let mut stdin = io::stdin().lock();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut forward = Vec::new();
            let detached = match detector.as_mut() {
                Some(d) => d.feed(&buf[..n], &mut forward),
                None => {
                    forward.extend_from_slice(&buf[..n]);
                    false
                }
            };
            if to.write_all(&forward).is_err() {
                break;
            }
            if detached {
                let _ = ended.send(Ended::Detached);
                return;
            }
        }
        drop(to);
        if let Ok(mut client) = Client::connect(&socket, &ns) {
            let _ = client.call("tasks.close_io", target.params(json!({})));
        }
    });
}

/// Attaches to `target`'s FIFOs, runs `start` (tasks.start), and returns the exit status
/// once the process has exited and its output has been copied; with `detach_keys`, that
/// sequence on stdin ends the session at once (`None` is returned), the task running on.
pub fn attach_and_wait(
    ctx: &Ctx,
    client: &mut Client,
    target: &Target,
    fifos: &Fifos,
    tty: bool,
    start: impl FnOnce(&mut Client) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    attach_detachable(ctx, client, target, fifos, tty, None, start)?
        .ok_or_else(|| anyhow::anyhow!("detached"))
}

/// [`attach_and_wait`] with detach keys: `Ok(None)` when the user detached.
pub fn attach_detachable(
    ctx: &Ctx,
    client: &mut Client,
    target: &Target,
    fifos: &Fifos,
    tty: bool,
    detach_keys: Option<Vec<u8>>,
    start: impl FnOnce(&mut Client) -> anyhow::Result<()>,
) -> anyhow::Result<Option<i32>> {
    let set = block_signals();
    let (out_tx, out_rx) = mpsc::channel();
    let mut outputs = 0;
    for (path, to_stderr) in [(&fifos.stdout, false), (&fifos.stderr, true)] {
        if !path.is_empty() {
            copy_out(open_fifo(path, false)?, to_stderr, out_tx.clone());
            outputs += 1;
        }
    }
    let stdin = if fifos.stdin.is_empty() {
        None
    } else {
        match open_fifo(&fifos.stdin, true) {
            Ok(f) => Some(f),
            // No reader: the process (started with its create) has already closed its
            // stdin or exited; there is nothing to send it.
            Err(e) if no_reader(&e) => None,
            Err(e) => return Err(e),
        }
    };
    let (wait_tx, wait_rx) = mpsc::channel();
    let ended_tx = wait_tx.clone();
    // With detach keys the wait races the keys, on a connection of its own; without, the
    // wait is this connection's next call (berthd keeps the exit, so it cannot be missed).
    let waits_here = detach_keys.is_none();
    if !waits_here {
        let (socket, ns, target) = (ctx.socket.clone(), ctx.namespace.clone(), target.clone());
        std::thread::spawn(move || {
            let result = Client::connect(&socket, &ns)
                .and_then(|mut c| c.call("tasks.wait", target.params(json!({}))));
            let _ = wait_tx.send(Ended::Exited(result));
        });
    }
    let mode = match (tty, detach_keys.is_some()) {
        (true, _) => Some(TerminalMode::Raw),
        (false, true) => Some(TerminalMode::Keys),
        (false, false) => None,
    };
    let raw = mode.and_then(Terminal::enter);
    signal_thread(ctx, target.clone(), tty, set, None);
    start(client)?;
    if tty {
        if let Some((w, h)) = window_size() {
            let p = target.params(json!({ "width": w, "height": h }));
            let _ = client.call("tasks.resize_pty", p);
        }
    }
    if let Some(stdin) = stdin {
        copy_in(ctx, target.clone(), stdin, detach_keys, ended_tx);
    } else if let Some(keys) = detach_keys {
        watch_keys(keys, ended_tx);
    }
    let ended = match waits_here {
        true => Ended::Exited(client.call("tasks.wait", target.params(json!({})))),
        false => wait_rx
            .recv()
            .context("the wait for the task's exit was lost")?,
    };
    let exit = match ended {
        Ended::Exited(r) => r?,
        Ended::Detached => return Ok(None),
    };
    let deadline = std::time::Instant::now() + DRAIN;
    for _ in 0..outputs {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if out_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    drop(raw);
    Ok(Some(exit["exit_status"].as_i64().unwrap_or(255) as i32))
}

/// A task without stdin: the user's keys only matter for the detach sequence.
fn watch_keys(keys: Vec<u8>, ended: mpsc::Sender<Ended>) {
    std::thread::spawn(move || {
        let mut detector = crate::cmd::attach::Detector::new(keys);
        let mut buf = [0u8; 1024];
        let mut stdin = io::stdin().lock();
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if detector.feed(&buf[..n], &mut Vec::new()) {
                let _ = ended.send(Ended::Detached);
                return;
            }
        }
    });
}
