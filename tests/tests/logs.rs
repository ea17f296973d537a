//! Container logs against the real berthd and runc: a detached task's output lands in a
//! CRI-format log that `berth logs` and `containers.logs` read back (tail, stream, since),
//! `logs -f` follows until the task's output ends, a flood of output is never held up by a
//! follower that stopped reading and costs berthd no memory, the log survives a kill -9 of
//! berthd while the task keeps writing, and it goes with its container.

mod tasks_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_tests::abuse::vm_kib;
use berth_tests::process::Pipe;
use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth, berth_out, stdout, until, Cleanup, Rootfs};

const LIMIT: Duration = Duration::from_secs(60);

fn run_detached(d: &TestDaemon, rootfs: &Rootfs, flags: &[&str], id: &str, cmd: &[&str]) {
    let r = rootfs.arg();
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--rootfs", &r, id]);
    args.extend_from_slice(cmd);
    let out = berth_out(d, &args, b"");
    assert!(out.status.success(), "run -d {id}: {out:?}");
    assert_eq!(stdout(&out).trim(), id, "run -d prints the id");
}

fn wait(d: &TestDaemon, id: &str) -> Value {
    d.rpc_ok("tasks.wait", json!({ "container_id": id }))
}

fn remove(d: &TestDaemon, id: &str) {
    d.rpc_ok("tasks.delete", json!({ "container_id": id }));
    d.rpc_ok("containers.delete", json!({ "id": id }));
}

fn log_dir(d: &TestDaemon, id: &str) -> PathBuf {
    d.root().join("logs/default").join(id)
}

fn texts(reply: &Value) -> Vec<(String, String)> {
    reply["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().expect("stream").to_owned(),
                e["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

/// A host directory bind-mounted at /data, where a test drops `go` to let a task continue.
fn gate() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-gate-")
        .tempdir_in("/tmp")
        .expect("gate dir")
}

fn open_gate(dir: &Path) {
    std::fs::write(dir.join("go"), "").expect("open the gate");
}

const WAIT_FOR_GATE: &str = "while [ ! -e /data/go ]; do sleep 0.05; done";

#[test]
fn a_detached_task_s_output_is_logged_in_cri_format_and_read_back() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("logs");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let script = "echo out one; echo err one >&2; echo out two; printf 'no newline'";
    run_detached(&d, &rootfs, &[], &id, &["sh", "-c", script]);
    assert_eq!(wait(&d, &id)["exit_status"], 0);

    let out = berth_out(&d, &["logs", &id], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "out one\nout two\nno newline");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err one\n");

    let all = d.rpc_ok("containers.logs", json!({ "id": id }));
    let want: Vec<(String, String)> = [
        ("stdout", "out one"),
        ("stderr", "err one"),
        ("stdout", "out two"),
        ("stdout", "no newline"),
    ]
    .iter()
    .map(|(s, t)| (s.to_string(), t.to_string()))
    .collect();
    let mut got = texts(&all);
    // The two pipes are read independently: order holds within each stream.
    let by_stream = |v: &[(String, String)], s: &str| -> Vec<String> {
        v.iter()
            .filter(|(st, _)| st == s)
            .map(|(_, t)| t.clone())
            .collect()
    };
    assert_eq!(by_stream(&got, "stdout"), by_stream(&want, "stdout"));
    assert_eq!(by_stream(&got, "stderr"), by_stream(&want, "stderr"));
    let last = all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["text"] == "no newline");
    assert_eq!(last.expect("entry")["partial"], true);
    for e in all["entries"].as_array().expect("entries") {
        assert!(
            berth_tests::is_rfc3339_nanos(e["time"].as_str().expect("time")),
            "{e}"
        );
    }

    let tail = d.rpc_ok(
        "containers.logs",
        json!({ "id": id, "tail": 1, "stream": "stdout" }),
    );
    assert_eq!(texts(&tail), vec![("stdout".into(), "no newline".into())]);
    let err = d.rpc_ok("containers.logs", json!({ "id": id, "stream": "stderr" }));
    assert_eq!(texts(&err), vec![("stderr".into(), "err one".into())]);
    let future = d.rpc_ok(
        "containers.logs",
        json!({ "id": id, "since": "2999-01-01T00:00:00Z" }),
    );
    assert!(texts(&future).is_empty());
    let out = berth_out(
        &d,
        &["logs", "--tail", "2", "-t", "--stream", "stdout", &id],
        b"",
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].ends_with(" no newline"), "{lines:?}");

    // On disk: kubelet's format, one entry per line.
    let text = std::fs::read_to_string(log_dir(&d, &id).join("task.log")).expect("log file");
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert!(
            parts.len() == 4
                && berth_tests::is_rfc3339_nanos(parts[0])
                && ["stdout", "stderr"].contains(&parts[1])
                && ["F", "P"].contains(&parts[2]),
            "not a CRI log line: {line:?}"
        );
    }
    got.sort();
    assert_eq!(got.len(), 4);

    remove(&d, &id);
    // Once the task is torn down, in the background after the delete's answer.
    until("the log goes with its container", || {
        !log_dir(&d, &id).exists()
    });
    assert_clean(&d, &[id]);
}

