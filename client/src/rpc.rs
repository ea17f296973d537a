//! The client's only transport: JSON-RPC 2.0 as newline-delimited JSON over berthd's unix
//! socket (one message per line each way, see API.md "Transport" 3). Owns request framing,
//! request ids, the namespace every call carries, and telling responses from notifications.
//! It knows nothing about individual methods or how results are printed.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// Longest stretch of an unparseable line quoted back in a [`RpcError::Protocol`].
const QUOTE_LIMIT: usize = 200;

/// Everything that can go wrong between sending a request and holding its result.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The socket could not be reached: most often berthd is not running or listens elsewhere.
    #[error(
        "cannot connect to berthd at {}: {cause}; is berthd running? start it with \
         `berthd --socket {}` or point --socket / BERTH_SOCKET at its socket",
        socket.display(),
        socket.display()
    )]
    Connect { socket: PathBuf, cause: io::Error },
    /// Reading or writing an established connection failed.
    #[error("connection to berthd at {} failed: {cause}", socket.display())]
    Io { socket: PathBuf, cause: io::Error },
    /// berthd hung up while a call or a subscription was still waiting on it.
    #[error("berthd at {} closed the connection during {method}", socket.display())]
    Closed { socket: PathBuf, method: String },
    /// berthd sent something that is not a JSON-RPC 2.0 message.
    #[error("berthd sent a malformed message ({reason}): {line}")]
    Protocol { reason: String, line: String },
    /// berthd answered with an error object; `kind` is `error.data.kind` when present.
    #[error("{message}{}", kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default())]
    Daemon {
        code: i64,
        message: String,
        kind: Option<String>,
        data: Value,
    },
}

/// The request envelope; a struct (not a `Value`) so the line's key order is the familiar
/// `jsonrpc, id, method, params` whatever serde_json's map ordering is.
#[derive(Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a Value,
}

/// One NDJSON connection to berthd, scoped to a namespace.
pub struct Client {
    socket: PathBuf,
    namespace: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Notifications that arrived while a call waited for its response; a subscription
    /// started on this connection must still see them.
    pending: VecDeque<Value>,
}

/// What one incoming line turned out to be, relative to the request being waited for.
enum Incoming {
    Response(Value),
    Notification(Value),
    Unrelated,
}

impl Client {
    pub fn connect(socket: &Path, namespace: &str) -> Result<Self, RpcError> {
        let stream = UnixStream::connect(socket).map_err(|cause| RpcError::Connect {
            socket: socket.to_path_buf(),
            cause,
        })?;
        let writer = stream.try_clone().map_err(|cause| RpcError::Io {
            socket: socket.to_path_buf(),
            cause,
        })?;
        Ok(Self {
            socket: socket.to_path_buf(),
            namespace: namespace.to_owned(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            pending: VecDeque::new(),
        })
    }

    /// Sends `method` with `params` (the namespace added unless already present) and waits
    /// for its response; notifications read meanwhile are kept for a later subscription.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.send(method, params)?;
        loop {
            let message = self.read_message(method)?;
            match classify(message, Some(id))? {
                Incoming::Response(result) => return Ok(result),
                Incoming::Notification(note) => self.pending.push_back(note),
                Incoming::Unrelated => {}
            }
        }
    }

    /// Starts a subscription with `method` and turns this connection into its stream: the
    /// iterator yields each notification's `result` until berthd closes or sends an error.
    pub fn subscribe(mut self, method: &str, params: Value) -> Result<Subscription, RpcError> {
        let id = self.call(method, params)?;
        Ok(Subscription {
            client: self,
            method: method.to_owned(),
            id,
            done: false,
        })
    }

