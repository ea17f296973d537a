//! Generates the OpenRPC document `rpc.discover` serves, from the method table
//! ([`crate::methods::catalogue`]) and the wire types' `JsonSchema` derives. The checked-in
//! `schema/openrpc.json` is this function's output: `cargo run -p berth-schema --bin
//! berth-openrpc` writes it, and a unit test fails when it is stale.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::error::ErrorKind;
use crate::methods::{catalogue, UNIVERSAL_ERRORS, UNSUBSCRIBE_METHODS};

/// An OCI object (a runtime spec, a `process`, an image config): any JSON object, kept as
/// given; its own specification defines it.
pub struct OciObject;

impl JsonSchema for OciObject {
    fn schema_name() -> Cow<'static, str> {
        "OciObject".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "object"})
    }
}

/// Where the document's schemas live, as `$ref`s name them.
pub const SCHEMAS_PATH: &str = "#/components/schemas/";

/// The document, as JSON (keys sorted, so its text is stable).
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .for_deserialize()
        .into_generator();
    let methods: Vec<Value> = catalogue()
        .into_iter()
        .map(|m| {
            let params = (m.params)(&mut generator);
            let positional = UNSUBSCRIBE_METHODS.contains(&m.name);
            let mut errors: Vec<ErrorKind> = UNIVERSAL_ERRORS.to_vec();
            errors.extend(m.errors.iter().filter(|e| !UNIVERSAL_ERRORS.contains(e)));
            let mut doc = json!({
                "name": m.name,
                "summary": m.summary,
                "paramStructure": if positional { "either" } else { "by-name" },
                "params": content_descriptors(params.as_value()),
                "result": {"name": "result", "schema": (m.result)(&mut generator)},
                "errors": errors.iter().map(|e| json!({"$ref": format!("#/components/errors/{e}")}))
                    .collect::<Vec<_>>(),
            });
            if let (Some(n), Some(obj)) = (m.notification, doc.as_object_mut()) {
                obj.insert("x-notification".into(), n.name.into());
                obj.insert(
                    "x-notification-params".into(),
                    (n.item)(&mut generator).to_value(),
                );
                obj.insert("x-unsubscribe".into(), n.unsubscribe.into());
            }
            doc
        })
        .collect();
    let errors: Map<String, Value> = ErrorKind::ALL
        .iter()
        .map(|k| {
            let e = json!({"code": k.code(), "message": k.as_str(), "data": {"kind": k.as_str()}});
            (k.as_str().to_owned(), e)
        })
        .collect();
    let schemas = generator.take_definitions(true);
    sorted(json!({
        "openrpc": "1.2.6",
        "info": {
            "title": "berth",
            "version": crate::API_VERSION,
            "description": "berthd's JSON-RPC 2.0 API over one unix socket (HTTP, WebSocket, \
                newline-delimited JSON). Every method also takes `namespace`. Generated from \
                the wire types in berth's schema crate. Any method may answer \
                invalid_argument (params that do not parse or validate), resource_exhausted \
                and unavailable (a limit reached, shutting down) and internal.",
        },
        "methods": methods,
        "components": {"schemas": schemas, "errors": errors},
    }))
}

/// The document's text as checked in: two-space indents and a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// A params struct's schema as OpenRPC content descriptors: one per property, in the
/// struct's order, with its description lifted out of the schema.
fn content_descriptors(params: &Value) -> Vec<Value> {
    let required: Vec<&str> = params["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = params["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            let description = schema.as_object_mut().and_then(|o| o.remove("description"));
            let mut d = json!({"name": name, "schema": schema});
            if required.contains(&name.as_str()) {
                d["required"] = true.into();
            }
            if let Some(text) = description {
                d["description"] = text;
            }
            d
        })
        .collect()
}

/// `value` with every object's keys in order (serde_json may be built to keep insertion
/// order), except the methods list and descriptors, which are arrays.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI runs this: a wire type or the method table changed without regenerating the
    /// checked-in document.
    #[test]
    fn the_served_document_is_one_line_and_the_checked_in_one() {
        let served = serde_json::to_string(&crate::methods::OpenRpcDocument).expect("serializes");
        assert!(
            !served.contains('\n'),
            "a newline would end an NDJSON reply"
        );
        let served: Value = serde_json::from_str(&served).expect("JSON");
        assert_eq!(served, document());
    }

    #[test]
    fn the_checked_in_document_is_current() {
        let fresh = document_text();
        assert!(
            fresh == crate::OPENRPC,
            "schema/openrpc.json is stale: run `cargo run -p berth-schema --bin berth-openrpc` \
             and commit the result"
        );
    }

    #[test]
    fn every_ref_resolves_and_every_method_has_params_and_a_result() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "{} refs", refs.len());
        for r in refs {
            if let Some(name) = r.strip_prefix(SCHEMAS_PATH) {
                assert!(schemas.contains_key(name), "dangling {r}");
            } else {
                let kind = r.strip_prefix("#/components/errors/").expect(&r);
                assert!(
                    doc["components"]["errors"][kind].is_object(),
                    "dangling {r}"
                );
            }
        }
        for m in doc["methods"].as_array().expect("methods") {
            assert!(m["result"]["schema"].is_object(), "{m}");
            let names: Vec<&str> = m["params"]
                .as_array()
                .expect("params")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            let positional = m["paramStructure"] == "either";
            assert!(
                positional || names.contains(&"namespace"),
                "{}: {names:?}",
                m["name"]
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_owned());
                }
                o.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
