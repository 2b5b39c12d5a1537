//! What the Layer 2 election means in herald's terms: one election key per service address,
//! this node's candidacy for each from the plan and its links, and which herald node a MAC
//! address belongs to (for claims seen on the wire).
//!
//! The election itself (Leases, timing, safety) is `crates/election`'s; this module only
//! translates.

use election::{Candidacy, Members};
use l2::{EthernetAddress, LinkTable};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::layer2::Assignment;

/// The election of the speakers' Layer 2 addresses.
pub const ELECTION: &str = "herald";
/// On each node's member Lease: the MAC addresses it may answer from, comma-separated.
pub const MACS: &str = "herald.io/macs";
const IP_ANNOTATION: &str = "herald.io/ip";
const SERVICES_ANNOTATION: &str = "herald.io/services";
const FAMILY_LABEL: &str = "herald.io/ip-family";
const SERVICE_NAMESPACE_LABEL: &str = "herald.io/service-namespace";
const SERVICE_NAME_LABEL: &str = "herald.io/service-name";

/// The election key (and Lease name suffix) of an address: `ip-192.0.2.10`, and for IPv6 the
/// full form with dashes, `ip-2001-0db8-0000-0000-0000-0000-0000-0010`, which is a valid name
/// for every address (`2001:db8::` included) and the same however the address was written.
pub fn key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip-{v4}"),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|s| format!("{s:04x}")).collect();
            format!("ip-{}", groups.join("-"))
        }
    }
}

/// The address a key names.
pub fn ip(key: &str) -> Option<IpAddr> {
    let rest = key.strip_prefix("ip-")?;
    if rest.contains('.') {
        return rest.parse().ok();
    }
    let groups: Vec<u16> = rest
        .split('-')
        .map(|g| {
            (g.len() == 4)
                .then(|| u16::from_str_radix(g, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let segments: [u16; 8] = groups.try_into().ok()?;
    Some(IpAddr::from(segments))
}

/// This node's candidacy for every planned address: eligible where it has an interface to
/// answer on, with its preference from the L2Advertisements, and the labels and annotations
/// that let a person find the address and its Services from the Lease.
pub fn candidacy(assignments: &[Assignment]) -> BTreeMap<String, Candidacy> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&Assignment>> = BTreeMap::new();
    for a in assignments {
        by_ip.entry(a.ip).or_default().push(a);
    }
    by_ip
        .into_iter()
        .map(|(ip, entries)| {
            // Entries of one address share its interfaces; Services sharing it differ.
            let first = entries[0];
            let services: BTreeSet<String> =
                entries.iter().map(|a| a.service.to_string()).collect();
            let mut labels = BTreeMap::from([(
                FAMILY_LABEL.to_owned(),
                if ip.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned(),
            )]);
            if let [only] = entries.as_slice() {
                labels.insert(
                    SERVICE_NAMESPACE_LABEL.into(),
                    only.service.namespace.clone(),
                );
                labels.insert(SERVICE_NAME_LABEL.into(), only.service.name.clone());
            }
            let annotations = BTreeMap::from([
                (IP_ANNOTATION.to_owned(), ip.to_string()),
                (
                    SERVICES_ANNOTATION.to_owned(),
                    services.into_iter().collect::<Vec<_>>().join(","),
                ),
            ]);
            let candidacy = Candidacy {
                ineligible: first.why_not(),
                preference: entries.iter().map(|a| a.preference).max().unwrap_or(0),
                labels,
                annotations,
            };
            (key(ip), candidacy)
        })
        .collect()
}

/// The annotations of this node's member Lease: the MACs of the links it may answer on.
pub fn member_annotations(links: &LinkTable) -> BTreeMap<String, String> {
    let macs: BTreeSet<String> = links
        .links
        .values()
        .filter(|l| l.is_ethernet() && !l.is_loopback())
        .filter_map(|l| l.mac)
        .map(|m| m.to_string())
        .collect();
    BTreeMap::from([(
        MACS.to_owned(),
        macs.into_iter().collect::<Vec<_>>().join(","),
    )])
}

/// Which herald node each MAC address belongs to, from the members' Leases.
pub fn owners(members: &Members) -> BTreeMap<EthernetAddress, String> {
    let mut owners = BTreeMap::new();
    for (node, annotations) in members.iter() {
        let Some(macs) = annotations.get(MACS) else {
            continue;
        };
        for mac in macs.split(',').filter_map(|m| m.trim().parse().ok()) {
            owners.insert(mac, node.clone());
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_names_for_every_address_and_read_back() {
        for (text, expected) in [
            ("192.0.2.10", "ip-192.0.2.10"),
            ("2001:db8::", "ip-2001-0db8-0000-0000-0000-0000-0000-0000"),
            ("::", "ip-0000-0000-0000-0000-0000-0000-0000-0000"),
            (
                "2001:DB8:0::10",
                "ip-2001-0db8-0000-0000-0000-0000-0000-0010",
            ),
            (
                "::ffff:192.0.2.1",
                "ip-0000-0000-0000-0000-0000-ffff-c000-0201",
            ),
        ] {
            let addr: IpAddr = text.parse().expect("an address");
            assert_eq!(key(addr), expected);
            assert!(election::names::valid_key(&key(addr)), "{expected}");
            assert_eq!(ip(&key(addr)), Some(addr));
        }
        assert_eq!(ip("ip-2001-db8"), None);
        assert_eq!(ip("member-x"), None);
    }
}
