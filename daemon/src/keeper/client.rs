//! berthd's side of the keeper: one connection, one reader task that routes each reply to
//! the request that asked for it and each exit to whoever waits for that [`Identity`].
//!
//! Waiters are registered by the reader itself, at the moment it reads the message that
//! names the process (`Spawned`, `Watched`, a runc `Exit` naming its target), so an exit
//! that follows in the very next message always finds its waiter: no exit is parked in a
//! table on the chance that someone asks later. Exits nobody waits for (those the keeper
//! replays to a restarted berthd, or of a create that was cut off) go to [`Keeper::orphans`].

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use super::proto::{self, ExitRecord, Held, Identity, Reply, Request, Watch};
use super::server;
use crate::runtime::reaper::Reaper;

/// How long berthd waits for a keeper it started to listen, and for any one reply.
const START_LIMIT: Duration = Duration::from_secs(10);
const REPLY_LIMIT: Duration = Duration::from_secs(30);

/// Errors talking to the keeper.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The keeper could not be started or reached.
    #[error("cannot reach the keeper at {path}: {reason}")]
    Connect { path: PathBuf, reason: String },
    /// The connection broke: the keeper died. What it did not report is lost.
    #[error("the keeper is gone (it died or was killed)")]
    Lost,
    /// The keeper did not answer in time.
    #[error("the keeper did not answer within {0:?}")]
    Timeout(Duration),
    /// The keeper could not start the program.
    #[error("the keeper could not start {program}: {reason}")]
    Spawn { program: String, reason: String },
    /// A message could not be sent.
    #[error("sending to the keeper: {0}")]
    Send(nix::Error),
}

/// The exit of a program the keeper spawned, with the process its pid file named.
pub struct SpawnExit {
    pub exit: ExitRecord,
    /// The container process runc left running, and its exit to come.
    pub target: Option<(Identity, ExitWait)>,
}

/// One process's exit, delivered once. An error means the keeper died first: the status
/// is lost and must be reported as such.
pub type ExitWait = oneshot::Receiver<ExitRecord>;

/// How a process named after a restart stands.
pub enum Watched {
    Exited(ExitRecord),
    Alive(ExitWait),
    Unknown,
}

/// A program the keeper has started.
pub struct Spawned {
    pub who: Identity,
    exit: oneshot::Receiver<SpawnExit>,
}

impl Spawned {
    pub async fn wait(self) -> Result<SpawnExit, KeeperError> {
        self.exit.await.map_err(|_| KeeperError::Lost)
    }
}

enum Pending {
    Spawn(
        oneshot::Sender<Result<Identity, String>>,
        oneshot::Sender<SpawnExit>,
    ),
    Watch(
        Identity,
        oneshot::Sender<Watch>,
        oneshot::Sender<ExitRecord>,
    ),
    Fds(oneshot::Sender<Vec<(Held, OwnedFd)>>),
    Settle(oneshot::Sender<()>),
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, Pending>,
    spawned: HashMap<Identity, oneshot::Sender<SpawnExit>>,
    waiters: HashMap<Identity, oneshot::Sender<ExitRecord>>,
}

struct Conn {
    fd: AsyncFd<OwnedFd>,
    routes: Mutex<Routes>,
    next: AtomicU64,
    dead: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handle to this state dir's keeper; cheap to clone. Reconnects (starting a new keeper)
/// when the old one is gone.
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    state: PathBuf,
    reaper: Reaper,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    orphans_tx: mpsc::UnboundedSender<ExitRecord>,
    orphans_rx: Mutex<Option<mpsc::UnboundedReceiver<ExitRecord>>>,
    /// Counts the connections that broke: each is a keeper that died.
    deaths: tokio::sync::watch::Sender<u64>,
}

