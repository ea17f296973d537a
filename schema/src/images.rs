//! Wire types of images, content, snapshots, leases and garbage collection.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::Labels;

fn default_namespace() -> String {
    crate::DEFAULT_NAMESPACE.to_owned()
}

/// An OCI content descriptor: what an image's `target` points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

/// A name bound to a root descriptor (an index or a manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Image {
    pub name: String,
    pub target: Descriptor,
    pub labels: Labels,
    pub created_at: String,
    pub updated_at: String,
    /// `images.list`: the bytes of its layers uncompressed once unpacked (else of its
    /// compressed layers and config), as docker's and ctr's SIZE (berth extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// The label a layer's committed snapshot carries: the bytes of the layer's tar stream.
pub const UNCOMPRESSED_SIZE_LABEL: &str = "berth.io/uncompressed-size";

/// A blob's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentInfo {
    pub digest: String,
    pub size: i64,
    pub labels: Labels,
    pub created_at: String,
    pub updated_at: String,
}

/// A snapshot's metadata, as containerd's `snapshots.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfo {
    pub key: String,
    /// The parent's name (key of a committed snapshot), `""` for none.
    pub parent: String,
    /// `active`, `view` or `committed`.
    #[schemars(extend("enum" = ["active", "view", "committed"]))]
    pub kind: String,
    pub snapshotter: String,
    pub labels: Labels,
    pub created_at: String,
    pub updated_at: String,
}

/// A lease: while it lives, the resources it names survive garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    pub id: String,
    pub labels: Labels,
    pub created_at: String,
    /// RFC 3339; `""` when the lease never expires.
    pub expires_at: String,
}

/// One thing a lease holds: `type` is `content` (id = digest) or `snapshots/<snapshotter>`
/// (id = snapshot key), as containerd names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

macro_rules! params {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The namespace (default `default`).
            #[serde(default = "default_namespace")]
            pub namespace: String,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

params!(
    /// `images.upload_begin`: an import whose archive the client streams (berth extension).
    ImageUploadBeginParams {
        /// Names the imported image (the archive must hold exactly one).
        #[serde(default)]
        name: Option<String>,
        /// `os/arch[/variant]` of a multi-platform image to import (default: the host's).
        #[serde(default)]
        platform: Option<String>,
        /// Keep every platform of a multi-platform image: each one's blobs must be in the
        /// archive; the host's is unpacked (not with `platform`).
        #[serde(default)]
        all_platforms: bool,
        /// Unpack into this snapshotter (default `overlayfs`).
        #[serde(default)]
        snapshotter: Option<String>,
    }
);

params!(
    /// `images.upload_write`: the next bytes of an upload's archive, base64.
    ImageUploadWriteParams {
        upload: String,
        data: String,
    }
);

params!(
    /// `images.upload_commit` and `images.upload_abort`.
    ImageUploadParams {
        upload: String,
    }
);

params!(
    /// `images.push`: an image to a registry (berth extension).
    ImagePushParams {
        name: String,
        /// Where to: a reference (default: the image's own name).
        #[serde(default)]
        reference: Option<String>,
        /// Talk HTTP, not HTTPS, to the registry.
        #[serde(default)]
        plain_http: bool,
        /// Push the image's whole target (an index and every platform's manifest), not
        /// only the host's manifest.
        #[serde(default)]
        all_platforms: bool,
    }
);

params!(
    /// `images.tag`: another name for an image (berth extension).
    ImageTagParams {
        source: String,
        target: String,
    }
);

params!(
    /// `images.import`: a tar on the daemon's filesystem.
    ImageImportParams {
        path: String,
        /// Names the imported image (the archive must hold exactly one).
        #[serde(default)]
        name: Option<String>,
        /// `os/arch[/variant]` of a multi-platform image to import (default: the host's).
        #[serde(default)]
        platform: Option<String>,
        /// Keep every platform of a multi-platform image: each one's blobs must be in the
        /// archive; the host's is unpacked (not with `platform`).
        #[serde(default)]
        all_platforms: bool,
        /// Unpack into this snapshotter (default `overlayfs`).
        #[serde(default)]
        snapshotter: Option<String>,
    }
);
params!(
    /// `images.pull`: fetch an image from a registry, unpack it, name it.
    ImagePullParams {
        /// A Docker-style reference: `busybox`, `host:5000/a/b:tag`, `name@sha256:...`.
        #[serde(rename = "ref")]
        reference: String,
        /// Talk HTTP instead of HTTPS to the registry.
        #[serde(default)]
        plain_http: bool,
        /// `os/arch[/variant]`; default the host's.
        #[serde(default)]
        platform: Option<String>,
        /// Unpack into this snapshotter (default `overlayfs`).
        #[serde(default)]
        snapshotter: Option<String>,
    }
);
params!(ImageListParams {
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    filters: Vec<String>,
});
params!(ImageNameParams { name: String });
params!(
    /// `images.delete`: removes a name; refused while containers use it unless `force`.
    ImageDeleteParams {
        name: String,
        /// Remove the name even while containers use it (docker's `rmi -f`): they keep their
        /// snapshots; the image's content is collected once nothing else holds it.
        #[serde(default)]
        force: bool,
    }
);
params!(ContentDigestParams { digest: String });
params!(ContentListParams {
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    filters: Vec<String>,
});
params!(
    /// `snapshots.prepare` / `snapshots.view`.
    SnapshotPrepareParams {
        key: String,
        #[serde(default)]
        parent: String,
        #[serde(default)]
        labels: Labels,
        #[serde(default)]
        snapshotter: Option<String>,
    }
);
params!(SnapshotCommitParams {
    name: String,
    key: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    snapshotter: Option<String>,
});
params!(SnapshotKeyParams {
    key: String,
    #[serde(default)]
    snapshotter: Option<String>,
});
params!(SnapshotListParams {
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    snapshotter: Option<String>,
});
params!(LeaseCreateParams {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    expires_at: Option<String>,
});
params!(LeaseIdParams { id: String });
params!(LeaseListParams {
    /// containerd's filter grammar (`labels."app"==web`, `id~=^db`); what matches any one is kept.
    #[serde(default)]
    filters: Vec<String>,
});
params!(LeaseResourceParams {
    id: String,
    resource: LeaseResource,
});
params!(GcRunParams {});
params!(
    /// `images.export`: images as one tar, streamed as notifications.
    ImageExportParams {
        names: Vec<String>,
        /// `docker` (an OCI layout plus docker's manifest.json; the default) or `oci`.
        #[serde(default)]
        #[schemars(extend("enum" = ["docker", "oci", null]))]
        format: Option<String>,
        /// Each image's whole target: its index and every platform's blobs.
        #[serde(default)]
        all_platforms: bool,
    }
);
