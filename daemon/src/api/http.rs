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
    /// It asked for a WebSocket: serve it with jsonrpsee, replaying these bytes first.
    Upgrade(Vec<u8>),
}

/// A parsed request head.
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
/// upgrade returns the bytes read so far so the caller can replay them to jsonrpsee.
pub async fn serve(
    stream: &mut UnixStream,
    dispatcher: &Dispatcher,
    limits: HttpLimits,
    mut closing: watch::Receiver<bool>,
) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        match one_request(stream, &mut buf, dispatcher, limits, &mut closing).await {
            Next::KeepAlive => continue,
            Next::Close => {
                close_gracefully(stream).await;
                return None;
            }
            Next::Upgrade(bytes) => return Some(bytes),
        }
    }
}

async fn one_request(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    dispatcher: &Dispatcher,
    limits: HttpLimits,
    closing: &mut watch::Receiver<bool>,
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
    let Some(head) = parse_head(&buf[..head_end]) else {
        let body = error_reply(ErrorKind::InvalidArgument, "malformed HTTP request");
        respond(stream, 400, &body, true).await;
        return Next::Close;
    };
    if head.upgrade {
        return Next::Upgrade(std::mem::take(buf));
    }
    if head.method != "POST" {
        let msg = format!(
            "{} is not served: berthd speaks JSON-RPC 2.0 over POST (or a WebSocket, or \
             newline-delimited JSON on the same socket), e.g. curl --unix-socket SOCKET \
             http://berth/ -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}}'",
            head.method
        );
        let body = error_reply(ErrorKind::InvalidArgument, &msg);
        respond(stream, 405, &body, head.close).await;
        buf.drain(..head_end);
        return if head.close || head.content_length.unwrap_or(0) > 0 || head.chunked {
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
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
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

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let _target = request_line.next()?;
    let version = request_line.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let http10 = version == "HTTP/1.0";
    let mut h = Head {
        method,
        http10,
        content_length: None,
        chunked: false,
        close: false,
        upgrade: false,
        expect_continue: false,
    };
    let mut keep_alive = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        let has = |token: &str| {
            value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case(token))
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => h.content_length = Some(value.parse().ok()?),
            "transfer-encoding" => h.chunked = has("chunked"),
            "connection" => {
                h.close |= has("close");
                keep_alive |= has("keep-alive");
            }
            "upgrade" => h.upgrade = has("websocket"),
            "expect" => h.expect_continue = has("100-continue"),
            _ => {}
        }
    }
    if http10 && !keep_alive {
        h.close = true;
    }
    Some(h)
}

/// Writes a complete response; `close` announces that the connection ends after it.
async fn respond(stream: &mut UnixStream, status: u16, body: &str, close: bool) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if status != 204 {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    if !body.is_empty() {
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
/// whose first bytes berth already read.
pub struct Replay {
    prefix: Vec<u8>,
    at: usize,
    inner: UnixStream,
}

impl Replay {
    pub fn new(prefix: Vec<u8>, inner: UnixStream) -> Replay {
        Replay {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = out.remaining().min(self.prefix.len() - self.at);
            let from = self.at;
            out.put_slice(&self.prefix[from..from + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
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
        assert!(parse_head(b"POST / SPDY\r\n\r\n").is_none());
        assert!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_none());
    }
}
