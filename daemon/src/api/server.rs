//! The one unix socket: accepts connections, checks the peer at once, and routes each
//! connection by its first byte: a byte that can begin a JSON value (`{ [ " - 0-9 t f n` or
//! whitespace) speaks newline-delimited JSON, anything else is HTTP/1.1 (whose methods begin
//! with an uppercase letter): plain POSTs served by berth's envelope, or a WebSocket upgrade
//! served by jsonrpsee.
//!
//! Every connection runs in its own task, so a slow or idle client never blocks another. A
//! peer that is refused (credentials, or no slot) never takes a slot: it gets its answer and
//! a graceful close. When the slots run out, the oldest connection that has not completed a
//! request gives its slot to the newcomer (see `slots`). Connections that stay silent, or
//! leave a request half-sent, are closed after the idle and request timeouts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, BatchRequestConfig, HttpRequest, PingConfig,
    Server, ServerConfig,
};
use jsonrpsee::Methods;
use schema::ErrorKind;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::budget::Budget;
use super::envelope::{error_reply, Dispatcher};
use super::http::{self, HttpLimits};
use super::ndjson::{self, LineLimits};
use super::slots::{Admission, Lobby, Slot, Slots};
use super::unknown::UnknownMethod;
use super::unsubscribe::UnsubscribeByName;
use crate::service::Peer;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused peer is given to show which protocol it speaks before its answer.
const REFUSAL_PEEK: Duration = Duration::from_secs(2);
/// Refusals answered at once; beyond this a refused connection is just closed.
const MAX_REFUSALS: usize = 64;
/// Silent newcomers that may wait for their first byte while every slot is taken.
const LOBBY: usize = 64;
/// Notifications one NDJSON connection may have queued for its socket, in bytes.
pub const NOTIFICATION_BYTES: usize = 4 << 20;
/// WebSocket messages queued per connection (replies and notifications; notifications are
/// also bounded in bytes by their producer).
const WS_MESSAGE_BUFFER: u32 = 64;

