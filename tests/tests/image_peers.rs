//! Images in and out of berth through the other runtimes' own tools (issue 15): what berth
//! exports, `ctr images import`, `docker load` and `podman load` take; what `ctr images
//! export`, classic `docker save` and `podman save` (both formats) write, berth imports with
//! its names and every digest. The archives berth imports here are written by those tools,
//! not by hand.

#[path = "../src/images.rs"]
mod images;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use berth_tests::peers::{Containerd, Dockerd, Podman};
use berth_tests::{berth_cli as berth, TestDaemon};
use images::{busybox_parts, oci_image, ImageParts, Layer, MultiPlatform};
use serde_json::{json, Value};

/// Every regular file of a tar by path, and its symlinks (path -> target).
fn entries(path: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let file = std::fs::File::open(path).expect("open archive");
    let mut tar = tar::Archive::new(file);
    let (mut files, mut links) = (BTreeMap::new(), BTreeMap::new());
    for e in tar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_owned();
        match e.header().entry_type() {
            tar::EntryType::Symlink => {
                let to = e.link_name().expect("link").expect("target");
                links.insert(name, to.to_string_lossy().into_owned());
            }
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).expect("read entry");
                files.insert(name, data);
            }
            _ => {}
        }
    }
    (files, links)
}

/// What berth holds for `name` in `ns`: its target digest, config digest and diff ids.
struct Held {
    target: String,
    config: Value,
}

fn held(d: &TestDaemon, ns: &str, name: &str) -> Held {
    let got = d.rpc_ok("images.get", json!({"namespace": ns, "name": name}));
    Held {
        target: got["image"]["target"]["digest"]
            .as_str()
            .expect("digest")
            .to_owned(),
        config: got["config"].clone(),
    }
}

fn import_ns(d: &TestDaemon, ns: &str, path: &Path, extra: Value) -> Result<Value, Value> {
    let mut p = json!({"namespace": ns, "path": path});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            p[k] = v;
        }
    }
    d.rpc("images.import", p)
}

fn export(d: &TestDaemon, args: &[&str], out: &Path) {
    let mut all = vec!["images", "export", "-o", out.to_str().expect("utf8")];
    all.extend_from_slice(args);
    let (ok, _, err) = berth(d, &all);
    assert!(ok, "berth images export {args:?}: {err}");
}

/// The config digest of the manifest an OCI archive's index.json names for `name`.
fn config_digest_in(path: &Path) -> String {
    let (files, _) = entries(path);
    let index: Value = serde_json::from_slice(&files["index.json"]).expect("index.json");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let blob =
        |d: &str| files[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))].clone();
    let manifest: Value = serde_json::from_slice(&blob(digest)).expect("manifest");
    manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_owned()
}

fn import_busybox(d: &TestDaemon, name: &str, parts: &ImageParts) -> Held {
    let src = d
        .dir()
        .join(format!("{}.tar", name.replace(['/', ':'], "_")));
    std::fs::write(&src, oci_image(name, parts)).expect("write");
    d.rpc_ok("images.import", json!({"path": src}));
    held(d, "default", name)
}

#[test]
fn ctr_imports_what_berth_exports_and_berth_takes_back_what_ctr_exports() {
    let d = TestDaemon::start();
    let name = "example.com/peers/bb:1";
    let mine = import_busybox(&d, name, &busybox_parts());
    let ctd = Containerd::start();
    for format in ["oci", "docker"] {
        let out = d.dir().join(format!("to-ctr-{format}.tar"));
        export(&d, &["--format", format, name], &out);
        let ns = format!("from-berth-{format}");
        ctd.ctr(&["-n", &ns, "images", "import", out.to_str().expect("utf8")]);
        let listed = ctd.ctr(&["-n", &ns, "images", "ls"]);
        let row = listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("ctr lists no {name}: {listed}"));
        assert!(row.contains(&mine.target), "{row}");
        // ctr unpacked it into a snapshot it can mount.
        let snaps = ctd.ctr(&["-n", &ns, "snapshots", "ls"]);
        assert!(snaps.lines().count() > 1, "{snaps}");
    }
    // ctr's own export comes back with the same name and every digest.
    let back = d.dir().join("from-ctr.tar");
    ctd.ctr(&[
        "-n",
        "from-berth-oci",
        "images",
        "export",
        back.to_str().expect("utf8"),
        name,
    ]);
    let res = import_ns(&d, "from-ctr", &back, json!({})).expect("import ctr's export");
    assert_eq!(res["images"][0]["name"], name, "{res}");
    let theirs = held(&d, "from-ctr", name);
    assert_eq!(theirs.target, mine.target);
    assert_eq!(theirs.config, mine.config);
}

