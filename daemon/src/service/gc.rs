//! `gc.run`: removes snapshots and blobs that nothing references, by reference only.
//!
//! Roots: images (their target, followed through indexes and manifests to configs and
//! layers; a config's diff_ids give the chain ids of the image's snapshots in its
//! namespace), containers (their snapshot key), live leases (their resources) and
//! snapshots labelled `containerd.io/gc.root`. A kept snapshot keeps its ancestors.
//! Everything else goes, in one transaction; directories and blob files are removed
//! after it commits. Runs under the exclusive GC lock, so no import, prepare or
//! container creation is half-way while it decides.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::{json, Value};

use super::snapshots::Snapshots;
use super::{Error, Result};
use crate::content::ContentStore;
use crate::oci;
use crate::store::{self, snapshots::SnapshotRow, Store};

/// The label that makes a snapshot a root of its own (containerd's).
pub const GC_ROOT_LABEL: &str = "containerd.io/gc.root";

#[derive(Clone)]
pub struct Gc {
    store: Store,
    snapshots: Snapshots,
    content: ContentStore,
}

/// What a mark phase keeps.
#[derive(Default)]
struct Marks {
    content: HashSet<String>,
    /// (namespace, snapshotter or "" for any, key)
    snapshots: HashSet<(String, String, String)>,
}

impl Gc {
    pub fn new(store: Store, snapshots: Snapshots, content: ContentStore) -> Self {
        Gc {
            store,
            snapshots,
            content,
        }
    }

    pub async fn run(&self) -> Result<Value> {
        let started = Instant::now();
        let _gc = self.snapshots.gc_lock.write().await;
        let now = store::now();
        let n = now.clone();
        self.store
            .write_reclaiming(move |tx| store::leases::expire(tx, &n))
            .await?;
        let (targets, containers, leased, rows, contents) = self.store.read(|c| {
            let containers = store::containers::snapshot_refs(c)?;
            Ok((
                store::images::all_targets(c)?,
                containers,
                store::leases::live_resources(c, &now)?,
                store::snapshots::all(c)?,
                store::content::list(c)?,
            ))
        })?;

        let mut marks = Marks::default();
        let mut walk: Vec<(String, String)> = targets;
        for (ns, kind, resource) in &leased {
            if kind == "content" {
                walk.push((ns.clone(), resource.clone()));
            } else if let Some(sn) = kind.strip_prefix("snapshots/") {
                marks
                    .snapshots
                    .insert((ns.clone(), sn.to_owned(), resource.clone()));
            }
        }
        self.mark_content(walk, &mut marks);
        for (ns, sn, key) in containers {
            let sn = if sn.is_empty() {
                super::snapshots::DEFAULT_SNAPSHOTTER.to_owned()
            } else {
                sn
            };
            marks.snapshots.insert((ns, sn, key));
        }

        let keep = keep_snapshots(&rows, &marks);
        let mut doomed: Vec<SnapshotRow> = rows
            .iter()
            .filter(|r| !keep.contains(&r.id))
            .cloned()
            .collect();
        doomed.sort_by_key(|r| std::cmp::Reverse(r.id));
        let dead_blobs: Vec<String> = contents
            .into_iter()
            .map(|c| c.digest)
            .filter(|d| !marks.content.contains(d))
            .collect();
        let (snaps, blobs) = (doomed.clone(), dead_blobs.clone());
        self.store
            .write_reclaiming(move |tx| {
                for s in &snaps {
                    store::snapshots::remove_row(tx, s)?;
                }
                for d in &blobs {
                    store::content::delete(tx, schema::DEFAULT_NAMESPACE, d)?;
                }
                Ok(())
            })
            .await?;

        let mut by_sn: HashMap<String, Vec<i64>> = HashMap::new();
        for s in &doomed {
            by_sn.entry(s.snapshotter.clone()).or_default().push(s.id);
        }
        for sn in self.snapshots.all().cloned().collect::<Vec<_>>() {
            if let Some(ids) = by_sn.remove(sn.name()) {
                self.snapshots.discard_dirs(&sn, ids).await;
            }
        }
        self.sweep(&dead_blobs).await?;
        Ok(json!({
            "removed": { "snapshots": doomed.len(), "content": dead_blobs.len() },
            "duration_ms": started.elapsed().as_millis() as u64,
        }))
    }

