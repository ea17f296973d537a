//! `images.push`: an image's host-platform manifest, its config and layers, or with
//! `all_platforms` its whole target (index, every platform's manifest and blobs), to a
//! registry (OCI distribution), with the credentials `images.pull` uses. Blobs the
//! repository has are not sent again; each manifest goes after the blobs it names and the
//! root (by tag) last, so the registry never holds a name for a missing blob.

use super::pull::registry;
use super::Images;
use crate::registry::{Reference, Session};
use crate::service::{check_id, Error, Result};

pub use schema::Pushed;

impl Images {
    pub async fn push(
        &self,
        ns: &str,
        name: &str,
        reference: Option<&str>,
        plain_http: bool,
        all_platforms: bool,
    ) -> Result<Pushed> {
        check_id("namespace", ns)?;
        let image = self.get(ns, name)?;
        let target = reference.filter(|r| !r.is_empty()).unwrap_or(&image.name);
        let r = Reference::parse(target).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let full = r.to_string();
        let ctx = format!("pushing \"{}\" to \"{full}\"", image.name);
        let closure = self.closure(&image.name, &image.target, all_platforms)?;
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
        // By tag, or by digest for a reference that names one.
        let object = match (&r.digest, &r.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        };
        for item in &closure.items {
            if item.document {
                let bytes = self
                    .content
                    .read_small(&item.digest, crate::oci::MAX_DOCUMENT)?;
                // What the root names goes by digest; the root by the reference's tag.
                let at = match item.digest == closure.root.digest {
                    true => &object,
                    false => &item.digest,
                };
                session
                    .put_manifest(at, &item.media_type, &bytes)
                    .await
                    .map_err(|e| registry(&ctx, e))?;
                continue;
            }
            if session
                .has_blob(&item.digest)
                .await
                .map_err(|e| registry(&ctx, e))?
            {
                existing += 1;
                continue;
            }
            let file = self.content.open_blob(&item.digest)?;
            if session
                .upload_blob(&item.digest, file, from.as_deref())
                .await
                .map_err(|e| registry(&ctx, e))?
            {
                mounted += 1;
            } else {
                uploaded += 1;
            }
        }
        tracing::info!(image = %image.name, reference = %full, uploaded, existing, mounted,
            "pushed");
        Ok(Pushed {
            reference: full,
            digest: closure.root.digest,
            uploaded,
            existing,
            mounted,
        })
    }
}