#[test]
fn all_platforms_travels_through_ctr_and_skopeo_with_the_index_digest() {
    let d = TestDaemon::start();
    let name = "example.com/peers/multi:1";
    let multi = MultiPlatform::new(json!({ "io.containerd.image.name": name }));
    let src = d.dir().join("multi.tar");
    std::fs::write(&src, &multi.archive).expect("write");
    // ctr writes the corpus: its all-platform export, and its host-only one.
    let ctd = Containerd::start();
    ctd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        src.to_str().expect("utf8"),
    ]);
    let all = d.dir().join("ctr-all.tar");
    let host = d.dir().join("ctr-host.tar");
    ctd.ctr(&[
        "images",
        "export",
        "--all-platforms",
        all.to_str().expect("utf8"),
        name,
    ]);
    ctd.ctr(&["images", "export", host.to_str().expect("utf8"), name]);

    let res = import_ns(&d, "all", &all, json!({"all_platforms": true})).expect("import");
    let index = res["images"][0]["target"].clone();
    assert_eq!(index["media_type"], images::INDEX, "{res}");
    let both = import_ns(
        &d,
        "x",
        &all,
        json!({"all_platforms": true, "platform": "linux/amd64"}),
    )
    .expect_err("one or the other");
    assert_eq!(both["data"]["kind"], "invalid_argument", "{both}");

    // berth's all-platform export is the same index, which skopeo and ctr read whole.
    let out = d.dir().join("berth-all.tar");
    let (ok, _, err) = berth(
        &d,
        &[
            "-n",
            "all",
            "images",
            "export",
            "--all-platforms",
            "--format",
            "oci",
            "-o",
            out.to_str().expect("utf8"),
            name,
        ],
    );
    assert!(ok, "{err}");
    let raw = images::skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", out.display()),
    ]);
    assert_eq!(
        images::sha256(&raw),
        index["digest"].as_str().expect("digest"),
        "skopeo reads berth's index byte for byte"
    );
    let copied = d.dir().join("skopeo-dir");
    images::skopeo_ok(&[
        "copy",
        "--all",
        &format!("oci-archive:{}", out.display()),
        &format!("oci:{}", copied.display()),
    ]);
    ctd.ctr(&[
        "-n",
        "again",
        "images",
        "import",
        "--all-platforms",
        out.to_str().expect("utf8"),
    ]);
    let listed = ctd.ctr(&["-n", "again", "images", "ls"]);
    assert!(
        listed.contains(index["digest"].as_str().expect("digest")),
        "{listed}"
    );
    // On a berth that holds only the host's platform (content is shared by namespaces, so
    // a second daemon): all_platforms refuses ctr's host-only export naming what it lacks,
    // and an image imported from it cannot be exported whole, before any byte is written.
    let lone = TestDaemon::start();
    let err = import_ns(&lone, "default", &host, json!({"all_platforms": true}))
        .expect_err("lacks the other platform");
    assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("linux/{}", multi.other_arch)),
        "{msg}"
    );
    import_ns(&lone, "default", &host, json!({})).expect("the host's platform alone imports");
    let partial = lone.dir().join("partial.tar");
    let (ok, _, err) = berth(
        &lone,
        &[
            "images",
            "export",
            "--all-platforms",
            "-o",
            partial.to_str().expect("utf8"),
            name,
        ],
    );
    assert!(!ok && err.contains("all_platforms"), "{err}");
    assert!(!partial.exists());
    // Without all_platforms it goes out as the host's manifest.
    export(&lone, &[name], &partial);
}

#[test]
fn docker_loads_what_berth_exports_and_berth_imports_classic_docker_save() {
    let d = TestDaemon::start();
    let base = busybox_parts();
    // A second image on top of the first, with one layer twice: docker save writes the
    // repeat as a symlink to the first copy.
    let extra = Layer::new().file("etc/app", b"app\n", 0o644).finish();
    let mut layers = base.layers.clone();
    layers.push(extra.clone());
    layers.push(Layer::new().file("etc/more", b"x\n", 0o644).finish());
    layers.push(extra);
    let top = ImageParts::new(layers, json!({"Cmd": ["sh", "-c", "cat /etc/app"]}));
    let a = import_busybox(&d, "example.com/peers/dk:1", &base);
    let b = import_busybox(&d, "example.com/peers/dk:2", &top);

    let out = d.dir().join("to-docker.tar");
    export(
        &d,
        &["example.com/peers/dk:1", "example.com/peers/dk:2"],
        &out,
    );
    let docker = Dockerd::start();
    let loaded = docker.docker(&["load", "-i", out.to_str().expect("utf8")]);
    for tag in ["example.com/peers/dk:1", "example.com/peers/dk:2"] {
        assert!(loaded.contains(tag), "{loaded}");
    }
    let id = |tag: &str| docker.docker(&["image", "inspect", "--format", "{{.Id}}", tag]);
    let exported = d.dir().join("exported.tar");
    export(
        &d,
        &["--format", "oci", "example.com/peers/dk:1"],
        &exported,
    );
    assert_eq!(
        id("example.com/peers/dk:1").trim(),
        config_digest_in(&exported),
        "docker's image id is berth's config digest"
    );

    let saved = d.dir().join("docker-save.tar");
    docker.docker(&[
        "save",
        "-o",
        saved.to_str().expect("utf8"),
        "example.com/peers/dk:1",
        "example.com/peers/dk:2",
    ]);
    // It is the classic format: <id>/layer.tar, <id>/json, manifest.json, repositories.
    let (files, links) = entries(&saved);
    assert!(files.contains_key("repositories"), "{:?}", files.keys());
    assert!(files.contains_key("manifest.json"));
    assert!(
        files.keys().any(|k| k.ends_with("/layer.tar")) && !files.contains_key("index.json"),
        "{:?}",
        files.keys()
    );
    assert!(
        links.values().all(|t| t.ends_with("/layer.tar")) && !links.is_empty(),
        "docker save links the repeated layer to its first copy: {links:?}"
    );
    let res = import_ns(&d, "from-docker", &saved, json!({})).expect("import docker save");
    let mut names: Vec<&str> = res["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["example.com/peers/dk:1", "example.com/peers/dk:2"],
        "{res}"
    );
    for (tag, mine) in [
        ("example.com/peers/dk:1", &a),
        ("example.com/peers/dk:2", &b),
    ] {
        let theirs = held(&d, "from-docker", tag);
        assert_eq!(
            theirs.config, mine.config,
            "{tag}: the same config, layer for layer"
        );
    }
}

