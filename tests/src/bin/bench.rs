//! `berth-bench`: drives a real (release) berthd over its socket and prints a table of the
//! containers service's throughput and latency, plus berthd's RSS. Not a test: it asserts
//! nothing, it measures. Run with `make bench`.
//!
//! Every request is a JSON-RPC call on a persistent newline-delimited JSON connection, one
//! connection per client thread, as a script or the `berth` client would do it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Client {
    w: UnixStream,
    r: BufReader<UnixStream>,
    id: u64,
    line: String,
}

impl Client {
    fn connect(sock: &Path) -> Result<Client> {
        let w = UnixStream::connect(sock).with_context(|| format!("connect {}", sock.display()))?;
        let r = BufReader::new(w.try_clone()?);
        Ok(Client {
            w,
            r,
            id: 0,
            line: String::new(),
        })
    }

    /// Sends one call and returns the raw reply line. Only the envelope is checked, so the
    /// client's own JSON decoding is not counted as the daemon's time.
    fn call(&mut self, method: &str, params: Value) -> Result<&str> {
        self.id += 1;
        let req = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        let mut s = req.to_string();
        s.push('\n');
        self.w.write_all(s.as_bytes())?;
        self.line.clear();
        self.r.read_line(&mut self.line)?;
        let result = self.line.find("\"result\":");
        let error = self.line.find("\"error\":");
        match (result, error) {
            (Some(r), Some(e)) if e < r => bail!("{method}: {}", self.line.trim()),
            (None, _) => bail!("{method}: {}", self.line.trim()),
            _ => Ok(&self.line),
        }
    }

