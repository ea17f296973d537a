//! The exclusive locks berthd takes on its root and on its state dir (`<dir>/berthd.lock`),
//! so that no two daemons ever share either. Owns the lock files only.
//!
//! A daemon that was just killed (`kill -9`) still holds its lock until the kernel has closed
//! its descriptors, a moment after kill(2) returned: a restart in that moment must wait for
//! the lock, as the keeper does for its own, instead of refusing. A holder that is alive and
//! well (its pid is written in the file) is refused at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How long a held lock is retried while its holder is dying or unknown.
pub const WAIT: Duration = Duration::from_secs(2);
/// Between two tries.
const POLL: Duration = Duration::from_millis(10);
/// A holder seen alive and well this long apart is a running daemon, not a dying one.
const ALIVE_FOR: Duration = Duration::from_millis(100);

/// The lock file's name in the directory it guards.
pub const FILE: &str = "berthd.lock";

/// An exclusive hold on a directory; released when dropped (or when the process dies).
pub struct DirLock(#[allow(dead_code)] Flock<File>);

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it (`pid` when it wrote its pid into the file).
    #[error("{} is held{}", path.display(), holder.map(|p| format!(" by pid {p}")).unwrap_or_default())]
    Held { path: PathBuf, holder: Option<i32> },
    /// The file could not be opened, locked or written.
    #[error("locking {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes `dir`'s lock, waiting up to [`WAIT`] while its holder is dying (or has not yet
/// written its pid), and writes this process's pid into it.
pub fn take(dir: &Path) -> Result<DirLock, LockError> {
    let path = dir.join(FILE);
    let io = |source: std::io::Error| LockError::Io {
        path: path.clone(),
        source,
    };
    let deadline = Instant::now() + WAIT;
    let mut alive_since: Option<(i32, Instant)> = None;
    let mut waited = false;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                if waited {
                    tracing::info!(path = %path.display(), "the previous holder released the lock");
                }
                let pid = std::process::id();
                lock.set_len(0)
                    .and_then(|()| lock.rewind())
                    .and_then(|()| writeln!(*lock, "{pid}"))
                    .map_err(io)?;
                return Ok(DirLock(lock));
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let holder = recorded_pid(&mut file);
                let now = Instant::now();
                match holder.filter(|&p| alive_and_well(p)) {
                    Some(p) => match alive_since {
                        Some((q, since)) if q == p && now.duration_since(since) >= ALIVE_FOR => {
                            return Err(LockError::Held { path, holder });
                        }
                        Some((q, _)) if q == p => {}
                        _ => alive_since = Some((p, now)),
                    },
                    None => alive_since = None,
                }
                if now >= deadline {
                    return Err(LockError::Held { path, holder });
                }
                if !waited {
                    tracing::info!(path = %path.display(), holder,
                        "lock held by a process that is exiting or starting; waiting for it");
                    waited = true;
                }
                std::thread::sleep(POLL);
            }
            Err((_, e)) => return Err(io(e.into())),
        }
    }
}

/// The pid a holder wrote into the lock file, if any.
fn recorded_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|&p: &i32| p > 0)
}

/// Whether `pid` is a live process that is not on its way out: not a zombie, not exiting
/// (PF_EXITING), no SIGKILL pending.
fn alive_and_well(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    const PF_EXITING: u64 = 0x4;
    let state = fields.first().copied().unwrap_or("X");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    if matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    !status.lines().any(|l| {
        ["SigPnd:", "ShdPnd:"].iter().any(|k| {
            l.strip_prefix(k)
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                .is_some_and(|m| m & SIGKILL_BIT != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_take_of_a_lock_held_by_a_live_process_fails_fast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = take(dir.path()).expect("first");
        let started = Instant::now();
        let err = take(dir.path()).err().expect("held");
        assert!(
            started.elapsed() < WAIT / 2,
            "refused after {:?}",
            started.elapsed()
        );
        let pid = std::process::id() as i32;
        assert!(
            matches!(err, LockError::Held { holder: Some(p), .. } if p == pid),
            "{err}"
        );
    }

    #[test]
    fn a_lock_whose_recorded_holder_is_gone_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = take(dir.path()).expect("first");
        // The file names a pid that no longer exists, as a killed daemon's does.
        std::fs::write(dir.path().join(FILE), "2147483646\n").expect("write");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        take(dir.path()).expect("taken once released");
        assert!(started.elapsed() >= Duration::from_millis(250));
        releaser.join().expect("releaser");
    }

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive_and_well(std::process::id() as i32));
        assert!(!alive_and_well(2147483646));
    }
}
