//! Content: blob metadata (`content.list/info/delete`). Blobs are shared by all namespaces;
//! deleting one is immediate, as containerd's `content.Delete` (references are `gc.run`'s
//! business, not this service's).

use std::borrow::Cow;

use schema::ContentInfo;

use super::{check_id, Error, Result};
use crate::content::{hex_of, ContentStore};
use crate::store::{self, Store};

#[derive(Clone)]
pub struct Content {
    store: Store,
    blobs: ContentStore,
}

impl Content {
    pub fn new(store: Store, blobs: ContentStore) -> Self {
        Content { store, blobs }
    }

    pub async fn list(&self, filters: &[String]) -> Result<Vec<ContentInfo>> {
        let filter = crate::filter::parse(filters)?;
        let all = self.store.read_blocking(store::content::list).await?;
        Ok(all
            .into_iter()
            .filter(|c| filter.matches(&Adapt(c)))
            .collect())
    }

    pub fn info(&self, digest: &str) -> Result<ContentInfo> {
        hex_of(digest)?;
        Ok(self.store.read(|c| store::content::get(c, digest))?)
    }

    pub async fn delete(&self, ns: String, digest: String) -> Result<()> {
        check_id("namespace", &ns)?;
        hex_of(&digest)?;
        let d = digest.clone();
        self.store
            .write_reclaiming(move |tx| store::content::delete(tx, &ns, &d))
            .await?;
        self.blobs
            .remove(&digest)
            .map_err(|e| Error::failure("content store", &e))
    }
}

struct Adapt<'a>(&'a ContentInfo);

impl crate::filter::Adaptor for Adapt<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [f] if f == "digest" => Some(Cow::Borrowed(&self.0.digest)),
            [f] if f == "size" => Some(Cow::Owned(self.0.size.to_string())),
            [l, key @ ..] if l == "labels" && !key.is_empty() => self
                .0
                .labels
                .get(&key.join("."))
                .map(|v| Cow::Borrowed(v.as_str())),
            _ => None,
        }
    }
}
