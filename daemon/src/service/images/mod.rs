//! Images: names bound to OCI descriptors, their import from archives, and the unpacking of
//! their layers into committed snapshots named by chain id (shared between images).
//! Resolving an image to what a container needs (config, top chain id, rootfs layers)
//! lives here too.

mod archive;
mod closure;
pub mod export;
pub use export::Format as ExportFormat;
mod import;
pub use import::ImportOptions;
mod ingest;
mod progress;
mod pull;
mod pull_lease;
mod push;
pub mod upload;

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use schema::{Descriptor, Image};
use serde_json::Value;

use super::snapshots::Snapshots;
use super::{check_id, Error, Result};
use crate::content::{ContentError, ContentStore};
use crate::filter::{self, SqlField};
use crate::oci::{self, Manifest};
use crate::registry::{self, CredentialSources, RegistryError};
use crate::snapshot::{Kind, Snapshotter};
use crate::store::{self, Store};
use crate::unpack::{self, Compression, Limits};

pub use progress::Progress;

#[derive(Clone)]
pub struct Images {
    store: Store,
    content: ContentStore,
    snapshots: Snapshots,
    limits: Limits,
    progress: Progress,
    /// Where registry credentials come from.
    credentials: Arc<CredentialSources>,
    /// The HTTP client for registries, built on the first pull.
    http: Arc<OnceLock<reqwest::Client>>,
    uploads: Arc<upload::Uploads>,
    /// Exports producing at once (each holds a blocking thread while it writes).
    exports: Arc<tokio::sync::Semaphore>,
}

impl From<ContentError> for Error {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::NotFound(_) => Error::NotFound(e.to_string()),
            ContentError::Io { .. } => Error::unexpected(e.to_string(), &e),
            _ => Error::InvalidArgument(e.to_string()),
        }
    }
}

/// What a container built from an image needs.
pub struct ImageRootfs {
    /// The whole OCI image config document.
    pub config: Value,
    /// The committed snapshot the container's rootfs is prepared on (`""`: no layers).
    pub top_chain: String,
    /// The directories whose union is the image's tree, uppermost first.
    pub layers: Vec<PathBuf>,
}

fn image_field(path: &[String]) -> Option<SqlField> {
    match path {
        [f] if f == "name" => Some(SqlField::Column("i.name")),
        [t, f] if t == "target" && f == "digest" => Some(SqlField::Column("i.target_digest")),
        [t, f] if t == "target" && (f == "media_type" || f == "mediatype") => {
            Some(SqlField::Column("i.target_media_type"))
        }
        [l, key @ ..] if l == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "image_labels",
            owner_column: "image",
            owner: "i.pk",
            key: key.join("."),
        }),
        _ => None,
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

impl Images {
    pub fn new(
        store: Store,
        content: ContentStore,
        snapshots: Snapshots,
        limits: Limits,
        credentials: CredentialSources,
        uploads: upload::Uploads,
    ) -> Self {
        Images {
            store,
            content,
            snapshots,
            limits,
            progress: Progress::default(),
            credentials: Arc::new(credentials),
            http: Arc::new(OnceLock::new()),
            uploads: Arc::new(uploads),
            exports: Arc::new(tokio::sync::Semaphore::new(export::MAX_EXPORTS)),
        }
    }

