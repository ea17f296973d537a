//! A real registry per test: Debian's `docker-registry` on 127.0.0.1 and a free port, its
//! storage in the test's temp dir, optionally behind htpasswd basic auth; images pushed to
//! it with `skopeo copy` from an OCI layout directory. `Drop` kills the registry and
//! removes its directory.
//!
//! Included by test files with `#[path = "../src/registry.rs"] mod registry;` next to
//! `images.rs` (it builds on its `Blob`).

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::images::{Blob, INDEX};

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// `user:password` when the registry requires basic auth.
    pub creds: Option<String>,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

impl Registry {
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that wants `user`/`password` (htpasswd, bcrypt via `htpasswd -B`).
    pub fn with_basic_auth(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-reg-")
            .tempdir_in("/tmp")
            .expect("registry dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd: {out:?}");
            std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let reg = Registry {
            child,
            port,
            dir,
            creds: auth.map(|(u, p)| format!("{u}:{p}")),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many times the registry answered a GET of blob `digest` (from its access log).
    pub fn blob_gets(&self, digest: &str) -> usize {
        let needle = "GET /v2/";
        self.log()
            .lines()
            .filter(|l| l.contains(needle) && l.contains(&format!("/blobs/{digest}")))
            .count()
    }

    /// The file the registry serves blob `digest` from.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes the OCI layout at `layout` (tag `tag` in its index.json) as `repo:tag`;
    /// `extra` are skopeo flags (`--all`, `--format v2s2`).
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, extra: &[&str]) {
        let source = format!("oci:{}:{tag}", layout.display());
        self.push_from(&source, &format!("{repo}:{tag}"), extra)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `skopeo copy SOURCE docker://HOST/REPO_TAG` (any skopeo source: `oci-archive:PATH`).
    pub fn push_from(&self, source: &str, repo_tag: &str, extra: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .args(extra);
        if let Some(c) = &self.creds {
            cmd.args(["--dest-creds", c]);
        }
        cmd.arg(source)
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().map_err(|e| format!("run skopeo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "skopeo copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group of our own unreaped child.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Writes an OCI layout directory: `blobs` under blobs/sha256 and an index.json whose
/// entries are `entries` (descriptors, each with its ref.name annotation).
pub fn write_layout(dir: &Path, blobs: &[Blob], entries: Vec<Value>) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write index.json");
    for b in blobs {
        let path = blob_dir.join(b.digest().trim_start_matches("sha256:"));
        let mut f = std::fs::File::create(path).expect("blob");
        f.write_all(&b.bytes).expect("write blob");
    }
}

/// A descriptor with the ref.name annotation skopeo's `oci:DIR:TAG` looks for.
pub fn tagged(blob: &Blob, tag: &str) -> Value {
    let mut d = blob.descriptor();
    d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    d
}

/// A docker config.json whose `auths` hold `user:password` for `host` (base64 `auth`).
pub fn docker_config(host: &str, user_password: &str) -> Value {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(user_password);
    json!({"auths": {host: {"auth": auth}}})
}
