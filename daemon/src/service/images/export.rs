//! `images.export`: images as one tar, streamed as it is written (no copy on disk): an OCI
//! image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) that skopeo's
//! `oci-archive:` and `ctr images import` read, plus, in the `docker` format, the
//! `manifest.json` that `docker load` reads (as Docker 25's `docker save` writes both).
//! Each image is exported as its host-platform manifest with that manifest's config and
//! layers, or with `all_platforms` as its whole target (`closure.rs`), every digest
//! unchanged; blobs shared by several images are written once.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::closure::Closure;
use super::Images;
use crate::oci;
use crate::service::{check_id, Error, Result};

/// Bytes of tar per chunk handed to the sender.
pub const CHUNK: usize = 48 << 10;
/// Exports producing at once, all clients together.
pub const MAX_EXPORTS: usize = 4;
/// How long an export waits for a producer slot.
pub const EXPORT_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// An export whose reader takes nothing for this long is ended, freeing its slot.
pub const EXPORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// Chunks queued between the tar writer and the sender: the export's memory bound.
const QUEUED: usize = 8;

/// What `images.export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The OCI layout alone.
    Oci,
    /// The OCI layout and docker's manifest.json.
    Docker,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Result<Format> {
        match s {
            None | Some("") | Some("docker") => Ok(Format::Docker),
            Some("oci") => Ok(Format::Oci),
            Some(other) => Err(Error::InvalidArgument(format!(
                "format {other:?} is neither \"oci\" nor \"docker\""
            ))),
        }
    }
}

/// One image to write: its name, its closure, and (for manifest.json) the host manifest's
/// config and layers.
struct Planned {
    name: String,
    closure: Closure,
    config: String,
    layers: Vec<String>,
}

impl Images {
    /// Checks every image and blob first (a missing one is an error before any byte is
    /// sent), then starts writing; the receiver yields the tar in chunks, then closes (an
    /// `Err` chunk if writing failed midway). With `all_platforms` an image goes out as its
    /// whole target (an index and every platform's blobs); otherwise as the host's manifest.
    /// Starts an export once one of the [`MAX_EXPORTS`] producer slots is free (waiting at
    /// most [`EXPORT_SLOT_WAIT`], without a thread): a producer writes on a blocking thread,
    /// so without the bound every export a client starts and never reads held a thread.
    pub async fn export(
        &self,
        ns: &str,
        names: &[String],
        format: Format,
        all_platforms: bool,
    ) -> Result<mpsc::Receiver<std::result::Result<Vec<u8>, String>>> {
        check_id("namespace", ns)?;
        if names.is_empty() {
            return Err(Error::InvalidArgument(
                "images.export needs at least one name".into(),
            ));
        }
        let mut planned = Vec::new();
        for name in names {
            let image = self.get(ns, name)?;
            let closure = self.closure(&image.name, &image.target, all_platforms)?;
            // manifest.json names the host's manifest; an OCI-only export needs none.
            let (config, layers) = match format {
                Format::Docker => {
                    let (_, m) = self.resolve(&image.name, &image.target)?;
                    (
                        m.config.digest,
                        m.layers.into_iter().map(|l| l.digest).collect(),
                    )
                }
                Format::Oci => (String::new(), Vec::new()),
            };
            planned.push(Planned {
                name: image.name,
                closure,
                config,
                layers,
            });
        }
        let slot =
            tokio::time::timeout(EXPORT_SLOT_WAIT, Arc::clone(&self.exports).acquire_owned()).await;
        let Ok(Ok(slot)) = slot else {
            return Err(Error::ResourceExhausted(format!(
                "{MAX_EXPORTS} exports are being produced and none ended within {}s; retry \
                 later (an export whose reader stops for {}s is ended)",
                EXPORT_SLOT_WAIT.as_secs(),
                EXPORT_PATIENCE.as_secs()
            )));
        };
        let (tx, rx) = mpsc::channel(QUEUED);
        let content = self.content.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let sink = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = write_archive(sink, &content, &planned, format) {
                let _ = tx.blocking_send(Err(e.to_string()));
            }
        });
        Ok(rx)
    }
}

fn write_archive(
    sink: ChunkWriter,
    content: &crate::content::ContentStore,
    planned: &[Planned],
    format: Format,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(sink);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut written = BTreeSet::new();
    for item in planned.iter().flat_map(|p| &p.closure.items) {
        if !written.insert(item.digest.clone()) {
            continue;
        }
        let file = content.open_blob(&item.digest).map_err(io::Error::other)?;
        let size = file.metadata()?.len();
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, blob_path(&item.digest), file)?;
    }
    let manifests: Vec<Value> = planned
        .iter()
        .map(|p| {
            let mut d = p.closure.root.clone();
            d.annotations
                .insert(oci::ANNOTATION_IMAGE_NAME.into(), p.name.clone());
            d.annotations
                .insert(oci::ANNOTATION_REF_NAME.into(), p.name.clone());
            json!(d)
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_OCI_INDEX,
        "manifests": manifests,
    });
    append_json(
        &mut tar,
        "oci-layout",
        &json!({ "imageLayoutVersion": "1.0.0" }),
    )?;
    append_json(&mut tar, "index.json", &index)?;
    if format == Format::Docker {
        // docker's manifest.json knows one platform per image: the host's.
        let entries: Vec<Value> = planned
            .iter()
            .map(|p| {
                json!({
                    "Config": blob_path(&p.config),
                    "RepoTags": [docker_name(&p.name)],
                    "Layers": p.layers.iter().map(|l| blob_path(l)).collect::<Vec<_>>(),
                })
            })
            .collect();
        append_json(&mut tar, "manifest.json", &json!(entries))?;
    }
    let mut sink = tar.into_inner()?;
    sink.flush()
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// docker's familiar form for RepoTags: `docker.io/library/busybox:latest` -> `busybox:latest`.
fn docker_name(name: &str) -> String {
    let short = name.strip_prefix("docker.io/").unwrap_or(name);
    short.strip_prefix("library/").unwrap_or(short).to_owned()
}

fn append_json<W: Write>(tar: &mut tar::Builder<W>, path: &str, v: &Value) -> io::Result<()> {
    let bytes = serde_json::to_vec(v).map_err(io::Error::other)?;
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, bytes.as_slice())
}

/// Cuts the tar into chunks for the sender; blocks while the sender's queue is full, so
/// a slow reader holds at most [`QUEUED`] chunks; a gone reader ends the export.
struct ChunkWriter {
    tx: mpsc::Sender<std::result::Result<Vec<u8>, String>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the export's reader left"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
