//! Plans as text for people: aligned tables, and every skip reason in words.

use model::NodePlan;
use model::community::{Community, WELL_KNOWN};
use model::plan::{Interfaces, L2Announcement, PeerPlan, Protocol, Route, SkipReason, Skipped};
use model::world::{Family, Peer, PeerAsn, PeerEndpoint};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A table whose columns are padded to their widest cell. Cells hold no newlines.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Every line starts with `indent`; trailing spaces are trimmed.
    pub fn render(&self, indent: &str) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = width.saturating_sub(cell.chars().count()) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The plan of one node as a few headed tables. `described` says whether a Node object for
/// it was in the configuration (without one it has no labels, which changes selection).
pub fn plan_text(plan: &NodePlan, described: bool) -> String {
    let mut out = String::new();
    let _ = write!(out, "Node {}", plan.node);
    if !described {
        out.push_str(
            " (no Node object in the files: planned with only its kubernetes.io/hostname label)",
        );
    }
    out.push('\n');

    if plan.l2.is_empty() {
        out.push_str("  Layer 2: nothing to announce\n");
    } else {
        let _ = writeln!(
            out,
            "  Layer 2 ({}):",
            count(plan.l2.len(), "address", "addresses")
        );
        out.push_str(&l2_table(&plan.l2).render("    "));
    }

    if plan.bgp.is_empty() {
        out.push_str("  BGP: no session\n");
    } else {
        let _ = writeln!(out, "  BGP peers ({}):", plan.bgp.len());
        out.push_str(&peer_table(&plan.bgp).render("    "));
        let routes: usize = plan.bgp.iter().map(|p| p.routes.len()).sum();
        if routes == 0 {
            out.push_str("  BGP routes: nothing to announce\n");
        } else {
            let _ = writeln!(out, "  BGP routes ({routes}):");
            out.push_str(&route_table(&plan.bgp).render("    "));
        }
    }

    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "  Not announced ({}):", plan.skipped.len());
        out.push_str(&skipped_table(&plan.skipped).render("    "));
    }
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn l2_table(l2: &[L2Announcement]) -> Table {
    let mut t = Table::new(&["IP", "SERVICE", "POOL", "INTERFACES"]);
    for a in l2 {
        t.row(vec![
            a.ip.to_string(),
            a.service.to_string(),
            a.pool.clone(),
            interfaces(&a.interfaces),
        ]);
    }
    t
}

pub fn interfaces(i: &Interfaces) -> String {
    match i {
        Interfaces::Any => "any".to_owned(),
        Interfaces::Only(names) => join(names),
    }
}

fn peer_table(peers: &[PeerPlan]) -> Table {
    let mut t = Table::new(&[
        "PEER", "ADDRESS", "LOCAL AS", "PEER AS", "TYPE", "FAMILIES", "ROUTES",
    ]);
    for p in peers {
        t.row(vec![
            p.peer.name.clone(),
            endpoint(&p.peer),
            p.peer.local_as().to_string(),
            peer_asn(p.peer.peer_asn),
            if p.peer.is_ibgp() { "iBGP" } else { "eBGP" }.to_owned(),
            families(&p.families),
            p.routes.len().to_string(),
        ]);
    }
    t
}

