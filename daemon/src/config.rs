//! berthd's configuration file (TOML) and its defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default cap on one request (HTTP body or NDJSON line).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 16 << 20;
/// Default cap on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Default cap on one reply (a batch's replies together count as one).
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 32 << 20;
/// Default cap on the calls of one batch.
pub const DEFAULT_MAX_BATCH: u32 = 100;
/// Default bound on the bytes all connections may hold at once in requests being read and
/// replies waiting for their socket.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 128 << 20;
/// Default seconds a connection may stay without a request before it is closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default seconds a request that has started (HTTP head and body, NDJSON line) may take to
/// arrive in full.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;

/// Default most bytes of one uploaded archive (`berth images import -`).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 16 << 30;
/// Default most uploads one uid may have open.
pub const DEFAULT_MAX_UPLOADS_PER_PEER: u32 = 4;

/// Default size of a container's newest log file before it is rotated.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 4 << 20;
/// Default number of files one container's log keeps.
pub const DEFAULT_LOG_MAX_FILES: u32 = 2;

/// Names of the runc runtime: berth's own and containerd's shims' (v2 and the old v1).
pub const RUNC_NAMES: &[&str] = &["runc", "io.containerd.runc.v2", "io.containerd.runc.v1"];

/// A group given by name or number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Group {
    Id(u32),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Members of this group may use the socket besides root; the socket is chgrp'd to it.
    pub socket_group: Option<Group>,
    pub max_request_bytes: u32,
    pub max_connections: u32,
    /// Most bytes of one reply, or of all replies of one batch (`resource_exhausted` beyond).
    pub max_response_bytes: u32,
    /// Most calls in one batch (`resource_exhausted` beyond).
    pub max_batch: u32,
    /// Most bytes all connections together may hold in requests being read and replies not
    /// yet written; a request that cannot get its share in time is `resource_exhausted`.
    pub memory_budget_bytes: u64,
    /// Seconds a connection may wait between requests (and before its first) before berthd
    /// closes it. WebSocket connections are kept alive by pings instead.
    pub idle_timeout_secs: u64,
    /// Seconds a started request (an HTTP head and body, an NDJSON line) may take to arrive.
    pub request_timeout_secs: u64,
    /// OCI runtimes by the name containers give in `runtime.name`: `[runtimes.<name>]
    /// path = "..."`. "runc" means the `runc` on PATH unless configured here.
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// Most uncompressed bytes one image layer may unpack (a decompression-bomb guard).
    pub max_layer_bytes: u64,
    /// Most tar entries one image layer may hold.
    pub max_layer_entries: u64,
    /// Most archive bytes one `images.upload_*` stream may send.
    pub max_upload_bytes: u64,
    /// Most uploads one uid may have open at once.
    pub max_uploads_per_peer: u32,
    /// Events the log keeps for `events.list` and resuming subscribers.
    pub events_max_count: i64,
    /// Bytes of event text the log keeps (the newest event always stays).
    pub events_max_bytes: i64,
    /// Registry credentials by host: `[registries."host:port"] username = "..."
    /// password = "..."`. They win over the Docker config's.
    pub registries: BTreeMap<String, crate::registry::Credentials>,
    /// A Docker client config whose `auths` hold registry credentials; default
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Seconds one runc invocation may take before it is killed and its RPC answered
    /// `unavailable` naming the verb.
    pub runc_timeout_secs: u64,
    /// Bytes of a container's newest log file before it is rotated.
    pub log_max_bytes: u64,
    /// Files of one container's log kept, the newest included (at least 1).
    pub log_max_files: u32,
    /// The network a task joins when its container names none (docker's behaviour with
    /// `"berth0"`); unset, such a task has its own network namespace with loopback only.
    pub default_network: Option<String>,
    /// The subnet of the built-in network `berth0`, created on first use.
    pub network_subnet: String,
    /// The host bridge of `berth0`.
    pub network_bridge: String,
    /// Where the CNI plugins are, searched in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Threads of the async runtime (connections, parsing, routing); 0 picks half the
    /// CPUs, at least one (see [`Config::async_workers`]).
    pub worker_threads: u32,
}

/// `berth0`'s subnet unless configured (podman takes 10.88.0.0/16).
pub const DEFAULT_NETWORK_SUBNET: &str = "10.89.0.0/16";

/// One `[runtimes.<name>]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The runtime binary: an absolute path or a name looked up on PATH.
    pub path: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket_group: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_batch: DEFAULT_MAX_BATCH,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            runtimes: BTreeMap::new(),
            max_layer_bytes: crate::unpack::Limits::default().max_bytes,
            max_layer_entries: crate::unpack::Limits::default().max_entries,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_uploads_per_peer: DEFAULT_MAX_UPLOADS_PER_PEER,
            events_max_count: crate::store::EVENT_RETENTION,
            events_max_bytes: crate::store::EVENT_RETENTION_BYTES,
            registries: BTreeMap::new(),
            docker_config: None,
            runc_timeout_secs: crate::runtime::runc::DEFAULT_TIMEOUT.as_secs(),
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            default_network: None,
            network_subnet: DEFAULT_NETWORK_SUBNET.to_owned(),
            network_bridge: schema::DEFAULT_NETWORK.to_owned(),
            cni_bin_dirs: crate::runtime::cni::DEFAULT_BIN_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            worker_threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config: socket_group \"{0}\" does not exist")]
    NoSuchGroup(String),
}

