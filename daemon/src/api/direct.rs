//! Methods the envelope (HTTP POST and NDJSON) serves around jsonrpsee, because jsonrpsee
//! would encode their replies twice: it serializes a result into a buffer and then parses
//! that whole buffer again (`RawValue::from_string`) to wrap it. For `containers.list`, tens
//! of MiB for 10,000 containers, that was most of the call (issue 11). Here the service's
//! JSON text goes into the reply as it is. The wire is the same as jsonrpsee's: the same
//! envelope, field order, errors and size limit (`tests/tests/listing.rs` compares the
//! transports, WebSocket's still being jsonrpsee's).

use jsonrpsee::core::server::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id, Params};
use serde_json::value::RawValue;

use super::parse_params;
use crate::service::{self, containers::Containers};

/// What the direct methods need.
#[derive(Clone)]
pub struct Direct {
    pub containers: Containers,
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
    ) -> Option<Result<String, Oversized>> {
        match method {
            "containers.list" => Some(self.containers_list(id, params, max).await),
            _ => None,
        }
    }

    async fn containers_list(
        &self,
        id: &Id<'_>,
        params: Option<&RawValue>,
        max: usize,
    ) -> Result<String, Oversized> {
        let p = match parse_params(&Params::new(params.map(RawValue::get))) {
            Ok(p) => p,
            Err(e) => return Ok(error(id, e)),
        };
        let mut reply = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
        if let Err(e) = serde_json::to_writer(&mut reply, id) {
            return Ok(internal(id, &e));
        }
        reply.extend_from_slice(b",\"result\":");
        // Pages end where WebSocket's do, unless what is left of the budget or of a batch
        // is less (one byte is left for the closing brace).
        let page = self
            .containers
            .page_bytes()
            .min(max.saturating_sub(reply.len() + 1));
        let mut reply = match self.containers.list_json(p, page, reply).await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Err(Oversized),
            Err(e) => return Ok(error(id, e.into())),
        };
        reply.push(b'}');
        // SAFETY: every byte of `reply` was appended from a `&str` (the ASCII envelope,
        // SQLite TEXT columns rusqlite checked as UTF-8 when it read them) or written by
        // serde_json, which writes only UTF-8: the whole is UTF-8 (checking tens of MiB
        // once more showed in the list's profile).
        Ok(unsafe { String::from_utf8_unchecked(reply) })
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
