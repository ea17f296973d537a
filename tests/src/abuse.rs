//! Hostile clients and what they cost berthd: stalled connections of every kind, raw HTTP
//! exchanges, a WebSocket subscriber that never reads, and berthd's memory as /proc reports
//! it. Shared by the hardening tests and the `berth-abuse` binary (`make abuse`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ws::{client_frame, upgrade_request, OP_TEXT};

/// A request line for `system.version`.
pub const VERSION_LINE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"system.version","params":{}}"#;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), 0 if unreadable.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (hostile probes open many
/// sockets); returns the soft limit now in force.
pub fn raise_own_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads one valid rlimit; raising soft up to hard needs no privilege.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    lim.rlim_cur
}

/// The three ways a connection can stall: silent, half an HTTP body, half an NDJSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    Silent,
    HalfHttpBody,
    HalfNdjsonLine,
}

/// Opens one stalled connection of `kind`.
pub fn stall(socket: &Path, kind: Stall) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket)?;
    match kind {
        Stall::Silent => {}
        Stall::HalfHttpBody => s.write_all(
            b"POST / HTTP/1.1\r\nHost: berth\r\ncontent-type: application/json\r\n\
              content-length: 200\r\n\r\n{\"jsonrpc\":\"2.0\",",
        )?,
        Stall::HalfNdjsonLine => s.write_all(br#"{"jsonrpc":"2.0","id":1,"method":"sys"#)?,
    }
    Ok(s)
}

/// Opens `n` stalled connections, cycling through the three kinds.
pub fn stall_many(socket: &Path, n: usize) -> Vec<UnixStream> {
    let kinds = [Stall::Silent, Stall::HalfHttpBody, Stall::HalfNdjsonLine];
    (0..n)
        .map(|i| {
            stall(socket, kinds[i % 3]).unwrap_or_else(|e| panic!("stalled connection {i}: {e}"))
        })
        .collect()
}

/// How long one `system.version` over a fresh NDJSON connection took, or why it failed.
pub fn time_version(socket: &Path, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.write_all(format!("{VERSION_LINE}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.contains(&b'\n') {
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let reply: Value = serde_json::from_slice(&got).map_err(|e| format!("reply: {e}"))?;
    if reply["result"]["api_version"] != json!("v1") {
        return Err(format!("not a version reply: {reply}"));
    }
    Ok(started.elapsed())
}

/// One HTTP exchange as raw bytes: writes `request`, reads until the response is complete
/// (by content-length) or the connection ends; returns status and body (`Null` if empty).
/// `None` when no status line came back (e.g. the connection was reset).
pub fn http_exchange(socket: &Path, request: &[u8], limit: Duration) -> Option<(u16, Value)> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    // A refusal may arrive before the whole request is written; keep reading either way.
    let _ = s.write_all(request);
    read_http_response(&mut s)
}

/// Reads one HTTP response from `s`.
pub fn read_http_response(s: &mut UnixStream) -> Option<(u16, Value)> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            if status == 100 {
                got.drain(..end + 4);
                continue;
            }
            let len: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let body = &got[end + 4..end + 4 + len];
                let body = if body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
                };
                return Some((status, body));
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A POST of `body` as raw HTTP/1.1 bytes.
pub fn post(body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: berth\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A WebSocket connection that subscribes to events and then never reads: the upgrade
/// answer and everything after it stay unread in the socket.
pub fn silent_ws_subscriber(socket: &Path, filters: &[&str]) -> UnixStream {
    let mut s = UnixStream::connect(socket).expect("connect for the WebSocket");
    s.write_all(upgrade_request().as_bytes()).expect("upgrade");
    let sub = json!({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                     "params": {"filters": filters}});
    s.write_all(&client_frame(
        OP_TEXT,
        sub.to_string().as_bytes(),
        [9, 8, 7, 6],
    ))
    .expect("subscribe frame");
    s
}

/// Labels totalling about `n * len` bytes, keyed `pad.<i>` (each key+value under 4096).
pub fn big_labels(n: usize, len: usize, tag: &str) -> Value {
    let mut labels = serde_json::Map::new();
    for i in 0..n {
        labels.insert(
            format!("pad.{i}"),
            json!(format!("{tag}{}", "x".repeat(len))),
        );
    }
    Value::Object(labels)
}

/// A batch of `n` identical calls with ids 1..=n.
pub fn batch(n: usize, method: &str, params: &Value) -> String {
    let calls: Vec<Value> = (1..=n)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params}))
        .collect();
    Value::Array(calls).to_string()
}

