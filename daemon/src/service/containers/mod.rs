//! Containers: pure metadata (id, labels, image, runtime, spec, snapshot). No runtime state
//! lives here; tasks own that.

use crate::service::logs::Logs;
use schema::{Container, ContainerInput, ContainerListParams, Labels, Runtime};
use serde_json::Value;

use super::images::Images;
use super::snapshots::{Snapshots, DEFAULT_SNAPSHOTTER};
mod spec;
mod update;
#[cfg(test)]
mod update_fuzz;

use spec::{check_spec, default_spec, image_spec};
pub(crate) use spec::{unshares_mounts, NO_MOUNT_NAMESPACE};
use update::{apply_update, parse_mask_path};

use super::{check_id, check_labels, Error, Result};
use crate::filter::{self, SqlField};
use crate::snapshot::Kind;
use crate::store::{self, containers_json::Sink, Store, StoreError};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes of a reply kept for the JSON-RPC envelope around a list page (its id included).
const ENVELOPE_ROOM: usize = 4096;

/// The runtime a container gets when it names none.
pub const DEFAULT_RUNTIME: &str = "runc";

#[derive(Clone)]
pub struct Containers {
    store: Store,
    images: Images,
    snapshots: Snapshots,
    logs: Logs,
    /// The reply cap (`max_response_bytes`): a list never grows past it.
    pub max_reply: usize,
}

/// Maps a filter field path to the column (or label index) that answers it.
fn container_field(path: &[String]) -> Option<SqlField> {
    match path {
        [f] if f == "id" => Some(SqlField::Column("c.id")),
        [f] if f == "image" => Some(SqlField::Column("c.image")),
        [f] if f == "snapshotter" => Some(SqlField::Column("c.snapshotter")),
        [f] if f == "snapshot_key" => Some(SqlField::Column("c.snapshot_key")),
        [r, n] if r == "runtime" && n == "name" => Some(SqlField::Column("c.runtime_name")),
        [l, key @ ..] if l == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "container_labels",
            owner_column: "container",
            owner: "c.pk",
            key: key.join("."),
        }),
        _ => None,
    }
}

impl Containers {
    pub fn new(
        store: Store,
        images: Images,
        snapshots: Snapshots,
        logs: Logs,
        max_reply: usize,
    ) -> Self {
        Containers {
            store,
            images,
            snapshots,
            logs,
            max_reply,
        }
    }

