//! The CNI exec protocol (spec 1.0.0), driving the standard plugins Debian ships
//! (`containernetworking-plugins`). Each plugin of a network's chain runs with
//! `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` set and its
//! config on stdin; on ADD each gets the previous one's result as `prevResult`, on DEL the
//! chain runs in reverse with ADD's result. The chain is fixed: `bridge` (host-local
//! addresses, masquerade, hairpin), `portmap` (only with published ports: it costs tens of
//! ms even with none) and `firewall`, plus `loopback` for `lo`. No Rust crate for the
//! runtime side is kept up (cni-plugin and rscni are for writing plugins); the protocol is
//! small.
//!
//! Plugins are berthd's children, so they are waited for through the [`Reaper`]; stdin and
//! stdout are files in a scratch dir (a std `Child`'s pipes close when the reaper drops it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schema::PortMapping;
use serde_json::{json, Value};

use super::reaper::Reaper;

/// The spec version berth's configs declare (the firewall plugin takes 0.4.0 or 1.0.0).
const CNI_VERSION: &str = "1.0.0";
/// How long one plugin may run.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Where Debian's package and the upstream tarball put the plugins.
pub const DEFAULT_BIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(
        "the CNI plugins are not installed (no {plugin} in {dirs}); install \
         containernetworking-plugins"
    )]
    NotInstalled { plugin: String, dirs: String },
    #[error("CNI {command} of {plugin}: {msg}")]
    Plugin {
        plugin: String,
        command: &'static str,
        msg: String,
    },
    #[error("CNI: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, CniError>;

/// A network as the plugins see it.
pub struct NetConf<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnet: &'a str,
    pub gateway: &'a str,
}

/// Runs plugin chains.
#[derive(Clone)]
pub struct Cni {
    bin_dirs: Vec<PathBuf>,
    ipam_dir: PathBuf,
    scratch: PathBuf,
    reaper: Reaper,
}

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

impl Cni {
    /// `state` holds the IPAM reservations (`cni/ipam`, wiped with the state dir at a
    /// reboot, when no address can still be in use) and the scratch files.
    pub fn new(bin_dirs: Vec<PathBuf>, state: &Path, reaper: Reaper) -> Cni {
        Cni {
            bin_dirs,
            ipam_dir: state.join("cni/ipam"),
            scratch: state.join("cni/tmp"),
            reaper,
        }
    }

