//! Disk usage of a snapshot's own directory, as containerd's `Usage`: bytes allocated and
//! inodes, each hard-linked inode counted once. Never follows symlinks.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use schema::Usage;

/// Walks `dir` (blocking).
pub fn usage(dir: &Path) -> io::Result<Usage> {
    let mut seen = HashSet::new();
    let mut total = Usage::default();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        if seen.insert((meta.dev(), meta.ino())) {
            total.inodes += 1;
            total.size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(total)
}
