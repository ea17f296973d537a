//! Runs built specs under the real runc with a busybox rootfs, proving runc accepts them
//! and that the options take effect. Skipped (with a note) unless root with runc and
//! busybox installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

const BUSYBOX: &str = "/bin/busybox";

fn needs_root_runc_and_busybox() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    let has_runc = Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // berth's machines are root with runc, and scripts/install-deps.sh installs busybox:
    // a missing need is a broken machine, reported as a failure, never a silent pass.
    assert!(
        is_root && has_runc && Path::new(BUSYBOX).exists(),
        "these tests need root, runc and {BUSYBOX} (run scripts/install-deps.sh as root)"
    );
}

/// A bundle in a temp dir plus runc's state root; `Drop` force-deletes the container (also
/// removing its cgroups) before the temp dir goes.
struct Bundle {
    id: String,
    state: PathBuf,
    dir: tempfile::TempDir,
}

impl Bundle {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bundle/rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs/bin");
        std::fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        std::os::unix::fs::symlink("busybox", bin.join("sh")).expect("sh symlink");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        Bundle {
            id: format!("berth-spec-{name}-{}", std::process::id()),
            state,
            dir,
        }
    }

    /// Builds the spec for `opts` on a busybox image, runs it to completion, returns the
    /// exit code and stderr.
    fn run(&self, opts: &SpecOptions) -> (Option<i32>, String) {
        let config: oci_spec::image::Config =
            serde_json::from_value(serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}))
                .expect("image config");
        let spec = build(
            &self.id,
            "busybox:test",
            Some(&config),
            opts,
            &EtcFiles::default(),
        )
        .expect("spec builds");
        let bundle = self.dir.path().join("bundle");
        let json = serde_json::to_vec_pretty(&spec).expect("spec serializes");
        std::fs::write(bundle.join("config.json"), json).expect("write config.json");
        let out = Command::new("runc")
            .arg("--root")
            .arg(&self.state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .expect("spawn runc");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.state)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn shell(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[test]
fn runc_runs_the_default_spec_and_reports_the_exit_code() {
    needs_root_runc_and_busybox();
    let bundle = Bundle::new("default");
    let script = format!(
        "[ \"$(hostname)\" = {} ] || exit 10; echo hi > /dev/null || exit 11; \
         touch /scratch || exit 12; [ \"$(id -u)\" = 0 ] || exit 13; exit 3",
        bundle.id
    );
    let opts = SpecOptions {
        args: shell(&script),
        ..SpecOptions::default()
    };
    let (code, stderr) = bundle.run(&opts);
    assert_eq!(code, Some(3), "runc stderr: {stderr}");
}

#[test]
fn runc_applies_readonly_user_env_and_hostname() {
    needs_root_runc_and_busybox();
    let bundle = Bundle::new("options");
    let opts = SpecOptions {
        args: shell(
            "[ \"$(id -u):$(id -g)\" = 1000:1001 ] || exit 10; [ \"$FOO\" = bar ] || exit 11; \
             [ \"$(hostname)\" = box ] || exit 12; [ \"$(pwd)\" = /bin ] || exit 13; \
             grep -q ' / [a-z0-9]* ro' /proc/mounts || exit 14; exit 4",
        ),
        env: vec!["FOO=bar".into()],
        user: Some("1000:1001".into()),
        readonly: true,
        hostname: Some("box".into()),
        cwd: Some("/bin".into()),
        ..SpecOptions::default()
    };
    let (code, stderr) = bundle.run(&opts);
    assert_eq!(code, Some(4), "runc stderr: {stderr}");
}
