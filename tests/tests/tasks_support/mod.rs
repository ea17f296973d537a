//! Shared by the task tests: a busybox rootfs directory, the `berth` CLI pointed at a
//! test daemon, and the check that nothing was left behind (mounts, FIFOs, cgroups, runc
//! state, bundles, processes).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::process::output_within;
use berth_tests::TestDaemon;

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "true", "stty", "id", "hostname", "ip", "ls", "touch",
    "readlink", "kill", "ps", "dd", "head", "tr", "printf", "test", "[", "chown", "grep",
];

/// A busybox root filesystem in a temp dir (copied binary + applet symlinks).
pub struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    pub fn new() -> Rootfs {
        let dir = tempfile::Builder::new()
            .prefix("berth-rootfs-")
            .tempdir_in("/tmp")
            .expect("rootfs dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for d in ["proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("dir");
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        Rootfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> String {
        self.dir.path().display().to_string()
    }
}

/// The `berth` binary next to berthd.
pub fn berth_binary() -> PathBuf {
    TestDaemon::binary().with_file_name("berth")
}

pub fn berth(d: &TestDaemon) -> Command {
    let mut cmd = Command::new(berth_binary());
    cmd.arg("--socket").arg(d.socket());
    cmd
}

/// Runs `berth ARGS` with `input` as stdin; bounded.
pub fn berth_out(d: &TestDaemon, args: &[&str], input: &[u8]) -> Output {
    output_within(berth(d).args(args), input, Duration::from_secs(60))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `cond` until it holds, failing the test after 60 s with `what`.
pub fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids whose parent is `ppid`, with their state letter.
pub fn children(ppid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let state = fields.first().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push((pid, state));
        }
    }
    out
}

/// The cgroup hierarchies a task's cgroup lives in: the unified one on cgroup v2, the
/// controllers (and a hybrid's unified tree) on v1. Fails if neither layout is there.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").is_file() {
        return vec![base.to_owned()];
    }
    let v1: Vec<PathBuf> = ["pids", "memory", "freezer", "cpu", "unified"]
        .iter()
        .map(|c| base.join(c))
        .filter(|p| p.is_dir())
        .collect();
    assert!(
        base.join("pids").is_dir() && base.join("memory").is_dir(),
        "neither cgroup v2 nor v1 (pids, memory) is mounted under /sys/fs/cgroup"
    );
    v1
}

fn dir_entries(path: &Path) -> Vec<String> {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts nothing of the given containers' tasks is left: mounts below the daemon's dir,
/// bundles, runc state, cgroups, FIFO dirs, children of berthd other than its keeper, and
/// children of the keeper. A delete's teardown finishes in the background after its reply
/// (and processes may still be exiting), so this polls up to a deadline for all of it.
pub fn assert_clean(d: &TestDaemon, ids: &[String]) {
    let keeper = d
        .keeper_pid()
        .expect("berthd's keeper runs while berthd does");
    // The parents must be where berthd keeps them, or an empty listing proves nothing.
    for parent in ["tasks", "runc"] {
        let dir = d.state().join(parent);
        assert!(
            dir.is_dir(),
            "berthd's {} is missing: the layout moved",
            dir.display()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers(d, keeper, ids);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What [`assert_clean`] looks for, described.
fn leftovers(d: &TestDaemon, keeper: i32, ids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let mut kids = children(d.pid());
    kids.retain(|(pid, _)| *pid as i32 != keeper);
    kids.extend(children(keeper as u32));
    if !kids.is_empty() {
        left.push(format!("berthd or its keeper still has children: {kids:?}"));
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = d.dir().display().to_string();
    left.extend(
        info.lines()
            .filter(|l| l.contains(&dir))
            .map(|l| format!("mount: {l}")),
    );
    let bundles = dir_entries(&d.state().join("tasks/default"));
    if !bundles.is_empty() {
        left.push(format!("bundles: {bundles:?}"));
    }
    let runc = dir_entries(&d.state().join("runc/default"));
    if !runc.is_empty() {
        left.push(format!("runc state: {runc:?}"));
    }
    let roots = cgroup_roots();
    for id in ids {
        for root in &roots {
            // berthd scopes task cgroups as /berth/<namespace>/<id>.
            let cg = root.join("berth/default").join(id);
            if cg.exists() {
                left.push(format!("cgroup: {}", cg.display()));
            }
        }
        let fifos: Vec<String> = dir_entries(&std::env::temp_dir())
            .into_iter()
            .filter(|n| n.starts_with(&format!("berth-{id}-")))
            .collect();
        if !fifos.is_empty() {
            left.push(format!("FIFO dirs: {fifos:?}"));
        }
    }
    left
}

/// Deletes the task (force) and container on drop, so a failing test leaves nothing.
pub struct Cleanup<'a> {
    pub d: &'a TestDaemon,
    pub ids: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.d.rpc(
                "tasks.delete",
                serde_json::json!({"container_id": id, "force": true}),
            );
            let _ = self
                .d
                .rpc("containers.delete", serde_json::json!({"id": id}));
        }
    }
}
