//! AUFS-style whiteout names in a layer and what they do to the snapshot.
//!
//! `.wh.<name>` hides `<name>` from lower layers; `.wh..wh..opq` hides every lower entry
//! of its directory; other `.wh..wh.*` names are AUFS bookkeeping and are skipped.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::rootfs::{self, InodeKey};

const PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What a final path component means as a whiteout.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Whiteout {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the directory hides all lower entries.
    Opaque,
    /// Another `.wh..wh.` name: skipped.
    Meta,
    /// `.wh.<name>`: `<name>` is deleted.
    Remove(OsString),
    /// `.wh.`, `.wh..` or `.wh...`: no usable target.
    Invalid,
}

pub(super) fn classify(name: &OsStr) -> Whiteout {
    let bytes = name.as_bytes();
    if bytes == OPAQUE {
        Whiteout::Opaque
    } else if bytes.starts_with(META_PREFIX) {
        Whiteout::Meta
    } else if let Some(target) = bytes.strip_prefix(PREFIX) {
        match target {
            b"" | b"." | b".." => Whiteout::Invalid,
            t => Whiteout::Remove(OsStr::from_bytes(t).to_owned()),
        }
    } else {
        Whiteout::Plain
    }
}

/// Empties `dir` of everything this layer did not create. `keep` holds the inodes the
/// layer has created or updated so far, so an opaque marker that comes after entries of
/// its own directory in the tar does not delete them. Kept directories are searched too:
/// a lower entry below them is hidden by the opaque directory as well.
pub(super) fn clear_opaque(dir: BorrowedFd<'_>, keep: &HashSet<InodeKey>) -> io::Result<()> {
    // Paths relative to `dir`, each a real directory created by this layer; re-opened
    // beneath `dir` without following anything, so no fd pile-up and no recursion.
    let mut todo = vec![PathBuf::from(".")];
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    while let Some(rel) = todo.pop() {
        let fd = openat2(dir, &rel, how)?;
        for (name, st) in rootfs::list(fd.as_fd())? {
            if !keep.contains(&rootfs::inode_key(&st)) {
                rootfs::remove_tree(fd.as_fd(), &name)?;
            } else if rootfs::is_dir(&st) {
                todo.push(rel.join(&name));
            }
        }
    }
    Ok(())
}

/// Overlayfs's whiteout: a character device 0/0 where the hidden entry was.
pub(super) fn make_overlay_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    nix::sys::stat::mknodat(dir, name, nix::sys::stat::SFlag::S_IFCHR, Mode::empty(), 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert_eq!(classify(OsStr::new("a")), Whiteout::Plain);
        assert_eq!(classify(OsStr::new(".wh..wh..opq")), Whiteout::Opaque);
        assert_eq!(classify(OsStr::new(".wh..wh.plnk")), Whiteout::Meta);
        assert_eq!(
            classify(OsStr::new(".wh.foo")),
            Whiteout::Remove("foo".into())
        );
        assert_eq!(classify(OsStr::new(".wh...")), Whiteout::Invalid);
        assert_eq!(classify(OsStr::new(".wh.")), Whiteout::Invalid);
    }
}
