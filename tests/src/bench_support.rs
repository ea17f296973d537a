//! Shared by the image benchmarks (`bench-import`, `bench-pull`): a generated image (many
//! files in one gzip layer) written as an OCI layout tar, and berthd / containerd (the
//! tests' `peers::Containerd`) started on temp dirs, killed on drop, with their peak RSS.
//!
//! Included with `#[path = "../bench_support.rs"] mod bench_support;`.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

pub fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what passes through.
pub struct Hashing<W> {
    pub inner: W,
    pub hash: Sha256,
    pub size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Deterministic filler bytes (xorshift), compressible like real binaries only a little.
pub fn fill(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Writes a layer to `path`: `files` files of `size(i)` bytes in 100 directories.
/// Returns (diff_id, compressed digest, compressed size).
pub fn write_layer(
    path: &Path,
    files: usize,
    size: impl Fn(usize) -> usize,
    gzip: bool,
) -> Result<(String, String, u64)> {
    let out = Hashing {
        inner: File::create(path)?,
        hash: Sha256::new(),
        size: 0,
    };
    let (diff_id, out) = if gzip {
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let tar_hash = Hashing {
            inner: gz,
            hash: Sha256::new(),
            size: 0,
        };
        let t = build_tar(tar_hash, files, &size)?;
        let diff = hex(t.hash);
        (diff, t.inner.finish()?)
    } else {
        let t = build_tar(out, files, &size)?;
        let diff = hex(t.hash.clone());
        (diff, t)
    };
    Ok((
        format!("sha256:{diff_id}"),
        format!("sha256:{}", hex(out.hash)),
        out.size,
    ))
}

pub fn build_tar<W: Write>(
    w: Hashing<W>,
    files: usize,
    size: &dyn Fn(usize) -> usize,
) -> Result<Hashing<W>> {
    let mut b = tar::Builder::new(w);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for d in 0..100 {
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("d{d:03}/"))?;
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty())?;
    }
    let mut buf = Vec::new();
    for i in 0..files {
        buf.resize(size(i), 0);
        fill(&mut buf, &mut seed);
        // Half of each file is zeros: gzip gets some work, as with real binaries.
        let half = buf.len() / 2;
        buf[half..].fill(0);
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("d{:03}/f{i}", i % 100))?;
        h.set_mode(0o644);
        h.set_size(buf.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, &buf[..])?;
    }
    Ok(b.into_inner()?)
}

pub fn add_file(
    b: &mut tar::Builder<File>,
    name: &str,
    data: &mut dyn Read,
    size: u64,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data)?;
    Ok(())
}

/// Writes an OCI layout tar with one image of one layer; returns its path.
pub fn write_image(
    dir: &Path,
    name: &str,
    files: usize,
    size: impl Fn(usize) -> usize,
    gzip: bool,
) -> Result<PathBuf> {
    let layer = dir.join(format!("{name}.layer"));
    let (diff_id, digest, lsize) = write_layer(&layer, files, size, gzip)?;
    let media = if gzip {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let config = serde_json::to_vec(&json!({
        "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let cdigest = format!("sha256:{}", hex(Sha256::new_with_prefix(&config)));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": config.len()},
        "layers": [{"mediaType": media, "digest": digest, "size": lsize}],
    }))?;
    let mdigest = format!("sha256:{}", hex(Sha256::new_with_prefix(&manifest)));
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": format!("docker.io/library/{name}:latest")}}]}))?;
    let path = dir.join(format!("{name}.tar"));
    let mut b = tar::Builder::new(File::create(&path)?);
    add_file(
        &mut b,
        "oci-layout",
        &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
        30,
    )?;
    add_file(&mut b, "index.json", &mut &index[..], index.len() as u64)?;
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    add_file(
        &mut b,
        &blob(&mdigest),
        &mut &manifest[..],
        manifest.len() as u64,
    )?;
    add_file(
        &mut b,
        &blob(&cdigest),
        &mut &config[..],
        config.len() as u64,
    )?;
    add_file(&mut b, &blob(&digest), &mut File::open(&layer)?, lsize)?;
    b.into_inner()?.sync_all()?;
    std::fs::remove_file(&layer)?;
    Ok(path)
}

pub fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM")
}

pub fn wait_socket(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            bail!("{} did not appear", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Kills and reaps a daemon we started, on every path.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own unreaped child's pid.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// berthd (the binary next to this one) on `<work>/berth-{root,state}`; returns it and
/// its socket.
pub fn start_berthd(work: &Path) -> Result<(Daemon, PathBuf)> {
    let exe = std::env::current_exe()?;
    let berthd = exe.parent().context("exe dir")?.join("berthd");
    let (root, state) = (work.join("berth-root"), work.join("berth-state"));
    let socket = state.join("b.sock");
    let d = Daemon(
        Command::new(&berthd)
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .context("start berthd")?,
    );
    wait_socket(&socket)?;
    Ok((d, socket))
}

/// Removes berthd's dirs after the daemon is gone.
pub fn clean_berthd(work: &Path) {
    let _ = std::fs::remove_dir_all(work.join("berth-root"));
    let _ = std::fs::remove_dir_all(work.join("berth-state"));
}

/// Starts berthd on `work`, times one JSON-RPC call on it, and returns the time and berthd's
/// peak RSS (KiB). The daemon is stopped and its directories removed afterwards.
pub fn time_berthd_call(
    work: &Path,
    method: &str,
    params: serde_json::Value,
) -> Result<(Duration, u64)> {
    use std::io::BufRead;
    let (d, socket) = start_berthd(work)?;
    let mut s = UnixStream::connect(&socket)?;
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let start = Instant::now();
    writeln!(s, "{req}")?;
    let mut line = String::new();
    std::io::BufReader::new(s.try_clone()?).read_line(&mut line)?;
    let took = start.elapsed();
    let resp: serde_json::Value = serde_json::from_str(&line)?;
    if resp.get("error").is_some() {
        bail!("berthd {method} failed: {resp}");
    }
    let hwm = vm_hwm_kib(d.0.id())?;
    drop(d);
    clean_berthd(work);
    Ok((took, hwm))
}

/// Starts containerd on temp dirs, times `ctr -a SOCK ARGS...`, checks with `ctr snapshots
/// ls` that something was unpacked (so both sides' times include unpacking), and returns
/// the time and containerd's peak RSS (KiB). containerd is stopped and cleaned afterwards.
pub fn time_ctr(args: &[&str]) -> Result<(Duration, u64)> {
    let ctd = berth_tests::peers::Containerd::start();
    let start = Instant::now();
    ctd.ctr(args);
    let took = start.elapsed();
    let hwm = vm_hwm_kib(ctd.pid())?;
    let unpacked = ctd.ctr(&["snapshots", "ls"]).lines().count() > 1;
    if !unpacked {
        bail!(
            "ctr {} left no snapshot: the comparison would not include unpacking",
            args.join(" ")
        );
    }
    Ok((took, hwm))
}

/// The generated benchmark image: FILES from the first argument (default 6,000) in one gzip
/// layer, written as an OCI archive in a fresh work dir under /var/tmp.
pub struct BenchImage {
    pub work: tempfile::TempDir,
    pub archive: PathBuf,
    pub files: usize,
    pub size: u64,
}

impl BenchImage {
    pub fn from_args() -> Result<BenchImage> {
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
        Ok(BenchImage {
            work,
            archive,
            files,
            size,
        })
    }
}
