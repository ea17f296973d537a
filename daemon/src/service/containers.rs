//! Containers: pure metadata (id, labels, image, runtime, spec, snapshot). No runtime state
//! lives here; tasks own that.

use std::collections::BTreeMap;

use schema::{Container, ContainerInput, ContainerList, ContainerListParams, Labels, Runtime};
use serde_json::value::RawValue;
use serde_json::Value;

use super::images::{ImageRootfs, Images};
use super::snapshots::{Snapshots, DEFAULT_SNAPSHOTTER};
use super::{check_id, check_labels, Error, Result};
use crate::filter::{self, SqlField};
use crate::snapshot::Kind;
use crate::store::{self, Store, StoreError};

/// Most bytes of the image's /etc/passwd or /etc/group read to resolve USER.
const MAX_ETC_FILE: u64 = 1 << 20;

/// The runtime a container gets when it names none.
pub const DEFAULT_RUNTIME: &str = "runc";

#[derive(Clone)]
pub struct Containers {
    store: Store,
    images: Images,
    snapshots: Snapshots,
}

/// Maps a filter field path to the column (or label index) that answers it.
fn container_field(path: &[String]) -> Option<SqlField> {
    match path {
        [f] if f == "id" => Some(SqlField::Column("c.id")),
        [f] if f == "image" => Some(SqlField::Column("c.image")),
        [f] if f == "snapshotter" => Some(SqlField::Column("c.snapshotter")),
        [f] if f == "snapshot_key" => Some(SqlField::Column("c.snapshot_key")),
        [r, n] if r == "runtime" && n == "name" => Some(SqlField::Column("c.runtime_name")),
        [l, key @ ..] if l == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "container_labels",
            owner_column: "container",
            owner: "c.pk",
            key: key.join("."),
        }),
        _ => None,
    }
}

impl Containers {
    pub fn new(store: Store, images: Images, snapshots: Snapshots) -> Self {
        Containers {
            store,
            images,
            snapshots,
        }
    }

