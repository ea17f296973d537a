//! HTTP/1.1 on the socket: `POST /` carries one JSON-RPC message (or batch) per request and
//! is answered through the shared [`Dispatcher`], so HTTP and NDJSON apply the same envelope
//! rules and caps; a WebSocket upgrade is handed, with the bytes already read, to jsonrpsee.
//!
//! Only what a JSON-RPC client sends is understood: a request line, headers, a body framed
//! by `content-length` or chunked encoding, `expect: 100-continue` and keep-alive. Heads
//! and bodies must arrive within the request timeout, and a connection waiting for its next
//! request is closed after the idle timeout, so half-sent requests cannot hold a slot.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use schema::ErrorKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::{Charge, UNCHARGED_REQUEST};
use super::envelope::{error_reply, Dispatcher, Reply, Transport};
use super::slots::Slot;
use crate::service::containers::{Piece, TextStream};

/// Most bytes of a request line and headers.
const MAX_HEAD: usize = 64 << 10;

/// Bounds of one HTTP connection.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_body: usize,
    pub idle: Duration,
    pub request: Duration,
}

/// What to do with a connection after its request.
pub enum Next {
    /// Serve the next request on it.
    KeepAlive,
    /// Close it (gracefully: the peer reads the reply before it sees the end).
    Close,
    /// It asked for a WebSocket: serve it with jsonrpsee, replaying these bytes first (of
    /// which the first `head_len` are the upgrade request).
    Upgrade { bytes: Vec<u8>, head_len: usize },
}

/// A parsed request head.
#[derive(Debug)]
struct Head {
    method: String,
    http10: bool,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    upgrade: bool,
    expect_continue: bool,
}

/// Serves HTTP requests on `stream` until it closes, idles, misbehaves, or upgrades; on an
/// upgrade returns the upgrade request's length and the bytes read so far, so the caller can
/// replay them to jsonrpsee. Each complete request proves `slot`.
pub async fn serve(
    stream: &mut UnixStream,
    dispatcher: &Dispatcher,
    limits: HttpLimits,
    mut closing: watch::Receiver<bool>,
    slot: &Slot,
) -> Option<(usize, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        match one_request(stream, &mut buf, dispatcher, limits, &mut closing, slot).await {
            Next::KeepAlive => continue,
            Next::Close => {
                close_gracefully(stream).await;
                return None;
            }
            Next::Upgrade { bytes, head_len } => return Some((head_len, bytes)),
        }
    }
}

