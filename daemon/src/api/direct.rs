//! Methods the envelope (HTTP POST and NDJSON) serves around jsonrpsee, because jsonrpsee
//! would encode their replies twice: it serializes a result into a buffer and then parses
//! that whole buffer again (`RawValue::from_string`) to wrap it. For `containers.list`, tens
//! of MiB for 10,000 containers, that was most of the call (issue 11). Here the service's
//! JSON text goes to the connection as it is read from SQLite, a chunk at a time (HTTP
//! chunked, NDJSON one line), so no reply is ever whole in memory. The wire is the same as
//! jsonrpsee's: the same envelope, field order, errors and size limit
//! (`tests/tests/listing.rs` compares the transports, WebSocket's still being jsonrpsee's,
//! which builds each message whole).

use std::time::Duration;

use jsonrpsee::core::server::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id, Params};
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
            _ => None,
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
        let mut head = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
        if let Err(e) = serde_json::to_writer(&mut head, id) {
            return Ok(Reply::Text(internal(id, &e)));
        }
        head.extend_from_slice(b",\"result\":");
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

fn internal(id: &Id<'_>, e: &dyn std::fmt::Display) -> String {
    error(
        id,
        service::Error::Internal(format!("containers.list: {e}")).into(),
    )
}

fn error(id: &Id<'_>, e: ErrorObjectOwned) -> String {
    Box::<str>::from(MethodResponse::error(id.clone(), e).into_json()).into_string()
}
