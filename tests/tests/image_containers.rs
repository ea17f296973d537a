//! Containers from images, deletion of their snapshots, leases, garbage collection and
//! hostile layers, through the real daemon.

#[path = "../src/images.rs"]
mod images;

use std::path::Path;

use berth_tests::{expect_error, message, TestDaemon};
use images::{busybox_layer, import, oci_image, snapshot_keys, ImageParts, Layer};
use serde_json::{json, Value};

fn busybox(d: &TestDaemon, name: &str) {
    let parts = ImageParts::new(
        vec![busybox_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "HOME=/root"], "User": "app", "WorkingDir": "/tmp"}),
    );
    import(d, "bb.tar", &oci_image(name, &parts)).expect("import busybox");
}

#[test]
fn create_with_only_an_image_builds_the_spec_and_prepares_the_rootfs() {
    let d = TestDaemon::start();
    busybox(&d, "bb:1");
    let c = d.rpc_ok(
        "containers.create",
        json!({"container": {"id": "web", "image": "bb:1"}, "spec_options": {"args": ["echo", "hi"], "env": ["A=1"]}}),
    )["container"].clone();
    assert_eq!(c["snapshotter"], "overlayfs");
    assert_eq!(c["snapshot_key"], "web");
    let p = &c["spec"]["process"];
    assert_eq!(p["args"], json!(["echo", "hi"]));
    assert_eq!(
        p["user"]["uid"], 1000,
        "USER app resolved in the image's /etc/passwd"
    );
    assert_eq!(p["user"]["gid"], 1000);
    assert_eq!(p["cwd"], "/tmp");
    let env: Vec<&str> = p["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"HOME=/root") && env.contains(&"A=1"),
        "{env:?}"
    );
    assert_eq!(c["spec"]["hostname"], "web");
    let stat = d.rpc_ok("snapshots.stat", json!({"key": "web"}));
    assert_eq!(stat["info"]["kind"], "active");
    assert_eq!(stat["info"]["parent"], images::sha256(&busybox_layer()));

    // Mount the rootfs as a runtime would and run busybox from it with runc.
    let mounts = d.rpc_ok("snapshots.mounts", json!({"key": "web"}))["mounts"].clone();
    assert_eq!(
        mounts[0]["type"], "overlay",
        "an active snapshot on a layer is an overlay"
    );
    let bundle = d.dir().join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir");
    let guard = MountGuard::mount(&mounts, &rootfs);
    let mut spec = c["spec"].clone();
    spec["process"]["terminal"] = json!(false);
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("spec");
    let id = format!("berth-img-{}", std::process::id());
    let out = std::process::Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runc run");
    let _ = std::process::Command::new("runc")
        .args(["delete", "-f", &id])
        .output();
    drop(guard);
    assert!(
        out.status.success(),
        "runc run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

struct MountGuard(std::path::PathBuf);

impl MountGuard {
    /// Mounts the first of a snapshot's mounts (`{type, source, options}`) at `target`.
    fn mount(mounts: &Value, target: &Path) -> MountGuard {
        let m = &mounts[0];
        let opts: Vec<&str> = m["options"]
            .as_array()
            .expect("options")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                m["type"].as_str().expect("type"),
                "-o",
                &opts.join(","),
            ])
            .arg(m["source"].as_str().expect("source"))
            .arg(target)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount {m}");
        MountGuard(target.to_owned())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn create_from_an_image_is_all_or_nothing() {
    let d = TestDaemon::start();
    busybox(&d, "bb:1");
    let err = expect_error(
        d.rpc(
            "containers.create",
            json!({"container": {"id": "c1", "image": "nope:1"}}),
        ),
        "not_found",
    );
    assert!(
        message(&err).contains("nope:1") && message(&err).contains("c1"),
        "{err}"
    );
    // The snapshot half fails (its key is taken): no container remains.
    d.rpc_ok("snapshots.prepare", json!({"key": "c2"}));
    expect_error(
        d.rpc(
            "containers.create",
            json!({"container": {"id": "c2", "image": "bb:1"}}),
        ),
        "already_exists",
    );
    expect_error(d.rpc("containers.get", json!({"id": "c2"})), "not_found");
    // The container half fails (its id is taken): no snapshot remains.
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": "c3", "spec": berth_tests::spec()}}),
    );
    expect_error(
        d.rpc(
            "containers.create",
            json!({"container": {"id": "c3", "image": "bb:1"}}),
        ),
        "already_exists",
    );
    expect_error(d.rpc("snapshots.stat", json!({"key": "c3"})), "not_found");
    // A bad USER fails before anything is written.
    let err = expect_error(
        d.rpc("containers.create", json!({"container": {"id": "c4", "image": "bb:1"}, "spec_options": {"user": "nobody-here"}})),
        "invalid_argument",
    );
    assert!(message(&err).contains("nobody-here"), "{err}");
    expect_error(d.rpc("snapshots.stat", json!({"key": "c4"})), "not_found");
}

#[test]
fn deleting_a_container_removes_its_unshared_snapshot_only() {
    let d = TestDaemon::start();
    busybox(&d, "bb:1");
    let create = |id: &str| {
        d.rpc_ok(
            "containers.create",
            json!({"container": {"id": id, "image": "bb:1"}}),
        )
    };
    create("a");
    d.rpc_ok("containers.delete", json!({"id": "a"}));
    expect_error(d.rpc("snapshots.stat", json!({"key": "a"})), "not_found");

    create("b");
    d.rpc_ok(
        "containers.delete",
        json!({"id": "b", "keep_snapshot": true}),
    );
    d.rpc_ok("snapshots.stat", json!({"key": "b"}));

    create("c");
    d.rpc_ok("leases.create", json!({"id": "hold"}));
    d.rpc_ok(
        "leases.add_resource",
        json!({"id": "hold", "resource": {"id": "c", "type": "snapshots/overlayfs"}}),
    );
    d.rpc_ok("containers.delete", json!({"id": "c"}));
    d.rpc_ok("snapshots.stat", json!({"key": "c"}));

    create("d");
    let mut other = berth_tests::container("d2");
    other["snapshot_key"] = json!("d");
    other["snapshotter"] = json!("overlayfs");
    d.rpc_ok("containers.create", json!({"container": other}));
    d.rpc_ok("containers.delete", json!({"id": "d"}));
    d.rpc_ok("snapshots.stat", json!({"key": "d"}));
    d.rpc_ok("containers.delete", json!({"id": "d2"}));
    expect_error(d.rpc("snapshots.stat", json!({"key": "d"})), "not_found");
}

#[test]
fn gc_removes_only_what_nothing_references() {
    let d = TestDaemon::start();
    let extra = Layer::new().file("only-in-two", b"2", 0o644).finish();
    busybox(&d, "one:1");
    let two = ImageParts::new(vec![busybox_layer(), extra.clone()], json!({"Cmd": ["sh"]}));
    import(&d, "two.tar", &oci_image("two:1", &two)).expect("import two");
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": "keeper", "image": "one:1"}}),
    );
    d.rpc_ok("snapshots.prepare", json!({"key": "loose"}));
    d.rpc_ok(
        "snapshots.prepare",
        json!({"key": "rooted", "labels": {"containerd.io/gc.root": "x"}}),
    );
    let r = d.rpc_ok("gc.run", json!({}));
    assert_eq!(
        r["removed"],
        json!({"snapshots": 1, "content": 0}),
        "only the loose snapshot: {r}"
    );
    assert!(r["duration_ms"].is_u64());

    let blobs_before = d.rpc_ok("content.list", json!({}))["blobs"]
        .as_array()
        .expect("blobs")
        .len();
    d.rpc_ok("images.delete", json!({"name": "two:1"}));
    let r = d.rpc_ok("gc.run", json!({}));
    // two's top layer snapshot; its manifest, config and top layer blob go too, by this
    // run or by the automatic collector the delete woke (it removes no snapshots).
    assert_eq!(r["removed"]["snapshots"], 1, "{r}");
    let keys = snapshot_keys(&d);
    assert!(
        keys.contains(&images::sha256(&busybox_layer())),
        "the shared layer stays: {keys:?}"
    );
    assert!(keys.contains(&"keeper".to_owned()) && keys.contains(&"rooted".to_owned()));
    let blobs_after = d.rpc_ok("content.list", json!({}))["blobs"]
        .as_array()
        .expect("blobs")
        .len();
    assert_eq!(blobs_before - 3, blobs_after);
    let gone = images::sha256(&extra);
    expect_error(d.rpc("content.info", json!({"digest": gone})), "not_found");
    let hex = gone.trim_start_matches("sha256:");
    assert!(
        !d.root().join("content/blobs/sha256").join(hex).exists(),
        "the blob file went too"
    );

    // A lease keeps content; a deleted image's content otherwise goes.
    let cfg = d.rpc_ok("images.get", json!({"name": "one:1"}))["image"]["target"]["digest"].clone();
    d.rpc_ok("leases.create", json!({"id": "l1"}));
    d.rpc_ok(
        "leases.add_resource",
        json!({"id": "l1", "resource": {"id": cfg, "type": "content"}}),
    );
    // Forced: "keeper" still names one:1 (an unforced delete is refused while it does).
    d.rpc_ok("images.delete", json!({"name": "one:1", "force": true}));
    d.rpc_ok("containers.delete", json!({"id": "keeper"}));
    let r = d.rpc_ok("gc.run", json!({}));
    assert_eq!(
        r["removed"]["snapshots"], 0,
        "the lease keeps the manifest, hence its layers: {r}"
    );
    d.rpc_ok("leases.delete", json!({"id": "l1"}));
    let r = d.rpc_ok("gc.run", json!({}));
    assert_eq!(r["removed"]["snapshots"], 1, "{r}");
    assert_eq!(snapshot_keys(&d), ["rooted"]);
    assert_eq!(
        d.rpc_ok("content.list", json!({}))["blobs"],
        json!([]),
        "one's blobs went, by gc.run or by the automatic collector"
    );
    let events = d.rpc_ok(
        "events.list",
        json!({"filters": ["topic==\"/content/delete\""]}),
    );
    assert_eq!(events["events"].as_array().expect("events").len(), 6);
}

