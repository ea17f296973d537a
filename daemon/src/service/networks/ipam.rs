//! ADD's result rebuilt from the `host-local` plugin's reservations, for a DEL whose
//! attachment row has none: berthd stores the row before ADD (so a crash during ADD leaves
//! something to release) and the result only after it, so a kill -9 in between leaves a
//! row without a result (issue 31). The firewall plugin removes a task's `CNI-FORWARD`
//! rules only for the addresses in DEL's `prevResult`; without one it removes nothing.
//!
//! `host-local` keeps one file per address under `<dataDir>/<network>/`, named by the
//! address and holding the CNI container id, then the interface name, one per line.

use std::path::Path;

use serde_json::{json, Value};

/// The result of an ADD of `container` on a network whose reservations are in `dir`, with
/// `subnet` (`a.b.c.d/len`) and `gateway`, run in `netns`; `None` when no address is
/// reserved for it (ADD did not get that far, so there is nothing to remove by address).
pub fn result_from_reservations(
    dir: &Path,
    container: &str,
    (subnet, gateway): (&str, &str),
    netns: &str,
) -> Option<Value> {
    let len = subnet.split_once('/')?.1;
    let mut ips = Vec::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<std::net::Ipv4Addr>().is_err() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if text.lines().next().map(str::trim) == Some(container) {
            ips.push(
                json!({"address": format!("{name}/{len}"), "gateway": gateway, "interface": 0}),
            );
        }
    }
    if ips.is_empty() {
        return None;
    }
    Some(json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": netns}],
        "ips": ips,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_names_every_address_reserved_for_the_container() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("10.1.2.5"), "berth-default-web\r\neth0").expect("w");
        std::fs::write(d.join("10.1.2.6"), "berth-default-other\r\neth0").expect("w");
        std::fs::write(d.join("last_reserved_ip.0"), "10.1.2.6").expect("w");
        std::fs::write(d.join("lock"), "").expect("w");
        let r = result_from_reservations(
            d,
            "berth-default-web",
            ("10.1.2.0/24", "10.1.2.1"),
            "/run/x",
        )
        .expect("a result");
        assert_eq!(
            r["ips"],
            json!([{"address": "10.1.2.5/24", "gateway": "10.1.2.1", "interface": 0}])
        );
        assert_eq!(
            result_from_reservations(d, "berth-default-gone", ("10.1.2.0/24", "10.1.2.1"), "/x"),
            None
        );
    }
}
