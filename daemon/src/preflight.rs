//! What berthd checks before it opens its database for writing, so that an operator's slip
//! (an emptied or deleted `meta.db`, a damaged one) never becomes start-up GC deleting every
//! image and snapshot the database used to name.
//!
//! The database is the only record of what the blobs and snapshot directories under the
//! root belong to; GC deletes what it does not name. So berthd refuses to start on a
//! missing, empty or schemaless database when the root holds blobs or snapshot directories,
//! and on a database that fails `PRAGMA quick_check`; a refused start modifies nothing.
//! `--reset-store` is the one way to an empty store on a used root. Reads the root's
//! layout; touches no file unless `--reset-store` was given.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::store::check::{self, Health};

/// How long start-up lets `quick_check` run. Far above what a large store needs (0.53-0.57 s
/// for 100,000 containers, a 421 MB database, warm cache: `scripts/bench-quick-check.sh`),
/// yet a start on a dying disk still ends.
pub const CHECK_BOUND: Duration = Duration::from_secs(30);

/// Why berthd will not start on this root's database.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The database is gone or empty but the root holds what only it can name.
    #[error(
        "{db} is {how}, but {root} holds {blobs} content blob(s) and {dirs} snapshot \
         director(y/ies) that only that database names: starting would take them all for \
         garbage and delete them, so berthd refuses. If the database was moved, deleted or \
         emptied by mistake, put it back (with its -wal file, if there is one) and start \
         again. To start over with an empty store instead (the garbage collector then \
         deletes those blobs and directories), start berthd once with --reset-store"
    )]
    Orphaned {
        db: String,
        how: &'static str,
        root: String,
        blobs: usize,
        dirs: usize,
    },
    /// SQLite refused the file or `quick_check` found damage.
    #[error(
        "{db} failed its integrity check (PRAGMA quick_check): {report}. berthd has not \
         modified it. Keep a copy first (cp -a {db}* to a safe place), then either restore \
         it from a backup, or salvage what is readable (sqlite3 {db} .recover | sqlite3 \
         {db}.recovered, then move {db}.recovered to {db} and remove {db}-wal), or start \
         over with --reset-store (the damaged file is set aside as {db}.reset-<time>, and \
         the images and snapshots it named are deleted)"
    )]
    Corrupt { db: String, report: String },
    /// `--reset-store` on a database that is not known to need it.
    #[error(
        "--reset-store refused: {db} {why}, so there is nothing to start over from. Start \
         without --reset-store; to discard a sound store on purpose, stop berthd, move {db} \
         away, then start with --reset-store"
    )]
    ResetRefused { db: String, why: &'static str },
    /// The root or the database could not be read, or set aside.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks the database at `db` of `root` and decides whether berthd may open it; with
/// `reset`, sets a missing, empty or damaged one aside so that it starts empty. Returns
/// whether the database passed its checks, which GC requires before it deletes anything
/// (false only when the check ran out of time: berthd then serves, GC deletes nothing).
pub fn check(root: &Path, db: &Path, reset: bool) -> Result<bool, PreflightError> {
    let started = Instant::now();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PreflightError::Io { path, source }
    };
    let health = check::inspect(db, CHECK_BOUND).map_err(io(db))?;
    tracing::info!(db = %db.display(), ?health, took_ms = started.elapsed().as_millis() as u64,
        "database checked");
    match (health, reset) {
        (Health::Sound, false) => Ok(true),
        (Health::Unchecked, false) => {
            tracing::warn!(db = %db.display(), bound_secs = CHECK_BOUND.as_secs(),
                "the database's integrity check did not finish in time; serving, but \
                 garbage collection deletes nothing until a restart whose check passes");
            Ok(false)
        }
        (Health::Blank(how), false) => {
            let (blobs, dirs) = content_on(root).map_err(io(root))?;
            if blobs + dirs == 0 {
                return Ok(true);
            }
            Err(PreflightError::Orphaned {
                db: db.display().to_string(),
                how,
                root: root.display().to_string(),
                blobs,
                dirs,
            })
        }
        (Health::Corrupt(report), false) => Err(PreflightError::Corrupt {
            db: db.display().to_string(),
            report,
        }),
        (Health::Sound, true) => Err(PreflightError::ResetRefused {
            db: db.display().to_string(),
            why: "passed its checks",
        }),
        (Health::Unchecked, true) => Err(PreflightError::ResetRefused {
            db: db.display().to_string(),
            why: "could not be checked in time and may be sound",
        }),
        (Health::Blank(_) | Health::Corrupt(_), true) => {
            let (blobs, dirs) = content_on(root).map_err(io(root))?;
            let aside = set_aside(db)?;
            tracing::warn!(db = %db.display(), set_aside = ?aside, blobs, snapshot_dirs = dirs,
                "--reset-store: starting over with an empty database; garbage collection \
                 deletes the blobs and snapshot directories it no longer names");
            Ok(true)
        }
    }
}

/// How many blob files and snapshot directories `root` holds.
fn content_on(root: &Path) -> std::io::Result<(usize, usize)> {
    let blobs = entries(&root.join("content/blobs/sha256"))?.len();
    let mut dirs = 0;
    for snapshotter in entries(&root.join("snapshots"))? {
        if snapshotter.is_dir() {
            dirs += entries(&snapshotter)?.len();
        }
    }
    Ok((blobs, dirs))
}

/// The entries of `dir`; none if it does not exist.
fn entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
        Ok(rd) => rd.map(|e| e.map(|e| e.path())).collect(),
    }
}

/// Renames the database and its -wal and -shm files to `<db>.reset-<unix time>[-wal|-shm]`
/// (kept for whoever wants to salvage them); returns what it renamed.
fn set_aside(db: &Path) -> Result<Vec<PathBuf>, PreflightError> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut moved = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        let to = PathBuf::from(format!("{}.reset-{secs}{suffix}", db.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => moved.push(to),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PreflightError::Io { path: from, source }),
        }
    }
    Ok(moved)
}