async fn one_request(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    dispatcher: &Dispatcher,
    limits: HttpLimits,
    closing: &mut watch::Receiver<bool>,
    slot: &Slot,
) -> Next {
    // Idle until the first byte of the next request, then the request deadline. Shutdown
    // closes a connection between requests, never in the middle of one.
    if *closing.borrow() {
        return Next::Close;
    }
    if buf.is_empty() {
        let mut chunk = [0u8; 4096];
        let read = tokio::select! {
            r = tokio::time::timeout(limits.idle, stream.read(&mut chunk)) => r,
            _ = closing.changed() => return Next::Close,
        };
        match read {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Next::Close,
        }
    }
    let deadline = Instant::now() + limits.request;
    let head_end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            let msg = format!("request head larger than {MAX_HEAD} bytes");
            respond(
                stream,
                431,
                &error_reply(ErrorKind::ResourceExhausted, &msg),
                true,
            )
            .await;
            return Next::Close;
        }
        if let Err(next) = read_more(stream, buf, deadline, limits).await {
            return next;
        }
    };
    let head = match parse_head(&buf[..head_end]) {
        Ok(head) => head,
        Err(bad) => {
            // The framing cannot be trusted: whatever follows is not read as a request.
            let body = error_reply(ErrorKind::InvalidArgument, &bad.msg);
            respond(stream, bad.status, &body, true).await;
            return Next::Close;
        }
    };
    let has_body = head.content_length.unwrap_or(0) > 0 || head.chunked;
    if head.upgrade && head.method == "GET" && !has_body {
        if !slot.proven() {
            return Next::Close;
        }
        return Next::Upgrade {
            bytes: std::mem::take(buf),
            head_len: head_end,
        };
    }
    if head.method != "POST" {
        // A body of a request that is not served is not read: the connection ends after
        // the answer.
        let close = head.close || has_body;
        answer_other_method(stream, &head.method, close).await;
        buf.drain(..head_end);
        return if close || !slot.proven() {
            Next::Close
        } else {
            Next::KeepAlive
        };
    }
    if head.content_length.unwrap_or(0) > limits.max_body {
        return too_large(stream, limits.max_body).await;
    }
    if head.expect_continue
        && stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Next::Close;
    }
    buf.drain(..head_end);
    let mut charge = Charge::default();
    let body = if head.chunked {
        match read_chunked(stream, buf, deadline, limits, dispatcher, &mut charge).await {
            Ok(body) => body,
            Err(next) => return next,
        }
    } else {
        let len = head.content_length.unwrap_or(0);
        if let Err(next) = charge_body(stream, dispatcher, &mut charge, len, limits).await {
            return next;
        }
        while buf.len() < len {
            if let Err(next) = read_more(stream, buf, deadline, limits).await {
                return next;
            }
        }
        let rest = buf.split_off(len);
        std::mem::replace(buf, rest)
    };
    if !slot.proven() {
        return Next::Close;
    }
    let close = head.close || head.http10;
    let Ok(text) = std::str::from_utf8(&body) else {
        let reply = super::envelope::parse_error("request is not valid UTF-8");
        respond(stream, 200, &reply, close).await;
        return if close { Next::Close } else { Next::KeepAlive };
    };
    let answer = dispatcher.handle(text, Transport::Http).await;
    drop(body);
    drop(charge);
    // Whether the connection can serve another request after this response.
    let reusable = match answer.reply {
        Some(Reply::Text(reply)) => {
            respond(stream, 200, &reply, close).await;
            true
        }
        Some(Reply::Stream(reply)) => respond_stream(stream, reply, close, head.http10).await,
        // JSON-RPC sends nothing back for notifications.
        None => {
            respond(stream, 204, "", close).await;
            true
        }
    };
    drop(answer.charge);
    if close || !reusable {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

/// Reads more of the request before `deadline`; on failure says what to do instead.
async fn read_more(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    limits: HttpLimits,
) -> Result<(), Next> {
    let mut chunk = [0u8; 64 << 10];
    match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Ok(_) => Err(Next::Close),
        Err(_) => {
            let msg = format!(
                "request not complete within {} s (request_timeout_secs); closing the connection",
                limits.request.as_secs()
            );
            respond(
                stream,
                408,
                &error_reply(ErrorKind::ResourceExhausted, &msg),
                true,
            )
            .await;
            Err(Next::Close)
        }
    }
}

async fn too_large(stream: &mut UnixStream, max: usize) -> Next {
    let msg = format!("request larger than the limit of {max} bytes (max_request_bytes); not read");
    respond(
        stream,
        413,
        &error_reply(ErrorKind::ResourceExhausted, &msg),
        true,
    )
    .await;
    Next::Close
}

/// Charges a request body of `len` bytes to the memory budget (small ones ride free); when
/// the budget has no room, answers 503 `resource_exhausted` and closes.
async fn charge_body(
    stream: &mut UnixStream,
    dispatcher: &Dispatcher,
    charge: &mut Charge,
    len: usize,
    limits: HttpLimits,
) -> Result<(), Next> {
    if len <= UNCHARGED_REQUEST {
        return Ok(());
    }
    if let Err(msg) = dispatcher.budget.cover(charge, len, limits.request).await {
        let reply = error_reply(ErrorKind::ResourceExhausted, &msg);
        respond(stream, 503, &reply, true).await;
        return Err(Next::Close);
    }
    Ok(())
}