/// Counts the JSON-RPC `-32603` (internal) errors in a reply or batch reply.
pub fn internal_errors(reply: &Value) -> usize {
    match reply {
        Value::Array(items) => items.iter().map(internal_errors).sum(),
        v => usize::from(v["error"]["code"] == json!(-32603)),
    }
}

/// Reads what a [`silent_ws_subscriber`] left unread: the upgrade answer, then messages.
pub struct WsReader {
    stream: UnixStream,
    buf: Vec<u8>,
    upgraded: bool,
}

impl WsReader {
    pub fn new(stream: UnixStream) -> WsReader {
        WsReader {
            stream,
            buf: Vec::new(),
            upgraded: false,
        }
    }

    /// The next text message as JSON; `Err` says why there is none (timeout, close, a
    /// message that is not JSON).
    pub fn recv_json(&mut self, limit: Duration) -> Result<Value, String> {
        self.stream
            .set_read_timeout(Some(limit))
            .map_err(|e| e.to_string())?;
        let mut message = Vec::new();
        loop {
            if !self.upgraded {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    if !self.buf.starts_with(b"HTTP/1.1 101") {
                        return Err(format!(
                            "upgrade refused: {}",
                            String::from_utf8_lossy(&self.buf[..end])
                        ));
                    }
                    self.buf.drain(..end + 4);
                    self.upgraded = true;
                }
            }
            if self.upgraded {
                if let Some((frame, used)) = crate::ws::parse_frame(&self.buf) {
                    self.buf.drain(..used);
                    match frame.opcode {
                        crate::ws::OP_TEXT | crate::ws::OP_CONTINUATION => {
                            message.extend_from_slice(&frame.payload);
                            if frame.fin {
                                return serde_json::from_slice(&message).map_err(|e| {
                                    format!("{e}: {}", String::from_utf8_lossy(&message))
                                });
                            }
                        }
                        crate::ws::OP_CLOSE => {
                            return Err(format!(
                                "closed: {}",
                                String::from_utf8_lossy(&frame.payload)
                            ))
                        }
                        _ => {}
                    }
                    continue;
                }
            }
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("end of stream".into()),
                Err(e) => return Err(e.to_string()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Silent connections that reconnect as soon as berthd drops them (issue 30 item 5's
/// attack): `n` are kept open, each one berthd closes, refuses or evicts is opened again at
/// once. Runs on its own thread until dropped.
pub struct Churn {
    stop: Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Churn {
    pub fn start(socket: &Path, n: usize) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let reconnects = Arc::new(AtomicU64::new(0));
        let thread = {
            let (socket, stop, reconnects) = (socket.to_owned(), stop.clone(), reconnects.clone());
            thread::spawn(move || churn(&socket, n, &stop, &reconnects))
        };
        Churn {
            stop,
            reconnects,
            thread: Some(thread),
        }
    }

    /// Connections opened again after berthd ended them.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Keeps `n` silent connections to `socket` open until `stop`, counting reconnects.
pub fn churn(socket: &Path, n: usize, stop: &AtomicBool, reconnects: &AtomicU64) {
    let open = || {
        let s = UnixStream::connect(socket).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    };
    let mut conns: Vec<Option<UnixStream>> = (0..n).map(|_| open()).collect();
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        for c in conns.iter_mut().filter(|c| c.is_none()) {
            *c = open();
        }
        let mut fds: Vec<libc::pollfd> = conns
            .iter()
            .flatten()
            .map(|s| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(s),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll reads and writes `fds.len()` pollfd entries of the live vector.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        // `fds` follows the open connections in order.
        let mut polled = fds.iter();
        for c in conns.iter_mut() {
            let Some(s) = c else { continue };
            if polled.next().is_none_or(|p| p.revents == 0) {
                continue;
            }
            // An answer (a refusal) is read and dropped; the end of the stream reconnects.
            let ended = loop {
                match s.read(&mut sink) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            if ended {
                *c = open();
                reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