/// Who may connect and how much they may send and receive.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Besides root, members of this group may connect.
    pub gid: Option<u32>,
    pub max_request_bytes: u32,
    pub max_connections: u32,
    pub max_response_bytes: u32,
    pub max_batch: u32,
    pub memory_budget_bytes: u64,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// Serves `methods` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (bounded by [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve(
    listener: UnixListener,
    methods: impl Into<Methods>,
    direct: Option<super::direct::Direct>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let methods: Methods = methods.into();
    let (stop_handle, server_handle) = stop_channel();
    let cfg = ServerConfig::builder()
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(limits.max_response_bytes)
        .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch))
        .set_message_buffer_capacity(WS_MESSAGE_BUFFER)
        .max_subscriptions_per_connection(super::envelope::MAX_SUBSCRIPTIONS as u32)
        // A WebSocket that answers neither pings nor anything else is as idle as a silent
        // connection; one that answers pings stays, subscribed or not.
        .enable_ws_ping(
            PingConfig::new()
                .ping_interval(limits.idle_timeout)
                .inactive_limit(limits.idle_timeout + limits.request_timeout),
        )
        .build();
    let ws = Server::builder()
        .set_config(cfg)
        .set_rpc_middleware({
            let methods = methods.clone();
            RpcServiceBuilder::new()
                .layer_fn(move |inner| UnknownMethod {
                    inner,
                    methods: methods.clone(),
                })
                .layer_fn(UnsubscribeByName)
        })
        .to_service_builder()
        .max_connections(limits.max_connections);
    let dispatcher = Dispatcher {
        methods: methods.clone(),
        direct,
        max_batch: limits.max_batch as usize,
        max_response_bytes: limits.max_response_bytes as usize,
        budget: Budget::new(limits.memory_budget_bytes - limits.memory_budget_bytes / 4),
        notifications: Budget::new(limits.memory_budget_bytes / 4),
        budget_wait: limits.request_timeout,
        batch_turns: Arc::new(Semaphore::new(batch_turns())),
        peer: None,
        subscriptions_open: 0,
    };
    let slots = Slots::new(limits.max_connections as usize);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let lobby = Lobby::new(LOBBY);
    let mut accept_errors = AcceptErrors::default();
    let (closing_tx, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    // Serves one admitted connection in the protocol its first byte names. An evicted
    // connection ends where it is: it has not completed a request, so no call of its runs.
    // Each transport's future is boxed when its connection turns out to use it: inline,
    // every connection's task was as large as all three state machines together (an idle
    // connection 6.0 KB instead of 2.0 KB).
    let serve_conn = {
        let (ws, methods, stop_handle) = (ws.clone(), methods.clone(), stop_handle.clone());
        let (dispatcher, limits, closing) = (dispatcher.clone(), limits.clone(), closing.clone());
        move |stream: UnixStream, slot: Slot, peer: Option<Peer>| {
            let svc = ws.clone().build(methods.clone(), stop_handle.clone());
            // jsonrpsee hands the upgrade request's extensions to every WebSocket call.
            let svc = tower::ServiceExt::map_request(svc, move |mut req: HttpRequest<_>| {
                if let Some(p) = peer {
                    req.extensions_mut().insert(p);
                }
                req
            });
            let stopped = stop_handle.clone().shutdown();
            let mut dispatcher = dispatcher.clone();
            dispatcher.peer = peer;
            let limits = limits.clone();
            let closing = closing.clone();
            async move {
                let serve = async {
                    let Some(first) = first_byte(&stream, limits.idle_timeout).await else {
                        return;
                    };
                    if ndjson::starts_json(first) {
                        let line = LineLimits {
                            max_line: limits.max_request_bytes as usize,
                            idle: limits.idle_timeout,
                            request: limits.request_timeout,
                            notification_bytes: NOTIFICATION_BYTES,
                        };
                        Box::pin(ndjson::serve(stream, dispatcher, line, closing, &slot)).await;
                        return;
                    }
                    let mut stream = stream;
                    let http_limits = HttpLimits {
                        max_body: limits.max_request_bytes as usize,
                        idle: limits.idle_timeout,
                        request: limits.request_timeout,
                    };
                    let served = Box::pin(http::serve(
                        &mut stream,
                        &dispatcher,
                        http_limits,
                        closing,
                        &slot,
                    ))
                    .await;
                    if let Some((head_len, bytes)) = served {
                        let io = http::Replay::new(bytes, head_len, stream);
                        if let Err(e) =
                            Box::pin(serve_with_graceful_shutdown(io, svc, stopped)).await
                        {
                            tracing::debug!(error = %e, "websocket connection ended");
                        }
                    }
                };
                tokio::select! {
                    biased;
                    () = slot.evicted() => {}
                    () = serve => {}
                }
            }
        }
    };
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    let pause = accept_errors.failed(&e);
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        accept_errors.succeeded();
        let (peer, refused) = match check_peer(&stream, limits.gid) {
            Err(msg) => {
                tracing::info!(%msg, "refused a connection");
                (None, Some((ErrorKind::PermissionDenied, msg)))
            }
            Ok(peer) => (Some(peer), None),
        };
        // A newcomer that has already sent something may take the slot of the oldest
        // connection that has not completed a request; a silent one may not (see `slots`).
        let full = || {
            let msg = format!(
                "too many connections: berthd serves at most {} at once, and each has \
                 completed a request",
                limits.max_connections
            );
            (ErrorKind::ResourceExhausted, msg)
        };
        let mut b = [0u8; 1];
        let speaking = refused.is_none() && stream.try_peek_first(&mut b).is_some();
        let refused = match refused {
            Some(r) => Some(r),
            None => match slots.admit(speaking) {
                Admission::Admitted { slot, evicted } => {
                    if evicted {
                        tracing::debug!("all slots taken: evicted the oldest unproven connection");
                    }
                    conns.spawn(serve_conn(stream, slot, peer));
                    continue;
                }
                Admission::Full if speaking => Some(full()),
                Admission::Full => None,
            },
        };
        if let Some((kind, msg)) = refused {
            // Refusals neither take a slot nor wait long; past MAX_REFUSALS at once they are
            // answered without waiting at all.
            match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    conns.spawn(async move {
                        refuse(stream, kind, &msg).await;
                        drop(permit);
                    });
                }
                Err(_) => refuse_now(stream, kind, &msg),
            }
            continue;
        }
        // Full, and the newcomer silent so far: it waits in the lobby (holding no slot) for
        // its first byte, then tries again, evicting if it must.
        let waiting = lobby.enter();
        let (slots, serve_conn, refusals) = (slots.clone(), serve_conn.clone(), refusals.clone());
        let (kind, msg) = full();
        conns.spawn(async move {
            // Kicked out of the lobby, it is judged by what it has sent by now: a newcomer
            // whose request arrived while it waited for its turn to run is not refused.
            let mut b = [0u8; 1];
            let first = tokio::select! {
                biased;
                first = first_byte(&stream, REFUSAL_PEEK) => first,
                () = waiting.kicked() => stream.try_peek_first(&mut b),
            };
            drop(waiting);
            if first.is_some() {
                if let Admission::Admitted { slot, .. } = slots.admit(true) {
                    return serve_conn(stream, slot, peer).await;
                }
            }
            match refusals.try_acquire_owned() {
                Ok(_permit) => answer_refusal(stream, first, kind, &msg).await,
                Err(_) => refuse_now(stream, kind, &msg),
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let _ = server_handle.stop();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = conns.len(),
            "connections still busy after the drain timeout; closing them"
        );
        conns.abort_all();
    }
}

