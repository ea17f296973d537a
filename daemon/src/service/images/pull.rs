//! `images.pull`: an import whose blobs come from a registry. The reference is resolved
//! to a manifest for the wanted platform (through an index or manifest list), every blob
//! berth lacks is fetched (a few at a time, verified while streaming) under a lease that
//! keeps them from `gc.run`, then the shared tail unpacks and names the image. A failed
//! pull names no image; its lease is released, so its blobs are garbage.

use std::sync::Arc;

use schema::{Descriptor, Image};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::ingest::Pending;
use super::progress::PullProgress;
use super::pull_lease::PullLease;
use super::{parse, Images};
use crate::content::digest_of;
use crate::oci::{self, Manifest, Platform};
use crate::registry::{Reference, RegistryError, Session};
use crate::service::{check_id, Error, Result};
use crate::snapshot::Snapshotter;

/// Blobs fetched at once.
const PARALLEL_FETCHES: usize = 3;

/// A registry failure, in the domain's terms, naming the image.
pub fn registry(context: &str, e: RegistryError) -> Error {
    let msg = format!("{context}: {e}");
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Truncated { .. } => {
            Error::Unavailable(msg)
        }
        RegistryError::Status { status, .. } if status == 429 || status >= 500 => {
            Error::Unavailable(msg)
        }
        RegistryError::NotFound { .. } => Error::NotFound(msg),
        RegistryError::Denied { .. } => Error::PermissionDenied(msg),
        RegistryError::Invalid { .. } => Error::InvalidArgument(msg),
        RegistryError::Status { .. } => Error::FailedPrecondition(msg),
        RegistryError::Internal(_) => Error::Internal(msg),
    }
}

/// `os/arch[/variant]`.
pub(super) fn parse_platform(p: &str) -> Result<Platform> {
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()).unwrap_or_default(),
        }),
        _ => Err(Error::InvalidArgument(format!(
            "platform \"{p}\" must be os/architecture[/variant], e.g. linux/amd64"
        ))),
    }
}

