//! What a local user with a shell, in no group and with no access to the socket, can get
//! from berth's files: nothing. Layers keep their setuid binaries and device nodes (images
//! need them), so every path to them must be closed; the database and bundles hold secrets.
//! The user is a throwaway uid that exists nowhere (`setpriv` needs no passwd entry).

#[path = "../src/images.rs"]
mod images;
mod tasks_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_tests::{unique_id, TestDaemon};
use images::{busybox_layer, import, oci_image, ImageParts, Layer};
use serde_json::json;
use tasks_support::{berth_out, stdout, until, Cleanup};

/// A uid and gid nobody on the host has, with no supplementary groups.
const STRANGER: &[&str] = &[
    "setpriv",
    "--reuid=61713",
    "--regid=61713",
    "--clear-groups",
];

/// Runs `args` as the stranger. Through a shell: setpriv resolves and executes its command
/// while it still holds root's capabilities (they go at that exec), so `setpriv PATH` would
/// reach PATH through directories the stranger cannot search.
fn as_stranger(args: &[&str]) -> Output {
    Command::new(STRANGER[0])
        .args(&STRANGER[1..])
        .args(["sh", "-c", "exec \"$@\"", "sh"])
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The test's temp dir opened to everyone, as /var/lib and /run are: from here on only
/// berth's own modes stand between the stranger and its files.
fn open_the_way(d: &TestDaemon) {
    chmod(d.dir(), 0o755);
}

/// Every entry below `dir` (root's view, through mounts, not following symlinks).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

/// Whether a user who is neither owner nor in the group can reach `p`: every directory
/// from the test's temp dir down to `p`'s parent grants others search (x).
fn reachable_by_others(base: &Path, p: &Path) -> bool {
    let mut dir = p.parent();
    while let Some(d) = dir {
        if mode(d) & 0o001 == 0 {
            return false;
        }
        if d == base {
            return true;
        }
        dir = d.parent();
    }
    true
}

/// An image with a setuid-root copy of the host's `id` (run from the host path, it uses
/// the host's loader) and a world-writable character device (the host's /dev/null: harmless
/// if the test fails, yet it proves the node opens).
fn import_hostile(d: &TestDaemon) {
    let id = fs::read("/usr/bin/id").expect("read /usr/bin/id (coreutils)");
    let mut l = Layer::new();
    l.dir("bin", 0o755)
        .file_owned("bin/suid-id", &id, 0o4755, 0, 0)
        .dir("dev", 0o755)
        .char_device("dev/hostnull", 1, 3, 0o666);
    let parts = ImageParts::new(
        vec![busybox_layer(), l.finish()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    import(d, "hostile.tar", &oci_image("hostile:1", &parts)).expect("import the image");
}

#[test]
fn no_local_user_runs_a_setuid_binary_or_opens_a_device_from_a_layer() {
    let d = TestDaemon::start();
    open_the_way(&d);
    import_hostile(&d);
    let id = unique_id("suid");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let out = berth_out(&d, &["run", "-d", "hostile:1", &id, "sleep", "1000"], b"");
    assert!(out.status.success(), "{out:?}");
    until("the task runs", || {
        d.rpc("tasks.get", json!({"container_id": id}))
            .is_ok_and(|t| t["process"]["status"] == "running")
    });
    // The stranger's credentials work where nothing stops them: a failure below is berth's
    // modes at work, not a broken wrapper.
    let control = as_stranger(&["/usr/bin/id", "-u"]);
    assert_eq!(stdout(&control), "61713\n", "{control:?}");

    let mut all = Vec::new();
    for top in [d.root(), d.state()] {
        walk(top, &mut all);
    }
    let named = |name: &str| -> Vec<&PathBuf> {
        all.iter()
            .filter(|p| p.file_name().is_some_and(|n| n == name))
            .collect()
    };
    let (suid, dev) = (named("suid-id"), named("hostnull"));
    // The layer's snapshot and the running task's rootfs at least: else the layout moved
    // and this test would prove nothing.
    assert!(suid.len() >= 2, "setuid copies found: {suid:?}");
    assert!(dev.len() >= 2, "device nodes found: {dev:?}");
    for p in &suid {
        assert_eq!(
            mode(p),
            0o4755,
            "the layer's setuid bit is kept: {}",
            p.display()
        );
        let out = as_stranger(&[p.to_str().expect("utf-8"), "-u"]);
        assert!(
            !out.status.success() && stdout(&out).is_empty(),
            "the stranger ran {}: {out:?}",
            p.display()
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}: {out:?}",
            p.display()
        );
    }
    for p in &dev {
        let out = as_stranger(&[
            "sh",
            "-c",
            "echo x > \"$1\"",
            "sh",
            p.to_str().expect("utf-8"),
        ]);
        assert!(
            !out.status.success(),
            "the stranger opened {}: {out:?}",
            p.display()
        );
    }
    // Not only those two names: nothing setuid, setgid or a device is reachable at all.
    let exposed: Vec<String> = all
        .iter()
        .filter_map(|p| {
            let m = fs::symlink_metadata(p).ok()?;
            let t = m.file_type();
            let risky = m.mode() & 0o6000 != 0 || t.is_char_device() || t.is_block_device();
            (risky && reachable_by_others(d.dir(), p)).then(|| p.display().to_string())
        })
        .collect();
    assert!(exposed.is_empty(), "reachable by any user: {exposed:#?}");
}

#[test]
fn a_secret_passed_with_e_is_readable_by_no_local_user() {
    let d = TestDaemon::start();
    open_the_way(&d);
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Env": ["PATH=/bin"]}));
    import(&d, "bb.tar", &oci_image("bb:1", &parts)).expect("import busybox");
    let secret = format!("s3cret-{}", unique_id("pw"));
    let id = unique_id("sec");
    let _cleanup = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let env = format!("DB_PASSWORD={secret}");
    let out = berth_out(
        &d,
        &["run", "-d", "-e", &env, "bb:1", &id, "sleep", "1000"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let exec = berth_out(
        &d,
        &[
            "tasks",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo $DB_PASSWORD",
        ],
        b"",
    );
    assert_eq!(stdout(&exec), format!("{secret}\n"), "{exec:?}");

    let dir = d.dir().to_str().expect("utf-8");
    // Root finds it (the database, the bundle): the stranger's search below can fail.
    let found = Command::new("grep")
        .args(["-rlaF", &secret, dir])
        .output()
        .expect("grep");
    let found = stdout(&found);
    assert!(found.contains("meta.db"), "root's grep: {found}");
    assert!(found.contains("config.json"), "root's grep: {found}");
    let theirs = as_stranger(&["grep", "-rlaF", &secret, dir]);
    assert!(
        stdout(&theirs).is_empty(),
        "readable by any local user: {}",
        stdout(&theirs)
    );
    for f in found.lines().map(Path::new) {
        if f.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.starts_with("meta.db") || n == "config.json"
        }) {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    for f in ["meta.db", "meta.db-wal", "meta.db-shm"] {
        assert_eq!(mode(&d.root().join(f)), 0o600, "{f}");
    }
}

#[test]
fn an_installation_an_older_berthd_left_open_is_tightened_at_start_once() {
    let mut d = TestDaemon::start();
    let parts = ImageParts::new(vec![busybox_layer()], json!({"Env": ["PATH=/bin"]}));
    import(&d, "bb.tar", &oci_image("bb:1", &parts)).expect("import busybox");
    d.stop();
    // What berth before this change left: 0711/0755 directories and a 0644 database.
    let open = [
        (d.root().to_owned(), 0o711),
        (d.root().join("snapshots"), 0o755),
        (d.root().join("content"), 0o755),
        (d.state().join("tasks"), 0o755),
        (d.state().join("runc"), 0o711),
    ];
    for (p, m) in &open {
        chmod(p, *m);
    }
    chmod(&d.root().join("meta.db"), 0o644);
    d.restart();
    for (p, _) in &open {
        assert_eq!(mode(p), 0o700, "{}", p.display());
    }
    assert_eq!(mode(&d.root().join("meta.db")), 0o600);
    assert_eq!(
        mode(d.state()),
        0o711,
        "the socket's directory stays traversable"
    );
    let tightened = |log: &str| log.matches("tightened the mode").count();
    assert_eq!(tightened(&d.stderr()), open.len(), "{}", d.stderr());
    d.stop();
    d.restart();
    assert_eq!(
        tightened(&d.stderr()),
        open.len(),
        "logged once: {}",
        d.stderr()
    );
    d.rpc_ok("system.version", json!({}));
}
