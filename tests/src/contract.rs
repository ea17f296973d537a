//! Every message the suite receives, checked against the document `rpc.discover` serves
//! (`schema/openrpc.json`), so no test can forget to: the clients in [`crate::clients`] and
//! [`crate::ws`] hand what they send to a [`Tracker`] (to learn which method each id
//! called) and what they receive to it too, and it panics on the first violation.
//!
//! Checked: a result against its method's result schema; an error's `code` against its
//! `data.kind` (components.errors) and the kind against the method's documented errors; a
//! notification's params against its subscription's `x-notification-params`. The check is
//! stricter than the document in one way: an object schema that lists its properties is
//! closed here (`additionalProperties: false`), because a field berthd sends that the
//! document does not name is drift. The document itself stays open, since fields are only
//! ever added and clients must ignore what they do not know.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::{json, Value};

/// The JSON-RPC 2.0 protocol errors (parse error, invalid request, method not found): they
/// belong to the envelope, not to a method, so they carry no `data.kind`.
const PROTOCOL_CODES: [i64; 3] = [-32700, -32600, -32601];

/// What the document says about one method.
struct MethodContract {
    result: Validator,
    errors: Vec<String>,
}

/// The document, compiled.
pub struct Contract {
    methods: HashMap<String, MethodContract>,
    notifications: HashMap<String, Validator>,
    codes: HashMap<String, i64>,
}

/// The compiled contract of `schema/openrpc.json`, built once per test binary.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc: Value = serde_json::from_str(schema::OPENRPC).expect("openrpc.json is JSON");
        Contract::compile(&doc)
    })
}

impl Contract {
    fn compile(doc: &Value) -> Contract {
        let mut components = doc["components"].clone();
        close_objects(&mut components["schemas"]);
        let compile = |schema: &Value, what: &str| {
            let mut root = schema.clone();
            root["components"] = components.clone();
            jsonschema::validator_for(&root)
                .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"))
        };
        let codes = doc["components"]["errors"]
            .as_object()
            .expect("components.errors")
            .iter()
            .map(|(kind, e)| (kind.clone(), e["code"].as_i64().expect("error code")))
            .collect();
        let mut methods = HashMap::new();
        let mut notifications = HashMap::new();
        for m in doc["methods"].as_array().expect("methods") {
            let name = m["name"].as_str().expect("method name");
            let errors = m["errors"]
                .as_array()
                .map(|errs| {
                    errs.iter()
                        .filter_map(|e| e["$ref"].as_str()?.rsplit('/').next())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let result = compile(&m["result"]["schema"], name);
            methods.insert(name.to_owned(), MethodContract { result, errors });
            if let Some(note) = m["x-notification"].as_str() {
                let params = json!({
                    "type": "object",
                    "properties": {
                        "subscription": {"$ref": "#/components/schemas/SubscriptionId"},
                        "result": m["x-notification-params"],
                    },
                    "required": ["subscription", "result"],
                    "additionalProperties": false,
                });
                notifications.insert(note.to_owned(), compile(&params, note));
            }
        }
        Contract {
            methods,
            notifications,
            codes,
        }
    }

    /// What is wrong with `msg`, a reply to `method` (when known) or a notification; empty
    /// when it keeps to the document.
    pub fn violations(&self, method: Option<&str>, msg: &Value) -> Vec<String> {
        let Some(obj) = msg.as_object() else {
            return vec![format!("a message that is not an object: {}", short(msg))];
        };
        let mut out = Vec::new();
        if obj.get("jsonrpc") != Some(&json!("2.0")) {
            out.push("no \"jsonrpc\": \"2.0\"".to_owned());
        }
        if let (Some(note), None) = (obj.get("method"), obj.get("id")) {
            let note = note.as_str().unwrap_or_default();
            match self.notifications.get(note) {
                None => out.push(format!("notification {note:?} is not in the document")),
                Some(v) => out.extend(schema_errors(v, &obj["params"], note)),
            }
            return out;
        }
        match (obj.get("result"), obj.get("error")) {
            (Some(result), None) => {
                if let Some((name, m)) = self.method(method) {
                    out.extend(schema_errors(&m.result, result, name));
                }
            }
            (None, Some(error)) => out.extend(self.error_violations(method, error)),
            _ => out.push("a reply needs exactly one of result and error".to_owned()),
        }
        out
    }

    /// The documented method a reply answers, when it is known and documented.
    fn method<'a>(&self, name: Option<&'a str>) -> Option<(&'a str, &MethodContract)> {
        let name = name?;
        Some((name, self.methods.get(name)?))
    }

    fn error_violations(&self, method: Option<&str>, error: &Value) -> Vec<String> {
        let Some(code) = error["code"].as_i64() else {
            return vec![format!("error without an integer code: {error}")];
        };
        let mut out = Vec::new();
        if !error["message"].is_string() {
            out.push(format!("error without a message: {error}"));
        }
        let kind = error["data"]["kind"].as_str();
        let Some(kind) = kind else {
            if !PROTOCOL_CODES.contains(&code) {
                out.push(format!("error {code} without data.kind: {error}"));
            }
            return out;
        };
        match self.codes.get(kind) {
            None => out.push(format!("error kind {kind:?} is not in components.errors")),
            // A protocol error keeps its JSON-RPC code; -32601 also says not_found.
            Some(_) if PROTOCOL_CODES.contains(&code) => {}
            Some(&want) if want != code => {
                out.push(format!("error kind {kind} has code {want}, not {code}"))
            }
            Some(_) => {}
        }
        if let Some((name, m)) = self.method(method) {
            if !PROTOCOL_CODES.contains(&code) && !m.errors.iter().any(|e| e == kind) {
                out.push(format!(
                    "{name} answered {kind}, which its documented errors {:?} do not list",
                    m.errors
                ));
            }
        }
        out
    }
}

fn schema_errors(v: &Validator, instance: &Value, what: &str) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{what}: at {:?}: {e}", e.instance_path().to_string()))
        .collect()
}

