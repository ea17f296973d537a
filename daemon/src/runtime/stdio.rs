//! Opens a task's host stdio paths (FIFOs, regular files, or /dev/null for "")
//! into file descriptors handed to runc as they are.
//!
//! FIFOs are opened so that opening never blocks, whether or not the client
//! holds the other end (it may have gone away):
//! - stdout/stderr: first a *reader* `O_RDONLY|O_NONBLOCK` (never blocks), then
//!   the writer for the container through `/proc/self/fd/N` (same FIFO even if the
//!   path is replaced meanwhile); it cannot block, a reader exists. The reader is
//!   kept in [`StdioKeepers`] for the task's life: without it, output written
//!   before the client opens its end would kill the container with SIGPIPE. It
//!   is read-only, so the client still sees EOF when the container exits. (If the
//!   client never reads, the container blocks once the pipe is full, as with
//!   containerd.)
//! - stdin: the reader for the container `O_RDONLY|O_NONBLOCK`, made blocking again,
//!   then a *writer* kept in [`StdioKeepers`], so the container does not read EOF
//!   before the client has opened its end. `tasks.close_io` drops it
//!   ([`StdioKeepers::close_stdin`]).
//!
//! Regular files are created if missing and appended to; stdin from a regular
//! file is read from the start.
//!
//! An empty output path is /dev/null, unless the process is logged: then it is a pipe whose
//! reader goes to the log's copy thread (see `logfile`), with a duplicate kept in
//! [`StdioKeepers`] for the keeper, so that neither a slow log nor a berthd crash ever
//! closes it under the container.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::logfile::{self, Stream};
use super::runc::ProcessStdio;

