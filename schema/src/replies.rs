//! What methods answer: one type per reply shape, so that a handler's return type is its
//! documented result (the OpenRPC document is generated from these, see [`crate::methods`]).
//!
//! Replies do not deny unknown fields: a newer daemon may add fields and older clients must
//! still decode them. Fields that may be absent have `#[serde(default)]`, which is what
//! makes them optional in the document.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::images::{ContentInfo, Image, Lease, LeaseResource, SnapshotInfo};
use crate::tasks::Process;
use crate::types::{Mount, Namespace};

/// The reply of methods that answer nothing but success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `system.version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Version {
    /// berthd's own version.
    pub version: String,
    /// The wire contract's version (`v1`).
    pub api_version: String,
    pub runtime: RuntimeVersion,
}

/// The OCI runtime berthd drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuntimeVersion {
    pub name: String,
    /// Its version line, or `unknown` when the binary is missing.
    pub version: String,
}

/// `system.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Info {
    pub root: String,
    pub state: String,
    pub socket: String,
    pub snapshotters: Vec<String>,
    pub counts: Counts,
}

/// How many objects the store holds, over all namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub namespaces: u64,
    pub containers: u64,
    pub events: u64,
    pub images: u64,
    pub snapshots: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceList {
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceReply {
    pub namespace: Namespace,
}

/// `tasks.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCreated {
    pub container_id: String,
    /// The init's host pid.
    pub pid: i64,
}

/// `tasks.start`: the started process's host pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Started {
    pub pid: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessReply {
    pub process: Process,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskList {
    pub tasks: Vec<Process>,
}

/// `tasks.write_stdin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Written {
    /// Bytes written, all of the decoded data.
    pub written: u64,
}

/// `tasks.pids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pids {
    pub processes: Vec<PidInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PidInfo {
    pub pid: i64,
}

/// `tasks.metrics`: the task's cgroup figures as runc reads them (cgroup v1 or v2 alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    pub container_id: String,
    pub timestamp: String,
    /// The cgroup version read: 1 or 2.
    pub cgroup: u8,
    #[serde(default)]
    pub cpu: CpuStats,
    #[serde(default)]
    pub memory: MemoryStats,
    #[serde(default)]
    pub pids: PidsStats,
}

/// runc's `cpu` figures, nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CpuStats {
    #[serde(default)]
    pub usage: CpuUsage,
    #[serde(default)]
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CpuUsage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub percpu: Vec<u64>,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Throttling {
    #[serde(default)]
    pub periods: u64,
    #[serde(default, rename = "throttledPeriods")]
    pub throttled_periods: u64,
    #[serde(default, rename = "throttledTime")]
    pub throttled_time: u64,
}

/// runc's `memory` figures, bytes; `raw` holds the cgroup's memory.stat keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryStats {
    #[serde(default)]
    pub cache: u64,
    #[serde(default)]
    pub usage: MemoryEntry,
    #[serde(default)]
    pub swap: MemoryEntry,
    #[serde(default)]
    pub kernel: MemoryEntry,
    #[serde(default)]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryEntry {
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub usage: u64,
    #[serde(default)]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PidsStats {
    #[serde(default)]
    pub current: u64,
    /// 0: no limit.
    #[serde(default)]
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageList {
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageReply {
    pub image: Image,
}

/// `images.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageDetail {
    pub image: Image,
    /// The host platform's OCI image config, as stored.
    #[schemars(with = "crate::openrpc::OciObject")]
    pub config: serde_json::Value,
}

/// `images.progress`: imports and pulls under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageProgress {
    pub imports: Vec<ImportProgress>,
    pub pulls: Vec<PullProgress>,
}

/// An import: archive bytes read of its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportProgress {
    pub path: String,
    pub size: u64,
    pub read: u64,
}

/// A pull: its phase and each blob's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PullProgress {
    /// The reference as given.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The image's full name.
    pub name: String,
    /// `resolving`, `fetching` or `unpacking`.
    pub phase: String,
    pub layers: Vec<LayerProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LayerProgress {
    pub digest: String,
    pub size: u64,
    pub read: u64,
    /// `waiting`, `downloading`, `done` or `exists` (already in the content store).
    pub status: String,
}

/// `images.push`: what the push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pushed {
    /// The reference pushed to, in full.
    pub reference: String,
    /// The digest pushed under the reference (the manifest's, or the index's with
    /// all_platforms), the same as berth's.
    pub digest: String,
    /// Blobs sent.
    pub uploaded: u64,
    /// Blobs the repository had already.
    pub existing: u64,
    /// Blobs mounted from the repository the image came from (same registry).
    pub mounted: u64,
}

/// `images.upload_begin`: the upload's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Upload {
    pub upload: String,
}

/// `images.upload_abort`: whether an upload of that id was under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Aborted {
    pub aborted: bool,
}

/// One `images.export_data` notification: a chunk of the tar, or the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportChunk {
    /// The next bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The last notification: the stream is complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
    /// With `end`: the tar's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentList {
    pub blobs: Vec<ContentInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentInfoReply {
    pub info: ContentInfo,
}

/// `snapshots.prepare`, `snapshots.view` and `snapshots.mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mounts {
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfoReply {
    pub info: SnapshotInfo,
}

/// `snapshots.usage`: bytes and inodes of the snapshot's own directory (hard links once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseReply {
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseList {
    pub leases: Vec<Lease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseResources {
    pub resources: Vec<LeaseResource>,
}

/// `gc.run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GcReport {
    pub removed: Removed,
    pub duration_ms: u64,
}

/// What a collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Removed {
    pub snapshots: u64,
    pub content: u64,
}