    /// Where plugin `name` is, if installed.
    fn plugin(&self, name: &str) -> Result<PathBuf> {
        self.bin_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::NotInstalled {
                plugin: name.to_owned(),
                dirs: self
                    .bin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether the plugins are installed (`networks.*` then works).
    pub fn check(&self) -> Result<()> {
        for p in ["bridge", "host-local", "firewall", "portmap", "loopback"] {
            self.plugin(p)?;
        }
        Ok(())
    }

    fn chain(&self, net: &NetConf<'_>, ports: &[PortMapping]) -> Vec<Value> {
        let mut chain = vec![json!({
            "type": "bridge",
            "bridge": net.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": self.ipam_dir,
                "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        })];
        if !ports.is_empty() {
            let mappings: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut m = json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol,
                    });
                    if p.host_ip != "0.0.0.0" {
                        m["hostIP"] = json!(p.host_ip);
                    }
                    m
                })
                .collect();
            // snat makes 127.0.0.1:HOST reach the task (route_localnet + masquerade).
            chain.push(json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
                "runtimeConfig": {"portMappings": mappings},
            }));
        }
        chain.push(json!({"type": "firewall"}));
        for conf in &mut chain {
            conf["cniVersion"] = json!(CNI_VERSION);
            conf["name"] = json!(net.name);
        }
        chain
    }

    /// ADD of `container` (a unique CNI container id) in `netns` as `eth0`, and `lo` up;
    /// the chain's result. A failure runs DEL first, so nothing it did is left.
    pub async fn add(
        &self,
        net: &NetConf<'_>,
        container: &str,
        netns: &Path,
        ports: &[PortMapping],
    ) -> Result<Value> {
        let lo = json!({"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"});
        self.exec("ADD", container, Some(netns), "lo", &lo).await?;
        let mut prev: Option<Value> = None;
        for mut conf in self.chain(net, ports) {
            if let Some(p) = &prev {
                conf["prevResult"] = p.clone();
            }
            match self
                .exec("ADD", container, Some(netns), "eth0", &conf)
                .await
            {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    if let Err(d) = self.del(net, container, Some(netns), ports, prev).await {
                        tracing::warn!(container, error = %d, "CNI DEL after a failed ADD");
                    }
                    return Err(e);
                }
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// DEL of `container`, the chain in reverse with ADD's result; every plugin runs even
    /// when one fails (the first failure is returned). A missing netns (its task gone and
    /// its pin with it, as after a reboot) is tolerated by the plugins, as the spec asks.
    pub async fn del(
        &self,
        net: &NetConf<'_>,
        container: &str,
        netns: Option<&Path>,
        ports: &[PortMapping],
        prev: Option<Value>,
    ) -> Result<()> {
        let mut first = None;
        for mut conf in self.chain(net, ports).into_iter().rev() {
            if let Some(p) = &prev {
                conf["prevResult"] = p.clone();
            }
            if let Err(e) = self.exec("DEL", container, netns, "eth0", &conf).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn exec(
        &self,
        command: &'static str,
        container: &str,
        netns: Option<&Path>,
        ifname: &str,
        conf: &Value,
    ) -> Result<Value> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_owned();
        let binary = self.plugin(&plugin)?;
        std::fs::create_dir_all(&self.scratch)?;
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        let (input, output) = (
            self.scratch.join(format!("{n}.in")),
            self.scratch.join(format!("{n}.out")),
        );
        let _files = Scratch(vec![input.clone(), output.clone()]);
        std::fs::write(
            &input,
            serde_json::to_vec(conf).map_err(std::io::Error::other)?,
        )?;
        let path = std::env::join_paths(&self.bin_dirs).map_err(std::io::Error::other)?;
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env(
                "CNI_NETNS",
                netns.map(|p| p.display().to_string()).unwrap_or_default(),
            )
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", path)
            .stdin(File::open(&input)?)
            .stdout(File::create(&output)?)
            .stderr(Stdio::null());
        let fail = |msg: String| CniError::Plugin {
            plugin: plugin.clone(),
            command,
            msg,
        };
        let mut launched = self
            .reaper
            .launch(cmd)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let pidfd = launched.pidfd.take();
        let exit = match tokio::time::timeout(PLUGIN_TIMEOUT, launched.wait()).await {
            Ok(exit) => exit.map_err(|e| fail(e.to_string()))?,
            Err(_) => {
                if let Some(fd) = &pidfd {
                    let _ = super::pidfd::send_signal(fd, libc::SIGKILL);
                }
                return Err(fail(format!("did not finish within {PLUGIN_TIMEOUT:?}")));
            }
        };
        let out = std::fs::read(&output)?;
        if exit.status != 0 {
            let msg = serde_json::from_slice::<Value>(&out)
                .ok()
                .map(|v| {
                    let details = v["details"].as_str().unwrap_or_default();
                    format!("{} {details}", v["msg"].as_str().unwrap_or_default())
                        .trim()
                        .to_owned()
                })
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("exit status {}", exit.status));
            return Err(fail(msg));
        }
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out).map_err(|e| fail(format!("unreadable result: {e}")))
    }
}

impl Cni {
    /// Deletes host interface `name` (a network's bridge), if it exists.
    pub async fn remove_link(&self, name: &str) {
        self.ip(&["link", "delete", name]).await;
    }

    /// Sets the alias (IFLA_IFALIAS) of host interface `name`: berth's marker on a bridge.
    pub async fn set_alias(&self, name: &str, alias: &str) {
        self.ip(&["link", "set", "dev", name, "alias", alias]).await;
    }

    /// Runs `ip ARGS` through the reaper; a failure is logged (the callers' work is
    /// best-effort: a bridge left or unmarked costs nothing until a later start).
    async fn ip(&self, args: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = match self.reaper.launch(cmd).await {
            Ok(launched) => tokio::time::timeout(PLUGIN_TIMEOUT, launched.wait()).await,
            Err(e) => {
                tracing::warn!(?args, error = %e, "ip");
                return;
            }
        };
        match status {
            Ok(Ok(exit)) if exit.status == 0 => {}
            other => {
                tracing::debug!(?args, outcome = ?other.map(|r| r.map(|e| e.status)), "ip failed")
            }
        }
    }
}

/// The address (without prefix length) of the first IP in an ADD result.
pub fn first_ip(result: &Value) -> Option<String> {
    let addr = result["ips"].as_array()?.first()?["address"].as_str()?;
    Some(addr.split('/').next().unwrap_or(addr).to_owned())
}

/// Scratch files removed when dropped.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}
