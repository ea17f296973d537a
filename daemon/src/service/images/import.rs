//! `images.import`: one streamed pass over the archive into the content store, then the
//! images it names are resolved to the host platform and handed to the tail it shares with
//! `images.pull` (`ingest.rs`: unpack, then record). The images appear only once every layer
//! is unpacked; blobs written on the way stay for the next import (or `gc.run`).

use std::io::Write;
use std::path::Path;

use schema::{Descriptor, Image};
use serde::Deserialize;
use serde_json::{json, Value};

use super::archive::{self, Archive, ArchiveError};
use super::ingest::Pending;
use super::{parse, Images};
use crate::content::{ContentError, Written};
use crate::oci;
use crate::service::{check_id, Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(super) fn check_image_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 1024 || name.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::InvalidArgument(format!(
            "image name \"{}\" must be 1..=1024 characters without spaces or control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Self {
        match &e {
            ArchiveError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NotFound(e.to_string())
            }
            ArchiveError::Blob {
                source: ContentError::Io { .. },
                ..
            } => Error::unexpected(e.to_string(), &e),
            _ if super::super::disk_full(&e) => Error::ResourceExhausted(e.to_string()),
            _ => Error::InvalidArgument(e.to_string()),
        }
    }
}

fn descriptor(media_type: &str, w: &Written) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: w.digest.clone(),
        size: w.size as i64,
    }
}

/// What an import may be told besides its archive.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Names the image (the archive must hold one).
    pub name: Option<String>,
    pub snapshotter: Option<String>,
    /// `os/arch[/variant]`: import (and unpack) that platform's manifest of a
    /// multi-platform image instead of the host's.
    pub platform: Option<String>,
    /// Keep every platform: each one's blobs must be in the archive (the host's is
    /// unpacked), so the image can be exported or pushed whole.
    pub all_platforms: bool,
}

