//! containers.update: the update mask's paths and how they change a stored container.

use std::collections::BTreeMap;

use schema::{Container, ContainerInput, Labels};
use serde_json::Value;

use super::spec::check_spec;
use crate::service::{check_labels, Error, Result};
use crate::store;

/// A parsed update-mask path.
#[derive(Debug, PartialEq)]
pub(super) enum MaskPath<'a> {
    Labels,
    Label(&'a str),
    Image,
    Spec,
    SnapshotKey,
    Extensions,
    Extension(&'a str),
}

pub(super) fn parse_mask_path<'a>(id: &str, path: &'a str) -> Result<MaskPath<'a>> {
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
pub(super) fn apply_update(
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
    use schema::Runtime;
    use serde_json::value::RawValue;

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
            status: None,
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
}
