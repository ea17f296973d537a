//! Pushing to a repository (OCI distribution): a blob is looked up first (`HEAD`), else
//! uploaded in chunks of bounded size (`POST` then `PATCH`es, then `PUT ?digest=`), and the
//! manifest is `PUT` last under its tag, so a registry never holds a manifest whose blobs
//! are missing.

use std::io::Read;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::Method;

use super::client::Session;
use super::RegistryError;

/// Bytes of a blob held in memory at once while it is uploaded.
const CHUNK: usize = 8 << 20;

impl Session {
    /// Whether the repository has blob `digest` already.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        match self
            .send(Method::HEAD, &url, &[], None, &format!("blob {digest}"))
            .await
        {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads blob `digest` from `file`, `CHUNK` bytes at a time; with `from` (another
    /// repository of the same registry that has it), asks for a cross-repository mount
    /// first. True if it was mounted rather than sent.
    pub async fn upload_blob(
        &self,
        digest: &str,
        mut file: std::fs::File,
        from: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let url = match from {
            Some(repo) => format!("{}?mount={digest}&from={repo}", self.url("blobs/uploads/")),
            None => self.url("blobs/uploads/"),
        };
        let start = self.send(Method::POST, &url, &[], Some(&[]), &what).await?;
        if start.status() == reqwest::StatusCode::CREATED {
            return Ok(true);
        }
        let mut location = self.location(&start, &what)?;
        let mut offset = 0u64;
        loop {
            let (chunk, f) = tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(CHUNK);
                let r = (&mut file).take(CHUNK as u64).read_to_end(&mut buf);
                (r.map(|_| buf), file)
            })
            .await
            .map_err(|e| RegistryError::Internal(format!("reading {what}: {e}")))?;
            file = f;
            let chunk =
                chunk.map_err(|e| RegistryError::Internal(format!("reading {what}: {e}")))?;
            if chunk.is_empty() {
                break;
            }
            let end = offset + chunk.len() as u64 - 1;
            let headers = [
                (CONTENT_TYPE, "application/octet-stream".to_owned()),
                (CONTENT_LENGTH, chunk.len().to_string()),
                (CONTENT_RANGE, format!("{offset}-{end}")),
            ];
            let resp = self
                .send(Method::PATCH, &location, &headers, Some(&chunk), &what)
                .await?;
            location = self.location(&resp, &what)?;
            offset = end + 1;
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = format!("{location}{sep}digest={digest}");
        let headers = [(CONTENT_LENGTH, "0".to_owned())];
        self.send(Method::PUT, &done, &headers, Some(&[]), &what)
            .await?;
        Ok(false)
    }

    /// Puts the manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let headers = [(CONTENT_TYPE, media_type.to_owned())];
        self.send(
            Method::PUT,
            &url,
            &headers,
            Some(bytes),
            &format!("manifest {reference}"),
        )
        .await?;
        Ok(())
    }

    fn location(&self, resp: &reqwest::Response, what: &str) -> Result<String, RegistryError> {
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.resolve(l))
            .ok_or_else(|| RegistryError::Invalid {
                what: what.to_owned(),
                detail: "the registry answered an upload without a Location".into(),
            })
    }
}