    pub async fn create(
        &self,
        ns: String,
        input: ContainerInput,
        spec_options: Option<Value>,
    ) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &input.id)?;
        let owner = format!("container \"{}\"", input.id);
        check_labels(&owner, &input.labels)?;
        // From an image without a spec: the spec comes from the image config, and without a
        // snapshot key the rootfs snapshot is prepared in the same transaction as the row.
        let from_image = input.spec.is_none() && !input.image.is_empty();
        let _gc = if from_image {
            Some(self.snapshots.gc_lock.read().await)
        } else {
            None
        };
        let mut staged = None;
        let mut input = input;
        let spec = match input.spec.take() {
            Some(spec) => {
                if spec_options.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "{owner}: give either spec or spec_options, not both"
                    )));
                }
                check_spec(&owner, &spec)?;
                spec
            }
            None if from_image => {
                let sn = self.snapshots.get(Some(&input.snapshotter))?;
                let rootfs =
                    self.images
                        .rootfs(&ns, &input.image, &sn)
                        .await
                        .map_err(|e| match e {
                            Error::NotFound(m) => Error::NotFound(format!("{owner}: {m}")),
                            other => other,
                        })?;
                let spec = image_spec(&input, &rootfs, spec_options)?;
                // containerd's label for the image's STOPSIGNAL, which `berth stop` sends.
                if let Some(sig) = rootfs.config["config"]["StopSignal"].as_str() {
                    if !sig.is_empty() {
                        input
                            .labels
                            .entry(schema::STOP_SIGNAL_LABEL.to_owned())
                            .or_insert_with(|| sig.to_owned());
                    }
                }
                input.snapshotter = sn.name().to_owned();
                if input.snapshot_key.is_empty() {
                    input.snapshot_key.clone_from(&input.id);
                    staged = Some(self.snapshots.stage(&ns, &sn, &rootfs.top_chain).await?);
                }
                spec
            }
            None => default_spec(&input, spec_options)?,
        };
        let runtime = input.runtime.unwrap_or_else(|| Runtime {
            name: DEFAULT_RUNTIME.to_owned(),
            options: Value::Null,
        });
        if runtime.name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{owner}: runtime.name must not be empty"
            )));
        }
        let now = store::now();
        let container = Container {
            id: input.id,
            labels: input.labels,
            image: input.image,
            runtime,
            spec,
            snapshotter: input.snapshotter,
            snapshot_key: input.snapshot_key,
            created_at: now.clone(),
            updated_at: now,
            extensions: input.extensions,
            status: None,
        };
        let stored = container.clone();
        let staged = self
            .store
            .write(move |tx| {
                store::containers::insert(tx, &ns, &stored)?;
                if let Some(staged) = staged.as_mut() {
                    staged.record(tx, &ns, &stored.snapshot_key, Kind::Active, &Labels::new())?;
                }
                Ok(staged)
            })
            .await?;
        drop(staged);
        Ok(container)
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Container> {
        check_id("namespace", ns)?;
        check_id("container id", id)?;
        Ok(self.store.read(|c| store::containers::get(c, ns, id))?)
    }

    /// [`Containers::get`]'s result object (`{"container":...}`) as JSON text after what
    /// `out` holds, written from the stored text without decoding it (HTTP and NDJSON's
    /// path, `api::direct`). A read by key: in place, as `get`.
    pub fn get_json(&self, ns: &str, id: &str, mut out: Vec<u8>) -> Result<Vec<u8>> {
        check_id("namespace", ns)?;
        check_id("container id", id)?;
        self.store
            .read(|c| store::containers_json::get_json(c, ns, id, &mut out))?;
        Ok(out)
    }

    /// The result object of `containers.list` as JSON text, written row by row from the
    /// store on a blocking reader (`store::containers_json`) after what `out` holds: a page
    /// of at most `max` bytes (see [`Containers::page_bytes`]); `None` when not even one
    /// container fits.
    pub async fn list_json(
        &self,
        p: ContainerListParams,
        max: usize,
        mut out: Vec<u8>,
    ) -> Result<Option<Vec<u8>>> {
        let query = ListQuery::new(p)?;
        Ok(self
            .store
            .read_blocking(move |c| {
                let fits = query.write(c, Sink::whole(&mut out), max)?;
                Ok(fits.then_some(out))
            })
            .await?)
    }

    /// [`Containers::list_json`] as a stream: `head`, the page and `tail` in chunks of about
    /// [`STREAM_CHUNK`] bytes, written while the reader ahead of them is sent, so neither the
    /// page nor its reply is ever whole in memory. At most [`STREAM_AHEAD`] chunks wait for
    /// the reader; one that waits past `stall` ends the stream (a reader that stopped
    /// reading holds a store reader no longer). The first chunk holds a row at least, so
    /// every error (and `None`: not even one row fits) comes before any text; a failure
    /// later is an `Err` in the stream, after which the reply cannot be completed.
    pub async fn list_stream(
        &self,
        p: ContainerListParams,
        max: usize,
        head: Vec<u8>,
        tail: &'static [u8],
        stall: Duration,
    ) -> Result<Option<TextStream>> {
        let query = ListQuery::new(p)?;
        let (tx, mut rx) = mpsc::channel::<Piece>(STREAM_AHEAD);
        let store = self.store.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            let chunks = tx.clone();
            let read = store
                .read_blocking(move |c| {
                    let mut flush = |chunk: Vec<u8>| -> store::Result<()> {
                        // A store reader thread, never an async worker: blocking is its job.
                        let sent = runtime.block_on(tokio::time::timeout(
                            stall,
                            chunks.send(Piece::Chunk(chunk)),
                        ));
                        match sent {
                            Ok(Ok(())) => Ok(()),
                            _ => Err(StoreError::Closed),
                        }
                    };
                    let mut out = head;
                    let sink = Sink {
                        out: &mut out,
                        chunk: STREAM_CHUNK,
                        flush: Some(&mut flush),
                    };
                    if !query.write(c, sink, max)? {
                        return Ok(false);
                    }
                    out.extend_from_slice(tail);
                    flush(out)?;
                    Ok(true)
                })
                .await;
            let last = match read {
                Ok(true) => return,
                Ok(false) => Piece::Oversized,
                Err(e) => Piece::Failed(e.into()),
            };
            let _ = tx.send(last).await;
        });
        match rx.recv().await {
            Some(Piece::Chunk(first)) => Ok(Some(TextStream { first, rest: rx })),
            Some(Piece::Oversized) => Ok(None),
            Some(Piece::Failed(e)) => Err(e),
            None => Err(Error::Internal(
                "containers.list: the reader ended early".into(),
            )),
        }
    }

    /// The most a `containers.list` page (its result object) holds, whatever the transport:
    /// the reply cap less room for the JSON-RPC envelope around it.
    pub fn page_bytes(&self) -> usize {
        self.max_reply.saturating_sub(ENVELOPE_ROOM)
    }

    pub async fn update(
        &self,
        ns: String,
        input: ContainerInput,
        mask: Option<Vec<String>>,
    ) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &input.id)?;
        let mask = mask.unwrap_or_default();
        for path in &mask {
            parse_mask_path(&input.id, path)?;
        }
        let id = input.id.clone();
        Ok(self
            .store
            .write(move |tx| {
                store::containers::update(tx, &ns, &id, |current| {
                    apply_update(current, input, &mask)
                        .map_err(|e| StoreError::InvalidArgument(e.to_string()))
                })
            })
            .await?)
    }

    /// Deletes the container and, unless `keep_snapshot`, its rootfs snapshot when nothing
    /// else holds it (another container, a lease, a child snapshot; committed snapshots
    /// belong to images and are left to `gc.run`), in one transaction.
    ///
    /// What is on disk goes after `torn_down` resolves (the container's deleted task, if
    /// any, is unmounted), in the background: the reply waits only for the transaction. A
    /// crash before it is done leaves an orphan directory and log, which start-up sweeps.
    pub async fn delete(
        &self,
        ns: String,
        id: String,
        keep_snapshot: bool,
        torn_down: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &id)?;
        let (ns2, id2) = (ns.clone(), id.clone());
        let (container, removed) = self
            .store
            .write_reclaiming(move |tx| {
                let c = store::containers::delete(tx, &ns, &id)?;
                if keep_snapshot || c.snapshot_key.is_empty() {
                    return Ok((c, None));
                }
                let sn = if c.snapshotter.is_empty() {
                    DEFAULT_SNAPSHOTTER.to_owned()
                } else {
                    c.snapshotter.clone()
                };
                let conn = tx.conn();
                let Some(row) = store::snapshots::find(conn, &ns, &sn, &c.snapshot_key)? else {
                    return Ok((c, None));
                };
                let others = store::containers::count_using_snapshot(
                    conn,
                    &ns,
                    &sn,
                    &c.snapshot_key,
                    DEFAULT_SNAPSHOTTER,
                )?;
                let leased =
                    store::leases::holds_snapshot(conn, &ns, &sn, &c.snapshot_key, &store::now())?;
                if others > 0
                    || leased
                    || row.kind == Kind::Committed
                    || store::snapshots::children(conn, row.id)? > 0
                {
                    return Ok((c, None));
                }
                store::snapshots::remove_row(tx, &row)?;
                Ok((c, Some((sn, row.id))))
            })
            .await?;
        let (snapshots, logs) = (self.snapshots.clone(), self.logs.clone());
        tokio::spawn(async move {
            torn_down.await;
            if let Some((sn, id)) = removed {
                if let Ok(sn) = snapshots.get(Some(&sn)) {
                    snapshots.discard_dirs(&sn, vec![id]).await;
                }
            }
            logs.remove(&ns2, &id2);
        });
        Ok(container)
    }
}

