//! Drives the real runc with busybox bundles (needs root). All tests share one
//! reaper (see `common::reaper`).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use berthd::runtime::console::{self, ConsoleSocket};
use berthd::runtime::runc::{ContainerStatus, CreateOpts, ExecOpts, ProcessStdio, RuncError};
use berthd::runtime::stdio;
use common::{create_and_start, reaper, within, Bundle};

/// create + start with the given stdio; returns the init's exit status.
async fn run_to_exit(bundle: &Bundle, prefix: &str, stdio: ProcessStdio) -> i32 {
    let runc = bundle.runc();
    let id = bundle.new_id(prefix);
    let mut exits = reaper().subscribe();
    let opts = CreateOpts {
        start: false,
        pid_file: bundle.pid_file(&id),
        console_socket: None,
        stdio,
    };
    within(30, "create", runc.create(&id, bundle.path(), opts))
        .await
        .expect("create");
    let pid = bundle.read_pid(&id);
    within(30, "start", runc.start(&id)).await.expect("start");
    let exit = within(30, "init exit", exits.wait_for(pid))
        .await
        .expect("exit");
    within(30, "delete", runc.delete(&id, false))
        .await
        .expect("delete");
    exit.status
}

#[tokio::test]
async fn init_exit_code_reaches_the_reaper() {
    let bundle = Bundle::new(&["sh", "-c", "exit 42"], false);
    let runc = bundle.runc();
    let id = bundle.new_id("exit42");
    let mut exits = reaper().subscribe();
    let opts = CreateOpts {
        start: false,
        pid_file: bundle.pid_file(&id),
        ..CreateOpts::default()
    };
    within(30, "create", runc.create(&id, bundle.path(), opts))
        .await
        .expect("create");
    let pid = bundle.read_pid(&id);
    let state = runc.state(&id).await.expect("state");
    assert_eq!(
        (state.status, state.pid, state.id.as_str()),
        (ContainerStatus::Created, pid, id.as_str())
    );
    runc.start(&id).await.expect("start");
    let exit = within(30, "init exit", exits.wait_for(pid))
        .await
        .expect("exit");
    assert_eq!(exit.status, 42);
    assert_eq!(
        runc.state(&id).await.expect("state").status,
        ContainerStatus::Stopped
    );
    runc.delete(&id, false).await.expect("delete");
    let gone = runc.state(&id).await.expect_err("deleted");
    assert!(
        matches!(gone, RuncError::CommandFailed { verb: "state", .. }),
        "{gone}"
    );
    assert!(gone.to_string().contains("does not exist"), "{gone}");
}

#[tokio::test]
async fn sigkill_reports_137_and_running_verbs_work() {
    let bundle = Bundle::new(&["sleep", "100"], false);
    let runc = bundle.runc();
    let id = bundle.new_id("kill");
    let (pid, mut exits) = create_and_start(&bundle, &runc, &id).await;
    assert_eq!(
        runc.state(&id).await.expect("state").status,
        ContainerStatus::Running
    );
    assert_eq!(runc.ps(&id).await.expect("ps"), vec![pid]);
    runc.pause(&id).await.expect("pause");
    assert_eq!(
        runc.state(&id).await.expect("state").status,
        ContainerStatus::Paused
    );
    runc.resume(&id).await.expect("resume");
    let stats = runc.stats(&id).await.expect("events --stats");
    assert_eq!(
        (stats.kind.as_str(), stats.id.as_str()),
        ("stats", id.as_str())
    );
    assert!(stats.data.get("memory").is_some(), "{:?}", stats.data);
    exec_attached_and_detached(&bundle, &id).await;
    runc.kill(&id, libc::SIGKILL, false).await.expect("kill");
    let exit = within(30, "init exit", exits.wait_for(pid))
        .await
        .expect("exit");
    assert_eq!(exit.status, 137);
    runc.delete(&id, false).await.expect("delete");
}

/// An OCI process object for `runc exec`, from the bundle's own config.
fn process_json(bundle: &Bundle, name: &str, args: &[&str]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bundle.path().join("config.json")).expect("config");
    let config: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut process = config["process"].clone();
    process["args"] = serde_json::json!(args);
    let path = bundle.path().join(name);
    std::fs::write(&path, process.to_string()).expect("process.json");
    path
}

async fn exec_attached_and_detached(bundle: &Bundle, id: &str) {
    let runc = bundle.runc();
    let out = bundle.path().join("exec.out");
    let task = stdio::open("", out.to_str().expect("utf8"), "", false).expect("stdio");
    let attached = ExecOpts {
        process: process_json(
            bundle,
            "attached.json",
            &["sh", "-c", "echo from exec; exit 3"],
        ),
        pid_file: bundle.path().join("attached.pid"),
        detach: false,
        console_socket: None,
        stdio: task.process,
    };
    let status = within(30, "attached exec", runc.exec(id, attached)).await;
    assert_eq!(status.expect("exec"), 3);
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "from exec\n");

    let mut exits = reaper().subscribe();
    let pid_file = bundle.path().join("detached.pid");
    let detached = ExecOpts {
        process: process_json(bundle, "detached.json", &["sh", "-c", "sleep 0.2; exit 4"]),
        pid_file: pid_file.clone(),
        detach: true,
        ..ExecOpts::default()
    };
    let status = within(30, "detached exec", runc.exec(id, detached)).await;
    assert_eq!(status.expect("exec"), 0);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let exit = within(30, "exec exit", exits.wait_for(pid))
        .await
        .expect("exit");
    assert_eq!(exit.status, 4);
}

