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

use anyhow::{anyhow, Result};
use bench_support::{time_berthd_call, time_ctr, BenchImage};
use serde_json::json;

fn main() -> Result<()> {
    let BenchImage {
        work,
        archive,
        files,
        size,
    } = BenchImage::from_args()?;
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
    let (bt, bh) = time_berthd_call(
        work.path(),
        "images.pull",
        json!({"ref": reference, "plain_http": true}),
    )?;
    println!(
        "berthd     pull+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (images.pull)",
        bt.as_secs_f64() * 1e3,
        bh as f64 / 1024.0
    );
    let (ct, ch) = time_ctr(&["images", "pull", "--plain-http", &reference])?;
    println!(
        "containerd pull+unpack: {:>8.0} ms, peak RSS {:>7.1} MiB (ctr images pull --plain-http)",
        ct.as_secs_f64() * 1e3,
        ch as f64 / 1024.0
    );
    Ok(())
}
