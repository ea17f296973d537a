//! Newline-delimited JSON-RPC: one message per line each way, subscriptions included.
//!
//! The envelope (batches, notifications, ids, caps) is [`Dispatcher`]'s, shared with HTTP;
//! this module frames lines, bounds them in size and time, charges them to the memory
//! budget, and writes replies and notifications in order.

use std::sync::Arc;
use std::time::Duration;

use schema::ErrorKind;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::budget::{Charge, UNCHARGED_REQUEST};
use super::envelope::{error_reply, parse_error, Dispatcher, Reply, Transport};
use super::slots::Slot;
use crate::service::containers::Piece;

/// Replies and notifications queued for the writer before the reader waits.
const OUTBOX: usize = 256;
/// A line buffer that grew past this is given back after its line instead of kept.
const KEEP_LINE_CAPACITY: usize = 64 << 10;

/// The bounds of one NDJSON connection.
#[derive(Debug, Clone, Copy)]
pub struct LineLimits {
    pub max_line: usize,
    /// Closes a connection that sends no line for this long (unless it holds subscriptions).
    pub idle: Duration,
    /// A line that has started must end within this.
    pub request: Duration,
    /// Notifications queued for the writer, in bytes, before subscriptions wait.
    pub notification_bytes: usize,
}

/// Whether a connection whose first byte is `b` speaks NDJSON: `b` can begin a JSON value
/// (an object or batch, but also `null`, `42`, `"x"`, which are answered -32600 at once) or
/// is whitespace before one. HTTP request lines begin with a method token, and every method
/// in use is uppercase; JSON's `true`, `false` and `null` are lowercase.
pub fn starts_json(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' | b' ' | b'\t' | b'\r' | b'\n'
    )
}

/// One queued line and the bytes it holds until written.
enum Held {
    Budget(#[allow(dead_code)] Charge),
    /// The connection's own share and the share of every subscriber's pool.
    Notification(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] Charge,
    ),
    Nothing,
}

