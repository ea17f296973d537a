//! Parsers for `run`'s resource and device flags: `--memory 512m`, `--cpus 1.5`,
//! `--device HOST[:CTR][:PERMS]` (the host node is read here, where it lives) and the init
//! `--init` mounts. Each runs as a clap value parser, so a bad value is a usage error.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use schema::spec::DeviceOption;

/// Where `--init` looks for a static tini (Debian's `tini` package ships one), unless
/// `BERTH_INIT` names another static init.
const INIT_CANDIDATES: &[&str] = &["/usr/bin/tini-static", "/usr/local/bin/tini-static"];

/// `1048576`, `512k`, `64m`, `1g`, `1.5g` (units of 1024; a trailing `b` or `ib` is fine).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, unit) = match trimmed
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((i, _)) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "size {text:?}: unknown unit {unit:?} (use k, m, g)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("size {text:?} is not a number with an optional k, m or g"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("size {text:?} must be positive"));
    }
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// `1.5` CPUs as billionths of a CPU (docker's NanoCpus).
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let cpus: f64 = text
        .parse()
        .map_err(|_| format!("--cpus {text:?} is not a number of CPUs"))?;
    if !(cpus.is_finite() && cpus > 0.0) {
        return Err(format!("--cpus {text:?} must be positive"));
    }
    Ok((cpus * 1e9) as u64)
}

/// `HOST[:CTR][:PERMS]` (docker's `--device`): the host node's type and numbers, given to
/// the container at CTR (default: the same path) with PERMS of `rwm` (default all).
pub fn parse_device(text: &str) -> Result<DeviceOption, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let is_perms = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, ctr, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => return Err(format!("device {text:?} is not HOST[:CTR][:PERMS]")),
    };
    let meta = std::fs::metadata(host).map_err(|e| format!("device {host:?}: {e}"))?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(format!(
            "device {host:?} is not a character or block device"
        ));
    };
    let rdev = meta.rdev();
    Ok(DeviceOption {
        path: ctr.to_owned(),
        kind: kind.to_owned(),
        major: i64::from(libc::major(rdev)),
        minor: i64::from(libc::minor(rdev)),
        access: access.to_owned(),
        file_mode: Some(meta.mode() & 0o7777),
    })
}

/// The static init `--init` mounts: `BERTH_INIT`, or Debian's tini-static.
pub fn init_binary() -> anyhow::Result<String> {
    if let Some(path) = std::env::var_os("BERTH_INIT") {
        let path = std::path::PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "BERTH_INIT {} is not a file",
            path.display()
        );
        return Ok(std::fs::canonicalize(&path)?.display().to_string());
    }
    INIT_CANDIDATES
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| (*p).to_owned())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--init needs a static init binary: install Debian's tini package \
                 (/usr/bin/tini-static) or set BERTH_INIT to one"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_docker_s_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("12x").is_err());
        assert!(parse_size("-1m").is_err());
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert!(parse_cpus("0").is_err());
    }

    #[test]
    fn devices_are_read_from_the_host() {
        let d = parse_device("/dev/null").expect("null");
        assert_eq!((d.kind.as_str(), d.major, d.minor), ("c", 1, 3));
        assert_eq!((d.path.as_str(), d.access.as_str()), ("/dev/null", "rwm"));
        let d = parse_device("/dev/zero:/dev/z:r").expect("zero");
        assert_eq!(
            (d.path.as_str(), d.access.as_str(), d.minor),
            ("/dev/z", "r", 5)
        );
        let d = parse_device("/dev/null:rw").expect("perms only");
        assert_eq!((d.path.as_str(), d.access.as_str()), ("/dev/null", "rw"));
        assert!(parse_device("/etc/passwd")
            .expect_err("refused")
            .contains("not a character"));
        assert!(parse_device("/nonexistent")
            .expect_err("refused")
            .contains("/nonexistent"));
    }
}
