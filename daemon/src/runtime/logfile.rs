//! Container logs in the CRI format kubelet writes and its tools read: one entry per line,
//! `<RFC 3339, nanoseconds, UTC> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a
//! line longer than [`MAX_LINE`] (or cut by the end of the stream), `F` the last piece.
//!
//! The writing side is one thread per task ([`start`]) that drains the task's output pipes
//! into a [`LogFile`] as fast as they fill: nothing that reads the log can slow it, because
//! readers read the file, never the pipe. The file is capped in size and rotated
//! (`task.log` -> `task.log.1` -> ...), so a task that writes without end costs a bounded
//! amount of disk and no memory. The reading side ([`Cursor`]) follows the newest file
//! across rotations.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Longest line written as one entry (kubelet's and containerd's 16 KiB).
pub const MAX_LINE: usize = 16 << 10;
/// The longest entry a reader accepts as one line: [`MAX_LINE`] plus the prefix. A longer
/// "line" was not written by berthd and is skipped in pieces.
const MAX_ENTRY: usize = MAX_LINE + 64;
/// Bytes read from a pipe at once.
const CHUNK: usize = 64 << 10;
/// The pipe size asked for: output a task writes while berthd is down waits here.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// How big a log may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the newest file before it is rotated.
    pub max_bytes: u64,
    /// Files kept, the newest included (at least 1).
    pub max_files: u32,
}

/// Which of a process's outputs an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The file a log's `n`th rotation lives in (`n == 0` is the newest).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The newest file of one log, open for appending.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    limits: Limits,
}

impl LogFile {
    /// Opens (creating) `path` and its directory.
    pub fn open(path: &Path, limits: Limits) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = append(path)?;
        let mut size = file.metadata()?.len();
        // A write cut short (a crash, a full disk) leaves a line without its end: end it,
        // so the next entry does not read as its continuation.
        if size > 0 && !ends_with_newline(path)? {
            file.write_all(b"\n")?;
            size += 1;
        }
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            limits,
        })
    }

    /// Writes the entries of `lines` (each stamped `time`) as one write where it can.
    fn write(&mut self, time: &str, stream: Stream, lines: &[(bool, &[u8])]) -> io::Result<()> {
        let mut out = Vec::new();
        for (partial, text) in lines {
            let tag = if *partial { "P" } else { "F" };
            let len = time.len() + stream.as_str().len() + text.len() + 5;
            if self.size > 0 && self.size + (out.len() + len) as u64 > self.limits.max_bytes {
                self.flush(&mut out)?;
                self.rotate()?;
            }
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
            out.extend_from_slice(stream.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        self.flush(&mut out)
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(out);
        match written {
            Ok(()) => self.size += out.len() as u64,
            // Part of it may be in: the size is what the file says, and the next open ends
            // the torn line.
            Err(_) => self.size = self.file.metadata().map_or(self.size, |m| m.len()),
        }
        out.clear();
        written
    }

    /// Shifts every file one place older (dropping the oldest) and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.limits.max_files.max(1);
        let _ = std::fs::remove_file(rotated(&self.path, keep - 1));
        for n in (0..keep - 1).rev() {
            match std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A pipe for one output stream: the reader for the log, the writer for the process.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // A bigger pipe lets a task run on while berthd restarts; refused sizes are harmless.
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((r, w))
}

/// One task's copy thread; dropping it stops the thread even while a pipe stays open (a
/// daemonised grandchild can hold it forever).
pub struct Copier {
    _cancel: OwnedFd,
    /// Resolves when every source reached its end and all was written.
    pub done: Option<oneshot::Receiver<()>>,
}

/// Called after each batch written, and with `true` once the copy ended.
pub type Notify = Arc<dyn Fn(bool) + Send + Sync>;

/// Starts copying `sources` into `log` until each ends (or the [`Copier`] is dropped).
pub fn start(
    sources: Vec<(Stream, OwnedFd)>,
    log: Arc<Mutex<LogFile>>,
    notify: Notify,
) -> io::Result<Copier> {
    let (cancel_rx, cancel_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("berth-log".into())
        .spawn(move || {
            // Says the copy ended however it ends, a panic included: followers wait for it.
            struct Ended(Notify);
            impl Drop for Ended {
                fn drop(&mut self) {
                    (self.0)(true);
                }
            }
            let ended = Ended(Arc::clone(&notify));
            copy(sources, &log, &cancel_rx, &*notify);
            drop(ended);
            let _ = done_tx.send(());
        })?;
    Ok(Copier {
        _cancel: cancel_tx,
        done: Some(done_rx),
    })
}

struct Source {
    stream: Stream,
    fd: OwnedFd,
    pending: Vec<u8>,
}

fn copy(
    sources: Vec<(Stream, OwnedFd)>,
    log: &Mutex<LogFile>,
    cancel: &OwnedFd,
    notify: &dyn Fn(bool),
) {
    let mut open: Vec<Source> = sources
        .into_iter()
        .map(|(stream, fd)| Source {
            stream,
            fd,
            pending: Vec::new(),
        })
        .collect();
    let mut buf = vec![0u8; CHUNK];
    let mut warned = false;
    while !open.is_empty() {
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|s| s.fd.as_raw_fd())
            .chain([cancel.as_raw_fd()])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[open.len()].revents != 0 {
            return;
        }
        let mut ended = Vec::new();
        for (i, pfd) in fds[..open.len()].iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let src = &mut open[i];
            let n = match nix::unistd::read(&src.fd, &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(_) => 0,
            };
            if n == 0 {
                ended.push(i);
            }
            // A short read emptied the pipe: what is held back goes out now as a partial
            // entry (a prompt, keys echoed before Enter, a progress bar) instead of waiting
            // for a newline that may never come.
            let lines = split(&mut src.pending, &buf[..n], n < CHUNK);
            if let Err(e) = write_batch(log, src.stream, &lines, &src.pending) {
                // Keep draining so the task never blocks on a log berthd cannot write.
                if !warned {
                    tracing::warn!(error = %e, "task output is dropped: the log cannot be written");
                    warned = true;
                }
            }
            consume(&mut src.pending, &lines);
        }
        for i in ended.into_iter().rev() {
            open.remove(i);
        }
        notify(false);
    }
}

/// What `pending + data` holds ready to write: (partial, start..end into the joined bytes).
/// Complete lines are `F`; a piece of [`MAX_LINE`] without a newline is `P`; with `flush`
/// (the pipe is empty for now, or ended) what is left is `P` as well (kubelet's convention
/// for an unterminated line).
fn split(pending: &mut Vec<u8>, data: &[u8], flush: bool) -> Vec<(bool, usize, usize)> {
    pending.extend_from_slice(data);
    let mut out = Vec::new();
    let mut at = 0;
    while at < pending.len() {
        let rest = &pending[at..];
        match rest.iter().take(MAX_LINE).position(|b| *b == b'\n') {
            Some(nl) => {
                out.push((false, at, at + nl));
                at += nl + 1;
            }
            None if rest.len() >= MAX_LINE => {
                out.push((true, at, at + MAX_LINE));
                at += MAX_LINE;
            }
            None if flush => {
                out.push((true, at, pending.len()));
                at = pending.len();
            }
            None => break,
        }
    }
    out
}

/// Drops from `pending` what the lines covered.
fn consume(pending: &mut Vec<u8>, lines: &[(bool, usize, usize)]) {
    let Some(&(partial, _, end)) = lines.last() else {
        return;
    };
    let used = if partial { end } else { end + 1 };
    pending.drain(..used.min(pending.len()));
}

fn write_batch(
    log: &Mutex<LogFile>,
    stream: Stream,
    lines: &[(bool, usize, usize)],
    bytes: &[u8],
) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let time = crate::store::now();
    let texts: Vec<(bool, &[u8])> = lines.iter().map(|&(p, s, e)| (p, &bytes[s..e])).collect();
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write(&time, stream, &texts)
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: String,
    pub stream: Stream,
    pub partial: bool,
    pub text: String,
}

