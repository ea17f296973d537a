//! Import+unpack benchmark: berthd (release build) against containerd's `ctr images
//! import`, on the same generated OCI archive, one run each; wall time and peak RSS
//! (VmHWM) of each daemon. Then the RSS of berthd importing a 1 GiB image.
//!
//! `cargo build --release -p berthd && cargo run --release -p berth-tests --bin
//! bench-import [-- FILES]` as root, with containerd and ctr installed.

#[path = "../bench_support.rs"]
mod bench_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bench_support::{
    clean_berthd, clean_containerd, start_berthd, start_containerd, vm_hwm_kib, write_image,
};
use serde_json::{json, Value};

fn berthd_import(work: &Path, archive: &Path) -> Result<(Duration, u64)> {
    let (d, socket) = start_berthd(work)?;
    let mut s = UnixStream::connect(&socket)?;
    let req =
        json!({"jsonrpc": "2.0", "id": 1, "method": "images.import", "params": {"path": archive}});
    let start = Instant::now();
    writeln!(s, "{req}")?;
    let mut line = String::new();
    BufReader::new(s.try_clone()?).read_line(&mut line)?;
    let took = start.elapsed();
    let resp: Value = serde_json::from_str(&line)?;
    if resp.get("error").is_some() {
        bail!("berthd import failed: {resp}");
    }
    let hwm = vm_hwm_kib(d.0.id())?;
    drop(d);
    clean_berthd(work);
    Ok((took, hwm))
}

fn containerd_import(work: &Path, archive: &Path) -> Result<(Duration, u64)> {
    let (d, address) = start_containerd(work)?;
    let start = Instant::now();
    let out = Command::new("ctr")
        .arg("-a")
        .arg(&address)
        .args(["images", "import"])
        .arg(archive)
        .output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "ctr images import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hwm = vm_hwm_kib(d.0.id())?;
    drop(d);
    clean_containerd(work);
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
    println!(
        "image: {files} files, one gzip layer, archive {:.1} MiB",
        size as f64 / 1048576.0
    );
    let (bt, bh) = berthd_import(work.path(), &archive)?;
    println!(
        "berthd     import+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB",
        bt.as_secs_f64() * 1e3,
        bh as f64 / 1024.0
    );
    let (ct, ch) = containerd_import(work.path(), &archive)?;
    println!(
        "containerd import+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (ctr images import)",
        ct.as_secs_f64() * 1e3,
        ch as f64 / 1024.0
    );
    std::fs::remove_file(&archive)?;

    let big = write_image(work.path(), "big", 64, |_| 16 << 20, false)?;
    let size = std::fs::metadata(&big)?.len();
    let (t, h) = berthd_import(work.path(), &big)?;
    println!(
        "berthd 1 GiB image ({:.0} MiB archive): {:.0} ms, peak RSS {:.1} MiB",
        size as f64 / 1048576.0,
        t.as_secs_f64() * 1e3,
        h as f64 / 1024.0
    );
    Ok(())
}
