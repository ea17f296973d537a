//! `berth completion bash` completes container ids, task ids, image names and namespaces
//! from the running daemon (issue 14), through the real bash, the script berth prints and
//! a real berthd; with the daemon down it says nothing and falls back to clap's words.

mod tasks_support;

use std::process::Command;

use berth_tests::{container, unique_id, TestDaemon};
use serde_json::json;
use tasks_support::{berth_out, Cleanup, Rootfs};

/// Runs bash's completion for `words` (the last one is being completed) against the
/// script in `script`; returns (candidates, stderr).
fn complete(script: &std::path::Path, words: &[&str]) -> (Vec<String>, String) {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cmd = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _berth_dynamic berth '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .env("PATH", berth_dir_path())
        .output()
        .expect("bash");
    assert!(out.status.success(), "{out:?}");
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    (got, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// PATH with the `berth` under test first.
fn berth_dir_path() -> String {
    let dir = TestDaemon::binary();
    let dir = dir.parent().expect("bin dir");
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn bash_completes_ids_and_names_from_the_daemon_and_stays_quiet_without_it() {
    let d = TestDaemon::start();
    let rootfs = Rootfs::new();
    let (web, db) = (unique_id("web"), unique_id("db"));
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![web.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &web, "sleep", "100"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok("containers.create", json!({"container": container(&db)}));
    d.rpc_ok(
        "containers.create",
        json!({"namespace": "other-ns", "container": container("in-other")}),
    );
    let script = d.dir().join("berth.bash");
    let text = berth_out(&d, &["completion", "bash"], b"");
    std::fs::write(&script, &text.stdout).expect("script");
    let sock = d.socket().display().to_string();
    let s = sock.as_str();

    let (got, err) = complete(&script, &["berth", "--socket", s, "stop", ""]);
    assert_eq!(got, sorted(&[&db, &web]), "containers for stop; {err}");
    assert!(err.is_empty(), "{err}");
    let (got, _) = complete(&script, &["berth", "--socket", s, "containers", "rm", "we"]);
    assert_eq!(got, std::slice::from_ref(&web), "the prefix narrows them");
    let (got, _) = complete(&script, &["berth", "--socket", s, "tasks", "kill", ""]);
    assert_eq!(
        got,
        std::slice::from_ref(&web),
        "only containers with a task"
    );
    let (got, _) = complete(&script, &["berth", "--socket", s, "-n", ""]);
    assert_eq!(got, ["default", "other-ns"]);
    // Another namespace's containers with -n.
    let (got, _) = complete(
        &script,
        &["berth", "--socket", s, "-n", "other-ns", "rm", ""],
    );
    assert_eq!(got, ["in-other"], "that namespace's containers");
    // Network names (a network row only: no task joins it, so no bridge is made).
    d.rpc_ok(
        "networks.create",
        json!({"name": "comp-net", "subnet": "10.211.200.0/24"}),
    );
    let (got, _) = complete(&script, &["berth", "--socket", s, "network", "rm", ""]);
    assert_eq!(got, ["comp-net"]);
    let (got, _) = complete(&script, &["berth", "--socket", s, "run", "--network", "c"]);
    assert_eq!(got, ["comp-net"]);
    // Subcommands still come from clap.
    let (got, _) = complete(&script, &["berth", "--socket", s, "ima"]);
    assert_eq!(got, ["images"]);

    // berthd down: no candidates from it, and not a word on stderr.
    let gone = d.dir().join("nothing-here.sock").display().to_string();
    let (got, err) = complete(&script, &["berth", "--socket", &gone, "stop", "we"]);
    assert!(!got.contains(&web), "{got:?}");
    assert!(err.is_empty(), "{err}");
    let out = Command::new(TestDaemon::binary().with_file_name("berth"))
        .args(["--socket", &gone, "__complete", "containers"])
        .output()
        .expect("berth");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
