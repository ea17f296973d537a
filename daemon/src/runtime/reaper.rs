//! The one owner of `waitpid` in the daemon.
//!
//! berthd is a child subreaper: besides the `runc` invocations it starts, every
//! container init is re-parented to it when `runc create` exits. Exactly one task
//! calls `waitpid(-1)`; every exit it reaps is published to subscribers.
//! Anything that starts a process must *subscribe before it spawns*
//! ([`Reaper::spawn`] does both), so an exit can never be reaped before someone is
//! listening for it. Task processes are not berthd's children at all: the keeper
//! (`crate::keeper`) parents and reaps them. Nothing else in the daemon may call `wait`,
//! `waitpid` or tokio's `Child::wait` (tokio also reaps dropped children, which
//! would steal exits from this reaper).

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

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
    /// When the process started (see [`crate::keeper::Identity`]), read before it was
    /// reaped; 0 if `/proc` did not say.
    pub start: u64,
    /// The exit code, or 128 + the signal number that killed the process (shell convention).
    pub status: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    pub at: SystemTime,
}

/// How many exits are kept for [`Reaper::claim`]: a task orphaned by its keeper's death
/// may be reaped here before its monitor learns the keeper is gone.
const RECENT_CAPACITY: usize = 1024;

#[derive(Default)]
struct State {
    next_subscriber: u64,
    subscribers: HashMap<u64, mpsc::UnboundedSender<Exit>>,
    /// Waiters for the exit of one process, by pid and start time.
    claims: HashMap<(i32, u64), oneshot::Sender<Exit>>,
    /// The latest exits nobody claimed, newest last.
    recent: VecDeque<Exit>,
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
    /// A pidfd opened before the process could be reaped, so it names this process and no
    /// other: signal it through this, never through the pid.
    pub pidfd: Option<OwnedFd>,
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

    /// The exit of the process `pid` that started at `start` (its identity), whenever it is
    /// reaped here, also if that was before this call (among the last [`RECENT_CAPACITY`]
    /// exits). Only a process re-parented to berthd is ever reaped here: the tasks of a
    /// keeper that died while berthd ran. The receiver errs once the reaper stops.
    pub fn claim(&self, pid: i32, start: u64) -> oneshot::Receiver<Exit> {
        let (tx, rx) = oneshot::channel();
        let mut state = lock(&self.shared.state);
        if let Some(i) = state
            .recent
            .iter()
            .rposition(|e| e.pid == pid && e.start == start)
        {
            if let Some(exit) = state.recent.remove(i) {
                let _ = tx.send(exit);
            }
        } else if !state.stopped {
            state.claims.insert((pid, start), tx);
        }
        rx
    }

    /// Subscribes, then spawns `command` (never through tokio, whose `Child`
    /// would reap behind our back). The std `Child` is dropped without waiting.
    pub fn spawn(&self, command: &mut Command) -> Result<Launched, ReaperError> {
        let subscription = self.subscribe();
        let (pid, pidfd) = {
            // Held until the pidfd is open: the reaper cannot reap the child meanwhile, so
            // the pid still names it.
            let _guard = lock(&self.shared.spawn_lock);
            let child = command.spawn().map_err(|source| ReaperError::Spawn {
                program: command.get_program().to_string_lossy().into_owned(),
                source,
            })?;
            let pid = child.id() as i32;
            (pid, super::pidfd::open(pid).ok().flatten())
        };
        Ok(Launched {
            pid,
            pidfd,
            subscription,
        })
    }
}

impl Reaper {
    /// [`Reaper::spawn`] on tokio's blocking pool, for async callers: fork and exec hold
    /// their thread until the child has exec'd (vfork), which is no work for an async
    /// worker. `command` (and the descriptors it holds for the child) is dropped there.
    pub async fn launch(&self, mut command: Command) -> Result<Launched, ReaperError> {
        let reaper = self.clone();
        let program = command.get_program().to_string_lossy().into_owned();
        tokio::task::spawn_blocking(move || reaper.spawn(&mut command))
            .await
            .unwrap_or_else(|e| {
                Err(ReaperError::Spawn {
                    program,
                    source: std::io::Error::other(e.to_string()),
                })
            })
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
        if let Some(i) = self.seen.iter().position(|e| e.pid == pid) {
            return Ok(self.seen.remove(i));
        }
        loop {
            match self.rx.recv().await {
                Some(exit) if exit.pid == pid => return Ok(exit),
                Some(other) => self.seen.push(other),
                None => return Err(ReaperError::Stopped { pid }),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.shared.state).subscribers.remove(&self.id);
    }
}

fn reap_all(shared: &Shared) {
    let _guard = lock(&shared.spawn_lock);
    loop {
        // Named first (WNOWAIT leaves it a zombie, so /proc still has its start time),
        // then reaped.
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, peek) {
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => pid,
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(errno) => {
                tracing::error!(%errno, "waitid(P_ALL) failed");
                return;
            }
        };
        let start = crate::keeper::proto::start_time(pid.as_raw()).unwrap_or(0);
        let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => exit_of(pid, start, code, None),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                exit_of(pid, start, 128 + signal as i32, Some(signal as i32))
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(errno) => {
                tracing::error!(%errno, pid = pid.as_raw(), "waitpid failed");
                return;
            }
        };
        publish(shared, exit);
    }
}

fn exit_of(pid: Pid, start: u64, status: i32, signal: Option<i32>) -> Exit {
    Exit {
        pid: pid.as_raw(),
        start,
        status,
        signal,
        at: SystemTime::now(),
    }
}

fn publish(shared: &Shared, exit: Exit) {
    tracing::debug!(pid = exit.pid, status = exit.status, "reaped");
    // An exit nobody subscribed to (an orphan re-parented to berthd) is kept for a while
    // by identity, pid *and* start time, never by pid alone: see [`Reaper::claim`].
    let mut state = lock(&shared.state);
    state.subscribers.retain(|_, tx| tx.send(exit).is_ok());
    match state.claims.remove(&(exit.pid, exit.start)) {
        Some(claim) => {
            let _ = claim.send(exit);
        }
        None => {
            state.recent.push_back(exit);
            if state.recent.len() > RECENT_CAPACITY {
                state.recent.pop_front();
            }
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
        state.claims.clear();
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
    async fn a_claim_gets_the_exit_of_that_identity_before_or_after_it_is_reaped() {
        let reaper = shared_reaper();
        let late = reaper.spawn(&mut sh("sleep 0.3; exit 7")).expect("spawn");
        let early = reaper.spawn(&mut sh("kill -TERM $$")).expect("spawn");
        let late_start = crate::keeper::proto::start_time(late.pid).expect("alive");
        let claim = reaper.claim(late.pid, late_start);
        let mut early_sub = early.subscription;
        let early_exit = early_sub.wait_for(early.pid).await.expect("early exit");
        // Claimed after it was reaped: kept by identity, with its signal.
        let got = reaper
            .claim(early.pid, early_exit.start)
            .await
            .expect("kept");
        assert_eq!((got.status, got.signal), (143, Some(15)));
        // A claim of the right pid with another start time gets nothing.
        let wrong = reaper.claim(late.pid, late_start + 1);
        let got = tokio::time::timeout(Duration::from_secs(10), claim).await;
        let got = got.expect("in time").expect("claimed");
        assert_eq!((got.pid, got.status, got.signal), (late.pid, 7, None));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), wrong)
                .await
                .is_err(),
            "another start time is another process"
        );
    }
}
