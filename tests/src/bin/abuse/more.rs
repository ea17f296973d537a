//! The probes `berth-abuse` gained with issue 30: unread exports, a trickling upload,
//! stalled event subscribers, large updates and the event log, and protocol laxity. Each
//! prints its figures; none stops the run (the well-behaved client's failures do).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use berth_tests::abuse::{big_labels, vm_kib};
use berth_tests::{container, Ndjson, TestDaemon};
use serde_json::json;

use crate::images;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Samples berthd's peak threads and RSS (KiB) for `d`.
fn peaks(pid: u32, d: Duration) -> (u64, u64) {
    let until = Instant::now() + d;
    let (mut threads, mut rss) = (0, 0);
    while Instant::now() < until {
        threads = threads.max(vm_kib(pid, "Threads"));
        rss = rss.max(vm_kib(pid, "VmRSS"));
        thread::sleep(Duration::from_millis(50));
    }
    (threads, rss)
}

/// Probe 7: 3 connections each start 300 `images.export`s and never read.
pub fn unread_exports(d: &TestDaemon) {
    let parts = images::ImageParts::new(vec![images::busybox_layer()], json!({"Cmd": ["sh"]}));
    if let Err(e) = images::import(d, "bb.tar", &images::oci_image("bb:1", &parts)) {
        println!("  import failed: {e}");
        return;
    }
    let pid = d.pid();
    let before = (vm_kib(pid, "Threads"), vm_kib(pid, "VmRSS"));
    let conns: Vec<UnixStream> = (0..3)
        .filter_map(|c| {
            let mut s = UnixStream::connect(d.socket()).ok()?;
            for i in 0..300 {
                let line = json!({"jsonrpc": "2.0", "id": c * 1000 + i,
                    "method": "images.export", "params": {"names": ["bb:1"]}});
                s.write_all(format!("{line}\n").as_bytes()).ok()?;
            }
            Some(s)
        })
        .collect();
    let (threads, rss) = peaks(pid, Duration::from_secs(8));
    println!(
        "  threads {} -> peak {threads}; RSS {} -> peak {} MiB",
        before.0,
        before.1 / 1024,
        rss / 1024
    );
    drop(conns);
}

/// Probe 8: an upload sends half an archive and stalls; gc.run and a create meanwhile.
pub fn trickling_upload(d: &TestDaemon) {
    let parts = images::ImageParts::new(vec![images::busybox_layer()], json!({"Cmd": ["sh"]}));
    let archive = images::oci_image("late:1", &parts);
    let mut c = d.ndjson();
    let Ok(up) = c.call("images.upload_begin", json!({})) else {
        println!("  upload_begin failed");
        return;
    };
    let up = up["upload"].clone();
    let half = b64(&archive[..archive.len() / 2]);
    let _ = c.call("images.upload_write", json!({"upload": up, "data": half}));
    let mut other = d.ndjson();
    let t = Instant::now();
    let gc = other.call("gc.run", json!({}));
    let gc_took = t.elapsed();
    let t = Instant::now();
    let create = other.call(
        "containers.create",
        json!({"container": {"id": "made-meanwhile", "image": "bb:1"}}),
    );
    println!(
        "  gc.run {} in {gc_took:?}, containers.create {} in {:?} (upload open)",
        if gc.is_ok() { "ok" } else { "failed" },
        if create.is_ok() { "ok" } else { "failed" },
        t.elapsed()
    );
    let _ = c.call("images.upload_abort", json!({"upload": up}));
    let _ = other.call("containers.delete", json!({"id": "made-meanwhile"}));
}

/// Probe 9: 200 NDJSON event subscribers that never read, then 200 updates of a container
/// with ~390 KB of labels.
pub fn stalled_subscribers(d: &TestDaemon) {
    let pid = d.pid();
    let before = vm_kib(pid, "VmRSS");
    let subs: Vec<Ndjson> = (0..200)
        .filter_map(|_| {
            let mut s = Ndjson::connect(d.socket()).ok()?;
            s.send(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                "params": {"filters": [r#"topic=="/containers/update""#]}}),
            );
            Some(s)
        })
        .collect();
    let mut w = d.ndjson();
    for i in 0..200 {
        let mut c = container("wide");
        c["labels"] = big_labels(100, 3890, &format!("s{i}-"));
        let _ = w.call("containers.update", json!({"container": c}));
    }
    let (_, rss) = peaks(pid, Duration::from_secs(3));
    println!(
        "  RSS {} -> peak {} MiB with {} stalled subscribers",
        before / 1024,
        rss / 1024,
        subs.len()
    );
}

/// Probe 10: what 20 more updates of the wide container add to the database files.
pub fn event_log_growth(d: &TestDaemon) {
    let size = |root: &Path| -> u64 {
        ["meta.db", "meta.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(root.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let before = size(d.root());
    let mut w = d.ndjson();
    for i in 0..20 {
        let mut c = container("wide");
        c["labels"] = big_labels(100, 3890, &format!("g{i}-"));
        let _ = w.call("containers.update", json!({"container": c}));
    }
    println!(
        "  meta.db + WAL: {} -> {} MiB after 20 updates of ~390 KB",
        before >> 20,
        size(d.root()) >> 20
    );
}

/// Probe 11: request smuggling, a non-object NDJSON line, HEAD.
pub fn protocol(d: &TestDaemon) {
    let exchange = |bytes: &[u8]| -> String {
        let Ok(mut s) = UnixStream::connect(d.socket()) else {
            return "connect failed".into();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
        let t = Instant::now();
        let _ = s.write_all(bytes);
        // Nothing more comes: berthd answers and closes without waiting for a timeout.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        let first = text.lines().next().unwrap_or("(nothing)").to_owned();
        format!("{first} ({} bytes in {:?})", out.len(), t.elapsed())
    };
    let smuggle = "POST / HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n\
        Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
        POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 51\r\n\r\n\
        {\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"gc.run\"}";
    println!("  TE + CL: {}", exchange(smuggle.as_bytes()));
    println!("  NDJSON `42`: {}", exchange(b"42\n"));
    println!(
        "  HEAD /_ping: {}",
        exchange(b"HEAD /_ping HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    );
}