    pub async fn create(
        &self,
        ns: String,
        input: ContainerInput,
        spec_options: Option<Value>,
    ) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &input.id)?;
        let owner = format!("container \"{}\"", input.id);
        check_labels(&owner, &input.labels)?;
        // From an image without a spec: the spec comes from the image config, and without a
        // snapshot key the rootfs snapshot is prepared in the same transaction as the row.
        let from_image = input.spec.is_none() && !input.image.is_empty();
        let _gc = if from_image {
            Some(self.snapshots.gc_lock.read().await)
        } else {
            None
        };
        let mut staged = None;
        let mut input = input;
        let spec = match input.spec.take() {
            Some(spec) => {
                if spec_options.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "{owner}: give either spec or spec_options, not both"
                    )));
                }
                check_spec(&owner, &spec)?;
                spec
            }
            None if from_image => {
                let sn = self.snapshots.get(Some(&input.snapshotter))?;
                let rootfs =
                    self.images
                        .rootfs(&ns, &input.image, &sn)
                        .await
                        .map_err(|e| match e {
                            Error::NotFound(m) => Error::NotFound(format!("{owner}: {m}")),
                            other => other,
                        })?;
                let spec = image_spec(&input, &rootfs, spec_options)?;
                input.snapshotter = sn.name().to_owned();
                if input.snapshot_key.is_empty() {
                    input.snapshot_key.clone_from(&input.id);
                    staged = Some(self.snapshots.stage(&ns, &sn, &rootfs.top_chain).await?);
                }
                spec
            }
            None => default_spec(&input, spec_options)?,
        };
        let runtime = input.runtime.unwrap_or_else(|| Runtime {
            name: DEFAULT_RUNTIME.to_owned(),
            options: Value::Null,
        });
        if runtime.name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{owner}: runtime.name must not be empty"
            )));
        }
        let now = store::now();
        let container = Container {
            id: input.id,
            labels: input.labels,
            image: input.image,
            runtime,
            spec,
            snapshotter: input.snapshotter,
            snapshot_key: input.snapshot_key,
            created_at: now.clone(),
            updated_at: now,
            extensions: input.extensions,
        };
        let stored = container.clone();
        let staged = self
            .store
            .write(move |tx| {
                store::containers::insert(tx, &ns, &stored)?;
                if let Some(staged) = staged.as_mut() {
                    staged.record(tx, &ns, &stored.snapshot_key, Kind::Active, &Labels::new())?;
                }
                Ok(staged)
            })
            .await?;
        drop(staged);
        Ok(container)
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Container> {
        check_id("namespace", ns)?;
        check_id("container id", id)?;
        Ok(self.store.read(|c| store::containers::get(c, ns, id))?)
    }

    pub fn list(&self, p: &ContainerListParams) -> Result<ContainerList> {
        check_id("namespace", &p.namespace)?;
        let filter = filter::parse(&p.filters)?;
        let (cond, args) = filter.to_sql(&container_field)?;
        if p.limit == Some(0) {
            return Err(Error::InvalidArgument(
                "limit must be at least 1 (omit it for no limit)".into(),
            ));
        }
        // One extra row tells whether another page follows.
        let fetch = p.limit.map(|l| l.saturating_add(1));
        let mut containers = self.store.read(|c| {
            store::containers::list(c, &p.namespace, (&cond, args), p.after.as_deref(), fetch)
        })?;
        let next = match p.limit {
            Some(l) if containers.len() > l as usize => {
                containers.truncate(l as usize);
                containers.last().map(|c| c.id.clone())
            }
            _ => None,
        };
        Ok(ContainerList { containers, next })
    }

    pub async fn update(
        &self,
        ns: String,
        input: ContainerInput,
        mask: Option<Vec<String>>,
    ) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &input.id)?;
        let mask = mask.unwrap_or_default();
        for path in &mask {
            parse_mask_path(&input.id, path)?;
        }
        let id = input.id.clone();
        Ok(self
            .store
            .write(move |tx| {
                store::containers::update(tx, &ns, &id, |current| {
                    apply_update(current, input, &mask)
                        .map_err(|e| StoreError::InvalidArgument(e.to_string()))
                })
            })
            .await?)
    }

    /// Deletes the container and, unless `keep_snapshot`, its rootfs snapshot when nothing
    /// else holds it (another container, a lease, a child snapshot; committed snapshots
    /// belong to images and are left to `gc.run`), in one transaction.
    pub async fn delete(&self, ns: String, id: String, keep_snapshot: bool) -> Result<Container> {
        check_id("namespace", &ns)?;
        check_id("container id", &id)?;
        let (container, removed) = self
            .store
            .write(move |tx| {
                let c = store::containers::delete(tx, &ns, &id)?;
                if keep_snapshot || c.snapshot_key.is_empty() {
                    return Ok((c, None));
                }
                let sn = if c.snapshotter.is_empty() {
                    DEFAULT_SNAPSHOTTER.to_owned()
                } else {
                    c.snapshotter.clone()
                };
                let conn = tx.conn();
                let Some(row) = store::snapshots::find(conn, &ns, &sn, &c.snapshot_key)? else {
                    return Ok((c, None));
                };
                let others: i64 = conn
                    .prepare_cached(
                        "SELECT count(*) FROM containers WHERE namespace = ?1 AND snapshot_key = ?2 \
                         AND (snapshotter = ?3 OR (snapshotter = '' AND ?3 = ?4))",
                    )?
                    .query_row(
                        rusqlite::params![ns, c.snapshot_key, sn, DEFAULT_SNAPSHOTTER],
                        |r| r.get(0),
                    )?;
                let leased =
                    store::leases::holds_snapshot(conn, &ns, &sn, &c.snapshot_key, &store::now())?;
                if others > 0
                    || leased
                    || row.kind == "committed"
                    || store::snapshots::children(conn, row.id)? > 0
                {
                    return Ok((c, None));
                }
                store::snapshots::remove_row(tx, &row)?;
                Ok((c, Some((sn, row.id))))
            })
            .await?;
        if let Some((sn, id)) = removed {
            if let Ok(sn) = self.snapshots.get(Some(&sn)) {
                self.snapshots.discard_dirs(&sn, vec![id]).await;
            }
        }
        Ok(container)
    }
}

fn check_spec(owner: &str, spec: &RawValue) -> Result<()> {
    if spec.get().starts_with('{') {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{owner}: spec must be a JSON object (an OCI runtime spec)"
        )))
    }
}

