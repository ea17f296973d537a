//! `containers.list`: paging with `limit`/`after` and containerd's filter grammar.

use std::collections::BTreeSet;

use berth_tests::{container, container_ids, create_container, expect_error, message, TestDaemon};
use serde_json::json;

#[test]
fn paging_with_limit_and_after_returns_every_container_once_in_id_order() {
    let d = TestDaemon::start();
    let mut want = BTreeSet::new();
    for i in [
        13, 2, 24, 0, 7, 19, 5, 11, 22, 1, 16, 9, 3, 20, 14, 8, 23, 4, 18, 10, 6, 21, 12, 17, 15,
    ] {
        let id = format!("c{i:02}");
        create_container(&d, container(&id));
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
        create_container(&d, x);
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
        let got = container_ids(&d, json!({"filters": filters}));
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