#[test]
fn bad_log_requests_are_clear_errors() {
    let d = TestDaemon::start();
    let err = d
        .rpc("containers.logs", json!({ "id": "nope" }))
        .expect_err("missing");
    assert_eq!(err["data"]["kind"], "not_found", "{err}");
    assert!(
        err["message"].as_str().expect("message").contains("nope"),
        "{err}"
    );
    d.rpc_ok(
        "containers.create",
        json!({ "container": berth_tests::container("c1") }),
    );
    for (params, needle) in [
        (json!({ "id": "c1", "stream": "stdin" }), "stdin"),
        (json!({ "id": "c1", "since": "yesterday" }), "yesterday"),
        (json!({ "id": "c1", "follow": true }), "logs.subscribe"),
        (json!({ "id": "../x" }), "../x"),
    ] {
        let err = d
            .rpc("containers.logs", params.clone())
            .expect_err("refused");
        assert_eq!(err["data"]["kind"], "invalid_argument", "{params}: {err}");
        assert!(
            err["message"].as_str().expect("message").contains(needle),
            "{err}"
        );
    }
    // A container that never ran has an empty log, not an error.
    let empty = d.rpc_ok("containers.logs", json!({ "id": "c1" }));
    assert!(texts(&empty).is_empty());
    let (_, reply) =
        d.curl(r#"{"jsonrpc":"2.0","id":1,"method":"logs.subscribe","params":{"id":"c1"}}"#);
    assert_eq!(
        reply["error"]["data"]["kind"], "failed_precondition",
        "{reply}"
    );
    d.rpc_ok("containers.delete", json!({ "id": "c1" }));
}

#[test]
fn logs_follow_streams_new_lines_and_ends_with_the_task() {
    let (d, rootfs, gate) = (TestDaemon::start(), Rootfs::new(), gate());
    let id = unique_id("follow");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let volume = format!("{}:/data", gate.path().display());
    let script = format!("echo first; {WAIT_FOR_GATE}; echo second");
    run_detached(&d, &rootfs, &["-v", &volume], &id, &["sh", "-c", &script]);
    let mut follow = Pipe::spawn(berth(&d).args(["logs", "-f", &id]));
    assert_eq!(follow.read_line(LIMIT).as_deref(), Some("first"));
    // The task is still waiting at the gate: what comes next can only come by following.
    open_gate(gate.path());
    assert_eq!(follow.read_line(LIMIT).as_deref(), Some("second"));
    assert!(
        follow.at_eof(LIMIT),
        "logs -f ends once the task's output does"
    );
    assert_eq!(wait(&d, &id)["exit_status"], 0);
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

#[test]
fn a_flood_of_output_is_not_held_up_by_a_stalled_follower_nor_kept_in_memory() {
    let d = TestDaemon::start_with("log_max_bytes = 1048576\nlog_max_files = 2\n");
    let rootfs = Rootfs::new();
    let id = unique_id("flood");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let gate = gate();
    let volume = format!("{}:/data", gate.path().display());
    let script = format!("{WAIT_FOR_GATE}; dd if=/dev/zero bs=1048576 count=100 | tr '\\0' x");
    run_detached(&d, &rootfs, &["-v", &volume], &id, &["sh", "-c", &script]);
    // A follower that subscribes and then never reads a byte.
    let mut stalled = d.ndjson();
    stalled.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "logs.subscribe",
        "params": { "id": id, "follow": true }}),
    );
    let reply = stalled.recv(LIMIT).expect("subscribe reply");
    assert!(reply.get("error").is_none(), "{reply}");
    let before = vm_kib(d.pid(), "VmRSS");
    let started = Instant::now();
    open_gate(gate.path());
    let exit = wait(&d, &id);
    let took = started.elapsed();
    assert_eq!(exit["exit_status"], 0, "{exit}");
    let peak = vm_kib(d.pid(), "VmHWM");
    eprintln!("100 MB written through the log in {took:?}; berthd RSS {before} KiB before, peak {peak} KiB");
    assert!(
        peak < before + 32 * 1024,
        "berthd grew from {before} KiB to a peak of {peak} KiB"
    );
    // Capped and rotated: two files of at most 1 MiB, the newest holding the last bytes.
    let dir = log_dir(&d, &id);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("log dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["task.log", "task.log.1"]);
    for f in &files {
        let size = std::fs::metadata(dir.join(f)).expect("size").len();
        assert!(size <= 1 << 20, "{f} is {size} bytes");
    }
    let tail = d.rpc_ok(
        "containers.logs",
        json!({ "id": id, "tail": 1, "stream": "stderr" }),
    );
    let dd = texts(&tail);
    assert!(
        dd.iter().any(|(_, t)| t.contains("100+0 records out")),
        "{dd:?}"
    );
    drop(stalled);
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

#[test]
fn the_log_keeps_everything_across_a_kill_9_of_berthd() {
    let (mut d, rootfs, gate) = (TestDaemon::start(), Rootfs::new(), gate());
    let id = unique_id("crashlog");
    let volume = format!("{}:/data", gate.path().display());
    let script = format!("echo before; {WAIT_FOR_GATE}; echo after; echo late >&2");
    run_detached(&d, &rootfs, &["-v", &volume], &id, &["sh", "-c", &script]);
    until("the first line reaches the log", || {
        !texts(&d.rpc_ok("containers.logs", json!({ "id": id }))).is_empty()
    });
    // A log left by a container deleted while berthd was down is swept at start-up.
    let ghost = d.root().join("logs/default/ghost");
    std::fs::create_dir_all(&ghost).expect("ghost dir");
    std::fs::write(ghost.join("task.log"), "x").expect("ghost log");
    let pid = d.rpc_ok("tasks.get", json!({ "container_id": id }))["process"]["pid"]
        .as_i64()
        .expect("pid");
    d.kill9();
    // The task writes and exits while no berthd runs: its last output waits in the pipe
    // the keeper keeps until the exit is acknowledged.
    open_gate(gate.path());
    until("the task exits while berthd is down", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    d.restart();
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    assert_eq!(wait(&d, &id)["exit_status"], 0);
    let got = texts(&d.rpc_ok("containers.logs", json!({ "id": id })));
    let want: Vec<(String, String)> = [
        ("stdout", "before"),
        ("stdout", "after"),
        ("stderr", "late"),
    ]
    .iter()
    .map(|(s, t)| (s.to_string(), t.to_string()))
    .collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "{got:?}");
    assert!(!ghost.exists(), "the ghost container's log was swept");
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

#[test]
fn a_detached_terminal_task_is_logged_too() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("ttylog");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    run_detached(
        &d,
        &rootfs,
        &["-t"],
        &id,
        &["sh", "-c", "echo on a tty; stty size"],
    );
    assert_eq!(wait(&d, &id)["exit_status"], 0);
    let got = texts(&d.rpc_ok("containers.logs", json!({ "id": id })));
    assert!(
        got.iter()
            .any(|(s, t)| s == "stdout" && t.trim_end() == "on a tty"),
        "{got:?}"
    );
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

#[test]
fn logs_follow_over_websocket_sends_batches_then_the_end() {
    let (d, rootfs, gate) = (TestDaemon::start(), Rootfs::new(), gate());
    let id = unique_id("wslogs");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let volume = format!("{}:/data", gate.path().display());
    let script = format!("echo one; {WAIT_FOR_GATE}; echo two >&2");
    run_detached(&d, &rootfs, &["-v", &volume], &id, &["sh", "-c", &script]);
    let mut ws = d.websocket();
    ws.send_json(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "logs.subscribe",
        "params": { "id": id, "follow": true }}),
    );
    let mut texts = Vec::new();
    let mut opened = false;
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "the stream ends: {texts:?}");
        let Some(msg) = ws.recv_json(LIMIT) else {
            panic!("the websocket closed before the end: {texts:?}");
        };
        if msg.get("id") == Some(&json!(1)) {
            assert!(msg.get("error").is_none(), "{msg}");
            continue;
        }
        assert_eq!(msg["method"], "logs.entries", "{msg}");
        let batch = &msg["params"]["result"];
        for e in batch["entries"].as_array().expect("entries") {
            texts.push((e["stream"].clone(), e["text"].clone()));
        }
        if !opened && !texts.is_empty() {
            // "one" came while the task waits at the gate: following, not a replay.
            opened = true;
            open_gate(gate.path());
        }
        if batch["end"] == true {
            break;
        }
    }
    assert_eq!(
        texts,
        vec![
            (json!("stdout"), json!("one")),
            (json!("stderr"), json!("two"))
        ]
    );
    assert_eq!(wait(&d, &id)["exit_status"], 0);
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

