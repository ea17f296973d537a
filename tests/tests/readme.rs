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

/// The README's Configuration block as written: every indented line of that section.
fn readme_config() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let text = std::fs::read_to_string(path).expect("README.md");
    let start = text
        .find("\n## Configuration")
        .expect("the README has a Configuration section");
    let section = &text[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut toml = String::new();
    for line in section.lines() {
        if let Some(l) = line.strip_prefix("    ") {
            toml.push_str(l);
            toml.push('\n');
        } else if line.trim().is_empty() {
            toml.push('\n');
        }
    }
    assert!(
        toml.contains("socket_group") && toml.contains("[runtimes.runc]"),
        "the block lost its settings: {toml}"
    );
    toml
}

/// The gid of group `name`, from /etc/group.
fn gid_of(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|g| g.parse().ok()))
            .flatten()
    })
}

/// Copied literally, the Configuration block starts berthd and is in force. Its
/// `socket_group = "berth"` names a group that an operator creates (the README says so, as
/// for `make install SOCKET_GROUP=berth`); the test does the same when it is missing, since
/// a gid in the README would mean nothing on another host.
#[test]
fn the_readme_configuration_block_starts_berthd_as_written() {
    use std::os::unix::fs::MetadataExt;
    let toml = readme_config();
    if gid_of("berth").is_none() {
        let out = output_within(
            Command::new("groupadd").args(["--system", "berth"]),
            b"",
            Duration::from_secs(30),
        );
        // Another test may have made it meanwhile; what matters is that it exists now.
        assert!(
            gid_of("berth").is_some(),
            "groupadd --system berth: {out:?}"
        );
    }
    let gid = gid_of("berth").expect("group berth");
    let d = TestDaemon::start_with(&toml);
    let meta = std::fs::metadata(d.socket()).expect("the socket");
    assert_eq!(meta.gid(), gid, "socket_group is in force");
    d.rpc_ok("system.version", json!({}));
    let rootfs = Rootfs::new();
    let out = tasks_support::berth_out(
        &d,
        // `--network none`: the block's default_network would make a host bridge.
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--rootfs",
            &rootfs.arg(),
            "cfg",
            "echo",
            "hi",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "a task runs under [runtimes.runc]: {out:?}"
    );
    assert_eq!(tasks_support::stdout(&out), "hi\n");
}
