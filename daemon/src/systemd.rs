//! The two parts of systemd's protocol berthd speaks, without libsystemd: an inherited
//! listening socket (socket activation: `LISTEN_PID`, `LISTEN_FDS`, descriptors from 3) and
//! readiness notification (`NOTIFY_SOCKET`: `READY=1` once it serves, `STOPPING=1` when it
//! stops). Both are environment contracts documented in sd_listen_fds(3) and sd_notify(3).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// Why an inherited socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "LISTEN_FDS={0}: berthd serves one socket; give its .socket unit exactly one \
         ListenStream="
    )]
    Count(String),
    #[error(
        "the inherited descriptor 3 is not a listening unix stream socket; the .socket unit \
         needs ListenStream=/path (not Accept=yes, a datagram or a TCP port)"
    )]
    NotAListener,
}

/// The listening socket systemd passed, if it passed one to this process. The variables
/// are removed either way, so runc, the keeper and the tasks never see them.
pub fn listener() -> Result<Option<UnixListener>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    // At start-up, before berthd starts any other thread (the environment is not
    // synchronised).
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let Some(fds) = fds.filter(|_| ours) else {
        return Ok(None);
    };
    if fds.trim() != "1" {
        return Err(ActivationError::Count(fds));
    }
    let fd = LISTEN_FDS_START;
    if !is_unix_listener(fd) {
        return Err(ActivationError::NotAListener);
    }
    // SAFETY: systemd hands this process descriptor 3 and nothing else in berthd owns it
    // (it is taken once, at start-up, and the variables naming it are gone).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl(F_SETFD) on a descriptor we own; no memory is passed.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let listener = UnixListener::from(owned);
    listener
        .set_nonblocking(true)
        .map_err(|_| ActivationError::NotAListener)?;
    Ok(Some(listener))
}

fn is_unix_listener(fd: RawFd) -> bool {
    let int_opt = |level, name| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, a c_int we own.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(v)
    };
    int_opt(libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && int_opt(libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(1)
}

/// Sends `state` (`READY=1`, `STOPPING=1`, ...) to the service manager, if one asked for
/// it. Best effort: a manager that went away must not stop berthd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        }
        None => sock.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
