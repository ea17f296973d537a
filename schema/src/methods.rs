//! Every method berthd serves, as a type: its wire name, its params, its result and the
//! error kinds it documents. The daemon registers handlers through these types (so a
//! handler that answers anything but `Result` does not compile) and the OpenRPC document is
//! generated from the same table ([`crate::openrpc`]); neither can drift from the other.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ErrorKind;
use crate::replies::*;
use crate::*;

/// One JSON-RPC method.
pub trait Method {
    const NAME: &'static str;
    type Params: DeserializeOwned + JsonSchema + Send + 'static;
    type Result: Serialize + JsonSchema + Send + 'static;
}

/// A method that answers a subscription id and then sends `Item`s as `NOTIFICATION`s until
/// `UNSUBSCRIBE` (or the end of the stream). WebSocket and NDJSON only.
pub trait Subscription: Method {
    const NOTIFICATION: &'static str;
    const UNSUBSCRIBE: &'static str;
    type Item: Serialize + JsonSchema + Send + 'static;
}

/// The generator's view of one method.
pub struct MethodDoc {
    pub name: &'static str,
    pub summary: &'static str,
    /// Kinds beyond the ones every method may answer ([`UNIVERSAL_ERRORS`]).
    pub errors: &'static [ErrorKind],
    pub params: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    pub result: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    pub notification: Option<NotificationDoc>,
}

pub struct NotificationDoc {
    pub name: &'static str,
    pub unsubscribe: &'static str,
    pub item: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

/// Kinds any method may answer: params that do not parse or validate, a daemon at one of
/// its limits or shutting down, and a bug.
pub const UNIVERSAL_ERRORS: &[ErrorKind] = &[
    ErrorKind::InvalidArgument,
    ErrorKind::ResourceExhausted,
    ErrorKind::Unavailable,
    ErrorKind::Internal,
];

/// The whole body of `rpc.discover`'s reply.
#[derive(Clone, Copy)]
pub struct OpenRpcDocument;

impl JsonSchema for OpenRpcDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpenRpcDocument".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "object", "description": "this document"})
    }
}

/// The document on one line: the checked-in file is pretty-printed, and a newline inside a
/// reply would end an NDJSON message early.
fn compact_document() -> &'static serde_json::value::RawValue {
    static COMPACT: std::sync::OnceLock<Box<serde_json::value::RawValue>> =
        std::sync::OnceLock::new();
    COMPACT.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENRPC).expect("openrpc.json");
        serde_json::value::to_raw_value(&doc).expect("a Value serializes")
    })
}

impl Serialize for OpenRpcDocument {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        compact_document().serialize(s)
    }
}

macro_rules! methods {
    ($(
        $ty:ident $name:literal ($params:ty) -> $result:ty, $summary:literal, [$($err:ident),*]
        $(, notifies $notif:literal ($item:ty) until $unsub:literal)?
    ;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $summary)]
            pub struct $ty;
            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
            $(
                impl Subscription for $ty {
                    const NOTIFICATION: &'static str = $notif;
                    const UNSUBSCRIBE: &'static str = $unsub;
                    type Item = $item;
                }
            )?
        )*

        /// The methods that end a subscription: jsonrpsee reads their id positionally, so
        /// berthd rewrites the contract's by-name `{subscription}` for them, and the document
        /// says they take either.
        pub const UNSUBSCRIBE_METHODS: &[&str] = &[$($($unsub,)?)*];

        /// Every method, in the document's order.
        pub fn catalogue() -> Vec<MethodDoc> {
            vec![$(
                MethodDoc {
                    name: $name,
                    summary: $summary,
                    errors: &[$(ErrorKind::$err),*],
                    params: <$params as JsonSchema>::json_schema,
                    result: |g| g.subschema_for::<$result>(),
                    notification: None $(.or(Some(NotificationDoc {
                        name: $notif,
                        unsubscribe: $unsub,
                        item: |g| g.subschema_for::<$item>(),
                    })))?,
                },
            )*]
        }
    };
}