/// Serves one NDJSON connection until the peer closes it, a line is too long or too slow,
/// it idles, or the daemon shuts down (after the request in flight is answered).
pub async fn serve(
    stream: UnixStream,
    mut dispatcher: Dispatcher,
    limits: LineLimits,
    mut closing: watch::Receiver<bool>,
    slot: &Slot,
) {
    let (read, mut write) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<(Reply, Held)>(OUTBOX);
    // A peer that takes nothing of a reply for the idle timeout is as gone as a silent one.
    let stall = limits.idle;
    let writer = tokio::spawn(async move {
        while let Some((reply, held)) = out_rx.recv().await {
            if !write_line(&mut write, reply, stall).await {
                break;
            }
            drop(held);
        }
        let _ = write.shutdown().await;
    });
    let notification_bytes = Arc::new(Semaphore::new(limits.notification_bytes.max(1)));
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let mut forwarders: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut proven = false;
    loop {
        if buf.capacity() > KEEP_LINE_CAPACITY {
            buf = Vec::new();
        }
        buf.clear();
        forwarders.retain(|f| !f.is_finished());
        // A connection that holds subscriptions is not idle while it waits for events.
        let idle = (forwarders.is_empty()).then_some(limits.idle);
        let mut charge = Charge::default();
        let read = tokio::select! {
            r = read_line(&mut reader, &mut buf, &limits, idle, &dispatcher, &mut charge) => r,
            _ = closing.changed() => break,
        };
        match read {
            Ok(true) => {}
            Ok(false) | Err(LineError::Io) | Err(LineError::Idle) => break,
            Err(LineError::Refused(msg)) => {
                let reply = error_reply(ErrorKind::ResourceExhausted, &msg);
                let _ = out_tx.send((Reply::Text(reply), Held::Nothing)).await;
                break;
            }
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            let reply = parse_error("request is not valid UTF-8");
            let _ = out_tx.send((Reply::Text(reply), Held::Nothing)).await;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        // A complete non-blank line proves the connection (it is no longer evicted for a newcomer);
        // one evicted first ends here, before running anything.
        if !proven {
            if !slot.proven() {
                break;
            }
            proven = true;
        }
        dispatcher.subscriptions_open = forwarders.len();
        let answer = dispatcher.handle(line, Transport::Ndjson).await;
        drop(charge);
        if let Some(reply) = answer.reply {
            if out_tx
                .send((reply, Held::Budget(answer.charge)))
                .await
                .is_err()
            {
                break;
            }
        }
        for mut rx in answer.subscriptions {
            let out = out_tx.clone();
            let bytes = notification_bytes.clone();
            let pool = dispatcher.notifications.clone();
            forwarders.push(tokio::spawn(async move {
                while let Some(note) = rx.recv().await {
                    let size = u32::try_from(note.get().len()).unwrap_or(u32::MAX);
                    // Waiting here fills the subscription's own buffer, which its producer
                    // sees and, past its byte bound, ends the subscription with a resume seq.
                    let Ok(permit) = bytes.clone().acquire_many_owned(size.max(1)).await else {
                        break;
                    };
                    // Then the share of the pool all subscribers draw from: stalled
                    // subscribers fill it at most, and a stalled connection is cut once a
                    // write makes no progress for the idle timeout, giving its share back.
                    let charge = loop {
                        match pool.charge(size as usize, POOL_RETRY).await {
                            Ok(c) => break c,
                            Err(_) if out.is_closed() => return,
                            Err(_) => {}
                        }
                    };
                    let note = Reply::Text(Box::<str>::from(note).into_string());
                    if out
                        .send((note, Held::Notification(permit, charge)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }));
        }
    }
    // Dropping the receivers ends their subscriptions (the sink sees it closed) and releases
    // the outbox senders, so the writer can finish.
    for f in forwarders {
        f.abort();
    }
    drop(out_tx);
    let _ = writer.await;
}

/// Writes one reply and its newline; `false` when the connection is to end: the peer is
/// gone, or a streamed reply broke off and cannot be completed.
async fn write_line<W: AsyncWrite + Unpin>(write: &mut W, reply: Reply, stall: Duration) -> bool {
    let mut stream = match reply {
        Reply::Text(mut line) => {
            line.push('\n');
            return write_progressing(write, line.as_bytes(), stall).await;
        }
        Reply::Stream(s) => s,
    };
    if !write_progressing(write, &stream.first, stall).await {
        return false;
    }
    drop(std::mem::take(&mut stream.first));
    while let Some(piece) = stream.rest.recv().await {
        let Piece::Chunk(chunk) = piece else {
            return false;
        };
        if !write_progressing(write, &chunk, stall).await {
            return false;
        }
    }
    write_progressing(write, b"\n", stall).await
}

/// How long a notification waits for the subscribers' pool before it looks again whether
/// its connection is still there.
const POOL_RETRY: Duration = Duration::from_secs(1);
/// Bytes written per step of [`write_progressing`].
const WRITE_STEP: usize = 64 << 10;

/// Writes `bytes`, failing (so the connection ends) when a step of [`WRITE_STEP`] bytes is
/// not taken within `stall`: a peer that stops reading holds its replies, notifications and
/// budget shares for at most that long; one that reads slowly but steadily is served.
async fn write_progressing<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    stall: Duration,
) -> bool {
    for step in bytes.chunks(WRITE_STEP) {
        match tokio::time::timeout(stall, w.write_all(step)).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}

enum LineError {
    /// The line is refused (too long, too slow, over budget); the reason is answered.
    Refused(String),
    /// No line began within the idle timeout.
    Idle,
    Io,
}

/// Reads one line (without its newline) into `buf`; `Ok(false)` at end of stream. The first
/// byte must come within `idle` (if set), the rest within `limits.request` of it.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limits: &LineLimits,
    idle: Option<Duration>,
    dispatcher: &Dispatcher,
    charge: &mut Charge,
) -> Result<bool, LineError> {
    let mut deadline = idle.map(|d| Instant::now() + d);
    let mut started = false;
    loop {
        let chunk = match deadline {
            Some(at) => match tokio::time::timeout_at(at, r.fill_buf()).await {
                Ok(c) => c,
                Err(_) if started => {
                    return Err(LineError::Refused(format!(
                        "request not complete within {} s (request_timeout_secs); \
                         closing the connection",
                        limits.request.as_secs()
                    )))
                }
                Err(_) => return Err(LineError::Idle),
            },
            None => r.fill_buf().await,
        }
        .map_err(|_| LineError::Io)?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        if !started {
            started = true;
            deadline = Some(Instant::now() + limits.request);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let line_part = if done { &chunk[..take - 1] } else { chunk };
        let len = buf.len() + line_part.len();
        if len > limits.max_line {
            return Err(LineError::Refused(format!(
                "request larger than the limit of {} bytes (max_request_bytes); closing the \
                 connection",
                limits.max_line
            )));
        }
        if len > UNCHARGED_REQUEST && len > charge.bytes() {
            dispatcher
                .budget
                .cover(charge, len, limits.request)
                .await
                .map_err(LineError::Refused)?;
        }
        buf.extend_from_slice(line_part);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}
