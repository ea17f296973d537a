//! Registries: image references, credentials and the OCI distribution client. Knows HTTP
//! and the registry protocol, nothing of berth's stores; `service::images::pull` drives it.

pub mod auth;
pub mod client;
pub mod reference;
#[cfg(test)]
mod reference_fuzz;
mod upload;

pub use auth::{CredentialSources, Credentials};
pub use client::{http_client, Session};
pub use reference::{Reference, ReferenceError};

/// Why a registry request failed. Messages name the registry host and the object; they
/// never carry credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection (refused, DNS, TLS, timeout).
    #[error("registry {host} is unreachable: {detail}")]
    Unreachable { host: String, detail: String },
    /// The registry does not have it (repository, tag, manifest, blob).
    #[error("{what} not found at registry {host}")]
    NotFound { host: String, what: String },
    /// Authentication failed or is missing.
    #[error("registry {host} refused access to repository \"{repo}\": {detail}")]
    Denied {
        host: String,
        repo: String,
        detail: String,
    },
    /// Any other non-success answer.
    #[error("registry {host} answered HTTP {status} for {what} {detail}")]
    Status {
        host: String,
        status: u16,
        what: String,
        detail: String,
    },
    /// The body stopped before its end.
    #[error("{what}: the body was cut off after {got} bytes: {detail}")]
    Truncated {
        what: String,
        got: u64,
        detail: String,
    },
    /// The registry served something berth does not read.
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("{0}")]
    Internal(String),
}
