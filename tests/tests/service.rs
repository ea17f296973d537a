//! berthd as a system service (issue 13): `make install` and its systemd units (checked by
//! `systemd-analyze verify`), socket activation through systemd's own
//! `systemd-socket-activate` (no systemd as PID 1 needed), readiness on a `NOTIFY_SOCKET`,
//! and `--log-format json`. Each berthd here runs on a stopped TestDaemon's dirs, which the
//! TestDaemon cleans up.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{container, TestDaemon};
use serde_json::{json, Value};

/// A process group we started, killed on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group our child leads; no memory is involved.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn curl(socket: &Path, method: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--unix-socket"])
        .arg(socket)
        .args([
            "http://berth/",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}).to_string())
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).ok()
}

/// A berthd command on `d`'s dirs with `args`, its own process group, stderr to `log`.
fn berthd(d: &TestDaemon, args: &[&str], log: &Path) -> Command {
    let mut cmd = d.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    cmd
}

#[test]
fn make_install_puts_binaries_completions_and_units_that_systemd_accepts() {
    let dir = tempfile::tempdir().expect("tmp");
    let prefix = dir.path().join("usr");
    let profile_dir = TestDaemon::binary()
        .parent()
        .expect("profile dir")
        .to_owned();
    let target = profile_dir.parent().expect("target dir");
    let make = |goal: &str| {
        let out = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(workspace())
            .arg(goal)
            .arg("PROFILE=debug")
            .arg(format!("TARGET_DIR={}", target.display()))
            .arg(format!("PREFIX={}", prefix.display()))
            .arg("SOCKET_GROUP=adm")
            .output()
            .expect("make");
        assert!(out.status.success(), "make {goal}: {out:?}");
    };
    make("install-files");
    let units = prefix.join("lib/systemd/system");
    for f in [
        "bin/berthd",
        "bin/berth-keeper",
        "bin/berth",
        "share/bash-completion/completions/berth",
        "share/zsh/site-functions/_berth",
        "share/fish/vendor_completions.d/berth.fish",
        "share/man/man1/berth.1",
        "share/man/man8/berthd.8",
        "lib/systemd/system/berthd.service",
        "lib/systemd/system/berthd.socket",
    ] {
        assert!(prefix.join(f).is_file(), "{f} installed");
    }
    let man = std::fs::read_to_string(prefix.join("share/man/man8/berthd.8")).expect("man");
    assert!(
        man.contains(".TH berthd 8") && man.contains("\\-\\-socket"),
        "{man}"
    );
    let service = std::fs::read_to_string(units.join("berthd.service")).expect("service");
    assert!(service.contains(&format!("ExecStart={}/bin/berthd", prefix.display())));
    assert!(service.contains("Type=notify") && service.contains("KillMode=process"));
    let socket = std::fs::read_to_string(units.join("berthd.socket")).expect("socket");
    assert!(socket.contains("SocketGroup=adm") && socket.contains("SocketMode=0660"));
    let verify = |paths: &[PathBuf]| {
        Command::new("systemd-analyze")
            .arg("verify")
            .args(paths)
            .output()
            .expect("systemd-analyze (install-deps installs systemd)")
    };
    let both = [units.join("berthd.socket"), units.join("berthd.service")];
    let out = verify(&both);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "verify: {out:?}"
    );
    // The check can fail: a unit with a bad type does not pass.
    let broken = dir.path().join("broken.service");
    std::fs::write(&broken, service.replace("Type=notify", "Type=sometimes")).expect("write");
    assert!(
        !verify(&[broken]).stderr.is_empty(),
        "a broken unit is reported"
    );
    make("uninstall");
    let left: Vec<_> = walk(&prefix);
    assert!(left.is_empty(), "uninstall leaves no file: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn socket_activation_passes_the_listening_socket_and_berthd_serves_on_it() {
    let mut d = TestDaemon::start();
    d.stop();
    let sock = d.dir().join("activated.sock");
    let log = d.dir().join("activated.log");
    // systemd's own tool: it binds the socket and starts berthd on the first connection,
    // with LISTEN_PID/LISTEN_FDS and the socket as descriptor 3.
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&sock)
        .arg(TestDaemon::binary())
        .arg("--root")
        .arg(d.root())
        .arg("--state")
        .arg(d.state())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .process_group(0);
    let _activator = Group(cmd.spawn().expect("systemd-socket-activate (install-deps)"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "the activator did not bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first call starts berthd, which answers it on the inherited socket.
    let reply = curl(&sock, "system.version").expect("a reply on the activated socket");
    assert!(reply["result"]["version"].is_string(), "{reply}");
    let info = curl(&sock, "system.info").expect("info");
    assert!(info["result"].is_object(), "{info}");
    let said = std::fs::read_to_string(&log).expect("log");
    assert!(said.contains("activated=true"), "{said}");
    assert!(
        !d.state().join("berthd.sock").exists(),
        "berthd bound no socket of its own"
    );
}

#[test]
fn readiness_and_stopping_reach_the_notify_socket_and_logs_can_be_json() {
    let mut d = TestDaemon::start();
    d.stop();
    let notify_path = d.dir().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let log = d.dir().join("json.log");
    let mut cmd = berthd(&d, &["--log-format", "json"], &log);
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let mut child = Group(cmd.spawn().expect("berthd"));
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving: the socket answers at once.
    let reply = curl(d.socket(), "system.version").expect("a reply right after READY=1");
    assert!(reply["result"].is_object(), "{reply}");
    let create = json!({"jsonrpc": "2.0", "id": 2, "method": "containers.create",
                        "params": {"container": container("logged")}});
    let (status, _) = d.curl(&create.to_string());
    assert_eq!(status, 200);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGTERM);
    }
    let n = notify.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.0.wait().expect("berthd exits");
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["topic"] == "/containers/create"
                && l["fields"]["id"] == "logged"
                && l["level"] == "INFO"),
        "{text}"
    );
}

