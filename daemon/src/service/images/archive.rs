//! Reading an image archive (an OCI image-layout tar or a `docker save` tar) in one pass
//! from disk: every blob is streamed into the content store as its entry goes by, verified
//! against its name when the name is a digest. Only the small JSON documents that say what
//! the archive holds (`index.json`, `manifest.json`) are kept in memory. Blocking.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::content::{ContentError, ContentStore, Written};
use crate::oci::MAX_DOCUMENT;

/// Why an archive could not be read; messages name the archive entry.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is {what}; images.import reads an archive from a regular file")]
    NotRegular { path: PathBuf, what: &'static str },
    /// The tar reader's own message is not shown: it quotes header bytes, which for a file
    /// that is not a tar (`/etc/shadow`) are the file's first line.
    #[error("reading the archive {at}: {}", tar_failure(.source))]
    Read { at: String, source: io::Error },
    #[error("archive entry \"{entry}\": {source}")]
    Blob { entry: String, source: ContentError },
    #[error("archive entry \"{entry}\" is {size} bytes, more than the {limit} allowed for it")]
    TooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error(
        "the archive holds neither index.json (OCI image layout) nor manifest.json (docker save)"
    )]
    NotAnImage,
}

/// What went wrong reading an archive, in words that quote none of its bytes.
fn tar_failure(e: &io::Error) -> String {
    if e.raw_os_error().is_some() {
        return e.to_string();
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "it ends in the middle of an entry".to_owned(),
        _ => "it is not a tar archive, or a corrupt one (an entry header is invalid)".to_owned(),
    }
}

/// What one pass over the archive found.
#[derive(Debug, Default)]
pub struct Archive {
    /// `index.json` of an OCI image layout.
    pub index: Option<Vec<u8>>,
    /// `manifest.json` of `docker save`.
    pub docker_manifest: Option<Vec<u8>>,
    /// Every blob written, by its (cleaned) path in the archive.
    pub blobs: HashMap<String, Written>,
    /// Symlinks in the archive (old `docker save` links duplicate layers): path -> target.
    pub links: HashMap<String, String>,
}

impl Archive {
    /// The blob at `path`, following archive symlinks a few levels.
    pub fn blob(&self, path: &str) -> Option<&Written> {
        let mut at = clean(path)?;
        for _ in 0..8 {
            if let Some(w) = self.blobs.get(&at) {
                return Some(w);
            }
            at = self.links.get(&at)?.clone();
        }
        None
    }
}

/// Normalises an archive path (`./a//b` -> `a/b`); `None` when it climbs out.
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Counts bytes read from the archive file, for progress reports.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens the archive at `path` if it is a regular file, without opening anything else: the
/// path is looked up with O_PATH (no FIFO blocks, no device driver runs) and only a regular
/// file is then reopened for reading, through the inode already looked up.
pub fn open_regular(path: &Path) -> Result<File, ArchiveError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let open_err = |source| ArchiveError::Open {
        path: path.to_owned(),
        source,
    };
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .map_err(open_err)?;
    let kind = handle.metadata().map_err(open_err)?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(ArchiveError::NotRegular {
            path: path.to_owned(),
            what,
        });
    }
    File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).map_err(open_err)
}

/// Streams the archive `file` (a file, or the pipe of a streamed upload) into `content`.
/// `read` counts the archive bytes consumed.
pub fn read<R: Read>(
    file: R,
    content: &ContentStore,
    read: Arc<AtomicU64>,
) -> Result<Archive, ArchiveError> {
    let reader = Counting {
        inner: BufReader::with_capacity(256 * 1024, file),
        read,
    };
    let mut tar = tar::Archive::new(reader);
    let mut out = Archive::default();
    let read_err = |at: &str| {
        let at = at.to_owned();
        move |source| ArchiveError::Read { at, source }
    };
    let entries = tar.entries().map_err(read_err("at its start"))?;
    let mut last = String::new();
    for entry in entries {
        let at = if last.is_empty() {
            "at its start".to_owned()
        } else {
            format!("after \"{last}\"")
        };
        let mut entry = entry.map_err(read_err(&at))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        last.clone_from(&raw);
        let Some(name) = clean(&raw) else { continue };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                let target = String::from_utf8_lossy(&target).into_owned();
                let base = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .map(|p| p.join(&target))
                        .unwrap_or_else(|| PathBuf::from(&target))
                } else {
                    PathBuf::from(&target)
                };
                if let Some(t) = clean(&base.to_string_lossy()) {
                    out.links.insert(name, t);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let doc = |entry: &mut tar::Entry<'_, _>| -> Result<Vec<u8>, ArchiveError> {
            if size > MAX_DOCUMENT {
                return Err(ArchiveError::TooLarge {
                    entry: raw.clone(),
                    size,
                    limit: MAX_DOCUMENT,
                });
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut buf)
                .map_err(read_err(&format!("entry \"{raw}\"")))?;
            Ok(buf)
        };
        match name.as_str() {
            "index.json" => out.index = Some(doc(&mut entry)?),
            "manifest.json" => out.docker_manifest = Some(doc(&mut entry)?),
            // Layout metadata, never a blob: the OCI marker file, docker's v1 tag map,
            // and classic `docker save`'s per-layer v1 json and VERSION.
            n if n == "oci-layout"
                || n == "repositories"
                || n.ends_with("/json")
                || n.ends_with("/VERSION") => {}
            _ => {
                // Every file goes into the content store as it streams by: manifest.json may
                // come last (skopeo's docker-archive, classic `docker save`) and name any
                // path (`<hex>.tar`, `<id>/layer.tar`). What it does not name is left
                // unreferenced, for gc.
                let expected = name
                    .strip_prefix("blobs/sha256/")
                    .map(|hex| format!("sha256:{hex}"));
                let blob_err = |source| ArchiveError::Blob {
                    entry: raw.clone(),
                    source,
                };
                if let Some(d) = &expected {
                    crate::content::hex_of(d).map_err(blob_err)?;
                }
                let mut w = content.writer().map_err(blob_err)?;
                io::copy(&mut entry, &mut w).map_err(read_err(&format!("entry \"{raw}\"")))?;
                let written = w
                    .commit(&raw, expected.as_deref(), Some(size))
                    .map_err(blob_err)?;
                out.blobs.insert(name, written);
            }
        }
    }
    if out.index.is_none() && out.docker_manifest.is_none() {
        return Err(ArchiveError::NotAnImage);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_cleaned_and_never_climb_out() {
        assert_eq!(
            clean("./blobs//sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("../x"), None);
    }
}
