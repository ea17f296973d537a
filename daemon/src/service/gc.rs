//! Garbage collection: `gc.run` removes snapshots and blobs that nothing references, by
//! reference only; the automatic collector ([`Gc::start`]) runs by itself at start-up and
//! after deletes.
//!
//! Roots: images (their target, followed through indexes and manifests to configs and
//! layers; a config's diff_ids give the chain ids of the image's snapshots in its
//! namespace), containers (their snapshot key), live leases (their resources) and
//! snapshots labelled `containerd.io/gc.root`. A kept snapshot keeps its ancestors.
//! Everything else goes, in one transaction; directories and blob files are removed
//! after it commits. Runs under the exclusive GC lock, so no import, prepare or
//! container creation is half-way while it decides.
//!
//! The automatic collector is woken by a [`GcTrigger`] (the store's commit hook pulls it on
//! deletes, `leases.delete` pulls it too), waits a moment so a burst of deletes makes one
//! run, and runs in the background, one run at a time. It removes unreferenced blobs and
//! what a crash left on disk (blob files and snapshot directories without a row), but no
//! snapshot rows: a snapshot made through the snapshots API is its client's until
//! `snapshots.remove` or an explicit `gc.run`. A directory that anything is mounted from or
//! on (a live task's rootfs) is never removed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use super::snapshots::Snapshots;
use super::{Error, Result};
use crate::content::ContentStore;
use crate::oci;
use crate::store::{self, snapshots::SnapshotRow, Store};

/// The label that makes a snapshot a root of its own (containerd's).
pub const GC_ROOT_LABEL: &str = "containerd.io/gc.root";

/// How long the automatic collector waits after being woken, so that a burst of deletes
/// makes one run.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Event topics after which the automatic collector runs: something may have lost its
/// last reference.
const TRIGGERING_TOPICS: &[&str] = &[
    "/containers/delete",
    "/images/delete",
    "/snapshot/remove",
    "/content/delete",
    "/namespaces/delete",
];

/// Wakes the automatic collector. Cheap to clone; pulling it never blocks, and pulls that
/// come while a run is pending or under way make one more run, not one each.
#[derive(Clone, Default)]
pub struct GcTrigger(Arc<Notify>);

impl GcTrigger {
    pub fn pull(&self) {
        self.0.notify_one();
    }

    /// Pulls the trigger if `events` (just committed) include a delete.
    pub fn on_commit(&self, events: &[schema::Event]) {
        if events
            .iter()
            .any(|e| TRIGGERING_TOPICS.contains(&e.topic.as_str()))
        {
            self.pull();
        }
    }
}

#[derive(Clone)]
pub struct Gc {
    store: Store,
    snapshots: Snapshots,
    content: ContentStore,
    trigger: GcTrigger,
    /// Whether the database passed its start-up checks ([`crate::preflight`]): until
    /// [`Gc::start`] says so, GC deletes nothing, since a database that lost its rows would
    /// call everything garbage.
    store_checked: Arc<AtomicBool>,
}

/// What a run may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `gc.run`: unreferenced snapshots and blobs, and leftovers on disk.
    Everything,
    /// The automatic collector: unreferenced blobs and leftovers on disk.
    ContentAndLeftovers,
}

/// What a mark phase keeps.
#[derive(Default)]
struct Marks {
    content: HashSet<String>,
    /// (namespace, snapshotter or "" for any, key)
    snapshots: HashSet<(String, String, String)>,
}

impl Gc {
    pub fn new(
        store: Store,
        snapshots: Snapshots,
        content: ContentStore,
        trigger: GcTrigger,
    ) -> Self {
        Gc {
            store,
            snapshots,
            content,
            trigger,
            store_checked: Arc::default(),
        }
    }

    /// Sweeps what a crash may have left, then starts the automatic collector on the
    /// current runtime; it lives as long as the runtime. Call it before serving: the first
    /// sweep then never races a client's requests. `store_checked`: whether the database
    /// passed its start-up checks; if not, neither this nor `gc.run` deletes anything.
    pub async fn start(&self, store_checked: bool) {
        self.store_checked.store(store_checked, Ordering::Release);
        if !store_checked {
            tracing::warn!("the database was not checked at start-up: gc deletes nothing");
            return;
        }
        self.collect_logged().await;
        let gc = self.clone();
        tokio::spawn(async move {
            loop {
                gc.trigger.0.notified().await;
                tokio::time::sleep(DEBOUNCE).await;
                if !gc.collect_logged().await {
                    return;
                }
            }
        });
    }

    /// One automatic run; false once the store is closed.
    async fn collect_logged(&self) -> bool {
        match self.collect(Scope::ContentAndLeftovers).await {
            Ok(r) if r.removed() => tracing::info!(
                content = r.content,
                blob_files = r.blob_files,
                snapshot_dirs = r.snapshot_dirs,
                "automatic gc removed garbage"
            ),
            Ok(_) => {}
            Err(Error::Unavailable(_)) => return false,
            Err(e) => tracing::warn!(error = %e, "automatic gc failed"),
        }
        true
    }

