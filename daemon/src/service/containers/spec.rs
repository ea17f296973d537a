//! The spec a container is created with: given whole, built from an image's config, or
//! built from `spec_options` alone (the seed's `ctr run` defaults).

use schema::ContainerInput;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::service::images::ImageRootfs;
use crate::service::{Error, Result};

/// Most bytes of the image's /etc/passwd or /etc/group read to resolve USER.
const MAX_ETC_FILE: u64 = 1 << 20;

/// A spec given whole (`containers.create`, `containers.update`): an object, not too deep,
/// and, if it has a `process` (a task could run it), with a mount namespace of its own.
/// A spec without `process` is stored as metadata only, as containerd stores any spec.
pub(super) fn check_spec(owner: &str, spec: &RawValue) -> Result<()> {
    if !spec.get().starts_with('{') {
        return Err(Error::InvalidArgument(format!(
            "{owner}: spec must be a JSON object (an OCI runtime spec)"
        )));
    }
    let depth = json_depth(spec.get());
    if depth > MAX_SPEC_DEPTH {
        return Err(Error::InvalidArgument(format!(
            "{owner}: spec nests {depth} levels deep; at most {MAX_SPEC_DEPTH} are allowed \
             (an OCI runtime spec needs fewer than 10)"
        )));
    }
    let value: Value = serde_json::from_str(spec.get())
        .map_err(|e| Error::InvalidArgument(format!("{owner}: spec is not JSON: {e}")))?;
    if value.get("process").is_some() && !unshares_mounts(&value) {
        return Err(Error::InvalidArgument(format!(
            "{owner}: {NO_MOUNT_NAMESPACE}"
        )));
    }
    Ok(())
}

/// Why a spec must unshare mounts: berth mounts the container's rootfs in the bundle and
/// runc bind-mounts it and mounts /proc, /dev and the spec's mounts below it in the
/// namespace the task runs in. Without a new one that is the host's (or the one joined
/// by path), where those mounts outlive the task (issue 30).
pub(crate) const NO_MOUNT_NAMESPACE: &str = "spec.linux.namespaces has no new mount namespace \
     ({\"type\": \"mount\"} without a path): berth mounts the rootfs for runc, and without \
     one the rootfs, /proc and /dev mounts would be made in the host's mount namespace and \
     left there after the task";

/// Whether `spec.linux.namespaces` asks for a new mount namespace (no `path` to join).
pub(crate) fn unshares_mounts(spec: &Value) -> bool {
    spec["linux"]["namespaces"].as_array().is_some_and(|all| {
        all.iter()
            .any(|n| n["type"] == "mount" && n.get("path").is_none_or(|p| p == ""))
    })
}

/// How deep a stored spec may nest. It is stored as text and decoded later (by tasks, by
/// clients listing containers, whose JSON parsers stop at 128 levels), so a deeper one
/// would be accepted once and then break every reader.
pub const MAX_SPEC_DEPTH: usize = 64;

/// The deepest nesting of objects and arrays in JSON `text` (which is valid JSON).
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The spec of a container built from an image: the image config plus `options`, USER
/// names resolved in the image's own /etc/passwd and /etc/group.
pub(super) fn image_spec(
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
pub(super) fn default_spec(
    input: &ContainerInput,
    options: Option<Value>,
) -> Result<Box<RawValue>> {
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

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert_eq!(json_depth(r#"{"a":[1,{"b":"[[[{{"}]}"#), 3);
        assert_eq!(json_depth(r#"{"a":"\"[["}"#), 1);
        // Deeper than berth stores, shallower than serde_json's own limit (128), so it
        // reaches check_spec as a request's spec would.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let raw = serde_json::value::RawValue::from_string(deep).expect("serde holds 101 levels");
        let err = check_spec("container \"x\"", &raw).expect_err("too deep");
        assert!(err.to_string().contains("at most 64"), "{err}");
        let ok = serde_json::value::RawValue::from_string(
            r#"{"process":{"args":["sh"]},"linux":{"namespaces":[{"type":"mount"}]}}"#.into(),
        )
        .expect("raw");
        check_spec("container \"x\"", &ok).expect("a real spec's depth");
    }

    #[test]
    fn a_runnable_spec_needs_a_new_mount_namespace() {
        let check = |text: &str| {
            let raw = serde_json::value::RawValue::from_string(text.into()).expect("raw");
            check_spec("container \"x\"", &raw)
        };
        for refused in [
            r#"{"process":{}}"#,
            r#"{"process":{},"linux":{"namespaces":[{"type":"pid"}]}}"#,
            r#"{"process":{},"linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}}"#,
        ] {
            let err = check(refused).expect_err(refused).to_string();
            assert!(err.contains("spec.linux.namespaces"), "{refused}: {err}");
        }
        check(r#"{"process":{},"linux":{"namespaces":[{"type":"mount","path":""}]}}"#)
            .expect("an empty path is a new namespace");
        check(r#"{"ociVersion":"1.0.2"}"#).expect("no process: metadata");
    }
}