impl Images {
    pub async fn pull(
        &self,
        ns: String,
        reference: String,
        plain_http: bool,
        platform: Option<String>,
        snapshotter: Option<String>,
    ) -> Result<Image> {
        check_id("namespace", &ns)?;
        let r = Reference::parse(&reference).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let name = r.to_string();
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => parse_platform(&p)?,
            None => oci::host_platform(),
        };
        let sn = self.snapshots.get(snapshotter.as_deref())?;
        self.check_space(&format!("pulling \"{reference}\""))?;
        let (_tracked, progress) = self.progress.track_pull(&reference, &name);
        let lease = PullLease::create(&self.store, &ns, &name).await?;
        let result = self
            .pull_leased(
                &ns, &r, &name, plain_http, &platform, &sn, &lease, &progress,
            )
            .await;
        lease.release().await;
        if let Err(e) = &result {
            tracing::info!(image = %name, error = %e, "pull failed");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull_leased(
        &self,
        ns: &str,
        r: &Reference,
        name: &str,
        plain_http: bool,
        platform: &Platform,
        sn: &Arc<dyn Snapshotter>,
        lease: &PullLease,
        progress: &PullProgress,
    ) -> Result<Image> {
        let ctx = format!("pulling \"{name}\"");
        let creds = self.credentials.lookup(&r.domain);
        let http = self.http().map_err(|e| registry(&ctx, e))?;
        let session = Arc::new(Session::new(http, r, plain_http, creds));

        let what = match (&r.digest, &r.tag) {
            (Some(d), _) => format!("manifest {d}"),
            (None, Some(t)) => format!("tag \"{t}\" of repository \"{}\"", r.path),
            (None, None) => "the manifest".to_owned(),
        };
        let top = session
            .manifest(r.object(), &what)
            .await
            .map_err(|e| registry(&ctx, e))?;
        let top_digest = digest_of(&top.bytes);
        if let Some(want) = &r.digest {
            if *want != top_digest {
                return Err(Error::FailedPrecondition(format!(
                    "{ctx}: the registry served a manifest hashing to {top_digest}, not {want}"
                )));
            }
        }
        let media = media_type(&top.media_type, &top.bytes, &ctx)?;
        let target = Descriptor {
            media_type: media.clone(),
            digest: top_digest.clone(),
            size: top.bytes.len() as i64,
        };
        lease.hold(vec![top_digest.clone()]).await?;
        self.ingest_bytes(top.bytes.clone(), &top_digest, &ctx)
            .await?;

        let manifest_bytes = if oci::is_index(&media) {
            let index: oci::Index = parse(&top.bytes, &format!("{ctx}: index {top_digest}"))?;
            let Some(pick) = oci::select(&index.manifests, platform) else {
                return Err(Error::NotFound(format!(
                    "{ctx}: the index has no manifest for {}/{} (it has: {})",
                    platform.os,
                    platform.architecture,
                    oci::platforms(&index.manifests)
                )));
            };
            let what = format!("manifest {}", pick.digest);
            let doc = session
                .manifest(&pick.digest, &what)
                .await
                .map_err(|e| registry(&ctx, e))?;
            let got = digest_of(&doc.bytes);
            if got != pick.digest || doc.bytes.len() as i64 != pick.size {
                return Err(Error::FailedPrecondition(format!(
                    "{ctx}: {what}: the registry served {} bytes hashing to {got}, the index \
                     says {} bytes",
                    doc.bytes.len(),
                    pick.size
                )));
            }
            media_type(&doc.media_type, &doc.bytes, &ctx)?;
            lease.hold(vec![got.clone()]).await?;
            self.ingest_bytes(doc.bytes.clone(), &got, &ctx).await?;
            doc.bytes
        } else {
            top.bytes
        };
        let manifest: Manifest = parse(&manifest_bytes, &format!("{ctx}: manifest"))?;

        let blobs: Vec<oci::Descriptor> = std::iter::once(manifest.config.clone())
            .chain(manifest.layers.iter().cloned())
            .collect();
        lease
            .hold(blobs.iter().map(|b| b.digest.clone()).collect())
            .await?;
        progress.phase("fetching");
        self.fetch_blobs(&session, &blobs, progress, &ctx).await?;

        progress.phase("unpacking");
        let _gc = self.snapshots.gc_lock.read().await;
        let pending = Pending {
            names: vec![name.to_owned()],
            target,
            manifest,
        };
        let mut images = self.commit_images(ns, sn, vec![pending]).await?;
        images
            .pop()
            .ok_or_else(|| Error::Internal(format!("{ctx}: no image recorded")))
    }

    /// Fetches the blobs the content store lacks, `PARALLEL_FETCHES` at a time; the first
    /// failure stops the others.
    async fn fetch_blobs(
        &self,
        session: &Arc<Session>,
        blobs: &[oci::Descriptor],
        progress: &PullProgress,
        ctx: &str,
    ) -> Result<()> {
        let present: Vec<String> = blobs
            .iter()
            .filter(|b| self.content.has(&b.digest))
            .map(|b| b.digest.clone())
            .collect();
        self.record_present(present).await?;
        let gate = Arc::new(Semaphore::new(PARALLEL_FETCHES));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, blob) in blobs.iter().enumerate() {
            crate::content::hex_of(&blob.digest)
                .map_err(|e| Error::InvalidArgument(format!("{ctx}: {e}")))?;
            let size = u64::try_from(blob.size).map_err(|_| {
                Error::InvalidArgument(format!("{ctx}: blob {} has a negative size", blob.digest))
            })?;
            let have = self.content.has(&blob.digest);
            // Progress follows layers; the config is small and fetched quietly.
            let shown = (i > 0).then(|| {
                progress.layer(&blob.digest, size, if have { "exists" } else { "waiting" })
            });
            if have {
                continue;
            }
            let what = if i == 0 {
                format!("config {}", blob.digest)
            } else {
                format!("layer {}", blob.digest)
            };
            let (me, session, gate, digest) = (
                self.clone(),
                session.clone(),
                gate.clone(),
                blob.digest.clone(),
            );
            let context = format!("{ctx}: {what}");
            tasks.spawn(async move {
                let _permit = gate
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Internal(format!("{context}: {e}")))?;
                if let Some(l) = &shown {
                    l.set("downloading");
                }
                let body = session
                    .blob(&digest, &what)
                    .await
                    .map_err(|e| registry(&context, e))?;
                let unseen = std::sync::atomic::AtomicU64::new(0);
                let read = shown.as_ref().map(|l| &l.read).unwrap_or(&unseen);
                me.ingest_body(body, &digest, size, read, &context).await?;
                if let Some(l) = &shown {
                    l.set("done");
                }
                Ok::<_, Error>(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| Error::Internal(format!("{ctx}: a fetch task failed: {e}")))??;
        }
        Ok(())
    }
}

/// The document's media type: the `Content-Type` when it names one berth reads, else the
/// document's own `mediaType`; Docker schema 1 and unknown kinds are refused.
fn media_type(content_type: &str, bytes: &[u8], ctx: &str) -> Result<String> {
    let known = |m: &str| oci::is_index(m) || oci::is_manifest(m);
    if known(content_type) {
        return Ok(content_type.to_owned());
    }
    let doc: Value = parse(bytes, &format!("{ctx}: manifest"))?;
    let own = doc["mediaType"].as_str().unwrap_or_default();
    if known(own) {
        return Ok(own.to_owned());
    }
    if own.is_empty() && doc["schemaVersion"] == 2 {
        let guess = if doc.get("manifests").is_some() {
            oci::MEDIA_OCI_INDEX
        } else {
            oci::MEDIA_OCI_MANIFEST
        };
        return Ok(guess.to_owned());
    }
    let shown = if content_type.is_empty() {
        own
    } else {
        content_type
    };
    Err(Error::InvalidArgument(format!(
        "{ctx}: the registry serves a \"{shown}\" document; berth reads OCI and Docker schema 2 \
         manifests and indexes only"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_os_slash_arch() {
        let p = parse_platform("linux/arm64/v8").expect("ok");
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            ("linux", "arm64", "v8")
        );
        assert!(parse_platform("amd64").is_err());
        assert!(parse_platform("linux/").is_err());
    }

    #[test]
    fn schema1_documents_are_refused() {
        let doc = br#"{"schemaVersion": 1, "name": "x"}"#;
        let err = media_type(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            doc,
            "pulling \"x\"",
        )
        .expect_err("schema 1");
        assert!(err.to_string().contains("schema 2"), "{err}");
        let oci = br#"{"schemaVersion": 2, "manifests": []}"#;
        assert_eq!(
            media_type("", oci, "x").expect("index"),
            oci::MEDIA_OCI_INDEX
        );
    }
}
