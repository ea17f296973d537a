//! The JSON-RPC 2.0 envelope for HTTP POST and NDJSON: batches, notifications, ids, invalid
//! requests and parse errors are recognised here, and each call is run against the methods
//! with berth's limits (batch size, reply size, the memory budget), so both transports
//! answer alike. WebSocket messages are left to jsonrpsee, configured with the same caps.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::server::{MethodCallback, MethodResponse};
use jsonrpsee::types::{ErrorObjectOwned, Id, Params};
use jsonrpsee::{ConnectionId, Extensions, Methods};
use schema::ErrorKind;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, Semaphore};

use super::budget::{Budget, Charge};
use super::error_object;
use crate::service::containers::{Piece, TextStream, STREAM_AHEAD, STREAM_CHUNK};

/// Subscription notifications buffered per NDJSON subscription before the producer waits;
/// the producer also bounds them in bytes (see `methods::events`).
const SUBSCRIPTION_BUFFER: usize = 64;
/// Subscriptions one connection may hold open at once (NDJSON; jsonrpsee bounds WebSocket's
/// with the same number).
pub const MAX_SUBSCRIPTIONS: usize = 16;

/// Methods whose successful reply opens a stream of notifications.
pub const SUBSCRIBE_METHODS: &[&str] = &["events.subscribe", "logs.subscribe", "images.export"];

/// jsonrpsee's code for a reply over its size limit; answered as `resource_exhausted`.
const JSONRPSEE_OVERSIZED_RESPONSE: i32 = -32008;

/// Which transport a message came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Ndjson,
}

/// What the envelope needs: the methods and the caps that bound one message's cost.
#[derive(Clone)]
pub struct Dispatcher {
    pub methods: Methods,
    /// Methods answered around jsonrpsee (see `direct.rs`).
    pub direct: Option<super::direct::Direct>,
    pub max_batch: usize,
    pub max_response_bytes: usize,
    pub budget: Budget,
    /// Batches allowed to run at once.
    pub batch_turns: Arc<Semaphore>,
    /// How long a request being read may wait for its share of the budget. A reply never
    /// waits: it is already in memory, so it is charged at once or replaced by an error.
    pub budget_wait: Duration,
    /// Who is on the other end of this connection (set per connection by the server).
    pub peer: Option<crate::service::Peer>,
    /// Subscriptions this connection holds open (set by the transport before each message):
    /// each may queue up to its own byte bound, so their number is bounded too.
    pub subscriptions_open: usize,
    /// The budget's share for notifications queued to subscribers, all connections
    /// together (the rest is for requests and replies, so a fresh client is answered while
    /// subscribers are stalled).
    pub notifications: Budget,
}

pub type Subscriptions = Vec<mpsc::Receiver<Box<RawValue>>>;

/// The answer to one message: the reply to write (`None` when there is none, as for
/// notifications), the budget it holds until written, and any subscriptions it opened.
#[derive(Default)]
pub struct Answer {
    pub reply: Option<Reply>,
    pub charge: Charge,
    pub subscriptions: Subscriptions,
}

/// A reply: whole, or written while it is sent (`containers.list`, see `direct.rs`).
pub enum Reply {
    Text(String),
    Stream(TextStream),
}

impl Reply {
    /// The bytes it holds at most while it waits to be written.
    fn held_bytes(&self) -> usize {
        match self {
            Reply::Text(t) => t.len(),
            Reply::Stream(s) => s.first.len() + STREAM_CHUNK * (STREAM_AHEAD + 1),
        }
    }

    /// The whole text (a batch joins its replies); `Err` with the error to answer instead
    /// when a stream broke off.
    async fn into_text(self) -> Result<String, String> {
        let mut stream = match self {
            Reply::Text(t) => return Ok(t),
            Reply::Stream(s) => s,
        };
        let mut text = stream.first;
        while let Some(piece) = stream.rest.recv().await {
            match piece {
                Piece::Chunk(c) => text.extend_from_slice(&c),
                Piece::Oversized | Piece::Failed(_) => {
                    return Err(error_reply(
                        ErrorKind::Internal,
                        "a reply of this batch could not be completed",
                    ))
                }
            }
        }
        // Every chunk is UTF-8 text cut after a whole row (or at the end).
        String::from_utf8(text).map_err(|e| error_reply(ErrorKind::Internal, &e.to_string()))
    }
}

