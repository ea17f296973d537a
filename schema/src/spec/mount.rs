//! The `ctr run --mount` flag: `type=bind,src=/a,dst=/b,options=rbind:ro`.

use oci_spec::runtime::{Mount, MountBuilder};

use super::SpecError;

const KEYS: &str = "type, src/source, dst/destination/target, options";

/// Parses one `--mount` value into a runtime-spec mount.
///
/// Fields are comma-separated `key=value` pairs; keys as ctr's (`type`, `src`/`source`,
/// `dst`/`destination`, `options`) plus Docker's `target`. Options are colon-separated.
/// Unlike ctr, a value may itself contain `=` (`options=mode=1777:size=64m`), a repeated
/// key is an error rather than last-wins, and the destination is required and must be
/// absolute, because runc cannot mount anywhere else.
pub fn parse_mount(flag: &str) -> Result<Mount, SpecError> {
    let fail = |reason: String| SpecError::Mount {
        value: flag.to_owned(),
        reason,
    };
    let (mut typ, mut source, mut destination, mut options) = (None, None, None, None);
    for field in flag.split(',') {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| fail(format!("field \"{field}\" is not key=value")))?;
        let slot = match key {
            "type" => &mut typ,
            "src" | "source" => &mut source,
            "dst" | "destination" | "target" => &mut destination,
            "options" => &mut options,
            _ => return Err(fail(format!("unknown key \"{key}\" (expected {KEYS})"))),
        };
        if slot.replace(value).is_some() {
            return Err(fail(format!("key \"{key}\" is given twice")));
        }
    }

    let destination = destination
        .filter(|d| !d.is_empty())
        .ok_or_else(|| fail("no destination (dst=...)".to_owned()))?;
    if !destination.starts_with('/') {
        return Err(fail(format!(
            "destination \"{destination}\" is not an absolute path"
        )));
    }
    let mut mount = MountBuilder::default().destination(destination);
    let typ = typ.filter(|t| !t.is_empty());
    if let Some(typ) = typ {
        mount = mount.typ(typ);
    }
    if let Some(source) = source.filter(|s| !s.is_empty()) {
        mount = mount.source(source);
    }
    if let Some(options) = options.filter(|o| !o.is_empty()) {
        if options.split(':').any(str::is_empty) {
            return Err(fail(format!(
                "options \"{options}\" contain an empty option"
            )));
        }
    }
    let mut opts: Vec<String> = options
        .filter(|o| !o.is_empty())
        .map(|o| o.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    // runc hands a bind mount without `bind`/`rbind` to mount(2) as a filesystem type
    // named "bind" (`no such device`); plain bind semantics are rbind, as docker's -v.
    if typ == Some("bind") && !opts.iter().any(|o| o == "bind" || o == "rbind") {
        opts.insert(0, "rbind".to_owned());
    }
    if !opts.is_empty() {
        mount = mount.options(opts);
    }
    Ok(mount.build()?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(flag: &str) -> String {
        match parse_mount(flag) {
            Ok(mount) => panic!("{flag} parsed as {mount:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_ctr_syntax() {
        let m = parse_mount("type=bind,src=/a,dst=/b,options=rbind:ro").expect("valid flag");
        assert_eq!(m.typ().as_deref(), Some("bind"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/a")));
        assert_eq!(m.destination(), Path::new("/b"));
        assert_eq!(
            m.options().as_deref(),
            Some(&["rbind".to_owned(), "ro".to_owned()][..])
        );
    }

    #[test]
    fn accepts_long_key_aliases_and_equals_in_values() {
        for dst_key in ["dst", "destination", "target"] {
            let flag = format!("type=tmpfs,source=tmpfs,{dst_key}=/tmp,options=mode=1777:size=64m");
            let m = parse_mount(&flag).expect("valid flag");
            assert_eq!(m.destination(), Path::new("/tmp"), "{dst_key}");
            assert_eq!(m.source().as_deref(), Some(Path::new("tmpfs")));
            assert_eq!(
                m.options().as_deref(),
                Some(&["mode=1777".to_owned(), "size=64m".to_owned()][..])
            );
        }
    }

    #[test]
    fn bind_mounts_default_to_rbind() {
        let m = parse_mount("type=bind,src=/a,dst=/b").expect("valid flag");
        assert_eq!(m.options().as_deref(), Some(&["rbind".to_owned()][..]));
        let m = parse_mount("type=bind,src=/a,dst=/b,options=ro").expect("valid flag");
        assert_eq!(
            m.options().as_deref(),
            Some(&["rbind".to_owned(), "ro".to_owned()][..])
        );
        let m = parse_mount("type=bind,src=/a,dst=/b,options=bind").expect("valid flag");
        assert_eq!(m.options().as_deref(), Some(&["bind".to_owned()][..]));
    }

    #[test]
    fn optional_fields_stay_absent() {
        let m = parse_mount("dst=/data").expect("valid flag");
        assert_eq!(m.destination(), Path::new("/data"));
        assert_eq!(m.typ(), &None);
        assert_eq!(m.source(), &None);
        assert_eq!(m.options(), &None);
    }

    #[test]
    fn rejects_malformed_flags_naming_them() {
        assert_eq!(
            error("type=bind,src=/a,dst=/b,foo=1"),
            "mount \"type=bind,src=/a,dst=/b,foo=1\": unknown key \"foo\" \
             (expected type, src/source, dst/destination/target, options)"
        );
        assert_eq!(
            error("type=bind,src=/a"),
            "mount \"type=bind,src=/a\": no destination (dst=...)"
        );
        assert!(error("dst=").contains("no destination"));
        assert!(error("dst=relative").contains("destination \"relative\" is not an absolute path"));
        assert!(error("type=bind,dst=/b,bogus").contains("field \"bogus\" is not key=value"));
        assert!(error("dst=/b,").contains("field \"\" is not key=value"));
        assert!(error("dst=/a,target=/b").contains("key \"target\" is given twice"));
        assert!(error("dst=/a,options=rbind::ro").contains("contain an empty option"));
        assert!(error("").contains("is not key=value"));
    }
}
