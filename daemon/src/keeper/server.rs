//! The keeper process (`berthd keeper --state DIR`): one per state directory, started by
//! berthd and outliving it. It is a child subreaper and starts every runc invocation that
//! creates a container process, so each task's init and exec processes are re-parented to
//! it and only it reaps them. It writes each exit it cares about to `keeper/exits/` before
//! telling anyone, keeps it until berthd acknowledges it, and holds the stdio and terminal
//! descriptors a crash of berthd must not close.
//!
//! Single-threaded on purpose: one `poll` loop owns the listening socket, the one berthd
//! connection and a signalfd for SIGCHLD, so no lock exists and `std::process::Command`'s
//! own wait on a failed exec cannot race the reaping. It exits by itself once nobody
//! needs it: no berthd connected, nothing watched, nothing unacknowledged.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

use super::proto::{self, ExitRecord, Held, Identity, Reply, Request, SpawnedExit, Watch};

/// How long the keeper lingers with nothing to do before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(3);
/// How long a starting keeper waits for the lock of one that is exiting.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Exits of processes nobody watches yet, kept to resolve a pid file that names a
/// process already reaped. Matched by pid *and* by being newer than the spawn.
const RECENT_CAPACITY: usize = 512;

/// Where the keeper of state dir `state` listens.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join("keeper.sock")
}

/// The keeper's own directory under `state`: its lock, pid and stored exits.
pub fn dir(state: &Path) -> PathBuf {
    state.join("keeper")
}

/// Runs the keeper until it is idle; the process exit code.
pub fn main(state: &Path) -> i32 {
    match run(state) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth keeper: {e}");
            1
        }
    }
}

struct Spawn {
    who: Identity,
    pid_file: Option<PathBuf>,
    seq: u64,
}

struct Keeper {
    exits_dir: PathBuf,
    client: Option<OwnedFd>,
    spawned: HashMap<i32, Spawn>,
    /// Processes berthd waits for, with what is held for them.
    targets: HashMap<Identity, Vec<(Held, OwnedFd)>>,
    /// Processes this keeper holds descriptors for but does not parent (those of a keeper
    /// that died, handed over by berthd): a pidfd tells when each is gone, not how.
    adopted: HashMap<Identity, OwnedFd>,
    /// Output pipe readers of targets that exited, until the exit is acknowledged: what the
    /// process wrote last may still sit in the pipe for a berthd that restarts to log.
    lingering: HashMap<Identity, Vec<(Held, OwnedFd)>>,
    /// Exits of targets, stored on disk too, until acknowledged.
    exits: HashMap<Identity, ExitRecord>,
    recent: VecDeque<(u64, ExitRecord)>,
    seq: u64,
    /// `Settle` requests waiting for the spawned programs to finish.
    settling: Vec<u64>,
}