/// The JSON-RPC 2.0 request envelope, borrowed from the message.
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

/// A request id berth can echo: a string, null, or an integer in 0..2^64.
fn valid_id(raw: &str) -> bool {
    raw == "null" || raw.starts_with('"') || raw.parse::<u64>().is_ok()
}

impl Dispatcher {
    /// Answers one message: a single call or a batch.
    pub async fn handle(&self, text: &str, transport: Transport) -> Answer {
        let mut answer = Answer::default();
        if text.trim_start().starts_with('[') {
            let items: Vec<&RawValue> = match serde_json::from_str(text) {
                Ok(items) => items,
                Err(e) => return answer.with(parse_error(&e.to_string())),
            };
            if items.is_empty() {
                return answer.with(invalid_request("null", "empty batch"));
            }
            if items.len() > self.max_batch {
                let msg = format!(
                    "batch of {} calls exceeds the limit of {} (max_batch); none was run",
                    items.len(),
                    self.max_batch
                );
                return answer.with(error_reply(ErrorKind::ResourceExhausted, &msg));
            }
            // Batches take turns: each may build up to max_response_bytes and keeps the CPU
            // busy while it encodes, so only a few run at once and single calls stay prompt.
            let Ok(_turn) =
                tokio::time::timeout(self.budget_wait, self.batch_turns.clone().acquire_owned())
                    .await
            else {
                let msg = format!(
                    "too many batches are running; this one waited {} s (request_timeout_secs) \
                     for its turn",
                    self.budget_wait.as_secs()
                );
                return answer.with(error_reply(ErrorKind::ResourceExhausted, &msg));
            };
            // Replies are appended as they come, never held twice.
            let mut joined = String::from("[");
            let mut used = 2;
            for (i, item) in items.iter().enumerate() {
                // Most calls finish without waiting for anything; without this a batch
                // would hold its worker thread from its first call to its last.
                tokio::task::yield_now().await;
                let left = self.max_response_bytes.saturating_sub(used);
                let over = || {
                    let msg = format!(
                        "the replies of this batch exceed the limit of {} bytes \
                         (max_response_bytes); calls from index {} on were not run",
                        self.max_response_bytes,
                        i + 1
                    );
                    Answer::default().with(error_reply(ErrorKind::ResourceExhausted, &msg))
                };
                let reply = match self.call(item.get(), transport, left, &mut answer).await {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(Failure::Oversized) => return over(),
                    Err(Failure::Budget(e)) => return Answer::default().with(e),
                };
                let reply = match reply.into_text().await {
                    Ok(text) => text,
                    Err(e) => return Answer::default().with(e),
                };
                used += reply.len() + 1;
                if used > self.max_response_bytes {
                    return over();
                }
                if joined.len() > 1 {
                    joined.push(',');
                }
                joined.push_str(&reply);
            }
            if joined.len() > 1 {
                joined.push(']');
                answer.reply = Some(Reply::Text(joined));
            }
            return answer;
        }
        if let Err(e) = serde_json::from_str::<&RawValue>(text) {
            return answer.with(parse_error(&e.to_string()));
        }
        match self
            .call(text, transport, self.max_response_bytes, &mut answer)
            .await
        {
            Ok(reply) => answer.reply = reply,
            Err(Failure::Budget(e)) => return Answer::default().with(e),
            Err(Failure::Oversized) => {
                let msg = format!(
                    "the reply exceeds the limit of {} bytes (max_response_bytes)",
                    self.max_response_bytes
                );
                return Answer::default().with(error_reply(ErrorKind::ResourceExhausted, &msg));
            }
        }
        answer
    }

