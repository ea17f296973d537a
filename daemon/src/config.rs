//! berthd's configuration file (TOML) and its defaults.

use std::path::Path;

use serde::Deserialize;

/// Default cap on one request (HTTP body or NDJSON line).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 16 << 20;
/// Default cap on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

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
    /// Most uncompressed bytes one image layer may unpack (a decompression-bomb guard).
    pub max_layer_bytes: u64,
    /// Most tar entries one image layer may hold.
    pub max_layer_entries: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket_group: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_layer_bytes: crate::unpack::Limits::default().max_bytes,
            max_layer_entries: crate::unpack::Limits::default().max_entries,
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
}
