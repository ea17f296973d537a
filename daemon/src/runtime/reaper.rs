//! The one owner of `waitpid` in the daemon.
//!
//! berthd is a child subreaper: besides the `runc` invocations it starts, every
//! container init is re-parented to it when `runc create` exits. Exactly one task
//! calls `waitpid(-1)`; every exit it reaps is published to subscribers and
//! to per-pid waiters. Anything that starts a process must *subscribe before it
//! spawns* ([`Reaper::spawn`] does both), so an exit can never be reaped before
//! someone is listening for it. Nothing else in the daemon may call `wait`,
//! `waitpid` or tokio's `Child::wait` (tokio also reaps dropped children, which
//! would steal exits from this reaper).

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

/// How many exits nobody waited for are remembered for a later [`Reaper::wait_pid`].
/// Bounded because orphaned grandchildren nobody tracks also land here.
const UNCLAIMED_CAPACITY: usize = 1024;

/// Errors of the reaper.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    /// prctl(PR_SET_CHILD_SUBREAPER) failed.
    #[error("cannot make berthd a child subreaper: {0}")]
    Subreaper(#[source] Errno),
    /// The SIGCHLD stream could not be installed.
    #[error("cannot listen for SIGCHLD: {0}")]
    Signal(#[source] std::io::Error),
    /// The program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The reaper task has ended (its runtime shut down), so no exit will arrive.
    #[error("the reaper stopped before process {pid} exited")]
    Stopped { pid: i32 },
}

/// One reaped process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, or 128 + the signal number that killed the process (shell convention).
    pub status: i32,
    pub at: SystemTime,
}

#[derive(Default)]
struct State {
    next_subscriber: u64,
    subscribers: HashMap<u64, mpsc::UnboundedSender<Exit>>,
    waiters: HashMap<i32, Vec<oneshot::Sender<Exit>>>,
    unclaimed: HashMap<i32, Exit>,
    unclaimed_order: VecDeque<i32>,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Held while reaping and while spawning: std's `spawn` itself waits for a child
    /// whose `exec` failed, and that wait must not find the child already reaped.
    spawn_lock: Mutex<()>,
}

/// Handle to the process-wide reaper; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    shared: Arc<Shared>,
}

/// Every exit reaped after [`Reaper::subscribe`] returned, in order, unbounded:
/// a slow subscriber never loses one. Drop it as soon as the pids it was taken
/// for have exited.
pub struct Subscription {
    id: u64,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Exit>,
    /// Exits already received while waiting for another pid.
    seen: Vec<Exit>,
}

/// A process started through [`Reaper::spawn`], with the subscription taken before it.
pub struct Launched {
    pub pid: i32,
    pub subscription: Subscription,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the tables consistent (every change is one
    // insert/remove), so keep going rather than poison the whole daemon.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reaper {
    /// Makes this process a child subreaper and starts the reaping task on the
    /// current tokio runtime. Call once per process: a second reaper would steal
    /// exits from the first.
    pub fn start() -> Result<Reaper, ReaperError> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(ReaperError::Subreaper(Errno::last()));
        }
        let mut sigchld = signal(SignalKind::child()).map_err(ReaperError::Signal)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            spawn_lock: Mutex::new(()),
        });
        let task_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _stop = StopOnDrop(Arc::clone(&task_shared));
            loop {
                // Children may have exited before the handler was installed, and
                // SIGCHLDs coalesce: always reap until nothing is left.
                reap_all(&task_shared);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(Reaper { shared })
    }

    /// Receives every exit from now on. Take it *before* starting the process you
    /// care about.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = lock(&self.shared.state);
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        if !state.stopped {
            state.subscribers.insert(id, tx);
        }
        Subscription {
            id,
            shared: Arc::clone(&self.shared),
            rx,
            seen: Vec::new(),
        }
    }

    /// Subscribes, then spawns `command` (never through tokio, whose `Child`
    /// would reap behind our back). The std `Child` is dropped without waiting.
    pub fn spawn(&self, command: &mut Command) -> Result<Launched, ReaperError> {
        let subscription = self.subscribe();
        let child = {
            let _guard = lock(&self.shared.spawn_lock);
            command.spawn()
        }
        .map_err(|source| ReaperError::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id() as i32;
        drop(child);
        Ok(Launched { pid, subscription })
    }

    /// Waits for `pid`, which must be a child of ours (or re-parented to us) whose
    /// exit was not yet claimed. Finds exits that happened before the call in a
    /// small table, so it suits pids learnt after the fact (a container init read
    /// from runc's pid file); prefer a [`Subscription`] taken before the spawn.
    pub async fn wait_pid(&self, pid: i32) -> Result<Exit, ReaperError> {
        let rx = {
            let mut state = lock(&self.shared.state);
            if let Some(exit) = state.unclaimed.remove(&pid) {
                state.unclaimed_order.retain(|p| *p != pid);
                return Ok(exit);
            }
            if state.stopped {
                return Err(ReaperError::Stopped { pid });
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.entry(pid).or_default().push(tx);
            rx
        };
        rx.await.map_err(|_| ReaperError::Stopped { pid })
    }
}

impl Launched {
    /// Waits for the launched process to exit.
    pub async fn wait(mut self) -> Result<Exit, ReaperError> {
        self.subscription.wait_for(self.pid).await
    }
}

impl Subscription {
    /// The next exit, or `None` once the reaper has stopped.
    pub async fn recv(&mut self) -> Option<Exit> {
        if !self.seen.is_empty() {
            return Some(self.seen.remove(0));
        }
        self.rx.recv().await
    }

    /// Waits until `pid` exits, keeping other exits for later `wait_for`/`recv`
    /// calls. Cancel-safe: an exit received is never dropped.
    pub async fn wait_for(&mut self, pid: i32) -> Result<Exit, ReaperError> {
        let exit = match self.seen.iter().position(|e| e.pid == pid) {
            Some(i) => self.seen.remove(i),
            None => loop {
                match self.rx.recv().await {
                    Some(exit) if exit.pid == pid => break exit,
                    Some(other) => self.seen.push(other),
                    None => return Err(ReaperError::Stopped { pid }),
                }
            },
        };
        claim(&self.shared, exit);
        Ok(exit)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.shared.state).subscribers.remove(&self.id);
    }
}

