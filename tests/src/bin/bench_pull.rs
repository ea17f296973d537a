//! Pull+unpack benchmark: berthd (release build) against containerd's `ctr images pull
//! --plain-http`, the same generated image (6,000 files in one gzip layer by default) from
//! the same local docker-registry, one run each, each daemon on fresh temp dirs; wall time
//! and peak RSS (VmHWM) of each daemon.
//!
//! `cargo build --release -p berthd && cargo run --release -p berth-tests --bin bench-pull
//! [-- FILES]` as root, with docker-registry, skopeo, containerd and ctr installed.

#[path = "../bench_support.rs"]
mod bench_support;
#[path = "../images.rs"]
mod images;
#[path = "../registry.rs"]
mod registry;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bench_support::{
    clean_berthd, clean_containerd, start_berthd, start_containerd, vm_hwm_kib, write_image,
};
use serde_json::{json, Value};

fn berthd_pull(work: &Path, reference: &str) -> Result<(Duration, u64)> {
    let (d, socket) = start_berthd(work)?;
    let mut s = UnixStream::connect(&socket)?;
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "images.pull",
                     "params": {"ref": reference, "plain_http": true}});
    let start = Instant::now();
    writeln!(s, "{req}")?;
    let mut line = String::new();
    BufReader::new(s.try_clone()?).read_line(&mut line)?;
    let took = start.elapsed();
    let resp: Value = serde_json::from_str(&line)?;
    if resp.get("error").is_some() {
        bail!("berthd pull failed: {resp}");
    }
    let hwm = vm_hwm_kib(d.0.id())?;
    drop(d);
    clean_berthd(work);
    Ok((took, hwm))
}

fn containerd_pull(work: &Path, reference: &str) -> Result<(Duration, u64)> {
    let (d, address) = start_containerd(work)?;
    let start = Instant::now();
    let out = Command::new("ctr")
        .arg("-a")
        .arg(&address)
        .args(["images", "pull", "--plain-http", reference])
        .output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "ctr images pull failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hwm = vm_hwm_kib(d.0.id())?;
    let snaps = Command::new("ctr")
        .arg("-a")
        .arg(&address)
        .args(["snapshots", "ls"])
        .output()?;
    let unpacked = String::from_utf8_lossy(&snaps.stdout).lines().count() > 1;
    drop(d);
    clean_containerd(work);
    if !unpacked {
        bail!("ctr images pull left no snapshot: the comparison would not include unpacking");
    }
    Ok((took, hwm))
}

fn main() -> Result<()> {
    let files: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(6000);
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/var/tmp")?;
    let archive = write_image(
        work.path(),
        "bench",
        files,
        |i| 1024 + (i * 7919) % 32768,
        true,
    )?;
    let size = std::fs::metadata(&archive)?.len();
    let reg = registry::Registry::start();
    reg.push_from(
        &format!("oci-archive:{}", archive.display()),
        "bench:1",
        &[],
    )
    .map_err(|e| anyhow!(e))?;
    std::fs::remove_file(&archive)?;
    let reference = format!("{}/bench:1", reg.host());
    println!(
        "image: {files} files, one gzip layer, {:.1} MiB, from docker-registry at {}",
        size as f64 / 1048576.0,
        reg.host()
    );
    let (bt, bh) = berthd_pull(work.path(), &reference)?;
    println!(
        "berthd     pull+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (images.pull)",
        bt.as_secs_f64() * 1e3,
        bh as f64 / 1024.0
    );
    let (ct, ch) = containerd_pull(work.path(), &reference)?;
    println!(
        "containerd pull+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (ctr images pull --plain-http)",
        ct.as_secs_f64() * 1e3,
        ch as f64 / 1024.0
    );
    Ok(())
}