#[test]
fn podman_loads_what_berth_exports_and_both_podman_save_formats_come_back() {
    let d = TestDaemon::start();
    let name = "example.com/peers/pd:1";
    let mine = import_busybox(&d, name, &busybox_parts());
    let out = d.dir().join("to-podman.tar");
    export(&d, &[name], &out);
    let podman = Podman::new();
    let loaded = podman.podman(&["load", "-i", out.to_str().expect("utf8")]);
    assert!(loaded.contains(name), "{loaded}");
    for format in ["docker-archive", "oci-archive"] {
        let saved = d.dir().join(format!("podman-{format}.tar"));
        podman.podman(&[
            "save",
            "--format",
            format,
            "-o",
            saved.to_str().expect("utf8"),
            name,
        ]);
        let ns = format!("from-{format}");
        let res = import_ns(&d, &ns, &saved, json!({}))
            .unwrap_or_else(|e| panic!("import podman's {format}: {e}"));
        let got = res["images"][0]["name"].as_str().expect("name").to_owned();
        if format == "docker-archive" {
            assert_eq!(got, name, "{res}");
        }
        let theirs = held(&d, &ns, &got);
        assert_eq!(theirs.config, mine.config, "{format}");
    }
}

#[test]
fn layers_skopeo_recompresses_with_gzip_and_zstd_import_and_go_back_to_skopeo_unchanged() {
    let d = TestDaemon::start();
    let name = "example.com/peers/z:1";
    let mine = import_busybox(&d, name, &busybox_parts());
    let out = d.dir().join("plain.tar");
    export(&d, &["--format", "oci", name], &out);
    for (format, media) in [("gzip", images::LAYER_GZIP), ("zstd", images::LAYER_ZSTD)] {
        let dest = d.dir().join(format!("{format}.tar"));
        images::skopeo_ok(&[
            "copy",
            "--dest-compress-format",
            format,
            &format!("oci-archive:{}", out.display()),
            &format!("oci-archive:{}:{name}", dest.display()),
        ]);
        let ns = format!("re-{format}");
        let res = import_ns(&d, &ns, &dest, json!({})).expect("import");
        assert_eq!(res["images"][0]["name"], name, "{res}");
        let theirs = held(&d, &ns, name);
        assert_ne!(theirs.target, mine.target, "{format}: a new manifest");
        assert_eq!(
            theirs.config["rootfs"], mine.config["rootfs"],
            "{format}: the same layers once uncompressed"
        );
        let (files, _) = entries(&dest);
        let manifest: Value = serde_json::from_slice(
            &files[&format!(
                "blobs/sha256/{}",
                theirs.target.trim_start_matches("sha256:")
            )],
        )
        .expect("manifest");
        assert_eq!(manifest["layers"][0]["mediaType"], media, "{manifest}");
        // skopeo -> berth -> skopeo: berth's export is skopeo's manifest, digest for digest.
        let again = d.dir().join(format!("{format}-again.tar"));
        let (ok, _, err) = berth(
            &d,
            &[
                "-n",
                &ns,
                "images",
                "export",
                "-o",
                again.to_str().expect("utf8"),
                name,
            ],
        );
        assert!(ok, "{err}");
        for archive in [&dest, &again] {
            let out =
                images::skopeo_ok(&["inspect", &format!("oci-archive:{}", archive.display())]);
            let info: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(
                info["Digest"],
                theirs.target.as_str(),
                "{archive:?}: {info}"
            );
        }
    }
}