/// Parses one line (without its newline); `None` for a line berthd did not write.
pub fn parse(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    Some(Entry {
        time: time.to_owned(),
        stream,
        partial,
        text,
    })
}

/// Reads a log's entries oldest first, rotated files included, and then follows the newest
/// file: at its end it notices a rotation (a new file at the path) and moves on to it once
/// the old one is read to its end.
pub struct Cursor {
    path: PathBuf,
    /// Older files still to read, oldest last (popped from the end).
    older: Vec<PathBuf>,
    current: Option<(BufReader<File>, u64)>,
    carry: Vec<u8>,
}

impl Cursor {
    /// A cursor at the start of the oldest file of the log at `path`.
    pub fn new(path: &Path, limits: Limits) -> Cursor {
        let older = (1..limits.max_files.max(1))
            .map(|n| rotated(path, n))
            .collect();
        Cursor {
            path: path.to_owned(),
            older,
            current: None,
            carry: Vec::new(),
        }
    }

    /// The next entry, or `None` at the (current) end of the log.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some((reader, _)) = self.current.as_mut() else {
                return Ok(None);
            };
            let room = MAX_ENTRY.saturating_sub(self.carry.len()) as u64 + 1;
            let n = reader
                .by_ref()
                .take(room)
                .read_until(b'\n', &mut self.carry)?;
            if self.carry.last() == Some(&b'\n') {
                self.carry.pop();
                let entry = parse(&self.carry);
                self.carry.clear();
                if let Some(e) = entry {
                    return Ok(Some(e));
                }
                continue;
            }
            if self.carry.len() > MAX_ENTRY {
                // Not a line of ours: skip it in pieces.
                self.carry.clear();
                continue;
            }
            if n > 0 {
                continue;
            }
            // At the end of this file (a line may be half written: it stays in `carry`).
            if !self.older.is_empty() {
                self.current = None;
                self.carry.clear();
                continue;
            }
            if !self.rotated_away()? {
                return Ok(None);
            }
            // Read what was appended before the rename, then move to the new file.
            if let Some((reader, _)) = self.current.as_mut() {
                if reader.read_until(b'\n', &mut self.carry)? > 0 {
                    continue;
                }
            }
            self.carry.clear();
            self.current = None;
            self.older.clear();
        }
    }

    /// Opens the next file to read; false if there is none yet.
    fn open_next(&mut self) -> io::Result<bool> {
        while let Some(path) = self.older.pop() {
            if let Some(opened) = open_log(&path)? {
                self.current = Some(opened);
                return Ok(true);
            }
        }
        match open_log(&self.path)? {
            Some(opened) => {
                self.current = Some(opened);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether the newest file now is another file than the one being read.
    fn rotated_away(&self) -> io::Result<bool> {
        let Some((_, ino)) = &self.current else {
            return Ok(false);
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) => Ok(m.ino() != *ino),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn open_log(path: &Path) -> io::Result<Option<(BufReader<File>, u64)>> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => {
            let ino = f.metadata()?.ino();
            Ok(Some((BufReader::new(f), ino)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
