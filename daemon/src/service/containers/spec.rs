//! The spec a container is created with: given whole, built from an image's config, or
//! built from `spec_options` alone (the seed's `ctr run` defaults).

use schema::ContainerInput;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::service::images::ImageRootfs;
use crate::service::{Error, Result};

/// Most bytes of the image's /etc/passwd or /etc/group read to resolve USER.
const MAX_ETC_FILE: u64 = 1 << 20;

pub(super) fn check_spec(owner: &str, spec: &RawValue) -> Result<()> {
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
