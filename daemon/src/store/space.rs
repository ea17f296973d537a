//! Room to delete on a full disk. SQLite needs free pages for the WAL even to delete rows,
//! so a full disk could make the very requests that free space fail. The store keeps a
//! preallocated file, `<root>/reserve`, and the writer gives its space back (truncates it)
//! just before a batch that frees space (deletes, `gc.run`) runs while the disk is nearly
//! full. While the reserve is given back, other writes may use at most half of its room
//! (small ones, such as a task's exit status, still land); below that they are refused
//! with a disk-full error, so the rest is kept for deletes. Once enough space is free
//! again the reserve is allocated anew.
//!
//! The two marks are apart so the reserve does not flap on a small disk (issue 31): it is
//! given back when less than half of it is free ([`Space::is_low`]) and taken back only
//! when twice its size is free, so at least its size is left after it is taken. A start-up
//! takes it by the same rule, so a restart on a nearly full disk does not allocate it only
//! to give it back at the first delete.
//!
//! It guards the metadata only: files written outside SQLite (blobs, layers) fail with
//! ENOSPC on their own and the services map that to `resource_exhausted`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::fcntl::{fallocate, FallocateFlags};

/// Size of the reserve file: room for the WAL of a large delete.
pub const RESERVE_BYTES: u64 = 8 << 20;

/// The reserve file and what the writer knows about the disk's space.
pub struct Space {
    dir: PathBuf,
    reserve: PathBuf,
    bytes: u64,
    released: AtomicBool,
    /// Held while the reserve is given back or taken: the writer releases it, and any
    /// thread asking [`Space::restore`] may take it back.
    turn: Mutex<()>,
}

impl Space {
    /// Allocates `<dir>/reserve` (`bytes` long) unless it is already whole. On a disk too
    /// full for it (less than twice its size free) the reserve starts released.
    pub fn open(dir: &Path, bytes: u64) -> Space {
        let space = Space {
            dir: dir.to_owned(),
            reserve: dir.join("reserve"),
            bytes,
            released: AtomicBool::new(true),
            turn: Mutex::new(()),
        };
        let whole = std::fs::metadata(&space.reserve).is_ok_and(|m| m.len() >= bytes);
        let allocated = if whole || space.has_room_to_restore() {
            space.allocate()
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        };
        match allocated {
            Ok(()) => space.released.store(false, Ordering::Relaxed),
            Err(e) => tracing::warn!(
                reserve = %space.reserve.display(),
                error = %e,
                "cannot allocate the disk-space reserve; writes other than deletes are refused \
                 until space is freed"
            ),
        }
        space
    }

    fn allocate(&self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.reserve)?;
        if file.metadata()?.len() >= self.bytes {
            return Ok(());
        }
        let len = i64::try_from(self.bytes).map_err(io::Error::other)?;
        let done = fallocate(&file, FallocateFlags::empty(), 0, len);
        match done {
            Ok(()) => {}
            // Filesystems without fallocate: write the bytes out.
            Err(nix::errno::Errno::EOPNOTSUPP) => fill(&file, self.bytes)?,
            Err(e) => {
                let _ = file.set_len(0);
                return Err(e.into());
            }
        }
        file.sync_all()
    }

    /// Bytes available to the daemon on the disk holding the database, if known.
    pub fn available(&self) -> Option<u64> {
        let st = nix::sys::statvfs::statvfs(&self.dir).ok()?;
        Some(st.blocks_available().saturating_mul(st.fragment_size()))
    }

    /// Whether the disk is so full that a delete may not find room for its WAL: less than
    /// half of the reserve's size is free.
    pub fn is_low(&self) -> bool {
        self.available().is_some_and(|free| free < self.bytes / 2)
    }

    /// Whether the reserve may be taken (back): twice its size is free, so its size is
    /// left after it is taken, well above [`Space::is_low`].
    fn has_room_to_restore(&self) -> bool {
        self.available()
            .is_some_and(|free| free >= self.bytes.saturating_mul(2))
    }

    /// Whether writes that do not free space must wait: the reserve is given back and less
    /// than half of its room is left.
    pub fn keep_for_deletes(&self) -> bool {
        self.is_released() && self.available().is_none_or(|free| free < self.bytes / 2)
    }

    /// Whether the reserve has been given back (the disk is full).
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Relaxed)
    }

    /// Gives the reserve's space back to the filesystem.
    pub fn release(&self) {
        let _turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        if self.released.swap(true, Ordering::Relaxed) {
            return;
        }
        let done = OpenOptions::new()
            .write(true)
            .open(&self.reserve)
            .and_then(|f| f.set_len(0));
        match done {
            Ok(()) => tracing::warn!(
                reserve = %self.reserve.display(),
                "the disk is full: released the space reserve; only deletes and gc run until \
                 space is freed"
            ),
            Err(e) => tracing::error!(reserve = %self.reserve.display(), error = %e,
                "releasing the space reserve failed"),
        }
    }

    /// Takes the reserve back when the disk has room for it and a margin as large again;
    /// returns whether it is held. Cheap when it is held (one atomic load) or the disk is
    /// still full (one `statvfs`), so callers may ask before every write that needs room.
    pub fn restore(&self) -> bool {
        if !self.is_released() {
            return true;
        }
        let _turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_released() {
            return true;
        }
        if !self.has_room_to_restore() {
            return false;
        }
        match self.allocate() {
            Ok(()) => {
                self.released.store(false, Ordering::Relaxed);
                tracing::info!(reserve = %self.reserve.display(), "space is free again: took the space reserve back");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-allocating the space reserve failed");
                false
            }
        }
    }
}

fn fill(file: &File, bytes: u64) -> io::Result<()> {
    use std::io::Write;
    let chunk = vec![0u8; 1 << 16];
    let mut w = file;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_allocated_released_and_taken_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let space = Space::open(dir.path(), 1 << 20);
        let len = || {
            std::fs::metadata(dir.path().join("reserve"))
                .expect("stat")
                .len()
        };
        assert!(!space.is_released());
        assert_eq!(len(), 1 << 20);
        space.release();
        assert!(space.is_released());
        assert_eq!(len(), 0);
        assert!(space.restore(), "the temp dir has room");
        assert_eq!(len(), 1 << 20);
    }
}
