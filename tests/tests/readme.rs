//! The README's "Using it" block, run as written: each line through `sh -c` with `berth` on
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

/// The commands between the README's readme-test markers.
fn readme_commands() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let text = std::fs::read_to_string(path).expect("README.md");
    let start = text
        .find("<!-- readme-test:start -->")
        .expect("the README marks its tested block");
    let end = text
        .find("<!-- readme-test:end -->")
        .expect("the README ends its tested block");
    let lines: Vec<String> = text[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_prefix("    "))
        .map(str::to_owned)
        .collect();
    assert!(
        lines.len() >= 10,
        "the tested block lost its commands: {lines:?}"
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
    for line in readme_commands() {
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
    assert_eq!(out("logs -f"), "tick\ntick\ntick\n", "{outputs:?}");
    assert!(out("ps -a").contains("web"), "{outputs:?}");
    assert_clean(&d, &["demo".into(), "web".into()]);
}