/// Decodes a chunked body, bounded by the body limit and the budget.
async fn read_chunked(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    limits: HttpLimits,
    dispatcher: &Dispatcher,
    charge: &mut Charge,
) -> Result<Vec<u8>, Next> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(buf, b"\r\n") {
                break at;
            }
            if buf.len() > 1024 {
                return Err(Next::Close);
            }
            read_more(stream, buf, deadline, limits).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("");
        let size = match size_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => usize::from_str_radix(size_hex, 16).ok(),
            false => None,
        };
        let Some(size) = size else {
            let msg = format!("malformed chunk size {size_hex:?}");
            respond(
                stream,
                400,
                &error_reply(ErrorKind::InvalidArgument, &msg),
                true,
            )
            .await;
            return Err(Next::Close);
        };
        if body.len() + size > limits.max_body {
            return Err(too_large(stream, limits.max_body).await);
        }
        charge_body(stream, dispatcher, charge, body.len() + size, limits).await?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                if let Some(at) = find(buf, b"\r\n") {
                    buf.drain(..at + 2);
                    if at == 0 {
                        return Ok(body);
                    }
                    continue;
                }
                read_more(stream, buf, deadline, limits).await?;
            }
        }
        while buf.len() < size + 2 {
            read_more(stream, buf, deadline, limits).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Why a request head is refused: the status to answer (the connection then closes) and
/// what to tell the client.
#[derive(Debug)]
struct BadHead {
    status: u16,
    msg: String,
}

fn bad(msg: impl Into<String>) -> BadHead {
    BadHead {
        status: 400,
        msg: msg.into(),
    }
}

/// Whether `b` may appear in a token (a method or a header name), RFC 9110 section 5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A control byte other than HTAB (NUL, CR, LF, DEL...): never valid inside a field.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// A Content-Length value: decimal digits only (no sign, no hex, no spaces, not empty).
fn content_length(value: &str) -> Result<usize, BadHead> {
    let malformed = || {
        bad(format!(
            "malformed Content-Length {value:?}: it must be decimal digits only"
        ))
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    value.parse().map_err(|_| malformed())
}

/// Reads a request head strictly (RFC 9112 sections 3, 5 and 6.3): anything that could make
/// berthd and a proxy in front of it see different requests is refused, namely both
/// Transfer-Encoding and Content-Length, two different Content-Lengths, a Content-Length
/// that is not plain digits, a transfer coding other than `chunked`, whitespace before a
/// header's colon, folded lines, and control bytes in the request line or in any field.
fn parse_head(head: &[u8]) -> Result<Head, BadHead> {
    let text = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let text = text.strip_suffix("\r\n\r\n").unwrap_or(text);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if request_line.bytes().any(is_ctl) {
        return Err(bad("control byte in the request line"));
    }
    let mut parts = request_line.split(' ');
    let (Some(method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "malformed request line: expected METHOD TARGET HTTP/1.1",
        ));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad(format!("malformed method {method:?}")));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(bad(format!(
                "unsupported version {version:?}: berthd speaks HTTP/1.1"
            )))
        }
    };
    let mut h = Head {
        method: method.to_owned(),
        http10,
        content_length: None,
        chunked: false,
        close: false,
        upgrade: false,
        expect_continue: false,
    };
    let mut keep_alive = false;
    let mut codings: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(bad("obsolete line folding in the request head"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("header line {line:?} has no colon")));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(bad(format!(
                "malformed header name {name:?} (whitespace before the colon, or a byte that \
                 is not a token character)"
            )));
        }
        if value.bytes().any(is_ctl) {
            return Err(bad(format!("control byte in the value of header {name}")));
        }
        let value = value.trim_matches([' ', '\t']);
        let has = |token: &str| {
            value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case(token))
        };
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = content_length(value)?;
                match h.content_length {
                    Some(m) if m != n => {
                        return Err(bad(format!(
                            "two different Content-Length values: {m} and {n}"
                        )))
                    }
                    _ => h.content_length = Some(n),
                }
            }
            "transfer-encoding" => codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim_matches([' ', '\t']).to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            ),
            "connection" => {
                h.close |= has("close");
                keep_alive |= has("keep-alive");
            }
            "upgrade" => h.upgrade = has("websocket"),
            "expect" => h.expect_continue = has("100-continue"),
            _ => {}
        }
    }
    if !codings.is_empty() {
        if h.content_length.is_some() {
            return Err(bad(
                "both Transfer-Encoding and Content-Length: the body's length is ambiguous \
                 (RFC 9112 section 6.3)",
            ));
        }
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(bad("Transfer-Encoding must end with chunked"));
        }
        if codings.len() > 1 {
            return Err(BadHead {
                status: 501,
                msg: format!(
                    "transfer coding {:?} is not supported; berthd reads chunked only",
                    codings[0]
                ),
            });
        }
        h.chunked = true;
    }
    // HTTP/1.0 has no transfer codings: such a message's framing is suspect, so the
    // connection ends after it (RFC 9112 section 6.1).
    if http10 && (!keep_alive || h.chunked) {
        h.close = true;
    }
    Ok(h)
}

