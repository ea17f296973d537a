//! Applies one tar entry to the snapshot: whiteouts, replacement of what is there, the
//! creation itself and its metadata. Directory times are collected and set at the end,
//! once nothing more is written into those directories.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, FileStat, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;

use super::entry_path;
use super::meta::{read_meta, EntryMeta};
use super::rootfs::{self, InodeKey, SnapshotRoot};
use super::whiteout::{self, Whiteout};
use super::{UnpackError, WhiteoutMode};

/// Chunk in which file data is streamed from the layer to disk.
const COPY_CHUNK: usize = 128 * 1024;

pub(super) struct Applier {
    root: SnapshotRoot,
    mode: WhiteoutMode,
    /// Inodes created or updated by this layer; kept only in `Delete` mode, where an
    /// opaque marker must spare them.
    created: HashSet<InodeKey>,
    dir_times: Vec<(PathBuf, TimeSpec, TimeSpec)>,
    buf: Vec<u8>,
}

/// Maps a failed filesystem call to an error naming the entry.
fn fs_err<'a>(entry: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Fs {
        entry: entry.to_owned(),
        op,
        source,
    }
}

fn nix_err<'a>(entry: &'a str, op: &'static str) -> impl FnOnce(nix::Error) -> UnpackError + 'a {
    move |e| fs_err(entry, op)(e.into())
}

impl Applier {
    pub(super) fn new(root: SnapshotRoot, mode: WhiteoutMode) -> Self {
        Self {
            root,
            mode,
            created: HashSet::new(),
            dir_times: Vec::new(),
            buf: vec![0; COPY_CHUNK],
        }
    }

    fn record(created: &mut HashSet<InodeKey>, mode: WhiteoutMode, st: &FileStat) {
        if mode == WhiteoutMode::Delete {
            created.insert(rootfs::inode_key(st));
        }
    }

    fn ensure_parent(&mut self, parent: &Path, display: &str) -> Result<OwnedFd, UnpackError> {
        let (created, mode) = (&mut self.created, self.mode);
        self.root
            .ensure_dir(parent, &mut |st| Self::record(created, mode, st))
            .map_err(fs_err(
                display,
                "resolve its parent directory inside the snapshot",
            ))
    }

