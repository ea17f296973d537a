//! Namespaces: isolation of same-named containers, the namespace lifecycle, and implicit
//! creation by `containers.create`.

use std::collections::BTreeSet;

use berth_tests::{
    container, container_ids, create_container, expect_error, is_rfc3339_nanos, message, TestDaemon,
};
use serde_json::json;

#[test]
fn same_id_in_two_namespaces_is_two_containers() {
    let d = TestDaemon::start();
    for ns in ["alpha", "beta"] {
        let mut c = container("same");
        c["labels"] = json!({"ns": ns});
        d.rpc_ok(
            "containers.create",
            json!({"namespace": ns, "container": c}),
        );
    }
    create_container(&d, container("only-default"));
    for ns in ["alpha", "beta"] {
        let got = d.rpc_ok("containers.get", json!({"namespace": ns, "id": "same"}));
        assert_eq!(got["container"]["labels"], json!({"ns": ns}));
        assert_eq!(container_ids(&d, json!({"namespace": ns})), ["same"]);
    }
    assert_eq!(container_ids(&d, json!({})), ["only-default"]);
    d.rpc_ok(
        "containers.delete",
        json!({"namespace": "alpha", "id": "same"}),
    );
    expect_error(
        d.rpc(
            "containers.get",
            json!({"namespace": "alpha", "id": "same"}),
        ),
        "not_found",
    );
    d.rpc_ok("containers.get", json!({"namespace": "beta", "id": "same"}));
}

#[test]
fn namespaces_create_list_delete_and_refuse_to_delete_when_not_empty() {
    let d = TestDaemon::start();
    let names = |d: &TestDaemon| -> BTreeSet<String> {
        let reply = d.rpc_ok("namespaces.list", json!({}));
        reply["namespaces"]
            .as_array()
            .unwrap_or_else(|| panic!("no namespaces array: {reply}"))
            .iter()
            .map(|n| n["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let made = d.rpc_ok(
        "namespaces.create",
        json!({"name": "team", "labels": {"k": "v"}}),
    );
    assert_eq!(made["namespace"]["name"], json!("team"), "{made}");
    assert_eq!(made["namespace"]["labels"], json!({"k": "v"}), "{made}");
    assert!(
        is_rfc3339_nanos(made["namespace"]["created_at"].as_str().unwrap_or("")),
        "{made}"
    );
    assert!(names(&d).contains("team"));
    let err = expect_error(
        d.rpc("namespaces.create", json!({"name": "team"})),
        "already_exists",
    );
    assert!(message(&err).contains("team"), "{err}");
    expect_error(
        d.rpc("namespaces.create", json!({"name": "../up"})),
        "invalid_argument",
    );

    d.rpc_ok(
        "containers.create",
        json!({"namespace": "team", "container": container("box")}),
    );
    let err = expect_error(
        d.rpc("namespaces.delete", json!({"name": "team"})),
        "failed_precondition",
    );
    assert!(message(&err).contains("team"), "names the namespace: {err}");
    assert!(names(&d).contains("team"), "refused delete keeps it");

    d.rpc_ok(
        "containers.delete",
        json!({"namespace": "team", "id": "box"}),
    );
    assert_eq!(
        d.rpc_ok("namespaces.delete", json!({"name": "team"})),
        json!({})
    );
    assert!(!names(&d).contains("team"));
    expect_error(
        d.rpc("namespaces.delete", json!({"name": "team"})),
        "not_found",
    );
}

#[test]
fn creating_a_container_creates_its_namespace() {
    let d = TestDaemon::start();
    d.rpc_ok(
        "containers.create",
        json!({"namespace": "fresh", "container": container("x")}),
    );
    let reply = d.rpc_ok("namespaces.list", json!({}));
    let listed = reply["namespaces"].as_array().expect("namespaces");
    assert!(
        listed.iter().any(|n| n["name"] == json!("fresh")),
        "{reply}"
    );
}

#[test]
fn unknown_namespace_lists_nothing_rather_than_failing() {
    let d = TestDaemon::start();
    let reply = d.rpc_ok("containers.list", json!({"namespace": "nobody-here"}));
    assert_eq!(reply["containers"], json!([]), "{reply}");
    expect_error(
        d.rpc(
            "containers.get",
            json!({"namespace": "nobody-here", "id": "x"}),
        ),
        "not_found",
    );
}