/// Closes every object schema that lists its properties and says nothing about others.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object"))
                && map.contains_key("properties")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn short(msg: &Value) -> String {
    let text = msg.to_string();
    match text.char_indices().nth(2000) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], text.len()),
        None => text,
    }
}

/// One connection's view of the exchange: which method each pending id called, so a reply
/// is checked against the right result schema.
#[derive(Default)]
pub struct Tracker {
    /// `None`: the id was sent again while pending (a request berthd refused with id null
    /// stays pending forever), so which method a reply with it answers is unknown and only
    /// its envelope and error are checked.
    pending: HashMap<String, Option<String>>,
    partial: Vec<u8>,
}

impl Tracker {
    /// Records the requests in one sent message (a request or a batch); anything that is
    /// not JSON is ignored (the abuse tests send garbage on purpose).
    pub fn sent(&mut self, text: &str) {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let requests = match msg {
            Value::Array(items) => items,
            one => vec![one],
        };
        for r in requests {
            if let (Some(id), Some(method)) = (r.get("id"), r["method"].as_str()) {
                let key = id.to_string();
                let method = match self.pending.contains_key(&key) {
                    true => None,
                    false => Some(method.to_owned()),
                };
                self.pending.insert(key, method);
            }
        }
    }

    /// Records sent NDJSON bytes, which may end mid-line.
    pub fn sent_bytes(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            self.sent(&String::from_utf8_lossy(&line));
        }
    }

    /// Checks one received message (a reply, a batch of replies or a notification) and
    /// panics, naming every violation, if it breaks the document.
    #[track_caller]
    pub fn received(&mut self, msg: &Value) {
        let problems = self.check(msg);
        assert!(
            problems.is_empty(),
            "berthd broke its contract (schema/openrpc.json): {problems:#?}\nin {}",
            short(msg)
        );
    }

    /// The violations in one received message.
    pub fn check(&mut self, msg: &Value) -> Vec<String> {
        match msg {
            Value::Array(replies) => replies.iter().flat_map(|r| self.check_one(r)).collect(),
            one => self.check_one(one),
        }
    }

    fn check_one(&mut self, msg: &Value) -> Vec<String> {
        let method = msg
            .get("id")
            .and_then(|id| self.pending.remove(&id.to_string()).flatten());
        contract().violations(method.as_deref(), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: u64, result: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    }

    fn tracked(method: &str) -> Tracker {
        let mut t = Tracker::default();
        t.sent(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": {}}).to_string());
        t
    }

    const EXIT: &str = "2024-05-01T12:34:56.123456789Z";

    #[test]
    fn every_documented_method_compiles() {
        let c = contract();
        assert!(c.methods.len() >= 60, "{} methods", c.methods.len());
        assert!(c.notifications.contains_key("events.event"));
        assert_eq!(c.codes["not_found"], -32001);
    }

    #[test]
    fn a_correct_reply_passes() {
        let ok = reply(7, json!({"container_id": "web", "pid": 42}));
        assert_eq!(tracked("tasks.create").check(&ok), Vec::<String>::new());
        let wait = reply(7, json!({"pid": 4, "exit_status": 3, "exited_at": EXIT}));
        assert_eq!(tracked("tasks.wait").check(&wait), Vec::<String>::new());
    }

    #[test]
    fn a_reply_missing_a_field_or_of_the_wrong_type_fails() {
        let missing = reply(7, json!({}));
        assert!(!tracked("tasks.create").check(&missing).is_empty());
        let wrong = reply(7, json!({"container_id": "web", "pid": "42"}));
        let problems = tracked("tasks.create").check(&wrong);
        assert!(problems.iter().any(|p| p.contains("pid")), "{problems:?}");
    }

    #[test]
    fn a_field_the_document_does_not_name_fails() {
        let extra = reply(
            7,
            json!({"container_id": "web", "pid": 42, "surprise": true}),
        );
        let problems = tracked("tasks.create").check(&extra);
        assert!(
            problems.iter().any(|p| p.contains("surprise")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_hook_panics_on_a_wrong_reply() {
        let caught = std::panic::catch_unwind(|| {
            tracked("tasks.create").received(&reply(7, json!({"container_id": "web", "pid": 1.5})));
        });
        let text = *caught
            .expect_err("a fractional pid must fail the test")
            .downcast::<String>()
            .expect("panic text");
        assert!(text.contains("broke its contract"), "{text}");
    }

    #[test]
    fn replies_in_a_batch_are_matched_by_id() {
        let mut t = Tracker::default();
        t.sent(
            &json!([
                {"jsonrpc": "2.0", "id": 1, "method": "tasks.create", "params": {}},
                {"jsonrpc": "2.0", "id": 2, "method": "tasks.wait", "params": {}},
            ])
            .to_string(),
        );
        let batch = json!([
            reply(2, json!({"pid": 9, "exit_status": 0, "exited_at": EXIT})),
            reply(1, json!({"container_id": "web", "pid": 9})),
        ]);
        assert_eq!(t.check(&batch), Vec::<String>::new());
    }

    #[test]
    fn a_reused_pending_id_is_not_held_to_either_method() {
        let mut t = tracked("containers.list");
        t.sent(&json!({"jsonrpc": "2.0", "id": 7, "method": "snapshots.list"}).to_string());
        assert_eq!(
            t.check(&reply(7, json!({"snapshots": []}))),
            Vec::<String>::new()
        );
        t.sent(&json!({"jsonrpc": "2.0", "id": 7, "method": "containers.list"}).to_string());
        assert!(!t.check(&reply(7, json!({"snapshots": []}))).is_empty());
    }

    #[test]
    fn an_event_whose_payload_does_not_match_its_topic_fails() {
        let event = |payload: Value| {
            json!({"jsonrpc": "2.0", "method": "events.event", "params": {
                "subscription": 1,
                "result": {"seq": 5, "timestamp": EXIT, "namespace": "default",
                           "topic": "/tasks/exit", "event": payload},
            }})
        };
        let right = event(json!({
            "container_id": "web", "id": "web", "pid": 4, "exit_status": 0, "exited_at": EXIT,
            "exit_reason": "exited"
        }));
        assert_eq!(Tracker::default().check(&right), Vec::<String>::new());
        let wrong = event(json!({"container_id": "web", "image": "busybox"}));
        assert!(!Tracker::default().check(&wrong).is_empty());
        let unknown = json!({"jsonrpc": "2.0", "method": "events.mystery", "params": {}});
        assert!(!Tracker::default().check(&unknown).is_empty());
    }

    #[test]
    fn an_error_with_the_wrong_code_or_an_undocumented_kind_fails() {
        let error = |code: i64, kind: &str| {
            json!({"jsonrpc": "2.0", "id": 7, "error": {
                "code": code, "message": "m", "data": {"kind": kind}}})
        };
        let documented = tracked("containers.get").check(&error(-32001, "not_found"));
        assert_eq!(documented, Vec::<String>::new());
        assert!(!tracked("containers.get")
            .check(&error(-32003, "not_found"))
            .is_empty());
        assert!(!tracked("system.version")
            .check(&error(-32002, "already_exists"))
            .is_empty());
        let no_kind = json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32003, "message": "m"}});
        assert!(!tracked("containers.get").check(&no_kind).is_empty());
        let protocol = json!({"jsonrpc": "2.0", "id": null,
                              "error": {"code": -32700, "message": "Parse error"}});
        assert_eq!(Tracker::default().check(&protocol), Vec::<String>::new());
        let unknown = json!({"jsonrpc": "2.0", "id": 7, "error": {
            "code": -32601, "message": "m", "data": {"kind": "not_found"}}});
        assert_eq!(
            tracked("containers.lst").check(&unknown),
            Vec::<String>::new()
        );
    }
}