/// The Debian package: built by packaging/deb/build.sh (dpkg-deb) from the debug build,
/// depending on runc, installed with dpkg into a throwaway root, every file it lists there,
/// and its berthd runs.
#[test]
fn the_debian_package_installs_into_a_throwaway_root_and_lists_its_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let profile_dir = TestDaemon::binary()
        .parent()
        .expect("profile dir")
        .to_owned();
    let target = profile_dir.parent().expect("target dir");
    let out = Command::new(workspace().join("packaging/deb/build.sh"))
        .arg(dir.path().join("out"))
        .arg("debug")
        .arg(target)
        // Debug binaries are large; xz would take most of a minute.
        .env("DEB_COMPRESSION", "none")
        .output()
        .expect("build.sh");
    assert!(out.status.success(), "{out:?}");
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let info = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(&deb)
        .args(["Package", "Depends"])
        .output()
        .expect("dpkg-deb");
    let fields = String::from_utf8_lossy(&info.stdout);
    assert!(
        fields.contains("Package: berth") && fields.contains("Depends: runc"),
        "{fields}"
    );
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).expect("dpkg dirs");
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).expect("dpkg dirs");
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    let dpkg = |args: &[&str]| {
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg("--log=/dev/null")
            .args(args)
            .output()
            .expect("dpkg")
    };
    // runc is the root's to provide; the maintainer scripts see DPKG_ROOT and leave the
    // host's systemd alone.
    let deb_arg = deb.display().to_string();
    let installed = dpkg(&[
        "--force-depends",
        "--force-script-chrootless",
        "-i",
        &deb_arg,
    ]);
    assert!(installed.status.success(), "{installed:?}");
    let listed = dpkg(&["-L", "berth"]);
    let files: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    for want in [
        "/usr/bin/berthd",
        "/usr/bin/berth",
        "/usr/bin/berth-keeper",
        "/lib/systemd/system/berthd.socket",
        "/lib/systemd/system/berthd.service",
        "/usr/share/bash-completion/completions/berth",
        "/usr/share/man/man8/berthd.8",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} in {files:?}");
    }
    for f in &files {
        assert!(
            root.join(f.trim_start_matches('/')).exists(),
            "{f} is listed and installed"
        );
    }
    let version = Command::new(root.join("usr/bin/berthd"))
        .arg("--version")
        .output()
        .expect("the installed berthd");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("berthd "),
        "{version:?}"
    );
}
