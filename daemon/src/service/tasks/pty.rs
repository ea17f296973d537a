//! Copying between a terminal process's pty master and its host stdio (FIFOs or files).
//! Each direction is one thread that polls its source and a cancel pipe, so dropping the
//! [`PtyCopy`] stops both even when a client keeps a FIFO open forever.
//!
//! A pty has no end of file of its own: when the host stdin ends (the client closed it and
//! `tasks.close_io` released berth's keeper), the terminal's VEOF character (^D) is written
//! to the master, which the line discipline hands to the program as end of file.

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
    spawn(
        "berth-pty-out",
        out_from,
        stdout,
        out_cancel,
        Some(done_tx),
        false,
    )?;
    if let Some(stdin) = stdin {
        spawn(
            "berth-pty-in",
            stdin,
            master.try_clone()?,
            cancel_rx,
            None,
            true,
        )?;
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
    eof_to_terminal: bool,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let ended = copy(&from, &to, &cancel);
            if eof_to_terminal && ended == Ended::Eof {
                send_veof(&to);
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        })
        .map(drop)
}

/// Why a copy stopped.
#[derive(Debug, PartialEq)]
enum Ended {
    Eof,
    Cancelled,
    Failed,
}

/// Writes the terminal's end-of-file character (VEOF, normally ^D) to the pty master.
fn send_veof(master: &OwnedFd) {
    let veof = nix::sys::termios::tcgetattr(master)
        .map(|t| t.control_chars[nix::sys::termios::SpecialCharacterIndices::VEOF as usize])
        .unwrap_or(4);
    let _ = nix::unistd::write(master, &[veof]);
}

/// Copies until EOF, an error (EIO once the pty slave is closed) or cancellation.
fn copy(from: &OwnedFd, to: &OwnedFd, cancel: &OwnedFd) -> Ended {
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
            return Ended::Failed;
        }
        if fds[1].revents != 0 {
            return Ended::Cancelled;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let n = match nix::unistd::read(from, &mut buf) {
            Ok(0) => return Ended::Eof,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return Ended::Failed,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match nix::unistd::write(to, rest) {
                Ok(w) => rest = &rest[w..],
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Ended::Failed,
            }
        }
    }
}