fn run(state: &Path) -> io::Result<()> {
    let dir = dir(state);
    let exits_dir = dir.join("exits");
    // Root's alone, as everything under the state dir (see crate::layout).
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(&exits_dir)?;
    let _lock = take_lock(&dir)?;
    fs::write(dir.join("pid"), std::process::id().to_string())?;
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(io::Error::from)?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(io::Error::from)?;
    let listener = listen(&socket_path(state))?;
    let mut keeper = Keeper {
        exits: load_exits(&exits_dir),
        exits_dir,
        client: None,
        spawned: HashMap::new(),
        targets: HashMap::new(),
        adopted: HashMap::new(),
        lingering: HashMap::new(),
        recent: VecDeque::new(),
        seq: 0,
        settling: Vec::new(),
    };
    let mut idle_since: Option<Instant> = None;
    loop {
        keeper.reap();
        let busy = keeper.client.is_some()
            || !keeper.targets.is_empty()
            || !keeper.spawned.is_empty()
            || !keeper.exits.is_empty();
        match (busy, idle_since) {
            (true, _) => idle_since = None,
            (false, None) => idle_since = Some(Instant::now()),
            (false, Some(t)) if t.elapsed() >= IDLE_EXIT => break,
            (false, Some(_)) => {}
        }
        let (sig_ready, listen_ready, client_ready, gone) = {
            let adopted: Vec<(Identity, &OwnedFd)> =
                keeper.adopted.iter().map(|(w, fd)| (*w, fd)).collect();
            let mut fds = vec![
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            ];
            // The client's slot is always there (polling a missing one as the listener
            // again), so the adopted processes' pidfds start at 3.
            let client = keeper.client.as_ref().unwrap_or(&listener);
            fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
            fds.extend(
                adopted
                    .iter()
                    .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::from(500u16)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(PollFd::revents)
                    .is_some_and(|r| !r.is_empty())
            };
            let gone: Vec<Identity> = adopted
                .iter()
                .enumerate()
                .filter(|(i, _)| ready(3 + i))
                .map(|(_, (w, _))| *w)
                .collect();
            (
                ready(0),
                ready(1),
                keeper.client.is_some() && ready(2),
                gone,
            )
        };
        for who in gone {
            keeper.adopted_gone(who);
        }
        if sig_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
        }
        if listen_ready {
            if let Ok(fd) = socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                // One berthd at a time (it holds its root's lock): a new connection is a
                // restarted berthd, and the old one is dead.
                keeper.client = Some(conn);
            }
        }
        if client_ready {
            keeper.serve_one();
        }
    }
    let _ = fs::remove_file(socket_path(state));
    let _ = fs::remove_file(dir.join("pid"));
    Ok(())
}

/// The keeper's lock. An idle keeper that is exiting has already removed its socket but may
/// hold the lock a moment longer: a berthd (re)started in that moment dials no keeper and
/// starts this one, which waits for the lock for [`LOCK_WAIT`] rather than failing (and with
/// it berthd's start-up). A live keeper keeps its lock; this one then gives up, and berthd
/// reaches the live one on its socket.
fn take_lock(dir: &Path) -> io::Result<Flock<fs::File>> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, e)) => {
                return Err(io::Error::other(format!(
                    "another keeper holds {}: {e}",
                    dir.display()
                )))
            }
        }
    }
}

fn listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // The lock is ours, so a socket file here is a dead keeper's.
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    socket::listen(&fd, Backlog::new(16)?)?;
    Ok(fd)
}

