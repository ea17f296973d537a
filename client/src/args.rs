//! Parsers for the small command-line grammars several commands share (`KEY=VALUE` labels,
//! `--mount` specs). They run as clap value parsers, so a bad value is a usage error.

use serde_json::{json, Map, Value};

/// Why a command-line value was refused; the message quotes the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgError {
    /// A label needs `=` so that `k=` (delete) and `k` (typo) cannot be confused.
    #[error("label {0:?} is not KEY=VALUE (use KEY= to delete a label)")]
    LabelNotPair(String),
    #[error("label {0:?} has an empty key")]
    LabelEmptyKey(String),
    #[error("mount {spec:?}: unknown field {field:?} (expected type, src, dst, options)")]
    MountField { spec: String, field: String },
    #[error("mount {0:?} has no destination (dst=PATH)")]
    MountNoDestination(String),
}

/// `KEY=VALUE` as a pair; `KEY=` yields an empty value, which label updates treat as delete.
pub fn parse_label(text: &str) -> Result<(String, String), ArgError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| ArgError::LabelNotPair(text.to_owned()))?;
    if key.is_empty() {
        return Err(ArgError::LabelEmptyKey(text.to_owned()));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Labels as the JSON object the wire carries; a repeated key keeps its last value.
pub fn labels_object(labels: &[(String, String)]) -> Value {
    let map: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    Value::Object(map)
}

/// ctr's mount grammar, `type=bind,src=/a,dst=/b,options=rbind:ro`, turned into an OCI
/// mount object `{destination, type, source, options}`.
pub fn parse_mount(spec: &str) -> Result<Value, ArgError> {
    let mut mount = Map::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        let (name, value) = match key {
            "type" => ("type", json!(value)),
            "src" | "source" => ("source", json!(value)),
            "dst" | "destination" | "target" => ("destination", json!(value)),
            "options" => ("options", json!(value.split(':').collect::<Vec<_>>())),
            _ => {
                return Err(ArgError::MountField {
                    spec: spec.to_owned(),
                    field: key.to_owned(),
                })
            }
        };
        mount.insert(name.to_owned(), value);
    }
    match mount.get("destination").and_then(Value::as_str) {
        Some(dst) if !dst.is_empty() => Ok(Value::Object(mount)),
        _ => Err(ArgError::MountNoDestination(spec.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_splits_at_the_first_equals_sign() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
    }

    #[test]
    fn label_with_empty_value_is_kept_for_deletion() {
        assert_eq!(parse_label("gone="), Ok(("gone".into(), String::new())));
    }

    #[test]
    fn label_without_equals_or_key_is_refused() {
        assert_eq!(
            parse_label("typo"),
            Err(ArgError::LabelNotPair("typo".into()))
        );
        assert_eq!(parse_label("=v"), Err(ArgError::LabelEmptyKey("=v".into())));
    }

    #[test]
    fn labels_object_keeps_the_last_value_of_a_repeated_key() {
        let labels = [("a".into(), "1".into()), ("a".into(), "2".into())];
        assert_eq!(labels_object(&labels), json!({"a": "2"}));
    }

    #[test]
    fn mount_spec_becomes_an_oci_mount() {
        let mount =
            parse_mount("type=bind,src=/host,dst=/data,options=rbind:ro").expect("valid mount");
        assert_eq!(
            mount,
            json!({"type": "bind", "source": "/host", "destination": "/data",
                   "options": ["rbind", "ro"]})
        );
    }

    #[test]
    fn mount_spec_needs_a_destination_and_known_fields() {
        assert_eq!(
            parse_mount("type=tmpfs"),
            Err(ArgError::MountNoDestination("type=tmpfs".into()))
        );
        assert!(matches!(
            parse_mount("dst=/x,rw=1"),
            Err(ArgError::MountField { field, .. }) if field == "rw"
        ));
    }
}
