//! Networking a crashed berthd may leave behind for tasks that no longer have a row
//! (issue 31): `host-local` address reservations, netns pins, veths on a network's bridge
//! beyond the tasks holding an address, and iptables rules (filter and nat) naming an
//! address of a network's subnet that no live task holds. Networks, tasks and the IPAM
//! dir are read from the daemon's own files (read-only), so the scan needs no setup.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::daemon::TestDaemon;

/// A network as its row has it.
struct Net {
    name: String,
    bridge: String,
    subnet: (Ipv4Addr, u32),
}

fn networks(db: &Path) -> Result<Vec<Net>> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", db.display()))?;
    let mut q = c.prepare("SELECT name, bridge, subnet FROM networks")?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, bridge, subnet) = row?;
        out.push(Net {
            name,
            bridge,
            subnet: parse_cidr(&subnet).with_context(|| format!("subnet {subnet}"))?,
        });
    }
    Ok(out)
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u32)> {
    let (ip, len) = s.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

fn contains((net, len): (Ipv4Addr, u32), ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// `iptables -t TABLE -S` rules (`-A ...`).
fn rules(table: &str) -> Result<Vec<String>> {
    let out = Command::new("iptables")
        .args(["-t", table, "-S"])
        .output()
        .context("running iptables -S")?;
    anyhow::ensure!(out.status.success(), "iptables -t {table} -S failed");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_owned)
        .collect())
}

/// The single addresses a rule names (`A/32`, `A`, `A:PORT`), not subnets.
fn addresses(rule: &str) -> Vec<Ipv4Addr> {
    rule.split_whitespace()
        .filter_map(|t| {
            let t = t.strip_suffix("/32").unwrap_or(t);
            let t = t.split_once(':').map_or(t, |(a, _)| a);
            t.parse().ok()
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds what is left of networking for tasks not in `tasks` (`(namespace, id)` rows).
pub fn scan(
    d: &TestDaemon,
    tasks: &BTreeSet<(String, String)>,
    add: &mut dyn FnMut(&'static str, String),
) -> Result<()> {
    let live: BTreeSet<String> = tasks
        .iter()
        .map(|(ns, id)| format!("berth-{ns}-{id}"))
        .collect();
    let pins = d.state().join("netns");
    for ns in names(&pins) {
        for id in names(&pins.join(&ns)) {
            if !tasks.contains(&(ns.clone(), id.clone())) {
                add("netns pin", format!("{ns}/{id}"));
            }
        }
    }
    let nets = networks(&d.root().join("meta.db"))?;
    if nets.is_empty() {
        return Ok(());
    }
    let mut held: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for net in &nets {
        let dir = d.state().join("cni/ipam").join(&net.name);
        let held = held.entry(net.name.clone()).or_default();
        for name in names(&dir) {
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            let owner = text.lines().next().unwrap_or_default().trim().to_owned();
            if live.contains(&owner) {
                held.insert(ip);
            } else {
                add("ipam entry", format!("{}/{ip} ({owner})", net.name));
            }
        }
    }
    for net in &nets {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &net.bridge])
            .stderr(Stdio::null())
            .output()
            .context("running ip link")?;
        let veths: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
            .collect();
        let tasks_on = held.get(&net.name).map_or(0, BTreeSet::len);
        if veths.len() > tasks_on {
            add(
                "veth",
                format!(
                    "{} veths on {} for {tasks_on} live tasks: {}",
                    veths.len(),
                    net.bridge,
                    veths.join(", ")
                ),
            );
        }
    }
    for (table, rule) in orphan_rules(&nets, &held)? {
        add("iptables rule", format!("{table}: {rule}"));
    }
    Ok(())
}

/// Rules (table, rule) naming an address of a network's subnet that is not `held`.
fn orphan_rules(
    nets: &[Net],
    held: &BTreeMap<String, BTreeSet<Ipv4Addr>>,
) -> Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for table in ["filter", "nat"] {
        for rule in rules(table)? {
            let orphan = addresses(&rule).into_iter().any(|ip| {
                nets.iter()
                    .find(|n| contains(n.subnet, ip))
                    .is_some_and(|net| {
                        ip != net.subnet.0 && !held.get(&net.name).is_some_and(|h| h.contains(&ip))
                    })
            });
            if orphan {
                out.push((table, rule));
            }
        }
    }
    Ok(out)
}

/// Deletes the rules [`scan`] reports (already counted), so a leak is counted in the round
/// that made it and not again in every later one. Errors are ignored.
pub fn remove_orphan_rules(d: &TestDaemon, tasks: &BTreeSet<(String, String)>) {
    let mut live = BTreeSet::new();
    let mut held: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let Ok(nets) = networks(&d.root().join("meta.db")) else {
        return;
    };
    for (ns, id) in tasks {
        live.insert(format!("berth-{ns}-{id}"));
    }
    for net in &nets {
        let dir = d.state().join("cni/ipam").join(&net.name);
        for name in names(&dir) {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            let owner = text.lines().next().unwrap_or_default().trim().to_owned();
            if let (Ok(ip), true) = (name.parse::<Ipv4Addr>(), live.contains(&owner)) {
                held.entry(net.name.clone()).or_default().insert(ip);
            }
        }
    }
    for (table, rule) in orphan_rules(&nets, &held).unwrap_or_default() {
        delete_rule(table, &rule);
    }
}

/// Deletes `rule` (a line of `iptables -S`) from `table`. `-S` quotes as a shell does (the
/// plugins' comments hold spaces and quotes), so the line is handed to `sh` as it is.
fn delete_rule(table: &str, rule: &str) {
    let Some(spec) = rule.strip_prefix("-A ") else {
        return;
    };
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("iptables -t {table} -D {spec}"))
        .output();
}

/// Removes the iptables rules naming an address of `subnet` and deletes `bridge`: the
/// harness's own network, on its way out. Errors are ignored.
pub fn remove_network(bridge: &str, subnet: &str) {
    let Some(cidr) = parse_cidr(subnet) else {
        return;
    };
    for table in ["nat", "filter"] {
        for rule in rules(table).unwrap_or_default() {
            let names_subnet = rule.split_whitespace().any(|t| {
                let t = t.split_once('/').map_or(t, |(a, _)| a);
                let t = t.split_once(':').map_or(t, |(a, _)| a);
                t.parse().is_ok_and(|ip| contains(cidr, ip))
            });
            if names_subnet {
                delete_rule(table, &rule);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["link", "delete", bridge])
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_addresses_not_subnets() {
        let rule = "-A CNI-DN-1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.3:80";
        assert_eq!(addresses(rule), [Ipv4Addr::new(10, 1, 2, 3)]);
        assert_eq!(
            addresses("-A CNI-FORWARD -s 10.1.2.4/32 -j ACCEPT"),
            [Ipv4Addr::new(10, 1, 2, 4)]
        );
        assert!(addresses("-A CNI-x -d 10.1.2.0/24 -j ACCEPT").is_empty());
        let net = parse_cidr("10.1.2.0/24").expect("cidr");
        assert!(contains(net, Ipv4Addr::new(10, 1, 2, 200)));
        assert!(!contains(net, Ipv4Addr::new(10, 1, 3, 1)));
    }
}
