//! Snapshotters: the on-disk side of snapshots. Each keeps its snapshots under
//! `<root>/snapshots/<name>/<id>` (`id` = the snapshot's row in SQLite) and knows how to
//! create one on top of its parents and which mounts present it. They own nothing else:
//! which snapshots exist, their keys and parents is the metadata store's business.
//!
//! A new snapshot's directory is made under a staging name (`new-…`) and renamed to its id
//! inside the transaction that records it, so a row never exists without its directory;
//! a directory without a row is garbage that the collector sweeps.

mod etc;
mod native;
mod overlay;
mod usage;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use schema::Mount;

use crate::unpack::WhiteoutMode;

pub use etc::read_in_layers;
pub use native::Native;
pub use overlay::Overlay;
pub use usage::{usage, Usage};

/// What a snapshot is for, as containerd's `snapshots.Kind`. Stored as its `as_str` name;
/// the table's CHECK constraint admits only these names and a trigger (migration 0005)
/// refuses every change of kind but [`Kind::can_become`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Writable; can be committed.
    Active,
    /// Read-only view of its parent.
    View,
    /// Immutable; can be a parent.
    Committed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }

    /// The kind a stored name stands for; `None` for a name no kind has.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "active" => Some(Kind::Active),
            "view" => Some(Kind::View),
            "committed" => Some(Kind::Committed),
            _ => None,
        }
    }

    /// Whether a snapshot of this kind may turn into `next`: only an active snapshot
    /// changes, by being committed.
    pub fn can_become(self, next: Kind) -> bool {
        matches!((self, next), (Kind::Active, Kind::Committed))
    }

    /// Only committed snapshots are immutable, so only they can be parents.
    pub fn can_be_parent(self) -> bool {
        self == Kind::Committed
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshotter's directory layout and mount logic.
pub trait Snapshotter: Send + Sync {
    /// The name clients select it by (`overlayfs`, `native`).
    fn name(&self) -> &'static str;
    /// `<root>/snapshots/<name>`.
    fn base(&self) -> &Path;
    /// How a layer's whiteouts are written into one of its snapshots.
    fn whiteouts(&self) -> WhiteoutMode;
    /// Fills the staging directory `dir` for a snapshot whose ancestors (nearest first)
    /// are `parents`. Blocking.
    fn create(&self, dir: &Path, parents: &[i64]) -> io::Result<()>;
    /// The mounts that present snapshot `id` of `kind` with ancestors `parents`.
    fn mounts(&self, id: i64, kind: Kind, parents: &[i64]) -> Vec<Mount>;
    /// The directories whose union is the snapshot's tree, uppermost first.
    fn layers(&self, id: i64, parents: &[i64]) -> Vec<PathBuf>;

    /// The snapshot's own directory of files (a layer is applied here).
    fn fs_dir(&self, id: i64) -> PathBuf {
        self.dir(id).join("fs")
    }

    fn dir(&self, id: i64) -> PathBuf {
        self.base().join(id.to_string())
    }
}

static NEXT_STAGING: AtomicU64 = AtomicU64::new(0);

/// A fresh staging directory name under `base`.
pub fn staging_dir(base: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    base.join(format!(
        "new-{}-{}-{nanos}",
        std::process::id(),
        NEXT_STAGING.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Moves a staged directory to its id. A stale directory of that name (left by a
/// transaction that failed after its rename) is moved aside first.
pub fn install(staging: &Path, target: &Path) -> io::Result<()> {
    if target.exists() {
        let aside = target.with_file_name(format!(
            "rm-stale-{}",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = fs::remove_dir_all(&aside);
        fs::rename(target, &aside)?;
    }
    fs::rename(staging, target)
}

/// Removes a snapshot directory: renamed aside first so a crash midway leaves only an
/// `rm-` directory, never a half-deleted `<id>`. Blocking.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let aside = dir.with_file_name(format!(
        "rm-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    // A gc sweep may move either aside meanwhile (removals run in the background since
    // issue 11): what it took, it deletes.
    let gone = |r: io::Result<()>| match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    gone(fs::rename(dir, &aside))?;
    gone(fs::remove_dir_all(&aside))
}

/// Prefix of orphan directories moved aside by [`sweep`], followed by the pid.
const TRASH: &str = "gc-trash-";

/// Moves aside the entries under `base` that belong to no snapshot in `ids` (staging,
/// removal and orphan directories) and returns where they went, for the caller to delete
/// without holding the GC lock. An entry that `mountinfo` (`/proc/self/mountinfo`) shows
/// mounted from or on is left alone: a live task's rootfs may still use it. Only call
/// this while no snapshot is being created (the GC lock).
pub fn sweep(
    base: &Path,
    ids: &std::collections::HashSet<i64>,
    mountinfo: &str,
) -> io::Result<Vec<PathBuf>> {
    static NEXT_TRASH: AtomicU64 = AtomicU64::new(0);
    let ours = format!("{TRASH}{}-", std::process::id());
    let mut aside = Vec::new();
    let entries = match fs::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(aside),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = name.parse::<i64>().is_ok_and(|id| ids.contains(&id));
        // Being deleted by this process already.
        if keep || name.starts_with(&ours) {
            continue;
        }
        let path = entry.path();
        if is_mounted(&path, mountinfo) {
            tracing::warn!(dir = %path.display(), "an orphan snapshot directory is in use by a mount; left in place");
            continue;
        }
        let to = base.join(format!(
            "{ours}{}",
            NEXT_TRASH.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::rename(&path, &to) {
            Ok(()) => aside.push(to),
            // Removed meanwhile (a delete's background removal).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(aside)
}

/// Whether any mount in `mountinfo` has its mount point, its root or a path in its options
/// (overlay's lowerdir/upperdir/workdir) at or below `dir`.
pub fn is_mounted(dir: &Path, mountinfo: &str) -> bool {
    let dir = dir.to_string_lossy();
    let below = format!("{dir}/");
    mountinfo.lines().any(|line| {
        line.split([' ', ',', ':', '='])
            .map(|field| field.replace("\\040", " ").replace("\\134", "\\"))
            .any(|path| path == dir || path.starts_with(&below))
    })
}

#[cfg(test)]
mod kind_tests {
    use super::Kind;

    #[test]
    fn a_directory_behind_a_mount_counts_as_mounted() {
        let info = "36 35 0:31 / /run/state/t1/rootfs rw - overlay overlay rw,\
                    lowerdir=/r/snapshots/overlayfs/7/fs:/r/snapshots/overlayfs/3/fs,\
                    upperdir=/r/snapshots/overlayfs/9/fs,workdir=/r/snapshots/overlayfs/9/work\n\
                    40 35 8:1 /r/snapshots/native/12/fs /run/b rw - ext4 /dev/sda1 rw\n";
        let at = |p: &str| super::is_mounted(std::path::Path::new(p), info);
        assert!(at("/r/snapshots/overlayfs/7"));
        assert!(at("/r/snapshots/overlayfs/9"));
        assert!(at("/r/snapshots/native/12"));
        assert!(at("/run/state/t1"), "a mount point below it");
        assert!(!at("/r/snapshots/overlayfs/1"));
        assert!(!at("/r/snapshots/overlayfs/70"), "a prefix is not a parent");
    }

    #[test]
    fn only_active_becomes_committed_and_only_committed_is_a_parent() {
        let all = [Kind::Active, Kind::View, Kind::Committed];
        for from in all {
            assert_eq!(Kind::parse(from.as_str()), Some(from));
            assert_eq!(from.can_be_parent(), from == Kind::Committed);
            for to in all {
                let allowed = from == Kind::Active && to == Kind::Committed;
                assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            }
        }
        assert_eq!(Kind::parse("bogus"), None);
    }
}
