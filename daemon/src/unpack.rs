//! Applies one OCI image layer (tar, tar+gzip or tar+zstd) onto a snapshot directory.
//!
//! Owns: reading the layer stream (decompression, diff_id, byte and entry limits) and
//! every change the layer makes below the snapshot root. Must not touch anything outside
//! that root: every path is resolved with `openat2(RESOLVE_IN_ROOT)` and every final
//! component is handled with `*at` calls that never follow it. Blocking code: async
//! callers run it in `spawn_blocking`.
//!
//! Path policy: absolute entry names are contained (`/x` is `<root>/x`); names whose `..`
//! climb above the root are rejected with [`UnpackError::Breakout`], and so are hard
//! links whose target does. Symlink targets are stored verbatim and never followed out:
//! a parent reached through an absolute symlink resolves inside the root, and one that
//! does not exist there is an error rather than a directory created at the link's target.
//! The root entry (`./`) itself is skipped, as containerd does.

mod apply;
mod entry_path;
mod error;
mod meta;
mod rootfs;
mod stream;
mod whiteout;

#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::path::Path;

pub use error::UnpackError;
pub use stream::Compression;

use stream::{Meter, MeteredReader};

/// Most bytes of tar metadata (headers, PAX records, GNU long names, sparse maps) read
/// in front of one entry. Go's archive/tar caps such records at 1 MiB as well.
const METADATA_LIMIT: u64 = 4 << 20;

/// How whiteout entries are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The snapshot is an overlayfs upper dir: `.wh.x` becomes a 0/0 char device `x` and
    /// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
    Overlay,
    /// The snapshot already holds the lower layers (a flat copy): whiteouts delete.
    Delete,
}

/// Bounds on what one layer may unpack, so a hostile or broken blob fails cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes: the whole tar stream, and separately the file contents
    /// written (which differ for sparse files).
    pub max_bytes: u64,
    /// Tar entries, counting every header that names a file (extension headers excluded).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLayer {
    /// `sha256:<hex>` of the uncompressed tar stream; callers compare it with the
    /// image config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// Tar entries read.
    pub entries: u64,
    /// Uncompressed bytes read (the whole tar stream).
    pub bytes: u64,
}

/// Applies a layer whose compression is recognised from its first bytes.
pub fn apply_layer(
    layer: impl Read,
    root: &Path,
    whiteouts: WhiteoutMode,
    limits: &Limits,
) -> Result<AppliedLayer, UnpackError> {
    apply(layer, None, root, whiteouts, limits)
}

/// Applies a layer whose compression the caller knows, e.g. from
/// [`Compression::from_media_type`] on the manifest's layer descriptor.
pub fn apply_layer_compressed(
    layer: impl Read,
    compression: Compression,
    root: &Path,
    whiteouts: WhiteoutMode,
    limits: &Limits,
) -> Result<AppliedLayer, UnpackError> {
    apply(layer, Some(compression), root, whiteouts, limits)
}

fn apply(
    layer: impl Read,
    compression: Option<Compression>,
    root: &Path,
    whiteouts: WhiteoutMode,
    limits: &Limits,
) -> Result<AppliedLayer, UnpackError> {
    let snapshot = rootfs::SnapshotRoot::open(root).map_err(|source| UnpackError::OpenRoot {
        root: root.to_owned(),
        source,
    })?;
    let meter = Meter::new(limits.max_bytes);
    let reader = MeteredReader::new(stream::decompress(layer, compression)?, meter.clone());
    let mut archive = tar::Archive::new(reader);
    let mut applier = apply::Applier::new(snapshot, whiteouts);
    let mut count = 0u64;
    // The last entry seen, to say where a stream-level failure happened.
    let mut last = String::new();
    let at = |last: &str| {
        if last.is_empty() {
            "at the first entry".to_owned()
        } else {
            format!("after entry \"{last}\"")
        }
    };
    let stream_err = |source: io::Error, last: &str, window: bool| {
        if meter.tripped() && window {
            UnpackError::MetadataTooLarge {
                at: at(last),
                limit: METADATA_LIMIT,
            }
        } else if meter.tripped() {
            UnpackError::StreamTooLarge {
                at: at(last),
                limit: limits.max_bytes,
            }
        } else {
            UnpackError::Read {
                at: at(last),
                source,
            }
        }
    };
    let mut entries = archive.entries().map_err(|e| stream_err(e, "", false))?;
    let mut content = 0u64;
    loop {
        let window = meter.consumed().saturating_add(METADATA_LIMIT);
        meter.set_ceiling(window.min(limits.max_bytes));
        let next = entries.next();
        meter.set_ceiling(limits.max_bytes);
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(stream_err(e, &last, window < limits.max_bytes)),
        };
        let raw = entry.path_bytes().into_owned();
        last = String::from_utf8_lossy(&raw).into_owned();
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                entry: last,
                limit: limits.max_entries,
            });
        }
        let size = entry.size();
        content = content.saturating_add(size);
        if meter.consumed().saturating_add(size) > limits.max_bytes || content > limits.max_bytes {
            return Err(UnpackError::TooManyBytes {
                entry: last,
                limit: limits.max_bytes,
            });
        }
        let rel = entry_path::clean(&raw).ok_or_else(|| UnpackError::Breakout {
            entry: last.clone(),
        })?;
        if !rel.as_os_str().is_empty() {
            applier.apply(&mut entry, &rel, &last)?;
        }
        // Data an entry type does not use is still part of the stream and the limits.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| stream_err(e, &last, false))?;
    }
    applier.finish()?;
    let diff_id = archive
        .into_inner()
        .finish()
        .map_err(|e| stream_err(e, &last, false))?;
    Ok(AppliedLayer {
        diff_id,
        entries: count,
        bytes: meter.consumed(),
    })
}
