//! Child processes with deadlines: one-shot commands (`curl`, `socat`, a second `berthd`)
//! whose output we collect, and long-lived byte pipes (`socat` sessions) we read with a
//! timeout. A test must never hang on a daemon that stopped answering, so every read here
//! is bounded and every child is killed when its owner is dropped.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `cmd` with `input` on its stdin and collects its output; kills it and panics
/// after `limit`, naming the command.
pub fn output_within(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        // A child that exits early closes its stdin; that is its business, not an error here.
        let _ = stdin.write_all(&input);
    });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = match wait_within(&mut child, limit) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {limit:?}");
        }
    };
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Polls `child` until it exits or `limit` passes (then `None`; the child is left running).
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

/// A long-lived child (typically `socat - UNIX-CONNECT:...`) used as a bidirectional byte
/// pipe: the test writes to its stdin and reads its stdout with timeouts.
pub struct Pipe {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    eof: bool,
}

impl Pipe {
    /// Spawns `cmd` with piped stdin/stdout; its stderr goes to the test's stderr.
    pub fn spawn(cmd: &mut Command) -> Pipe {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(chunk[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Pipe {
            child,
            stdin,
            chunks,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all of `bytes` to the child's stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("pipe's stdin already closed");
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.child.id()));
    }

    /// Closes the child's stdin (socat then half-closes the socket).
    pub fn close_write(&mut self) {
        self.stdin = None;
    }

    /// True once the child's stdout reached end of file and everything was consumed.
    pub fn at_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.buf.is_empty() && !self.eof {
            if !self.fill(deadline) {
                break;
            }
        }
        self.buf.is_empty() && self.eof
    }

    /// Takes the first value `parse` recognises at the front of the buffered output,
    /// reading more until it does; `None` on timeout or end of file.
    /// `parse` returns the value and how many bytes it consumed.
    pub fn read_with<T>(
        &mut self,
        timeout: Duration,
        mut parse: impl FnMut(&[u8]) -> Option<(T, usize)>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((value, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(value);
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Reads through the next `delim` (included in the result).
    pub fn read_until(&mut self, delim: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        self.read_with(timeout, |buf| {
            let at = buf.windows(delim.len()).position(|w| w == delim)?;
            Some((buf[..at + delim.len()].to_vec(), at + delim.len()))
        })
    }

    /// Reads the next line, without its newline.
    pub fn read_line(&mut self, timeout: Duration) -> Option<String> {
        let mut line = self.read_until(b"\n", timeout)?;
        line.pop();
        Some(String::from_utf8(line).expect("a line of UTF-8"))
    }

    /// Whatever output has arrived but not been consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok(chunk) => {
                self.buf.extend_from_slice(&chunk);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
