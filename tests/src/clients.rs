//! Ways into a `TestDaemon`, each exactly as a user would: the real `curl` (HTTP POST),
//! the real `socat` (NDJSON and WebSocket bytes), and a plain std `UnixStream` speaking
//! NDJSON for the many calls where speed matters more than the client binary. Each checks
//! every message it receives against the document ([`crate::contract`]).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::contract::Tracker;
use crate::daemon::TestDaemon;
use crate::process::{output_within, Pipe};
use crate::ws::WebSocket;

/// Bound on any one client exchange, so a stuck daemon fails the test instead of hanging.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Seconds socat keeps reading replies after its stdin ended, when the daemon does not
/// close the connection first.
const SOCAT_LINGER: &str = "5";

impl TestDaemon {
    /// POSTs `body` with curl; returns the HTTP status and the body as JSON (`Null` for an
    /// empty body, a JSON string holding the text when the body is not JSON).
    pub fn curl(&self, body: &str) -> (u16, Value) {
        self.curl_as(&[], body)
    }

    /// `curl` run through `wrapper` (e.g. `["setpriv", "--reuid=65534", ...]`), to speak as
    /// another user.
    pub fn curl_as(&self, wrapper: &[&str], body: &str) -> (u16, Value) {
        let out = output_within(
            wrapped(wrapper, "curl")
                .arg("-s")
                .args(["--max-time", "20", "--unix-socket"])
                .arg(self.socket())
                .arg("http://berth/")
                .args(["-H", "content-type: application/json", "--data-raw", body])
                .args(["-w", "\\n%{http_code}"]),
            b"",
            CLIENT_LIMIT,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (reply, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        let status: u16 = status.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl gave no status ({}): {text:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let reply = parse_body(reply);
        if reply.is_object() || reply.is_array() {
            let mut contract = Tracker::default();
            contract.sent(body);
            contract.received(&reply);
        }
        (status, reply)
    }

    /// Sends `lines` (NDJSON; a final newline is added if missing) through
    /// `socat - UNIX-CONNECT:SOCK`, ends its input and returns every line that came back.
    pub fn socat(&self, lines: &str) -> Vec<Value> {
        self.socat_as(&[], lines)
    }

    /// `socat` run through `wrapper`, as `curl_as`.
    pub fn socat_as(&self, wrapper: &[&str], lines: &str) -> Vec<Value> {
        let mut input = lines.to_owned();
        if !input.ends_with('\n') {
            input.push('\n');
        }
        let out = output_within(
            wrapped(wrapper, "socat")
                .args(["-t", SOCAT_LINGER, "-"])
                .arg(unix_connect(self.socket())),
            input.as_bytes(),
            CLIENT_LIMIT,
        );
        let mut contract = Tracker::default();
        contract.sent_bytes(input.as_bytes());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let msg =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("non-JSON line {l:?}: {e}"));
                contract.received(&msg);
                msg
            })
            .collect()
    }

    /// A live `socat - UNIX-CONNECT:SOCK` pipe for exchanges that interleave (subscriptions).
    pub fn socat_session(&self) -> Pipe {
        Pipe::spawn(
            Command::new("socat")
                .arg("-")
                .arg(unix_connect(self.socket())),
        )
    }

    /// A WebSocket over socat, already upgraded.
    pub fn websocket(&self) -> WebSocket {
        WebSocket::connect(self.socket())
    }

    /// A raw NDJSON connection.
    pub fn ndjson(&self) -> Ndjson {
        Ndjson::connect(self.socket())
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket().display()))
    }

    /// Calls `method` over a fresh NDJSON connection: `Ok(result)` or `Err(error object)`.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, Value> {
        self.ndjson().call(method, params)
    }

    /// Calls `method` and panics, with the error, unless it succeeds.
    pub fn rpc_ok(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params} failed: {e}"))
    }
}

/// `program` as a command, or `wrapper... program` when a wrapper is given.
fn wrapped(wrapper: &[&str], program: &str) -> Command {
    match wrapper.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(program);
            cmd
        }
    }
}

/// `UNIX-CONNECT:<path>` as socat's address argument.
pub fn unix_connect(socket: &Path) -> String {
    format!("UNIX-CONNECT:{}", socket.display())
}

fn parse_body(body: &str) -> Value {
    if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    }
}

/// Why no message came back.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    /// The daemon closed the connection.
    Closed,
}

/// One NDJSON connection over a std `UnixStream`.
pub struct Ndjson {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    contract: Tracker,
}

impl Ndjson {
    pub fn connect(socket: &Path) -> std::io::Result<Ndjson> {
        Ok(Ndjson {
            stream: UnixStream::connect(socket)?,
            buf: Vec::new(),
            next_id: 1,
            contract: Tracker::default(),
        })
    }

    /// Bytes sent that the daemon has not read yet (SIOCOUTQ of a unix socket): 0 once
    /// berthd has taken every request sent so far, the evidence that it had them before
    /// whatever the test does next.
    pub fn unread_by_daemon(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int into `n`, which we own.
        let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
        n as usize
    }

    /// Writes raw bytes (a partial line, an oversized line, anything).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.contract.sent_bytes(bytes);
        self.stream.write_all(bytes)
    }

    /// Writes `msg` as one line.
    pub fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line)
            .unwrap_or_else(|e| panic!("sending {msg}: {e}"));
    }

    /// Reads the next line as JSON, checked against the document.
    pub fn recv(&mut self, timeout: Duration) -> Result<Value, RecvError> {
        let line = self.next_line(timeout)?;
        let msg =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("non-JSON line {line:?}: {e}"));
        self.contract.received(&msg);
        Ok(msg)
    }

    /// Reads the next line, without its newline; a JSON line is checked against the
    /// document.
    pub fn recv_line(&mut self, timeout: Duration) -> Result<String, RecvError> {
        let line = self.next_line(timeout)?;
        if let Ok(msg) = serde_json::from_str::<Value>(&line) {
            self.contract.received(&msg);
        }
        Ok(line)
    }

    fn next_line(&mut self, timeout: Duration) -> Result<String, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                return Ok(String::from_utf8_lossy(&line[..at]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(RecvError::Closed),
            }
        }
    }

    /// Sends a request and waits for the reply with its id, skipping notifications;
    /// panics if the connection fails.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("no reply to {method}: {e:?}"))
    }

    /// Like `call`, but a broken or silent connection is an `Err` instead of a panic (for
    /// tests that kill the daemon mid-call).
    pub fn try_call(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, Value>, RecvError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        self.send_raw(&line).map_err(|_| RecvError::Closed)?;
        loop {
            let reply = self.recv(CLIENT_LIMIT)?;
            if reply.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Ok(Err(error.clone()));
            }
            return Ok(Ok(reply.get("result").cloned().unwrap_or(Value::Null)));
        }
    }

    /// The next notification of `method` (e.g. `events.event`), skipping other lines.
    pub fn next_notification(&mut self, method: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.recv(left).ok()?;
            if msg.get("method").and_then(Value::as_str) == Some(method) {
                return Some(msg);
            }
        }
    }
}
