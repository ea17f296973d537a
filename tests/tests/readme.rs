//! The README's "Using it" and "Talking to it" blocks, run as written (the daemon's socket
//! path swapped for the test daemon's): each line through `sh -c` with `berth` on
//! PATH and BERTH_SOCKET pointing at a test daemon, from a directory holding the
//! `busybox.tar` the README's skopeo line would fetch (built here: tests never reach the
//! network) and a `./rootfs`. The keys a person would type go to the two interactive
//! lines. A README edit that breaks a command fails here.

#[path = "../src/images.rs"]
mod images;
mod tasks_support;

use std::process::Command;
use std::time::Duration;

use berth_tests::process::output_within;
use berth_tests::TestDaemon;
use images::{busybox_layer, docker_save, ImageParts};
use serde_json::json;
use tasks_support::{assert_clean, Cleanup, Rootfs};

/// The commands of every block between the README's readme-test markers, a line ending in
/// `\` joined with the next, the default socket path replaced by the test daemon's.
fn readme_commands(socket: &std::path::Path) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let text = std::fs::read_to_string(path).expect("README.md");
    let mut lines = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<!-- readme-test:start -->") {
        let block = &rest[start..];
        let end = block
            .find("<!-- readme-test:end -->")
            .expect("the README ends each tested block");
        let mut pending = String::new();
        for l in block[..end].lines().skip(1) {
            let Some(cmd) = l.strip_prefix("    ") else {
                continue;
            };
            match cmd.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(cmd);
                    lines.push(std::mem::take(&mut pending));
                }
            }
        }
        rest = &block[end..];
    }
    let socket = socket.display().to_string();
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| l.replace("/run/berth/berthd.sock", &socket))
        .collect();
    assert!(
        lines.len() >= 14,
        "the tested blocks lost their commands: {lines:?}"
    );
    lines
}

/// What a person types at an interactive line.
fn keys_for(line: &str) -> &'static [u8] {
    if line.contains(" attach ") {
        b"\x10\x11"
    } else if line.contains(" -t ") {
        b"exit\n"
    } else {
        b""
    }
}

#[test]
fn every_command_in_the_readme_works_as_written() {
    let d = TestDaemon::start();
    let _c = Cleanup {
        d: &d,
        ids: vec!["demo".into(), "web".into()],
    };
    let cwd = tempfile::Builder::new()
        .prefix("berth-readme-")
        .tempdir_in("/tmp")
        .expect("cwd");
    let parts = ImageParts::new(
        vec![busybox_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    std::fs::write(
        cwd.path().join("busybox.tar"),
        docker_save(&["busybox:latest"], &parts),
    )
    .expect("busybox.tar");
    let rootfs = Rootfs::new();
    std::os::unix::fs::symlink(rootfs.path(), cwd.path().join("rootfs")).expect("./rootfs");
    let bin = TestDaemon::binary()
        .parent()
        .expect("target dir")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for line in readme_commands(d.socket()) {
        let out = output_within(
            Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(cwd.path())
                .env("PATH", &path)
                .env("BERTH_SOCKET", d.socket()),
            keys_for(&line),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "README line `{line}` failed: {out:?}");
        outputs.push((line, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let out = |needle: &str| {
        outputs
            .iter()
            .find(|(l, _)| l.contains(needle))
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
    };
    assert!(
        out("images import").starts_with("docker.io/library/busybox:latest "),
        "{outputs:?}"
    );
    assert_eq!(out("demo echo hi"), "hi\n");
    assert!(
        out("containers.list").contains("\"containers\""),
        "{outputs:?}"
    );
    assert!(
        out("system.version").contains("\"api_version\""),
        "{outputs:?}"
    );
    assert_eq!(out("logs -f"), "tick\ntick\ntick\n", "{outputs:?}");
    assert!(out("ps -a").contains("web"), "{outputs:?}");
    assert_clean(&d, &["demo".into(), "web".into()]);
}
