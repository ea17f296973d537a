//! Task cgroups left behind without a runc container (a create cut off by a crash): found
//! under every cgroup hierarchy (v1 controllers and v2 alike), their processes killed
//! through identity-checked pidfds, then removed.

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

/// The names of the sub-cgroups of `parent` (e.g. "/berth/default") in any hierarchy.
pub fn children(parent: &str) -> Vec<String> {
    let mut names: Vec<String> = mounts()
        .iter()
        .flat_map(|m| {
            std::fs::read_dir(join(m, parent))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn join(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
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
