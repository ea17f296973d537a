//! Whole OCI specs given to `containers.create`/`update` (issue 30): one a task could run
//! must ask for a new mount namespace, since berth mounts its rootfs and runc mounts /proc,
//! /dev and the spec's mounts in the namespace the task runs in; without one those mounts
//! were made in the host's and a bind mount of the rootfs outlived `rm -f`.

mod tasks_support;

use berth_tests::{message, unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, Cleanup, Rootfs};

/// A spec berth would build for `args`, on the host directory `rootfs`.
fn runnable(id: &str, rootfs: &Rootfs, args: &[&str]) -> Value {
    let opts: schema::spec::SpecOptions =
        serde_json::from_value(json!({ "args": args })).expect("options");
    let spec =
        schema::spec::build(id, "", None, &opts, &schema::spec::EtcFiles::default()).expect("spec");
    let mut spec = serde_json::to_value(spec).expect("json");
    spec["root"]["path"] = json!(rootfs.arg());
    spec
}

/// `spec` with its mount namespace removed, or replaced by one joined by `path`.
fn without_own_mount_namespace(spec: &Value, path: Option<&str>) -> Value {
    let mut spec = spec.clone();
    let list = spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    list.retain(|n| n["type"] != "mount");
    if let Some(p) = path {
        list.push(json!({"type": "mount", "path": p}));
    }
    spec
}

/// /proc/self/mountinfo lines whose mount point is under the daemon's dirs or `rootfs`.
fn mounts_below(d: &TestDaemon, rootfs: &Rootfs) -> Vec<String> {
    let dirs = [d.root(), d.state(), rootfs.path()].map(|p| p.display().to_string());
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| {
            let point = l.split(' ').nth(4).unwrap_or("");
            dirs.iter().any(|d| point.starts_with(d.as_str()))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_runnable_spec_without_its_own_mount_namespace_is_refused_and_mounts_nothing() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (bad, meta, fine) = (unique_id("nomnt"), unique_id("meta"), unique_id("mnt"));
    let _c = Cleanup {
        d: &d,
        ids: vec![bad.clone(), meta.clone(), fine.clone()],
    };
    let spec = runnable(&bad, &rootfs, &["sleep", "600"]);
    for refused in [
        without_own_mount_namespace(&spec, None),
        without_own_mount_namespace(&spec, Some("/proc/1/ns/mnt")),
    ] {
        let err = d
            .rpc(
                "containers.create",
                json!({"container": {"id": bad, "spec": refused}}),
            )
            .expect_err("refused");
        assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");
        let msg = message(&err);
        assert!(
            msg.contains("linux.namespaces") && msg.contains("mount namespace"),
            "{msg}"
        );
    }
    let err = d
        .rpc("containers.get", json!({"id": bad}))
        .expect_err("not stored");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");

    // Updating a stored, runnable spec to one without a mount namespace is refused too.
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": fine, "spec": runnable(&fine, &rootfs, &["true"])}}),
    );
    let err = d
        .rpc(
            "containers.update",
            json!({"container": {"id": fine, "spec": without_own_mount_namespace(&spec, None)},
                   "update_mask": ["spec"]}),
        )
        .expect_err("refused");
    assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");

    // Without `process` it is metadata and stored; a task of it is refused before anything
    // is mounted.
    let mut metadata = without_own_mount_namespace(&spec, None);
    metadata.as_object_mut().expect("object").remove("process");
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": meta, "spec": metadata}}),
    );
    let err = d
        .rpc("tasks.create", json!({"container_id": meta}))
        .expect_err("refused");
    assert_eq!(err["data"]["kind"], "failed_precondition", "{err}");
    assert!(message(&err).contains("linux.namespaces"), "{err}");

    assert_eq!(mounts_below(&d, &rootfs), Vec::<String>::new());
    assert_clean(&d, &[bad, meta, fine]);
}