impl Config {
    /// The binary of runtime `name`: configured, or `runc` on PATH for "runc" and for
    /// containerd's names of the runc runtime, which tools written for containerd send
    /// (a configured `[runtimes.runc]` serves those too).
    pub fn runtime_binary(&self, name: &str) -> Option<PathBuf> {
        if let Some(rt) = self.runtimes.get(name) {
            return Some(rt.path.clone());
        }
        if !RUNC_NAMES.contains(&name) {
            return None;
        }
        Some(
            self.runtimes
                .get("runc")
                .map_or_else(|| PathBuf::from("runc"), |rt| rt.path.clone()),
        )
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// How many async worker threads berthd runs: `worker_threads`, or half the CPUs (at
    /// least one). berthd's own work on them is short (the file I/O, forks, mounts and
    /// scans go to blocking threads and the store's writer), and its clients run on the
    /// same host: on 2 CPUs a second worker served 16 clients' `containers.get` 30% slower
    /// (36k/s against 51k/s), the cost of waking and stealing between workers.
    pub fn async_workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n as usize,
        }
    }

    /// The deadline of one runc invocation.
    pub fn runc_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.runc_timeout_secs.max(1))
    }

    /// Where image pulls find registry credentials.
    pub fn credential_sources(&self) -> crate::registry::CredentialSources {
        crate::registry::CredentialSources {
            registries: self.registries.clone(),
            docker_config: self.docker_config.clone(),
        }
    }

    /// The gid of `socket_group`, resolved through the system's group database.
    pub fn socket_gid(&self) -> Result<Option<u32>, ConfigError> {
        match &self.socket_group {
            None => Ok(None),
            Some(Group::Id(gid)) => Ok(Some(*gid)),
            Some(Group::Name(name)) => nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| Some(g.gid.as_raw()))
                .ok_or_else(|| ConfigError::NoSuchGroup(name.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerds_runc_names_mean_runc_and_unknown_runtimes_are_none() {
        let c = Config::default();
        for name in RUNC_NAMES {
            assert_eq!(
                c.runtime_binary(name),
                Some(PathBuf::from("runc")),
                "{name}"
            );
        }
        assert_eq!(c.runtime_binary("io.containerd.kata.v2"), None);
        let c: Config = toml::from_str("[runtimes.runc]\npath = \"/opt/runc\"").expect("ok");
        assert_eq!(
            c.runtime_binary("io.containerd.runc.v2"),
            Some(PathBuf::from("/opt/runc"))
        );
    }

    #[test]
    fn parses_groups_by_name_or_id_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("socket_group = \"root\"\nmax_connections = 8").expect("ok");
        assert_eq!(c.socket_group, Some(Group::Name("root".into())));
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(c.socket_gid().expect("root exists"), Some(0));
        let c: Config = toml::from_str("socket_group = 5").expect("ok");
        assert_eq!(c.socket_gid().expect("gid"), Some(5));
        assert!(toml::from_str::<Config>("sockt_group = 5").is_err());
        let c: Config = toml::from_str("socket_group = \"no-such-group-x\"").expect("ok");
        assert!(matches!(c.socket_gid(), Err(ConfigError::NoSuchGroup(_))));
    }

    #[test]
    fn transport_limits_default_to_a_bounded_budget_and_parse() {
        let c = Config::default();
        assert_eq!(c.max_batch, DEFAULT_MAX_BATCH);
        assert!(c.memory_budget_bytes < 256 << 20);
        assert!(u64::from(c.max_response_bytes) <= c.memory_budget_bytes);
        let c: Config = toml::from_str(
            "max_batch = 5\nmax_response_bytes = 1024\nmemory_budget_bytes = 4096\n\
             idle_timeout_secs = 3\nrequest_timeout_secs = 2",
        )
        .expect("ok");
        assert_eq!(
            (c.max_batch, c.max_response_bytes, c.memory_budget_bytes),
            (5, 1024, 4096)
        );
        assert_eq!((c.idle_timeout_secs, c.request_timeout_secs), (3, 2));
    }

    #[test]
    fn worker_threads_default_to_half_the_cpus_and_parse() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auto = Config::default().async_workers();
        assert_eq!(auto, (cpus / 2).max(1));
        let c: Config = toml::from_str("worker_threads = 3").expect("ok");
        assert_eq!(c.async_workers(), 3);
    }

    #[test]
    fn runtimes_map_names_to_binaries_with_runc_as_the_default() {
        let c: Config = toml::from_str("[runtimes.fast]\npath = \"/opt/crun\"").expect("ok");
        assert_eq!(c.runtime_binary("fast"), Some(PathBuf::from("/opt/crun")));
        assert_eq!(c.runtime_binary("runc"), Some(PathBuf::from("runc")));
        assert_eq!(c.runtime_binary("kata"), None);
        assert!(toml::from_str::<Config>("[runtimes.x]\nbinary = \"/x\"").is_err());
    }
}