/// The spec of a container built from an image: the image config plus `options`, USER
/// names resolved in the image's own /etc/passwd and /etc/group.
fn image_spec(
    input: &ContainerInput,
    rootfs: &ImageRootfs,
    options: Option<Value>,
) -> Result<Box<RawValue>> {
    let owner = format!("container \"{}\"", input.id);
    let options: schema::spec::SpecOptions = match options {
        Some(o) => serde_json::from_value(o)
            .map_err(|e| Error::InvalidArgument(format!("{owner}: spec_options: {e}")))?,
        None => Default::default(),
    };
    let config: Option<oci_spec::image::Config> = match rootfs.config.get("config") {
        None | Some(Value::Null) => None,
        Some(c) => Some(serde_json::from_value(c.clone()).map_err(|e| {
            Error::InvalidArgument(format!(
                "{owner}: the config of image \"{}\" is invalid: {e}",
                input.image
            ))
        })?),
    };
    let read = |rel: &str| {
        crate::snapshot::read_in_layers(&rootfs.layers, std::path::Path::new(rel), MAX_ETC_FILE)
            .map_err(|e| Error::Internal(format!("{owner}: reading {rel} of the image: {e}")))
    };
    let etc = schema::spec::EtcFiles {
        passwd: read("etc/passwd")?,
        group: read("etc/group")?,
    };
    let spec = schema::spec::build(&input.id, &input.image, config.as_ref(), &options, &etc)
        .map_err(|e| Error::InvalidArgument(format!("{owner}: {e}")))?;
    serde_json::value::to_raw_value(&spec)
        .map_err(|e| Error::Internal(format!("encoding the spec: {e}")))
}

/// The spec of a container created without one or an image: the seed's `ctr run` defaults.
fn default_spec(input: &ContainerInput, options: Option<Value>) -> Result<Box<RawValue>> {
    let owner = format!("container \"{}\"", input.id);
    let Some(options) = options else {
        return Err(Error::InvalidArgument(format!(
            "{owner}: give a spec, or an image and/or spec_options to build one from"
        )));
    };
    let options: schema::spec::SpecOptions = serde_json::from_value(options)
        .map_err(|e| Error::InvalidArgument(format!("{owner}: spec_options: {e}")))?;
    let spec = schema::spec::build(
        &input.id,
        &input.image,
        None,
        &options,
        &schema::spec::EtcFiles::default(),
    )
    .map_err(|e| Error::InvalidArgument(format!("{owner}: {e}")))?;
    serde_json::value::to_raw_value(&spec)
        .map_err(|e| Error::Internal(format!("encoding the spec: {e}")))
}

/// A parsed update-mask path.
#[derive(Debug, PartialEq)]
enum MaskPath<'a> {
    Labels,
    Label(&'a str),
    Image,
    Spec,
    SnapshotKey,
    Extensions,
    Extension(&'a str),
}

fn parse_mask_path<'a>(id: &str, path: &'a str) -> Result<MaskPath<'a>> {
    let p = match path {
        "labels" => MaskPath::Labels,
        "image" => MaskPath::Image,
        "spec" => MaskPath::Spec,
        "snapshot_key" => MaskPath::SnapshotKey,
        "extensions" => MaskPath::Extensions,
        _ => match path.split_once('.') {
            Some(("labels", key)) if !key.is_empty() => MaskPath::Label(key),
            Some(("extensions", key)) if !key.is_empty() => MaskPath::Extension(key),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "container \"{id}\": cannot update field \"{path}\"; updatable paths are \
                     labels, labels.<key>, image, spec, snapshot_key, extensions, \
                     extensions.<key>"
                )))
            }
        },
    };
    Ok(p)
}

/// Computes the updated container from the stored one, the request and its mask.
/// An empty mask replaces every mutable field; runtime and snapshotter never change.
fn apply_update(
    mut current: Container,
    input: ContainerInput,
    mask: &[String],
) -> Result<Container> {
    let owner = format!("container \"{}\"", current.id);
    if let Some(rt) = &input.runtime {
        if rt.name != current.runtime.name {
            return Err(Error::InvalidArgument(format!(
                "{owner}: runtime is immutable (is \"{}\", asked \"{}\")",
                current.runtime.name, rt.name
            )));
        }
    }
    if !input.snapshotter.is_empty() && input.snapshotter != current.snapshotter {
        return Err(Error::InvalidArgument(format!(
            "{owner}: snapshotter is immutable (is \"{}\", asked \"{}\")",
            current.snapshotter, input.snapshotter
        )));
    }
    let ContainerInput {
        labels,
        image,
        spec,
        snapshot_key,
        extensions,
        ..
    } = input;
    if mask.is_empty() {
        current.labels = labels;
        current.image = image;
        if let Some(spec) = spec {
            check_spec(&owner, &spec)?;
            current.spec = spec;
        }
        current.snapshot_key = snapshot_key;
        current.extensions = extensions;
    } else {
        for path in mask {
            match parse_mask_path(&current.id, path)? {
                MaskPath::Labels => current.labels = labels.clone(),
                MaskPath::Label(key) => set_or_remove_label(&mut current.labels, &labels, key),
                MaskPath::Image => current.image = image.clone(),
                MaskPath::Spec => {
                    let spec = spec.clone().ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{owner}: update_mask names spec but no spec was given"
                        ))
                    })?;
                    check_spec(&owner, &spec)?;
                    current.spec = spec;
                }
                MaskPath::SnapshotKey => current.snapshot_key = snapshot_key.clone(),
                MaskPath::Extensions => current.extensions = extensions.clone(),
                MaskPath::Extension(key) => {
                    set_or_remove(&mut current.extensions, extensions.get(key), key)
                }
            }
        }
    }
    check_labels(&owner, &current.labels)?;
    current.updated_at = store::now();
    Ok(current)
}