pub fn endpoint(peer: &Peer) -> String {
    match &peer.endpoint {
        PeerEndpoint::Address(ip) if peer.port == 179 => ip.to_string(),
        PeerEndpoint::Address(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", peer.port),
        PeerEndpoint::Address(ip) => format!("{ip}:{}", peer.port),
        PeerEndpoint::Interface(name) => format!("unnumbered on {name}"),
    }
}

pub fn peer_asn(asn: PeerAsn) -> String {
    match asn {
        PeerAsn::Fixed(n) => n.to_string(),
        PeerAsn::Internal => "internal (any)".to_owned(),
        PeerAsn::External => "external (any)".to_owned(),
    }
}

pub fn families(f: &BTreeSet<Family>) -> String {
    if f.is_empty() {
        return "none".to_owned();
    }
    f.iter()
        .map(Family::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

fn route_table(peers: &[PeerPlan]) -> Table {
    let mut t = Table::new(&["PEER", "PREFIX", "SERVICES", "COMMUNITIES", "LOCAL-PREF"]);
    for p in peers {
        for r in &p.routes {
            t.row(vec![
                p.peer.name.clone(),
                r.prefix.to_string(),
                join(r.services.iter()),
                communities(r),
                match r.local_pref {
                    Some(v) => v.to_string(),
                    None => "-".to_owned(),
                },
            ]);
        }
    }
    t
}

pub fn communities(r: &Route) -> String {
    let all: Vec<String> = r
        .communities
        .iter()
        .map(community)
        .chain(r.large_communities.iter().map(ToString::to_string))
        .collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join(",")
    }
}

/// A standard community, by its well-known name when it has one (`no-export`), as an
/// operator wrote it in the advertisement.
pub fn community(c: &Community) -> String {
    WELL_KNOWN
        .iter()
        .find(|(_, value)| *value == c.0)
        .map_or_else(|| c.to_string(), |(name, _)| (*name).to_owned())
}

fn skipped_table(skipped: &[Skipped]) -> Table {
    let mut t = Table::new(&["IP", "SERVICE", "PROTOCOL", "REASON"]);
    for s in skipped {
        t.row(vec![
            s.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            s.service.to_string(),
            protocol(s.protocol).to_owned(),
            skip_reason(s.protocol, &s.reason),
        ]);
    }
    t
}

pub fn protocol(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Layer2) => "L2",
        Some(Protocol::Bgp) => "BGP",
        None => "all",
    }
}

/// Why an address is not announced, in words an operator can act on.
pub fn skip_reason(protocol: Option<Protocol>, reason: &SkipReason) -> String {
    let advertisement_kind = match protocol {
        Some(Protocol::Layer2) => "L2Advertisement",
        Some(Protocol::Bgp) => "BGPAdvertisement",
        None => "advertisement",
    };
    match reason {
        SkipReason::NotLoadBalancer => "spec.type is not LoadBalancer".to_owned(),
        SkipReason::OtherLoadBalancerClass { class, ours } => format!(
            "loadBalancerClass is {}, herald serves {}",
            class.as_deref().unwrap_or("unset"),
            match ours {
                Some(c) => format!("class {c}"),
                None => "services without a class".to_owned(),
            }
        ),
        SkipReason::NoAddress => "no address in status.loadBalancer.ingress yet".to_owned(),
        SkipReason::NotInAnyPool => "the address is in no IPAddressPool".to_owned(),
        SkipReason::NodeExcluded => {
            "the node is labelled node.kubernetes.io/exclude-from-external-load-balancers"
                .to_owned()
        }
        SkipReason::NodeNetworkUnavailable => {
            "the node's NetworkUnavailable condition is True".to_owned()
        }
        SkipReason::NoServingEndpoint => {
            "externalTrafficPolicy Cluster and no serving endpoint on any node".to_owned()
        }
        SkipReason::NoLocalEndpoint => {
            "externalTrafficPolicy Local and no ready or serving endpoint on this node".to_owned()
        }
        SkipReason::NoAdvertisement { pool } => {
            format!("no {advertisement_kind} selects pool {pool}")
        }
        SkipReason::NodeNotSelected {
            pool,
            advertisements,
        } => format!(
            "{} {} select pool {pool} but not this node (nodeSelectors)",
            plural(advertisement_kind, advertisements.len()),
            join(advertisements)
        ),
        SkipReason::ServiceNotSelected {
            pool,
            advertisements,
        } => format!(
            "{} {} select pool {pool} and this node but not this service (serviceSelectors)",
            plural(advertisement_kind, advertisements.len()),
            join(advertisements)
        ),
        SkipReason::NoPeerForNode { advertisements } => format!(
            "no BGPPeer of this node is named by {} {} (peers, nodeSelectors)",
            plural(advertisement_kind, advertisements.len()),
            join(advertisements)
        ),
        SkipReason::NoPeerCarriesFamily { family, peers } => format!(
            "no session to {} carries {family} (add an {family} peer or set dualStackAddressFamily)",
            if peers.is_empty() {
                "any peer".to_owned()
            } else {
                format!("peer {}", join(peers))
            }
        ),
    }
}

fn plural(kind: &str, n: usize) -> String {
    if n == 1 {
        kind.to_owned()
    } else {
        format!("{kind}s")
    }
}

