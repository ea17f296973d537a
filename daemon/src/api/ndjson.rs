//! Newline-delimited JSON-RPC: one message per line each way, subscriptions included.
//!
//! jsonrpsee's `raw_json_request` runs a single call; the envelope rules of JSON-RPC 2.0
//! (batches, notifications, invalid requests, parse errors) are applied here first so that this
//! transport answers exactly like the HTTP one.

use std::borrow::Cow;

use jsonrpsee::Methods;
use schema::ErrorKind;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use super::error_object;

/// Subscription notifications buffered per subscription before the sender waits.
const SUBSCRIPTION_BUFFER: usize = 128;
/// Replies and notifications queued for the writer before producers wait.
const OUTBOX: usize = 256;

/// Methods whose successful reply opens a stream of notifications.
const SUBSCRIBE_METHODS: &[&str] = &["events.subscribe"];

/// Serves one NDJSON connection until the peer closes it, a line is too long, or the daemon
/// shuts down (after the request in flight is answered).
pub async fn serve(
    stream: UnixStream,
    methods: Methods,
    max_line: usize,
    mut closing: watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(mut line) = out_rx.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let mut forwarders = Vec::new();
    loop {
        buf.clear();
        let read = tokio::select! {
            r = read_line(&mut reader, &mut buf, max_line) => r,
            _ = closing.changed() => break,
        };
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(LineError::TooLong) => {
                let msg = format!(
                    "request larger than the limit of {max_line} bytes; closing the connection"
                );
                let _ = out_tx
                    .send(error_reply(ErrorKind::ResourceExhausted, &msg))
                    .await;
                break;
            }
            Err(LineError::Io) => break,
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            let _ = out_tx.send(parse_error("request is not valid UTF-8")).await;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let (reply, subscriptions) = handle(&methods, line).await;
        if let Some(reply) = reply {
            if out_tx.send(reply).await.is_err() {
                break;
            }
        }
        for mut rx in subscriptions {
            let out = out_tx.clone();
            forwarders.push(tokio::spawn(async move {
                while let Some(note) = rx.recv().await {
                    if out.send(note.get().to_owned()).await.is_err() {
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

enum LineError {
    TooLong,
    Io,
}

/// Reads one line (without its newline) into `buf`; `Ok(false)` at end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<bool, LineError> {
    loop {
        let chunk = r.fill_buf().await.map_err(|_| LineError::Io)?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let line_part = if done { &chunk[..take - 1] } else { chunk };
        if buf.len() + line_part.len() > max {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(line_part);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// The JSON-RPC 2.0 request envelope, borrowed from the line.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// Distinguishes `"id": null` (present) from a missing id (a notification).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

type Subscriptions = Vec<mpsc::Receiver<Box<RawValue>>>;

/// Answers one line: a single message or a batch. `None` when nothing is to be sent back
/// (notifications only).
pub async fn handle(methods: &Methods, line: &str) -> (Option<String>, Subscriptions) {
    let mut subs = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = match serde_json::from_str(line) {
            Ok(items) => items,
            Err(e) => return (Some(parse_error(&e.to_string())), subs),
        };
        if items.is_empty() {
            return (Some(invalid_request("null", "empty batch")), subs);
        }
        let mut replies = Vec::new();
        for item in items {
            if let Some(r) = call(methods, item.get(), &mut subs).await {
                replies.push(r);
            }
        }
        if replies.is_empty() {
            return (None, subs);
        }
        return (Some(format!("[{}]", replies.join(","))), subs);
    }
    if let Err(e) = serde_json::from_str::<&RawValue>(line) {
        return (Some(parse_error(&e.to_string())), subs);
    }
    let reply = call(methods, line, &mut subs).await;
    (reply, subs)
}

/// Runs one message that is valid JSON; `None` for a notification.
async fn call(methods: &Methods, msg: &str, subs: &mut Subscriptions) -> Option<String> {
    let env: Envelope<'_> = match serde_json::from_str(msg) {
        Ok(env) => env,
        Err(_) => return Some(invalid_request("null", "not a JSON-RPC request object")),
    };
    let id_ok = env.id.is_none_or(|id| {
        let s = id.get();
        s == "null" || s.starts_with('"') || s.starts_with('-') || s.starts_with(char::is_numeric)
    });
    let id = env.id.filter(|_| id_ok).map_or("null", RawValue::get);
    if !id_ok {
        return Some(invalid_request(
            "null",
            "id must be a string, a number or null",
        ));
    }
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Some(invalid_request(id, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = env.method.as_deref() else {
        return Some(invalid_request(id, "method is missing"));
    };
    if let Some(p) = env.params {
        let p = p.get();
        if !(p.starts_with('{') || p.starts_with('[')) {
            return Some(invalid_request(id, "params must be an object or an array"));
        }
    }
    let is_notification = env.id.is_none();
    let rewritten = super::unsubscribe::positional(method, env.params);
    let owned;
    let request = if is_notification || rewritten.is_some() {
        // raw_json_request needs an id (a notification's reply is dropped below).
        owned = rebuild(
            if is_notification { "0" } else { id },
            method,
            rewritten.as_deref().or(env.params),
        );
        owned.as_str()
    } else {
        msg
    };
    let (reply, rx) = match methods.raw_json_request(request, SUBSCRIPTION_BUFFER).await {
        Ok(r) => r,
        Err(e) => return Some(parse_error(&e.to_string())),
    };
    if is_notification {
        return None;
    }
    if SUBSCRIBE_METHODS.contains(&method) && !reply.get().contains("\"error\"") {
        subs.push(rx);
    }
    // Moves the reply's buffer out instead of copying it (replies can be megabytes).
    Some(Box::<str>::from(reply).into_string())
}

/// Re-serializes a request with the given id and params.
fn rebuild(id: &str, method: &str, params: Option<&RawValue>) -> String {
    let method = serde_json::Value::String(method.to_owned());
    match params {
        Some(p) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{}}}"#,
            p.get()
        ),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#),
    }
}

fn error_with_id(id: &str, code: i32, message: &str, kind: Option<ErrorKind>) -> String {
    let mut err = serde_json::json!({ "code": code, "message": message });
    if let Some(kind) = kind {
        err["data"] = serde_json::json!({ "kind": kind.as_str() });
    }
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{err}}}"#)
}

fn parse_error(detail: &str) -> String {
    error_with_id("null", -32700, &format!("Parse error: {detail}"), None)
}

fn invalid_request(id: &str, detail: &str) -> String {
    error_with_id(id, -32600, &format!("Invalid request: {detail}"), None)
}

fn error_reply(kind: ErrorKind, msg: &str) -> String {
    let body =
        serde_json::json!({ "jsonrpc": "2.0", "id": null, "error": error_object(kind, msg) });
    body.to_string()
}
