//! The OCI (and Docker) image documents berth reads: indexes, manifests, configs; platform
//! selection and chain ids. Pure data: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Annotation naming an image in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker's) annotation with the full image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Largest index, manifest or config berth reads whole.
pub const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The parts of an image config berth needs besides the runtime `config` block.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigRootFs {
    pub rootfs: RootFs,
}

pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_OCI_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

/// The host platform in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        variant: String::new(),
    }
}

/// Whether `p` runs on `host`: same os and architecture (variants are not compared
/// except on arm, where the host's variant must match when both name one).
pub fn matches(p: &Platform, host: &Platform) -> bool {
    p.os == host.os
        && p.architecture == host.architecture
        && (host.variant.is_empty() || p.variant.is_empty() || p.variant == host.variant)
}

/// The entry of an index for `platform`: the first that matches, else the first that
/// names no platform.
pub fn select<'a>(manifests: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| matches(p, platform)))
        .or_else(|| manifests.iter().find(|m| m.platform.is_none()))
}

/// The platforms an index offers, for error messages: `linux/amd64, linux/arm64`.
pub fn platforms(manifests: &[Descriptor]) -> String {
    manifests
        .iter()
        .filter_map(|m| m.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The chain ids of a layer stack: `chain[0] = diff_ids[0]`,
/// `chain[i] = sha256(chain[i-1] + " " + diff_ids[i])`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => crate::content::digest_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(
            chain[1],
            crate::content::digest_of(format!("{a} {b}").as_bytes())
        );
    }

    #[test]
    fn platform_matching_needs_os_and_architecture() {
        let host = host_platform();
        assert!(matches(&host.clone(), &host));
        let other = Platform {
            architecture: "s390x".into(),
            ..host.clone()
        };
        assert!(!matches(&other, &host));
    }
}