    fn send(&mut self, method: &str, params: Value) -> Result<u64, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let params = scoped(params, &self.namespace);
        let request = Request {
            jsonrpc: "2.0",
            id,
            method,
            params: &params,
        };
        let mut line = serde_json::to_vec(&request).map_err(|e| RpcError::Protocol {
            reason: format!("cannot encode request for {method}: {e}"),
            line: String::new(),
        })?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .and_then(|()| self.writer.flush())
            .map_err(|cause| self.io_error(cause))?;
        Ok(id)
    }

    /// Reads the next non-empty line as JSON.
    fn read_message(&mut self, method: &str) -> Result<Value, RpcError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|cause| self.io_error(cause))?;
            if n == 0 {
                return Err(RpcError::Closed {
                    socket: self.socket.clone(),
                    method: method.to_owned(),
                });
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text).map_err(|e| RpcError::Protocol {
                reason: e.to_string(),
                line: quote(text),
            });
        }
    }

    fn io_error(&self, cause: io::Error) -> RpcError {
        RpcError::Io {
            socket: self.socket.clone(),
            cause,
        }
    }
}

/// A live subscription; see [`Client::subscribe`].
pub struct Subscription {
    client: Client,
    method: String,
    id: Value,
    done: bool,
}

impl Subscription {
    /// The `result` of a notification addressed to this subscription, if it is one.
    /// The notification's result if it is this subscription's; its `error` (berthd ending
    /// the subscription, e.g. a subscriber that fell behind) as an `Err`.
    fn ours(&self, note: &Value) -> Option<Result<Value, RpcError>> {
        let params = note.get("params")?;
        if params.get("subscription") != Some(&self.id) {
            return None;
        }
        Some(match params.get("error") {
            Some(error) => Err(daemon_error(error)),
            None => Ok(params.get("result").cloned().unwrap_or(Value::Null)),
        })
    }
}

impl Iterator for Subscription {
    type Item = Result<Value, RpcError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while let Some(note) = self.client.pending.pop_front() {
            if let Some(result) = self.ours(&note) {
                self.done = result.is_err();
                return Some(result);
            }
        }
        loop {
            let incoming = self
                .client
                .read_message(&self.method)
                .and_then(|message| classify(message, None));
            match incoming {
                Ok(Incoming::Notification(note)) => {
                    if let Some(result) = self.ours(&note) {
                        self.done = result.is_err();
                        return Some(result);
                    }
                }
                Ok(Incoming::Response(_) | Incoming::Unrelated) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Adds the client's namespace to by-name params; positional (array) params and params
/// that name a namespace themselves are left alone.
pub fn scoped(params: Value, namespace: &str) -> Value {
    match params {
        Value::Null => {
            let mut map = Map::new();
            map.insert("namespace".into(), namespace.into());
            Value::Object(map)
        }
        Value::Object(mut map) => {
            map.entry("namespace")
                .or_insert_with(|| Value::from(namespace));
            Value::Object(map)
        }
        other => other,
    }
}

/// Sorts one message into response / notification / unrelated. An error with a null id is
/// berthd refusing the whole connection (permission, limits), so it fails whatever waits.
fn classify(message: Value, waiting_for: Option<u64>) -> Result<Incoming, RpcError> {
    let Value::Object(map) = message else {
        return Err(RpcError::Protocol {
            reason: "expected a JSON object".into(),
            line: quote(&message.to_string()),
        });
    };
    let id = map.get("id");
    if id.is_none() && map.contains_key("method") {
        return Ok(Incoming::Notification(Value::Object(map)));
    }
    let ours = match (id, waiting_for) {
        (Some(Value::Null), _) => map.contains_key("error"),
        (Some(id), Some(want)) => id.as_u64() == Some(want),
        _ => false,
    };
    if !ours {
        return Ok(Incoming::Unrelated);
    }
    if let Some(error) = map.get("error") {
        return Err(daemon_error(error));
    }
    match map.get("result") {
        Some(result) => Ok(Incoming::Response(result.clone())),
        None => Err(RpcError::Protocol {
            reason: "response has neither result nor error".into(),
            line: quote(&Value::Object(map).to_string()),
        }),
    }
}

fn daemon_error(error: &Value) -> RpcError {
    let data = error.get("data").cloned().unwrap_or(Value::Null);
    RpcError::Daemon {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(-32603),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("berthd returned an error without a message")
            .to_owned(),
        kind: data.get("kind").and_then(Value::as_str).map(str::to_owned),
        data,
    }
}

fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
