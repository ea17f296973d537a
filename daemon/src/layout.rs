//! The directories berthd keeps under its root and state dirs, and their modes.
//!
//! Below them lie unpacked layers with their setuid binaries and device nodes, task rootfs
//! mounts, bundles holding each task's environment, FIFOs and logs. A path to any of that
//! which a local user can traverse hands them host root (containerd's CVE-2021-41103: layer
//! directories that were world-traversable). So:
//! - every directory berth keeps directly under root and state is 0700;
//! - root and state themselves are 0700, except one that leads to the socket, which is
//!   0710 root:`socket_group` (its members can reach the socket and list nothing), or 0711
//!   when no group is set and the socket sits below it (root alone may connect anyway);
//! - files berthd writes with secrets in them (the database, bundles' `config.json`) are
//!   0600 where they are written (see [`write_private`]).
//!
//! An installation made by an older berthd is tightened at start-up, each change logged
//! (once: the next start finds nothing to change). Root and state dirs that already held
//! files before berth used them (`--root /var/lib` by mistake) keep their mode, with a
//! warning: changing a directory berth does not own could lock others out of it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory of the layout berthd could not create or secure.
#[derive(Debug, thiserror::Error)]
#[error("preparing {path}: {source}")]
pub struct LayoutError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What berth keeps directly under its root dir.
pub const ROOT_DIRS: &[&str] = &["content", "snapshots", "logs", "uploads"];
/// What berth keeps directly under its state dir.
pub const STATE_DIRS: &[&str] = &["tasks", "runc", "cni", "netns"];
/// What the keeper makes under the state dir (0700), only tightened here: whether it exists
/// tells start-up whether anything outlived the last berthd.
const STATE_DIRS_TIGHTENED: &[&str] = &["keeper"];

/// Files in root or state that show the directory is berth's own.
const MARKERS: &[&str] = &["berthd.lock", "meta.db", "keeper", "tasks", "runc"];

/// Creates root and state if they are missing, with their modes, and nothing else: what
/// the root and state locks need before [`secure`] may change anything.
pub fn create(
    root: &Path,
    state: &Path,
    socket: &Path,
    gid: Option<u32>,
) -> Result<(), LayoutError> {
    for top in [root, state] {
        let (mode, _) = top_mode(top, socket, gid);
        if !top.exists() {
            if let Some(parent) = top.parent() {
                fs::create_dir_all(parent).map_err(|source| LayoutError {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            match mkdir(top, mode) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(LayoutError {
                        path: top.to_owned(),
                        source: e,
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The mode (and group) of root or state: 0700, unless the socket lies below it.
fn top_mode(top: &Path, socket: &Path, gid: Option<u32>) -> (u32, Option<u32>) {
    match (socket.starts_with(top), gid) {
        (true, Some(g)) => (0o710, Some(g)),
        (true, None) => (0o711, None),
        (false, _) => (0o700, None),
    }
}

/// Creates root, state and the directories berth keeps in them with their modes, and
/// tightens any that an older berthd left open. Called with the root and state locks
/// held, so a daemon that is refused changes nothing.
pub fn secure(
    root: &Path,
    state: &Path,
    socket: &Path,
    gid: Option<u32>,
) -> Result<(), LayoutError> {
    let at = |path: &Path| {
        let path = path.to_owned();
        move |source| LayoutError { path, source }
    };
    for (top, children) in [(root, ROOT_DIRS), (state, STATE_DIRS)] {
        let (mode, group) = top_mode(top, socket, gid);
        top_dir(top, mode, group).map_err(at(top))?;
        for name in children {
            let dir = top.join(name);
            private_dir(&dir).map_err(at(&dir))?;
        }
    }
    for name in STATE_DIRS_TIGHTENED {
        let dir = state.join(name);
        if dir.is_dir() {
            tighten(&dir, 0o700).map_err(at(&dir))?;
        }
    }
    Ok(())
}

/// Root or state: created with `mode`, or tightened to it when it is berth's own.
fn top_dir(path: &Path, mode: u32, gid: Option<u32>) -> io::Result<()> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            mkdir(path, mode)?;
        }
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", path.display()),
            ))
        }
        Ok(m) if !is_berths(path)? => {
            if m.mode() & 0o077 & !mode != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", m.mode() & 0o7777),
                    "this directory held files before berth used it, so berth leaves its mode; \
                     what berth keeps in it is 0700 all the same");
            }
            return Ok(());
        }
        Ok(_) => {}
    }
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, Some(0), Some(g))?;
    }
    tighten(path, mode)
}

