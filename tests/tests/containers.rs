//! Container metadata over the wire: the CRUD round trip, validation, update masks,
//! paging, filters and timestamps.

use std::collections::BTreeSet;

use berth_tests::{container, expect_error, is_rfc3339_nanos, message, spec, TestDaemon};
use serde_json::{json, Value};

fn create(d: &TestDaemon, c: Value) -> Value {
    d.rpc_ok("containers.create", json!({"container": c}))["container"].clone()
}

fn list_ids(d: &TestDaemon, params: Value) -> Vec<String> {
    let reply = d.rpc_ok("containers.list", params);
    reply["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers array: {reply}"))
        .iter()
        .map(|c| c["id"].as_str().expect("string id").to_owned())
        .collect()
}

#[test]
fn create_get_list_update_delete_round_trip() {
    let d = TestDaemon::start();
    let mut c = container("web");
    c["labels"] = json!({"tier": "front"});
    c["extensions"] = json!({"note": {"any": ["json", 1]}});
    let created = create(&d, c);
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
    assert_eq!(list_ids(&d, json!({})), ["web"]);

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
    assert!(list_ids(&d, json!({})).is_empty());
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
    assert_eq!(create(&d, container(&longest))["id"], json!(longest));
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
    create(&d, c);

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
    create(&d, container("twice"));
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
    create(&d, json!({"id": "present", "spec": spec()}));
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
    let before = create(&d, c);
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
    let created = create(&d, container("timed"));
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

#[test]
fn paging_with_limit_and_after_returns_every_container_once_in_id_order() {
    let d = TestDaemon::start();
    let mut want = BTreeSet::new();
    for i in [
        13, 2, 24, 0, 7, 19, 5, 11, 22, 1, 16, 9, 3, 20, 14, 8, 23, 4, 18, 10, 6, 21, 12, 17, 15,
    ] {
        let id = format!("c{i:02}");
        create(&d, container(&id));
        want.insert(id);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "paging does not terminate: {seen:?}");
        let mut params = json!({"limit": 7});
        if let Some(a) = &after {
            params["after"] = json!(a);
        }
        let reply = d.rpc_ok("containers.list", params);
        let ids: Vec<String> = reply["containers"]
            .as_array()
            .expect("containers array")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        assert!(ids.len() <= 7, "limit honoured: {reply}");
        seen.extend(ids.iter().cloned());
        match reply.get("next").filter(|n| !n.is_null()) {
            Some(next) => {
                assert_eq!(
                    next.as_str(),
                    ids.last().map(String::as_str),
                    "next is the last id"
                );
                after = Some(ids.last().expect("a non-empty page before next").clone());
            }
            None => break,
        }
    }
    let want: Vec<String> = want.into_iter().collect();
    assert_eq!(seen, want, "all 25 exactly once, in id order");
}

#[test]
fn filters_follow_containerds_grammar() {
    let d = TestDaemon::start();
    let mut a = container("fa");
    a["image"] = json!("busybox:latest");
    a["labels"] = json!({"a.b": "c", "tier": "web"});
    let mut b = container("fb");
    b["image"] = json!("alpine:3");
    b["labels"] = json!({"a.b": "d"});
    let mut c = container("fc");
    c["image"] = json!("busybox:1.36");
    for x in [a, b, c] {
        create(&d, x);
    }
    let cases: &[(&[&str], &[&str])] = &[
        (&[r#"labels."a.b"==c"#], &["fa"]),
        (&["image~=^busy"], &["fa", "fc"]),
        (&[r#"labels."a.b"==c,image~=^busy"#], &["fa"]),
        (&[r#"labels."a.b"==d,image~=^busy"#], &[]),
        (&["labels.tier"], &["fa"]),
        (&[r#"labels."a.b""#], &["fa", "fb"]),
        (&["image!=alpine:3"], &["fa", "fc"]),
        (&[r#"labels."a.b"!=c"#], &["fb", "fc"]),
        (&["labels.tier==web", "image==alpine:3"], &["fa", "fb"]),
        (&["id==fc"], &["fc"]),
        (&["runtime.name==runc"], &["fa", "fb", "fc"]),
    ];
    for (filters, want) in cases {
        let got = list_ids(&d, json!({"filters": filters}));
        assert_eq!(got, *want, "filters {filters:?}");
    }
}

#[test]
fn malformed_filter_is_invalid_argument_with_its_position() {
    let d = TestDaemon::start();
    for bad in [r#"labels."a.b==c"#, "image==busy,", "==x"] {
        let err = expect_error(
            d.rpc("containers.list", json!({"filters": [bad]})),
            "invalid_argument",
        );
        let msg = message(&err);
        assert!(msg.contains("filter"), "says it is the filter: {err}");
        assert!(
            msg.bytes().any(|b| b.is_ascii_digit()),
            "gives the position: {err}"
        );
    }
}

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
    create(&d, container("only-default"));
    for ns in ["alpha", "beta"] {
        let got = d.rpc_ok("containers.get", json!({"namespace": ns, "id": "same"}));
        assert_eq!(got["container"]["labels"], json!({"ns": ns}));
        assert_eq!(list_ids(&d, json!({"namespace": ns})), ["same"]);
    }
    assert_eq!(list_ids(&d, json!({})), ["only-default"]);
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
