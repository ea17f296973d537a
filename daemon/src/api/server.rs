//! The one unix socket: accepts connections, checks the peer, and routes each connection by
//! its first byte: `{` or `[` speaks newline-delimited JSON, anything else is HTTP/1.1 (plain
//! POSTs, or a WebSocket upgrade) served by jsonrpsee.
//!
//! Every connection runs in its own task, so a slow or idle client never blocks another; a
//! connection that says nothing is closed after [`FIRST_BYTE_TIMEOUT`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{serve_with_graceful_shutdown, stop_channel, Server, ServerConfig};
use jsonrpsee::Methods;
use schema::ErrorKind;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::unsubscribe::UnsubscribeByName;
use super::{error_object, ndjson};

/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may connect and how much they may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Besides root, members of this group may connect.
    pub gid: Option<u32>,
    pub max_request_bytes: u32,
    pub max_connections: u32,
}

/// Serves `methods` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (bounded by [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve(
    listener: UnixListener,
    methods: impl Into<Methods>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let methods: Methods = methods.into();
    let (stop_handle, server_handle) = stop_channel();
    let cfg = ServerConfig::builder()
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(u32::MAX)
        .build();
    let http = Server::builder()
        .set_config(cfg)
        .set_rpc_middleware(RpcServiceBuilder::new().layer_fn(UnsubscribeByName))
        .to_service_builder()
        .max_connections(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (closing_tx, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let slot = slots.clone().try_acquire_owned().ok();
        let svc = http.clone().build(methods.clone(), stop_handle.clone());
        let stopped = stop_handle.clone().shutdown();
        let methods = methods.clone();
        let limits = limits.clone();
        let closing = closing.clone();
        conns.spawn(async move {
            let Some(first) = first_byte(&stream).await else {
                return;
            };
            let ndjson = first == b'{' || first == b'[';
            if let Err(msg) = check_peer(&stream, limits.gid) {
                tracing::info!(%msg, "refused a connection");
                refuse(stream, ndjson, ErrorKind::PermissionDenied, &msg).await;
                return;
            }
            let Some(_slot) = slot else {
                let msg = format!(
                    "too many connections: berthd serves at most {} at once",
                    limits.max_connections
                );
                refuse(stream, ndjson, ErrorKind::ResourceExhausted, &msg).await;
                return;
            };
            if ndjson {
                ndjson::serve(stream, methods, limits.max_request_bytes as usize, closing).await;
            } else if let Err(e) = serve_with_graceful_shutdown(stream, svc, stopped).await {
                tracing::debug!(error = %e, "http connection ended");
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

/// Waits for the connection's first byte without consuming it; `None` if it closes or idles.
async fn first_byte(stream: &UnixStream) -> Option<u8> {
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
    tokio::time::timeout(FIRST_BYTE_TIMEOUT, peek)
        .await
        .ok()
        .flatten()
}

/// Root may always connect; others only as members of the configured group.
fn check_peer(stream: &UnixStream, gid: Option<u32>) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("permission denied: cannot read peer credentials: {e}"))?;
    if cred.uid() == 0 {
        return Ok(());
    }
    if let Some(gid) = gid {
        if cred.gid() == gid || cred.pid().is_some_and(|pid| in_group(pid, gid)) {
            return Ok(());
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

/// Answers a refused connection in its own protocol, then closes it.
async fn refuse(mut stream: UnixStream, ndjson: bool, kind: ErrorKind, msg: &str) {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": error_object(kind, msg),
    })
    .to_string();
    let out = if ndjson {
        format!("{body}\n")
    } else {
        let status = match kind {
            ErrorKind::PermissionDenied => "403 Forbidden",
            _ => "503 Service Unavailable",
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(out.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