/// Answers a request whose method berthd does not serve: `OPTIONS` with 204 and `Allow`,
/// anything else (GET without an upgrade, HEAD, PUT...) with 405 and `Allow`; HEAD gets the
/// head of that answer without its body (RFC 9110 section 9.3.2).
async fn answer_other_method(stream: &mut UnixStream, method: &str, close: bool) {
    let allow = "allow: POST\r\n";
    if method == "OPTIONS" {
        return respond_with(stream, 204, "", close, allow, false).await;
    }
    let msg = format!(
        "{method} is not served: berthd speaks JSON-RPC 2.0 over POST (or a WebSocket, or \
         newline-delimited JSON on the same socket), e.g. curl --unix-socket SOCKET \
         http://berth/ -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}}'"
    );
    let body = error_reply(ErrorKind::InvalidArgument, &msg);
    respond_with(stream, 405, &body, close, allow, method == "HEAD").await;
}

/// Writes a complete response; `close` announces that the connection ends after it.
async fn respond(stream: &mut UnixStream, status: u16, body: &str, close: bool) {
    respond_with(stream, status, body, close, "", false).await;
}

/// [`respond`] with `extra` header lines (each ending in CRLF); `head_only` leaves the body
/// out (an answer to HEAD) but keeps its content-length.
async fn respond_with(
    stream: &mut UnixStream,
    status: u16,
    body: &str,
    close: bool,
    extra: &str,
    head_only: bool,
) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Service Unavailable",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if status != 204 {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str(extra);
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    if !body.is_empty() && !head_only {
        let _ = stream.write_all(body.as_bytes()).await;
    }
}

/// Writes a 200 response whose body is written while it is sent: chunked, or for HTTP/1.0
/// delimited by the end of the connection. `false` when the connection must end after it:
/// HTTP/1.0, or the body broke off (a chunked body then lacks its last chunk, so the peer
/// sees it cut).
async fn respond_stream(
    stream: &mut UnixStream,
    mut body: TextStream,
    close: bool,
    http10: bool,
) -> bool {
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
    head.push_str(match http10 {
        true => "connection: close\r\n\r\n",
        false if close => "transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        false => "transfer-encoding: chunked\r\n\r\n",
    });
    let mut first = Some(std::mem::take(&mut body.first));
    let mut pending = head.into_bytes();
    loop {
        let chunk = match first.take() {
            Some(c) => c,
            None => match body.rest.recv().await {
                Some(Piece::Chunk(c)) => c,
                Some(_) => return false,
                None => break,
            },
        };
        if !http10 {
            pending.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        }
        if stream.write_all(&pending).await.is_err() || stream.write_all(&chunk).await.is_err() {
            return false;
        }
        pending.clear();
        if !http10 {
            pending.extend_from_slice(b"\r\n");
        }
    }
    if !http10 {
        pending.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&pending).await.is_ok() && !http10
}