fn load_exits(dir: &Path) -> HashMap<Identity, ExitRecord> {
    let mut exits = HashMap::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some() {
            // A temp file of a keeper that died mid-write: its rename never happened.
            let _ = fs::remove_file(&path);
            continue;
        }
        match fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok())
        {
            Some(rec) => {
                exits.insert(rec.who, rec);
            }
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    exits
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl Keeper {
    fn reply(&mut self, msg: &Reply, fds: &[std::os::fd::BorrowedFd<'_>]) {
        let Some(client) = &self.client else { return };
        if proto::send(client.as_fd(), msg, fds).is_err() {
            // berthd is gone; whatever it missed is stored and replayed to the next one.
            self.client = None;
        }
    }

    fn serve_one(&mut self) {
        let Some(client) = &self.client else { return };
        let (req, fds) = match proto::recv::<Request>(client.as_fd()) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                self.client = None;
                return;
            }
        };
        match req {
            Request::Hello { .. } => {
                let stored: Vec<ExitRecord> = self.exits.values().cloned().collect();
                for exit in stored {
                    self.reply(
                        &Reply::Exit {
                            exit,
                            spawned: None,
                        },
                        &[],
                    );
                }
                let hello = Reply::Hello {
                    version: proto::VERSION,
                    pid: std::process::id() as i32,
                };
                self.reply(&hello, &[]);
            }
            Request::Spawn {
                req,
                argv,
                pid_file,
            } => {
                let reply = match self.spawn(&argv, pid_file, fds) {
                    Ok(who) => Reply::Spawned { req, who },
                    Err(e) => Reply::SpawnFailed {
                        req,
                        error: e.to_string(),
                    },
                };
                self.reply(&reply, &[]);
            }
            Request::Watch { req, who } => {
                let watch = self.watch(who);
                self.reply(&Reply::Watched { req, watch }, &[]);
            }
            Request::Ack { who } => {
                self.lingering.remove(&who);
                if self.exits.remove(&who).is_some() {
                    let _ = fs::remove_file(self.exit_file(who));
                }
            }
            Request::Hold { who, held } => {
                if !self.targets.contains_key(&who) {
                    self.adopt(who);
                }
                if let Some(slots) = self.targets.get_mut(&who) {
                    slots.extend(held.into_iter().zip(fds));
                }
                // Otherwise it has exited already: the descriptors close here.
            }
            Request::Release { who, held } => {
                if let Some(slots) = self.targets.get_mut(&who) {
                    slots.retain(|(h, _)| *h != held);
                }
            }
            Request::Settle { req } => {
                self.settling.push(req);
                self.settle();
            }
            Request::Fds { req, who } => {
                let slots = self
                    .targets
                    .get(&who)
                    .or_else(|| self.lingering.get(&who))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let dups: Vec<(Held, OwnedFd)> = slots
                    .iter()
                    .filter_map(|(h, fd)| fd.try_clone().ok().map(|d| (*h, d)))
                    .collect();
                let held: Vec<Held> = dups.iter().map(|(h, _)| *h).collect();
                let fds: Vec<_> = dups.iter().map(|(_, fd)| fd.as_fd()).collect();
                self.reply(&Reply::Fds { req, held }, &fds);
            }
        }
    }

    fn spawn(
        &mut self,
        argv: &[String],
        pid_file: Option<PathBuf>,
        fds: Vec<OwnedFd>,
    ) -> io::Result<Identity> {
        let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
            .try_into()
            .map_err(|_| io::Error::other("spawn needs exactly three descriptors (stdio)"))?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::other("spawn of an empty argv"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        // SAFETY: the closure only calls sigprocmask, which is async-signal-safe, and
        // allocates nothing: the child must not inherit the keeper's blocked SIGCHLD.
        unsafe {
            cmd.pre_exec(|| {
                let mut set = SigSet::empty();
                set.add(Signal::SIGCHLD);
                nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)
                    .map_err(io::Error::from)
            });
        }
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        drop(child);
        // Not reaped yet (only this thread reaps), so /proc still names it.
        let who =
            proto::identify(pid).ok_or_else(|| io::Error::other("spawned process vanished"))?;
        self.seq += 1;
        self.spawned.insert(
            pid,
            Spawn {
                who,
                pid_file,
                seq: self.seq,
            },
        );
        Ok(who)
    }

    /// Takes on holding descriptors for `who`, a live process that is not this keeper's
    /// child (its keeper died): watched through a pidfd whose identity was checked.
    fn adopt(&mut self, who: Identity) {
        if self.exits.contains_key(&who) || self.adopted.contains_key(&who) {
            return;
        }
        if let Ok(Some(fd)) = crate::runtime::pidfd::open_checked(who) {
            self.adopted.insert(who, fd);
            self.targets.insert(who, Vec::new());
        }
    }

    /// An adopted process has ended: its status is not ours to know (berthd reaps it, or
    /// nobody can), but its output readers stay until berthd acknowledges the exit, as a
    /// child's do.
    fn adopted_gone(&mut self, who: Identity) {
        self.adopted.remove(&who);
        if let Some(slots) = self.targets.remove(&who) {
            let readers: Vec<_> = slots
                .into_iter()
                .filter(|(h, _)| matches!(h, Held::StdoutReader | Held::StderrReader))
                .collect();
            if !readers.is_empty() {
                self.lingering.insert(who, readers);
            }
        }
    }

    fn watch(&mut self, who: Identity) -> Watch {
        if let Some(exit) = self.exits.get(&who) {
            return Watch::Exited { exit: exit.clone() };
        }
        if self.adopted.contains_key(&who) {
            // Held, not parented: its exit will never come from here.
            return Watch::Unknown;
        }
        if self.targets.contains_key(&who) {
            return Watch::Alive;
        }
        let ours = parent_of(who.pid) == Some(std::process::id() as i32)
            && proto::start_time(who.pid) == Some(who.start);
        if ours {
            self.targets.insert(who, Vec::new());
            Watch::Alive
        } else {
            Watch::Unknown
        }
    }

    fn settle(&mut self) {
        if self.spawned.is_empty() {
            for req in std::mem::take(&mut self.settling) {
                self.reply(&Reply::Settled { req }, &[]);
            }
        }
    }

    /// Reaps every child that has exited, naming each before it is reaped.
    fn reap(&mut self) {
        self.reap_all();
        self.settle();
    }

    fn reap_all(&mut self) {
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let pid = match waitid(Id::All, flags) {
                Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => pid,
                Err(Errno::EINTR) => continue,
                _ => return,
            };
            let raw = pid.as_raw();
            let start = proto::start_time(raw).unwrap_or(0);
            let spawn = self.spawned.remove(&raw);
            // Before the program is reaped, while its pid file's process is at worst a
            // zombie of ours or in `recent`.
            let target = spawn.as_ref().and_then(|s| self.resolve(s));
            let (status, signal) = match waitid(Id::Pid(pid), WaitPidFlag::WEXITED) {
                Ok(WaitStatus::Exited(_, code)) => (code, None),
                Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
                _ => continue,
            };
            let exit = ExitRecord {
                who: Identity { pid: raw, start },
                status,
                signal,
                at: now(),
            };
            if spawn.is_some() {
                self.reply(
                    &Reply::Exit {
                        exit,
                        spawned: Some(SpawnedExit { target }),
                    },
                    &[],
                );
                // A target that exited before its runc did: hand its exit on now.
                if let Some(t) = target {
                    if let Some(pos) = self.recent.iter().position(|(_, e)| e.who == t) {
                        if let Some((_, early)) = self.recent.remove(pos) {
                            self.target_exited(early);
                        }
                    }
                }
            } else if self.targets.contains_key(&exit.who) && !self.adopted.contains_key(&exit.who)
            {
                self.target_exited(exit);
            } else {
                self.recent.push_back((self.seq, exit));
                self.seq += 1;
                if self.recent.len() > RECENT_CAPACITY {
                    self.recent.pop_front();
                }
            }
        }
    }

    /// The process `spawn`'s pid file names, watched from now on.
    fn resolve(&mut self, spawn: &Spawn) -> Option<Identity> {
        let path = spawn.pid_file.as_ref()?;
        let pid: i32 = fs::read_to_string(path).ok()?.trim().parse().ok()?;
        if let Some((_, early)) = self
            .recent
            .iter()
            .rev()
            .find(|(seq, e)| *seq >= spawn.seq && e.who.pid == pid)
        {
            let who = early.who;
            self.targets.insert(who, Vec::new());
            return Some(who);
        }
        let start = proto::start_time(pid)?;
        // A process older than the runc that named it is not the one it started.
        if start < spawn.who.start {
            return None;
        }
        let who = Identity { pid, start };
        self.targets.insert(who, Vec::new());
        Some(who)
    }

    /// Stores a target's exit, closes what was held for it but its output readers, and
    /// tells berthd.
    fn target_exited(&mut self, exit: ExitRecord) {
        if let Some(slots) = self.targets.remove(&exit.who) {
            let readers: Vec<_> = slots
                .into_iter()
                .filter(|(h, _)| matches!(h, Held::StdoutReader | Held::StderrReader))
                .collect();
            if !readers.is_empty() {
                self.lingering.insert(exit.who, readers);
            }
        }
        if let Err(e) = write_atomic(&self.exit_file(exit.who), &exit) {
            eprintln!(
                "berth keeper: storing the exit of pid {}: {e}",
                exit.who.pid
            );
        }
        self.exits.insert(exit.who, exit.clone());
        self.reply(
            &Reply::Exit {
                exit,
                spawned: None,
            },
            &[],
        );
    }

    fn exit_file(&self, who: Identity) -> PathBuf {
        self.exits_dir.join(format!("{}-{}", who.pid, who.start))
    }
}

fn write_atomic(path: &Path, exit: &ExitRecord) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(exit).map_err(io::Error::other)?)?;
    fs::rename(&tmp, path)
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}