    /// `gc.run`.
    pub async fn run(&self) -> Result<schema::GcReport> {
        let started = Instant::now();
        let r = self.collect(Scope::Everything).await?;
        Ok(schema::GcReport {
            removed: schema::Removed {
                snapshots: r.snapshots as u64,
                content: r.content as u64,
            },
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn collect(&self, scope: Scope) -> Result<Removed> {
        if !self.store_checked.load(Ordering::Acquire) {
            return Err(Error::FailedPrecondition(
                "gc deletes nothing: the metadata database did not pass its integrity check \
                 at this start (it ran out of time); restart berthd to check it again"
                    .into(),
            ));
        }
        let gc_lock = self.snapshots.gc_lock.write().await;
        let now = store::now();
        let n = now.clone();
        self.store
            .write_reclaiming(move |tx| store::leases::expire(tx, &n))
            .await?;
        // The mark phase reads every row and walks manifests in the content store: on a
        // blocking thread of the reader pool.
        let this = self.clone();
        let (containers, rows, contents, mut marks) =
            crate::service::scan(&self.store, "gc", move || {
                let (targets, containers, leased, rows, contents) = this.store.read(|c| {
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
                this.mark_content(walk, &mut marks);
                Ok((containers, rows, contents, marks))
            })
            .await?;
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
            .filter(|r| scope == Scope::Everything && !keep.contains(&r.id))
            .cloned()
            .collect();
        doomed.sort_by_key(|r| std::cmp::Reverse(r.id));
        let dead_blobs: Vec<String> = contents
            .into_iter()
            .map(|c| c.digest)
            .filter(|d| !marks.content.contains(d))
            .collect();
        let (snaps, blobs) = (doomed.clone(), dead_blobs.clone());
        if !snaps.is_empty() || !blobs.is_empty() {
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
        }

        let mut by_sn: HashMap<String, Vec<i64>> = HashMap::new();
        for s in &doomed {
            by_sn.entry(s.snapshotter.clone()).or_default().push(s.id);
        }
        for sn in self.snapshots.all().cloned().collect::<Vec<_>>() {
            if let Some(ids) = by_sn.remove(sn.name()) {
                self.snapshots.discard_dirs(&sn, ids).await;
            }
        }
        let (blob_files, aside) = self.sweep(&dead_blobs).await?;
        // Orphan directories were moved aside under the lock; deleting them may take long,
        // needs no lock and no one waits for it (a crash midway leaves them to the next
        // start's sweep).
        drop(gc_lock);
        let snapshot_dirs = aside.len();
        if !aside.is_empty() {
            tokio::task::spawn_blocking(move || {
                for dir in aside {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing an orphan snapshot directory");
                    }
                }
            });
        }
        Ok(Removed {
            snapshots: doomed.len(),
            content: dead_blobs.len(),
            blob_files,
            snapshot_dirs,
        })
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

    /// Removes blob files of deleted rows and files no row knows (returns how many of the
    /// latter), and moves aside the snapshot directories no row owns and nothing is mounted
    /// from or on (returns where they went, for the caller to delete).
    async fn sweep(&self, dead: &[String]) -> Result<(usize, Vec<PathBuf>)> {
        let (contents, rows) = self
            .store
            .read_blocking(|c| Ok((store::content::list(c)?, store::snapshots::all(c)?)))
            .await?;
        let known: HashSet<String> = contents.into_iter().map(|c| c.digest).collect();
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
        tokio::task::spawn_blocking(move || -> Result<(usize, Vec<PathBuf>)> {
            let failed = |e: crate::content::ContentError| Error::failure("gc", &e);
            for d in dead {
                content.remove(&d).map_err(failed)?;
            }
            let mut orphans = 0;
            for d in content.files().map_err(failed)? {
                if !known.contains(&d) {
                    content.remove(&d).map_err(failed)?;
                    orphans += 1;
                }
            }
            let mounts = std::fs::read_to_string("/proc/self/mountinfo")
                .map_err(|e| Error::failure("gc: reading /proc/self/mountinfo", &e))?;
            let mut aside = Vec::new();
            for (base, ids) in bases {
                aside.extend(crate::snapshot::sweep(&base, &ids, &mounts).map_err(|e| {
                    Error::failure(format_args!("sweeping {}", base.display()), &e)
                })?);
            }
            Ok((orphans, aside))
        })
        .await
        .map_err(|e| Error::Internal(format!("gc sweep: {e}")))?
    }
}

/// What one run removed.
#[derive(Debug, Default)]
struct Removed {
    snapshots: usize,
    content: usize,
    /// Blob files without a row.
    blob_files: usize,
    /// Snapshot directories without a row.
    snapshot_dirs: usize,
}

impl Removed {
    fn removed(&self) -> bool {
        self.snapshots + self.content + self.blob_files + self.snapshot_dirs > 0
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
