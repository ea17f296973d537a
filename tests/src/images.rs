//! Builders for test images, made in memory without network: layers (tar, optionally
//! gzip), OCI configs and manifests, OCI image-layout archives, `docker save` archives,
//! and a busybox image from the host's static /bin/busybox.
//!
//! Included by test files with `#[path = "../src/images.rs"] mod images;` so the shared
//! harness files stay untouched.

#![allow(dead_code)]

use std::io::Write;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    let mut out = String::from("sha256:");
    for b in h.finalize() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The OCI architecture name of the host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A layer tar built entry by entry. Names are written raw (no checks), so hostile
/// entries are as easy as honest ones.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let raw = &mut h.as_gnu_mut().expect("gnu header").name;
    assert!(
        name.len() < raw.len(),
        "name too long for a test header: {name}"
    );
    raw.fill(0);
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let raw = &mut h.as_gnu_mut().expect("gnu header").linkname;
    raw.fill(0);
    raw[..target.len()].copy_from_slice(target.as_bytes());
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.push(header(name, tar::EntryType::Directory, mode, 0), &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.push(
            header(name, tar::EntryType::Regular, mode, data.len() as u64),
            data,
        )
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = header(name, tar::EntryType::Symlink, 0o777, 0);
        set_link(&mut h, target);
        self.push(h, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = header(name, tar::EntryType::Link, 0o644, 0);
        set_link(&mut h, target);
        self.push(h, &[])
    }

    /// A character device node `major`:`minor` with `mode`.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32, mode: u32) -> &mut Self {
        let mut h = header(name, tar::EntryType::Char, mode, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.push(h, &[])
    }

    pub fn fifo(&mut self, name: &str) -> &mut Self {
        self.push(header(name, tar::EntryType::Fifo, 0o644, 0), &[])
    }

    /// `.wh.<name>` in `dir` (`""` for the root).
    pub fn whiteout(&mut self, dir: &str, name: &str) -> &mut Self {
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&path, b"", 0o644)
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish tar")
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The busybox layer: /bin/busybox, applet symlinks, /etc/passwd and /etc/group with a
/// user `app` (1000:1000), /tmp.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut l = Layer::new();
    l.dir("bin", 0o755).file("bin/busybox", &busybox, 0o755);
    for applet in [
        "sh", "ls", "cat", "echo", "id", "true", "sleep", "env", "pwd",
    ] {
        l.symlink(&format!("bin/{applet}"), "busybox");
    }
    l.dir("etc", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            0o644,
        )
        .file(
            "etc/group",
            b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
            0o644,
        )
        .dir("tmp", 0o1777)
        .dir("root", 0o700);
    l.finish()
}

/// A blob of an image: bytes plus descriptor fields.
#[derive(Clone)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            bytes,
        }
    }

    pub fn json(media_type: &str, v: &Value) -> Blob {
        Blob::new(media_type, serde_json::to_vec(v).expect("json"))
    }

    pub fn digest(&self) -> String {
        sha256(&self.bytes)
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image for one platform: layers (uncompressed tars) and its runtime config block.
pub struct ImageParts {
    pub layers: Vec<Vec<u8>>,
    pub gzip: bool,
    /// Compress layers with zstd (takes precedence over `gzip`).
    pub zstd: bool,
    pub config: Value,
    pub arch: String,
}

impl ImageParts {
    pub fn new(layers: Vec<Vec<u8>>, config: Value) -> ImageParts {
        ImageParts {
            layers,
            gzip: false,
            zstd: false,
            config,
            arch: host_arch().into(),
        }
    }

    /// `(manifest, config, layers)` blobs.
    pub fn blobs(&self) -> (Blob, Blob, Vec<Blob>) {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        let config = Blob::json(
            CONFIG,
            &json!({
                "architecture": self.arch, "os": "linux",
                "config": self.config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }),
        );
        let layers: Vec<Blob> = self
            .layers
            .iter()
            .map(|l| {
                if self.zstd {
                    Blob::new(LAYER_ZSTD, zstd::encode_all(&l[..], 3).expect("zstd"))
                } else if self.gzip {
                    Blob::new(LAYER_GZIP, gzip(l))
                } else {
                    Blob::new(LAYER_TAR, l.clone())
                }
            })
            .collect();
        let manifest = Blob::json(
            MANIFEST,
            &json!({
                "schemaVersion": 2, "mediaType": MANIFEST,
                "config": config.descriptor(),
                "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
            }),
        );
        (manifest, config, layers)
    }
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).expect("path");
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

/// An OCI image-layout tar holding `blobs` and an index.json listing `entries`.
pub fn oci_layout(blobs: &[Blob], entries: Vec<Value>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
    append_file(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).expect("json"),
    );
    let mut seen = std::collections::HashSet::new();
    for blob in blobs {
        let d = blob.digest();
        if seen.insert(d.clone()) {
            let hex = d.trim_start_matches("sha256:");
            append_file(&mut b, &format!("blobs/sha256/{hex}"), &blob.bytes);
        }
    }
    b.into_inner().expect("tar")
}