/// berthd restarts under `berth logs -f` (issue 31, item 7): the follower reconnects, as
/// `berth events` does, and resumes after the last entry it printed. The task counts to
/// 50, waits at a gate, and counts on while berthd is down and after it is back, so the
/// follower's whole output must be exactly 0..COUNT: no line twice, none missing.
#[test]
fn logs_follow_resumes_across_a_berthd_restart_with_no_gap_and_no_duplicate() {
    const COUNT: u32 = 300;
    let (mut d, rootfs, gate) = (TestDaemon::start(), Rootfs::new(), gate());
    let id = unique_id("counter");
    let volume = format!("{}:/data", gate.path().display());
    let script = format!(
        "i=0; while [ $i -lt 50 ]; do echo $i; i=$((i+1)); done; {WAIT_FOR_GATE}; \
         while [ $i -lt {COUNT} ]; do echo $i; i=$((i+1)); sleep 0.01; done"
    );
    run_detached(&d, &rootfs, &["-v", &volume], &id, &["sh", "-c", &script]);
    let err = d.dir().join("logs-follow.err");
    // Through sh, since Pipe gives the child the test's stderr.
    let berth_bin = TestDaemon::binary().with_file_name("berth");
    let mut follow = Pipe::spawn(std::process::Command::new("sh").arg("-c").arg(format!(
        "exec {} --socket {} logs -f {id} 2>{}",
        berth_bin.display(),
        d.socket().display(),
        err.display()
    )));
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let line = follow
            .read_line(LIMIT)
            .expect("the follower prints the count");
        seen.push(line);
    }
    d.stop();
    // The task counts on while berthd is down (into the pipe the keeper holds open), and
    // after it is back.
    open_gate(gate.path());
    d.restart();
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    while let Some(line) = follow.read_line(LIMIT) {
        seen.push(line);
    }
    assert!(
        follow.at_eof(LIMIT),
        "logs -f ends once the task's output does"
    );
    let want: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    if seen != want {
        let dup: Vec<&String> = seen
            .iter()
            .enumerate()
            .filter(|(i, l)| seen[..*i].contains(l))
            .map(|(_, l)| l)
            .collect();
        let missing: Vec<&String> = want.iter().filter(|l| !seen.contains(l)).collect();
        panic!(
            "the follower's output is not 0..{COUNT}: duplicates {dup:?}, missing {missing:?}; \
             stderr: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    let said = std::fs::read_to_string(&err).expect("stderr");
    assert!(said.contains("lost berthd; reconnecting"), "{said}");
    assert!(said.contains("reconnected to berthd"), "{said}");
    assert_eq!(wait(&d, &id)["exit_status"], 0);
}
