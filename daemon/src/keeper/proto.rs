//! What berthd and the keeper say to each other: JSON messages over a `SOCK_SEQPACKET` unix
//! socket (one message per packet, so no framing), with file descriptors passed beside a
//! message as `SCM_RIGHTS`. Both sides share these types; the keeper side is synchronous,
//! berthd's is async, and both go through [`send`] and [`recv`].

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// Bumped when a message changes incompatibly; a berthd refuses a keeper of another version.
pub const VERSION: u32 = 1;
/// The largest message either side sends.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most descriptors one message carries.
pub const MAX_FDS: usize = 8;

/// A process as only one process ever is: a pid alone can be reused, a pid with the time
/// the process started (field 22 of `/proc/<pid>/stat`, clock ticks since boot) cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub pid: i32,
    pub start: u64,
}

/// One process the keeper reaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub who: Identity,
    /// The exit code, or 128 + the signal that killed it (shell convention).
    pub status: i32,
    /// The signal that killed it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// RFC 3339 with nanoseconds: when the keeper reaped it.
    pub at: String,
}

/// Descriptors berthd asks the keeper to hold for a process while it lives, so a berthd
/// crash closes none of them: the FIFO ends that keep a container from SIGPIPE or an early
/// EOF, and a terminal's master (whose last close would hang the container's terminal up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    StdinWriter,
    StdoutReader,
    StderrReader,
    PtyMaster,
}

/// berthd -> keeper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// First message of a connection; answered by `Hello` after every stored exit.
    Hello { version: u32 },
    /// Starts `argv` with the three descriptors sent beside it as stdin, stdout, stderr.
    /// With `pid_file`, the pid the program writes there (runc's container process) is
    /// resolved to an [`Identity`] when the program exits and watched from then on.
    Spawn {
        req: u64,
        argv: Vec<String>,
        pid_file: Option<PathBuf>,
    },
    /// Asks for the exit of `who`, watching it if it still runs as the keeper's child.
    Watch { req: u64, who: Identity },
    /// berthd has stored the exit of `who`: the keeper may forget it.
    Ack { who: Identity },
    /// Holds the descriptors sent beside this message for `who` until it exits (output
    /// pipe readers until its exit is acknowledged: its last output may still be in them).
    Hold { who: Identity, held: Vec<Held> },
    /// Closes one held descriptor of `who` (stdin's writer when the client closes stdin).
    Release { who: Identity, held: Held },
    /// Sends back duplicates of every descriptor held for `who` (after a berthd restart).
    Fds { req: u64, who: Identity },
    /// Answered once no spawned program runs any more: a restarted berthd waits for the
    /// runc invocations its predecessor left running before it reconciles.
    Settle { req: u64 },
}

/// How a watched process stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Watch {
    /// It has exited; the record stays until acknowledged.
    Exited { exit: ExitRecord },
    /// It runs as the keeper's child; its exit will be sent.
    Alive,
    /// The keeper never had it or forgot it (a keeper that died and was restarted).
    Unknown,
}

/// keeper -> berthd.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        version: u32,
        pid: i32,
    },
    Spawned {
        req: u64,
        who: Identity,
    },
    SpawnFailed {
        req: u64,
        error: String,
    },
    /// A process exited. For a spawned program, `target` is the process its pid file named
    /// (now watched: its own exit follows in a later message), `None` if it wrote none.
    Exit {
        exit: ExitRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spawned: Option<SpawnedExit>,
    },
    Watched {
        req: u64,
        watch: Watch,
    },
    /// Duplicates of the held descriptors, in this order, beside the message.
    Fds {
        req: u64,
        held: Vec<Held>,
    },
    Settled {
        req: u64,
    },
}

/// What the keeper adds to the exit of a program it spawned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnedExit {
    pub target: Option<Identity>,
}

/// Sends one message with `fds` beside it. The socket may be non-blocking: `EAGAIN` is
/// returned as is for the caller to wait on.
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> nix::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
    if bytes.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(Errno::EMSGSIZE);
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// One received message: `None` at end of stream. Descriptors arrive close-on-exec.
pub fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
) -> nix::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors in our table
                        // for this message; nothing else owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                    return Err(Errno::EMSGSIZE);
                }
                break (msg.bytes, fds);
            }
        }
    };
    if len == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..len]).map_err(|_| Errno::EBADMSG)?;
    Ok(Some((msg, fds)))
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`); `None` once it is reaped.
/// A zombie still has it, which is what lets the keeper name what it is about to reap.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The identity of a live (or zombie) `pid`.
pub fn identify(pid: i32) -> Option<Identity> {
    start_time(pid).map(|start| Identity { pid, start })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn start_time_names_this_process_and_not_a_missing_one() {
        let me = std::process::id() as i32;
        let a = start_time(me).expect("own start time");
        assert_eq!(start_time(me), Some(a), "stable");
        assert_eq!(start_time(i32::MAX - 3), None);
    }

    #[test]
    fn messages_and_descriptors_cross_a_socket_pair() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        let req = Request::Hold {
            who: Identity { pid: 7, start: 9 },
            held: vec![Held::StdoutReader],
        };
        send(a.as_fd(), &req, &[r.as_fd()]).expect("send");
        let (got, fds): (Request, _) = recv(b.as_fd()).expect("recv").expect("a message");
        assert!(matches!(got, Request::Hold { who, .. } if who.pid == 7 && who.start == 9));
        assert_eq!(fds.len(), 1);
    }
}