fn set_or_remove_label(target: &mut Labels, given: &Labels, key: &str) {
    match given.get(key) {
        Some(v) if !v.is_empty() => {
            target.insert(key.to_owned(), v.clone());
        }
        _ => {
            target.remove(key);
        }
    }
}

fn set_or_remove(target: &mut BTreeMap<String, Value>, given: Option<&Value>, key: &str) {
    match given {
        Some(v) => {
            target.insert(key.to_owned(), v.clone());
        }
        None => {
            target.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    fn stored() -> Container {
        Container {
            id: "web".into(),
            labels: [("a".to_owned(), "1".to_owned()), ("b".into(), "2".into())].into(),
            image: "busybox".into(),
            runtime: Runtime {
                name: "runc".into(),
                options: Value::Null,
            },
            spec: raw(r#"{"ociVersion":"1.0.2"}"#),
            snapshotter: "overlayfs".into(),
            snapshot_key: "web".into(),
            created_at: "t0".into(),
            updated_at: "t0".into(),
            extensions: BTreeMap::new(),
        }
    }

    fn input(labels: &[(&str, &str)]) -> ContainerInput {
        ContainerInput {
            id: "web".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn label_paths_merge_and_empty_values_delete() {
        let mask = vec!["labels.b".to_owned(), "labels.c".to_owned()];
        let c = apply_update(stored(), input(&[("b", ""), ("c", "3")]), &mask).expect("update");
        assert_eq!(c.labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(c.labels.get("b"), None);
        assert_eq!(c.labels.get("c").map(String::as_str), Some("3"));
        assert_eq!(c.image, "busybox", "fields outside the mask stay");
        assert_ne!(c.updated_at, "t0");
    }

    #[test]
    fn empty_mask_replaces_mutable_fields_but_keeps_an_absent_spec() {
        let mut i = input(&[("z", "9")]);
        i.image = "alpine".into();
        let c = apply_update(stored(), i, &[]).expect("update");
        assert_eq!(c.labels.len(), 1);
        assert_eq!(c.image, "alpine");
        assert_eq!(c.spec.get(), r#"{"ociVersion":"1.0.2"}"#);
        assert_eq!(c.snapshot_key, "");
    }

    #[test]
    fn runtime_and_snapshotter_are_immutable() {
        let mut i = input(&[]);
        i.runtime = Some(Runtime {
            name: "crun".into(),
            options: Value::Null,
        });
        let err = apply_update(stored(), i, &["labels".into()]).expect_err("immutable");
        assert!(err.to_string().contains("runtime is immutable"), "{err}");
        let mut i = input(&[]);
        i.snapshotter = "native".into();
        assert!(apply_update(stored(), i, &[]).is_err());
    }

    #[test]
    fn unknown_mask_paths_are_rejected_by_name() {
        for bad in ["runtime", "labels.", "created_at", "id", "spec.process"] {
            let err = parse_mask_path("web", bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
        assert_eq!(
            parse_mask_path("web", "labels.a.b").ok(),
            Some(MaskPath::Label("a.b"))
        );
    }

    #[test]
    fn mask_spec_without_a_spec_is_an_error() {
        assert!(apply_update(stored(), input(&[]), &["spec".into()]).is_err());
    }

    #[test]
    fn filter_fields_map_to_columns_and_the_label_index() {
        let p = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert!(matches!(
            container_field(&p("image")),
            Some(SqlField::Column("c.image"))
        ));
        assert!(matches!(
            container_field(&p("runtime.name")),
            Some(SqlField::Column("c.runtime_name"))
        ));
        match container_field(&["labels".into(), "a.b".into()]) {
            Some(SqlField::Label { key, .. }) => assert_eq!(key, "a.b"),
            _ => panic!("labels.<key> must use the label index"),
        }
        assert!(container_field(&p("spec")).is_none());
    }
}