    /// Marks blobs reachable from `(namespace, digest)` roots, and the chain ids their
    /// configs name as snapshots of that namespace.
    fn mark_content(&self, mut walk: Vec<(String, String)>, marks: &mut Marks) {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        while let Some((ns, digest)) = walk.pop() {
            if !seen.insert((ns.clone(), digest.clone())) {
                continue;
            }
            marks.content.insert(digest.clone());
            // Layers are large and never JSON; everything worth reading is small.
            let Ok(bytes) = self.content.read_small(&digest, oci::MAX_DOCUMENT) else {
                continue;
            };
            let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let digests = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|d| d["digest"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for d in digests(&doc["manifests"]) {
                walk.push((ns.clone(), d));
            }
            if let Some(d) = doc["config"]["digest"].as_str() {
                walk.push((ns.clone(), d.to_owned()));
            }
            for d in digests(&doc["layers"]) {
                marks.content.insert(d);
            }
            if let Some(ids) = doc["rootfs"]["diff_ids"].as_array() {
                let ids: Vec<String> = ids
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                for chain in oci::chain_ids(&ids) {
                    marks.snapshots.insert((ns.clone(), String::new(), chain));
                }
            }
        }
    }

    /// Removes blob files of deleted rows and files no row knows, and snapshot
    /// directories no row owns.
    async fn sweep(&self, dead: &[String]) -> Result<()> {
        let known: HashSet<String> = self
            .store
            .read(store::content::list)?
            .into_iter()
            .map(|c| c.digest)
            .collect();
        let rows = self.store.read(store::snapshots::all)?;
        let content = self.content.clone();
        let dead = dead.to_vec();
        let bases: Vec<(std::path::PathBuf, HashSet<i64>)> = self
            .snapshots
            .all()
            .map(|sn| {
                let ids = rows
                    .iter()
                    .filter(|r| r.snapshotter == sn.name())
                    .map(|r| r.id)
                    .collect();
                (sn.base().to_owned(), ids)
            })
            .collect();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for d in dead {
                content
                    .remove(&d)
                    .map_err(|e| Error::Internal(e.to_string()))?;
            }
            for d in content
                .files()
                .map_err(|e| Error::Internal(e.to_string()))?
            {
                if !known.contains(&d) {
                    content
                        .remove(&d)
                        .map_err(|e| Error::Internal(e.to_string()))?;
                }
            }
            for (base, ids) in bases {
                crate::snapshot::sweep(&base, &ids)
                    .map_err(|e| Error::Internal(format!("sweeping {}: {e}", base.display())))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("gc sweep: {e}")))?
    }
}

/// Ids of the snapshots to keep: marked ones, gc roots, and all their ancestors.
fn keep_snapshots(rows: &[SnapshotRow], marks: &Marks) -> HashSet<i64> {
    let by_id: HashMap<i64, &SnapshotRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mut keep = HashSet::new();
    for r in rows {
        let marked =
            marks
                .snapshots
                .contains(&(r.namespace.clone(), r.snapshotter.clone(), r.key.clone()))
                || marks
                    .snapshots
                    .contains(&(r.namespace.clone(), String::new(), r.key.clone()))
                || r.labels.contains_key(GC_ROOT_LABEL);
        if !marked {
            continue;
        }
        let mut at = Some(r.id);
        while let Some(id) = at {
            if !keep.insert(id) {
                break;
            }
            at = by_id.get(&id).and_then(|r| r.parent);
        }
    }
    keep
}