/// Batches that may run at once: two per core, at least four.
fn batch_turns() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .max(4)
}

/// Failed accepts (EMFILE above all) back off and are logged once per burst, not per try.
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    unlogged: u64,
    last_log: Option<std::time::Instant>,
}

impl AcceptErrors {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(error = %e, failures = self.unlogged, "accept failed; backing off");
            self.unlogged = 0;
            self.last_log = Some(std::time::Instant::now());
        }
        Duration::from_millis(10 << self.in_a_row.min(6))
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// Waits for the connection's first byte without consuming it; `None` if it closes or idles.
async fn first_byte(stream: &UnixStream, wait: Duration) -> Option<u8> {
    use std::os::fd::AsRawFd;
    let peek = async {
        loop {
            stream.readable().await.ok()?;
            let mut b = [0u8; 1];
            let peeked = stream.try_io(tokio::io::Interest::READABLE, || {
                nix::sys::socket::recv(
                    stream.as_raw_fd(),
                    &mut b,
                    nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                )
                .map_err(std::io::Error::from)
            });
            match peeked {
                Ok(1) => return Some(b[0]),
                Ok(_) => return None, // closed before saying anything
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(wait, peek).await.ok().flatten()
}

/// Root may always connect; others only as members of the configured group.
fn check_peer(stream: &UnixStream, gid: Option<u32>) -> Result<Peer, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("permission denied: cannot read peer credentials: {e}"))?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
    };
    if cred.uid() == 0 {
        return Ok(peer);
    }
    if let Some(gid) = gid {
        if cred.gid() == gid || cred.pid().is_some_and(|pid| in_group(pid, gid)) {
            return Ok(peer);
        }
    }
    Err(format!(
        "permission denied: uid {} is neither root nor a member of the socket's group{}",
        cred.uid(),
        gid.map(|g| format!(" (gid {g})")).unwrap_or_default()
    ))
}

/// Whether process `pid` holds `gid` among its supplementary groups.
fn in_group(pid: i32, gid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
        })
        .unwrap_or(false)
}

/// Answers a refused connection without waiting: its protocol is guessed from what it
/// already sent, the answer goes into the socket buffer, and whatever the peer already sent
/// is discarded before closing (so the peer reads the answer rather than a reset).
fn refuse_now(stream: UnixStream, kind: ErrorKind, msg: &str) {
    let mut b = [0u8; 1];
    let ndjson = stream
        .try_peek_first(&mut b)
        .is_some_and(ndjson::starts_json);
    let out = if ndjson {
        format!("{}\n", error_reply(kind, msg)).into_bytes()
    } else {
        http::refusal(kind, msg)
    };
    let _ = stream.try_write(&out);
    if let Ok(mut std) = stream.into_std() {
        use std::io::Read;
        let _ = std.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 16 << 10];
        while matches!(std.read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// Peeks at the first byte a stream has already received, without waiting.
trait PeekFirst {
    fn try_peek_first(&self, b: &mut [u8; 1]) -> Option<u8>;
}

impl PeekFirst for UnixStream {
    fn try_peek_first(&self, b: &mut [u8; 1]) -> Option<u8> {
        use std::os::fd::AsRawFd;
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        match nix::sys::socket::recv(self.as_raw_fd(), b, flags) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }
}

/// Answers a refused connection in its own protocol (NDJSON if its first byte says so,
/// else HTTP), then closes it gracefully so the peer reads the answer instead of a reset.
async fn refuse(stream: UnixStream, kind: ErrorKind, msg: &str) {
    let first = first_byte(&stream, REFUSAL_PEEK).await;
    answer_refusal(stream, first, kind, msg).await;
}

/// [`refuse`] once the first byte is known (`None`: the peer said nothing in time).
async fn answer_refusal(mut stream: UnixStream, first: Option<u8>, kind: ErrorKind, msg: &str) {
    let out = if first.is_some_and(ndjson::starts_json) {
        format!("{}\n", error_reply(kind, msg)).into_bytes()
    } else {
        http::refusal(kind, msg)
    };
    let _ = tokio::time::timeout(REFUSAL_PEEK, stream.write_all(&out)).await;
    http::close_gracefully(&mut stream).await;
}
