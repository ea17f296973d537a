//! Container metadata over the wire: the CRUD round trip, validation, update masks and
//! timestamps.

use berth_tests::{
    container, container_ids, create_container, expect_error, is_rfc3339_nanos, message, spec,
    TestDaemon,
};
use serde_json::{json, Value};

#[test]
fn create_get_list_update_delete_round_trip() {
    let d = TestDaemon::start();
    let mut c = container("web");
    c["labels"] = json!({"tier": "front"});
    c["extensions"] = json!({"note": {"any": ["json", 1]}});
    let created = create_container(&d, c);
    assert_eq!(created["id"], json!("web"));
    assert_eq!(created["labels"], json!({"tier": "front"}));
    assert_eq!(
        created["runtime"]["name"],
        json!("runc"),
        "default runtime: {created}"
    );
    assert_eq!(created["spec"], spec(), "spec stored as given");
    assert_eq!(created["extensions"]["note"], json!({"any": ["json", 1]}));

    let got = d.rpc_ok("containers.get", json!({"id": "web"}))["container"].clone();
    assert_eq!(got, created, "get returns what create returned");
    assert_eq!(container_ids(&d, json!({})), ["web"]);

    let updated = d.rpc_ok(
        "containers.update",
        json!({"container": {"id": "web", "labels": {"tier": "back"}}, "update_mask": ["labels"]}),
    )["container"]
        .clone();
    assert_eq!(updated["labels"], json!({"tier": "back"}));
    assert_eq!(
        updated["spec"],
        spec(),
        "spec untouched by a labels-only mask"
    );
    let got = d.rpc_ok("containers.get", json!({"id": "web"}))["container"].clone();
    assert_eq!(got, updated, "the update is stored");

    assert_eq!(
        d.rpc_ok("containers.delete", json!({"id": "web"})),
        json!({})
    );
    expect_error(d.rpc("containers.get", json!({"id": "web"})), "not_found");
    assert!(container_ids(&d, json!({})).is_empty());
}

#[test]
fn ids_breaking_the_identifier_rule_are_invalid_arguments() {
    let d = TestDaemon::start();
    let too_long = "x".repeat(77);
    for bad in ["../x", "", too_long.as_str(), "a..b", "a/b", "-a", "a b"] {
        let err = expect_error(
            d.rpc("containers.create", json!({"container": container(bad)})),
            "invalid_argument",
        );
        assert!(!message(&err).is_empty(), "{err}");
        expect_error(
            d.rpc("containers.get", json!({"id": bad})),
            "invalid_argument",
        );
    }
    let longest = "x".repeat(76);
    assert_eq!(
        create_container(&d, container(&longest))["id"],
        json!(longest)
    );
    for bad_ns in ["../ns", "a..b", ""] {
        expect_error(
            d.rpc(
                "containers.create",
                json!({"namespace": bad_ns, "container": container("ok")}),
            ),
            "invalid_argument",
        );
    }
}

#[test]
fn labels_over_4096_bytes_are_rejected_naming_the_key() {
    let d = TestDaemon::start();
    let mut c = container("labelled");
    c["labels"] = json!({"big": "v".repeat(4096 - 3)});
    create_container(&d, c);

    let mut c = container("overfull");
    c["labels"] = json!({"big": "v".repeat(4096 - 2)});
    let err = expect_error(
        d.rpc("containers.create", json!({"container": c})),
        "invalid_argument",
    );
    assert!(message(&err).contains("big"), "names the key: {err}");
    expect_error(
        d.rpc("containers.get", json!({"id": "overfull"})),
        "not_found",
    );

    let err = expect_error(
        d.rpc(
            "containers.update",
            json!({"container": {"id": "labelled", "labels": {"huge": "v".repeat(5000)}},
                   "update_mask": ["labels.huge"]}),
        ),
        "invalid_argument",
    );
    assert!(message(&err).contains("huge"), "names the key: {err}");
}

#[test]
fn create_without_an_id_is_invalid_params() {
    let d = TestDaemon::start();
    let err = d
        .rpc("containers.create", json!({"container": {"spec": spec()}}))
        .expect_err("an id is required");
    assert_eq!(err["code"], json!(-32602), "{err}");
    let err = d
        .rpc("containers.create", json!({}))
        .expect_err("a container is required");
    assert_eq!(err["code"], json!(-32602), "{err}");
}

#[test]
fn creating_an_existing_id_is_already_exists() {
    let d = TestDaemon::start();
    create_container(&d, container("twice"));
    let err = expect_error(
        d.rpc(
            "containers.create",
            json!({"container": container("twice")}),
        ),
        "already_exists",
    );
    assert!(message(&err).contains("twice"), "names the id: {err}");
}

