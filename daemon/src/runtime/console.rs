//! Console sockets for terminal containers: the unix socket runc's
//! `--console-socket` connects to in order to hand over the pty master, and
//! window resizing of that master. Copying between the pty and the client's
//! stdio is not this module's business.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixListener;

/// Errors of console sockets and ptys.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot create console socket {path:?}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no pty master arrived on console socket {path:?} within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("cannot receive the pty master on console socket {path:?}: {source}")]
    Receive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("console socket {path:?}: the peer sent no file descriptor")]
    NoFd { path: PathBuf },
    #[error("cannot resize pty to {width}x{height}: {source}")]
    Resize {
        width: u16,
        height: u16,
        #[source]
        source: nix::Error,
    },
}

/// A listening unix socket for one `runc create/exec --console-socket`. The socket
/// file (and the private directory [`ConsoleSocket::new`] made for it) is removed
/// on drop.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
    own_dir: Option<PathBuf>,
}

impl ConsoleSocket {
    /// A socket in a fresh mode-0700 directory under the system temp dir, so no
    /// other user can connect first and hand us a fd of their choosing.
    pub fn new() -> Result<ConsoleSocket, ConsoleError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-console-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let path = dir.join("pty.sock");
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        };
        made.map_err(|source| ConsoleError::Bind {
            path: path.clone(),
            source,
        })?;
        match Self::bind(&path) {
            Ok(mut socket) => {
                socket.own_dir = Some(dir);
                Ok(socket)
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// A socket at `path` (shorter than 108 bytes; the caller owns its directory).
    pub fn bind(path: &Path) -> Result<ConsoleSocket, ConsoleError> {
        let listener = UnixListener::bind(path).map_err(|source| ConsoleError::Bind {
            path: path.to_owned(),
            source,
        })?;
        Ok(ConsoleSocket {
            path: path.to_owned(),
            listener,
            own_dir: None,
        })
    }

    /// What to pass as `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and takes the pty master runc sends over it with
    /// SCM_RIGHTS. Bounded by `timeout` because a runc that failed early never connects.
    pub async fn receive(&self, timeout: Duration) -> Result<OwnedFd, ConsoleError> {
        let receive_err = |source| ConsoleError::Receive {
            path: self.path.clone(),
            source,
        };
        let work = async {
            let (stream, _) = self.listener.accept().await.map_err(receive_err)?;
            loop {
                stream.readable().await.map_err(receive_err)?;
                match stream.try_io(Interest::READABLE, || recv_fd(stream.as_raw_fd())) {
                    Ok(fds) => return Ok(fds),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(receive_err(e)),
                }
            }
        };
        let fds =
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| ConsoleError::Timeout {
                    path: self.path.clone(),
                    timeout,
                })??;
        let mut fds = fds.into_iter();
        // Only the first fd is the master; any extra ones are closed as they drop.
        fds.next().ok_or_else(|| ConsoleError::NoFd {
            path: self.path.clone(),
        })
    }
}

/// One recvmsg; every fd received is owned at once so none can leak.
fn recv_fd(socket: RawFd) -> io::Result<Vec<OwnedFd>> {
    // runc sends the pty's name as the payload.
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel just installed `fd` in our table for this message;
                // nothing else refers to it, so we are its only owner.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed without sending",
        ));
    }
    Ok(fds)
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, libc::winsize);

/// Sets the pty's window size (columns x rows); the foreground process gets SIGWINCH.
pub fn resize(master: BorrowedFd<'_>, width: u16, height: u16) -> Result<(), ConsoleError> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `master` is a live fd for the call's duration and `size` is a valid
    // winsize the kernel only reads.
    unsafe { set_window_size(master.as_raw_fd(), &size) }
        .map(drop)
        .map_err(|source| ConsoleError::Resize {
            width,
            height,
            source,
        })
}

/// Pieces written after each wait for room: small enough that a blocking fd (a pty master
/// or a FIFO shared with copy threads, so its flags stay as they are) always takes them
/// whole once poll says it is writable.
const WRITE_PIECE: usize = 512;

/// Writes all of `data` to `fd` (a terminal's master or a stdin FIFO), waiting at most
/// `limit` in all for the reader to make room; `TimedOut` if it does not.
pub fn write_within(fd: &OwnedFd, data: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + limit;
    let mut rest = data;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the call's duration.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no room for input within {limit:?}"),
            ));
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 && pfd.revents & libc::POLLOUT == 0 {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let piece = &rest[..rest.len().min(WRITE_PIECE)];
        match nix::unistd::write(fd, piece) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;

    #[tokio::test]
    async fn receives_the_fd_a_peer_sends_and_removes_its_files() {
        let socket = ConsoleSocket::new().expect("socket");
        let path = socket.path().to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("marker");
        std::fs::write(&marker, "pty-stand-in").expect("write");
        let sent = std::fs::File::open(&marker).expect("open");
        let peer_path = path.clone();
        let peer = std::thread::spawn(move || {
            let stream = UnixStream::connect(&peer_path).expect("connect");
            let fds = [sent.as_raw_fd()];
            let iov = [IoSlice::new(b"/dev/pts/99")];
            sendmsg::<()>(
                stream.as_raw_fd(),
                &iov,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )
            .expect("sendmsg");
        });
        let fd = socket.receive(Duration::from_secs(5)).await.expect("fd");
        peer.join().expect("peer");
        let mut text = String::new();
        io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).expect("read");
        assert_eq!(text, "pty-stand-in");
        drop(socket);
        assert!(!path.exists());
        assert!(!path.parent().expect("dir").exists());
    }

    #[tokio::test]
    async fn receive_times_out_when_nobody_connects() {
        let socket = ConsoleSocket::new().expect("socket");
        let err = socket
            .receive(Duration::from_millis(100))
            .await
            .expect_err("nobody sent");
        assert!(matches!(err, ConsoleError::Timeout { .. }), "{err}");
    }

    #[test]
    fn resize_is_visible_on_the_pty() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        resize(std::os::fd::AsFd::as_fd(&pty.master), 132, 43).expect("resize");
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: the slave fd is open and `size` is a writable winsize.
        let rc = unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (132, 43));
    }
}
