//! `make abuse`: replays the hostile clients of issues #9 and #30 against a fresh berthd (its own temp
//! root and socket, default limits) while a well-behaved client calls `system.version`
//! every 20 ms, then prints berthd's peak RSS, the slowest well-behaved reply and how many
//! `-32603` (internal) answers the probes got. Usage: `berth-abuse` (root; release build).
//!
//! `berth-abuse churn SOCKET N SECONDS` only runs the churn attack (N silent connections
//! that reconnect as soon as they are dropped) for SECONDS and prints its reconnect count:
//! the hardening tests run it as an unprivileged socket-group member.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_tests::abuse::{
    batch, big_labels, churn, http_exchange, internal_errors, post, raise_own_nofile,
    silent_ws_subscriber, stall_many, time_version, vm_kib, Churn, WsReader,
};
use berth_tests::{container, TestDaemon};
use serde_json::{json, Value};

#[path = "../images.rs"]
mod images;
#[path = "abuse/more.rs"]
mod more;

const LIMIT: Duration = Duration::from_secs(60);

/// Everything the probes saw, summed.
#[derive(Default)]
struct Tally {
    internal: usize,
}

impl Tally {
    fn saw(&mut self, probe: &str, reply: &Value) {
        let n = internal_errors(reply);
        self.internal += n;
        let mut shown = reply.to_string();
        shown.truncate(160);
        println!("  {probe}: {shown}");
    }
}

/// One NDJSON exchange: writes `line`, reads one line back (bounded).
fn ndjson_exchange(socket: &Path, line: &str) -> Result<Value> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(LIMIT))?;
    let _ = s.write_all(line.as_bytes());
    let _ = s.write_all(b"\n");
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    while !got.contains(&b'\n') {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let end = got.iter().position(|&b| b == b'\n').unwrap_or(got.len());
    Ok(serde_json::from_slice(&got[..end]).unwrap_or(Value::Null))
}

/// `berth-abuse churn SOCKET N SECONDS`.
fn churn_only(args: &[String]) -> Result<()> {
    let [socket, n, seconds] = args else {
        bail!("usage: berth-abuse churn SOCKET CONNECTIONS SECONDS");
    };
    let (n, seconds): (usize, u64) = (n.parse()?, seconds.parse()?);
    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    let timer = {
        let stop = stop.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(seconds));
            stop.store(true, Ordering::Relaxed);
        })
    };
    churn(Path::new(socket), n, &stop, &reconnects);
    let _ = timer.join();
    println!("reconnects {}", reconnects.load(Ordering::Relaxed));
    Ok(())
}