/// Removes an exit a subscriber consumed from the unclaimed table, so a later
/// process reusing the pid is not answered with this stale exit.
fn claim(shared: &Shared, exit: Exit) {
    let mut state = lock(&shared.state);
    if state.unclaimed.get(&exit.pid) == Some(&exit) {
        state.unclaimed.remove(&exit.pid);
        state.unclaimed_order.retain(|p| *p != exit.pid);
    }
}

fn reap_all(shared: &Shared) {
    let _guard = lock(&shared.spawn_lock);
    loop {
        let exit = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => exit_of(pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => exit_of(pid, 128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                tracing::error!(%errno, "waitpid(-1) failed");
                return;
            }
        };
        publish(shared, exit);
    }
}

fn exit_of(pid: Pid, status: i32) -> Exit {
    Exit {
        pid: pid.as_raw(),
        status,
        at: SystemTime::now(),
    }
}

fn publish(shared: &Shared, exit: Exit) {
    tracing::debug!(pid = exit.pid, status = exit.status, "reaped");
    let mut state = lock(&shared.state);
    state.subscribers.retain(|_, tx| tx.send(exit).is_ok());
    if let Some(waiters) = state.waiters.remove(&exit.pid) {
        for tx in waiters {
            let _ = tx.send(exit);
        }
        return;
    }
    // A newer exit for the same pid supersedes the old one (pid reuse).
    if state.unclaimed.insert(exit.pid, exit).is_some() {
        state.unclaimed_order.retain(|p| *p != exit.pid);
    }
    state.unclaimed_order.push_back(exit.pid);
    while state.unclaimed_order.len() > UNCLAIMED_CAPACITY {
        if let Some(oldest) = state.unclaimed_order.pop_front() {
            state.unclaimed.remove(&oldest);
        }
    }
}

/// Drops every sender when the reaping task ends, so waiters get
/// [`ReaperError::Stopped`] instead of hanging.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.stopped = true;
        state.subscribers.clear();
        state.waiters.clear();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Duration;

    /// One reaper per test process: the subreaper flag and SIGCHLD are process-wide,
    /// and a second reaper would steal exits. It runs on its own runtime because each
    /// `#[tokio::test]` runtime dies with its test.
    pub(crate) fn shared_reaper() -> Reaper {
        static REAPER: OnceLock<(tokio::runtime::Runtime, Reaper)> = OnceLock::new();
        REAPER
            .get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("reaper runtime");
                let reaper = {
                    let _context = rt.enter();
                    Reaper::start().expect("start reaper")
                };
                (rt, reaper)
            })
            .1
            .clone()
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[tokio::test]
    async fn exit_code_and_signal_are_reported() {
        let reaper = shared_reaper();
        let code = reaper.spawn(&mut sh("exit 3")).expect("spawn");
        let killed = reaper.spawn(&mut sh("kill -9 $$")).expect("spawn");
        let code = tokio::time::timeout(Duration::from_secs(10), code.wait()).await;
        assert_eq!(code.expect("in time").expect("exit").status, 3);
        let killed = tokio::time::timeout(Duration::from_secs(10), killed.wait()).await;
        assert_eq!(killed.expect("in time").expect("exit").status, 137);
    }

    #[tokio::test]
    async fn subscription_keeps_exits_of_other_pids() {
        let reaper = shared_reaper();
        let mut sub = reaper.subscribe();
        let fast = reaper.spawn(&mut sh("exit 5")).expect("spawn").pid;
        let slow = reaper
            .spawn(&mut sh("sleep 0.2; exit 6"))
            .expect("spawn")
            .pid;
        let wait = async {
            let slow_exit = sub.wait_for(slow).await.expect("slow");
            // `fast` exited first and must still be there, though we waited for `slow`.
            let fast_exit = sub.wait_for(fast).await.expect("fast");
            (slow_exit.status, fast_exit.status)
        };
        let statuses = tokio::time::timeout(Duration::from_secs(10), wait).await;
        assert_eq!(statuses.expect("in time"), (6, 5));
    }

    #[tokio::test]
    async fn wait_pid_finds_an_exit_that_happened_before_the_call() {
        let reaper = shared_reaper();
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // Like a container init: a grandchild re-parented to us whose pid we only
        // learn from a file, and which may exit before anyone asks.
        let script = format!("(sleep 0.1; exit 9) & echo $! > {}", pid_file.display());
        let launched = reaper.spawn(&mut sh(&script)).expect("spawn");
        launched.wait().await.expect("parent exit");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "orphan {pid} never reaped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let exit = tokio::time::timeout(Duration::from_secs(1), reaper.wait_pid(pid))
            .await
            .expect("already reaped, so immediate")
            .expect("exit");
        assert_eq!(exit.status, 9);
    }
}
