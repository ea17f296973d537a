//! Command-line arguments turned into `containers.*` params. Pure: no I/O, so every rule
//! about what is sent (and what is left to the daemon's defaults) is tested here.

use serde_json::{json, Map, Value};

use super::CreateArgs;
use crate::args::labels_object;
use crate::cmd::put;

/// `containers.create`: with a spec it is sent whole and the process options are not;
/// without one the daemon builds the spec from the image, applying `spec_options`.
pub fn create(args: &CreateArgs, spec: Option<Value>) -> Value {
    let mut container = Map::new();
    container.insert("id".into(), args.id.as_str().into());
    container.insert("image".into(), args.image.as_str().into());
    put(&mut container, "labels", labels_object(&args.labels));
    if let Some(name) = &args.runtime {
        container.insert("runtime".into(), json!({ "name": name }));
    }
    put(&mut container, "snapshot_key", args.snapshot_key.clone());
    let mut params = Map::new();
    match spec {
        Some(spec) => {
            container.insert("spec".into(), spec);
        }
        None => {
            let mut options = Map::new();
            put(&mut options, "args", args.args.clone());
            put(&mut options, "env", args.process.env.clone());
            put(&mut options, "cwd", args.process.cwd.clone());
            put(&mut options, "user", args.process.user.clone());
            put(&mut options, "tty", args.process.tty);
            put(&mut options, "net_host", args.process.net_host);
            put(&mut options, "readonly", args.process.readonly);
            put(&mut options, "mounts", args.process.all_mounts());
            put(&mut options, "hostname", args.process.hostname.clone());
            params.insert("spec_options".into(), Value::Object(options));
        }
    }
    params.insert("container".into(), Value::Object(container));
    Value::Object(params)
}

/// `containers.list`; filters pass through verbatim (the daemon owns the grammar).
pub fn list(filters: &[String], after: Option<String>) -> Value {
    let mut params = Map::new();
    put(&mut params, "filters", filters.to_vec());
    put(&mut params, "after", after);
    Value::Object(params)
}

/// `containers.update` touching only the named labels: mask `labels.<key>` per label, an
/// empty value deleting that key, so other labels and fields stay as they are.
pub fn label(id: &str, labels: &[(String, String)]) -> Value {
    let mask: Vec<String> = labels.iter().map(|(k, _)| format!("labels.{k}")).collect();
    json!({
        "container": { "id": id, "labels": labels_object(labels) },
        "update_mask": mask,
    })
}

/// The fields `berth containers update` may replace.
pub struct Update {
    pub image: Option<String>,
    pub spec: Option<Value>,
    pub snapshot_key: Option<String>,
}

/// `containers.update` whose mask is exactly the fields given, so nothing else is reset.
pub fn update(id: &str, update: Update) -> Value {
    let mut container = Map::new();
    container.insert("id".into(), id.into());
    let mut mask = Vec::new();
    let fields = [
        ("image", update.image.map(Value::from)),
        ("spec", update.spec),
        ("snapshot_key", update.snapshot_key.map(Value::from)),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            container.insert(name.into(), value);
            mask.push(name);
        }
    }
    json!({ "container": container, "update_mask": mask })
}

pub fn delete(id: &str, keep_snapshot: bool) -> Value {
    let mut params = Map::new();
    params.insert("id".into(), id.into());
    put(&mut params, "keep_snapshot", keep_snapshot);
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Parses a `containers create` command line exactly as the CLI would.
    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        create: CreateArgs,
    }

    fn create_args(line: &[&str]) -> CreateArgs {
        let argv = std::iter::once("create").chain(line.iter().copied());
        match Harness::try_parse_from(argv) {
            Ok(h) => h.create,
            Err(e) => panic!("{line:?} did not parse: {e}"),
        }
    }

    #[test]
    fn create_without_spec_sends_spec_options_and_command() {
        let args = create_args(&[
            "--label",
            "a=1",
            "--env",
            "X=1",
            "--tty",
            "--net-host",
            "--cwd",
            "/srv",
            "--mount",
            "type=bind,src=/tmp,dst=/c",
            "--runtime",
            "runc",
            "busybox",
            "web",
            "sh",
            "-c",
            "echo hi",
        ]);
        assert_eq!(
            create(&args, None),
            json!({
                "container": {"id": "web", "image": "busybox", "labels": {"a": "1"},
                              "runtime": {"name": "runc"}},
                "spec_options": {"args": ["sh", "-c", "echo hi"], "env": ["X=1"],
                                 "cwd": "/srv", "tty": true, "net_host": true,
                                 "mounts": ["type=bind,src=/tmp,dst=/c"]},
            })
        );
    }

    #[test]
    fn create_with_spec_sends_it_whole_and_no_spec_options() {
        let args = create_args(&["--snapshot-key", "snap", "--env", "X=1", "", "raw"]);
        let spec = json!({"ociVersion": "1.0.2", "process": {"args": ["true"]}});
        assert_eq!(
            create(&args, Some(spec.clone())),
            json!({"container": {"id": "raw", "image": "", "snapshot_key": "snap",
                                 "spec": spec}})
        );
    }

    #[test]
    fn list_passes_filters_through_and_pages_with_after() {
        assert_eq!(list(&[], None), json!({}));
        let filters = [
            "labels.\"a.b\"==c,image~=^busy".to_owned(),
            "id==x".to_owned(),
        ];
        assert_eq!(
            list(&filters, Some("web".into())),
            json!({"filters": ["labels.\"a.b\"==c,image~=^busy", "id==x"], "after": "web"})
        );
    }

    #[test]
    fn label_masks_each_key_and_sends_empty_values_for_deletion() {
        let labels = [
            ("env".to_owned(), "prod".to_owned()),
            ("old".to_owned(), String::new()),
        ];
        assert_eq!(
            label("web", &labels),
            json!({"container": {"id": "web", "labels": {"env": "prod", "old": ""}},
                   "update_mask": ["labels.env", "labels.old"]})
        );
    }

    #[test]
    fn update_masks_only_the_given_fields() {
        let only_image = Update {
            image: Some("busybox:2".into()),
            spec: None,
            snapshot_key: None,
        };
        assert_eq!(
            update("web", only_image),
            json!({"container": {"id": "web", "image": "busybox:2"}, "update_mask": ["image"]})
        );
        let spec_and_key = Update {
            image: None,
            spec: Some(json!({"ociVersion": "1.0.2"})),
            snapshot_key: Some("k".into()),
        };
        assert_eq!(
            update("web", spec_and_key),
            json!({"container": {"id": "web", "spec": {"ociVersion": "1.0.2"},
                                 "snapshot_key": "k"},
                   "update_mask": ["spec", "snapshot_key"]})
        );
    }

    #[test]
    fn delete_sends_keep_snapshot_only_when_asked() {
        assert_eq!(delete("web", false), json!({"id": "web"}));
        assert_eq!(
            delete("web", true),
            json!({"id": "web", "keep_snapshot": true})
        );
    }
}