/// Errors opening a task's stdio.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("cannot open {stream} path {path:?}: {source}")]
    Open {
        stream: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{stream} path {path:?} is neither a FIFO, a regular file nor a character device")]
    Unsupported { stream: &'static str, path: String },
    /// berthd opens stdio as root: a relative path would resolve against its own cwd.
    #[error("{stream} path {path:?} is relative; give an absolute path")]
    Relative { stream: &'static str, path: String },
    /// A symlink could send a root-owned write anywhere; berthd never follows one here.
    #[error("{stream} path {path:?} is a symlink; berthd does not follow symlinks for stdio")]
    Symlink { stream: &'static str, path: String },
}

/// The task's stdio: `process` goes to runc, `keepers` stays with the task, `log` (the
/// readers of logged outputs) goes to the log's copy thread.
pub struct TaskStdio {
    pub process: ProcessStdio,
    pub keepers: StdioKeepers,
    pub log: Vec<(Stream, OwnedFd)>,
}

/// FIFO ends berthd holds while the task lives (see the module doc). Drop when the
/// task's process has exited.
#[derive(Default)]
pub struct StdioKeepers {
    stdin_writer: Option<OwnedFd>,
    output_readers: Vec<(crate::keeper::Held, OwnedFd)>,
}

impl StdioKeepers {
    /// The ends a keeper handed back (after a berthd restart); a terminal's master is
    /// not a FIFO end and is left out.
    pub fn from_held(held: Vec<(crate::keeper::Held, OwnedFd)>) -> StdioKeepers {
        use crate::keeper::Held;
        let mut keepers = StdioKeepers::default();
        for (h, fd) in held {
            match h {
                Held::StdinWriter => keepers.stdin_writer = Some(fd),
                Held::StdoutReader | Held::StderrReader => keepers.output_readers.push((h, fd)),
                Held::PtyMaster => {}
            }
        }
        keepers
    }

    /// Lets the container read EOF once the client closes its end of the stdin FIFO.
    pub fn close_stdin(&mut self) {
        self.stdin_writer = None;
    }

    /// The ends, named for the keeper, which holds duplicates so that a berthd crash
    /// closes none of them.
    pub fn held(&self) -> Vec<(crate::keeper::Held, std::os::fd::BorrowedFd<'_>)> {
        use crate::keeper::Held;
        let mut out = Vec::new();
        if let Some(w) = &self.stdin_writer {
            out.push((Held::StdinWriter, w.as_fd()));
        }
        for (h, r) in &self.output_readers {
            out.push((*h, r.as_fd()));
        }
        out
    }

    /// A duplicate of the writer of the process's stdin FIFO, while it is open.
    pub fn stdin_writer(&self) -> Option<OwnedFd> {
        self.stdin_writer.as_ref().and_then(|w| w.try_clone().ok())
    }

    /// How many FIFO ends are held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.output_readers.len() + usize::from(self.stdin_writer.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens the three host paths of a task; "" means /dev/null, or a logged pipe for an
/// output when `logged`. Never blocks.
pub fn open(
    stdin: &str,
    stdout: &str,
    stderr: &str,
    logged: bool,
) -> Result<TaskStdio, StdioError> {
    let mut keepers = StdioKeepers::default();
    let mut log = Vec::new();
    let stdin_fd = open_input(stdin, &mut keepers)?;
    let mut outputs = Vec::new();
    for (stream, path) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
        let name = stream.as_str();
        let fd = if logged && path.is_empty() {
            let (reader, writer) = logfile::pipe().map_err(|source| StdioError::Open {
                stream: name,
                path: "(log pipe)".into(),
                source,
            })?;
            let dup = reader.try_clone().map_err(|source| StdioError::Open {
                stream: name,
                path: "(log pipe)".into(),
                source,
            })?;
            keepers.output_readers.push((held_reader(stream), dup));
            log.push((stream, reader));
            writer
        } else {
            open_output(stream, path, &mut keepers)?
        };
        outputs.push(fd);
    }
    let stderr_fd = outputs.pop();
    let stdout_fd = outputs.pop();
    Ok(TaskStdio {
        process: ProcessStdio {
            stdin: Some(stdin_fd),
            stdout: stdout_fd,
            stderr: stderr_fd,
        },
        keepers,
        log,
    })
}

fn held_reader(stream: Stream) -> crate::keeper::Held {
    match stream {
        Stream::Stdout => crate::keeper::Held::StdoutReader,
        Stream::Stderr => crate::keeper::Held::StderrReader,
    }
}

enum Kind {
    Null,
    Fifo,
    File,
    CharDevice,
}

fn kind(stream: &'static str, path: &str) -> Result<Kind, StdioError> {
    if path.is_empty() {
        return Ok(Kind::Null);
    }
    if !path.starts_with('/') {
        return Err(StdioError::Relative {
            stream,
            path: path.to_owned(),
        });
    }
    // Every open below adds O_NOFOLLOW too, so a symlink swapped in after this look is
    // refused by the kernel.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(StdioError::Symlink {
            stream,
            path: path.to_owned(),
        }),
        Ok(m) if m.file_type().is_fifo() => Ok(Kind::Fifo),
        Ok(m) if m.is_file() => Ok(Kind::File),
        Ok(m) if m.file_type().is_char_device() => Ok(Kind::CharDevice),
        Ok(_) => Err(StdioError::Unsupported {
            stream,
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Kind::File),
        Err(source) => Err(StdioError::Open {
            stream,
            path: path.to_owned(),
            source,
        }),
    }
}

fn open_input(path: &str, keepers: &mut StdioKeepers) -> Result<OwnedFd, StdioError> {
    let err = |source| StdioError::Open {
        stream: "stdin",
        path: path.to_owned(),
        source,
    };
    let fd: OwnedFd = match kind("stdin", path)? {
        Kind::Null => OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map_err(err)?
            .into(),
        Kind::File | Kind::CharDevice => OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?
            .into(),
        Kind::Fifo => {
            let reader: OwnedFd = nonblocking(path, true, libc::O_NOFOLLOW).map_err(err)?;
            let writer = nonblocking(proc_fd(&reader), false, 0).map_err(err)?;
            set_blocking(&reader).map_err(err)?;
            keepers.stdin_writer = Some(writer);
            reader
        }
    };
    Ok(fd)
}

fn open_output(
    which: Stream,
    path: &str,
    keepers: &mut StdioKeepers,
) -> Result<OwnedFd, StdioError> {
    let stream = which.as_str();
    let err = |source| StdioError::Open {
        stream,
        path: path.to_owned(),
        source,
    };
    let fd: OwnedFd = match kind(stream, path)? {
        Kind::Null => OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(err)?
            .into(),
        Kind::CharDevice => OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?
            .into(),
        Kind::File => OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?
            .into(),
        Kind::Fifo => {
            let reader = nonblocking(path, true, libc::O_NOFOLLOW).map_err(err)?;
            // A reader exists, so this neither blocks nor fails with ENXIO.
            let writer = nonblocking(proc_fd(&reader), false, 0).map_err(err)?;
            set_blocking(&writer).map_err(err)?;
            keepers.output_readers.push((held_reader(which), reader));
            writer
        }
    };
    Ok(fd)
}

fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Opens a FIFO end with O_NONBLOCK (close-on-exec, as std always does).
fn nonblocking(path: impl AsRef<Path>, read: bool, flags: i32) -> io::Result<OwnedFd> {
    Ok(OpenOptions::new()
        .read(read)
        .write(!read)
        .custom_flags(libc::O_NONBLOCK | flags)
        .open(path)?
        .into())
}

/// The container expects ordinary blocking stdio.
fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }

    fn is_nonblocking(fd: &OwnedFd) -> bool {
        let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).expect("getfl");
        OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
    }

    #[test]
    fn fifos_without_a_client_open_at_once_and_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = ["in", "out", "err"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        paths.iter().for_each(|p| mkfifo(p));
        let strs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let (a, b, c) = (strs[0].clone(), strs[1].clone(), strs[2].clone());
        // In a thread so a regression shows as a failed timeout, not a hung test run.
        std::thread::spawn(move || {
            let _ = tx.send(open(&a, &b, &c, false));
        });
        let task = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("opening FIFOs with no client must not block")
            .expect("open");
        assert_eq!(task.keepers.len(), 3);
        let p = &task.process;
        for fd in [&p.stdin, &p.stdout, &p.stderr] {
            assert!(!is_nonblocking(fd.as_ref().expect("fd")));
        }
    }

    #[test]
    fn client_reads_output_and_sees_eof_when_the_writer_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        mkfifo(&out);
        let task = open("", out.to_str().expect("utf8"), "", false).expect("open");
        // The client opens late, after output was written: nothing is lost.
        let mut writer = std::fs::File::from(task.process.stdout.expect("stdout"));
        writer.write_all(b"early\n").expect("write before client");
        let mut client = std::fs::File::open(&out).expect("client opens");
        drop(writer);
        let mut text = String::new();
        client
            .read_to_string(&mut text)
            .expect("read to EOF despite keeper");
        assert_eq!(text, "early\n");
        drop(task.keepers);
    }

    #[test]
    fn stdin_fifo_reaches_eof_only_after_close_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in");
        mkfifo(&input);
        let mut task = open(input.to_str().expect("utf8"), "", "", false).expect("open");
        let mut client = OpenOptions::new().write(true).open(&input).expect("client");
        client.write_all(b"line\n").expect("write");
        drop(client);
        let reader = task.process.stdin.take().expect("stdin");
        // The keeper still holds a writer: a non-blocking read finds no EOF yet.
        let mut probe = std::fs::File::from(reader);
        let mut buf = [0u8; 16];
        let n = probe.read(&mut buf).expect("data");
        assert_eq!(&buf[..n], b"line\n");
        let flags = OFlag::from_bits_truncate(fcntl(probe.as_fd(), FcntlArg::F_GETFL).expect("fl"));
        fcntl(probe.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("setfl");
        let again = probe.read(&mut buf);
        assert_eq!(
            again.expect_err("no EOF while kept").kind(),
            io::ErrorKind::WouldBlock
        );
        task.keepers.close_stdin();
        assert_eq!(probe.read(&mut buf).expect("EOF"), 0);
    }

    #[test]
    fn regular_files_are_created_and_appended_and_empty_is_dev_null() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(&log, "old\n").expect("seed");
        let task = open("", log.to_str().expect("utf8"), "", false).expect("open");
        assert!(task.keepers.is_empty());
        std::fs::File::from(task.process.stdout.expect("stdout"))
            .write_all(b"new\n")
            .expect("write");
        assert_eq!(std::fs::read_to_string(&log).expect("read"), "old\nnew\n");
        let created = dir.path().join("created");
        let task = open("", "", created.to_str().expect("utf8"), false).expect("open");
        assert!(created.is_file());
        let mut null = std::fs::File::from(task.process.stdin.expect("stdin"));
        let mut buf = Vec::new();
        assert_eq!(null.read_to_end(&mut buf).expect("read /dev/null"), 0);
    }

    #[test]
    fn logged_empty_outputs_become_pipes_with_labelled_readers_for_the_keeper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = dir.path().join("err");
        let task = open("", "", err.to_str().expect("utf8"), true).expect("open");
        // Only stdout is logged; stderr goes to the named file.
        assert_eq!(task.log.len(), 1);
        assert_eq!(task.log[0].0, Stream::Stdout);
        let held: Vec<_> = task.keepers.held().into_iter().map(|(h, _)| h).collect();
        assert_eq!(held, vec![crate::keeper::Held::StdoutReader]);
        let mut w = std::fs::File::from(task.process.stdout.expect("stdout"));
        w.write_all(b"to the log\n").expect("write");
        drop(w);
        let (_, reader) = task.log.into_iter().next().expect("reader");
        let mut text = String::new();
        drop(task.keepers);
        std::fs::File::from(reader)
            .read_to_string(&mut text)
            .expect("read to EOF");
        assert_eq!(text, "to the log\n");
    }

    #[test]
    fn a_directory_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf8").to_owned();
        let err = open("", &path, "", false)
            .err()
            .expect("a directory is not stdio");
        assert!(err.to_string().contains(&path), "{err}");
    }

    #[test]
    fn symlinks_and_relative_paths_are_refused_and_the_target_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("victim");
        std::fs::write(&target, "precious\n").expect("write");
        let link = dir.path().join("stdout");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let link = link.to_str().expect("utf8").to_owned();
        for (i, o, e) in [
            ("", link.as_str(), ""),
            (link.as_str(), "", ""),
            ("", "", link.as_str()),
        ] {
            let err = open(i, o, e, false).err().expect("a symlink is refused");
            assert!(matches!(err, StdioError::Symlink { .. }), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious\n"
        );
        let err = open("", "relative/out", "", false)
            .err()
            .expect("relative is refused");
        assert!(matches!(err, StdioError::Relative { .. }), "{err}");
    }
}