/// A directory only root may enter: created 0700, or tightened to it.
pub fn private_dir(path: &Path) -> io::Result<()> {
    match mkdir(path, 0o700) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path, 0o700),
        Err(e) => Err(e),
    }
}

fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().mode(mode).create(path)?;
    // The umask may have taken bits the mode asked for (0711's execute bits).
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Sets `path`'s permission bits to `mode` if it grants anything more (or anything else to
/// group and others), logging the change.
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let now = fs::symlink_metadata(path)?.mode() & 0o7777;
    if now == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    tracing::info!(path = %path.display(), from = format!("{now:o}"), to = format!("{mode:o}"),
        "tightened the mode of a directory an older berthd left open");
    Ok(())
}

/// Whether `path` is empty or holds what only berth puts there.
fn is_berths(path: &Path) -> io::Result<bool> {
    if fs::read_dir(path)?.next().is_none() {
        return Ok(true);
    }
    Ok(MARKERS.iter().any(|m| path.join(m).exists()))
}

/// Writes `bytes` to a new or truncated file readable by root alone (0600, also when the
/// file existed with another mode): bundles carry the task's environment, secrets included.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// Makes each existing file of `paths` 0600 (the database and its WAL and shared-memory
/// files, which SQLite creates with the database file's mode).
pub fn restrict_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    for p in paths {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_file() && m.mode() & 0o7777 != 0o600 => {
                fs::set_permissions(p, fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").mode() & 0o7777
    }

    #[test]
    fn new_layout_is_root_only_but_the_socket_dir_is_traversable() {
        let t = tempfile::tempdir().expect("tmp");
        let (root, state) = (t.path().join("root"), t.path().join("state"));
        secure(&root, &state, &state.join("berthd.sock"), None).expect("secure");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&state), 0o711);
        for d in ROOT_DIRS {
            assert_eq!(mode(&root.join(d)), 0o700, "{d}");
        }
        for d in STATE_DIRS {
            assert_eq!(mode(&state.join(d)), 0o700, "{d}");
        }
    }

    #[test]
    fn an_old_open_layout_is_tightened() {
        let t = tempfile::tempdir().expect("tmp");
        let (root, state) = (t.path().join("root"), t.path().join("state"));
        for d in [root.join("snapshots"), state.join("tasks")] {
            fs::create_dir_all(&d).expect("mkdir");
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        fs::write(root.join("berthd.lock"), "").expect("lock");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o711)).expect("chmod");
        secure(&root, &state, Path::new("/elsewhere/s.sock"), Some(5)).expect("secure");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&root.join("snapshots")), 0o700);
        assert_eq!(mode(&state.join("tasks")), 0o700);
    }

    #[test]
    fn a_directory_that_is_not_berths_keeps_its_mode() {
        let t = tempfile::tempdir().expect("tmp");
        let shared = t.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::write(shared.join("someone-elses"), "x").expect("write");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).expect("chmod");
        let state = t.path().join("state");
        secure(&shared, &state, &state.join("s.sock"), Some(0)).expect("secure");
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&shared.join("content")), 0o700);
        assert_eq!(mode(&state), 0o710);
    }

    #[test]
    fn private_files_are_0600_even_when_they_existed() {
        let t = tempfile::tempdir().expect("tmp");
        let f = t.path().join("config.json");
        fs::write(&f, "old").expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&f, b"{}").expect("write");
        assert_eq!(mode(&f), 0o600);
        assert_eq!(fs::read(&f).expect("read"), b"{}");
        let db = t.path().join("meta.db-wal");
        fs::write(&db, "").expect("write");
        restrict_files([db.as_path(), t.path().join("missing").as_path()]).expect("restrict");
        assert_eq!(mode(&db), 0o600);
    }
}