    /// Runs one message that is valid JSON; `Ok(None)` for a notification. A reply over
    /// `max_reply` is answered `resource_exhausted` when `max_reply` is the whole cap, and
    /// is `Failure::Oversized` when it is what is left of a batch's.
    async fn call(
        &self,
        msg: &str,
        transport: Transport,
        max_reply: usize,
        answer: &mut Answer,
    ) -> Result<Option<Reply>, Failure> {
        let env: Envelope<'_> = match serde_json::from_str(msg) {
            Ok(env) => env,
            Err(_) => {
                return Ok(Some(Reply::Text(invalid_request(
                    "null",
                    "not a JSON-RPC request object",
                ))))
            }
        };
        let id = match env.id {
            None => None,
            Some(id) if valid_id(id.get()) => Some(id.get()),
            Some(_) => {
                return Ok(Some(Reply::Text(invalid_request(
                    "null",
                    "id must be a string, an integer from 0 to 2^64-1, or null",
                ))))
            }
        };
        let shown_id = id.unwrap_or("null");
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Ok(Some(Reply::Text(invalid_request(
                shown_id,
                "jsonrpc must be \"2.0\"",
            ))));
        }
        let Some(method) = env.method.as_deref() else {
            return Ok(Some(Reply::Text(invalid_request(
                shown_id,
                "method is missing",
            ))));
        };
        let rewritten = super::unsubscribe::positional(method, env.params);
        let params = rewritten.as_deref().or(env.params);
        if let Some(p) = params {
            let p = p.get();
            if !(p.starts_with('{') || p.starts_with('[')) {
                return Ok(Some(Reply::Text(invalid_request(
                    shown_id,
                    "params must be an object or an array",
                ))));
            }
        }
        let subscribes = SUBSCRIBE_METHODS.contains(&method);
        if subscribes && transport == Transport::Http {
            let msg = format!(
                "{method}: subscriptions need WebSocket or NDJSON; an HTTP POST cannot carry \
                 notifications"
            );
            return Ok(
                id.map(|id| Reply::Text(domain_error(id, ErrorKind::FailedPrecondition, &msg)))
            );
        }
        if subscribes && self.subscriptions_open + answer.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            let msg = format!(
                "{method}: this connection has {MAX_SUBSCRIPTIONS} subscriptions open, the most \
                 one connection may hold; end one (or open another connection) first"
            );
            return Ok(
                id.map(|id| Reply::Text(domain_error(id, ErrorKind::ResourceExhausted, &msg)))
            );
        }
        let reply = if subscribes || is_unsubscribe(&self.methods, method) {
            // Small replies; raw_json_request wires the subscription's notifications.
            let request = rebuild(id.unwrap_or("0"), method, params);
            match self
                .methods
                .raw_json_request(&request, SUBSCRIPTION_BUFFER)
                .await
            {
                Ok((reply, rx)) => {
                    if subscribes && id.is_some() && !reply.get().contains("\"error\"") {
                        answer.subscriptions.push(rx);
                    }
                    Reply::Text(Box::<str>::from(reply).into_string())
                }
                Err(e) => Reply::Text(parse_error(&e.to_string())),
            }
        } else {
            let Ok(rpc_id) = serde_json::from_str::<Id<'_>>(id.unwrap_or("0")) else {
                return Ok(Some(Reply::Text(invalid_request("null", "unreadable id"))));
            };
            // Encoding stops where the budget's free bytes end, so a reply the budget
            // cannot hold is never built whole.
            let room = max_reply.min(self.budget.available());
            let direct = match &self.direct {
                Some(d) => d.call(&rpc_id, method, params, room).await,
                None => None,
            };
            let built = match direct {
                Some(Ok(reply)) => Some(reply),
                Some(Err(super::direct::Oversized)) => None,
                None => {
                    let resp = run(&self.methods, self.peer, rpc_id, method, params, room).await;
                    match resp.as_error_code() == Some(JSONRPSEE_OVERSIZED_RESPONSE) {
                        true => None,
                        false => Some(Reply::Text(
                            Box::<str>::from(resp.into_json()).into_string(),
                        )),
                    }
                }
            };
            match built {
                Some(reply) => reply,
                None => {
                    if room < max_reply {
                        return Err(Failure::Budget(error_reply(
                            ErrorKind::ResourceExhausted,
                            &self.budget.exhausted_message(max_reply),
                        )));
                    }
                    if max_reply < self.max_response_bytes {
                        return Err(Failure::Oversized);
                    }
                    let msg = format!(
                        "the reply to {method} exceeds the limit of {} bytes \
                         (max_response_bytes); ask for less (limit, filters)",
                        self.max_response_bytes
                    );
                    Reply::Text(domain_error(shown_id, ErrorKind::ResourceExhausted, &msg))
                }
            }
        };
        if id.is_none() {
            return Ok(None);
        }
        let charge = self.budget.charge(reply.held_bytes(), Duration::ZERO).await;
        match charge {
            Ok(c) => answer.charge.absorb(c),
            Err(msg) => {
                return Err(Failure::Budget(error_reply(
                    ErrorKind::ResourceExhausted,
                    &msg,
                )))
            }
        }
        Ok(Some(reply))
    }
}

