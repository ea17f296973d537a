//! Import+unpack benchmark: berthd (release build) against containerd's `ctr images
//! import`, on the same generated OCI archive, one run each; wall time and peak RSS
//! (VmHWM) of each daemon. Then the RSS of berthd importing a 1 GiB image.
//!
//! `cargo build --release -p berthd && cargo run --release -p berth-tests --bin
//! bench-import [-- FILES]` as root, with containerd and ctr installed.

#[path = "../bench_support.rs"]
mod bench_support;

use anyhow::Result;
use bench_support::{time_berthd_call, time_ctr, write_image, BenchImage};
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
    let (ct, ch) = time_ctr(
        work.path(),
        &["images", "import", &archive.display().to_string()],
    )?;
    println!(
        "containerd import+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (ctr images import)",
        ct.as_secs_f64() * 1e3,
        ch as f64 / 1024.0
    );
    std::fs::remove_file(&archive)?;

    let big = write_image(work.path(), "big", 64, |_| 16 << 20, false)?;
    let size = std::fs::metadata(&big)?.len();
    let (t, h) = time_berthd_call(work.path(), "images.import", json!({"path": big}))?;
    println!(
        "berthd 1 GiB image ({:.0} MiB archive): {:.0} ms, peak RSS {:.1} MiB",
        size as f64 / 1048576.0,
        t.as_secs_f64() * 1e3,
        h as f64 / 1024.0
    );
    Ok(())
}
