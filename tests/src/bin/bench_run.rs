//! Benchmark (release build): `berth run --rm --rootfs DIR id true` end to end vs bare
//! `runc run` of an equivalent bundle, and the API-level task sequence (create container,
//! create task, start, wait, delete task, delete container) sequential p50/p90 and runs/s
//! with 16 in parallel. Usage: `bench_run [ROUNDS]`; needs root, runc and busybox.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Rpc {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    id: u64,
}

impl Rpc {
    fn connect(socket: &Path) -> Result<Rpc> {
        let s = UnixStream::connect(socket)?;
        Ok(Rpc {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
            id: 0,
        })
    }
    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.id += 1;
        let line = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        writeln!(self.writer, "{line}")?;
        let mut reply = String::new();
        self.reader.read_line(&mut reply)?;
        let v: Value = serde_json::from_str(&reply)?;
        if let Some(e) = v.get("error") {
            bail!("{method}: {e}");
        }
        Ok(v["result"].clone())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p90) = (percentile(&samples, 0.5), percentile(&samples, 0.9));
    println!(
        "{name:<44} n={:<4} p50 {:>7.2} ms  p90 {:>7.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3
    );
    p50
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let bin = std::env::current_exe()?
        .parent()
        .context("bin dir")?
        .to_path_buf();
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/tmp")?;
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    for d in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
    for a in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a))?;
    }
    let socket = dir.path().join("berthd.sock");
    let mut daemon = Command::new(bin.join("berthd"))
        .args([
            "--root",
            &p(&dir.path().join("root")),
            "--state",
            &p(&dir.path().join("state")),
            "--socket",
            &p(&socket),
            "--log-level",
            "warn",
        ])
        .spawn()?;
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("berthd did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = bench(&bin, dir.path(), &rootfs, &socket, rounds);
    // SAFETY: kill(2) with plain integers on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    result
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn bench(bin: &Path, dir: &Path, rootfs: &Path, socket: &Path, rounds: usize) -> Result<()> {
    let berth = |args: &[&str]| -> Result<Duration> {
        let t = Instant::now();
        let st = Command::new(bin.join("berth"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("berth {args:?}: {st}");
        }
        Ok(t.elapsed())
    };
    let mut rpc = Rpc::connect(socket)?;
    // The spec `berth run --rootfs` builds, reused for the bare-runc bundle and the API runs.
    berth(&["run", "-d", "--rootfs", &p(rootfs), "specsrc", "true"])?;
    rpc.call("tasks.wait", json!({"container_id": "specsrc"}))?;
    let spec = rpc.call("containers.get", json!({"id": "specsrc"}))?["container"]["spec"].clone();
    rpc.call("tasks.delete", json!({"container_id": "specsrc"}))?;
    rpc.call("containers.delete", json!({"id": "specsrc"}))?;

    for i in 0..3 {
        berth(&[
            "run",
            "--rm",
            "--rootfs",
            &p(rootfs),
            &format!("warm{i}"),
            "true",
        ])?;
    }
    let mut cli = Vec::new();
    for i in 0..rounds {
        cli.push(berth(&[
            "run",
            "--rm",
            "--rootfs",
            &p(rootfs),
            &format!("cli{i}"),
            "true",
        ])?);
    }
    let cli_p50 = report("berth run --rm --rootfs DIR id true", cli);

    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    let mut bare_spec = spec.clone();
    bare_spec["process"]["terminal"] = json!(false);
    std::fs::write(bundle.join("config.json"), bare_spec.to_string())?;
    let runc_root = dir.join("runc-bare");
    let mut bare = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        let st = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["run", "--bundle", &p(&bundle), &format!("bare{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("runc run: {st}");
        }
        bare.push(t.elapsed());
    }
    let bare_p50 = report("bare runc run (same bundle)", bare);
    println!(
        "{:<44} {:.2}x",
        "berth run / bare runc (p50)",
        cli_p50.as_secs_f64() / bare_p50.as_secs_f64()
    );

    let sequence = |rpc: &mut Rpc, id: &str, steps: &mut [Duration; 6]| -> Result<Duration> {
        let t = Instant::now();
        let mut lap = Instant::now();
        let mut step = |i: usize, r: Result<Value>| -> Result<()> {
            r?;
            steps[i] += lap.elapsed();
            lap = Instant::now();
            Ok(())
        };
        step(
            0,
            rpc.call(
                "containers.create",
                json!({"container": {"id": id, "spec": spec}}),
            ),
        )?;
        step(1, rpc.call("tasks.create", json!({"container_id": id})))?;
        step(2, rpc.call("tasks.start", json!({"container_id": id})))?;
        step(3, rpc.call("tasks.wait", json!({"container_id": id})))?;
        step(4, rpc.call("tasks.delete", json!({"container_id": id})))?;
        step(5, rpc.call("containers.delete", json!({"id": id})))?;
        Ok(t.elapsed())
    };
    let mut steps = [Duration::ZERO; 6];
    let mut api = Vec::new();
    for i in 0..rounds {
        api.push(sequence(&mut rpc, &format!("api{i}"), &mut steps)?);
    }
    report("API sequence, sequential", api);
    let names = [
        "containers.create",
        "tasks.create",
        "tasks.start",
        "tasks.wait",
        "tasks.delete",
        "containers.delete",
    ];
    for (name, total) in names.iter().zip(steps) {
        println!(
            "    {name:<22} mean {:>6.2} ms",
            total.as_secs_f64() * 1e3 / rounds as f64
        );
    }

    let per_thread = rounds.max(16) / 4;
    let t = Instant::now();
    let socket: PathBuf = socket.to_owned();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..16)
            .map(|w| {
                let socket = socket.clone();
                let sequence = &sequence;
                s.spawn(move || -> Result<()> {
                    let mut rpc = Rpc::connect(&socket)?;
                    let mut steps = [Duration::ZERO; 6];
                    for i in 0..per_thread {
                        sequence(&mut rpc, &format!("par{w}-{i}"), &mut steps)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    })?;
    let total = 16 * per_thread;
    println!(
        "{:<44} {total} runs in {:.2} s = {:.1} runs/s",
        "API sequence, 16 in parallel",
        t.elapsed().as_secs_f64(),
        total as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}
