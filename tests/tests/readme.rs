//! The README's "Using it" and "Talking to it" blocks, run as written (the daemon's socket
//! path swapped for the test daemon's): each line through `sh -c` with `berth` on
//! PATH and BERTH_SOCKET pointing at a test daemon, from a directory holding the
//! `busybox.tar` the README's skopeo line would fetch (built here: tests never reach the
//! network) and a `./rootfs`. The keys a person would type go to the two interactive
//! lines. A README edit that breaks a command fails here. Also: the READMEs link nothing
//! outside the repository, `make daemon` builds the client too, and the no-registry path
//! (`scripts/busybox-image.sh`) makes an image and a rootfs that run.

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

/// The repository's root, where the README, the Makefile and scripts/ live.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_owned()
}

/// Every relative link and backticked path in the READMEs names a file of the repository:
/// a clone has nothing beside it (the README once sent readers to `../shared/API.md`).
#[test]
fn the_readmes_link_only_files_inside_the_repository() {
    for doc in ["README.md", "schema/README.md"] {
        let path = repo().join(doc);
        let text = std::fs::read_to_string(&path).expect("readme");
        let dir = path.parent().expect("dir").to_owned();
        assert!(
            !text.contains("../"),
            "{doc} names a path outside the repository"
        );
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').expect("a closed link");
            let target = &tail[..end];
            if !target.contains("://") && !target.starts_with('#') {
                let file = target.split('#').next().unwrap_or(target);
                assert!(
                    dir.join(file).exists(),
                    "{doc} links {target}, which is not in the repository"
                );
            }
            rest = &tail[end..];
        }
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(
        readme.contains("(schema/API.md)") && repo().join("schema/API.md").exists(),
        "the README links the contract document the repository carries"
    );
}

/// The README's set-up command builds the client its next lines run, not berthd alone.
#[test]
fn make_daemon_builds_berth_too() {
    let out = output_within(
        Command::new("make")
            .args(["-n", "daemon"])
            .current_dir(repo()),
        b"",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "make -n daemon: {out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    let build = plan
        .lines()
        .find(|l| l.starts_with("cargo build"))
        .unwrap_or_else(|| panic!("make daemon builds nothing: {plan}"));
    let words: Vec<&str> = build.split_whitespace().collect();
    for package in ["berthd", "berth"] {
        assert!(
            words.windows(2).any(|w| w == ["-p", package]),
            "make daemon does not build {package}: {build}"
        );
    }
}

/// The README's path for machines with no registry: `scripts/busybox-image.sh DIR` (what
/// `make busybox-image` runs) makes, from the host's busybox, a docker archive berth
/// imports under the name the README promises and a root filesystem `--rootfs` runs.
#[test]
fn the_busybox_image_script_makes_an_image_and_a_rootfs_that_run() {
    let d = TestDaemon::start();
    let _c = Cleanup {
        d: &d,
        ids: vec!["bbx".into()],
    };
    let dir = tempfile::Builder::new()
        .prefix("bbx-image-")
        .tempdir_in("/tmp")
        .expect("dir");
    let script = repo().join("scripts/busybox-image.sh");
    let out = output_within(
        Command::new("sh").arg(&script).arg(dir.path()),
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}: {out:?}", script.display());
    let tar = dir.path().join("busybox.tar").display().to_string();
    let rootfs = dir.path().join("rootfs").display().to_string();
    let berth = |args: &[&str]| {
        let out = tasks_support::berth_out(&d, args, b"");
        assert!(out.status.success(), "berth {args:?}: {out:?}");
        tasks_support::stdout(&out)
    };
    let imported = berth(&["images", "import", &tar]);
    assert!(
        imported.starts_with("docker.io/library/busybox:latest "),
        "{imported}"
    );
    assert_eq!(
        berth(&[
            "run",
            "--rm",
            "busybox",
            "bbx",
            "sh",
            "-c",
            "echo hi; wc -l </etc/passwd"
        ]),
        "hi\n1\n"
    );
    assert_eq!(
        berth(&["run", "--rm", "--rootfs", &rootfs, "bbx", "echo", "hi"]),
        "hi\n"
    );
    assert_clean(&d, &["bbx".into()]);
}