/// An error response for a refused connection, in HTTP.
pub fn refusal(kind: ErrorKind, msg: &str) -> Vec<u8> {
    let body = error_reply(kind, msg);
    let status = match kind {
        ErrorKind::PermissionDenied => "403 Forbidden",
        _ => "503 Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Ends a connection so the peer reads everything written: shut down the write side, then
/// read and discard what the peer still sends, until it closes or pauses for [`QUIET`]
/// (at most [`DRAIN_LIMIT`]), so that no unread byte makes closing reset the peer.
pub async fn close_gracefully(stream: &mut UnixStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 64 << 10];
        while let Ok(Ok(n)) = tokio::time::timeout(QUIET, stream.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
}

/// How long a closing peer may pause before berthd stops reading what it sends.
const QUIET: Duration = Duration::from_millis(100);
/// Most time spent discarding a closing peer's bytes.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A stream that yields `prefix` before the rest of `inner`: hands jsonrpsee a connection
/// whose first bytes berth already read. Every client frame passing through is checked for
/// its mask (see [`FrameGuard`]).
pub struct Replay {
    prefix: Vec<u8>,
    at: usize,
    inner: UnixStream,
    guard: FrameGuard,
}

impl Replay {
    /// `head_len`: how many bytes of `prefix` are the upgrade request; frames follow.
    pub fn new(prefix: Vec<u8>, head_len: usize, inner: UnixStream) -> Replay {
        Replay {
            prefix,
            at: 0,
            inner,
            guard: FrameGuard::new(head_len),
        }
    }

    /// Ends a connection that sent an unmasked frame: its socket is shut down at once (the
    /// peer sees the end even while jsonrpsee winds down) and the read fails.
    fn unmasked(&mut self) -> io::Error {
        use std::os::fd::AsRawFd;
        if !self.guard.broken {
            self.guard.broken = true;
            tracing::debug!("closing a WebSocket that sent an unmasked frame");
            let _ = nix::sys::socket::shutdown(
                self.inner.as_raw_fd(),
                nix::sys::socket::Shutdown::Both,
            );
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unmasked WebSocket frame from the client (RFC 6455 section 5.1)",
        )
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.guard.broken {
            return Poll::Ready(Err(self.unmasked()));
        }
        let before = out.filled().len();
        if self.at < self.prefix.len() {
            let n = out.remaining().min(self.prefix.len() - self.at);
            let from = self.at;
            out.put_slice(&self.prefix[from..from + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
        } else {
            std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, out))?;
        }
        let this = &mut *self;
        if this.guard.feed(&out.filled()[before..]).is_err() {
            // None of the bad frame reaches jsonrpsee.
            out.set_filled(before);
            return Poll::Ready(Err(this.unmasked()));
        }
        Poll::Ready(Ok(()))
    }
}

/// Follows the frame boundaries of what a WebSocket client sends, after its upgrade request,
/// and fails on the first frame without the mask bit: RFC 6455 section 5.1 requires the
/// server to close such a connection, and soketto 0.8 (under jsonrpsee 0.26) unmasks what
/// it receives without checking that it was masked.
#[derive(Debug)]
pub struct FrameGuard {
    /// Bytes to pass before the next frame header: the rest of the upgrade request, or of
    /// the current frame's payload.
    skip: u64,
    /// The frame header read so far (at most 2 + 8 length bytes + 4 mask bytes).
    header: [u8; 14],
    have: usize,
    broken: bool,
}

/// A client frame without its mask.
#[derive(Debug, PartialEq, Eq)]
pub struct Unmasked;

impl FrameGuard {
    pub fn new(head_len: usize) -> FrameGuard {
        FrameGuard {
            skip: head_len as u64,
            header: [0; 14],
            have: 0,
            broken: false,
        }
    }

    /// Follows `data`, the next bytes from the client.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Unmasked> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have < 2 {
                continue;
            }
            let b1 = self.header[1];
            if b1 & 0x80 == 0 {
                return Err(Unmasked);
            }
            let extended = match b1 & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            if self.have < 2 + extended + 4 {
                continue;
            }
            self.skip = match extended {
                0 => u64::from(b1 & 0x7f),
                2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                _ => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(n)
                }
            };
            self.have = 0;
        }
        Ok(())
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_for_framing_keep_alive_and_upgrade() {
        let h = parse_head(
            b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("head");
        assert_eq!(
            (h.method.as_str(), h.content_length, h.close),
            ("POST", Some(12), false)
        );
        assert!(h.expect_continue && !h.chunked && !h.upgrade);
        let h = parse_head(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .expect("head");
        assert!(h.upgrade);
        let h = parse_head(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").expect("head");
        assert!(h.close && h.chunked);
        let h = parse_head(
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .expect("head");
        assert!(
            h.close,
            "an HTTP/1.0 message with a transfer coding ends its connection"
        );
        assert!(parse_head(b"POST / SPDY\r\n\r\n").is_err());
        assert!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
    }

    fn refused(head: &str) -> BadHead {
        parse_head(head.as_bytes()).expect_err(head)
    }

    #[test]
    fn ambiguous_framing_and_control_bytes_are_refused() {
        let post = |headers: &str| format!("POST / HTTP/1.1\r\nHost: b\r\n{headers}\r\n");
        for cl in [
            "+51",
            "-1",
            "0x10",
            "",
            "5 1",
            "1,1",
            "99999999999999999999999",
        ] {
            let bad = refused(&post(&format!("Content-Length: {cl}\r\n")));
            assert_eq!(bad.status, 400, "{cl:?}");
            assert!(bad.msg.contains("Content-Length"), "{}", bad.msg);
        }
        let bad = refused(&post("Content-Length: 5\r\nContent-Length: 6\r\n"));
        assert!(bad.msg.contains("two different"), "{}", bad.msg);
        let h = parse_head(post("Content-Length: 5\r\nContent-Length: 5\r\n").as_bytes());
        assert_eq!(h.expect("identical lengths agree").content_length, Some(5));
        let bad = refused(&post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"));
        assert!(bad.msg.contains("ambiguous"), "{}", bad.msg);
        assert_eq!(refused(&post("Transfer-Encoding: gzip\r\n")).status, 400);
        assert_eq!(
            refused(&post("Transfer-Encoding: gzip, chunked\r\n")).status,
            501
        );
        for header in [
            "X-A: a\0b\r\n",
            "X-A: a\x01b\r\n",
            "X-A: a\x7fb\r\n",
            "X-A: a\rb\r\n",
            "X\0A: b\r\n",
            "X-A : b\r\n",
            "X-A: b\r\n folded\r\n",
        ] {
            assert_eq!(refused(&post(header)).status, 400, "{header:?}");
        }
        assert!(
            parse_head(post("X-A: a\tb\r\n").as_bytes()).is_ok(),
            "HTAB is allowed"
        );
        assert!(parse_head(b"PO\0ST / HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn the_frame_guard_follows_masked_frames_and_stops_at_an_unmasked_one() {
        let head = b"GET / HTTP/1.1\r\n\r\n";
        let mut g = FrameGuard::new(head.len());
        g.feed(head).expect("the head passes");
        // A masked 5-byte frame, fed one byte at a time.
        let masked = [0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o'];
        for b in masked {
            g.feed(&[b]).expect("masked");
        }
        // A masked frame with a 16-bit length (300 bytes), then one with a 64-bit length.
        let mut long = vec![0x82, 0x80 | 126, 0x01, 0x2c, 9, 9, 9, 9];
        long.extend(std::iter::repeat_n(0u8, 300));
        long.extend([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 2, 7, 7, 7, 7, 0, 0]);
        g.feed(&long).expect("masked, extended lengths");
        assert_eq!(g.feed(&[0x81, 0x05, b'h']), Err(Unmasked));
    }
}