#[tokio::test]
async fn failed_create_carries_runc_log_in_the_error() {
    let bundle = Bundle::new(&["/bin/no-such-binary"], false);
    let runc = bundle.runc();
    let id = bundle.new_id("fail");
    let opts = CreateOpts {
        start: false,
        pid_file: bundle.pid_file(&id),
        ..CreateOpts::default()
    };
    let err = within(30, "create", runc.create(&id, bundle.path(), opts))
        .await
        .expect_err("binary is missing");
    let RuncError::CommandFailed { verb, ref log, .. } = err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(verb, "create");
    assert!(log.contains("no-such-binary"), "log: {log:?}");
    assert!(err.to_string().contains(&id), "{err}");
}

#[tokio::test]
async fn stdout_to_a_regular_file_holds_the_output() {
    let bundle = Bundle::new(&["echo", "hello from berth"], false);
    let out = bundle.path().join("stdout.log");
    let task = stdio::open("", out.to_str().expect("utf8"), "", false).expect("stdio");
    assert_eq!(run_to_exit(&bundle, "file", task.process).await, 0);
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "hello from berth\n"
    );
}

#[tokio::test]
async fn stdout_fifo_reaches_a_waiting_reader_with_eof() {
    let bundle = Bundle::new(&["echo", "through the fifo"], false);
    let fifo = bundle.path().join("stdout.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let reader_path = fifo.clone();
    // The client: blocks in open until berth opens the writer, reads to EOF.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = std::fs::File::open(&reader_path).and_then(|mut f| f.read_to_string(&mut text));
        let _ = tx.send(read.map(|_| text));
    });
    let task = stdio::open("", fifo.to_str().expect("utf8"), "", false).expect("stdio");
    let keepers = task.keepers;
    assert_eq!(run_to_exit(&bundle, "fifo", task.process).await, 0);
    let text = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reader saw EOF while berth still holds its keeper")
        .expect("read");
    assert_eq!(text, "through the fifo\n");
    drop(keepers);
}

#[tokio::test]
async fn fifo_without_reader_opens_at_once_and_output_is_not_fatal() {
    let bundle = Bundle::new(&["echo", "nobody listens"], false);
    let fifo = bundle.path().join("stdout.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let path = fifo.to_str().expect("utf8").to_owned();
    let task = within(5, "opening a FIFO with no reader", async {
        tokio::task::spawn_blocking(move || stdio::open("", &path, &path, false)).await
    })
    .await
    .expect("join")
    .expect("stdio");
    // No SIGPIPE (141): the kept reader absorbs output written before any client.
    assert_eq!(run_to_exit(&bundle, "noreader", task.process).await, 0);
}

/// Reads the pty until `needle` shows up, or fails after `secs`.
fn read_until(pty: &mut std::fs::File, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {:?}",
            String::from_utf8_lossy(&seen)
        );
        match pty.read(&mut chunk) {
            Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
            Ok(_) => panic!("pty closed before {needle:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("reading pty: {e}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn terminal_container_talks_over_the_received_pty_and_sees_resizes() {
    let bundle = Bundle::new(&["sh"], true);
    let runc = bundle.runc();
    let id = bundle.new_id("tty");
    let socket = ConsoleSocket::new().expect("console socket");
    let mut exits = reaper().subscribe();
    let opts = CreateOpts {
        start: false,
        pid_file: bundle.pid_file(&id),
        console_socket: Some(socket.path().to_owned()),
        stdio: ProcessStdio::default(),
    };
    within(30, "create", runc.create(&id, bundle.path(), opts))
        .await
        .expect("create");
    let master = socket
        .receive(Duration::from_secs(10))
        .await
        .expect("pty master");
    let pid = bundle.read_pid(&id);
    runc.start(&id).await.expect("start");
    console::resize(master.as_fd(), 120, 40).expect("resize");
    let flags = nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).expect("setfl");
    let mut pty = std::fs::File::from(master);
    let (output, pty) = tokio::task::spawn_blocking(move || {
        // `$((6*7))` prints 42 only when run: the pty's echo of the input cannot match.
        pty.write_all(b"echo hi; stty size; echo done-$((6*7))\n")
            .expect("write");
        let output = read_until(&mut pty, "done-42", 10);
        pty.write_all(b"exit 7\n").expect("write exit");
        // Keep the master open: closing it would end the shell with EOF before `exit 7`.
        (output, pty)
    })
    .await
    .expect("pty io");
    assert!(output.contains("\r\nhi\r\n"), "{output:?}");
    assert!(output.contains("40 120"), "{output:?}");
    let exit = within(30, "shell exit", exits.wait_for(pid))
        .await
        .expect("exit");
    assert_eq!(exit.status, 7);
    drop(pty);
    runc.delete(&id, false).await.expect("delete");
}
