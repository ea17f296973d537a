//! `images.push`: an image's host-platform manifest, its config and layers to a registry
//! (OCI distribution), with the credentials `images.pull` uses. Blobs the repository has
//! are not sent again; the manifest goes last, so it never names a missing blob.

use serde::Serialize;

use super::pull::registry;
use super::Images;
use crate::registry::{Reference, Session};
use crate::service::{check_id, Error, Result};

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The reference pushed to, in full.
    pub reference: String,
    /// The manifest's digest (the same as berth's).
    pub digest: String,
    /// Blobs sent, blobs the repository had already, and blobs mounted from the
    /// repository the image came from (same registry).
    pub uploaded: usize,
    pub existing: usize,
    pub mounted: usize,
}

impl Images {
    pub async fn push(
        &self,
        ns: &str,
        name: &str,
        reference: Option<&str>,
        plain_http: bool,
    ) -> Result<Pushed> {
        check_id("namespace", ns)?;
        let image = self.get(ns, name)?;
        let target = reference.filter(|r| !r.is_empty()).unwrap_or(&image.name);
        let r = Reference::parse(target).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let full = r.to_string();
        let ctx = format!("pushing \"{}\" to \"{full}\"", image.name);
        let (desc, manifest) = self.resolve(&image.name, &image.target)?;
        let creds = self.credentials.lookup(&r.domain);
        let http = self.http().map_err(|e| registry(&ctx, e))?;
        let session = Session::new(http, &r, plain_http, creds).for_push();
        // The repository the image was pulled from, if on this registry: blobs can be
        // mounted from it instead of sent.
        let from = Reference::parse(&image.name)
            .ok()
            .filter(|src| src.domain == r.domain && src.path != r.path)
            .map(|src| src.path);
        let (mut uploaded, mut existing, mut mounted) = (0, 0, 0);
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if session
                .has_blob(&blob.digest)
                .await
                .map_err(|e| registry(&ctx, e))?
            {
                existing += 1;
                continue;
            }
            let file = self.content.open_blob(&blob.digest)?;
            if session
                .upload_blob(&blob.digest, file, from.as_deref())
                .await
                .map_err(|e| registry(&ctx, e))?
            {
                mounted += 1;
            } else {
                uploaded += 1;
            }
        }
        let bytes = self
            .content
            .read_small(&desc.digest, crate::oci::MAX_DOCUMENT)?;
        // By tag, or by digest for a reference that names one.
        let object = match (&r.digest, &r.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        };
        session
            .put_manifest(&object, &desc.media_type, &bytes)
            .await
            .map_err(|e| registry(&ctx, e))?;
        tracing::info!(image = %image.name, reference = %full, uploaded, existing, mounted,
            "pushed");
        Ok(Pushed {
            reference: full,
            digest: desc.digest,
            uploaded,
            existing,
            mounted,
        })
    }
}