    /// Sends one call and decodes its result (outside any timed section).
    fn call_json(&mut self, method: &str, params: Value) -> Result<Value> {
        let line = self.call(method, params)?;
        let v: Value = serde_json::from_str(line).context("reply")?;
        Ok(v["result"].clone())
    }
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Result<Daemon> {
        let exe = std::env::current_exe()?;
        let bin = exe.parent().context("exe dir")?.join("berthd");
        let dir = tempfile::Builder::new().prefix("berth-bench").tempdir()?;
        let child = Command::new(&bin)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {} (run `make bench`)", bin.display()))?;
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(d.sock()).is_err() {
            if Instant::now() > deadline {
                bail!("berthd did not start");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(d)
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("state/berthd.sock")
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn container(id: &str, labels: Value, spec: &Value) -> Value {
    json!({"container": {"id": id, "image": "docker.io/library/busybox:latest",
                         "labels": labels, "spec": spec}})
}

/// Runs `per_client` calls of `f` on each of `clients` threads; returns calls per second.
fn parallel(
    sock: &Path,
    clients: usize,
    per_client: usize,
    f: impl Fn(&mut Client, usize, usize) -> Result<()> + Sync,
) -> Result<f64> {
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let f = &f;
                s.spawn(move || -> Result<()> {
                    let mut cl = Client::connect(sock)?;
                    for i in 0..per_client {
                        f(&mut cl, c, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((clients * per_client) as f64 / start.elapsed().as_secs_f64())
}

fn median_ms(mut f: impl FnMut() -> Result<()>, runs: usize) -> Result<f64> {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[runs / 2])
}

struct Row(&'static str, String, &'static str, &'static str);

fn main() -> Result<()> {
    let full_spec: Value =
        serde_json::to_value(schema_spec().context("building the default spec")?)?;
    let small_spec = json!({"ociVersion": "1.0.2"});
    let d = Daemon::start()?;
    let sock = d.sock();
    std::thread::sleep(Duration::from_millis(300));
    let rss_idle = d.rss_mb();
    let mut rows = Vec::new();
    let n = 3000;

    let seq_create = parallel(&sock, 1, n, |c, _, i| {
        c.call(
            "containers.create",
            container(&format!("s{i}"), json!({"a": "b"}), &full_spec),
        )
        .map(drop)
    })?;
    rows.push(Row(
        "create, sequential",
        format!("{seq_create:.0}/s"),
        "1.5k/s",
        ">= 3k/s",
    ));
    let par_create = parallel(&sock, 16, n / 16 * 4, |c, k, i| {
        c.call(
            "containers.create",
            container(&format!("p{k}-{i}"), json!({"a": "b"}), &full_spec),
        )
        .map(drop)
    })?;
    rows.push(Row(
        "create, 16 clients",
        format!("{par_create:.0}/s"),
        "2.2-2.7k/s",
        ">= 10k/s",
    ));
    let seq_get = parallel(&sock, 1, 10_000, |c, _, i| {
        c.call("containers.get", json!({"id": format!("s{}", i % n)}))
            .map(drop)
    })?;
    rows.push(Row(
        "get, sequential",
        format!("{seq_get:.0}/s"),
        "9.4k/s",
        "",
    ));
    let par_get = parallel(&sock, 16, 4000, |c, _, i| {
        c.call("containers.get", json!({"id": format!("s{}", i % n)}))
            .map(drop)
    })?;
    rows.push(Row(
        "get, 16 clients",
        format!("{par_get:.0}/s"),
        "36k/s",
        ">= 40k/s",
    ));
    let upd = parallel(&sock, 1, n, |c, _, i| {
        c.call(
            "containers.update",
            json!({"container": {"id": format!("s{i}"), "labels": {"x": i.to_string()}},
                   "update_mask": ["labels.x"]}),
        )
        .map(drop)
    })?;
    rows.push(Row(
        "update one label, sequential",
        format!("{upd:.0}/s"),
        "1.6k/s",
        "",
    ));
    let seq_del = parallel(&sock, 1, n, |c, _, i| {
        c.call("containers.delete", json!({"id": format!("s{i}")}))
            .map(drop)
    })?;
    rows.push(Row("delete, sequential", format!("{seq_del:.0}/s"), "", ""));
    let par_del = parallel(&sock, 16, n / 16 * 4, |c, k, i| {
        c.call("containers.delete", json!({"id": format!("p{k}-{i}")}))
            .map(drop)
    })?;
    rows.push(Row("delete, 16 clients", format!("{par_del:.0}/s"), "", ""));

    // 10,000 containers in a fresh namespace, 100 of them labelled sel=yes.
    for (ns, spec) in [("small", &small_spec), ("full", &full_spec)] {
        parallel(&sock, 16, 625, |c, k, i| {
            let n = k * 625 + i;
            let labels = if n % 100 == 0 {
                json!({"sel": "yes", "n": n.to_string()})
            } else {
                json!({"n": n.to_string()})
            };
            let mut p = container(&format!("c{n:05}"), labels, spec);
            p["namespace"] = json!(ns);
            c.call("containers.create", p).map(drop)
        })?;
    }
    let mut c = Client::connect(&sock)?;
    for ns in ["small", "full"] {
        let (got, _) = count(c.call_json("containers.list", json!({"namespace": ns}))?);
        let (sel, _) = count(c.call_json(
            "containers.list",
            json!({"namespace": ns, "filters": ["labels.sel==yes"]}),
        )?);
        if got != 10_000 || sel != 100 {
            bail!("namespace {ns}: list returned {got} and filtered list {sel}");
        }
        let all = median_ms(
            || {
                c.call("containers.list", json!({"namespace": ns}))
                    .map(drop)
            },
            15,
        )?;
        let filtered = median_ms(
            || {
                c.call(
                    "containers.list",
                    json!({"namespace": ns, "filters": ["labels.sel==yes"]}),
                )
                .map(drop)
            },
            50,
        )?;
        let small = ns == "small";
        rows.push(Row(
            if small {
                "list 10,000 (minimal spec)"
            } else {
                "list 10,000 (ctr-run default spec)"
            },
            format!("{all:.1} ms"),
            "~50 ms",
            "<= 15 ms",
        ));
        rows.push(Row(
            if small {
                "filtered list 100 of 10,000 (minimal)"
            } else {
                "filtered list 100 of 10,000 (default)"
            },
            format!("{filtered:.2} ms"),
            "~27 ms",
            "<= 2 ms",
        ));
    }
    let rss_after = d.rss_mb();
    rows.push(Row(
        "berthd RSS idle",
        format!("{rss_idle:.1} MB"),
        "44 MB",
        "<= 15 MB",
    ));
    rows.push(Row(
        "berthd RSS after 20,000 containers",
        format!("{rss_after:.1} MB"),
        "97 MB (10k)",
        "<= 40 MB",
    ));

    let header = Row("measure", "berth".into(), "containerd 1.6", "target");
    let Row(what, got, ctrd, target) = &header;
    println!("{what:<40} {got:>12}   {ctrd:<14} {target}");
    for Row(what, got, ctrd, target) in rows {
        println!("{what:<40} {got:>12}   {ctrd:<14} {target}");
    }
    Ok(())
}

/// Number of containers in a list result, and whether it says more follow.
fn count(result: Value) -> (usize, bool) {
    (
        result["containers"].as_array().map_or(0, Vec::len),
        result.get("next").is_some(),
    )
}

fn schema_spec() -> Result<impl serde::Serialize> {
    let opts: schema::spec::SpecOptions =
        serde_json::from_value(json!({"args": ["sh"], "tty": true}))?;
    Ok(schema::spec::build(
        "bench",
        "docker.io/library/busybox:latest",
        None,
        &opts,
        &schema::spec::EtcFiles::default(),
    )?)
}
