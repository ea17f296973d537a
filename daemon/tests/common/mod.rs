//! Shared fixtures for the tests that drive the real runc: one reaper per test
//! process, a busybox bundle in a temp dir, and a guard that force-deletes the
//! container on every path.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use berthd::runtime::reaper::{Reaper, Subscription};
use berthd::runtime::runc::{CreateOpts, Runc};

struct Shared {
    runtime: tokio::runtime::Runtime,
    reaper: Reaper,
}

/// One reaper per test process: the subreaper flag and SIGCHLD are process-wide and a
/// second reaper would steal exits, so every test shares this one. It lives on its own
/// runtime because each `#[tokio::test]` runtime ends with its test. Nothing in these
/// tests may wait for a child any other way.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("reaper runtime");
        let reaper = {
            let _context = runtime.enter();
            Reaper::start().expect("start reaper")
        };
        Shared { runtime, reaper }
    })
}

pub fn reaper() -> Reaper {
    shared().reaper.clone()
}

/// Runs a command to completion from sync code (Drop), through the shared reaper.
pub fn run_blocking(command: &mut Command) -> Option<i32> {
    let launched = reaper().spawn(command).ok()?;
    let (tx, rx) = std::sync::mpsc::channel();
    shared().runtime.spawn(async move {
        let _ = tx.send(launched.wait().await.map(|e| e.status));
    });
    rx.recv_timeout(Duration::from_secs(30)).ok()?.ok()
}

pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "berth-rt-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A busybox bundle, runc state root and log in one temp dir. Containers made from
/// it are force-deleted (by id) before the directory goes.
pub struct Bundle {
    ids: std::sync::Mutex<Vec<String>>,
    pub dir: tempfile::TempDir,
}

const APPLETS: &[&str] = &["sh", "echo", "sleep", "stty", "cat", "true"];

impl Bundle {
    pub fn new(args: &[&str], terminal: bool) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs/bin");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        let status = run_blocking(Command::new("runc").arg("spec").current_dir(dir.path()));
        assert_eq!(status, Some(0), "runc spec");
        let config_path = dir.path().join("config.json");
        let text = std::fs::read_to_string(&config_path).expect("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&text).expect("json");
        config["process"]["args"] = serde_json::json!(args);
        config["process"]["terminal"] = serde_json::json!(terminal);
        config["root"]["path"] = serde_json::json!("rootfs");
        if let Some(ns) = config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        std::fs::write(&config_path, config.to_string()).expect("write config");
        Bundle {
            ids: std::sync::Mutex::new(Vec::new()),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("runc-root")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("runc.log")
    }

    pub fn runc(&self) -> Runc {
        Runc::new("runc", reaper())
            .root(self.root())
            .log(self.log())
            .log_format_json()
    }

    /// A fresh container id whose runc state the guard removes.
    pub fn new_id(&self, prefix: &str) -> String {
        let id = unique_id(prefix);
        self.ids.lock().expect("ids").push(id.clone());
        id
    }

    pub fn pid_file(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.pid"))
    }

    pub fn read_pid(&self, id: &str) -> i32 {
        std::fs::read_to_string(self.pid_file(id))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            // Harmless if the test already deleted it.
            run_blocking(
                Command::new("runc")
                    .arg("--root")
                    .arg(self.root())
                    .args(["delete", "--force", &id])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            );
        }
    }
}

/// Bounds an await so a broken runtime fails the test instead of hanging it.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs}s"))
}

/// Creates and starts container `id` from `bundle` with default stdio; returns its init pid
/// and an exit subscription taken before anything was spawned.
pub async fn create_and_start(bundle: &Bundle, runc: &Runc, id: &str) -> (i32, Subscription) {
    let exits = reaper().subscribe();
    let opts = CreateOpts {
        pid_file: bundle.pid_file(id),
        ..CreateOpts::default()
    };
    runc.create(id, bundle.path(), opts).await.expect("create");
    let pid = bundle.read_pid(id);
    runc.start(id).await.expect("start");
    (pid, exits)
}
