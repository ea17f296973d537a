//! The API layer: transports and thin handlers. A handler decodes params into a schema type,
//! calls one service, and encodes the result; the rules live in `service`.
//! This is also the one place where domain errors become JSON-RPC errors.

mod budget;
pub mod direct;
mod envelope;
mod http;
mod methods;
pub mod ndjson;
pub mod server;
mod slots;
mod unknown;
mod unsubscribe;

use jsonrpsee::types::{ErrorObject, ErrorObjectOwned, Params};
use schema::ErrorKind;
use serde::de::DeserializeOwned;

use crate::service;

pub use methods::build_module;

/// Builds the JSON-RPC error for `kind` with a message naming the object.
pub fn error_object(kind: ErrorKind, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(
        kind.code(),
        message.into(),
        Some(serde_json::json!({ "kind": kind.as_str() })),
    )
}

impl From<service::Error> for ErrorObjectOwned {
    fn from(e: service::Error) -> Self {
        if let service::Error::Internal(msg) = &e {
            tracing::error!(error = %msg, "internal error answered to a client");
        }
        if let service::Error::CannotExec { reason, .. } = &e {
            let data = serde_json::json!({ "kind": e.kind().as_str(), "reason": reason.as_str() });
            return ErrorObject::owned(e.kind().code(), e.to_string(), Some(data));
        }
        error_object(e.kind(), e.to_string())
    }
}

/// Decodes by-name params. Omitted params count as `{}`, so methods whose fields are all
/// optional can be called without them.
pub fn parse_params<P: DeserializeOwned>(params: &Params<'_>) -> Result<P, ErrorObjectOwned> {
    let raw = params.as_str().unwrap_or("{}");
    if !raw.trim_start().starts_with('{') {
        return Err(error_object(
            ErrorKind::InvalidArgument,
            "params must be a JSON object (berth takes parameters by name)",
        ));
    }
    serde_json::from_str(raw)
        .map_err(|e| error_object(ErrorKind::InvalidArgument, format!("invalid params: {e}")))
}
