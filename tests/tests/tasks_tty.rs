//! Terminal tasks through the API: `tasks.close_io` ends a terminal program's input the way a
//! terminal does (VEOF), so `cat` on a pty exits instead of waiting forever.

mod tasks_support;

use std::io::Write;
use std::time::{Duration, Instant};

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, Cleanup, Rootfs};

fn spec_for(id: &str, rootfs: &Rootfs, args: &[&str]) -> Value {
    let opts: schema::spec::SpecOptions =
        serde_json::from_value(json!({"args": args, "tty": true})).expect("options");
    let spec =
        schema::spec::build(id, "", None, &opts, &schema::spec::EtcFiles::default()).expect("spec");
    let mut spec = serde_json::to_value(spec).expect("json");
    spec["root"]["path"] = json!(rootfs.arg());
    spec
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Polls tasks.get until the process has stopped; `None` if it has not within `limit`.
fn stopped_status(d: &TestDaemon, id: &str, limit: Duration) -> Option<i64> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let p = d.rpc_ok("tasks.get", json!({"container_id": id}))["process"].clone();
        if p["status"] == "stopped" {
            return p["exit_status"].as_i64();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn close_io_on_a_terminal_task_gives_the_program_end_of_file() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("tty-eof");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let stdin = d.dir().join(format!("{id}.stdin"));
    let stdout = d.dir().join(format!("{id}.stdout"));
    mkfifo(&stdin);
    d.rpc_ok(
        "containers.create",
        json!({"container": {"id": id, "spec": spec_for(&id, &rootfs, &["cat"])}}),
    );
    d.rpc_ok(
        "tasks.create",
        json!({"container_id": id, "terminal": true, "stdin": stdin, "stdout": stdout}),
    );
    d.rpc_ok("tasks.start", json!({"container_id": id}));
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(&stdin)
        .expect("open stdin fifo");
    w.write_all(b"hello pty\n").expect("write");
    drop(w);
    d.rpc_ok("tasks.close_io", json!({"container_id": id}));
    assert_eq!(
        stopped_status(&d, &id, Duration::from_secs(10)),
        Some(0),
        "cat saw end of file and exited 0"
    );
    let out = std::fs::read_to_string(&stdout).expect("stdout");
    assert!(out.contains("hello pty"), "{out:?}");
    d.rpc_ok("tasks.delete", json!({"container_id": id}));
    d.rpc_ok("containers.delete", json!({"id": id}));
    assert_clean(&d, &[id]);
}
