//! Node checks: what this host's interfaces and kernel settings will do to the addresses the
//! configuration has it announce. Facts are gathered once ([`NodeFacts::gather`]); the checks
//! themselves ([`checks`]) are pure, so each seed failure is testable from a table too.

use super::check::Check;
use l2::{InterfaceSelection, Link, LinkTable};
use model::World;
use model::plan::{HOSTNAME_LABEL, selects_pool};
use model::selector::any_matches;
use model::world::{Family, Labels, PeerEndpoint, Pool};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What the checks read of this host: its links and the `net.*` sysctls they depend on, keyed
/// by their path under /proc/sys (`net/ipv6/conf/eth0/disable_ipv6`). A key that is absent
/// could not be read (e.g. no IPv6 in the kernel at all).
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub links: LinkTable,
    pub sysctls: BTreeMap<String, String>,
}

impl NodeFacts {
    /// Reads the links by rtnetlink and the sysctls from /proc/sys, both of this process's
    /// network namespace.
    pub fn gather() -> Result<NodeFacts, l2::link::LinkError> {
        Ok(NodeFacts::with_links(l2::link::list_links()?))
    }

    /// The sysctls of `links` (as a running speaker's link monitor holds them).
    pub fn with_links(links: LinkTable) -> NodeFacts {
        let mut keys = vec![
            "net/ipv4/ip_forward".to_owned(),
            "net/ipv4/conf/all/rp_filter".to_owned(),
            "net/ipv6/conf/all/forwarding".to_owned(),
            "net/ipv6/conf/all/disable_ipv6".to_owned(),
        ];
        for link in links.links.values() {
            for key in PER_LINK {
                keys.push(key.replace("IF", &link.name));
            }
        }
        let sysctls = keys
            .into_iter()
            .filter_map(|k| {
                // Interface names never hold '/' or "..": the kernel refuses them.
                let value = std::fs::read_to_string(format!("/proc/sys/{k}")).ok()?;
                Some((k, value.trim().to_owned()))
            })
            .collect();
        NodeFacts { links, sysctls }
    }

    fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls.get(key).map(String::as_str)
    }

    fn per_link(&self, template: &str, link: &str) -> Option<&str> {
        self.sysctl(&template.replace("IF", link))
    }
}

const PER_LINK: [&str; 3] = [
    "net/ipv6/conf/IF/disable_ipv6",
    "net/ipv4/conf/IF/rp_filter",
    "net/ipv4/conf/IF/forwarding",
];

/// Whether a missing forwarding setting fails the run (a Kubernetes node: kube-proxy forwards
/// service traffic to pods) or only warns (a host in file mode may serve the addresses itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    KubernetesNode,
    Host,
}

