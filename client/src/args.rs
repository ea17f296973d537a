//! Parsers for the small command-line grammars several commands share (`KEY=VALUE` labels,
//! `--mount` specs). They run as clap value parsers, so a bad value is a usage error.

use serde_json::{Map, Value};

/// Why a command-line value was refused; the message quotes the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgError {
    /// A label needs `=` so that `k=` (delete) and `k` (typo) cannot be confused.
    #[error("label {0:?} is not KEY=VALUE (use KEY= to delete a label)")]
    LabelNotPair(String),
    #[error("label {0:?} has an empty key")]
    LabelEmptyKey(String),
    #[error("{0}")]
    Mount(String),
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

/// A `--mount` flag (`type=bind,src=..,dst=..,options=rbind:ro`), checked with the same
/// parser the daemon applies so a typo fails before anything is sent; sent as written.
pub fn parse_mount(spec: &str) -> Result<String, ArgError> {
    schema::spec::parse_mount(spec)
        .map(|_| spec.to_owned())
        .map_err(|e| ArgError::Mount(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn mount_flags_are_checked_and_sent_as_written() {
        let flag = "type=bind,src=/host,dst=/data,options=rbind:ro";
        assert_eq!(parse_mount(flag).as_deref(), Ok(flag));
        for bad in ["type=tmpfs", "dst=/x,rw=1", "type=bind,src=/a,dst=relative"] {
            let err = parse_mount(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err} should name {bad:?}");
        }
    }
}