/// Probe 6: 1,050 silent connections that reconnect as soon as they are dropped, beside
/// fresh clients; returns how many of the fresh clients were not served within 1 s.
fn churn_probe(socket: &Path) -> u64 {
    let attack = Churn::start(socket, 1050);
    let warm = Instant::now() + Duration::from_secs(10);
    while attack.reconnects() < 100 && Instant::now() < warm {
        thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let (mut served, mut failed, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(10) {
        match time_version(socket, Duration::from_secs(1)) {
            Ok(t) if t < Duration::from_secs(1) => {
                served += 1;
                slowest = slowest.max(t);
            }
            _ => failed += 1,
        }
        thread::sleep(Duration::from_millis(50));
    }
    println!(
        "  fresh clients over {:?}: {served} served within 1 s (slowest {:.1} ms), {failed} not; \
         the attack reconnected {} times",
        started.elapsed(),
        slowest.as_secs_f64() * 1000.0,
        attack.reconnects()
    );
    failed
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("churn") {
        return churn_only(&args[1..]);
    }
    raise_own_nofile();
    let d = TestDaemon::start();
    let socket: PathBuf = d.socket().to_owned();
    let pid = d.pid();
    let idle_kib = vm_kib(pid, "VmRSS");
    println!("berthd pid {pid}, idle RSS {} MiB", idle_kib / 1024);

    // The well-behaved client and the memory sampler run through every probe.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest_us = Arc::new(AtomicU64::new(0));
    // The probe running now, and the slowest well-behaved reply seen during each.
    let phase = Arc::new(AtomicUsize::new(0));
    let per_phase: Arc<[AtomicU64; 12]> = Arc::new(Default::default());
    let failures = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, slowest, failures, calls, socket) = (
            stop.clone(),
            slowest_us.clone(),
            failures.clone(),
            calls.clone(),
            socket.clone(),
        );
        let (phase, per_phase) = (phase.clone(), per_phase.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match time_version(&socket, Duration::from_secs(10)) {
                    Ok(t) => {
                        let us = t.as_micros() as u64;
                        slowest.fetch_max(us, Ordering::Relaxed);
                        per_phase[phase.load(Ordering::Relaxed).min(11)]
                            .fetch_max(us, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                calls.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let peak_rss = Arc::new(AtomicU64::new(idle_kib));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak_rss.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(vm_kib(pid, "VmRSS"), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let mut tally = Tally::default();
    let mut c = container("wide");
    c["labels"] = big_labels(100, 3990, "");
    d.rpc("containers.create", json!({"container": c}))
        .map_err(|e| anyhow::anyhow!("create: {e}"))?;

    phase.store(1, Ordering::Relaxed);
    println!("probe 1: a batch of 10,000 containers.list over HTTP and NDJSON");
    let big = batch(10_000, "containers.list", &json!({}));
    let started = Instant::now();
    let reply = http_exchange(&socket, &post(&big), LIMIT).context("HTTP batch")?;
    tally.saw(
        &format!("HTTP {} in {:?}", reply.0, started.elapsed()),
        &reply.1,
    );
    let started = Instant::now();
    let reply = ndjson_exchange(&socket, &big)?;
    tally.saw(&format!("NDJSON in {:?}", started.elapsed()), &reply);
    let allowed = batch(100, "containers.list", &json!({}));
    let reply = ndjson_exchange(&socket, &allowed)?;
    tally.saw("NDJSON batch of 100 (~40 MB of replies)", &reply);

    phase.store(2, Ordering::Relaxed);
    println!("probe 2: 200 clients each ask for a batch of 50 lists and never read");
    let hoarders: Vec<UnixStream> = (0..200)
        .filter_map(|_| {
            let mut s = UnixStream::connect(&socket).ok()?;
            let line = batch(50, "containers.list", &json!({}));
            s.write_all(format!("{line}\n").as_bytes()).ok()?;
            Some(s)
        })
        .collect();
    thread::sleep(Duration::from_secs(3));
    println!("  RSS now {} MiB", vm_kib(pid, "VmRSS") / 1024);
    drop(hoarders);

    phase.store(3, Ordering::Relaxed);
    println!("probe 3: a WebSocket subscriber that never reads, 1,100 updates of ~390 KB");
    let silent = silent_ws_subscriber(&socket, &[r#"topic=="/containers/update""#]);
    let mut writer = d.ndjson();
    for i in 0..1100 {
        let mut c = container("wide");
        c["labels"] = big_labels(100, 3890, &format!("{i}-"));
        if let Err(e) = writer.call("containers.update", json!({"container": c})) {
            tally.saw("update", &json!({ "error": e }));
        }
    }
    println!(
        "  RSS after the updates {} MiB",
        vm_kib(pid, "VmRSS") / 1024
    );
    let mut ws = WsReader::new(silent);
    let mut events = 0;
    let ended = loop {
        match ws.recv_json(Duration::from_secs(20)) {
            Ok(msg) if msg["params"].get("error").is_some() => break msg["params"].clone(),
            Ok(_) => events += 1,
            Err(e) => break json!({ "no final error": e }),
        }
    };
    tally.saw(&format!("subscriber ({events} messages read)"), &ended);

    phase.store(4, Ordering::Relaxed);
    println!("probe 4: 1,000 stalled connections (silent, half HTTP bodies, half lines)");
    let stalled = stall_many(&socket, 1000);
    let t = time_version(&socket, Duration::from_secs(10));
    println!("  system.version beside them: {t:?}");

    phase.store(5, Ordering::Relaxed);
    println!("probe 5: odd ids, a notification and subscribe over HTTP, 20 MB bodies");
    for id in [r#"{"a":1}"#, "[1]", "true", "1.5", "18446744073709551616"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"system.version"}}"#);
        let reply = http_exchange(&socket, &post(&body), LIMIT).context("odd id")?;
        tally.saw(&format!("HTTP id {id}: {}", reply.0), &reply.1);
    }
    let note = r#"{"jsonrpc":"2.0","method":"system.version"}"#;
    let reply = http_exchange(&socket, &post(note), LIMIT).context("notification")?;
    tally.saw(&format!("HTTP notification: {}", reply.0), &reply.1);
    let sub = r#"{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{}}"#;
    let reply = http_exchange(&socket, &post(sub), LIMIT).context("subscribe")?;
    tally.saw(&format!("HTTP events.subscribe: {}", reply.0), &reply.1);
    let pad = "x".repeat(20 << 20);
    let huge =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"system.version","params":{{"p":"{pad}"}}}}"#);
    let reply = http_exchange(&socket, &post(&huge), LIMIT).context("20 MB body")?;
    tally.saw(&format!("HTTP 20 MB body: {}", reply.0), &reply.1);
    let reply = ndjson_exchange(&socket, &huge)?;
    tally.saw("NDJSON 20 MB line", &reply);
    drop(stalled);

    phase.store(6, Ordering::Relaxed);
    println!("probe 6: 1,050 silent connections that reconnect as soon as they are dropped");
    let churn_failures = churn_probe(&socket);

    phase.store(7, Ordering::Relaxed);
    println!("probe 7: 3 connections each start 300 images.export and never read");
    more::unread_exports(&d);
    phase.store(8, Ordering::Relaxed);
    println!("probe 8: an upload sends half an archive and stalls");
    more::trickling_upload(&d);
    phase.store(9, Ordering::Relaxed);
    println!("probe 9: 200 event subscribers that never read, 200 updates of ~390 KB");
    more::stalled_subscribers(&d);
    phase.store(10, Ordering::Relaxed);
    println!("probe 10: the event log under large updates");
    more::event_log_growth(&d);
    phase.store(11, Ordering::Relaxed);
    println!("probe 11: protocol laxity");
    more::protocol(&d);

    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    let _ = sampler.join();
    let hwm = vm_kib(pid, "VmHWM");
    let sampled = peak_rss.load(Ordering::Relaxed);
    let failed = failures.load(Ordering::Relaxed);
    println!();
    println!(
        "peak RSS: {} MiB (VmHWM; sampled peak {} MiB; idle {} MiB)",
        hwm / 1024,
        sampled / 1024,
        idle_kib / 1024
    );
    println!(
        "slowest well-behaved reply: {:.1} ms over {} system.version calls ({failed} failed)",
        slowest_us.load(Ordering::Relaxed) as f64 / 1000.0,
        calls.load(Ordering::Relaxed)
    );
    for (i, us) in per_phase.iter().enumerate().skip(1) {
        let ms = us.load(Ordering::Relaxed) as f64 / 1000.0;
        println!("  slowest during probe {i}: {ms:.1} ms");
    }
    println!("-32603 answers: {}", tally.internal);
    if failed > 0 {
        bail!("{failed} well-behaved calls failed");
    }
    if churn_failures > 0 {
        bail!("{churn_failures} fresh clients were not served within 1 s beside the churn");
    }
    Ok(())
}