/// The node checks of `node` under `world`.
pub fn checks(world: &World, node: &str, facts: &NodeFacts, role: Role) -> Vec<Check> {
    let implied = Labels::from([(HOSTNAME_LABEL.to_owned(), node.to_owned())]);
    let labels = world.nodes.get(node).map_or(&implied, |n| &n.labels);
    let mut out = Vec::new();

    // Layer 2: which interfaces answer for which families.
    let mut l2: BTreeMap<String, BTreeSet<Family>> = BTreeMap::new();
    let mut announced: BTreeSet<Family> = BTreeSet::new();
    for adv in world.l2_advertisements.values() {
        if !any_matches(&adv.node_selectors, labels) {
            continue;
        }
        let families = families(world.pools.values().filter(|p| selects_pool(&adv.pools, p)));
        if families.is_empty() {
            continue;
        }
        announced.extend(&families);
        let selection = if adv.interfaces.is_empty() {
            InterfaceSelection::Any
        } else {
            InterfaceSelection::Only(adv.interfaces.clone())
        };
        let resolved = l2::resolve(&selection, facts.links.links.values());
        for name in &resolved.unmatched {
            let what = match facts.links.by_name(name) {
                Some(_) => {
                    "exists but is not an Ethernet interface, so ARP and NDP cannot be answered on it"
                }
                None => "does not exist on this node",
            };
            out.push(Check::fail(
                "l2-interface",
                name.clone(),
                format!("L2Advertisement {} names interface {name}, which {what}", adv.name),
                format!(
                    "correct spec.interfaces of L2Advertisement {} (this node has: {}), or keep this node out with its nodeSelectors",
                    adv.name,
                    ethernet_names(&facts.links)
                ),
            ));
        }
        if selection == InterfaceSelection::Any && resolved.interfaces.is_empty() {
            out.push(Check::fail(
                "l2-interface",
                "",
                format!(
                    "L2Advertisement {} answers on every usable interface, and this node has none (Ethernet, not enslaved, not a CNI device)",
                    adv.name
                ),
                "name the interface in spec.interfaces of the L2Advertisement",
            ));
        }
        for name in resolved.interfaces {
            l2.entry(name).or_default().extend(&families);
        }
    }

    // BGP: which families this node sends, and the links unnumbered sessions run over.
    let peers: Vec<_> = world
        .peers
        .values()
        .filter(|p| any_matches(&p.node_selectors, labels))
        .collect();
    for adv in world.bgp_advertisements.values() {
        if !any_matches(&adv.node_selectors, labels) {
            continue;
        }
        if !peers
            .iter()
            .any(|p| adv.peers.is_empty() || adv.peers.contains(&p.name))
        {
            continue;
        }
        announced.extend(families(
            world.pools.values().filter(|p| selects_pool(&adv.pools, p)),
        ));
    }
    for peer in &peers {
        if let PeerEndpoint::Interface(name) = &peer.endpoint {
            match facts.links.by_name(name) {
                None => out.push(Check::fail(
                    "bgp-interface",
                    name.clone(),
                    format!("BGPPeer {} is unnumbered over {name}, which does not exist on this node", peer.name),
                    format!("correct spec.interface of BGPPeer {}, or keep this node out with its nodeSelectors", peer.name),
                )),
                Some(link) => {
                    l2.entry(link.name.clone())
                        .or_default()
                        .insert(Family::Ipv6);
                }
            }
        }
    }

    if l2.is_empty() && announced.is_empty() {
        out.push(Check::skip(
            "interfaces",
            "",
            format!("no advertisement selects node {node}: nothing to announce here"),
        ));
        return out;
    }

    for (name, families) in &l2 {
        let Some(link) = facts.links.by_name(name) else {
            continue;
        };
        if families.contains(&Family::Ipv6) {
            out.extend(ipv6_checks(link, facts));
        }
        if families.contains(&Family::Ipv4) {
            out.push(ipv4_address(link));
            out.push(rp_filter(link, facts));
        }
    }
    for family in &announced {
        out.extend(forwarding(*family, &l2, facts, role));
    }
    out
}

fn families<'a>(pools: impl Iterator<Item = &'a Pool>) -> BTreeSet<Family> {
    pools
        .flat_map(|p| p.ranges.iter().map(|r| r.family()))
        .collect()
}

fn ethernet_names(links: &LinkTable) -> String {
    let names: Vec<&str> = links
        .links
        .values()
        .filter(|l| l.is_ethernet())
        .map(|l| l.name.as_str())
        .collect();
    if names.is_empty() {
        "no Ethernet interface".to_owned()
    } else {
        names.join(", ")
    }
}

/// IPv6 on an interface that answers NDP: enabled, with a link-local address (the source of
/// every Neighbor Advertisement and MLD report) and a global one (the on-link route replies
/// to clients take).
fn ipv6_checks(link: &Link, facts: &NodeFacts) -> Vec<Check> {
    let name = &link.name;
    let disabled = match facts.per_link("net/ipv6/conf/IF/disable_ipv6", name) {
        Some(v) => v != "0",
        // No per-interface entry: the kernel runs without IPv6 (ipv6.disable=1).
        None => true,
    };
    if disabled {
        return vec![Check::fail(
            "ipv6-enabled",
            name.clone(),
            format!(
                "IPv6 is disabled on {name}, so Neighbor Solicitations for the pool's IPv6 addresses are never answered"
            ),
            format!(
                "sysctl -w net.ipv6.conf.{name}.disable_ipv6=0 (and net.ipv6.conf.all.disable_ipv6=0; persist it in /etc/sysctl.d/), or boot without ipv6.disable=1"
            ),
        )];
    }
    let mut out = vec![Check::pass("ipv6-enabled", name.clone(), "IPv6 is enabled")];
    if link.has_ipv6_link_local() {
        out.push(Check::pass(
            "ipv6-link-local",
            name.clone(),
            "has an IPv6 link-local address",
        ));
    } else {
        out.push(Check::fail(
            "ipv6-link-local",
            name.clone(),
            format!("{name} has no IPv6 link-local address, so herald cannot send Neighbor Advertisements or MLD reports from it"),
            format!("set net.ipv6.conf.{name}.addr_gen_mode to 0 or 3 and bring the link down and up, or add one: ip -6 addr add fe80::1/64 dev {name}"),
        ));
    }
    let global = link.addresses.iter().any(|n| match n.addr() {
        IpAddr::V6(a) => !a.is_unicast_link_local() && !a.is_loopback(),
        IpAddr::V4(_) => false,
    });
    if global {
        out.push(Check::pass(
            "ipv6-global",
            name.clone(),
            "has a global IPv6 address",
        ));
    } else {
        out.push(Check::warn(
            "ipv6-global",
            name.clone(),
            format!("{name} has no global IPv6 address, so this node has no on-link route to IPv6 clients there and replies leave by the default route"),
            format!("give {name} an address in the IPv6 subnet of the pool (SLAAC, DHCPv6 or static)"),
        ));
    }
    out
}