/// Why a call's reply replaces the whole message's answer.
enum Failure {
    /// The memory budget could not hold the reply; the error answer to send instead.
    Budget(String),
    /// The reply does not fit what is left of its batch's `max_response_bytes`.
    Oversized,
}

impl Answer {
    fn with(mut self, reply: String) -> Answer {
        self.reply = Some(Reply::Text(reply));
        self
    }
}

fn is_unsubscribe(methods: &Methods, method: &str) -> bool {
    matches!(
        methods.method(method),
        Some(MethodCallback::Unsubscription(_))
    )
}

/// Runs a plain method call with jsonrpsee's reply-size bound, so an oversized result stops
/// being encoded at `max_reply` bytes.
async fn run(
    methods: &Methods,
    peer: Option<crate::service::Peer>,
    id: Id<'_>,
    method: &str,
    params: Option<&RawValue>,
    max_reply: usize,
) -> MethodResponse {
    let params = Params::new(params.map(RawValue::get));
    let mut ext = Extensions::new();
    ext.insert(ConnectionId(0));
    if let Some(p) = peer {
        ext.insert(p);
    }
    match methods.method(method) {
        Some(MethodCallback::Sync(cb)) => (cb)(id, params, max_reply, ext),
        Some(MethodCallback::Async(cb)) => {
            (cb)(
                id.into_owned(),
                params.into_owned(),
                ConnectionId(0),
                max_reply,
                ext,
            )
            .await
        }
        _ => MethodResponse::error(id, method_not_found(methods, method)),
    }
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

pub fn parse_error(detail: &str) -> String {
    error_with_id("null", -32700, &format!("Parse error: {detail}"), None)
}

pub fn invalid_request(id: &str, detail: &str) -> String {
    error_with_id(id, -32600, &format!("Invalid request: {detail}"), None)
}

fn domain_error(id: &str, kind: ErrorKind, msg: &str) -> String {
    error_with_id(id, kind.code(), msg, Some(kind))
}

/// An error reply to a message berth could not read an id from (or that is not one call).
/// -32601 naming the method, with the closest served one when a typo is likely
/// (`containers.lst` -> `containers.list`), as `data.suggestion`.
pub(super) fn method_not_found(methods: &Methods, method: &str) -> ErrorObjectOwned {
    let closest = methods
        .method_names()
        .map(|m| (strsim::levenshtein(m, method), m))
        .filter(|(d, m)| *d <= 3.max(method.len() / 4) && *d < m.len())
        .min();
    let shown: String = method.chars().take(100).collect();
    let (message, data) = match closest {
        Some((_, m)) => (
            format!("method \"{shown}\" not found; did you mean \"{m}\"?"),
            serde_json::json!({ "kind": "not_found", "method": shown, "suggestion": m }),
        ),
        None => (
            format!("method \"{shown}\" not found; rpc.discover lists every method"),
            serde_json::json!({ "kind": "not_found", "method": shown }),
        ),
    };
    ErrorObjectOwned::owned(
        jsonrpsee::types::ErrorCode::MethodNotFound.code(),
        message,
        Some(data),
    )
}

pub fn error_reply(kind: ErrorKind, msg: &str) -> String {
    let body =
        serde_json::json!({ "jsonrpc": "2.0", "id": null, "error": error_object(kind, msg) });
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_null_or_64_bit_unsigned_integers() {
        for ok in ["null", "\"a\"", "0", "18446744073709551615"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "{}",
            "[1]",
            "true",
            "1.5",
            "1e3",
            "-1",
            "18446744073709551616",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