#[test]
fn missing_container_is_not_found_naming_id_and_namespace() {
    let d = TestDaemon::start();
    create_container(&d, json!({"id": "present", "spec": spec()}));
    d.rpc_ok("namespaces.create", json!({"name": "elsewhere"}));
    for (ns, method, params) in [
        ("default", "containers.get", json!({"id": "ghost"})),
        (
            "elsewhere",
            "containers.get",
            json!({"id": "ghost", "namespace": "elsewhere"}),
        ),
        ("default", "containers.delete", json!({"id": "ghost"})),
        (
            "default",
            "containers.update",
            json!({"container": {"id": "ghost", "labels": {}}, "update_mask": ["labels"]}),
        ),
    ] {
        let err = expect_error(d.rpc(method, params), "not_found");
        let msg = message(&err);
        assert!(msg.contains("\"ghost\""), "{method}: names the id: {err}");
        assert!(
            msg.contains(&format!("\"{ns}\"")),
            "{method}: names the namespace: {err}"
        );
    }
}

#[test]
fn update_mask_merges_deletes_and_rejects_unknown_or_immutable_fields() {
    let d = TestDaemon::start();
    let mut c = container("masked");
    c["labels"] = json!({"a": "1", "b": "2"});
    c["image"] = json!("busybox:latest");
    let before = create_container(&d, c);
    let update = |container: Value, mask: Option<Value>| {
        let mut params = json!({"container": container});
        if let Some(mask) = mask {
            params["update_mask"] = mask;
        }
        d.rpc("containers.update", params)
    };

    // labels.<key>: merge one key, delete another with an empty value, leave the rest.
    let after = update(
        json!({"id": "masked", "labels": {"b": "", "c": "3", "a": "ignored"}}),
        Some(json!(["labels.b", "labels.c"])),
    )
    .expect("labels.<key> update")["container"]
        .clone();
    assert_eq!(after["labels"], json!({"a": "1", "c": "3"}));
    assert_eq!(
        after["image"],
        json!("busybox:latest"),
        "image not in the mask"
    );

    // A path outside the mask is ignored even when present in the object.
    let after = update(
        json!({"id": "masked", "image": "alpine:3", "labels": {}}),
        Some(json!(["image"])),
    )
    .expect("image update")["container"]
        .clone();
    assert_eq!(after["image"], json!("alpine:3"));
    assert_eq!(
        after["labels"],
        json!({"a": "1", "c": "3"}),
        "labels not in the mask"
    );

    for bad in ["colour", "runtime", "runtime.name", "created_at"] {
        let err = expect_error(
            update(json!({"id": "masked"}), Some(json!([bad]))),
            "invalid_argument",
        );
        assert!(message(&err).contains(bad), "names the path {bad}: {err}");
    }

    // runtime and snapshotter are immutable: a different value is refused, the same is fine.
    let err = expect_error(
        update(
            json!({"id": "masked", "runtime": {"name": "crun"}, "spec": spec()}),
            None,
        ),
        "invalid_argument",
    );
    assert!(message(&err).contains("runtime"), "{err}");
    let other_snapshotter = format!("{}-other", before["snapshotter"].as_str().unwrap_or(""));
    expect_error(
        update(
            json!({"id": "masked", "snapshotter": other_snapshotter, "spec": spec()}),
            None,
        ),
        "invalid_argument",
    );
    let got = d.rpc_ok("containers.get", json!({"id": "masked"}))["container"].clone();
    assert_eq!(got["runtime"], before["runtime"]);
    assert_eq!(
        got["labels"],
        json!({"a": "1", "c": "3"}),
        "refused updates change nothing"
    );

    // No mask replaces labels, image, spec, snapshot_key and extensions wholesale.
    let after = d.rpc_ok(
        "containers.update",
        json!({"container": {"id": "masked", "labels": {"n": "1"}, "image": "img:2",
                                 "spec": spec(), "runtime": before["runtime"].clone()}}),
    )["container"]
        .clone();
    assert_eq!(after["labels"], json!({"n": "1"}));
    assert_eq!(after["image"], json!("img:2"));
}

#[test]
fn timestamps_are_rfc3339_nanos_and_updated_at_moves_on_update() {
    let d = TestDaemon::start();
    let created = create_container(&d, container("timed"));
    let (c_at, u_at) = (created["created_at"].clone(), created["updated_at"].clone());
    for t in [&c_at, &u_at] {
        assert!(is_rfc3339_nanos(t.as_str().unwrap_or("")), "bad time {t}");
    }
    assert_eq!(
        c_at, u_at,
        "a new container was updated when it was created"
    );

    let updated = d.rpc_ok(
        "containers.update",
        json!({"container": {"id": "timed", "labels": {"x": "y"}}, "update_mask": ["labels"]}),
    )["container"]
        .clone();
    assert_eq!(updated["created_at"], c_at, "created_at is fixed");
    let new_u = updated["updated_at"].as_str().unwrap_or("");
    assert!(is_rfc3339_nanos(new_u), "bad time {new_u}");
    assert!(
        new_u > u_at.as_str().unwrap_or(""),
        "updated_at moves forward: {u_at} -> {new_u}"
    );
}
