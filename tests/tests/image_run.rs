//! The whole path a user takes: import an image, `berth run` it (container from the image,
//! rootfs snapshot prepared, mounted into the task's bundle, run by runc), and everything is
//! gone afterwards, snapshot included.

#[path = "../src/images.rs"]
mod images;
mod tasks_support;

use berth_tests::{unique_id, TestDaemon};
use images::{busybox_layer, import, oci_image, snapshot_keys, ImageParts};
use serde_json::json;
use tasks_support::{assert_clean, berth_out, stdout, Cleanup};

fn import_busybox(d: &TestDaemon, name: &str) {
    let parts = ImageParts::new(
        vec![busybox_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "GREETING=from-the-image"],
               "User": "app", "WorkingDir": "/tmp"}),
    );
    import(d, "bb.tar", &oci_image(name, &parts)).expect("import busybox");
}

#[test]
fn berth_run_of_an_image_runs_in_its_snapshot_with_the_image_config_and_cleans_up() {
    let d = TestDaemon::start();
    import_busybox(&d, "bb:1");
    let id = unique_id("img");
    let out = berth_out(
        &d,
        &[
            "run",
            "--rm",
            "bb:1",
            &id,
            "sh",
            "-c",
            "echo $GREETING $(id -u) $(pwd); exit 7",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "from-the-image 1000 /tmp\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        !snapshot_keys(&d).contains(&id),
        "the rootfs snapshot goes with the container"
    );
    assert!(d.rpc("containers.get", json!({"id": id})).is_err());
    assert_clean(&d, &[id]);
}

#[test]
fn a_zstd_compressed_image_imports_and_runs() {
    let d = TestDaemon::start();
    let mut parts = ImageParts::new(
        vec![busybox_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    parts.zstd = true;
    let imported = import(&d, "zstd.tar", &oci_image("bb:zstd", &parts)).expect("import");
    assert_eq!(imported["images"][0]["name"], "docker.io/library/bb:zstd");
    let id = unique_id("zstd");
    let out = berth_out(
        &d,
        &["run", "--rm", "bb:zstd", &id, "echo", "unpacked"],
        b"",
    );
    assert_eq!(
        stdout(&out),
        "unpacked\n",
        "busybox ran from the zstd layer: {out:?}"
    );
    assert_clean(&d, &[id]);
}

#[test]
fn a_task_writes_to_its_own_snapshot_not_to_the_image_layer() {
    let d = TestDaemon::start();
    import_busybox(&d, "bb:1");
    let (a, b) = (unique_id("wr"), unique_id("rd"));
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![a.clone(), b.clone()],
    };
    let out = berth_out(
        &d,
        &[
            "run",
            "--rm",
            "--user",
            "0",
            "bb:1",
            &a,
            "sh",
            "-c",
            "echo x > /bin/marker",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = berth_out(
        &d,
        &[
            "run",
            "--rm",
            "bb:1",
            &b,
            "sh",
            "-c",
            "test -e /bin/marker; echo $?",
        ],
        b"",
    );
    assert_eq!(
        stdout(&out),
        "1\n",
        "a second container sees the pristine image: {out:?}"
    );
    assert_clean(&d, &[a, b]);
}

#[test]
fn the_same_container_id_runs_in_two_namespaces_at_once() {
    let d = TestDaemon::start();
    import_busybox(&d, "bb:1");
    let id = unique_id("twin");
    let spawn = |ns: &str| {
        tasks_support::berth(&d)
            .args([
                "-n",
                ns,
                "run",
                "--rm",
                "bb:1",
                &id,
                "sh",
                "-c",
                "sleep 0.5; echo $0",
            ])
            .arg(ns)
            .output()
            .expect("berth run")
    };
    // The image lives in "default"; import it into the second namespace as well.
    let path = d.dir().join("bb.tar");
    d.rpc("images.import", json!({"path": path, "namespace": "other"}))
        .expect("import into other");
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| spawn("default"));
        let y = s.spawn(|| spawn("other"));
        (x.join().expect("x"), y.join().expect("y"))
    });
    assert_eq!(stdout(&x), "default\n", "{x:?}");
    assert_eq!(stdout(&y), "other\n", "{y:?}");
    assert_clean(&d, &[id]);
}

#[test]
fn short_image_names_resolve_as_pull_names_them() {
    let d = TestDaemon::start();
    import_busybox(&d, "docker.io/library/busybox:latest");
    let got = d.rpc_ok("images.get", json!({"name": "busybox"}));
    assert_eq!(got["image"]["name"], "docker.io/library/busybox:latest");
    let id = unique_id("short");
    let out = berth_out(&d, &["run", "--rm", "busybox", &id, "echo", "short"], b"");
    assert_eq!(stdout(&out), "short\n", "{out:?}");
    assert_eq!(out.status.code(), Some(0));
    let err = d
        .rpc("images.get", json!({"name": "alpine"}))
        .expect_err("not imported");
    assert_eq!(err["data"]["kind"], "not_found");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"alpine\"") && message.contains("docker.io/library/alpine:latest"),
        "names the typed name and its full form: {message}"
    );
    d.rpc_ok("images.delete", json!({"name": "busybox:latest"}));
    let listed = d.rpc_ok("images.list", json!({}));
    assert_eq!(listed["images"], json!([]), "deleted by its short name");
    assert_clean(&d, &[id]);
}