/// An OCI layout with one image named `name` (ref.name annotation).
pub fn oci_image(name: &str, parts: &ImageParts) -> Vec<u8> {
    let (manifest, config, layers) = parts.blobs();
    let mut entry = manifest.descriptor();
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    let mut blobs = vec![manifest, config];
    blobs.extend(layers);
    oci_layout(&blobs, vec![entry])
}

/// A `docker save` tar: `<hex>.json` config, `<n>/layer.tar` layers, manifest.json with
/// RepoTags. With `link_dup`, a repeated layer is stored as a symlink, as old Docker did.
pub fn docker_save(tags: &[&str], parts: &ImageParts) -> Vec<u8> {
    let (_, config, _) = parts.blobs();
    let mut b = tar::Builder::new(Vec::new());
    let cfg_name = format!("{}.json", config.digest().trim_start_matches("sha256:"));
    append_file(&mut b, &cfg_name, &config.bytes);
    let mut layer_paths = Vec::new();
    let mut first_of: std::collections::HashMap<String, String> = Default::default();
    for (i, l) in parts.layers.iter().enumerate() {
        let path = format!("layer{i}/layer.tar");
        let d = sha256(l);
        if let Some(first) = first_of.get(&d) {
            let mut h = tar::Header::new_gnu();
            h.set_path(&path).expect("path");
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_link_name(format!("../{first}")).expect("link");
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &[][..]).expect("append");
        } else {
            append_file(&mut b, &format!("layer{i}/VERSION"), b"1.0");
            append_file(&mut b, &path, l);
            first_of.insert(d, path.clone());
        }
        layer_paths.push(path);
    }
    let manifest = json!([{"Config": cfg_name, "RepoTags": tags, "Layers": layer_paths}]);
    append_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    append_file(&mut b, "repositories", b"{}");
    b.into_inner().expect("tar")
}

/// An OCI layout of one image for two platforms (another architecture's manifest first,
/// then the host's busybox), its index entry annotated with `annotations`.
pub struct MultiPlatform {
    pub archive: Vec<u8>,
    pub other_arch: String,
    pub other_manifest: String,
}

impl MultiPlatform {
    pub fn new(annotations: Value) -> MultiPlatform {
        let host = busybox_parts();
        let mut other = ImageParts::new(
            vec![Layer::new().file("other", b"o", 0o644).finish()],
            json!({"Cmd": ["other"]}),
        );
        other.arch = if host_arch() == "arm64" {
            "amd64".into()
        } else {
            "arm64".into()
        };
        let (hm, hc, hl) = host.blobs();
        let (om, oc, ol) = other.blobs();
        let other_manifest = om.digest();
        let mut hd = hm.descriptor();
        hd["platform"] = json!({"os": "linux", "architecture": host_arch()});
        let mut od = om.descriptor();
        od["platform"] = json!({"os": "linux", "architecture": other.arch});
        let index = Blob::json(
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [od, hd]}),
        );
        let mut entry = index.descriptor();
        entry["annotations"] = annotations;
        let mut blobs = vec![index, hm, hc, om, oc];
        blobs.extend(hl);
        blobs.extend(ol);
        MultiPlatform {
            archive: oci_layout(&blobs, vec![entry]),
            other_arch: other.arch,
            other_manifest,
        }
    }
}

/// busybox as an image with a shell's config.
pub fn busybox_parts() -> ImageParts {
    ImageParts::new(
        vec![busybox_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "HOME=/root"], "WorkingDir": "/"}),
    )
}

/// Runs skopeo (install-deps installs it) with `args`.
pub fn skopeo(args: &[&str]) -> std::process::Output {
    std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (install-deps installs it)")
}

/// [`skopeo`], which must succeed; its stdout.
pub fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let out = skopeo(args);
    assert!(out.status.success(), "skopeo {args:?}: {out:?}");
    out.stdout
}

/// Writes `archive` into the daemon's directory and imports it with `images.import`.
pub fn import(d: &berth_tests::TestDaemon, file: &str, archive: &[u8]) -> Result<Value, Value> {
    let path = d.dir().join(file);
    std::fs::write(&path, archive).expect("write archive");
    d.rpc("images.import", json!({ "path": path }))
}

/// The keys of every snapshot in the default namespace.
pub fn snapshot_keys(d: &berth_tests::TestDaemon) -> Vec<String> {
    d.rpc_ok("snapshots.list", json!({}))["snapshots"]
        .as_array()
        .expect("snapshots.list")
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_owned))
        .collect()
}
