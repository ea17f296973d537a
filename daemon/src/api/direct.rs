//! Methods the envelope (HTTP POST and NDJSON) serves around jsonrpsee, because jsonrpsee
//! would encode their replies twice: it serializes a result into a buffer and then parses
//! that whole buffer again (`RawValue::from_string`) to wrap it. For `containers.list`, tens
//! of MiB for 10,000 containers, that was most of the call (issue 11). Here the service's
//! JSON text goes to the connection as it is read from SQLite, a chunk at a time (HTTP
//! chunked, NDJSON one line), so no reply is ever whole in memory. The wire is the same as
//! jsonrpsee's: the same envelope, field order, errors and size limit
//! (`tests/tests/listing.rs` compares the transports, WebSocket's still being jsonrpsee's,
//! which builds each message whole).
//!
//! `containers.get`, the call every client makes most, is served here for the same reason at
//! a small scale: its stored text goes into the reply without being decoded, encoded and
//! checked again (16 clients: 50k/s through jsonrpsee, see the commit for the figure here).

use std::time::Duration;

use jsonrpsee::core::server::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id, Params};
use schema::ContainerGetParams;
use serde_json::value::RawValue;

use super::envelope::Reply;
use super::parse_params;
use crate::service::{self, containers::Containers};

/// What the direct methods need.
#[derive(Clone)]
pub struct Direct {
    pub containers: Containers,
    /// How long a streamed reply may wait for a connection that does not read it.
    pub stall: Duration,
}

/// The reply would pass the size it was given.
pub struct Oversized;

impl Direct {
    /// The reply to `method` if it is one served here (`None` otherwise), within `max`
    /// bytes.
    pub async fn call(
        &self,
        id: &Id<'_>,
        method: &str,
        params: Option<&RawValue>,
        max: usize,
    ) -> Option<Result<Reply, Oversized>> {
        match method {
            "containers.list" => Some(self.containers_list(id, params, max).await),
            "containers.get" => Some(self.containers_get(id, params, max)),
            _ => None,
        }
    }

    /// Whole: one row's stored text in the envelope.
    fn containers_get(
        &self,
        id: &Id<'_>,
        params: Option<&RawValue>,
        max: usize,
    ) -> Result<Reply, Oversized> {
        let p: ContainerGetParams = match parse_params(&Params::new(params.map(RawValue::get))) {
            Ok(p) => p,
            Err(e) => return Ok(Reply::Text(error(id, e))),
        };
        let head = match head(id) {
            Ok(h) => h,
            Err(e) => return Ok(Reply::Text(internal("containers.get", id, &e))),
        };
        let mut text = match self.containers.get_json(&p.namespace, &p.id, head) {
            Ok(text) => text,
            Err(e) => return Ok(Reply::Text(error(id, e.into()))),
        };
        text.push(b'}');
        if text.len() > max {
            return Err(Oversized);
        }
        // The envelope is serde's and the row's text is SQLite's TEXT, stored from JSON.
        match String::from_utf8(text) {
            Ok(text) => Ok(Reply::Text(text)),
            Err(e) => Ok(Reply::Text(internal("containers.get", id, &e))),
        }
    }

    /// Streamed: rows go from SQLite to the connection a chunk at a time.
    async fn containers_list(
        &self,
        id: &Id<'_>,
        params: Option<&RawValue>,
        max: usize,
    ) -> Result<Reply, Oversized> {
        let p = match parse_params(&Params::new(params.map(RawValue::get))) {
            Ok(p) => p,
            Err(e) => return Ok(Reply::Text(error(id, e))),
        };
        let head = match head(id) {
            Ok(h) => h,
            Err(e) => return Ok(Reply::Text(internal("containers.list", id, &e))),
        };
        // Pages end where WebSocket's do, unless what is left of the budget or of a batch
        // is less (one byte is left for the closing brace).
        let page = self
            .containers
            .page_bytes()
            .min(max.saturating_sub(head.len() + 1));
        match self
            .containers
            .list_stream(p, page, head, b"}", self.stall)
            .await
        {
            Ok(Some(stream)) => Ok(Reply::Stream(stream)),
            Ok(None) => Err(Oversized),
            Err(e) => Ok(Reply::Text(error(id, e.into()))),
        }
    }
}

/// A reply's text up to its result: `{"jsonrpc":"2.0","id":ID,"result":`.
fn head(id: &Id<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let mut head = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
    serde_json::to_writer(&mut head, id)?;
    head.extend_from_slice(b",\"result\":");
    Ok(head)
}

fn internal(method: &str, id: &Id<'_>, e: &dyn std::fmt::Display) -> String {
    error(
        id,
        service::Error::Internal(format!("{method}: {e}")).into(),
    )
}

fn error(id: &Id<'_>, e: ErrorObjectOwned) -> String {
    Box::<str>::from(MethodResponse::error(id.clone(), e).into_json()).into_string()
}
