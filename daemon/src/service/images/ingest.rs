//! The parts of getting an image in that `images.import` and `images.pull` share: recording
//! written blobs, streaming a blob from a registry into the content store (verified by
//! digest and size while it streams, fsynced, renamed), and the final commit (every blob
//! present, layers unpacked into chain-id snapshots, names recorded in one transaction).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use schema::{Descriptor, Image};

use super::import::check_image_name;
use super::Images;
use crate::content::{ContentError, Written};
use crate::oci::Manifest;
use crate::registry::client::Body;
use crate::service::{Error, Result};
use crate::snapshot::Snapshotter;
use crate::store;

/// An image whose blobs are in the content store, about to be unpacked and named.
pub struct Pending {
    pub names: Vec<String>,
    /// What the names point at (an index or a manifest).
    pub target: Descriptor,
    /// The manifest chosen for the platform being unpacked.
    pub manifest: Manifest,
}

/// A verification failure of fetched bytes is the data's fault, not the caller's.
pub fn integrity(context: &str, e: ContentError) -> Error {
    match e {
        ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => {
            Error::FailedPrecondition(format!("{context}: {e}"))
        }
        ContentError::Io { .. } => Error::failure(context, &e),
        _ => Error::InvalidArgument(format!("{context}: {e}")),
    }
}

impl Images {
    /// Records blobs now on disk in SQLite (a blob already known keeps its row).
    pub(super) async fn record_blobs(&self, blobs: Vec<Written>) -> Result<()> {
        let now = store::now();
        self.store
            .write(move |tx| {
                for b in &blobs {
                    store::content::insert(tx.conn(), &b.digest, b.size as i64, &now)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Records blobs found already on disk (a crash may have left a file without its row),
    /// under the shared GC lock, so that the file cannot be swept in between.
    pub(super) async fn record_present(&self, digests: Vec<String>) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let _gc = self.snapshots.gc_lock.read().await;
        let present = digests
            .into_iter()
            .filter_map(|digest| {
                let size = std::fs::metadata(self.content.path(&digest).ok()?)
                    .ok()?
                    .len();
                Some(Written {
                    digest,
                    size,
                    head: Vec::new(),
                })
            })
            .collect();
        self.record_blobs(present).await
    }

    /// Moves a finished ingest file into place and records it, under the shared GC lock so
    /// that `gc.run` never sees the blob file without its row. `context` names the image
    /// and the blob for errors.
    async fn commit_blob(
        &self,
        writer: crate::content::BlobWriter,
        digest: &str,
        size: u64,
        context: &str,
    ) -> Result<()> {
        let _gc = self.snapshots.gc_lock.read().await;
        let (d, c) = (digest.to_owned(), context.to_owned());
        let written = tokio::task::spawn_blocking(move || writer.commit(&d, Some(&d), Some(size)))
            .await
            .map_err(|e| Error::Internal(format!("{c}: committing a blob: {e}")))?
            .map_err(|e| integrity(context, e))?;
        self.record_blobs(vec![written]).await
    }

    /// Writes a small document (a manifest, an index) fetched whole.
    pub(super) async fn ingest_bytes(
        &self,
        bytes: Vec<u8>,
        digest: &str,
        context: &str,
    ) -> Result<()> {
        let size = bytes.len() as u64;
        if self.content.has(digest) {
            return self.record_present(vec![digest.to_owned()]).await;
        }
        let content = self.content.clone();
        let c = context.to_owned();
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = content.writer()?;
            w.write_all(&bytes).map_err(|source| ContentError::Io {
                what: "writing a manifest".into(),
                source,
            })?;
            Ok::<_, ContentError>(w)
        })
        .await
        .map_err(|e| Error::Internal(format!("{c}: {e}")))?
        .map_err(|e| integrity(context, e))?;
        self.commit_blob(writer, digest, size, context).await
    }

    /// Streams a registry body into the content store as blob `digest` of `size` bytes:
    /// chunks go through a bounded channel to a blocking writer that hashes as it writes;
    /// more bytes than `size` stop the transfer. `read` counts bytes for progress.
    pub(super) async fn ingest_body(
        &self,
        mut body: Body,
        digest: &str,
        size: u64,
        read: &AtomicU64,
        context: &str,
    ) -> Result<()> {
        if let Some(n) = body.announced().filter(|n| *n > size) {
            return Err(Error::FailedPrecondition(format!(
                "{context}: the registry announces {n} bytes, the descriptor {size}"
            )));
        }
        let mut writer = self.content.writer().map_err(|e| integrity(context, e))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let sink = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                let chunk: Vec<u8> = chunk;
                writer.write_all(&chunk)?;
            }
            Ok::<_, std::io::Error>(writer)
        });
        let mut total = 0u64;
        let streamed = async {
            while let Some(chunk) = body
                .chunk()
                .await
                .map_err(|e| super::pull::registry(context, e))?
            {
                let chunk = chunk.as_ref();
                total += chunk.len() as u64;
                if total > size {
                    return Err(Error::FailedPrecondition(format!(
                        "{context}: the registry sent more than the descriptor's {size} bytes"
                    )));
                }
                read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if tx.send(chunk.to_vec()).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let writer = sink
            .await
            .map_err(|e| Error::Internal(format!("{context}: writing: {e}")))?
            .map_err(|e| Error::failure(format!("{context}: writing the ingest file"), &e))?;
        streamed?;
        self.commit_blob(writer, digest, size, context).await
    }

    /// The tail import and pull share: checks that every blob of each image is in the
    /// content store, unpacks its layers into `sn`, then records all names in one
    /// transaction, so the images appear only complete. The caller holds the GC lock
    /// (shared).
    pub(super) async fn commit_images(
        &self,
        ns: &str,
        sn: &Arc<dyn Snapshotter>,
        pending: Vec<Pending>,
    ) -> Result<Vec<Image>> {
        let now = store::now();
        let mut images = Vec::new();
        for p in pending {
            let label = p.names.first().cloned().unwrap_or_default();
            for blob in std::iter::once(&p.manifest.config).chain(&p.manifest.layers) {
                if !self.content.has(&blob.digest) {
                    return Err(Error::InvalidArgument(format!(
                        "image \"{label}\": blob {} is not in the content store",
                        blob.digest
                    )));
                }
            }
            self.unpack(ns, &label, sn, &p.manifest).await?;
            for n in p.names {
                check_image_name(&n)?;
                images.push(Image {
                    name: n,
                    target: p.target.clone(),
                    labels: Default::default(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    size: None,
                });
            }
        }
        let ns = ns.to_owned();
        let stored = self
            .store
            .write(move |tx| {
                images
                    .iter()
                    .map(|i| store::images::put(tx, &ns, i))
                    .collect::<store::Result<Vec<_>>>()
            })
            .await?;
        Ok(stored)
    }
}
