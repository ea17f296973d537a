//! The metadata of one tar entry that the unpacker restores: owner, mode, times and
//! extended attributes (from PAX `SCHILY.xattr.*` records).

use std::io::Read;

use nix::sys::time::TimeSpec;

use super::UnpackError;

/// Metadata restored on a created entry.
#[derive(Debug)]
pub(super) struct EntryMeta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub atime: TimeSpec,
    pub mtime: TimeSpec,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub(super) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    display: &str,
) -> Result<EntryMeta, UnpackError> {
    let bad = |what: String| UnpackError::BadHeader {
        entry: display.to_owned(),
        what,
    };
    let header = entry.header();
    let old = header.as_old();
    // An empty numeric field reads as 0, as Go's archive/tar (hence containerd) has it.
    let numeric = |raw: &[u8], v: std::io::Result<u64>, field: &str| {
        if raw.iter().all(|&b| b == 0 || b == b' ') {
            return Ok(0);
        }
        v.map_err(|e| bad(format!("{field}: {e}")))
    };
    let id = |raw: &[u8], v: std::io::Result<u64>, field: &str| -> Result<u32, UnpackError> {
        let v = numeric(raw, v, field)?;
        u32::try_from(v).map_err(|_| bad(format!("{field} {v} does not fit in 32 bits")))
    };
    let uid = id(&old.uid, header.uid(), "uid")?;
    let gid = id(&old.gid, header.gid(), "gid")?;
    let mode = numeric(&old.mode, header.mode().map(u64::from), "mode")? as u32 & 0o7777;
    let secs = numeric(&old.mtime, header.mtime(), "mtime")?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut atime = None;
    let mut xattrs = Vec::new();
    let pax = entry
        .pax_extensions()
        .map_err(|e| bad(format!("PAX records: {e}")))?;
    for ext in pax.into_iter().flatten() {
        let ext = ext.map_err(|e| bad(format!("PAX record: {e}")))?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            // Overlayfs reads these itself (opaque, redirect, metacopy, origin); a layer
            // expresses whiteouts only by name, so layer-supplied ones are dropped.
            if name.starts_with("trusted.overlay.") {
                let entry = display;
                tracing::warn!(entry, xattr = name, "overlay xattr in layer dropped");
                continue;
            }
            xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
        } else if key == "mtime" {
            mtime = ext.value().ok().and_then(parse_pax_time).unwrap_or(mtime);
        } else if key == "atime" {
            atime = ext.value().ok().and_then(parse_pax_time);
        }
    }
    Ok(EntryMeta {
        uid,
        gid,
        mode,
        atime: atime.unwrap_or(mtime),
        mtime,
        xattrs,
    })
}

/// PAX times are decimal seconds with an optional fraction, possibly negative.
fn parse_pax_time(value: &str) -> Option<TimeSpec> {
    let (neg, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut secs: i64 = whole.parse().ok()?;
    let mut nanos: i64 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + i64::from(b - b'0');
    }
    if neg {
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    Some(TimeSpec::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        let t = parse_pax_time("1700000000.25").expect("valid");
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_700_000_000, 250_000_000));
        let t = parse_pax_time("-1.5").expect("valid");
        assert_eq!((t.tv_sec(), t.tv_nsec()), (-2, 500_000_000));
        let t = parse_pax_time("12").expect("valid");
        assert_eq!((t.tv_sec(), t.tv_nsec()), (12, 0));
        assert!(parse_pax_time("x1").is_none());
        assert!(parse_pax_time("").is_none());
    }
}
