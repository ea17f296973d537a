//! Watching a process that is not our child: after a daemon restart, container processes
//! started by the previous berthd belong to another parent, so the reaper never sees them.
//! A pidfd becomes readable when the process exits; its exit status is not ours to learn.
//! Every signal berthd sends to a task process goes through a pidfd whose identity was
//! checked ([`signal`]), never through a bare pid that may have been reused.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::keeper::proto::start_time;
use crate::keeper::Identity;

/// Opens a pidfd for `pid`; `None` when no such process exists any more.
pub fn open(pid: i32) -> io::Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// Opens a pidfd for the process `who` names, and only that one: `None` when it has exited
/// (or its pid now belongs to another process). The start time is checked *after* the
/// pidfd is open, so the pidfd cannot name a process that reused the pid.
pub fn open_checked(who: Identity) -> io::Result<Option<OwnedFd>> {
    let Some(fd) = open(who.pid)? else {
        return Ok(None);
    };
    if start_time(who.pid) != Some(who.start) {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// Sends `signal` to the process behind `pidfd` (ESRCH once it has exited).
pub fn send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a pidfd, a signal number, a null siginfo (the kernel
    // then fills one as kill(2) would) and flags; no memory of ours is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Signals the process `who` names; `Ok(false)` when it no longer runs.
pub fn signal(who: Identity, signal: i32) -> io::Result<bool> {
    let Some(fd) = open_checked(who)? else {
        return Ok(false);
    };
    match send_signal(&fd, signal) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Resolves when the process behind `pidfd` has exited.
pub async fn exited(pidfd: OwnedFd) -> io::Result<()> {
    // SAFETY: the AsyncFd owns `pidfd`, an OwnedFd whose raw fd stays open and unchanged
    // until the AsyncFd (and with it the OwnedFd) is dropped.
    let fd = unsafe { AsyncFd::register(pidfd) }.map_err(|e| e.into_parts().1)?;
    let _ready = fd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_process_has_no_pidfd_and_a_live_one_reports_its_exit() {
        assert!(open(i32::MAX - 7).expect("pidfd_open").is_none());
        let reaper = crate::runtime::reaper::tests::shared_reaper();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "sleep 0.2"]);
        let launched = reaper.spawn(&mut cmd).expect("spawn");
        let fd = open(launched.pid).expect("pidfd").expect("alive");
        tokio::time::timeout(std::time::Duration::from_secs(10), exited(fd))
            .await
            .expect("in time")
            .expect("exited");
        launched.wait().await.expect("reaped");
    }
}
