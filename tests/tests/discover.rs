//! `rpc.discover`: the OpenRPC document agrees with what the daemon actually serves.

use std::collections::BTreeSet;

use berth_tests::TestDaemon;
use serde_json::{json, Value};

/// The foundation's methods (system, namespaces, containers, events), per WIRE/API.md.
const FOUNDATION_METHODS: &[&str] = &[
    "system.version",
    "system.info",
    "rpc.discover",
    "namespaces.list",
    "namespaces.create",
    "namespaces.delete",
    "containers.create",
    "containers.get",
    "containers.list",
    "containers.update",
    "containers.delete",
    "events.list",
    "events.subscribe",
    "events.unsubscribe",
];

fn discovered_methods(d: &TestDaemon) -> (Value, BTreeSet<String>) {
    let doc = d.rpc_ok("rpc.discover", json!({}));
    let names = doc["methods"]
        .as_array()
        .unwrap_or_else(|| panic!("no methods array: {doc}"))
        .iter()
        .map(|m| {
            m["name"]
                .as_str()
                .unwrap_or_else(|| panic!("unnamed method {m}"))
                .to_owned()
        })
        .collect();
    (doc, names)
}

#[test]
fn rpc_discover_returns_an_openrpc_document() {
    let d = TestDaemon::start();
    let (doc, names) = discovered_methods(&d);
    let version = doc["openrpc"]
        .as_str()
        .unwrap_or_else(|| panic!("no openrpc field: {doc}"));
    assert!(version.starts_with("1."), "OpenRPC 1.x: {version}");
    assert!(doc["info"]["title"].is_string(), "{}", doc["info"]);
    assert!(doc["info"]["version"].is_string(), "{}", doc["info"]);
    for m in doc["methods"].as_array().expect("methods") {
        assert!(m["params"].is_array(), "params listed for {}", m["name"]);
        assert!(
            m["result"].is_object(),
            "result described for {}",
            m["name"]
        );
    }
    assert_eq!(
        names.len(),
        doc["methods"].as_array().map_or(0, Vec::len),
        "no method listed twice"
    );
    // HTTP serves the same document.
    let (status, reply) = d.curl(r#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#);
    assert_eq!(status, 200);
    assert_eq!(reply["result"], doc);
}

#[test]
fn every_discovered_method_is_served() {
    let d = TestDaemon::start();
    let (_, names) = discovered_methods(&d);
    for name in &names {
        if let Err(e) = d.rpc(name, json!({})) {
            assert_ne!(
                e["code"],
                json!(-32601),
                "{name} is listed but not served: {e}"
            );
        }
    }
}

#[test]
fn discover_lists_every_foundation_method() {
    let d = TestDaemon::start();
    let (_, names) = discovered_methods(&d);
    let missing: Vec<&&str> = FOUNDATION_METHODS
        .iter()
        .filter(|m| !names.contains(**m))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in rpc.discover: {missing:?}"
    );
    for name in FOUNDATION_METHODS {
        if let Err(e) = d.rpc(name, json!({})) {
            assert_ne!(e["code"], json!(-32601), "{name} is not served: {e}");
        }
    }
}