/// Bytes of a streamed list written before they are handed to the sender. Small enough
/// that malloc serves chunks from its heap, not from fresh mmaps whose pages fault in on
/// every list (256 KiB chunks took twice as long: 30 ms for a 32 MiB list against 16).
pub const STREAM_CHUNK: usize = 64 << 10;
/// Chunks of a streamed list waiting for the connection before its reader waits.
pub const STREAM_AHEAD: usize = 16;

/// Text written ahead of the connection that sends it: `first`, then what `rest` yields
/// until it ends; an `Err` in `rest` means the text cannot be completed.
pub struct TextStream {
    pub first: Vec<u8>,
    pub rest: mpsc::Receiver<Piece>,
}

/// One step of a [`TextStream`].
pub enum Piece {
    Chunk(Vec<u8>),
    /// Not even one row fits the page (only ever first).
    Oversized,
    Failed(Error),
}

/// A checked `containers.list` request, ready to run on a reader.
struct ListQuery {
    p: ContainerListParams,
    cond: String,
    args: Vec<rusqlite::types::Value>,
    /// No filter: the page is a scan of the namespace's rows, read with the database file
    /// mapped (`store::mapped`). A filtered page reads the few rows an index finds, for
    /// which mapping and unmapping a file of tens of MiB costs more than it saves.
    scan: bool,
}

impl ListQuery {
    fn new(p: ContainerListParams) -> Result<ListQuery> {
        check_id("namespace", &p.namespace)?;
        let filter = filter::parse(&p.filters)?;
        let (cond, args) = filter.to_sql(&container_field)?;
        let scan = filter.matches_all();
        if p.limit == Some(0) {
            return Err(Error::InvalidArgument(
                "limit must be at least 1 (omit it for no limit)".into(),
            ));
        }
        Ok(ListQuery {
            p,
            cond,
            args,
            scan,
        })
    }

    /// Writes the page into `sink`; `false` when not even one row fits in `max`.
    fn write(self, c: &rusqlite::Connection, sink: Sink<'_>, max: usize) -> store::Result<bool> {
        let p = self.p;
        let statuses = match p.with_status {
            true => Some(store::tasks::container_statuses(c, &p.namespace)?),
            false => None,
        };
        let page = || {
            store::containers_json::list_json(
                c,
                &p.namespace,
                (&self.cond, self.args),
                p.after.as_deref(),
                p.limit,
                statuses,
                sink,
                max,
            )
        };
        let fits = match self.scan {
            true => store::mapped(c, page)?,
            false => page()?,
        };
        Ok(fits.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_fields_map_to_columns_and_the_label_index() {
        let p = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert!(matches!(
            container_field(&p("image")),
            Some(SqlField::Column("c.image"))
        ));
        assert!(matches!(
            container_field(&p("runtime.name")),
            Some(SqlField::Column("c.runtime_name"))
        ));
        match container_field(&["labels".into(), "a.b".into()]) {
            Some(SqlField::Label { key, .. }) => assert_eq!(key, "a.b"),
            _ => panic!("labels.<key> must use the label index"),
        }
        assert!(container_field(&p("spec")).is_none());
    }
}
