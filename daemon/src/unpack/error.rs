//! The one error type of the unpack layer: every variant names the layer entry (or the
//! point in the stream) and what was wrong with it.

use std::io;
use std::path::PathBuf;

/// Why applying a layer failed. The snapshot directory may hold a partial layer
/// afterwards; callers discard it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The snapshot directory itself could not be opened.
    #[error("cannot open snapshot root {root:?}: {source}")]
    OpenRoot { root: PathBuf, source: io::Error },

    /// The media type names no layer format this module reads.
    #[error("media type \"{0}\" is not a tar, tar+gzip or tar+zstd layer")]
    UnsupportedMediaType(String),

    /// The stream starts with the magic of a compression we do not read.
    #[error("layer is compressed with {0}, only gzip and zstd are supported")]
    UnsupportedCompression(&'static str),

    /// Reading or decompressing the layer stream failed; `at` says where.
    #[error("cannot read layer stream {at}: {source}")]
    Read { at: String, source: io::Error },

    /// The entry's path leaves the snapshot once `..` is resolved.
    #[error("layer entry \"{entry}\" escapes the snapshot root")]
    Breakout { entry: String },

    /// A hard link names a target outside the snapshot.
    #[error("layer entry \"{entry}\" links to \"{target}\", which escapes the snapshot root")]
    LinkBreakout { entry: String, target: String },

    /// A whiteout whose target is not a plain file name (`.wh.`, `.wh..`, `.wh...`).
    #[error("layer entry \"{entry}\" is a whiteout without a valid target name")]
    BadWhiteout { entry: String },

    /// The stream ended inside the entry's data.
    #[error("layer entry \"{entry}\" is truncated: header declares {declared} bytes, the stream held {read}")]
    Truncated {
        entry: String,
        declared: u64,
        read: u64,
    },

    /// The uncompressed layer would exceed `Limits::max_bytes`.
    #[error("layer entry \"{entry}\" exceeds the limit max_bytes = {limit} uncompressed bytes")]
    TooManyBytes { entry: String, limit: u64 },

    /// The stream outside any entry's data (padding, trailer, bytes after the end of the
    /// archive) pushes the layer over `Limits::max_bytes`.
    #[error("layer stream {at} exceeds the limit max_bytes = {limit} uncompressed bytes")]
    StreamTooLarge { at: String, limit: u64 },

    /// The layer holds more than `Limits::max_entries` entries.
    #[error("layer entry \"{entry}\" exceeds the limit max_entries = {limit}")]
    TooManyEntries { entry: String, limit: u64 },

    /// Extension headers (PAX, GNU long names, sparse maps) before an entry are larger
    /// than any real layer needs; refused so they are never buffered whole.
    #[error("tar metadata {at} exceeds {limit} bytes")]
    MetadataTooLarge { at: String, limit: u64 },

    /// A header field (type, ids, device numbers, path encoding) cannot be used.
    #[error("layer entry \"{entry}\" has an invalid header: {what}")]
    BadHeader { entry: String, what: String },

    /// A filesystem operation on the entry failed inside the snapshot.
    #[error("layer entry \"{entry}\": cannot {op}: {source}")]
    Fs {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
}