impl Images {
    pub async fn import(
        &self,
        ns: String,
        path: String,
        opts: ImportOptions,
    ) -> Result<Vec<Image>> {
        check_id("namespace", &ns)?;
        if !Path::new(&path).is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "archive path \"{path}\" must be absolute (it is opened by berthd)"
            )));
        }
        if let Some(n) = &opts.name {
            check_image_name(n)?;
        }
        self.check_space(&format!("importing {path}"))?;
        // Opened before the GC lock is taken, and only if it is a regular file: a FIFO that
        // never yields data, or a device, would otherwise hold the lock (and a thread) for
        // as long as it likes.
        let file = archive::open_regular(Path::new(&path))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.import_from(ns, file, &path, total, opts).await
    }

    /// The import of the archive `reader` yields (`label` names it in progress and errors).
    pub(super) async fn import_from<R: std::io::Read + Send + 'static>(
        &self,
        ns: String,
        reader: R,
        label: &str,
        total: u64,
        opts: ImportOptions,
    ) -> Result<Vec<Image>> {
        let path = label.to_owned();
        let platform = match opts.platform.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(super::pull::parse_platform(p)?),
            None => None,
        };
        if platform.is_some() && opts.all_platforms {
            return Err(Error::InvalidArgument(
                "platform picks one platform and all_platforms keeps every one (unpacking the \
                 host's): give one of them"
                    .into(),
            ));
        }
        let name = opts.name;
        let sn = self.snapshots.get(opts.snapshotter.as_deref())?;
        let _gc = self.snapshots.gc_lock.read().await;
        let (_tracked, counter) = self.progress.track_import(&path, total);
        let content = self.content.clone();
        let archive = tokio::task::spawn_blocking(move || archive::read(reader, &content, counter))
            .await
            .map_err(|e| Error::Internal(format!("reading the archive: {e}")))??;
        self.record_blobs(archive.blobs.values().cloned().collect())
            .await?;

        let mut targets = match &archive.index {
            Some(index) => self.index_targets(index, platform.as_ref())?,
            None => self.docker_targets(&archive).await?,
        };
        if targets.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "archive \"{path}\" names no image"
            )));
        }
        if let Some(n) = name {
            if targets.len() > 1 {
                return Err(Error::InvalidArgument(format!(
                    "archive \"{path}\" holds {} images; name applies to an archive of one",
                    targets.len()
                )));
            }
            // Normalised as `images.tag` and the archive's own names are: `--name busybox`
            // stores docker.io/library/busybox:latest (a name that is no reference stays).
            targets[0].0 = vec![full_reference(&n).unwrap_or(n)];
        }
        let mut pending = Vec::new();
        for (names, target) in targets {
            let label = names.first().cloned().unwrap_or_default();
            if opts.all_platforms {
                self.closure(&label, &target, true).map_err(|e| match e {
                    Error::FailedPrecondition(m) => {
                        Error::InvalidArgument(format!("archive \"{path}\": {m}"))
                    }
                    e => e,
                })?;
            }
            let (_, manifest) = self.resolve(&label, &target)?;
            pending.push(Pending {
                names,
                target,
                manifest,
            });
        }
        self.commit_images(&ns, &sn, pending).await
    }

    /// The images an OCI layout's index.json names: `(names, target)`, for the host's
    /// platform or, given one, that platform's manifest (an index target is narrowed to it).
    fn index_targets(
        &self,
        index: &[u8],
        platform: Option<&oci::Platform>,
    ) -> Result<Vec<(Vec<String>, Descriptor)>> {
        let index: oci::Index = parse(index, "index.json")?;
        let host = oci::host_platform();
        let want = platform.unwrap_or(&host);
        let mut out = Vec::new();
        for m in index.manifests {
            if m.platform.as_ref().is_some_and(|p| !oci::matches(p, want)) {
                continue;
            }
            let m = match platform {
                Some(p) if is_index(&m.media_type) => self.narrow(&m, p)?,
                _ => m,
            };
            // containerd's full name first; OCI's ref.name only when it is a reference
            // (umoci and others write a bare tag such as `latest` there).
            let name = m
                .annotations
                .get(oci::ANNOTATION_IMAGE_NAME)
                .and_then(|n| full_reference(n))
                .or_else(|| {
                    m.annotations
                        .get(oci::ANNOTATION_REF_NAME)
                        .filter(|n| n.contains('/') || n.contains(':'))
                        .and_then(|n| full_reference(n))
                })
                .unwrap_or_else(|| fallback_name(&m.digest));
            let media_type = if m.media_type.is_empty() {
                oci::MEDIA_OCI_MANIFEST.to_owned()
            } else {
                m.media_type
            };
            out.push((
                vec![name],
                Descriptor {
                    media_type,
                    digest: m.digest,
                    size: m.size,
                },
            ));
        }
        Ok(out)
    }

    /// The images of a `docker save` archive, each given an OCI manifest written here
    /// (its layer digests are the ones computed while the archive was read).
    async fn docker_targets(&self, archive: &Archive) -> Result<Vec<(Vec<String>, Descriptor)>> {
        let Some(manifest) = &archive.docker_manifest else {
            return Ok(Vec::new());
        };
        let entries: Vec<DockerEntry> = parse(manifest, "manifest.json")?;
        let mut out = Vec::new();
        for e in entries {
            let missing = |p: &str| {
                Error::InvalidArgument(format!(
                    "manifest.json names \"{p}\", which the archive lacks"
                ))
            };
            let config = archive.blob(&e.config).ok_or_else(|| missing(&e.config))?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let w = archive.blob(l).ok_or_else(|| missing(l))?;
                let gz = w.head.starts_with(&[0x1f, 0x8b]);
                let media = if gz {
                    oci::MEDIA_OCI_LAYER_GZIP
                } else {
                    oci::MEDIA_OCI_LAYER
                };
                layers.push(descriptor(media, w));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": oci::MEDIA_OCI_MANIFEST,
                "config": descriptor(oci::MEDIA_OCI_CONFIG, config).to_oci(),
                "layers": layers.iter().map(Descriptor::to_oci).collect::<Vec<_>>(),
            });
            let bytes = serde_json::to_vec(&manifest)
                .map_err(|e| Error::Internal(format!("encoding a manifest: {e}")))?;
            let content = self.content.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut w = content.writer()?;
                w.write_all(&bytes).map_err(|source| ContentError::Io {
                    what: "writing a manifest".into(),
                    source,
                })?;
                w.commit("generated manifest", None, None)
            })
            .await
            .map_err(|e| Error::Internal(format!("writing a manifest: {e}")))?
            .map_err(Error::from)?;
            self.record_blobs(vec![written.clone()]).await?;
            let names: Vec<String> = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| full_reference(t))
                .collect();
            let names = match names.is_empty() {
                false => names,
                true => vec![fallback_name(&written.digest)],
            };
            out.push((names, descriptor(oci::MEDIA_OCI_MANIFEST, &written)));
        }
        Ok(out)
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == oci::MEDIA_OCI_INDEX || media_type == oci::MEDIA_DOCKER_LIST
}

impl Images {
    /// The manifest of `platform` in the index `m` points at, with `m`'s annotations.
    fn narrow(&self, m: &oci::Descriptor, platform: &oci::Platform) -> Result<oci::Descriptor> {
        let bytes = self.content.read_small(&m.digest, oci::MAX_DOCUMENT)?;
        let inner: oci::Index = parse(&bytes, &format!("index {}", m.digest))?;
        let pick = oci::select(&inner.manifests, platform).ok_or_else(|| {
            Error::NotFound(format!(
                "the archive's image {} has no manifest for {}/{} (it has: {})",
                m.digest,
                platform.os,
                platform.architecture,
                oci::platforms(&inner.manifests)
            ))
        })?;
        let mut out = pick.clone();
        out.annotations = m.annotations.clone();
        Ok(out)
    }
}

/// `busybox:latest` as `docker.io/library/busybox:latest`, the name `images.pull` gives,
/// so `run busybox` finds an imported image; `None` for what is not a reference.
fn full_reference(name: &str) -> Option<String> {
    crate::registry::reference::Reference::parse(name)
        .ok()
        .map(|r| r.to_string())
}

/// The name of an image the archive does not name: `import-<first 12 hex digits>`.
fn fallback_name(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("import-{}", &hex[..hex.len().min(12)])
}

trait ToOci {
    fn to_oci(&self) -> Value;
}

impl ToOci for Descriptor {
    fn to_oci(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}