    fn http(&self) -> Result<reqwest::Client, RegistryError> {
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let client = registry::http_client()?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn progress(&self) -> schema::ImageProgress {
        self.progress.snapshot()
    }

    /// The images, each with its size (read from its manifest, config and snapshots).
    pub async fn list(&self, ns: String, filters: Vec<String>) -> Result<Vec<Image>> {
        let this = self.clone();
        crate::service::scan(&self.store, "listing images", move || {
            this.scan(&ns, &filters)
        })
        .await
    }

    fn scan(&self, ns: &str, filters: &[String]) -> Result<Vec<Image>> {
        check_id("namespace", ns)?;
        let filter = filter::parse(filters)?;
        let (cond, args) = filter.to_sql(&image_field)?;
        let mut images = self
            .store
            .read(|c| store::images::list(c, ns, (&cond, args)))?;
        for image in &mut images {
            image.size = self.size(ns, image);
        }
        Ok(images)
    }

    /// The image's layers' uncompressed bytes when every layer is unpacked in the default
    /// snapshotter, else its compressed layers and config; `None` if its content is gone.
    fn size(&self, ns: &str, image: &Image) -> Option<i64> {
        let (_, manifest) = self.resolve(&image.name, &image.target).ok()?;
        let content: i64 =
            manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<i64>();
        let rootfs: oci::ConfigRootFs = self
            .read_json(&manifest.config.digest, "image config")
            .ok()?;
        let sn = self.snapshots.get(None).ok()?;
        let mut unpacked = 0i64;
        for chain in oci::chain_ids(&rootfs.rootfs.diff_ids) {
            let row = self
                .store
                .read(|c| store::snapshots::find(c, ns, sn.name(), &chain))
                .ok()
                .flatten();
            let bytes = row.and_then(|r| {
                r.labels
                    .get(schema::UNCOMPRESSED_SIZE_LABEL)
                    .and_then(|v| v.parse::<i64>().ok())
            });
            match bytes {
                Some(b) => unpacked += b,
                None => return Some(content),
            }
        }
        Some(unpacked)
    }

    /// The image stored under `name` exactly, else under its normalised reference
    /// (`busybox` -> `docker.io/library/busybox:latest`), as `images.pull` names images.
    pub fn get(&self, ns: &str, name: &str) -> Result<Image> {
        check_id("namespace", ns)?;
        let exact = self.store.read(|c| store::images::get(c, ns, name));
        match (exact, normalised(name)) {
            (Err(store::StoreError::NotFound(missing)), Some(full)) => {
                match self.store.read(|c| store::images::get(c, ns, &full)) {
                    // Name what the caller typed, not only the form it was tried under.
                    Err(store::StoreError::NotFound(_)) => {
                        Err(Error::NotFound(format!("{missing} (nor as {full:?})")))
                    }
                    r => Ok(r?),
                }
            }
            (r, _) => Ok(r?),
        }
    }

    /// The image and its OCI config (for the host platform).
    pub fn get_with_config(&self, ns: &str, name: &str) -> Result<(Image, Value)> {
        let image = self.get(ns, name)?;
        let (_, manifest) = self.resolve(&image.name, &image.target)?;
        let config = self.read_json(&manifest.config.digest, "image config")?;
        Ok((image, config))
    }

    /// Refuses to start filling the disk while the store says it is full (only deletes
    /// run then; see `store::space`).
    fn check_space(&self, what: &str) -> Result<()> {
        if self.store.disk_full() {
            return Err(Error::ResourceExhausted(format!(
                "{what}: the disk holding berthd's root is full; delete images, containers or \
                 snapshots and run gc.run first"
            )));
        }
        Ok(())
    }

    /// `images.tag`: `target` names the image `source` names (short names resolve as in
    /// `get`; a reference is stored in its full form); an image already named `target` is
    /// pointed at it, as `docker tag` does.
    pub async fn tag(&self, ns: String, source: &str, target: &str) -> Result<Image> {
        let src = self.get(&ns, source)?;
        let name = normalised(target).unwrap_or_else(|| target.to_owned());
        import::check_image_name(&name)?;
        let now = store::now();
        let image = Image {
            name,
            target: src.target,
            labels: src.labels,
            created_at: now.clone(),
            updated_at: now,
            size: None,
        };
        Ok(self
            .store
            .write(move |tx| store::images::put(tx, &ns, &image))
            .await?)
    }

    /// Removes image `name`; unless `force`, refused while a container of the namespace
    /// uses it (docker's rule: its containers, running or not, would lose the image they
    /// name). Checked in the delete's transaction, so a container created meanwhile counts.
    pub async fn delete(&self, ns: String, name: String, force: bool) -> Result<()> {
        check_id("namespace", &ns)?;
        let name = self.get(&ns, &name).map(|i| i.name).unwrap_or(name);
        self.store
            .write_reclaiming(move |tx| {
                if !force {
                    let users = users_of(tx.conn(), &ns, &name)?;
                    if !users.is_empty() {
                        return Err(store::StoreError::FailedPrecondition(format!(
                            "image {name:?} is in use by container{} {} in namespace {ns:?}; \
                             remove {} first, or force (berth images rm -f)",
                            if users.len() == 1 { "" } else { "s" },
                            quoted(&users),
                            if users.len() == 1 { "it" } else { "them" },
                        )));
                    }
                }
                store::images::delete(tx, &ns, &name)
            })
            .await?;
        Ok(())
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str, what: &str) -> Result<T> {
        let bytes = self.content.read_small(digest, oci::MAX_DOCUMENT)?;
        parse(&bytes, &format!("{what} {digest}"))
    }

    /// Follows `target` (an index or a manifest) to the manifest for the host platform.
    pub fn resolve(&self, image: &str, target: &Descriptor) -> Result<(Descriptor, Manifest)> {
        let mut desc = oci::Descriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.clone(),
            size: target.size,
            platform: None,
            annotations: Default::default(),
        };
        let host = oci::host_platform();
        for _ in 0..4 {
            let bytes = self.content.read_small(&desc.digest, oci::MAX_DOCUMENT)?;
            let doc: Value = parse(&bytes, &format!("image \"{image}\": blob {}", desc.digest))?;
            let media = doc["mediaType"]
                .as_str()
                .unwrap_or(&desc.media_type)
                .to_owned();
            let is_index =
                oci::is_index(&media) || (media.is_empty() && doc.get("manifests").is_some());
            if !is_index {
                let manifest: Manifest = parse(
                    &bytes,
                    &format!("image \"{image}\": manifest {}", desc.digest),
                )?;
                let found = Descriptor {
                    media_type: if media.is_empty() {
                        oci::MEDIA_OCI_MANIFEST.into()
                    } else {
                        media
                    },
                    digest: desc.digest,
                    size: desc.size,
                };
                return Ok((found, manifest));
            }
            let index: oci::Index =
                parse(&bytes, &format!("image \"{image}\": index {}", desc.digest))?;
            desc = match oci::select(&index.manifests, &host) {
                Some(m) => m.clone(),
                None => {
                    return Err(Error::NotFound(format!(
                        "image \"{image}\" has no manifest for {}/{} (it has: {})",
                        host.os,
                        host.architecture,
                        oci::platforms(&index.manifests)
                    )));
                }
            };
        }
        Err(Error::InvalidArgument(format!(
            "image \"{image}\": indexes nest too deep"
        )))
    }

