//! The `berth` client's image, snapshot, content and lease commands against a real daemon.

#[path = "../src/images.rs"]
mod images;

use std::process::Command;

use berth_tests::{berth_cli as berth, TestDaemon};
use images::{busybox_layer, oci_image, skopeo, ImageParts};
use serde_json::json;

#[test]
fn berth_imports_lists_inspects_and_removes_images() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let file = d.dir().join("bb.tar");
    std::fs::write(&file, oci_image("bb:1", &parts)).expect("write");
    let (ok, out, err) = berth(
        &d,
        &[
            "images",
            "import",
            "--name",
            "cli:1",
            file.to_str().expect("utf8"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("cli:1 sha256:"), "{out}");
    let (ok, out, _) = berth(&d, &["i", "ls"]);
    assert!(ok && out.contains("cli:1") && out.contains("REF"), "{out}");
    let (ok, out, _) = berth(&d, &["i", "inspect", "cli:1"]);
    assert!(ok && out.contains("\"Cmd\""), "{out}");
    let chain = images::sha256(&busybox_layer());
    let (ok, out, err) = berth(&d, &["snapshots", "prepare", "work", &chain]);
    assert!(ok && out.contains("mount -t overlay"), "{out}{err}");
    let (ok, out, _) = berth(&d, &["snapshots", "tree"]);
    assert!(ok && out.contains(&format!("{chain}\n  work\n")), "{out}");
    let (ok, out, _) = berth(&d, &["snapshots", "usage", "work"]);
    assert!(ok && out.contains("work"), "{out}");
    let (ok, out, _) = berth(&d, &["content", "ls"]);
    assert!(ok && out.contains(&chain), "{out}");
    assert!(berth(&d, &["leases", "create", "l1"]).0);
    let (ok, out, _) = berth(&d, &["leases", "ls"]);
    assert!(ok && out.contains("l1"), "{out}");
    assert!(berth(&d, &["snapshots", "rm", "work"]).0);
    assert!(berth(&d, &["i", "rm", "cli:1"]).0);
    let (ok, out, _) = berth(&d, &["leases", "gc"]);
    assert!(ok && out.contains("\"removed\""), "{out}");
    let (ok, _, err) = berth(&d, &["i", "inspect", "cli:1"]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn imports_are_named_from_the_archive_in_full_and_tag_adds_names() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    // umoci writes a bare tag as ref.name: that is not a name, so the image is named by its
    // digest and the client says so.
    let bare = d.dir().join("bare.tar");
    std::fs::write(&bare, oci_image("latest", &parts)).expect("write");
    let (ok, out, err) = berth(&d, &["images", "import", bare.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("import-"), "{out}");
    assert!(err.contains("images tag"), "{err}");
    // A full reference is stored in full; `images tag` gives another name.
    let full = d.dir().join("full.tar");
    std::fs::write(&full, oci_image("busybox:1.36", &parts)).expect("write");
    let (ok, out, err) = berth(&d, &["images", "import", full.to_str().expect("utf8")]);
    assert!(
        ok && out.starts_with("docker.io/library/busybox:1.36 "),
        "{out} {err}"
    );
    let (ok, out, err) = berth(&d, &["images", "tag", "busybox:1.36", "busybox"]);
    assert!(ok, "{err}");
    assert_eq!(out, "docker.io/library/busybox:latest\n");
    let a = d.rpc_ok("images.get", json!({"name": "busybox"}));
    let b = d.rpc_ok("images.get", json!({"name": "busybox:1.36"}));
    assert_eq!(a["image"]["target"], b["image"]["target"]);
    // Listed with the bytes its layers unpack to (busybox's is about a megabyte), not the
    // manifest's few hundred; a container created from it unpacked the layer first.
    let listed = d.rpc_ok("images.list", json!({}));
    let image = listed["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["name"] == "docker.io/library/busybox:latest")
        .expect("listed")
        .clone();
    let packed = image["size"].as_i64().expect("size");
    assert!(packed > 100_000, "{image}");
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": "sized", "image": "busybox"}}),
    );
    let listed = d.rpc_ok(
        "images.list",
        json!({"filters": ["name==docker.io/library/busybox:latest"]}),
    );
    let unpacked = listed["images"][0]["size"].as_i64().expect("size");
    let layer = busybox_layer().len() as i64;
    assert_eq!(unpacked, layer, "the layer's tar stream, uncompressed");
    d.rpc_ok("containers.delete", json!({"id": "sized"}));
    let err = d
        .rpc("images.tag", json!({"source": "nope", "target": "x"}))
        .expect_err("missing source");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
}

#[test]
fn a_docker_archive_written_by_skopeo_imports_with_its_name() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let oci = d.dir().join("src.tar");
    std::fs::write(&oci, oci_image("example.com/busybox:v1", &parts)).expect("write");
    // skopeo's docker-archive puts manifest.json last, after `<hex>.tar` layers.
    let archive = d.dir().join("docker.tar");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", oci.display()))
        .arg(format!(
            "docker-archive:{}:example.com/busybox:v1",
            archive.display()
        ))
        .output()
        .expect("skopeo (install-deps installs it)");
    assert!(out.status.success(), "skopeo: {out:?}");
    let listing = Command::new("tar")
        .arg("tf")
        .arg(&archive)
        .output()
        .expect("tar");
    let entries = String::from_utf8_lossy(&listing.stdout).into_owned();
    let first = entries.lines().next().unwrap_or_default().to_owned();
    assert!(first.ends_with(".tar"), "a layer comes first: {entries}");
    let (ok, out, err) = berth(&d, &["images", "import", archive.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("example.com/busybox:v1 "), "{out}");
    let got = d.rpc_ok("images.get", json!({"name": "example.com/busybox:v1"}));
    assert_eq!(got["config"]["config"]["Cmd"], json!(["sh"]));
}

#[test]
fn export_writes_what_skopeo_reads_and_a_round_trip_keeps_every_digest() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let src = d.dir().join("src.tar");
    std::fs::write(&src, oci_image("example.com/tools/bb:2", &parts)).expect("write");
    let (ok, out, err) = berth(&d, &["images", "import", src.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    let target = d.rpc_ok("images.get", json!({"name": "example.com/tools/bb:2"}))["image"]
        ["target"]
        .clone();
    let digest = target["digest"].as_str().expect("digest").to_owned();
    assert!(out.contains(&digest), "{out}");

    let docker = d.dir().join("out-docker.tar");
    let oci = d.dir().join("out-oci.tar");
    let (ok, _, err) = berth(
        &d,
        &[
            "images",
            "export",
            "-o",
            docker.to_str().expect("utf8"),
            "example.com/tools/bb:2",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = berth(
        &d,
        &[
            "images",
            "export",
            "--format",
            "oci",
            "-o",
            oci.to_str().expect("utf8"),
            "example.com/tools/bb:2",
        ],
    );
    assert!(ok, "{err}");
    // skopeo reads both, and sees the same manifest digest.
    for reference in [
        format!("oci-archive:{}", oci.display()),
        format!("oci-archive:{}", docker.display()),
        format!("docker-archive:{}", docker.display()),
    ] {
        let out = skopeo(&["inspect", &reference]);
        assert!(out.status.success(), "skopeo inspect {reference}: {out:?}");
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        if reference.starts_with("oci-archive") {
            assert_eq!(info["Digest"], digest.as_str(), "{reference}: {info}");
        }
        assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");
    }
    let out = skopeo(&["inspect", &format!("docker-archive:{}", oci.display())]);
    assert!(!out.status.success(), "the oci format has no manifest.json");

    // berth -> berth: the same names and digests after the image is gone.
    let (ok, _, err) = berth(&d, &["images", "rm", "example.com/tools/bb:2"]);
    assert!(ok, "{err}");
    let (ok, out, err) = berth(&d, &["images", "import", oci.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("example.com/tools/bb:2 {digest}\n"));
    // berth -> skopeo -> berth through skopeo's own docker-archive.
    let via = d.dir().join("via-skopeo.tar");
    let out = skopeo(&[
        "copy",
        &format!("oci-archive:{}", docker.display()),
        &format!("docker-archive:{}:example.com/tools/bb:3", via.display()),
    ]);
    assert!(out.status.success(), "{out:?}");
    let (ok, out, err) = berth(&d, &["images", "import", via.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("example.com/tools/bb:3 "), "{out}");
    let a = d.rpc_ok("images.get", json!({"name": "example.com/tools/bb:2"}));
    let b = d.rpc_ok("images.get", json!({"name": "example.com/tools/bb:3"}));
    assert_eq!(
        a["config"]["rootfs"]["diff_ids"], b["config"]["rootfs"]["diff_ids"],
        "the layers are the same bytes"
    );

    // To stdout, and a missing image is a clear failure that writes nothing.
    let bin = TestDaemon::binary().with_file_name("berth");
    let piped = Command::new(&bin)
        .arg("--socket")
        .arg(d.socket())
        .args(["images", "export", "example.com/tools/bb:2"])
        .output()
        .expect("run berth");
    assert!(piped.status.success());
    assert_eq!(
        piped.stdout,
        std::fs::read(&docker).expect("read"),
        "deterministic"
    );
    let missing = d.dir().join("missing.tar");
    let (ok, _, err) = berth(
        &d,
        &[
            "images",
            "export",
            "-o",
            missing.to_str().expect("utf8"),
            "nope",
        ],
    );
    assert!(!ok && err.contains("nope"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn an_archive_streamed_over_the_socket_imports_and_a_cancelled_one_leaves_nothing() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let archive = images::docker_save(&["streamed:1"], &parts);
    // `-`: the client reads stdin; berthd never opens a path of the client's.
    let bin = TestDaemon::binary().with_file_name("berth");
    let out = berth_tests::process::output_within(
        Command::new(&bin)
            .arg("--socket")
            .arg(d.socket())
            .args(["images", "import", "-"]),
        &archive,
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("docker.io/library/streamed:1 "),
        "{out:?}"
    );

    // Cut off halfway and aborted: the spool goes, and nothing of it reached the content
    // store (an upload is imported only at commit).
    let unique = images::Layer::new()
        .file(
            "only-here",
            format!("{:?}", std::time::SystemTime::now()).as_bytes(),
            0o644,
        )
        .finish();
    let layer_digest = images::sha256(&unique);
    let other = ImageParts::new(vec![unique], json!({"Cmd": ["sh"]}));
    let tar = images::docker_save(&["cut:1"], &other);
    let up = d.rpc_ok("images.upload_begin", json!({}))["upload"].clone();
    use base64::Engine;
    let manifest_at = tar
        .windows(b"manifest.json".len())
        .position(|w| w == b"manifest.json")
        .expect("manifest.json entry");
    let cut = base64::engine::general_purpose::STANDARD.encode(&tar[..manifest_at]);
    d.rpc_ok("images.upload_write", json!({"upload": up, "data": cut}));
    let spools = || -> Vec<u64> {
        std::fs::read_dir(d.root().join("uploads"))
            .expect("berthd's uploads dir")
            .map(|e| e.expect("entry").metadata().expect("stat").len())
            .collect()
    };
    assert_eq!(
        spools(),
        vec![manifest_at as u64],
        "the spool holds what was sent"
    );
    assert_eq!(
        d.rpc_ok("images.upload_abort", json!({"upload": up}))["aborted"],
        true
    );
    assert!(spools().is_empty(), "the abort removed the spool");
    let err = d
        .rpc("images.upload_commit", json!({"upload": up}))
        .expect_err("aborted");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    let err = d
        .rpc("images.upload_write", json!({"upload": up, "data": "!!"}))
        .expect_err("bad base64 or gone");
    assert!(
        ["invalid_argument", "not_found"].contains(&err["data"]["kind"].as_str().unwrap_or("")),
        "{err}"
    );
    assert!(d.rpc("images.get", json!({"name": "cut:1"})).is_err());
    let layer_file = d
        .root()
        .join("content/blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    assert!(!layer_file.exists(), "an aborted upload stored no blob");
}

#[test]
fn an_oci_layout_written_by_umoci_imports_by_digest_or_by_name() {
    let d = TestDaemon::start();
    let layout = d.dir().join("umoci");
    let layout_s = layout.to_str().expect("utf8").to_owned();
    let image = format!("{layout_s}:v1");
    for args in [
        vec!["init", "--layout", layout_s.as_str()],
        vec!["new", "--image", image.as_str()],
        vec![
            "config",
            "--image",
            image.as_str(),
            "--config.cmd",
            "/bin/sh",
        ],
    ] {
        let out = Command::new("umoci")
            .args(&args)
            .output()
            .expect("umoci (install-deps installs it)");
        assert!(out.status.success(), "umoci {args:?}: {out:?}");
    }
    let tar = d.dir().join("umoci.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("tar");
    assert!(out.status.success(), "{out:?}");
    // umoci's ref.name is the bare tag `v1`: not a name.
    let (ok, out, err) = berth(&d, &["images", "import", tar.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("import-"), "{out}");
    let (ok, out, err) = berth(
        &d,
        &[
            "images",
            "import",
            "--name",
            "tools/umoci:v1",
            tar.to_str().expect("utf8"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("tools/umoci:v1 "), "{out}");
    let got = d.rpc_ok("images.get", json!({"name": "tools/umoci:v1"}));
    assert_eq!(got["config"]["config"]["Cmd"], json!(["/bin/sh"]));
}

#[test]
fn list_commands_honour_json_and_ages_are_relative() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let file = d.dir().join("bb.tar");
    std::fs::write(&file, oci_image("bb:1", &parts)).expect("write");
    let (ok, _, err) = berth(&d, &["images", "import", file.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    let (ok, out, err) = berth(&d, &["--json", "snapshots", "usage"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("snapshots usage --json is JSON");
    let usage = v["usage"].as_array().expect("usage");
    assert!(
        !usage.is_empty() && usage.iter().all(|u| u["size"].is_u64()),
        "{v}"
    );
    let (ok, out, err) = berth(&d, &["content", "ls"]);
    assert!(ok, "{err}");
    let row = out.lines().nth(1).expect("a blob row");
    assert!(row.contains(" ago"), "AGE is relative: {row}");
}

/// Docker refuses `rmi` of an image containers use (issue 31, item 18): `berth images rm`
/// names them and fails with `failed_precondition`, whichever spelling of the name the
/// containers and the command use; `-f` removes the name anyway; an unused image goes.
#[test]
fn images_rm_is_refused_while_containers_use_the_image_unless_forced() {
    let d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Cmd": ["sh"]}));
    let file = d.dir().join("bb.tar");
    std::fs::write(&file, oci_image("docker.io/library/busybox:latest", &parts)).expect("write");
    let file = file.to_str().expect("utf8");
    assert!(berth(&d, &["images", "import", file]).0);
    assert!(berth(&d, &["images", "import", "--name", "spare:1", file]).0);
    for (id, image) in [
        ("web", "busybox"),
        ("db", "docker.io/library/busybox:latest"),
    ] {
        d.rpc_ok(
            "containers.create",
            json!({"container": {"id": id, "image": image}}),
        );
    }
    let (ok, _, err) = berth(&d, &["images", "rm", "busybox"]);
    assert!(!ok, "removed an image two containers use");
    assert!(
        err.contains("failed_precondition") && err.contains("\"web\"") && err.contains("\"db\""),
        "{err}"
    );
    let refused = d
        .rpc(
            "images.delete",
            json!({"name": "docker.io/library/busybox:latest"}),
        )
        .expect_err("in use");
    assert_eq!(refused["data"]["kind"], "failed_precondition", "{refused}");
    assert!(
        berth(&d, &["images", "inspect", "busybox"]).0,
        "still there"
    );
    // An image no container names goes without -f.
    let (ok, _, err) = berth(&d, &["images", "rm", "spare:1"]);
    assert!(ok, "{err}");
    let (ok, out, err) = berth(&d, &["images", "rm", "-f", "busybox"]);
    assert!(ok, "{err}");
    assert_eq!(out, "busybox\n");
    assert!(!berth(&d, &["images", "inspect", "busybox"]).0, "gone");
    for id in ["web", "db"] {
        d.rpc_ok("containers.delete", json!({"id": id}));
    }
}
