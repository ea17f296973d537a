//! Wire types of networks: bridges on this host that containers join through the standard
//! CNI plugins (`bridge`, `host-local`, `portmap`, `firewall`), with published ports.

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::Labels;

/// The network berthd creates on first use: `-p` without `--network` joins it.
pub const DEFAULT_NETWORK: &str = "berth0";

/// The container label naming the network its tasks join (`berth run --network`), as
/// nerdctl keeps its own in `nerdctl/networks`.
pub const NETWORK_LABEL: &str = "berth/network";
/// The container label listing its published ports, comma-separated
/// `[IP:]HOST:CONTAINER[/tcp|udp]` (`berth run -p`).
pub const PORTS_LABEL: &str = "berth/ports";

/// A bridge network: a private IPv4 subnet, addresses from host-local, masquerade out, the
/// firewall plugin's rules, and port publishing through portmap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Network {
    pub name: String,
    /// The host bridge interface.
    pub bridge: String,
    /// CIDR, e.g. `10.89.0.0/16`.
    pub subnet: String,
    pub gateway: String,
    pub labels: Labels,
    pub created_at: String,
}

/// `networks.create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreateParams {
    /// Ignored: networks belong to the host, not to a namespace (accepted because clients
    /// send their namespace with every call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// containerd's identifier rule, at most 64 characters.
    pub name: String,
    /// An IPv4 CIDR of at least 4 addresses; default: the first free 10.90.N.0/24.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Default: the subnet's first address.
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub labels: Labels,
}

/// `networks.get`, `networks.delete`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkNameParams {
    /// Ignored: networks belong to the host, not to a namespace (accepted because clients
    /// send their namespace with every call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// `networks.list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkListParams {
    /// Ignored: networks belong to the host, not to a namespace (accepted because clients
    /// send their namespace with every call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkReply {
    pub network: Network,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkList {
    pub networks: Vec<Network>,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct PortMapping {
    /// The host address it is published on; `0.0.0.0` for every one.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Where a running task is on the network (`tasks.get`, `tasks.list`; berth extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskNetwork {
    pub network: String,
    /// The task's address (without prefix length).
    pub ip: String,
    pub ports: Vec<PortMapping>,
}

/// Reads `[IP:]HOST:CONTAINER[/tcp|udp]` (docker's `-p`, without ranges).
pub fn parse_port(s: &str) -> Result<PortMapping, String> {
    let bad = |why: &str| format!("port {s:?}: {why} (want [IP:]HOST:CONTAINER[/tcp|udp])");
    let (ports, protocol) = match s.rsplit_once('/') {
        Some((p, proto @ ("tcp" | "udp"))) => (p, proto),
        Some(_) => return Err(bad("the protocol is tcp or udp")),
        None => (s, "tcp"),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [host, ctr] => ("0.0.0.0", *host, *ctr),
        [ip, host, ctr] => (*ip, *host, *ctr),
        _ => return Err(bad("give both ports")),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad("the address is IPv4"))?;
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad("ports are 1 to 65535")),
    };
    Ok(PortMapping {
        host_ip: ip.to_string(),
        host_port: port(host)?,
        container_port: port(ctr)?,
        protocol: protocol.to_owned(),
    })
}

/// Reads a [`PORTS_LABEL`] value.
pub fn parse_ports(s: &str) -> Result<Vec<PortMapping>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_port)
        .collect()
}

/// The canonical text of a port, as [`parse_port`] reads it.
pub fn port_text(p: &PortMapping) -> String {
    format!(
        "{}:{}:{}/{}",
        p.host_ip, p.host_port, p.container_port, p.protocol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_docker_writes_them() {
        let p = parse_port("8080:80").expect("port");
        assert_eq!(port_text(&p), "0.0.0.0:8080:80/tcp");
        let p = parse_port("127.0.0.1:5353:53/udp").expect("port");
        assert_eq!(port_text(&p), "127.0.0.1:5353:53/udp");
        assert_eq!(parse_port(&port_text(&p)), Ok(p));
        for bad in [
            "80",
            "a:80",
            "8080:0",
            "8080:80/sctp",
            "::1:80:80",
            "1:2:3:4",
            "70000:1",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_ports("1:2, 3:4/udp").expect("ports").len(), 2);
    }
}
