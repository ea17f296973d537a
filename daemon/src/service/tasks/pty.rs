//! Copying between a terminal process's pty master and its host stdio (FIFOs or files).
//! Each direction is one thread that polls its source and a cancel pipe, so dropping the
//! [`PtyCopy`] stops both even when a client keeps a FIFO open forever.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::sync::oneshot;

/// The copy threads of one process; dropping it cancels them.
pub struct PtyCopy {
    _cancel: OwnedFd,
    /// Resolves when the pty's output has been copied to the end (the slave closed).
    pub output_done: Option<oneshot::Receiver<()>>,
}

/// Starts copying `master` -> `stdout` and `stdin` -> `master` (when given).
pub fn start(master: &OwnedFd, stdin: Option<OwnedFd>, stdout: OwnedFd) -> io::Result<PtyCopy> {
    let (cancel_rx, cancel_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_tx, done_rx) = oneshot::channel();
    let out_from = master.try_clone()?;
    let out_cancel = cancel_rx.try_clone()?;
    spawn("berth-pty-out", out_from, stdout, out_cancel, Some(done_tx))?;
    if let Some(stdin) = stdin {
        spawn("berth-pty-in", stdin, master.try_clone()?, cancel_rx, None)?;
    }
    Ok(PtyCopy {
        _cancel: cancel_tx,
        output_done: Some(done_rx),
    })
}

fn spawn(
    name: &str,
    from: OwnedFd,
    to: OwnedFd,
    cancel: OwnedFd,
    done: Option<oneshot::Sender<()>>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            copy(&from, &to, &cancel);
            if let Some(done) = done {
                let _ = done.send(());
            }
        })
        .map(drop)
}

/// Copies until EOF, an error (EIO once the pty slave is closed) or cancellation.
fn copy(from: &OwnedFd, to: &OwnedFd, cancel: &OwnedFd) {
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: cancel.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structs for the call's duration.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let n = match nix::unistd::read(from, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match nix::unistd::write(to, rest) {
                Ok(w) => rest = &rest[w..],
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }
}