fn ipv4_address(link: &Link) -> Check {
    let name = &link.name;
    if link.addresses.iter().any(|n| n.addr().is_ipv4()) {
        Check::pass("ipv4-address", name.clone(), "has an IPv4 address")
    } else {
        Check::fail(
            "ipv4-address",
            name.clone(),
            format!(
                "{name} answers ARP for IPv4 pools but has no IPv4 address, so this node has no route back to the clients there"
            ),
            format!(
                "give {name} an IPv4 address in the subnet of the pool, or name another interface in the L2Advertisement"
            ),
        )
    }
}

/// The kernel uses the larger of `all` and the interface's value; 1 is strict.
fn rp_filter(link: &Link, facts: &NodeFacts) -> Check {
    let name = &link.name;
    let value = |k: Option<&str>| k.and_then(|v| v.parse::<u8>().ok()).unwrap_or(0);
    let effective = value(facts.sysctl("net/ipv4/conf/all/rp_filter"))
        .max(value(facts.per_link("net/ipv4/conf/IF/rp_filter", name)));
    if effective == 1 {
        Check::warn(
            "rp-filter",
            name.clone(),
            format!(
                "strict reverse-path filtering (rp_filter=1) on {name} drops service traffic whose replies would leave by another interface"
            ),
            format!(
                "sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{name}.rp_filter=2 (loose)"
            ),
        )
    } else {
        Check::pass(
            "rp-filter",
            name.clone(),
            format!("rp_filter={effective} does not drop service traffic"),
        )
    }
}

