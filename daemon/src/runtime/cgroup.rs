//! A task cgroup left behind without a runc container (a create cut off by a crash, runc
//! state wiped by a restart): in every cgroup hierarchy (v1 controllers and v2 alike), its
//! processes killed through pidfds checked to still be in it, then removed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::pidfd;

/// How long a swept cgroup may take to empty after SIGKILL.
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// Every cgroup hierarchy's mount point (from /proc/self/mountinfo).
pub fn mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            left.split(' ').nth(4).map(PathBuf::from)
        })
        .collect()
}

fn join(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
}

/// Whether the OOM killer killed a process of cgroup `path`: its `oom_kill` count in
/// `memory.events` (v2) or `memory.oom_control` (v1, kernel 4.13+) is above zero.
pub fn oom_killed(path: &str) -> bool {
    mounts().iter().any(|mount| {
        let dir = join(mount, path);
        ["memory.events", "memory.oom_control"].iter().any(|f| {
            std::fs::read_to_string(dir.join(f)).is_ok_and(|text| {
                text.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    })
}

/// Kills every process in cgroup `path` and removes it from every hierarchy.
pub fn sweep(path: &str) -> io::Result<()> {
    for mount in mounts() {
        let dir = join(&mount, path);
        if !dir.is_dir() {
            continue;
        }
        let deadline = Instant::now() + EMPTY_WAIT;
        loop {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                kill_if_in(pid, path);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "cgroup {} still has processes after SIGKILL",
                    dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::other(format!("removing {}: {e}", dir.display()))),
        }
    }
    Ok(())
}

/// SIGKILLs `pid` only if, with a pidfd open on it, it is still in cgroup `path`.
fn kill_if_in(pid: i32, path: &str) {
    let Ok(Some(fd)) = pidfd::open(pid) else {
        return;
    };
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if cgroups.lines().any(|l| l.rsplit(':').next() == Some(path)) {
        let _ = pidfd::send_signal(&fd, libc::SIGKILL);
    }
}

/// Removes the now-empty parents of cgroup `path` (`/berth/<ns>`, then `/berth`) in every
/// hierarchy. rmdir(2) refuses a cgroup that still has children or processes, so a parent
/// another task (or another berthd) still uses is left alone.
pub fn remove_empty_parents(path: &str) {
    for mount in mounts() {
        let mut dir = join(&mount, path);
        while dir.pop() && dir != mount {
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
        }
    }
}

/// Creates cgroup `path` in every hierarchy before runc does. runc makes it one directory
/// at a time, and a teardown (of this berthd or another on the host) that removes the
/// emptied `/berth/<ns>` parent between two of those mkdirs fails the create. Once the leaf
/// exists rmdir(2) refuses the parent, so losing that race here is only retried. Best
/// effort: a hierarchy that refuses is left to runc, which reports what it needs.
pub fn ensure(path: &str) {
    for mount in mounts() {
        let dir = join(&mount, path);
        for _ in 0..5 {
            match std::fs::create_dir_all(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => tracing::debug!(cgroup = %dir.display(), error = %e, "not pre-created"),
                Ok(()) => {}
            }
            break;
        }
    }
}