    /// Unpacks the manifest's layers into committed snapshots named by chain id, reusing
    /// the ones that exist; returns the top chain id (`""` for an image without layers).
    /// The caller holds the GC lock (shared).
    pub async fn unpack(
        &self,
        ns: &str,
        image: &str,
        sn: &Arc<dyn Snapshotter>,
        manifest: &Manifest,
    ) -> Result<String> {
        let rootfs: oci::ConfigRootFs = self.read_json(&manifest.config.digest, "image config")?;
        let diff_ids = rootfs.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image \"{image}\": the manifest has {} layers but the config lists {} diff_ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let chain = oci::chain_ids(&diff_ids);
        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = sn.name();
            let exists = self
                .store
                .read(|c| store::snapshots::find(c, ns, name, &chain[i]))?
                .is_some_and(|s| s.kind == Kind::Committed);
            if exists {
                continue;
            }
            let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
            let mut staged = self.snapshots.stage(ns, sn, parent).await?;
            let compression = Compression::from_media_type(&layer.media_type).ok();
            let file = self.content.open_blob(&layer.digest)?;
            let (fs_dir, whiteouts, limits) =
                (staged.fs_dir(), sn.whiteouts(), self.limits.clone());
            let applied = tokio::task::spawn_blocking(move || {
                let reader = BufReader::with_capacity(256 * 1024, file);
                match compression {
                    Some(c) => {
                        unpack::apply_layer_compressed(reader, c, &fs_dir, whiteouts, &limits)
                    }
                    None => unpack::apply_layer(reader, &fs_dir, whiteouts, &limits),
                }
            })
            .await
            .map_err(|e| Error::Internal(format!("unpacking a layer: {e}")))?
            .map_err(|e| {
                let message = format!("image \"{image}\": layer {i} ({}): {e}", layer.digest);
                if super::disk_full(&e) {
                    return Error::ResourceExhausted(format!("{message} (the disk is full)"));
                }
                Error::InvalidArgument(message)
            })?;
            if applied.diff_id != diff_ids[i] {
                return Err(Error::InvalidArgument(format!(
                    "image \"{image}\": layer {i} ({}) unpacks to diff_id {}, but the config \
                     says {}",
                    layer.digest, applied.diff_id, diff_ids[i]
                )));
            }
            let (n, target) = (ns.to_owned(), chain[i].clone());
            let extract = format!("extract-{}", &target["sha256:".len()..]);
            self.store
                .write(move |tx| {
                    if store::snapshots::find(tx.conn(), &n, name, &target)?.is_some() {
                        return Ok(staged);
                    }
                    staged.record(tx, &n, &extract, Kind::Active, &Default::default())?;
                    let now = store::now();
                    let labels: schema::Labels = [(
                        schema::UNCOMPRESSED_SIZE_LABEL.to_owned(),
                        applied.bytes.to_string(),
                    )]
                    .into();
                    store::snapshots::commit(tx, &n, name, &target, &extract, &labels, &now)?;
                    Ok(staged)
                })
                .await?;
        }
        Ok(chain.last().cloned().unwrap_or_default())
    }

    /// Everything a container created from image `name` needs, unpacking the image into
    /// `sn` first if it is not yet. The caller holds the GC lock (shared).
    pub async fn rootfs(
        &self,
        ns: &str,
        name: &str,
        sn: &Arc<dyn Snapshotter>,
    ) -> Result<ImageRootfs> {
        let image = self.get(ns, name)?;
        let (_, manifest) = self.resolve(name, &image.target)?;
        let config: Value = self.read_json(&manifest.config.digest, "image config")?;
        let top_chain = self.unpack(ns, name, sn, &manifest).await?;
        let layers = if top_chain.is_empty() {
            Vec::new()
        } else {
            let row = self
                .store
                .read(|c| store::snapshots::get(c, ns, sn.name(), &top_chain))?;
            self.snapshots.layers(sn, row.id)?
        };
        Ok(ImageRootfs {
            config,
            top_chain,
            layers,
        })
    }
}

/// `name`'s full reference form when it parses as one and differs from `name`.
/// The containers of `ns` whose image reference resolves (as [`Images::get`] resolves it:
/// the exact name, else its normalised form) to image `name`.
fn users_of(conn: &rusqlite::Connection, ns: &str, name: &str) -> store::Result<Vec<String>> {
    let mut users = Vec::new();
    for (id, image) in store::containers::images_of(conn, ns)? {
        let resolved = if image == name {
            true
        } else {
            match store::images::get(conn, ns, &image) {
                Ok(_) => false,
                Err(store::StoreError::NotFound(_)) => normalised(&image).as_deref() == Some(name),
                Err(e) => return Err(e),
            }
        };
        if resolved {
            users.push(id);
        }
    }
    Ok(users)
}

/// `"a", "b"`, at most a few names and a count of the rest.
fn quoted(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out: Vec<String> = ids.iter().take(SHOWN).map(|i| format!("{i:?}")).collect();
    if ids.len() > SHOWN {
        out.push(format!("and {} more", ids.len() - SHOWN));
    }
    out.join(", ")
}

fn normalised(name: &str) -> Option<String> {
    let full = crate::registry::reference::Reference::parse(name)
        .ok()?
        .to_string();
    (full != name).then_some(full)
}
