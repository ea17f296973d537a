//! What berthd left on disk and in the OS, set against the rows in its SQLite file: runc
//! containers, mounts, cgroups, bundles, client FIFO dirs, snapshot directories, blobs and
//! ingest files with no row, and rows whose object is gone; networking through
//! [`super::netscan`]. Reads `meta.db` read-only
//! while the daemon runs (WAL lets a reader in); never writes anything of the daemon's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::daemon::TestDaemon;
use crate::mounts::mount_points_below;

/// The rows that own things on disk.
#[derive(Debug, Default)]
pub struct Rows {
    /// `(namespace, container id)` of every task (init process row).
    pub tasks: BTreeSet<(String, String)>,
    /// `(snapshotter, id)` of every snapshot.
    pub snapshots: BTreeSet<(String, i64)>,
    pub blobs: BTreeSet<String>,
}

fn open(db: &Path) -> Result<Connection> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", db.display()))
}

/// Reads the owning rows from `db`.
pub fn rows(db: &Path) -> Result<Rows> {
    let c = open(db)?;
    let mut rows = Rows::default();
    let mut q = c.prepare("SELECT namespace, container_id FROM processes WHERE exec_id = ''")?;
    for r in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        rows.tasks.insert(r?);
    }
    let mut q = c.prepare("SELECT snapshotter, id FROM snapshots")?;
    for r in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        rows.snapshots.insert(r?);
    }
    let mut q = c.prepare("SELECT digest FROM content")?;
    for r in q.query_map([], |r| r.get(0))? {
        rows.blobs.insert(r?);
    }
    Ok(rows)
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: the problems they report.
pub fn integrity(db: &Path) -> Result<Vec<String>> {
    let c = open(db)?;
    let mut out = Vec::new();
    let mut q = c.prepare("PRAGMA integrity_check")?;
    for r in q.query_map([], |r| r.get::<_, String>(0))? {
        let line = r?;
        if line != "ok" {
            out.push(format!("integrity_check: {line}"));
        }
    }
    let mut q = c.prepare("PRAGMA foreign_key_check")?;
    for r in q.query_map([], |r| {
        Ok(format!(
            "foreign_key_check: table {} rowid {:?} -> {}",
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?
        ))
    })? {
        out.push(r?);
    }
    Ok(out)
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Ids `runc --root ROOT list -q` reports.
fn runc_ids(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
        .context("running runc list")?;
    anyhow::ensure!(
        out.status.success(),
        "runc --root {} list: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Orphans by kind (see [`super::figures::ORPHAN_KINDS`]); `namespace` limits the cgroup
/// scan to the harness's own (other tests may share the host's cgroup tree).
pub fn scan(
    d: &TestDaemon,
    namespace: &str,
    fifo_dir: &Path,
) -> Result<BTreeMap<&'static str, Vec<String>>> {
    let rows = rows(&d.root().join("meta.db"))?;
    let mut found: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut add = |kind, what: String| found.entry(kind).or_default().push(what);
    let has_task = |ns: &str, id: &str| rows.tasks.contains(&(ns.to_owned(), id.to_owned()));

    let runc_root = d.state().join("runc");
    for ns in names(&runc_root) {
        for id in runc_ids(&runc_root.join(&ns))? {
            if !has_task(&ns, &id) {
                add("runc container", format!("{ns}/{id}"));
            }
        }
    }
    let tasks_dir = d.state().join("tasks");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
    for point in mount_points_below(&mountinfo, d.dir()) {
        let owner = point
            .strip_prefix(&tasks_dir)
            .ok()
            .map(|rel| rel.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>());
        let ok = matches!(owner.as_deref(), Some([ns, id, rootfs])
            if rootfs == "rootfs" && has_task(ns, id));
        if !ok {
            add("mount", point.display().to_string());
        }
    }
    for ns in names(&tasks_dir) {
        for id in names(&tasks_dir.join(&ns)) {
            if !has_task(&ns, &id) {
                add("bundle", format!("{ns}/{id}"));
            }
        }
    }
    for cg in cgroup_dirs(namespace) {
        let id = cg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !has_task(namespace, &id) {
            add("cgroup", cg.display().to_string());
        }
    }
    for name in names(fifo_dir) {
        add("fifo", fifo_dir.join(name).display().to_string());
    }

    let snaps = d.root().join("snapshots");
    for sn in names(&snaps) {
        let dir_ids: BTreeSet<String> = names(&snaps.join(&sn)).into_iter().collect();
        for name in &dir_ids {
            let owned = name
                .parse::<i64>()
                .is_ok_and(|id| rows.snapshots.contains(&(sn.clone(), id)));
            if !owned {
                add("snapshot dir", format!("{sn}/{name}"));
            }
        }
    }
    for (sn, id) in &rows.snapshots {
        if !snaps.join(sn).join(id.to_string()).is_dir() {
            add("snapshot row without dir", format!("{sn}/{id}"));
        }
    }
    let blobs = d.root().join("content/blobs/sha256");
    let files: BTreeSet<String> = names(&blobs)
        .into_iter()
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    for f in files.difference(&rows.blobs) {
        add("blob", f.clone());
    }
    for r in rows.blobs.difference(&files) {
        add("blob row without file", r.clone());
    }
    for name in names(&d.root().join("content/ingest")) {
        add("ingest file", name);
    }
    super::netscan::scan(d, &rows.tasks, &mut add)?;
    Ok(found)
}

/// Task cgroups of `namespace` in every hierarchy: `/sys/fs/cgroup/<controller>/berth/<ns>/*`
/// (v1, each controller directory once; symlinked aliases skipped) and the unified one.
fn cgroup_dirs(namespace: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots: Vec<PathBuf> = vec![base.to_path_buf()];
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            roots.push(entry.path());
        }
    }
    let mut out = Vec::new();
    for root in roots {
        let ns = root.join("berth").join(namespace);
        for entry in std::fs::read_dir(&ns).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Scans until nothing is found or `limit` passes (some leftovers are cleaned
/// asynchronously after a restart); returns the last scan. A failing scan is reported as
/// kind "scan error".
pub fn scan_until_clean(
    d: &TestDaemon,
    namespace: &str,
    fifo_dir: &Path,
    limit: Duration,
) -> BTreeMap<&'static str, Vec<String>> {
    let deadline = Instant::now() + limit;
    loop {
        let found = scan(d, namespace, fifo_dir)
            .unwrap_or_else(|e| BTreeMap::from([("scan error", vec![format!("{e:#}")])]));
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Removes the namespace's own (empty) cgroup directories `/sys/fs/cgroup/*/berth/<ns>`,
/// which runc leaves behind when it removes a task's; a non-empty one stays.
pub fn remove_namespace_cgroups(namespace: &str) {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    roots.extend(
        std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path()),
    );
    for root in roots {
        let _ = std::fs::remove_dir(root.join("berth").join(namespace));
    }
}

/// Kills and deletes every runc container under `state/runc/*`, so a failed run leaves no
/// process or cgroup behind. Errors are ignored: this runs on the way out.
pub fn kill_runc_leftovers(state: &Path) {
    let runc_root = state.join("runc");
    for ns in names(&runc_root) {
        let root = runc_root.join(&ns);
        for id in runc_ids(&root).unwrap_or_default() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", &id])
                .output();
        }
    }
}

/// Removes by force what cleanup through the API could not (everything here is already
/// counted): runc containers, iptables rules of dead tasks, mounts and bundles under the
/// state dir, the namespace's task cgroups, and client FIFO dirs. Errors are ignored; the
/// next scan reports what stays.
pub fn sweep(d: &TestDaemon, namespace: &str, fifo_dir: &Path) {
    kill_runc_leftovers(d.state());
    if let Ok(rows) = rows(&d.root().join("meta.db")) {
        super::netscan::remove_orphan_rules(d, &rows.tasks);
    }
    let tasks_dir = d.state().join("tasks");
    crate::mounts::unmount_below(&tasks_dir);
    for ns in names(&tasks_dir) {
        for id in names(&tasks_dir.join(&ns)) {
            let _ = std::fs::remove_dir_all(tasks_dir.join(&ns).join(id));
        }
    }
    for cg in cgroup_dirs(namespace) {
        let _ = std::fs::remove_dir(cg);
    }
    for name in names(fifo_dir) {
        let _ = std::fs::remove_dir_all(fifo_dir.join(name));
    }
}
