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

/// A host path made absolute against the current directory and canonicalised, so the
/// daemon (whose cwd differs) binds what the user meant; a missing path names itself.
fn host_path(path: &str) -> Result<String, ArgError> {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .map_err(|e| ArgError::Mount(format!("host path {path:?}: {e}")))
}

/// `-v HOST:CTR[:ro|rw]` as a `--mount` value (`type=bind,src=HOST,dst=CTR,options=rbind[:ro]`).
pub fn parse_volume(text: &str) -> Result<String, ArgError> {
    let bad = |why: &str| ArgError::Mount(format!("volume {text:?}: {why}"));
    let mut parts = text.split(':');
    let (Some(host), Some(ctr)) = (parts.next(), parts.next()) else {
        return Err(bad("expected HOST:CTR[:ro|rw]"));
    };
    let mode = match (parts.next(), parts.next()) {
        (None, _) | (Some("rw"), None) => "rw",
        (Some("ro"), None) => "ro",
        _ => return Err(bad("expected HOST:CTR[:ro|rw]")),
    };
    if host.is_empty() || ctr.is_empty() {
        return Err(bad("expected HOST:CTR[:ro|rw]"));
    }
    if host.contains(',') || ctr.contains(',') {
        return Err(bad("paths with ',' are not supported"));
    }
    let flag = format!(
        "type=bind,src={},dst={ctr},options=rbind:{mode}",
        host_path(host)?
    );
    parse_mount(&flag)
}

/// `--tmpfs CTR[:OPTS]` (OPTS comma-separated, as docker's) as a `--mount` value.
pub fn parse_tmpfs(text: &str) -> Result<String, ArgError> {
    let (ctr, opts) = text.split_once(':').unwrap_or((text, ""));
    let mut options = vec!["nosuid", "nodev", "noexec"];
    options.extend(opts.split(',').filter(|o| !o.is_empty()));
    parse_mount(&format!(
        "type=tmpfs,src=tmpfs,dst={ctr},options={}",
        options.join(":")
    ))
}

/// A `--mount` flag (`type=bind,src=..,dst=..,options=rbind:ro`), checked with the same
/// parser the daemon applies so a typo fails before anything is sent; sent as written.
///
/// A bind source that is relative is resolved against the current directory here.
pub fn parse_mount(spec: &str) -> Result<String, ArgError> {
    let mount = schema::spec::parse_mount(spec).map_err(|e| ArgError::Mount(e.to_string()))?;
    let bind = mount.typ().as_deref() == Some("bind");
    match mount.source() {
        Some(src) if bind && !src.is_absolute() => {
            let src = src.display().to_string();
            let abs =
                host_path(&src).map_err(|e| ArgError::Mount(format!("mount {spec:?}: {e}")))?;
            let fields: Vec<String> = spec
                .split(',')
                .map(|f| match f.split_once('=') {
                    Some((k @ ("src" | "source"), _)) => format!("{k}={abs}"),
                    _ => f.to_owned(),
                })
                .collect();
            Ok(fields.join(","))
        }
        Some(src) if bind && !src.exists() => Err(ArgError::Mount(format!(
            "mount {spec:?}: host path {:?} does not exist",
            src.display().to_string()
        ))),
        _ => Ok(spec.to_owned()),
    }
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
        let flag = "type=bind,src=/tmp,dst=/data,options=rbind:ro";
        assert_eq!(parse_mount(flag).as_deref(), Ok(flag));
        for bad in [
            "type=bind,src=/no/such/dir,dst=/d",
            "type=tmpfs",
            "dst=/x,rw=1",
            "type=bind,src=/a,dst=relative",
        ] {
            let err = parse_mount(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err} should name {bad:?}");
        }
    }

    #[test]
    fn volumes_become_rbind_mounts_with_canonical_host_paths() {
        assert_eq!(
            parse_volume("/tmp:/data:ro").as_deref(),
            Ok("type=bind,src=/tmp,dst=/data,options=rbind:ro")
        );
        let cwd = std::env::current_dir().expect("cwd");
        let want = format!("type=bind,src={},dst=/d,options=rbind:rw", cwd.display());
        assert_eq!(parse_volume(".:/d").as_deref(), Ok(want.as_str()));
        let err = parse_volume("/no/such/dir:/d").expect_err("missing host path");
        assert!(err.to_string().contains("/no/such/dir"), "{err}");
        assert!(parse_volume("/tmp").is_err());
        assert!(parse_volume("/tmp:/d:rx").is_err());
    }

    #[test]
    fn tmpfs_flags_become_tmpfs_mounts() {
        assert_eq!(
            parse_tmpfs("/run:size=64m").as_deref(),
            Ok("type=tmpfs,src=tmpfs,dst=/run,options=nosuid:nodev:noexec:size=64m")
        );
        assert!(parse_tmpfs("relative").is_err());
    }
}
