//! What leaves berth with an image (`images.export`, `images.push`): either the manifest the
//! host runs, or, with `all_platforms`, everything its target reaches (an index, each
//! platform's manifest, config and layers). Every blob must be in the content store before
//! a byte is sent, so a half-exported or half-pushed image never happens.

use std::collections::HashSet;

use schema::Descriptor;
use serde_json::Value;

use super::{parse, Images};
use crate::oci;
use crate::service::{Error, Result};

/// One blob of the closure; `document` for manifests and indexes (a registry takes those
/// as manifests, not blobs).
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub media_type: String,
    pub digest: String,
    pub document: bool,
}

/// An image's blobs, each once, every document after the blobs it names (the order a push
/// needs), with the descriptor that roots them (last in `items`).
#[derive(Debug)]
pub(super) struct Closure {
    pub root: oci::Descriptor,
    pub items: Vec<Item>,
}

impl Images {
    /// The host manifest's closure, or with `all` the whole target's.
    pub(super) fn closure(&self, name: &str, target: &Descriptor, all: bool) -> Result<Closure> {
        let root = if all {
            oci::Descriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size,
                platform: None,
                annotations: Default::default(),
            }
        } else {
            let (desc, _) = self.resolve(name, target)?;
            oci::Descriptor {
                media_type: desc.media_type,
                digest: desc.digest,
                size: desc.size,
                platform: None,
                annotations: Default::default(),
            }
        };
        let mut c = Walk {
            images: self,
            image: name,
            all,
            seen: HashSet::new(),
            items: Vec::new(),
        };
        c.document(&root, None, 0)?;
        Ok(Closure {
            root,
            items: c.items,
        })
    }
}

struct Walk<'a> {
    images: &'a Images,
    image: &'a str,
    all: bool,
    seen: HashSet<String>,
    items: Vec<Item>,
}

impl Walk<'_> {
    fn missing(&self, digest: &str, platform: Option<&oci::Platform>) -> Error {
        let of = platform
            .map(|p| format!(" (of {}/{})", p.os, p.architecture))
            .unwrap_or_default();
        let hint = if self.all {
            " (all_platforms takes every platform's blobs, and this image has only some: \
             leave out all_platforms for the host's manifest alone)"
        } else {
            ""
        };
        Error::FailedPrecondition(format!(
            "image \"{}\": blob {digest}{of} is not in the content store{hint}",
            self.image
        ))
    }

    fn push(&mut self, media_type: &str, digest: &str, document: bool) {
        if self.seen.insert(digest.to_owned()) {
            self.items.push(Item {
                media_type: media_type.to_owned(),
                digest: digest.to_owned(),
                document,
            });
        }
    }

    /// Adds what the manifest or index `d` names, then `d` itself.
    fn document(
        &mut self,
        d: &oci::Descriptor,
        platform: Option<&oci::Platform>,
        depth: u32,
    ) -> Result<()> {
        if depth > 4 {
            return Err(Error::InvalidArgument(format!(
                "image \"{}\": indexes nest too deep",
                self.image
            )));
        }
        if !self.images.content.has(&d.digest) {
            return Err(self.missing(&d.digest, platform));
        }
        let bytes = self
            .images
            .content
            .read_small(&d.digest, oci::MAX_DOCUMENT)?;
        let what = format!("image \"{}\": {}", self.image, d.digest);
        let doc: Value = parse(&bytes, &what)?;
        let media = doc["mediaType"].as_str().unwrap_or(&d.media_type);
        if oci::is_index(media) || (media.is_empty() && doc.get("manifests").is_some()) {
            let index: oci::Index = parse(&bytes, &what)?;
            for m in &index.manifests {
                self.document(m, m.platform.as_ref().or(platform), depth + 1)?;
            }
        } else {
            let m: oci::Manifest = parse(&bytes, &what)?;
            for b in std::iter::once(&m.config).chain(&m.layers) {
                if !self.images.content.has(&b.digest) {
                    return Err(self.missing(&b.digest, platform));
                }
                self.push(&b.media_type, &b.digest, false);
            }
        }
        self.push(&d.media_type, &d.digest, true);
        Ok(())
    }
}