    /// Applies `entry` whose cleaned path is `rel` (not the root). The caller has checked
    /// the limits and drains whatever data this leaves unread.
    pub(super) fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        display: &str,
    ) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let (parent, name) = entry_path::split(rel);
        match whiteout::classify(name) {
            Whiteout::Plain => {}
            Whiteout::Meta => return Ok(()),
            Whiteout::Invalid => {
                return Err(UnpackError::BadWhiteout {
                    entry: display.to_owned(),
                })
            }
            Whiteout::Opaque => return self.opaque(parent, display),
            Whiteout::Remove(target) => {
                let meta = read_meta(entry, display)?;
                return self.remove(parent, &target, &meta, display);
            }
        }
        let meta = read_meta(entry, display)?;
        let dir = self.ensure_parent(parent, display)?;
        let dir = dir.as_fd();
        if let Some(st) = rootfs::lstat_at(dir, name).map_err(fs_err(display, "inspect it"))? {
            if !(rootfs::is_dir(&st) && kind == EntryType::Directory) {
                rootfs::remove_tree(dir, name)
                    .map_err(fs_err(display, "remove what it replaces"))?;
            }
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(entry, dir, name, &meta, display)
            }
            EntryType::Directory => self.make_dir(dir, name, rel, &meta, display),
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::BadHeader {
                        entry: display.to_owned(),
                        what: "symlink without a target".to_owned(),
                    })?;
                let target = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target);
                symlinkat(target, dir, name).map_err(nix_err(display, "create the symlink"))?;
                self.finish_node(dir, name, &meta, false, display)
            }
            EntryType::Link => self.hard_link(entry, dir, name, display),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (kind_flag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    other => {
                        let header = entry.header();
                        let num = |v: io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
                        let dev = makedev(
                            num(header.device_major()).into(),
                            num(header.device_minor()).into(),
                        );
                        let flag = if other == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, dev)
                    }
                };
                mknodat(dir, name, kind_flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(nix_err(display, "create the device node"))?;
                self.finish_node(dir, name, &meta, true, display)
            }
            other => Err(UnpackError::BadHeader {
                entry: display.to_owned(),
                what: format!("unsupported entry type {other:?}"),
            }),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), UnpackError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(nix_err(display, "create the file"))?;
        let mut file = File::from(fd);
        let declared = entry.size();
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::Read {
                        at: format!("in entry \"{display}\""),
                        source,
                    })
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(fs_err(display, "write the file"))?;
            written += n as u64;
        }
        if written < declared {
            return Err(UnpackError::Truncated {
                entry: display.to_owned(),
                declared,
                read: written,
            });
        }
        // Owner before mode (chown clears setuid), xattrs last (chown and writes drop
        // security.capability).
        let fd = file.as_fd();
        fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(nix_err(display, "set its owner"))?;
        fchmod(fd, Mode::from_bits_truncate(meta.mode))
            .map_err(nix_err(display, "set its mode"))?;
        for (key, value) in &meta.xattrs {
            xattr_result(rootfs::fsetxattr(fd, key, value), key, display)?;
        }
        Self::record(
            &mut self.created,
            self.mode,
            &fstat(fd).map_err(nix_err(display, "stat it"))?,
        );
        drop(file);
        utimensat(
            dir,
            name,
            &meta.atime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(nix_err(display, "set its times"))
    }

    fn make_dir(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), UnpackError> {
        match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(nix_err(display, "create the directory")(e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir, name, flags, Mode::empty())
            .map_err(nix_err(display, "open the directory"))?;
        fchown(
            fd.as_fd(),
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(nix_err(display, "set its owner"))?;
        fchmod(fd.as_fd(), Mode::from_bits_truncate(meta.mode))
            .map_err(nix_err(display, "set its mode"))?;
        for (key, value) in &meta.xattrs {
            xattr_result(rootfs::fsetxattr(fd.as_fd(), key, value), key, display)?;
        }
        Self::record(
            &mut self.created,
            self.mode,
            &fstat(fd.as_fd()).map_err(nix_err(display, "stat it"))?,
        );
        self.dir_times
            .push((rel.to_owned(), meta.atime, meta.mtime));
        Ok(())
    }

    /// Owner, mode (not for symlinks, whose mode Linux ignores), xattrs and times of a
    /// node that cannot be opened safely, all by name with `NOFOLLOW`.
    fn finish_node(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &EntryMeta,
        chmod: bool,
        display: &str,
    ) -> Result<(), UnpackError> {
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(nix_err(display, "set its owner"))?;
        if chmod {
            fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(nix_err(display, "set its mode"))?;
        }
        for (key, value) in &meta.xattrs {
            xattr_result(rootfs::lsetxattr_at(dir, name, key, value), key, display)?;
        }
        if let Some(st) = rootfs::lstat_at(dir, name).map_err(fs_err(display, "stat it"))? {
            Self::record(&mut self.created, self.mode, &st);
        }
        utimensat(
            dir,
            name,
            &meta.atime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(nix_err(display, "set its times"))
    }

    /// Hard links resolve their target like any entry path: inside the root, and never
    /// following the target's final component (a link to a symlink links the symlink).
    /// The link shares the target's inode, so it gets no metadata of its own.
    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        display: &str,
    ) -> Result<(), UnpackError> {
        let raw = entry.link_name_bytes().unwrap_or_default();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let target = match entry_path::clean(&raw) {
            Some(t) if !t.as_os_str().is_empty() => t,
            _ => {
                return Err(UnpackError::LinkBreakout {
                    entry: display.to_owned(),
                    target: shown,
                })
            }
        };
        let (tparent, tname) = entry_path::split(&target);
        let tdir = self
            .root
            .open_dir(tparent)
            .map_err(fs_err(display, "resolve the hard link target's directory"))?;
        linkat(tdir.as_fd(), tname, dir, name, AtFlags::empty())
            .map_err(nix_err(display, "create the hard link"))?;
        if let Some(st) = rootfs::lstat_at(dir, name).map_err(fs_err(display, "stat it"))? {
            Self::record(&mut self.created, self.mode, &st);
        }
        Ok(())
    }

    fn opaque(&mut self, parent: &Path, display: &str) -> Result<(), UnpackError> {
        let dir = self.ensure_parent(parent, display)?;
        match self.mode {
            WhiteoutMode::Overlay => rootfs::fsetxattr(dir.as_fd(), "trusted.overlay.opaque", b"y")
                .map_err(fs_err(display, "mark its directory opaque")),
            WhiteoutMode::Delete => whiteout::clear_opaque(dir.as_fd(), &self.created)
                .map_err(fs_err(display, "empty its directory of lower entries")),
        }
    }

    fn remove(
        &mut self,
        parent: &Path,
        target: &OsStr,
        meta: &EntryMeta,
        display: &str,
    ) -> Result<(), UnpackError> {
        match self.mode {
            WhiteoutMode::Overlay => {
                let dir = self.ensure_parent(parent, display)?;
                rootfs::remove_tree(dir.as_fd(), target)
                    .map_err(fs_err(display, "remove what its whiteout replaces"))?;
                whiteout::make_overlay_whiteout(dir.as_fd(), target)
                    .map_err(fs_err(display, "create the overlay whiteout device"))?;
                fchownat(
                    dir.as_fd(),
                    target,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(nix_err(display, "set the whiteout's owner"))
            }
            WhiteoutMode::Delete => {
                // A missing parent means there is nothing to delete.
                let dir = match self.root.open_dir(parent) {
                    Ok(dir) => dir,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                        return Ok(())
                    }
                    Err(e) => return Err(fs_err(display, "resolve its parent directory")(e)),
                };
                rootfs::remove_tree(dir.as_fd(), target)
                    .map_err(fs_err(display, "delete the whited-out entry"))
            }
        }
    }

    /// Sets the times of every directory the layer listed, now that their contents are
    /// written. A directory a later entry removed is skipped.
    pub(super) fn finish(self) -> Result<(), UnpackError> {
        for (rel, atime, mtime) in &self.dir_times {
            let display = rel.to_string_lossy();
            let (parent, name) = entry_path::split(rel);
            let dir = match self.root.open_dir(parent) {
                Ok(dir) => dir,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    continue
                }
                Err(e) => return Err(fs_err(&display, "resolve it to set its times")(e)),
            };
            match utimensat(
                dir.as_fd(),
                name,
                atime,
                mtime,
                UtimensatFlags::NoFollowSymlink,
            ) {
                Ok(()) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(nix_err(&display, "set its times")(e)),
            }
        }
        Ok(())
    }
}

/// Filesystems without xattr support, and xattrs a node type refuses (user.* on a
/// symlink), are skipped with a warning as containerd does; anything else is an error.
fn xattr_result(r: io::Result<()>, key: &str, entry: &str) -> Result<(), UnpackError> {
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {
            tracing::warn!(entry, xattr = key, error = %e, "xattr not applied");
            Ok(())
        }
        other => other.map_err(fs_err(entry, "set an extended attribute")),
    }
}
