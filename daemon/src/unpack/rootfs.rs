//! Every filesystem call the unpacker makes, all relative to directory fds that were
//! resolved with `openat2(RESOLVE_IN_ROOT)`, so nothing outside the snapshot root is ever
//! named, followed, created, changed or removed.
//!
//! Directories are resolved like a chroot would: symlinks *inside* the snapshot are
//! followed (a layer may write `lib/x` through `lib -> usr/lib`), but an absolute or
//! `..`-climbing symlink stays clamped at the root. The final component of an entry is
//! never followed: it is created, unlinked or stat-ed with `*at` calls and `NOFOLLOW`.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// `(st_dev, st_ino)`: identifies what this layer created, whatever path it is reached by.
pub(super) type InodeKey = (u64, u64);

pub(super) fn inode_key(st: &FileStat) -> InodeKey {
    (st.st_dev, st.st_ino)
}

/// The snapshot directory, held open for the whole apply.
pub(super) struct SnapshotRoot {
    fd: OwnedFd,
}

impl SnapshotRoot {
    pub(super) fn open(root: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(root, DIR_FLAGS, Mode::empty())?;
        Ok(Self { fd })
    }

    /// Opens the directory at `rel` as if the root were `/`. Fails (never escapes) on a
    /// missing component, a non-directory, a symlink loop or a mount crossing.
    pub(super) fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let path: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new().flags(DIR_FLAGS).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        // The kernel asks for a retry when a concurrent rename could have raced the walk.
        let mut tries = 0;
        loop {
            match openat2(self.fd.as_fd(), path, how) {
                Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// Like [`Self::open_dir`], but creates missing directories (0755, root-owned, as
    /// containerd does) and reports each one to `created`. A component that exists but
    /// is not a directory, including a symlink whose target is missing, is an error.
    pub(super) fn ensure_dir(
        &self,
        rel: &Path,
        created: &mut dyn FnMut(&FileStat),
    ) -> io::Result<OwnedFd> {
        match self.open_dir(rel) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        let mut prefix = PathBuf::new();
        let mut dir = self.open_dir(&prefix)?;
        for part in rel.iter() {
            prefix.push(part);
            dir = match self.open_dir(&prefix) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    mkdirat(dir.as_fd(), part, Mode::from_bits_truncate(0o755))?;
                    let fd = openat(
                        dir.as_fd(),
                        part,
                        DIR_FLAGS | OFlag::O_NOFOLLOW,
                        Mode::empty(),
                    )?;
                    created(&nix::sys::stat::fstat(fd.as_fd())?);
                    fd
                }
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }
}

impl AsFd for SnapshotRoot {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `lstat` of `name` in `dir`; `None` when nothing is there.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileStat>> {
    match fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Removes `name` from `dir` and, if it is a directory, everything below it. Never
/// follows a symlink; iterative, so a hostile depth cannot overflow the stack, and it
/// holds one directory fd at a time (walking back up through `..` of real directories).
pub(super) fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return ignore_enoent(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir));
    }
    // Never into another mount (a bind mount of a host directory would otherwise be
    // emptied), never through a symlink.
    let descend = OpenHow::new().flags(DIR_FLAGS).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    let mut cur = openat2(dir, name, descend)?;
    // One frame per directory on the way down: its name in its parent and the
    // subdirectories still to remove in it.
    let mut frames: Vec<(OsString, Vec<OsString>)> =
        vec![(name.to_owned(), unlink_files_list_dirs(cur.as_fd())?)];
    while let Some((_, pending)) = frames.last_mut() {
        if let Some(child) = pending.pop() {
            match openat2(cur.as_fd(), child.as_os_str(), descend) {
                Ok(fd) => {
                    let subdirs = unlink_files_list_dirs(fd.as_fd())?;
                    cur = fd;
                    frames.push((child, subdirs));
                }
                Err(Errno::ENOENT) => {}
                Err(Errno::ENOTDIR | Errno::ELOOP) => ignore_enoent(unlinkat(
                    cur.as_fd(),
                    child.as_os_str(),
                    UnlinkatFlags::NoRemoveDir,
                ))?,
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let Some((done, _)) = frames.pop() else { break };
        if frames.is_empty() {
            drop(cur);
            return ignore_enoent(unlinkat(dir, done.as_os_str(), UnlinkatFlags::RemoveDir));
        }
        let up = openat(cur.as_fd(), "..", DIR_FLAGS, Mode::empty())?;
        ignore_enoent(unlinkat(
            up.as_fd(),
            done.as_os_str(),
            UnlinkatFlags::RemoveDir,
        ))?;
        cur = up;
    }
    Ok(())
}

/// Unlinks every non-directory in `dir` and returns the names of its subdirectories.
fn unlink_files_list_dirs(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut subdirs = Vec::new();
    for (name, st) in list(dir)? {
        if is_dir(&st) {
            subdirs.push(name);
        } else {
            ignore_enoent(unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir))?;
        }
    }
    Ok(subdirs)
}

/// The entries of `dir` (without `.` and `..`) with their `lstat`.
pub(super) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, FileStat)>> {
    let mut stream = Dir::openat(dir, ".", DIR_FLAGS, Mode::empty())?;
    let mut out = Vec::new();
    for entry in stream.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        // d_type is not filled in by every filesystem; lstat settles the type.
        if let Some(st) = lstat_at(dir, name)? {
            out.push((name.to_owned(), st));
        }
    }
    Ok(out)
}

fn ignore_enoent(r: nix::Result<()>) -> io::Result<()> {
    match r {
        Err(Errno::ENOENT) => Ok(()),
        other => other.map_err(io::Error::from),
    }
}

/// Sets an extended attribute on `name` in `dir` without following it. `fsetxattr`
/// cannot take an `O_PATH` fd and symlinks or devices cannot safely be opened otherwise,
/// so the call goes through `/proc/self/fd/<dir>/<name>`: the directory part is the
/// already-resolved fd and `lsetxattr` does not follow `name`.
pub(super) fn lsetxattr_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    key: &str,
    value: &[u8],
) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let key = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; `value` is a valid
    // slice of `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an extended attribute on an open file or directory.
pub(super) fn fsetxattr(fd: BorrowedFd<'_>, key: &str, value: &[u8]) -> io::Result<()> {
    let key = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fd` is open for the call, `key` is NUL-terminated, `value` is a valid
    // slice of `value.len()` bytes.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
