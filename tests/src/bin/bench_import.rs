//! Import and export benchmark: berthd (release build) against containerd's `ctr images
//! import`/`export`, on the same archives, each daemon on fresh temp dirs; wall time,
//! throughput and peak RSS (VmHWM) of each daemon.
//!
//! 1. The generated OCI archive (FILES files, one gzip layer): import+unpack.
//! 2. A 1 GiB docker-archive written by skopeo (manifest.json last, after the layers), the
//!    order a one-pass importer must handle: import+unpack, then export of that image.
//!
//! `cargo build --release --workspace --bins && ./target/release/bench-import [FILES]` as
//! root, with containerd, ctr and skopeo installed (scripts/install-deps.sh).

#[path = "../bench_support.rs"]
mod bench_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench_support::{
    clean_berthd, start_berthd, time_berthd_call, time_ctr, vm_hwm_kib, write_image, BenchImage,
};
use serde_json::json;

fn main() -> Result<()> {
    let BenchImage {
        work,
        archive,
        files,
        size,
    } = BenchImage::from_args()?;
    println!(
        "image: {files} files, one gzip layer, archive {:.1} MiB",
        size as f64 / 1048576.0
    );
    let (bt, bh) = time_berthd_call(work.path(), "images.import", json!({"path": archive}))?;
    println!(
        "berthd     import+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB",
        bt.as_secs_f64() * 1e3,
        bh as f64 / 1024.0
    );
    let (ct, ch) = time_ctr(&["images", "import", &archive.display().to_string()])?;
    println!(
        "containerd import+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (ctr images import)",
        ct.as_secs_f64() * 1e3,
        ch as f64 / 1024.0
    );
    std::fs::remove_file(&archive)?;

    let oci = write_image(work.path(), "big", 64, |_| 16 << 20, false)?;
    let big = work.path().join("big-docker.tar");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("oci-archive:{}", oci.display()))
        .arg(format!("docker-archive:{}:bench/big:1", big.display()))
        .output()
        .context("skopeo")?;
    if !out.status.success() {
        bail!("skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::remove_file(&oci)?;
    let size = std::fs::metadata(&big)?.len();
    let (at, of, last_layer) = manifest_position(&big)?;
    if at < last_layer {
        bail!("skopeo wrote manifest.json before a layer: the bench would not show the order");
    }
    println!(
        "\n1 GiB docker-archive by skopeo: {:.0} MiB, manifest.json is entry {} of {of}, after \
         every layer",
        size as f64 / 1048576.0,
        at + 1
    );
    let mib = size as f64 / 1048576.0;
    let row = |who: &str, what: &str, t: Duration, hwm: u64| {
        println!(
            "{who:<10} {what:<13} {:>7.0} ms {:>7.0} MiB/s, peak RSS {:>7.1} MiB",
            t.as_secs_f64() * 1e3,
            mib / t.as_secs_f64(),
            hwm as f64 / 1024.0
        )
    };
    let (it, et, hwm) = berthd_round_trip(work.path(), &big)?;
    row("berthd", "import+unpack", it, hwm.0);
    row("berthd", "export", et, hwm.1);
    let (it, et, hwm) = ctr_round_trip(work.path(), &big)?;
    row("containerd", "import+unpack", it, hwm.0);
    row("containerd", "export", et, hwm.1);
    Ok(())
}

/// Where manifest.json sits: `(its index, entries, index of the last layer tar)`.
fn manifest_position(path: &Path) -> Result<(usize, usize, usize)> {
    let mut tar = tar::Archive::new(std::fs::File::open(path)?);
    let (mut at, mut last_layer, mut n) = (None, 0, 0);
    for (i, e) in tar.entries()?.enumerate() {
        let name = e?.path()?.display().to_string();
        if name == "manifest.json" {
            at = Some(i);
        } else if name.ends_with(".tar") {
            last_layer = i;
        }
        n = i + 1;
    }
    Ok((at.context("no manifest.json")?, n, last_layer))
}

/// berthd imports `archive` (timed, peak RSS), then `berth images export` writes it to a
/// file (timed, peak RSS since start).
fn berthd_round_trip(work: &Path, archive: &Path) -> Result<(Duration, Duration, (u64, u64))> {
    let (d, socket) = start_berthd(work)?;
    let berth = std::env::current_exe()?.with_file_name("berth");
    let start = Instant::now();
    let out = Command::new(&berth)
        .arg("--socket")
        .arg(&socket)
        .args(["images", "import"])
        .arg(archive)
        .output()?;
    let import = start.elapsed();
    if !out.status.success() {
        bail!(
            "berth images import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after_import = vm_hwm_kib(d.0.id())?;
    let dest = work.join("berth-export.tar");
    let start = Instant::now();
    let out = Command::new(&berth)
        .arg("--socket")
        .arg(&socket)
        .args(["images", "export", "-o"])
        .arg(&dest)
        .arg("bench/big:1")
        .output()?;
    let export = start.elapsed();
    if !out.status.success() {
        bail!(
            "berth images export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after_export = vm_hwm_kib(d.0.id())?;
    drop(d);
    std::fs::remove_file(&dest)?;
    clean_berthd(work);
    Ok((import, export, (after_import, after_export)))
}

/// The same with `ctr images import` and `ctr images export`.
fn ctr_round_trip(work: &Path, archive: &Path) -> Result<(Duration, Duration, (u64, u64))> {
    let ctd = berth_tests::peers::Containerd::start();
    let start = Instant::now();
    ctd.ctr(&["images", "import", &archive.display().to_string()]);
    let import = start.elapsed();
    let after_import = vm_hwm_kib(ctd.pid())?;
    let dest = work.join("ctr-export.tar");
    let start = Instant::now();
    ctd.ctr(&[
        "images",
        "export",
        &dest.display().to_string(),
        "docker.io/bench/big:1",
    ]);
    let export = start.elapsed();
    let after_export = vm_hwm_kib(ctd.pid())?;
    std::fs::remove_file(&dest)?;
    Ok((import, export, (after_import, after_export)))
}