impl Keeper {
    /// A handle; nothing is started until [`Keeper::connect`].
    pub fn new(state: &Path, reaper: Reaper) -> Keeper {
        let (orphans_tx, orphans_rx) = mpsc::unbounded_channel();
        Keeper {
            inner: Arc::new(Inner {
                state: state.to_owned(),
                reaper,
                conn: tokio::sync::Mutex::new(None),
                orphans_tx,
                orphans_rx: Mutex::new(Some(orphans_rx)),
                deaths: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// Exits nobody waits for, including every exit the keeper stored while berthd was
    /// down. Whoever takes this must store or discard each, then [`Keeper::ack`] it.
    pub fn orphans(&self) -> Option<mpsc::UnboundedReceiver<ExitRecord>> {
        lock(&self.inner.orphans_rx).take()
    }

    /// Changes each time the connection to a keeper breaks (the keeper died), for whoever
    /// must start its successor at once and hand it what the dead one held.
    pub fn deaths(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.deaths.subscribe()
    }

    /// Makes sure a keeper serves, starting a new one if the last died; what the new one
    /// replays goes to [`Keeper::orphans`].
    pub async fn ensure(&self) -> Result<(), KeeperError> {
        self.conn().await.map(drop)
    }

    /// Connects to the keeper, starting one if none listens. Returns the exits it had
    /// stored, for start-up recovery to match against its rows.
    pub async fn connect(&self) -> Result<Vec<ExitRecord>, KeeperError> {
        let mut slot = self.inner.conn.lock().await;
        let (conn, stored) = self.open().await?;
        *slot = Some(conn);
        Ok(stored)
    }

    async fn conn(&self) -> Result<Arc<Conn>, KeeperError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.dead.load(Ordering::Acquire) {
                return Ok(Arc::clone(c));
            }
        }
        tracing::warn!("the keeper is gone; starting a new one");
        let (conn, stored) = self.open().await?;
        for exit in stored {
            let _ = self.inner.orphans_tx.send(exit);
        }
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn open(&self) -> Result<(Arc<Conn>, Vec<ExitRecord>), KeeperError> {
        let path = server::socket_path(&self.inner.state);
        let fail = |reason: String| KeeperError::Connect {
            path: path.clone(),
            reason,
        };
        let fd = match dial(&path) {
            Ok(fd) => fd,
            Err(_) => {
                self.start_keeper().map_err(|e| fail(e.to_string()))?;
                let deadline = Instant::now() + START_LIMIT;
                loop {
                    match dial(&path) {
                        Ok(fd) => break fd,
                        Err(e) if Instant::now() > deadline => return Err(fail(e.to_string())),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }
        };
        // SAFETY: the AsyncFd owns `fd`, an OwnedFd whose raw fd stays open and unchanged
        // until the AsyncFd (and with it the OwnedFd) is dropped.
        let fd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| fail(e.into_parts().1.to_string()))?;
        let conn = Conn {
            fd,
            routes: Mutex::new(Routes::default()),
            next: AtomicU64::new(1),
            dead: AtomicBool::new(false),
        };
        conn.send(
            &Request::Hello {
                version: proto::VERSION,
            },
            &[],
        )
        .await?;
        let mut stored = Vec::new();
        let pid = loop {
            let (reply, _) = tokio::time::timeout(REPLY_LIMIT, conn.recv())
                .await
                .map_err(|_| KeeperError::Timeout(REPLY_LIMIT))??;
            match reply {
                Reply::Exit { exit, .. } => stored.push(exit),
                Reply::Hello { version, pid } if version == proto::VERSION => break pid,
                Reply::Hello { version, .. } => {
                    return Err(fail(format!(
                        "it speaks version {version}, berthd {}; stop its tasks and kill it",
                        proto::VERSION
                    )))
                }
                other => return Err(fail(format!("unexpected first reply {other:?}"))),
            }
        };
        let conn = Arc::new(conn);
        tokio::spawn(read_loop(
            Arc::clone(&conn),
            self.inner.orphans_tx.clone(),
            self.inner.deaths.clone(),
        ));
        tracing::info!(
            keeper = pid,
            stored = stored.len(),
            "connected to the keeper"
        );
        Ok((conn, stored))
    }

    /// Starts `berth-keeper --state DIR` (installed beside berthd; else `berthd keeper`) in
    /// a session of its own, so neither a terminal's signals nor a kill of berthd's process
    /// group reach it.
    fn start_keeper(&self) -> std::io::Result<()> {
        let exe = std::env::current_exe()?;
        let small = exe.with_file_name("berth-keeper");
        let mut cmd = if small.is_file() {
            Command::new(small)
        } else {
            let mut cmd = Command::new(exe);
            cmd.arg("keeper");
            cmd
        };
        cmd.arg("--state").arg(&self.inner.state);
        cmd.current_dir("/");
        // SAFETY: setsid is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let launched = self
            .inner
            .reaper
            .spawn(&mut cmd)
            .map_err(std::io::Error::other)?;
        tracing::info!(pid = launched.pid, "started the keeper");
        // Its exit (if it dies while we run) is reaped and dropped by the reaper.
        drop(launched);
        Ok(())
    }

    /// Has the keeper start `argv` with `stdio`; with `pid_file`, the process the program
    /// names there is watched once the program exits.
    pub async fn spawn(
        &self,
        argv: Vec<String>,
        stdio: [OwnedFd; 3],
        pid_file: Option<PathBuf>,
    ) -> Result<Spawned, KeeperError> {
        let conn = self.conn().await?;
        let program = argv.first().cloned().unwrap_or_default();
        let req = conn.next.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        lock(&conn.routes)
            .pending
            .insert(req, Pending::Spawn(reply_tx, exit_tx));
        let fds: Vec<BorrowedFd<'_>> = stdio.iter().map(AsFd::as_fd).collect();
        conn.send(
            &Request::Spawn {
                req,
                argv,
                pid_file,
            },
            &fds,
        )
        .await?;
        drop(stdio);
        match conn.answer(reply_rx).await? {
            Ok(who) => Ok(Spawned { who, exit: exit_rx }),
            Err(reason) => Err(KeeperError::Spawn { program, reason }),
        }
    }

    /// How `who` stands; if alive, it is watched from now on.
    pub async fn watch(&self, who: Identity) -> Result<Watched, KeeperError> {
        let conn = self.conn().await?;
        let req = conn.next.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        lock(&conn.routes)
            .pending
            .insert(req, Pending::Watch(who, reply_tx, exit_tx));
        conn.send(&Request::Watch { req, who }, &[]).await?;
        Ok(match conn.answer(reply_rx).await? {
            Watch::Exited { exit } => Watched::Exited(exit),
            Watch::Alive => Watched::Alive(exit_rx),
            Watch::Unknown => Watched::Unknown,
        })
    }

    /// Tells the keeper the exit of `who` is stored; best effort (a lost ack only means
    /// the exit is replayed to the next berthd, which finds it stored already).
    pub async fn ack(&self, who: Identity) {
        if let Ok(conn) = self.conn().await {
            let _ = conn.send(&Request::Ack { who }, &[]).await;
        }
    }

    /// Has the keeper hold `fds` for `who` until it exits.
    pub async fn hold(
        &self,
        who: Identity,
        fds: Vec<(Held, BorrowedFd<'_>)>,
    ) -> Result<(), KeeperError> {
        if fds.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        let (held, fds): (Vec<Held>, Vec<BorrowedFd<'_>>) = fds.into_iter().unzip();
        conn.send(&Request::Hold { who, held }, &fds).await
    }

    /// Closes one held descriptor of `who`.
    pub async fn release(&self, who: Identity, held: Held) -> Result<(), KeeperError> {
        let conn = self.conn().await?;
        conn.send(&Request::Release { who, held }, &[]).await
    }

    /// Duplicates of what the keeper holds for `who`.
    pub async fn fds(&self, who: Identity) -> Result<Vec<(Held, OwnedFd)>, KeeperError> {
        let conn = self.conn().await?;
        let req = conn.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&conn.routes).pending.insert(req, Pending::Fds(tx));
        conn.send(&Request::Fds { req, who }, &[]).await?;
        conn.answer(rx).await
    }
}

impl Keeper {
    /// Waits until no runc the keeper started still runs (bounded by `limit`).
    pub async fn settle(&self, limit: Duration) -> Result<(), KeeperError> {
        let conn = self.conn().await?;
        let req = conn.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&conn.routes).pending.insert(req, Pending::Settle(tx));
        conn.send(&Request::Settle { req }, &[]).await?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(KeeperError::Lost),
            Err(_) => Err(KeeperError::Timeout(limit)),
        }
    }
}

fn dial(path: &Path) -> nix::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

impl Conn {
    async fn send(&self, msg: &Request, fds: &[BorrowedFd<'_>]) -> Result<(), KeeperError> {
        if self.dead.load(Ordering::Acquire) {
            return Err(KeeperError::Lost);
        }
        loop {
            let mut ready = self.fd.writable().await.map_err(|e| {
                KeeperError::Send(nix::Error::from_raw(e.raw_os_error().unwrap_or(0)))
            })?;
            match ready.try_io(|fd| proto::send(fd.as_fd(), msg, fds).map_err(std::io::Error::from))
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    let errno = nix::Error::from_raw(e.raw_os_error().unwrap_or(0));
                    return Err(
                        if matches!(errno, nix::Error::EPIPE | nix::Error::ECONNRESET) {
                            KeeperError::Lost
                        } else {
                            KeeperError::Send(errno)
                        },
                    );
                }
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv(&self) -> Result<(Reply, Vec<OwnedFd>), KeeperError> {
        loop {
            let mut ready = self.fd.readable().await.map_err(|_| KeeperError::Lost)?;
            match ready.try_io(|fd| proto::recv::<Reply>(fd.as_fd()).map_err(std::io::Error::from))
            {
                Ok(Ok(Some(msg))) => return Ok(msg),
                Ok(Ok(None)) | Ok(Err(_)) => return Err(KeeperError::Lost),
                Err(_would_block) => continue,
            }
        }
    }

    async fn answer<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, KeeperError> {
        match tokio::time::timeout(REPLY_LIMIT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(KeeperError::Lost),
            Err(_) => Err(KeeperError::Timeout(REPLY_LIMIT)),
        }
    }
}

/// Routes every message of the connection until it breaks; then every waiter learns the
/// keeper is gone (its sender is dropped).
async fn read_loop(
    conn: Arc<Conn>,
    orphans: mpsc::UnboundedSender<ExitRecord>,
    deaths: tokio::sync::watch::Sender<u64>,
) {
    while let Ok((reply, fds)) = conn.recv().await {
        let mut routes = lock(&conn.routes);
        match reply {
            Reply::Spawned { req, who } => {
                if let Some(Pending::Spawn(reply, exit)) = routes.pending.remove(&req) {
                    routes.spawned.insert(who, exit);
                    let _ = reply.send(Ok(who));
                }
            }
            Reply::SpawnFailed { req, error } => {
                if let Some(Pending::Spawn(reply, _)) = routes.pending.remove(&req) {
                    let _ = reply.send(Err(error));
                }
            }
            Reply::Watched { req, watch } => {
                if let Some(Pending::Watch(who, reply, exit)) = routes.pending.remove(&req) {
                    if watch == Watch::Alive {
                        routes.waiters.insert(who, exit);
                    }
                    let _ = reply.send(watch);
                }
            }
            Reply::Fds { req, held } => {
                if let Some(Pending::Fds(reply)) = routes.pending.remove(&req) {
                    let _ = reply.send(held.into_iter().zip(fds).collect());
                }
            }
            Reply::Exit { exit, spawned } => {
                if let Some(spawned) = spawned {
                    let target = spawned.target.map(|t| {
                        let (tx, rx) = oneshot::channel();
                        routes.waiters.insert(t, tx);
                        (t, rx)
                    });
                    if let Some(tx) = routes.spawned.remove(&exit.who) {
                        let _ = tx.send(SpawnExit { exit, target });
                    }
                } else if let Some(tx) = routes.waiters.remove(&exit.who) {
                    if let Err(exit) = tx.send(exit) {
                        let _ = orphans.send(exit);
                    }
                } else {
                    let _ = orphans.send(exit);
                }
            }
            Reply::Settled { req } => {
                if let Some(Pending::Settle(reply)) = routes.pending.remove(&req) {
                    let _ = reply.send(());
                }
            }
            Reply::Hello { .. } => {}
        }
    }
    conn.dead.store(true, Ordering::Release);
    let mut routes = lock(&conn.routes);
    routes.pending.clear();
    routes.spawned.clear();
    routes.waiters.clear();
    drop(routes);
    deaths.send_modify(|n| *n += 1);
}
