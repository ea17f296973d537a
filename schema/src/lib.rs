//! berth's wire contract: the JSON objects and method parameters that the daemon, the client
//! and the tests exchange, every method as a type ([`methods`]), and the OpenRPC document
//! served by `rpc.discover`, generated from those types ([`openrpc`]).
//!
//! This crate does no I/O and knows nothing of tokio or SQLite: it is the shared vocabulary.
//! Field names follow `API.md`; new fields may be added, existing ones are never renamed.

pub mod error;
pub mod events;
pub mod identifiers;
pub mod images;
pub mod methods;
pub mod networks;
pub mod openrpc;
pub mod replies;
pub mod spec;
pub mod tasks;
pub mod types;

pub use error::ErrorKind;
pub use images::*;
pub use networks::*;
pub use replies::*;
pub use tasks::*;
pub use types::*;

/// The OpenRPC document describing every method berthd serves.
pub const OPENRPC: &str = include_str!("../openrpc.json");

/// The API version string reported by `system.version`.
pub const API_VERSION: &str = "v1";

/// The label `containers.create` sets from an image's STOPSIGNAL (containerd's name), read
/// by `berth stop`.
pub const STOP_SIGNAL_LABEL: &str = "io.containerd.image.config.stop-signal";

/// The namespace used when a request does not name one.
pub const DEFAULT_NAMESPACE: &str = "default";