fn forwarding(
    family: Family,
    l2: &BTreeMap<String, BTreeSet<Family>>,
    facts: &NodeFacts,
    role: Role,
) -> Vec<Check> {
    let on = |v: Option<&str>| v == Some("1");
    let (global_key, sysctl) = match family {
        Family::Ipv4 => ("net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        Family::Ipv6 => (
            "net/ipv6/conf/all/forwarding",
            "net.ipv6.conf.all.forwarding",
        ),
    };
    let mut off: Vec<String> = Vec::new();
    if !on(facts.sysctl(global_key)) {
        off.push(sysctl.to_owned());
    }
    if family == Family::Ipv4 {
        for (name, families) in l2 {
            if families.contains(&Family::Ipv4)
                && !on(facts.per_link("net/ipv4/conf/IF/forwarding", name))
            {
                off.push(format!("net.ipv4.conf.{name}.forwarding"));
            }
        }
    }
    if off.is_empty() {
        return vec![Check::pass(
            "forwarding",
            family.to_string(),
            format!("{family} forwarding is on"),
        )];
    }
    let message = format!(
        "{family} forwarding is off ({}), so {family} service traffic this node receives is not forwarded to the pods behind the Service",
        off.join(", ")
    );
    let fix = format!(
        "sysctl -w {} (persist it in /etc/sysctl.d/){}",
        off.iter()
            .map(|k| format!("{k}=1"))
            .collect::<Vec<_>>()
            .join(" "),
        if family == Family::Ipv6 {
            "; with forwarding on, keep router advertisements with accept_ra=2"
        } else {
            ""
        }
    );
    vec![match role {
        Role::KubernetesNode => Check::fail("forwarding", family.to_string(), message, fix),
        Role::Host => Check::warn(
            "forwarding",
            family.to_string(),
            format!("{message} (fine if this host serves the addresses itself)"),
            fix,
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::Status;
    use ipnet::IpNet;
    use model::world::{AddressRange, L2Advertisement, PoolSelection};

    fn link(index: u32, name: &str, addrs: &[&str]) -> Link {
        Link {
            index,
            name: name.to_owned(),
            mac: Some(l2::EthernetAddress([2, 0, 0, 0, 0, index as u8])),
            hardware_type: 1,
            flags: 0x1 | 0x40,
            master: None,
            kind: Some("veth".into()),
            up_generation: 0,
            addresses: addrs
                .iter()
                .map(|a| a.parse::<IpNet>().expect("net"))
                .collect(),
        }
    }

    fn world(ranges: &[(&str, &str)], interfaces: &[&str]) -> World {
        let mut w = World::default();
        w.pools.insert(
            "p".into(),
            Pool {
                name: "p".into(),
                labels: Labels::new(),
                ranges: ranges
                    .iter()
                    .map(|(a, b)| AddressRange {
                        first: a.parse().expect("ip"),
                        last: b.parse().expect("ip"),
                    })
                    .collect(),
                cidrs: Vec::new(),
                auto_assign: true,
                avoid_buggy_ips: false,
                service_allocation: None,
            },
        );
        w.l2_advertisements.insert(
            "l2".into(),
            L2Advertisement {
                name: "l2".into(),
                pools: PoolSelection::default(),
                node_selectors: Vec::new(),
                interfaces: interfaces.iter().map(|s| (*s).to_owned()).collect(),
                service_selectors: Vec::new(),
                preferred_nodes: Vec::new(),
            },
        );
        w
    }

    fn healthy() -> NodeFacts {
        let mut facts = NodeFacts::default();
        facts.links.links.insert(
            2,
            link(
                2,
                "eth0",
                &["192.0.2.10/24", "fe80::1/64", "2001:db8::10/64"],
            ),
        );
        for (k, v) in [
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv6/conf/all/forwarding", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv6/conf/eth0/disable_ipv6", "0"),
            ("net/ipv4/conf/eth0/rp_filter", "2"),
            ("net/ipv4/conf/eth0/forwarding", "1"),
        ] {
            facts.sysctls.insert(k.into(), v.into());
        }
        facts
    }

    fn statuses(checks: &[Check]) -> Vec<(&str, &str, Status)> {
        checks
            .iter()
            .map(|c| (c.check, c.subject.as_str(), c.status))
            .collect()
    }

    const DUAL: &[(&str, &str)] = &[
        ("192.0.2.100", "192.0.2.110"),
        ("2001:db8::100", "2001:db8::110"),
    ];

    #[test]
    fn a_healthy_dual_stack_node_passes_everything() {
        let checks = checks(&world(DUAL, &[]), "n1", &healthy(), Role::KubernetesNode);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:#?}"
        );
        let names: BTreeSet<&str> = checks.iter().map(|c| c.check).collect();
        for name in [
            "ipv6-enabled",
            "ipv6-link-local",
            "ipv6-global",
            "ipv4-address",
            "rp-filter",
            "forwarding",
        ] {
            assert!(names.contains(name), "{name} ran: {checks:#?}");
        }
    }

    #[test]
    fn each_broken_setting_is_named() {
        let mut facts = healthy();
        facts
            .sysctls
            .insert("net/ipv6/conf/eth0/disable_ipv6".into(), "1".into());
        // The kernel applies the larger of `all` and the interface's: strict on eth0 itself.
        facts
            .sysctls
            .insert("net/ipv4/conf/eth0/rp_filter".into(), "1".into());
        facts
            .sysctls
            .insert("net/ipv4/ip_forward".into(), "0".into());
        let checks = checks(&world(DUAL, &[]), "n1", &facts, Role::KubernetesNode);
        let s = statuses(&checks);
        assert!(s.contains(&("ipv6-enabled", "eth0", Status::Fail)), "{s:?}");
        assert!(s.contains(&("rp-filter", "eth0", Status::Warn)), "{s:?}");
        assert!(s.contains(&("forwarding", "IPv4", Status::Fail)), "{s:?}");
        // As a host, forwarding only warns.
        let host = super::checks(&world(DUAL, &[]), "n1", &facts, Role::Host);
        assert!(statuses(&host).contains(&("forwarding", "IPv4", Status::Warn)));
    }

    #[test]
    fn missing_addresses_and_interfaces_fail() {
        let mut facts = healthy();
        facts
            .links
            .links
            .insert(2, link(2, "eth0", &["2001:db8::10/64"]));
        let s = checks(
            &world(DUAL, &["eth0", "eth9"]),
            "n1",
            &facts,
            Role::KubernetesNode,
        );
        let s = statuses(&s);
        assert!(
            s.contains(&("ipv6-link-local", "eth0", Status::Fail)),
            "{s:?}"
        );
        assert!(s.contains(&("ipv4-address", "eth0", Status::Fail)), "{s:?}");
        assert!(s.contains(&("l2-interface", "eth9", Status::Fail)), "{s:?}");
    }

    #[test]
    fn only_the_families_announced_are_checked() {
        let mut facts = healthy();
        facts
            .sysctls
            .insert("net/ipv6/conf/eth0/disable_ipv6".into(), "1".into());
        let checks = checks(
            &world(&[("192.0.2.100", "192.0.2.110")], &[]),
            "n1",
            &facts,
            Role::KubernetesNode,
        );
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:#?}"
        );
        assert!(!checks.iter().any(|c| c.check.starts_with("ipv6")));
    }
}
