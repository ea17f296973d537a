//! Turns the raw name in a tar header into a path relative to the snapshot root.
//!
//! Policy (as containerd): absolute names are *contained* (`/etc/x` means `<root>/etc/x`);
//! `..` is resolved lexically and a name that climbs above the root is *rejected*, since
//! no well-formed layer has one. Symlinks are not looked at here: resolving the cleaned
//! path without leaving the root is [`super::rootfs`]'s job.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Cleans `raw`; `None` when it climbs above the root. An empty result is the root itself.
pub(super) fn clean(raw: &[u8]) -> Option<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.iter().map(|p| OsStr::from_bytes(p)).collect())
}

/// Splits a cleaned, non-empty path into its parent directory and final name.
pub(super) fn split(rel: &Path) -> (&Path, &OsStr) {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().unwrap_or(rel.as_os_str());
    (parent, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_dotted_names_are_contained() {
        assert_eq!(clean(b"/etc/passwd"), Some(PathBuf::from("etc/passwd")));
        assert_eq!(clean(b"./a//b/./c/"), Some(PathBuf::from("a/b/c")));
        assert_eq!(clean(b"a/../b"), Some(PathBuf::from("b")));
        assert_eq!(clean(b"/../x"), None);
        assert_eq!(clean(b"a/../../x"), None);
        assert_eq!(clean(b"./"), Some(PathBuf::new()));
    }

    #[test]
    fn split_gives_parent_and_name() {
        assert_eq!(
            split(Path::new("a/b/c")),
            (Path::new("a/b"), OsStr::new("c"))
        );
        assert_eq!(split(Path::new("c")), (Path::new(""), OsStr::new("c")));
    }
}
