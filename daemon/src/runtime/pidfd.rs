//! Watching a process that is not our child: after a daemon restart, container processes
//! started by the previous berthd belong to another parent, so the reaper never sees them.
//! A pidfd becomes readable when the process exits; its exit status is not ours to learn.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

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
