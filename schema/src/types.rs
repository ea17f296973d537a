//! Objects and method parameters as they travel on the wire.
//!
//! Parameter structs deny unknown fields so that a typo (`lables`) is an `invalid_argument`
//! instead of a silently ignored request. Every one of them accepts `namespace`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub type Labels = BTreeMap<String, String>;

fn default_namespace() -> String {
    crate::DEFAULT_NAMESPACE.to_owned()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Which OCI runtime runs a container's tasks, and its runtime-specific options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    pub name: String,
    /// Runtime-specific options, stored as given.
    #[serde(default)]
    pub options: Value,
}

/// A container: pure metadata, no runtime state (the seed's design note).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Container {
    pub id: String,
    pub labels: Labels,
    pub image: String,
    pub runtime: Runtime,
    /// The OCI runtime spec, stored and returned byte for byte as given (never re-encoded).
    #[schemars(with = "crate::openrpc::OciObject")]
    pub spec: Box<RawValue>,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub created_at: String,
    pub updated_at: String,
    pub extensions: BTreeMap<String, Value>,
    /// With `with_status`: its task's status, or how its last task ended (berth extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ContainerStatus>,
}

/// Where a container's task stands, or how the last one ended once it was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerStatus {
    /// `created running paused stopped` while a task exists (`stopped`: it exited, not yet
    /// deleted); `exited` once the task that ended was deleted; `none` if it never ran.
    #[schemars(extend("enum" = ["none", "created", "running", "paused", "stopped", "exited"]))]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// Its code, or 128 + the signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<crate::ExitReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
}

/// The container fields a client sends to `containers.create` and `containers.update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerInput {
    pub id: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// An OCI runtime spec; absent: built from the image and `spec_options`. One with a
    /// `process` must ask for a new mount namespace in `linux.namespaces`.
    #[serde(default)]
    #[schemars(with = "Option<crate::openrpc::OciObject>")]
    pub spec: Option<Box<RawValue>>,
    #[serde(default)]
    pub snapshotter: String,
    #[serde(default)]
    pub snapshot_key: String,
    #[serde(default)]
    pub extensions: BTreeMap<String, Value>,
}

/// A mount as snapshotters return it and tasks apply it to a rootfs (containerd's
/// `{type, source, options}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
    pub created_at: String,
}

/// An event as stored and delivered: `seq` orders all events of the daemon. `event` is the
/// payload of its topic ([`crate::events`], whose schema the document gives per topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub timestamp: String,
    pub namespace: String,
    pub topic: String,
    pub event: Value,
}

/// Parameters that carry nothing but the namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceCreateParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDeleteParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerCreateParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container: ContainerInput,
    /// Options for the spec the daemon builds when `container.spec` is absent.
    #[serde(default)]
    #[schemars(with = "Option<crate::spec::SpecOptions>")]
    pub spec_options: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerGetParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerListParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Page size; absent means everything.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Resume after this container id (the previous page's `next`).
    #[serde(default)]
    pub after: Option<String>,
    /// Add each container's `status` (its task's, or its last exit), in the same call.
    #[serde(default)]
    pub with_status: bool,
}

/// `{container}`: the reply of containers.create, get and update.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContainerReply {
    pub container: Container,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContainerList {
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerUpdateParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub container: ContainerInput,
    /// The fields to change: `labels`, `labels.<key>`, `image`, `spec`, `snapshot_key`,
    /// `extensions`, `extensions.<key>`; absent: every mutable field.
    #[serde(default)]
    pub update_mask: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerDeleteParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_snapshot: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventListParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    pub filters: Vec<String>,
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    pub last_seq: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSubscribeParams {
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Replay stored events with a greater seq before live ones.
    #[serde(default)]
    pub since: Option<i64>,
}

/// `events.unsubscribe`, `logs.unsubscribe`, `images.export_cancel`: by name or by position.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeParams {
    /// The id the subscribing call answered.
    pub subscription: SubscriptionId,
}

/// A subscription's id, as the subscribing call answers it; opaque to clients (berthd's
/// are integers today).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubscriptionId {
    Number(u64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_default_the_namespace_and_reject_unknown_fields() {
        let p: ContainerGetParams = serde_json::from_str(r#"{"id":"web"}"#).expect("parse");
        assert_eq!(p.namespace, "default");
        let err = serde_json::from_str::<ContainerGetParams>(r#"{"id":"web","idd":1}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("idd"), "{err}");
    }
}
