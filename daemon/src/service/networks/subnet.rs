//! A network's subnet and gateway as IPv4 values, and the rules they must meet: a CIDR
//! without host bits, outside every special-purpose range, a gateway that is a host of it.
//! Pure: which subnets the host or other networks already use is the caller's to check.

use std::net::Ipv4Addr;

use super::{invalid, Result};

/// A subnet: its network address and prefix length.
pub(super) type Cidr = (Ipv4Addr, u8);

/// Ranges no bridge may be put on (RFC 6890), with what they are. A task's address there
/// is not routed as a host address: loopback and 0/8 are the host's own, link-local and
/// multicast belong to every link, and 240/4 (255.255.255.255 with it) is reserved. The
/// bridge plugin would still give the host such an address and masquerade it.
const SPECIAL: [(Cidr, &str); 5] = [
    (
        (Ipv4Addr::new(0, 0, 0, 0), 8),
        "\"this network\" (unspecified)",
    ),
    ((Ipv4Addr::new(127, 0, 0, 0), 8), "loopback"),
    ((Ipv4Addr::new(169, 254, 0, 0), 16), "link-local"),
    ((Ipv4Addr::new(224, 0, 0, 0), 4), "multicast"),
    (
        (Ipv4Addr::new(240, 0, 0, 0), 4),
        "reserved, with the broadcast address 255.255.255.255",
    ),
];

/// `a.b.c.d/len` as (network address, prefix length), outside every [`SPECIAL`] range.
pub(super) fn parse_cidr(s: &str) -> Result<Cidr> {
    let bad = || invalid(format!("subnet \"{s}\" is not an IPv4 CIDR (10.90.1.0/24)"));
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(invalid(format!(
            "subnet \"{s}\": the prefix length is 8 to 30"
        )));
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        return Err(invalid(format!(
            "subnet \"{s}\" has host bits set; the network is {}/{len}",
            Ipv4Addr::from(u32::from(addr) & mask)
        )));
    }
    if let Some(((net, plen), what)) = SPECIAL.iter().find(|(r, _)| overlaps(*r, (addr, len))) {
        return Err(invalid(format!(
            "subnet \"{s}\" is in {net}/{plen} ({what}), where no bridge network may be; \
             use a private range such as 10.90.1.0/24"
        )));
    }
    Ok((addr, len))
}

/// The gateway of `subnet`: `given`, or the first host address. It must be a host
/// address of the subnet: neither its network nor its broadcast address.
pub(super) fn gateway(subnet: Cidr, given: Option<&str>) -> Result<Ipv4Addr> {
    let (net, len) = subnet;
    let gateway: Ipv4Addr = match given {
        Some(g) => g
            .parse()
            .map_err(|_| invalid(format!("gateway \"{g}\" is not an IPv4 address")))?,
        None => return Ok(Ipv4Addr::from(u32::from(net) + 1)),
    };
    let broadcast = Ipv4Addr::from(u32::from(net) | !(u32::MAX << (32 - len)));
    let problem = if !contains(subnet, gateway) {
        "is outside the subnet"
    } else if gateway == net {
        "is the subnet's network address"
    } else if gateway == broadcast {
        "is the subnet's broadcast address"
    } else {
        return Ok(gateway);
    };
    Err(invalid(format!(
        "gateway {gateway} {problem} {net}/{len}; it must be a host address of it"
    )))
}

pub(super) fn contains((net, len): Cidr, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(net)
}

pub(super) fn overlaps(a: Cidr, b: Cidr) -> bool {
    contains(a, b.0) || contains(b, a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_checked_and_compared() {
        assert_eq!(
            parse_cidr("10.90.1.0/24").ok(),
            Some((Ipv4Addr::new(10, 90, 1, 0), 24))
        );
        for bad in [
            "10.90.1.1/24",
            "10.90.1.0",
            "10.90.1.0/31",
            "x/24",
            "10.90.1.0/7",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        let a = parse_cidr("10.89.0.0/16").expect("a");
        assert!(overlaps(a, parse_cidr("10.89.3.0/24").expect("b")));
        assert!(!overlaps(a, parse_cidr("10.90.0.0/24").expect("c")));
    }

    #[test]
    fn special_purpose_ranges_are_refused_by_name() {
        for (subnet, range) in [
            ("127.214.0.0/24", "127.0.0.0/8"),
            ("0.0.0.0/8", "0.0.0.0/8"),
            ("0.1.0.0/16", "0.0.0.0/8"),
            ("169.254.3.0/24", "169.254.0.0/16"),
            ("224.0.0.0/8", "224.0.0.0/4"),
            ("239.255.255.0/24", "224.0.0.0/4"),
            ("240.0.0.0/8", "240.0.0.0/4"),
            ("255.255.255.0/24", "240.0.0.0/4"),
        ] {
            let err = parse_cidr(subnet).expect_err(subnet).to_string();
            assert!(
                err.contains(range) && err.contains(subnet),
                "{subnet}: {err}"
            );
        }
        for fine in [
            "126.0.0.0/8",
            "169.253.0.0/16",
            "223.255.255.0/24",
            "192.168.7.0/24",
        ] {
            parse_cidr(fine).expect(fine);
        }
    }

    #[test]
    fn the_gateway_is_a_host_address_of_the_subnet() {
        let net = parse_cidr("10.211.9.0/24").expect("subnet");
        assert_eq!(gateway(net, None).ok(), Some(Ipv4Addr::new(10, 211, 9, 1)));
        assert_eq!(
            gateway(net, Some("10.211.9.254")).ok(),
            Some(Ipv4Addr::new(10, 211, 9, 254))
        );
        for (bad, why) in [
            ("10.211.9.0", "network address"),
            ("10.211.9.255", "broadcast address"),
            ("10.211.8.1", "outside"),
            ("nonsense", "not an IPv4 address"),
        ] {
            let err = gateway(net, Some(bad)).expect_err(bad).to_string();
            assert!(err.contains(why) && err.contains("gateway"), "{bad}: {err}");
        }
    }
}