/// An image whose only layer is `layer`.
fn one_layer(layer: Vec<u8>) -> Vec<u8> {
    oci_image(
        "evil:1",
        &ImageParts::new(vec![layer], json!({"Cmd": ["sh"]})),
    )
}

#[test]
fn hostile_layers_are_rejected_by_name_and_write_nothing_outside() {
    let d = TestDaemon::start_with("max_layer_bytes = 1048576\nmax_layer_entries = 1000\n");
    let outside = d.dir().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("victim"), b"intact").expect("victim");
    let victim = outside.join("victim").display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Layer::new().file("../../../escape", b"x", 0o644).finish(),
            "../../../escape",
        ),
        (
            "hardlink out",
            Layer::new()
                .hardlink("h", &format!("../../../../../..{victim}"))
                .finish(),
            "\"h\"",
        ),
        (
            "bomb",
            {
                let big = vec![0u8; 2 << 20];
                Layer::new().file("big", &big, 0o644).finish()
            },
            "max_bytes",
        ),
        (
            "too many",
            {
                let mut l = Layer::new();
                for i in 0..1100 {
                    l.file(&format!("f{i}"), b"", 0o644);
                }
                l.finish()
            },
            "max_entries",
        ),
    ];
    for (what, layer, needle) in cases {
        let err = expect_error(
            import(&d, "evil.tar", &one_layer(layer)),
            "invalid_argument",
        );
        assert!(message(&err).contains(needle), "{what}: {err}");
    }
    // Contained rather than rejected: a symlink to the host's /etc, then a file through it,
    // and an absolute path; both land inside the snapshot.
    let layer = Layer::new()
        .symlink("etc", &outside.display().to_string())
        .file("etc/victim", b"pwned", 0o644)
        .file(&format!("{}/abs", outside.display()), b"abs", 0o644)
        .finish();
    let res = import(&d, "evil.tar", &one_layer(layer));
    if let Err(e) = &res {
        assert_eq!(e["data"]["kind"], "invalid_argument", "{e}");
    }
    assert_eq!(
        std::fs::read(outside.join("victim")).expect("victim"),
        b"intact"
    );
    assert!(!outside.join("abs").exists());
    assert!(!d.dir().join("escape").exists() && !Path::new("/escape").exists());
    // Failed unpacks left no committed snapshot and no staging directory.
    let keys = snapshot_keys(&d);
    assert!(keys.len() <= 1, "at most the contained layer: {keys:?}");
    let staged: Vec<_> = std::fs::read_dir(d.root().join("snapshots/overlayfs"))
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("new-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    // A blob whose bytes do not match its name is refused while reading the archive.
    let mut archive = one_layer(Layer::new().file("ok", b"ok", 0o644).finish());
    let pos = archive.windows(2).rposition(|w| w == b"ok").expect("find");
    archive[pos] = b'O';
    let err = expect_error(import(&d, "bad.tar", &archive), "invalid_argument");
    assert!(message(&err).contains("hash to"), "{err}");
}
