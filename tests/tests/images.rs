//! Images through the real daemon: OCI layouts, `docker save` tars and indexes are imported,
//! unpacked into snapshots and checked file by file; snapshots keep containerd's semantics.

#[path = "../src/images.rs"]
mod images;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::{expect_error, message, TestDaemon};
use images::{busybox_layer, busybox_parts, oci_image, ImageParts, Layer, MultiPlatform};
use serde_json::{json, Value};

/// A mount made by the test; unmounted on drop, on every path.
struct Mounted(PathBuf);

impl Mounted {
    fn new(mounts: &Value, target: &Path) -> Mounted {
        std::fs::create_dir_all(target).expect("mkdir target");
        let m = &mounts[0];
        let opts: Vec<String> = m["options"]
            .as_array()
            .expect("options")
            .iter()
            .map(|o| o.as_str().expect("str").to_owned())
            .collect();
        let mut cmd = Command::new("mount");
        if m["type"] == "bind" {
            cmd.args(["--bind", "-o", "ro"]);
        } else {
            cmd.args([
                "-t",
                m["type"].as_str().expect("type"),
                "-o",
                &opts.join(","),
            ]);
        }
        let out = cmd
            .arg(m["source"].as_str().expect("source"))
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {mounts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mounted(target.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn import(d: &TestDaemon, file: &str, archive: &[u8], extra: Value) -> Result<Value, Value> {
    let path = d.dir().join(file);
    std::fs::write(&path, archive).expect("write archive");
    let mut params = json!({"path": path});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            params[k] = v;
        }
    }
    d.rpc("images.import", params)
}

/// The fs directory of the top layer behind a snapshot's mounts.
fn top_dir(mounts: &Value) -> PathBuf {
    let m = &mounts[0];
    if m["type"] == "bind" {
        return PathBuf::from(m["source"].as_str().expect("source"));
    }
    let lower = m["options"]
        .as_array()
        .expect("options")
        .iter()
        .find_map(|o| o.as_str().and_then(|s| s.strip_prefix("lowerdir=")))
        .expect("lowerdir");
    PathBuf::from(lower.split(':').next().expect("top"))
}

fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(p) => images::sha256(format!("{p} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and outlive the call; buf is writable.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn busybox_oci_layout_imports_and_unpacks_file_by_file() {
    let d = TestDaemon::start();
    let res = import(
        &d,
        "bb.tar",
        &oci_image("docker.io/library/busybox:latest", &busybox_parts()),
        json!({}),
    )
    .expect("import");
    assert_eq!(res["images"][0]["name"], "docker.io/library/busybox:latest");
    let got = d.rpc_ok(
        "images.get",
        json!({"name": "docker.io/library/busybox:latest"}),
    );
    assert_eq!(got["config"]["config"]["Cmd"], json!(["sh"]));
    assert_eq!(got["image"]["target"]["media_type"], images::MANIFEST);
    let list = d.rpc_ok("images.list", json!({"filters": ["name~=busybox"]}));
    assert_eq!(list["images"].as_array().expect("images").len(), 1);
    let none = d.rpc_ok("images.list", json!({"filters": ["name==alpine"]}));
    assert!(none["images"].as_array().expect("images").is_empty());

    let chain = images::sha256(&busybox_layer());
    let stat = d.rpc_ok("snapshots.stat", json!({"key": chain}));
    assert_eq!(stat["info"]["kind"], "committed");
    let view = d.rpc_ok("snapshots.view", json!({"key": "look", "parent": chain}));
    let top = top_dir(&view["mounts"]);
    let busybox = std::fs::read("/bin/busybox").expect("busybox");
    assert_eq!(
        std::fs::read(top.join("bin/busybox")).expect("read"),
        busybox
    );
    let meta = std::fs::metadata(top.join("bin/busybox")).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(top.join("bin/sh")).expect("link"),
        Path::new("busybox")
    );
    let tmp = std::fs::symlink_metadata(top.join("tmp")).expect("tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777, "sticky bit kept");
    assert!(std::fs::read_to_string(top.join("etc/passwd"))
        .expect("passwd")
        .contains("app:x:1000"));

    // Events as containerd names them.
    let events = d.rpc_ok("events.list", json!({}));
    let topics: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["topic"].as_str())
        .collect();
    for t in ["/snapshot/prepare", "/snapshot/commit", "/images/create"] {
        assert!(topics.contains(&t), "{t} in {topics:?}");
    }
}

#[test]
fn layers_with_whiteouts_and_opaque_dirs_unpack_for_overlayfs_and_native() {
    let d = TestDaemon::start();
    let base = {
        let mut l = Layer::new();
        l.dir("a", 0o755)
            .file("a/x", b"x", 0o644)
            .file("a/y", b"y", 0o644)
            .dir("b", 0o755)
            .file("b/old", b"old", 0o644)
            .file_owned("suid", b"s", 0o4755, 1000, 50)
            .fifo("pipe")
            .file("hard1", b"h", 0o600)
            .hardlink("hard2", "hard1")
            .dir("empty", 0o700);
        l.finish()
    };
    let top = {
        let mut l = Layer::new();
        l.whiteout("a", "x")
            .opaque("b")
            .file("b/new", b"new", 0o644);
        l.finish()
    };
    let mut parts = ImageParts::new(vec![base.clone(), top.clone()], json!({"Cmd": ["sh"]}));
    parts.gzip = true;
    import(&d, "wh.tar", &oci_image("wh:1", &parts), json!({})).expect("import overlayfs");
    let chain = chain_ids(&[images::sha256(&base), images::sha256(&top)]);
    let view = d.rpc_ok("snapshots.view", json!({"key": "v", "parent": chain[1]}));
    let upper = top_dir(&view["mounts"]);
    let wh = std::fs::symlink_metadata(upper.join("a/x")).expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "a/x is a 0/0 char device"
    );
    assert_eq!(
        xattr(&upper.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!upper.join("b/.wh..wh..opq").exists());

    // The merged view, mounted as a runtime would: whiteouts hide, opaque dirs hide.
    let merged = Mounted::new(&view["mounts"], &d.dir().join("merged"));
    let m = &merged.0;
    assert!(!m.join("a/x").exists());
    assert_eq!(std::fs::read(m.join("a/y")).expect("a/y"), b"y");
    assert!(!m.join("b/old").exists());
    assert_eq!(std::fs::read(m.join("b/new")).expect("b/new"), b"new");
    let suid = std::fs::metadata(m.join("suid")).expect("suid");
    assert_eq!(
        (suid.mode() & 0o7777, suid.uid(), suid.gid()),
        (0o4755, 1000, 50)
    );
    assert!(std::fs::symlink_metadata(m.join("pipe"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    let (h1, h2) = (
        std::fs::metadata(m.join("hard1")).expect("h1"),
        std::fs::metadata(m.join("hard2")).expect("h2"),
    );
    assert_eq!(h1.ino(), h2.ino(), "hard link kept");
    assert!(m.join("empty").is_dir());
    drop(merged);

    // native: whiteouts delete; the top snapshot is a full tree.
    import(
        &d,
        "wh2.tar",
        &oci_image("wh:1", &parts),
        json!({"snapshotter": "native"}),
    )
    .expect("import native");
    let view = d.rpc_ok(
        "snapshots.view",
        json!({"key": "v", "parent": chain[1], "snapshotter": "native"}),
    );
    assert_eq!(view["mounts"][0]["type"], "bind");
    let tree = top_dir(&view["mounts"]);
    assert!(!tree.join("a/x").exists() && tree.join("a/y").exists());
    assert!(!tree.join("b/old").exists() && tree.join("b/new").exists());
    assert_eq!(
        std::fs::metadata(tree.join("suid")).expect("suid").mode() & 0o7777,
        0o4755
    );
    let info = d.rpc_ok("system.info", json!({}));
    assert_eq!(info["snapshotters"], json!(["native", "overlayfs"]));
}

#[test]
fn an_index_resolves_to_the_host_platform_and_docker_save_uses_repo_tags() {
    let d = TestDaemon::start();
    let multi = MultiPlatform::new(json!({"org.opencontainers.image.ref.name": "multi:1"}));
    import(&d, "idx.tar", &multi.archive, json!({})).expect("import index");
    let got = d.rpc_ok("images.get", json!({"name": "multi:1"}));
    assert_eq!(got["image"]["target"]["media_type"], images::INDEX);
    assert_eq!(
        got["config"]["config"]["Cmd"],
        json!(["sh"]),
        "the host's manifest"
    );

    // docker save: names from RepoTags, a duplicated layer stored as a symlink, the
    // `name` param renames.
    let extra = Layer::new().file("hello", b"hi", 0o644).finish();
    let parts = ImageParts::new(
        vec![busybox_layer(), extra.clone(), extra],
        json!({"Cmd": ["sh"]}),
    );
    let res = import(
        &d,
        "save.tar",
        &images::docker_save(&["saved:1", "saved:latest"], &parts),
        json!({}),
    )
    .expect("docker save import");
    let names: Vec<&str> = res["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    // Stored in full, as images.pull names them; the short form still finds them.
    assert_eq!(
        names,
        [
            "docker.io/library/saved:1",
            "docker.io/library/saved:latest"
        ]
    );
    let got = d.rpc_ok("images.get", json!({"name": "saved:1"}));
    assert_eq!(
        got["config"]["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .len(),
        3
    );
    let res = import(
        &d,
        "save2.tar",
        &images::docker_save(&["x:1"], &busybox_parts()),
        json!({"name": "renamed:2"}),
    )
    .expect("named import");
    assert_eq!(res["images"][0]["name"], "docker.io/library/renamed:2");
    // Layers are shared: busybox's chain id snapshot exists once.
    let snaps = d.rpc_ok(
        "snapshots.list",
        json!({"filters": [format!("key=={}", images::sha256(&busybox_layer()))]}),
    );
    assert_eq!(snaps["snapshots"].as_array().expect("list").len(), 1);
}

#[test]
fn snapshots_follow_containerds_semantics() {
    let d = TestDaemon::start();
    let m = d.rpc_ok(
        "snapshots.prepare",
        json!({"key": "base-active", "labels": {"a": "1"}}),
    );
    assert_eq!(m["mounts"][0]["type"], "bind");
    assert_eq!(m["mounts"][0]["options"], json!(["rw", "rbind"]));
    let dir = PathBuf::from(m["mounts"][0]["source"].as_str().expect("source"));
    std::fs::write(dir.join("file"), vec![7u8; 10_000]).expect("write into the snapshot");
    let usage = d.rpc_ok("snapshots.usage", json!({"key": "base-active"}));
    assert!(
        usage["size"].as_u64().expect("size") >= 10_000 && usage["inodes"] == 2,
        "{usage}"
    );
    let err = expect_error(
        d.rpc(
            "snapshots.prepare",
            json!({"key": "child", "parent": "base-active"}),
        ),
        "failed_precondition",
    );
    assert!(message(&err).contains("base-active"), "{err}");
    d.rpc_ok(
        "snapshots.commit",
        json!({"name": "base", "key": "base-active"}),
    );
    expect_error(
        d.rpc("snapshots.stat", json!({"key": "base-active"})),
        "not_found",
    );
    let info = d.rpc_ok("snapshots.stat", json!({"key": "base"}));
    assert_eq!(info["info"]["kind"], "committed");
    assert_eq!(info["info"]["labels"], json!({"a": "1"}));

    let m = d.rpc_ok(
        "snapshots.prepare",
        json!({"key": "work", "parent": "base"}),
    );
    let opts = m["mounts"][0]["options"].as_array().expect("options");
    assert_eq!(m["mounts"][0]["type"], "overlay");
    assert!(opts
        .iter()
        .any(|o| o.as_str().is_some_and(|s| s.starts_with("upperdir="))));
    let v = d.rpc_ok("snapshots.view", json!({"key": "look", "parent": "base"}));
    assert_eq!(v["mounts"][0]["type"], "bind");
    assert_eq!(v["mounts"][0]["options"][0], "ro");
    assert_eq!(
        d.rpc_ok("snapshots.mounts", json!({"key": "work"}))["mounts"],
        m["mounts"]
    );
    let merged = Mounted::new(&m["mounts"], &d.dir().join("work-root"));
    assert_eq!(
        std::fs::read(merged.0.join("file"))
            .expect("file via overlay")
            .len(),
        10_000
    );
    drop(merged);

    let err = expect_error(
        d.rpc("snapshots.remove", json!({"key": "base"})),
        "failed_precondition",
    );
    assert!(message(&err).contains("child"), "{err}");
    expect_error(
        d.rpc("snapshots.commit", json!({"name": "x", "key": "look"})),
        "failed_precondition",
    );
    expect_error(
        d.rpc("snapshots.prepare", json!({"key": "work"})),
        "already_exists",
    );
    let list = d.rpc_ok("snapshots.list", json!({"filters": ["parent==base"]}));
    assert_eq!(list["snapshots"].as_array().expect("list").len(), 2);
    d.rpc_ok("snapshots.remove", json!({"key": "work"}));
    d.rpc_ok("snapshots.remove", json!({"key": "look"}));
    d.rpc_ok("snapshots.remove", json!({"key": "base"}));
    assert!(!dir.exists(), "the directory went with the snapshot");
    expect_error(
        d.rpc(
            "snapshots.prepare",
            json!({"key": "k", "snapshotter": "zfs"}),
        ),
        "invalid_argument",
    );
}

#[test]
fn import_with_a_platform_takes_that_manifest_of_a_multi_platform_image() {
    let d = TestDaemon::start();
    let multi = MultiPlatform::new(json!({"io.containerd.image.name": "example.com/multi:2"}));
    let (archive, other_manifest) = (&multi.archive, &multi.other_manifest);
    let platform = format!("linux/{}", multi.other_arch);
    let res = import(&d, "p.tar", archive, json!({ "platform": platform })).expect("import");
    let image = &res["images"][0];
    assert_eq!(image["name"], "example.com/multi:2");
    assert_eq!(
        image["target"]["digest"],
        other_manifest.as_str(),
        "{image}"
    );
    let got = d.rpc_ok("images.get", json!({"name": "example.com/multi:2"}));
    assert_eq!(got["config"]["config"]["Cmd"], json!(["other"]));
    for (bad, kind) in [("linux/s390x", "not_found"), ("s390x", "invalid_argument")] {
        let err = import(&d, "p2.tar", archive, json!({ "platform": bad })).expect_err(bad);
        assert_eq!(err["data"]["kind"], kind, "{bad}: {err}");
    }
}
