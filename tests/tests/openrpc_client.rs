//! A client for another language generated from `rpc.discover` (issue 12, item 3): the
//! standard-library Python in tests/clients/openrpc_client.py turns berthd's OpenRPC
//! document into a typed client and drives create -> run -> wait -> delete with it.

mod tasks_support;

use std::process::Command;

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, Rootfs};

#[test]
fn a_python_client_generated_from_rpc_discover_runs_a_task() {
    let d = TestDaemon::start();
    let rootfs = Rootfs::new();
    // The spec `berth run --rootfs` builds, for the generated client to create with.
    let src = unique_id("specsrc");
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "--rootfs", &r, &src, "sh", "-c", "exit 0"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let mut spec = d.rpc_ok("containers.get", json!({"id": src}))["container"]["spec"].clone();
    d.rpc_ok("containers.delete", json!({"id": src}));
    spec["process"]["args"] = json!(["sh", "-c", "exit 7"]);
    let spec_file = d.dir().join("spec.json");
    std::fs::write(&spec_file, spec.to_string()).expect("spec");
    let id = unique_id("py");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/openrpc_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(d.socket())
        .arg(&spec_file)
        .arg(&id)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON line");
    assert_eq!(result["exit_status"], 7, "{result}");
    let discovered = d.rpc_ok("rpc.discover", json!({}));
    let methods = discovered["methods"].as_array().map_or(0, Vec::len);
    assert_eq!(
        result["methods"], methods,
        "one generated method per documented method"
    );
    assert_clean(&d, &[src, id]);
}
