//! The content store's bytes: blobs under `<root>/content/blobs/sha256/<hex>`, written
//! through temp files under `<root>/content/ingest`. Owns only those two directories; the
//! blobs' metadata lives in SQLite (`store::content`).
//!
//! A blob becomes visible only complete and verified: it is streamed to an ingest file
//! while hashed, checked against the expected digest and size, fsynced, renamed into
//! place, and the directory is fsynced. Nothing here holds a whole blob in memory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Why a content operation failed; messages name the digest or path.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Not `sha256:` followed by 64 lowercase hex digits.
    #[error("\"{0}\" is not a sha256 digest (sha256:<64 hex digits>)")]
    InvalidDigest(String),
    /// The bytes hash to another digest than announced.
    #[error("blob {name}: expected digest {expected}, the bytes hash to {actual}")]
    DigestMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    /// The blob has another size than announced.
    #[error("blob {name}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// No such blob on disk.
    #[error("content \"{0}\" not found")]
    NotFound(String),
    /// A blob read whole (a manifest, a config) is larger than such documents are.
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed for a JSON document")]
    TooLarge {
        digest: String,
        size: u64,
        limit: u64,
    },
    /// The filesystem failed.
    #[error("content store: {what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let what = what.into();
    move |source| ContentError::Io { what, source }
}

/// Checks the digest form; returns its hex part.
pub fn hex_of(digest: &str) -> Result<&str, ContentError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(ContentError::InvalidDigest(digest.to_owned())),
    }
}

/// `sha256:<hex>` of a finished hasher.
pub fn digest_string(hasher: Sha256) -> String {
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hasher.finalize() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    digest_string(h)
}

static NEXT_INGEST: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating) `<root>/content`. Leftover ingest files are from a crash: removed.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let base = root.join("content");
        let blobs = base.join("blobs").join("sha256");
        let ingest = base.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err(format!("creating {}", blobs.display())))?;
        let _ = fs::remove_dir_all(&ingest);
        fs::create_dir_all(&ingest).map_err(io_err(format!("creating {}", ingest.display())))?;
        Ok(Self { blobs, ingest })
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        Ok(self.blobs.join(hex_of(digest)?))
    }

    pub fn open_blob(&self, digest: &str) -> Result<File, ContentError> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.to_owned()),
            _ => ContentError::Io {
                what: format!("opening {}", path.display()),
                source: e,
            },
        })
    }

    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads a small blob (a manifest, an index, a config) whole, after checking its size.
    pub fn read_small(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ContentError> {
        let file = self.open_blob(digest)?;
        let size = file
            .metadata()
            .map_err(io_err(format!("stat of {digest}")))?
            .len();
        if size > limit {
            return Err(ContentError::TooLarge {
                digest: digest.to_owned(),
                size,
                limit,
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        file.take(limit)
            .read_to_end(&mut out)
            .map_err(io_err(format!("reading {digest}")))?;
        Ok(out)
    }

    /// Starts writing a blob.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT_INGEST.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.ingest.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        Ok(BlobWriter {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(8),
            blobs: self.blobs.clone(),
            committed: false,
        })
    }

    /// Removes the blob's file (metadata is the caller's). Missing is fine.
    pub fn remove(&self, digest: &str) -> Result<(), ContentError> {
        let path = self.path(digest)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Digests of every blob file on disk.
    pub fn files(&self) -> Result<Vec<String>, ContentError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.blobs)
            .map_err(io_err(format!("listing {}", self.blobs.display())))?;
        for entry in entries.flatten() {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if hex_of(&digest).is_ok() {
                out.push(digest);
            }
        }
        Ok(out)
    }
}

/// A blob being written. Dropped uncommitted, its ingest file is removed.
pub struct BlobWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    blobs: PathBuf,
    committed: bool,
}

/// A blob that is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub digest: String,
    pub size: u64,
    /// The blob's first bytes (up to 8), to recognise a compression.
    pub head: Vec<u8>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        if self.head.len() < 8 {
            let take = (8 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Verifies the blob against `expected` (digest and size, when known), makes it
    /// durable and moves it into place. `name` says where the blob came from, for errors.
    pub fn commit(
        mut self,
        name: &str,
        expected_digest: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<Written, ContentError> {
        let hasher = std::mem::take(&mut self.hasher);
        let digest = digest_string(hasher);
        if let Some(expected) = expected_digest {
            if expected != digest {
                return Err(ContentError::DigestMismatch {
                    name: name.to_owned(),
                    expected: expected.to_owned(),
                    actual: digest,
                });
            }
        }
        if let Some(expected) = expected_size {
            if expected != self.size {
                return Err(ContentError::SizeMismatch {
                    name: name.to_owned(),
                    expected,
                    actual: self.size,
                });
            }
        }
        let target = self.blobs.join(hex_of(&digest)?);
        if !target.exists() {
            self.file
                .sync_all()
                .map_err(io_err(format!("fsync of {}", self.path.display())))?;
            fs::rename(&self.path, &target)
                .map_err(io_err(format!("moving {name} into {}", target.display())))?;
            self.committed = true;
            File::open(&self.blobs)
                .and_then(|d| d.sync_all())
                .map_err(io_err(format!("fsync of {}", self.blobs.display())))?;
        }
        Ok(Written {
            digest,
            size: self.size,
            head: std::mem::take(&mut self.head),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_verified_then_renamed_and_a_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let cs = ContentStore::open(dir.path()).expect("open");
        let mut w = cs.writer().expect("writer");
        w.write_all(b"hello").expect("write");
        let want = digest_of(b"hello");
        let done = w.commit("hello", Some(&want), Some(5)).expect("commit");
        assert_eq!(done.digest, want);
        assert_eq!(cs.read_small(&want, 10).expect("read"), b"hello");

        let mut w = cs.writer().expect("writer");
        w.write_all(b"evil").expect("write");
        let err = w.commit("x", Some(&want), None).expect_err("mismatch");
        assert!(err.to_string().contains("hash to"), "{err}");
        let left = fs::read_dir(dir.path().join("content/ingest"))
            .expect("ls")
            .count();
        assert_eq!(left, 0, "no ingest file left behind");
        assert!(cs.read_small(&want, 2).is_err(), "size limit enforced");
        assert!(hex_of("sha256:../../etc").is_err());
    }
}
