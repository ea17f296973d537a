//! Snapshots: containerd's prepare/view/commit/mounts/stat/usage/list/remove over the
//! snapshotters. Rows live in SQLite; a snapshot's directory is staged first and moved
//! to its id inside the transaction that records it (see `crate::snapshot`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use schema::{Labels, Mount, SnapshotInfo};
use tokio::sync::RwLock;

use super::{check_id, check_labels, Error, Result};
use crate::filter::{self, SqlField};
use crate::snapshot::{self, Kind, Snapshotter};
use crate::store::{self, snapshots::SnapshotRow, Store, StoreError, Tx};

/// The snapshotter used when a request names none.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

#[derive(Clone)]
pub struct Snapshots {
    store: Store,
    snapshotters: Arc<BTreeMap<&'static str, Arc<dyn Snapshotter>>>,
    /// Held shared by whatever creates snapshots or content, exclusively by `gc.run`.
    pub gc_lock: Arc<RwLock<()>>,
}

/// A snapshot directory made ready outside the transaction that will record it.
pub struct Staged {
    sn: Arc<dyn Snapshotter>,
    dir: PathBuf,
    parent: Option<(String, i64)>,
    installed: bool,
}

impl Staged {
    /// The directory to fill (a layer is applied here before the snapshot is recorded).
    pub fn fs_dir(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// Records the staged snapshot as `key` of `kind` in `tx` and moves its directory into
    /// place; call it last in the transaction's closure. Returns the new id.
    pub fn record(
        &mut self,
        tx: &mut Tx<'_>,
        ns: &str,
        key: &str,
        kind: Kind,
        labels: &Labels,
    ) -> store::Result<i64> {
        let name = self.sn.name();
        if let Some((pkey, pid)) = &self.parent {
            // The parent may have gone while this was staged.
            let p = store::snapshots::get(tx.conn(), ns, name, pkey)?;
            if p.id != *pid || !p.kind.can_be_parent() {
                return Err(StoreError::FailedPrecondition(format!(
                    "parent snapshot \"{pkey}\" changed while preparing \"{key}\""
                )));
            }
        }
        let parent = self.parent.as_ref().map(|(k, id)| (k.as_str(), *id));
        let now = store::now();
        let id = store::snapshots::insert(tx, ns, name, key, parent, kind, labels, &now)?;
        snapshot::install(&self.dir, &self.sn.dir(id)).map_err(|e| {
            StoreError::FailedPrecondition(format!("installing snapshot \"{key}\": {e}"))
        })?;
        self.installed = true;
        Ok(id)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn snapshot_field(path: &[String]) -> Option<SqlField> {
    match path {
        [f] if f == "key" || f == "name" => Some(SqlField::Column("s.key")),
        [f] if f == "kind" => Some(SqlField::Column("s.kind")),
        [f] if f == "parent" => Some(SqlField::Column(
            "coalesce((SELECT key FROM snapshots q WHERE q.id = s.parent), '')",
        )),
        [l, key @ ..] if l == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "snapshot_labels",
            owner_column: "snapshot",
            owner: "s.id",
            key: key.join("."),
        }),
        _ => None,
    }
}

fn blocking_err(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("a blocking snapshot task failed: {e}"))
}