methods! {
    SystemVersion "system.version" (NoParams) -> Version,
        "Daemon, API and runtime versions.", [];
    SystemInfo "system.info" (NoParams) -> Info,
        "Paths, snapshotters and object counts.", [];
    RpcDiscover "rpc.discover" (NoParams) -> OpenRpcDocument, "This document.", [];

    NamespacesList "namespaces.list" (NoParams) -> NamespaceList, "All namespaces.", [];
    NamespacesCreate "namespaces.create" (NamespaceCreateParams) -> NamespaceReply,
        "Creates a namespace.", [AlreadyExists];
    NamespacesDelete "namespaces.delete" (NamespaceDeleteParams) -> Empty,
        "Deletes an empty namespace.", [NotFound, FailedPrecondition];

    ContainersCreate "containers.create" (ContainerCreateParams) -> ContainerReply,
        "Creates a container (metadata only).", [AlreadyExists, NotFound];
    ContainersGet "containers.get" (ContainerGetParams) -> ContainerReply,
        "One container.", [NotFound];
    ContainersList "containers.list" (ContainerListParams) -> ContainerList,
        "Containers in id order, filtered and paged; a page also ends, with next, before its \
         result passes max_response_bytes less 4 KiB (berth extension).", [];
    ContainersUpdate "containers.update" (ContainerUpdateParams) -> ContainerReply,
        "Updates a container's mutable fields.", [NotFound];
    ContainersDelete "containers.delete" (ContainerDeleteParams) -> Empty,
        "Deletes a container; its snapshot directory and log go in the background once its \
         deleted task is unmounted (berth extension).", [NotFound, FailedPrecondition];
    ContainersLogs "containers.logs" (LogsParams) -> LogBatch,
        "The container's log (its tasks' stdout and stderr when they were created without \
         stdio paths), oldest first. Kept after the task, removed with the container.",
        [NotFound];
    LogsSubscribe "logs.subscribe" (LogsParams) -> SubscriptionId,
        "The container's log as `logs.entries` notifications (LogBatch), then, with follow, \
         new entries until the task's output ends; the last notification has end: true. \
         WebSocket and NDJSON only (HTTP POST: failed_precondition).", [NotFound, FailedPrecondition],
        notifies "logs.entries" (LogBatch) until "logs.unsubscribe";

    EventsList "events.list" (EventListParams) -> EventList,
        "Stored events after a seq, oldest first.", [];
    EventsSubscribe "events.subscribe" (EventSubscribeParams) -> SubscriptionId,
        "Stored events after `since`, then live ones, as `events.event` notifications. \
         WebSocket and NDJSON only (HTTP POST: failed_precondition).", [FailedPrecondition],
        notifies "events.event" (Event) until "events.unsubscribe";

    TasksCreate "tasks.create" (TaskCreateParams) -> TaskCreated,
        "Creates the container's task (runc create; rootfs mounted).",
        [NotFound, AlreadyExists, FailedPrecondition];
    TasksStart "tasks.start" (TaskProcessParams) -> Started,
        "Starts the task's init, or an exec process.", [NotFound, FailedPrecondition];
    TasksWriteStdin "tasks.write_stdin" (TaskWriteStdinParams) -> Written,
        "Writes bytes to a process's terminal, or to its stdin FIFO while berthd holds it \
         open (berth extension; berth attach sends keys with it). Waits at most 5 s for room \
         (resource_exhausted).", [NotFound, FailedPrecondition];
    TasksGet "tasks.get" (TaskProcessParams) -> ProcessReply,
        "One process of a task.", [NotFound];
    TasksList "tasks.list" (TaskListParams) -> TaskList,
        "Tasks (their init processes), filtered on status, pid, ...", [];
    TasksKill "tasks.kill" (TaskKillParams) -> Empty,
        "Signals a task's init (or every process with all), or an exec process.",
        [NotFound, FailedPrecondition];
    TasksWait "tasks.wait" (TaskProcessParams) -> ExitInfo,
        "Blocks until the process exits.", [NotFound];
    TasksDelete "tasks.delete" (TaskDeleteParams) -> ExitInfo,
        "Deletes a stopped task (force kills and waits first). Answers once the task is \
         deleted as clients see it; runc delete, unmounts and the bundle follow in the \
         background, and a tasks.create of the same id waits for them (berth extension).",
        [NotFound, FailedPrecondition];
    TasksExec "tasks.exec" (TaskExecParams) -> Empty,
        "Adds an exec process (start it with tasks.start and its exec_id).",
        [NotFound, AlreadyExists, FailedPrecondition];
    TasksDeleteProcess "tasks.delete_process" (TaskProcessParams) -> ExitInfo,
        "Deletes a stopped exec process.", [NotFound, FailedPrecondition];
    TasksResizePty "tasks.resize_pty" (TaskResizeParams) -> Empty,
        "Sets the pty size of a terminal process.", [NotFound, FailedPrecondition];
    TasksCloseIo "tasks.close_io" (TaskProcessParams) -> Empty,
        "Closes the process's stdin.", [NotFound];
    TasksPause "tasks.pause" (TaskParams) -> Empty,
        "Freezes the task.", [NotFound, FailedPrecondition];
    TasksResume "tasks.resume" (TaskParams) -> Empty,
        "Thaws the task.", [NotFound, FailedPrecondition];
    TasksPids "tasks.pids" (TaskParams) -> Pids,
        "Pids in the task's cgroup.", [NotFound, FailedPrecondition];
    TasksMetrics "tasks.metrics" (TaskParams) -> Metrics,
        "cgroup figures (v1 or v2): cpu, memory, pids.", [NotFound, FailedPrecondition];

    ImagesImport "images.import" (ImageImportParams) -> ImageList,
        "Imports an OCI image-layout tar or a `docker save` tar from the daemon's \
         filesystem, streamed, and unpacks it into snapshots.", [NotFound, AlreadyExists];
    ImagesPull "images.pull" (ImagePullParams) -> ImageReply,
        "Pulls an image from a registry (OCI distribution API): resolves the reference \
         (Docker's defaults) to a manifest for the platform, fetches the blobs the content \
         store lacks (verified by digest and size), unpacks them and names the image.",
        [NotFound, PermissionDenied, FailedPrecondition];
    ImagesProgress "images.progress" (ImageListParams) -> ImageProgress,
        "Progress of the imports and pulls under way (polled by `berth images import` and \
         `berth images pull`).", [];
    ImagesList "images.list" (ImageListParams) -> ImageList, "Images, filtered.", [];
    ImagesGet "images.get" (ImageNameParams) -> ImageDetail,
        "An image and its OCI image config.", [NotFound];
    ImagesTag "images.tag" (ImageTagParams) -> ImageReply,
        "Names the image `source` names `target` too (short names resolve; a reference is \
         stored in full); an image already named `target` is repointed. Berth extension.",
        [NotFound];
    ImagesPush "images.push" (ImagePushParams) -> Pushed,
        "Pushes an image's host-platform manifest (or with all_platforms its whole target), \
         its config and layers to a registry (OCI distribution) with the credentials \
         images.pull uses: blobs the repository has are skipped, others are mounted from the \
         repository the image came from (same registry) or sent in chunks of 8 MiB, the \
         manifest last. Berth extension.",
        [NotFound, PermissionDenied, FailedPrecondition];
    ImagesUploadBegin "images.upload_begin" (ImageUploadBeginParams) -> Upload,
        "Starts an import whose archive the client streams with images.upload_write (berth \
         extension): no host path is opened. The upload id is unguessable and answers only the \
         uid that began it, in the same namespace (anyone else gets not_found). One uid holds \
         at most max_uploads_per_peer uploads (resource_exhausted beyond).",
        [ResourceExhausted];
    ImagesUploadWrite "images.upload_write" (ImageUploadWriteParams) -> Empty,
        "The next bytes of an upload's archive (base64, at most 4 MiB decoded), spooled under \
         berthd's root; more than max_upload_bytes in all is resource_exhausted.",
        [NotFound, ResourceExhausted];
    ImagesUploadCommit "images.upload_commit" (ImageUploadParams) -> ImageList,
        "Ends an upload's stream and answers its import, which runs now: an upload being \
         sent holds no lock that gc or container creates wait for.",
        [NotFound, AlreadyExists, FailedPrecondition];
    ImagesUploadAbort "images.upload_abort" (ImageUploadParams) -> Aborted,
        "Drops an upload and what it sent. An upload idle for 60 s is aborted too.", [];
    ImagesExport "images.export" (ImageExportParams) -> SubscriptionId,
        "Streams images as one tar: an OCI image layout (each image's host manifest, config \
         and layers, digests unchanged; index.json names them) plus, in the docker format, \
         docker's manifest.json, as `images.export_data` notifications, the last with end. \
         WebSocket and NDJSON only.", [NotFound, FailedPrecondition],
        notifies "images.export_data" (ExportChunk) until "images.export_cancel";
    ImagesDelete "images.delete" (ImageDeleteParams) -> Empty,
        "Deletes an image name (its unreferenced content is collected shortly after, in the \
         background). Refused (`failed_precondition`, naming them) while containers of the \
         namespace use the image, unless `force`.", [NotFound, FailedPrecondition];

    ContentsList "content.list" (ContentListParams) -> ContentList,
        "Blobs in the content store.", [];
    ContentsInfo "content.info" (ContentDigestParams) -> ContentInfoReply,
        "One blob.", [NotFound];
    ContentsDelete "content.delete" (ContentDigestParams) -> Empty,
        "Deletes a blob.", [NotFound, FailedPrecondition];

    SnapshotsPrepare "snapshots.prepare" (SnapshotPrepareParams) -> Mounts,
        "An active (writable) snapshot on an optional committed parent.",
        [AlreadyExists, NotFound, FailedPrecondition];
    SnapshotsView "snapshots.view" (SnapshotPrepareParams) -> Mounts,
        "A read-only view of a committed snapshot.",
        [AlreadyExists, NotFound, FailedPrecondition];
    SnapshotsCommit "snapshots.commit" (SnapshotCommitParams) -> Empty,
        "Commits an active snapshot under a name.",
        [NotFound, AlreadyExists, FailedPrecondition];
    SnapshotsMounts "snapshots.mounts" (SnapshotKeyParams) -> Mounts,
        "The mounts of an active snapshot or view.", [NotFound, FailedPrecondition];
    SnapshotsStat "snapshots.stat" (SnapshotKeyParams) -> SnapshotInfoReply,
        "One snapshot's info.", [NotFound];
    SnapshotsUsage "snapshots.usage" (SnapshotKeyParams) -> Usage,
        "Disk usage of one snapshot.", [NotFound];
    SnapshotsList "snapshots.list" (SnapshotListParams) -> SnapshotList,
        "Snapshots, filtered.", [NotFound];
    SnapshotsRemove "snapshots.remove" (SnapshotKeyParams) -> Empty,
        "Removes a snapshot without children.", [NotFound, FailedPrecondition];

    NetworksCreate "networks.create" (NetworkCreateParams) -> NetworkReply,
        "Creates a bridge network; failed_precondition without the CNI plugins (berth \
         extension).", [AlreadyExists, FailedPrecondition];
    NetworksGet "networks.get" (NetworkNameParams) -> NetworkReply,
        "One network; berth0 is created on first use (berth extension).", [NotFound];
    NetworksList "networks.list" (NetworkListParams) -> NetworkList,
        "Every network, by name (berth extension).", [];
    NetworksDelete "networks.delete" (NetworkNameParams) -> Empty,
        "Deletes a network no running task is on, and its bridge (berth extension).",
        [NotFound, FailedPrecondition];
    LeasesCreate "leases.create" (LeaseCreateParams) -> LeaseReply,
        "A lease: resources it holds survive gc.run until it is deleted or expires.",
        [AlreadyExists];
    LeasesList "leases.list" (LeaseListParams) -> LeaseList, "Leases, filtered.", [];
    LeasesDelete "leases.delete" (LeaseIdParams) -> Empty, "Deletes a lease.", [NotFound];
    LeasesAddResource "leases.add_resource" (LeaseResourceParams) -> Empty,
        "Adds a resource to a lease.", [NotFound];
    LeasesDeleteResource "leases.delete_resource" (LeaseResourceParams) -> Empty,
        "Removes a resource from a lease.", [NotFound];
    LeasesListResources "leases.list_resources" (LeaseIdParams) -> LeaseResources,
        "A lease's resources.", [NotFound];
    GcRun "gc.run" (GcRunParams) -> GcReport,
        "Removes every snapshot and blob nothing references (images, containers, leases, \
         gc.root labels).", [];

    EventsUnsubscribe "events.unsubscribe" (UnsubscribeParams) -> bool,
        "Ends an events.subscribe subscription.", [];
    ImagesExportCancel "images.export_cancel" (UnsubscribeParams) -> bool,
        "Stops an images.export stream.", [];
    LogsUnsubscribe "logs.unsubscribe" (UnsubscribeParams) -> bool,
        "Ends a logs.subscribe subscription.", [];
}