fn join<I, T>(items: I) -> String
where
    I: IntoIterator<Item = T>,
    T: std::fmt::Display,
{
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::community::LargeCommunity;
    use model::world::ServiceRef;

    fn svc(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn peer(name: &str, endpoint: PeerEndpoint, asn: PeerAsn) -> Peer {
        Peer::with_defaults(name, 64500, asn, endpoint)
    }

    #[test]
    fn table_pads_columns_and_trims_lines() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        t.row(vec!["y".into(), String::new()]);
        assert_eq!(t.render("  "), "  A          LONGER\n  wide cell  x\n  y\n");
    }

    #[test]
    fn plan_renders_every_section() {
        let plan = NodePlan {
            node: "node-a".into(),
            l2: vec![L2Announcement {
                ip: "2001:db8::10".parse().expect("ip"),
                service: svc("web"),
                pool: "v6".into(),
                advertisements: ["l2".to_owned()].into(),
                interfaces: Interfaces::Only(["eth0".to_owned(), "eth1".to_owned()].into()),
                preference: 0,
            }],
            bgp: vec![PeerPlan {
                peer: peer(
                    "tor",
                    PeerEndpoint::Address("192.0.2.1".parse().expect("ip")),
                    PeerAsn::Fixed(64500),
                ),
                bfd: None,
                families: [Family::Ipv4].into(),
                routes: vec![Route {
                    prefix: "198.51.100.10/32".parse().expect("net"),
                    services: [svc("web")].into(),
                    communities: [Community::new(64500, 1), Community::NO_EXPORT].into(),
                    large_communities: [LargeCommunity {
                        global_admin: 64500,
                        local_data_1: 1,
                        local_data_2: 2,
                    }]
                    .into(),
                    local_pref: Some(200),
                    advertisements: ["bgp".to_owned()].into(),
                }],
            }],
            skipped: vec![Skipped {
                service: svc("db"),
                ip: Some("198.51.100.99".parse().expect("ip")),
                protocol: Some(Protocol::Layer2),
                reason: SkipReason::NoAdvertisement {
                    pool: "private".into(),
                },
            }],
            departing: None,
        };
        let text = plan_text(&plan, true);
        assert!(text.starts_with("Node node-a\n"), "{text}");
        assert!(
            text.contains("2001:db8::10  default/web  v6    eth0,eth1"),
            "{text}"
        );
        assert!(
            text.contains("tor   192.0.2.1  64500     64500    iBGP  IPv4"),
            "{text}"
        );
        assert!(
            text.contains("198.51.100.10/32  default/web  64500:1,no-export,large:64500:1:2  200"),
            "{text}"
        );
        assert!(
            text.contains("no L2Advertisement selects pool private"),
            "{text}"
        );
    }

    #[test]
    fn empty_plan_says_so() {
        let plan = NodePlan {
            node: "lonely".into(),
            ..Default::default()
        };
        let text = plan_text(&plan, false);
        assert!(text.contains("no Node object"), "{text}");
        assert!(text.contains("Layer 2: nothing to announce"), "{text}");
        assert!(text.contains("BGP: no session"), "{text}");
    }

    #[test]
    fn endpoints_show_port_and_unnumbered() {
        let mut p = peer(
            "v6",
            PeerEndpoint::Address("2001:db8::1".parse().expect("ip")),
            PeerAsn::External,
        );
        p.port = 1790;
        assert_eq!(endpoint(&p), "[2001:db8::1]:1790");
        let p = peer(
            "u",
            PeerEndpoint::Interface("eth0".into()),
            PeerAsn::Internal,
        );
        assert_eq!(endpoint(&p), "unnumbered on eth0");
    }

    #[test]
    fn every_skip_reason_reads_as_words() {
        let advs: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        let reason = SkipReason::NodeNotSelected {
            pool: "p".into(),
            advertisements: advs,
        };
        assert_eq!(
            skip_reason(Some(Protocol::Bgp), &reason),
            "BGPAdvertisements a,b select pool p but not this node (nodeSelectors)"
        );
        let reason = SkipReason::NoPeerCarriesFamily {
            family: Family::Ipv6,
            peers: ["tor".to_owned()].into(),
        };
        assert_eq!(
            skip_reason(Some(Protocol::Bgp), &reason),
            "no session to peer tor carries IPv6 (add an IPv6 peer or set dualStackAddressFamily)"
        );
    }
}