impl Snapshots {
    pub fn new(store: Store, snapshotters: Vec<Arc<dyn Snapshotter>>) -> Self {
        Snapshots {
            store,
            snapshotters: Arc::new(snapshotters.into_iter().map(|s| (s.name(), s)).collect()),
            gc_lock: Arc::new(RwLock::new(())),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.snapshotters.keys().copied().collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Snapshotter>> {
        self.snapshotters.values()
    }

    /// The named snapshotter, or the default.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<dyn Snapshotter>> {
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SNAPSHOTTER);
        self.snapshotters.get(name).cloned().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "snapshotter \"{name}\" does not exist; berthd has {}",
                self.names().join(", ")
            ))
        })
    }

    /// Stages a new snapshot directory on top of committed snapshot `parent` (`""`: none).
    /// The caller holds the GC lock (shared) until the snapshot is recorded.
    pub async fn stage(&self, ns: &str, sn: &Arc<dyn Snapshotter>, parent: &str) -> Result<Staged> {
        let (parent, ancestors) = if parent.is_empty() {
            (None, Vec::new())
        } else {
            let (row, mut chain) = self.store.read(|c| {
                let row = store::snapshots::get(c, ns, sn.name(), parent)?;
                let chain = store::snapshots::ancestors(c, row.id)?;
                Ok((row, chain))
            })?;
            if !row.kind.can_be_parent() {
                return Err(Error::FailedPrecondition(format!(
                    "snapshot \"{parent}\" in namespace \"{ns}\" is {}; only a committed \
                     snapshot can be a parent",
                    row.kind
                )));
            }
            chain.insert(0, row.id);
            (Some((parent.to_owned(), row.id)), chain)
        };
        let dir = snapshot::staging_dir(sn.base());
        let staged = Staged {
            sn: sn.clone(),
            dir: dir.clone(),
            parent,
            installed: false,
        };
        let s = sn.clone();
        tokio::task::spawn_blocking(move || s.create(&dir, &ancestors))
            .await
            .map_err(blocking_err)?
            .map_err(|e| Error::failure(format_args!("creating a {} snapshot", sn.name()), &e))?;
        Ok(staged)
    }

    /// `snapshots.prepare` (`kind` Active) and `snapshots.view` (`kind` View).
    pub async fn prepare(
        &self,
        ns: String,
        snapshotter: Option<&str>,
        key: String,
        parent: String,
        labels: Labels,
        kind: Kind,
    ) -> Result<Vec<Mount>> {
        check_id("namespace", &ns)?;
        check_key(&key)?;
        check_labels(&format!("snapshot \"{key}\""), &labels)?;
        let sn = self.get(snapshotter)?;
        let _gc = self.gc_lock.read().await;
        let mut staged = self.stage(&ns, &sn, &parent).await?;
        let (n, k) = (ns.clone(), key.clone());
        let (id, staged) = self
            .store
            .write(move |tx| {
                let id = staged.record(tx, &n, &k, kind, &labels)?;
                Ok((id, staged))
            })
            .await?;
        drop(staged);
        self.mounts_of(&sn, id, kind)
    }

    fn mounts_of(&self, sn: &Arc<dyn Snapshotter>, id: i64, kind: Kind) -> Result<Vec<Mount>> {
        let parents = self.store.read(|c| store::snapshots::ancestors(c, id))?;
        Ok(sn.mounts(id, kind, &parents))
    }

    pub async fn commit(
        &self,
        ns: String,
        snapshotter: Option<&str>,
        name: String,
        key: String,
        labels: Labels,
    ) -> Result<()> {
        check_id("namespace", &ns)?;
        check_key(&name)?;
        check_labels(&format!("snapshot \"{name}\""), &labels)?;
        let sn = self.get(snapshotter)?;
        let now = store::now();
        self.store
            .write(move |tx| {
                store::snapshots::commit(tx, &ns, sn.name(), &name, &key, &labels, &now)
            })
            .await?;
        Ok(())
    }

    pub fn mounts(&self, ns: &str, snapshotter: Option<&str>, key: &str) -> Result<Vec<Mount>> {
        let sn = self.get(snapshotter)?;
        let row = self.row(ns, &sn, key)?;
        self.mounts_of(&sn, row.id, row.kind)
    }

    fn row(&self, ns: &str, sn: &Arc<dyn Snapshotter>, key: &str) -> Result<SnapshotRow> {
        check_id("namespace", ns)?;
        Ok(self
            .store
            .read(|c| store::snapshots::get(c, ns, sn.name(), key))?)
    }

    pub fn stat(&self, ns: &str, snapshotter: Option<&str>, key: &str) -> Result<SnapshotInfo> {
        let sn = self.get(snapshotter)?;
        check_id("namespace", ns)?;
        Ok(self
            .store
            .read(|c| store::snapshots::info(c, ns, sn.name(), key))?)
    }

    pub async fn usage(
        &self,
        ns: &str,
        snapshotter: Option<&str>,
        key: &str,
    ) -> Result<snapshot::Usage> {
        let sn = self.get(snapshotter)?;
        let row = self.row(ns, &sn, key)?;
        let dir = sn.fs_dir(row.id);
        tokio::task::spawn_blocking(move || snapshot::usage(&dir))
            .await
            .map_err(blocking_err)?
            .map_err(|e| Error::Internal(format!("usage of snapshot \"{}\": {e}", row.key)))
    }

    pub async fn list(
        &self,
        ns: &str,
        snapshotter: Option<&str>,
        filters: &[String],
    ) -> Result<Vec<SnapshotInfo>> {
        check_id("namespace", ns)?;
        let sn = self.get(snapshotter)?;
        let filter = filter::parse(filters)?;
        let (cond, args) = filter.to_sql(&snapshot_field)?;
        let (ns, name) = (ns.to_owned(), sn.name().to_owned());
        Ok(self
            .store
            .read_blocking(move |c| store::snapshots::list(c, &ns, &name, (&cond, args)))
            .await?)
    }

    pub async fn remove(&self, ns: String, snapshotter: Option<&str>, key: String) -> Result<()> {
        check_id("namespace", &ns)?;
        let sn = self.get(snapshotter)?;
        let name = sn.name();
        let id = self
            .store
            .write_reclaiming(move |tx| store::snapshots::remove(tx, &ns, name, &key))
            .await?;
        self.discard_dirs(&sn, vec![id]).await;
        Ok(())
    }

    /// Removes the directories of snapshots whose rows are gone. A failure only leaves
    /// garbage for `gc.run`; it is logged.
    pub async fn discard_dirs(&self, sn: &Arc<dyn Snapshotter>, ids: Vec<i64>) {
        let dirs: Vec<PathBuf> = ids.into_iter().map(|id| sn.dir(id)).collect();
        let done = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                if let Err(e) = snapshot::remove_dir(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing a snapshot directory");
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "removing snapshot directories");
        }
    }

    /// The directories whose union is the snapshot's tree, uppermost first.
    pub fn layers(&self, sn: &Arc<dyn Snapshotter>, id: i64) -> Result<Vec<PathBuf>> {
        let parents = self.store.read(|c| store::snapshots::ancestors(c, id))?;
        Ok(sn.layers(id, &parents))
    }
}

/// Snapshot keys are free-form in containerd, but berth names directories and events by
/// them: no empty keys, no control characters, bounded length.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 512 || key.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "snapshot key \"{}\" must be 1..=512 characters without control characters",
            key.escape_debug()
        )));
    }
    Ok(())
}
