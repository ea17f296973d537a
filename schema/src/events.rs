//! The event payload of every topic: the store records only these ([`Topic`]), and the
//! document's `Event` schema says which payload each topic carries.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::tasks::ExitReason;
use crate::types::{Event, Labels, Runtime};

/// Most bytes (keys and values) of the labels one event carries: an event records that an
/// object changed, not the whole object, so a few updates of an object with megabytes of
/// labels cannot grow the event log by as much.
pub const EVENT_LABEL_BYTES: usize = 16 << 10;

/// The labels an event carries, and whether some were left out (see [`EVENT_LABEL_BYTES`]).
pub fn event_labels(labels: &Labels) -> (Labels, bool) {
    let mut kept = Labels::new();
    let mut bytes = 0;
    for (k, v) in labels {
        bytes += k.len() + v.len();
        if bytes > EVENT_LABEL_BYTES {
            return (kept, true);
        }
        kept.insert(k.clone(), v.clone());
    }
    (kept, false)
}

/// A payload and the topic it is recorded under.
pub trait Topic: Serialize {
    const TOPIC: &'static str;
}

macro_rules! topics {
    ($(
        $(#[$doc:meta])* $ty:ident $topic:literal { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
            pub struct $ty {
                $($(#[$fdoc])* pub $field: $fty,)*
            }
            impl Topic for $ty {
                const TOPIC: &'static str = $topic;
            }
        )*

        /// Every topic with its payload's schema.
        fn payloads(g: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
            vec![$(($topic, g.subschema_for::<$ty>()),)*]
        }

        /// Every topic berthd records.
        pub const TOPICS: &[&str] = &[$($topic,)*];
    };
}

topics! {
    NamespaceCreate "/namespaces/create" {
        name: String,
        labels: Labels,
        /// `labels` holds only the first labels (by key) up to 16 KiB: the object's are
        /// more; read it for all of them. Absent when `labels` is complete.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    }
    NamespaceDelete "/namespaces/delete" { name: String }
    ContainerCreate "/containers/create" { id: String, image: String, runtime: Runtime }
    ContainerUpdate "/containers/update" {
        id: String,
        image: String,
        labels: Labels,
        snapshot_key: String,
        /// `labels` holds only the first labels (by key) up to 16 KiB: the object's are
        /// more; read it for all of them. Absent when `labels` is complete.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    }
    ContainerDelete "/containers/delete" { id: String }
    ImageCreate "/images/create" {
        name: String,
        labels: Labels,
        /// `labels` holds only the first labels (by key) up to 16 KiB: the object's are
        /// more; read it for all of them. Absent when `labels` is complete.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    }
    ImageUpdate "/images/update" {
        name: String,
        labels: Labels,
        /// `labels` holds only the first labels (by key) up to 16 KiB: the object's are
        /// more; read it for all of them. Absent when `labels` is complete.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    }
    ImageDelete "/images/delete" { name: String }
    ContentDelete "/content/delete" { digest: String }
    SnapshotPrepare "/snapshot/prepare" {
        key: String,
        /// `""` for none.
        parent: String,
        snapshotter: String,
    }
    SnapshotCommit "/snapshot/commit" { key: String, name: String, snapshotter: String }
    SnapshotRemove "/snapshot/remove" { key: String, snapshotter: String }
    TaskCreate "/tasks/create" {
        container_id: String,
        bundle: String,
        io: TaskIo,
        pid: i64,
    }
    TaskStart "/tasks/start" { container_id: String, pid: i64 }
    TaskExecAdded "/tasks/exec-added" { container_id: String, exec_id: String }
    TaskExecStarted "/tasks/exec-started" { container_id: String, exec_id: String, pid: i64 }
    TaskPaused "/tasks/paused" { container_id: String }
    TaskResumed "/tasks/resumed" { container_id: String }
    /// A process exited: `id` is the container id for the init, else the exec id.
    TaskExit "/tasks/exit" {
        container_id: String,
        id: String,
        pid: i64,
        exit_status: i64,
        exited_at: String,
        exit_reason: ExitReason,
    }
    /// A task was deleted; the exit fields are null when it never ran.
    TaskDelete "/tasks/delete" {
        container_id: String,
        pid: i64,
        exit_status: Option<i64>,
        exited_at: Option<String>,
        exit_reason: Option<ExitReason>,
    }
}

/// The stdio a task was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskIo {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

impl JsonSchema for Event {
    fn schema_name() -> Cow<'static, str> {
        "Event".into()
    }

    /// An object whose `event` is the payload its `topic` names: one `oneOf` branch per
    /// topic, so a payload of the wrong shape for its topic does not validate.
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let branches: Vec<Value> = payloads(g)
            .into_iter()
            .map(|(topic, schema)| {
                json!({"properties": {"topic": {"const": topic}, "event": schema}})
            })
            .collect();
        let schema = json!({
            "type": "object",
            "description": "An event as stored and delivered: seq orders all events of the daemon.",
            "required": ["seq", "timestamp", "namespace", "topic", "event"],
            "properties": {
                "seq": {"type": "integer"},
                "timestamp": {"type": "string"},
                "namespace": {"type": "string"},
                "topic": {"type": "string", "enum": TOPICS},
                "event": {"type": "object"},
            },
            "oneOf": branches,
        });
        Schema::try_from(schema).unwrap_or_default()
    }
}

#[cfg(test)]
mod bounded_labels {
    use super::*;

    #[test]
    fn an_event_carries_labels_up_to_its_bound_and_says_when_it_left_some_out() {
        let small: Labels = [("a".to_owned(), "1".to_owned())].into_iter().collect();
        assert_eq!(event_labels(&small), (small.clone(), false));
        let big: Labels = (0..100)
            .map(|i| (format!("k{i:03}"), "x".repeat(1000)))
            .collect();
        let (kept, truncated) = event_labels(&big);
        assert!(truncated);
        assert_eq!(kept.len(), 16, "16 of ~1 KiB each fit in 16 KiB");
        assert!(kept.keys().all(|k| big.contains_key(k)));
        let encoded = serde_json::to_value(ContainerUpdate {
            id: "c".into(),
            image: String::new(),
            labels: kept,
            snapshot_key: String::new(),
            labels_truncated: true,
        })
        .expect("encode");
        assert_eq!(encoded["labels_truncated"], true);
        let complete = serde_json::to_value(ImageUpdate {
            name: "i".into(),
            labels: small,
            labels_truncated: false,
        })
        .expect("encode");
        assert!(complete.get("labels_truncated").is_none(), "{complete}");
    }
}
