//! The Adj-RIB-Out of one peer (RFC 4271 §3.2): what the peer has been sent, and the
//! UPDATEs that bring it from there to what is wanted.
//!
//! Pure: no I/O, no clock. The wanted routes carry only what the caller chooses
//! ([`RouteAttrs`]); everything that follows from the session (AS_PATH, LOCAL_PREF only to
//! iBGP, the next hop of the prefix's family, extended next hop) is decided here by an
//! [`Export`] built from what the session negotiated. Prefixes that share one attribute set
//! are packed together, so each UPDATE carries as many NLRI as fit.

use crate::wire::{
    self, AsPath, Community, Family, LargeCommunity, NextHop, Options, Origin, PathAttribute,
    Prefix, UpdateRepr,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What the caller attaches to a route; the rest follows from the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// Sent to iBGP peers only; 100 when unset (RFC 4271 §5.1.5 requires the attribute
    /// there).
    pub local_pref: Option<u32>,
}

/// The LOCAL_PREF sent to iBGP peers when the route sets none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Why a wanted route is not sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Withheld {
    /// The peer did not offer the prefix's family.
    FamilyNotNegotiated(Family),
    /// An IPv4 prefix on an IPv6 session needs RFC 8950 extended next hop, which the
    /// session did not negotiate.
    ExtendedNextHopNotNegotiated,
    /// The session has no local address of the prefix's family to use as next hop (an
    /// IPv6 prefix on an IPv4 session over a link without IPv6).
    NoNextHop(Family),
    /// The attributes do not fit in one message.
    AttributesTooLong,
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Withheld::FamilyNotNegotiated(family) => {
                write!(f, "family {family} not negotiated with the peer")
            }
            Withheld::ExtendedNextHopNotNegotiated => f.write_str(
                "IPv4 prefix on an IPv6 session needs extended next hop (RFC 8950), not negotiated",
            ),
            Withheld::NoNextHop(family) => {
                write!(
                    f,
                    "no local address of family {family} on this session for the next hop"
                )
            }
            Withheld::AttributesTooLong => f.write_str("attributes do not fit in one message"),
        }
    }
}

/// How routes go out on one Established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub local_as: u32,
    /// iBGP: empty AS_PATH, LOCAL_PREF.
    pub internal: bool,
    /// Negotiated families.
    pub families: Vec<Family>,
    /// RFC 8950 negotiated for IPv4 unicast over an IPv6 next hop.
    pub ipv4_over_ipv6: bool,
    /// The session's local IPv4 address: its own on an IPv4 session, else one of the
    /// interface's. With none, IPv4 routes need extended next hop.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// The session's global IPv6 address (its own, or the interface's on an IPv4 session),
    /// and the link-local one when the peer is on-link.
    pub next_hop_v6: Option<(Ipv6Addr, Option<Ipv6Addr>)>,
    /// Add GRACEFUL_SHUTDOWN (RFC 8326) to every route.
    pub graceful_shutdown: bool,
    pub options: Options,
}

/// What one route is sent with: the shared attributes (sorted by type) and the next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutRoute {
    pub attributes: Vec<PathAttribute>,
    pub next_hop: NextHop,
}

impl Export {
    /// The attributes and next hop `prefix` goes out with, or why it does not.
    pub fn route(&self, prefix: &Prefix, attrs: &RouteAttrs) -> Result<OutRoute, Withheld> {
        let next_hop = self.next_hop(prefix)?;
        let mut attributes = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(if self.internal {
                AsPath::default()
            } else {
                AsPath::origin(self.local_as)
            }),
        ];
        if self.internal {
            attributes.push(PathAttribute::LocalPref(
                attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            ));
        }
        let mut communities = attrs.communities.clone();
        if self.graceful_shutdown {
            communities.push(Community::GRACEFUL_SHUTDOWN);
        }
        communities.sort_unstable();
        communities.dedup();
        if !communities.is_empty() {
            attributes.push(PathAttribute::Communities(communities));
        }
        let mut large = attrs.large_communities.clone();
        large.sort_unstable();
        large.dedup();
        if !large.is_empty() {
            attributes.push(PathAttribute::LargeCommunities(large));
        }
        attributes.sort_by_key(PathAttribute::type_code);
        Ok(OutRoute {
            attributes,
            next_hop,
        })
    }

    fn next_hop(&self, prefix: &Prefix) -> Result<NextHop, Withheld> {
        let family = family_of(prefix);
        if !self.families.contains(&family) {
            return Err(Withheld::FamilyNotNegotiated(family));
        }
        let v6 = || {
            self.next_hop_v6
                .map(|(global, link_local)| NextHop::V6 { global, link_local })
        };
        if prefix.is_ipv4() {
            if let Some(v4) = self.next_hop_v4 {
                Ok(NextHop::V4(v4))
            } else if self.ipv4_over_ipv6 {
                v6().ok_or(Withheld::NoNextHop(family))
            } else {
                Err(Withheld::ExtendedNextHopNotNegotiated)
            }
        } else {
            v6().ok_or(Withheld::NoNextHop(family))
        }
    }
}

pub fn family_of(prefix: &Prefix) -> Family {
    if prefix.is_ipv4() {
        Family::IPV4_UNICAST
    } else {
        Family::IPV6_UNICAST
    }
}

/// The outcome of bringing a peer up to date.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sync {
    /// Withdrawals first, then announcements.
    pub updates: Vec<UpdateRepr>,
    pub announced: usize,
    pub withdrawn: usize,
    /// Wanted routes not sent, and why.
    pub withheld: BTreeMap<Prefix, Withheld>,
}

/// What one peer has been sent.
#[derive(Debug, Default, Clone)]
pub struct AdjRibOut {
    sent: BTreeMap<Prefix, Arc<OutRoute>>,
}

impl AdjRibOut {
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// The peer holds nothing from us any more (the session went down).
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// Routes the peer holds from us.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    pub fn contains(&self, prefix: &Prefix) -> bool {
        self.sent.contains_key(prefix)
    }

    /// The UPDATEs that take the peer from what it was sent to `wanted`, recorded as sent.
    pub fn sync(&mut self, wanted: &BTreeMap<Prefix, RouteAttrs>, export: &Export) -> Sync {
        let mut out = Sync::default();
        // One OutRoute per distinct attribute set and family, shared by its prefixes, so
        // grouping and comparing is by pointer for the common case.
        let mut memo: HashMap<(bool, &RouteAttrs), Result<Arc<OutRoute>, Withheld>> =
            HashMap::new();
        let mut groups: HashMap<*const OutRoute, (Arc<OutRoute>, Vec<Prefix>)> = HashMap::new();
        for (prefix, attrs) in wanted {
            let route = memo
                .entry((prefix.is_ipv4(), attrs))
                .or_insert_with(|| export.route(prefix, attrs).map(Arc::new));
            match route {
                Ok(route) => {
                    let unchanged = self
                        .sent
                        .get(prefix)
                        .is_some_and(|s| Arc::ptr_eq(s, route) || **s == **route);
                    if !unchanged {
                        groups
                            .entry(Arc::as_ptr(route))
                            .or_insert_with(|| (route.clone(), Vec::new()))
                            .1
                            .push(*prefix);
                    }
                }
                Err(why) => {
                    out.withheld.insert(*prefix, *why);
                }
            }
        }

        let gone: Vec<Prefix> = self
            .sent
            .keys()
            .filter(|p| !wanted.contains_key(p) || out.withheld.contains_key(p))
            .copied()
            .collect();
        if !gone.is_empty() {
            for p in &gone {
                self.sent.remove(p);
            }
            out.withdrawn = gone.len();
            out.updates.extend(wire::withdraw(&gone, &export.options));
        }

        let mut groups: Vec<(Arc<OutRoute>, Vec<Prefix>)> = groups.into_values().collect();
        groups.sort_by_key(|(_, prefixes)| prefixes[0]);
        for (route, prefixes) in groups {
            match wire::announce(
                &prefixes,
                &route.attributes,
                &route.next_hop,
                &export.options,
            ) {
                Ok(updates) => {
                    out.updates.extend(updates);
                    out.announced += prefixes.len();
                    for p in prefixes {
                        self.sent.insert(p, route.clone());
                    }
                }
                Err(_) => {
                    // A previous version of the route may still be with the peer.
                    let stale: Vec<Prefix> = prefixes
                        .iter()
                        .filter(|p| self.sent.remove(p).is_some())
                        .copied()
                        .collect();
                    out.withdrawn += stale.len();
                    out.updates.extend(wire::withdraw(&stale, &export.options));
                    for p in prefixes {
                        out.withheld.insert(p, Withheld::AttributesTooLong);
                    }
                }
            }
        }
        out
    }

    /// Every route of `family` the peer holds from us, again (a ROUTE-REFRESH answer).
    pub fn refresh(&self, family: Family, options: &Options) -> Vec<UpdateRepr> {
        let mut groups: HashMap<*const OutRoute, (Arc<OutRoute>, Vec<Prefix>)> = HashMap::new();
        for (prefix, route) in self.sent.iter().filter(|(p, _)| family_of(p) == family) {
            groups
                .entry(Arc::as_ptr(route))
                .or_insert_with(|| (route.clone(), Vec::new()))
                .1
                .push(*prefix);
        }
        let mut groups: Vec<_> = groups.into_values().collect();
        groups.sort_by_key(|(_, prefixes)| prefixes[0]);
        groups
            .into_iter()
            .filter_map(|(route, prefixes)| {
                wire::announce(&prefixes, &route.attributes, &route.next_hop, options).ok()
            })
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;
    use std::net::IpAddr;

    fn export(internal: bool) -> Export {
        Export {
            local_as: 64512,
            internal,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            ipv4_over_ipv6: false,
            next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            next_hop_v6: None,
            graceful_shutdown: false,
            options: Options::FOUR_OCTET_AS,
        }
    }

    fn v4(i: u32) -> Prefix {
        Prefix::host(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
    }

    fn v6(i: u128) -> Prefix {
        Prefix::host(IpAddr::V6(Ipv6Addr::from((0x2001_0db8_0100u128 << 80) + i)))
    }

    fn attrs(c: u16) -> RouteAttrs {
        RouteAttrs {
            communities: vec![Community::new(64512, c)],
            large_communities: vec![LargeCommunity {
                global_administrator: 4_200_000_001,
                local_data_1: 1,
                local_data_2: u32::from(c),
            }],
            local_pref: None,
        }
    }

    fn decoded(updates: &[UpdateRepr]) -> Vec<UpdateRepr> {
        updates
            .iter()
            .map(|u| {
                let opts = Options::FOUR_OCTET_AS;
                let bytes = Message::Update(u.clone()).to_bytes(&opts).unwrap();
                assert!(bytes.len() <= 4096);
                match Message::from_bytes(&bytes, &opts).unwrap() {
                    Message::Update(u) => u,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn groups_by_attributes_and_sends_only_the_diff() {
        let mut rib = AdjRibOut::new();
        let mut wanted: BTreeMap<Prefix, RouteAttrs> =
            (0..1000).map(|i| (v4(i), attrs((i % 2) as u16))).collect();
        let s = rib.sync(&wanted, &export(false));
        // Two attribute sets of 500 /32s: one message each.
        assert_eq!(s.updates.len(), 2);
        assert_eq!(s.announced, 1000);
        let back = decoded(&s.updates);
        assert_eq!(back.iter().map(|u| u.nlri.len()).sum::<usize>(), 1000);
        assert!(
            back[0]
                .attributes
                .contains(&PathAttribute::AsPath(AsPath::origin(64512)))
        );
        // No LOCAL_PREF to eBGP.
        assert!(back[0].attributes.iter().all(|a| a.type_code() != 5));

        // Nothing changed: nothing to send.
        assert_eq!(rib.sync(&wanted, &export(false)).updates, []);

        // One route changes attributes, one goes away.
        wanted.insert(v4(0), attrs(7));
        wanted.remove(&v4(1));
        let s = rib.sync(&wanted, &export(false));
        let back = decoded(&s.updates);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].withdrawn_routes, [v4(1)]);
        assert_eq!(back[1].nlri, [v4(0)]);
        assert_eq!(rib.len(), 999);
    }

    #[test]
    fn ibgp_gets_local_pref_and_an_empty_path() {
        let mut rib = AdjRibOut::new();
        let mut a = attrs(1);
        let wanted = BTreeMap::from([(v4(1), a.clone())]);
        let u = &decoded(&rib.sync(&wanted, &export(true)).updates)[0];
        assert!(u.attributes.contains(&PathAttribute::LocalPref(100)));
        assert!(
            u.attributes
                .contains(&PathAttribute::AsPath(AsPath::default()))
        );
        a.local_pref = Some(250);
        let wanted = BTreeMap::from([(v4(1), a)]);
        let u = &decoded(&rib.sync(&wanted, &export(true)).updates)[0];
        assert!(u.attributes.contains(&PathAttribute::LocalPref(250)));
    }

    #[test]
    fn families_and_next_hops() {
        let wanted: BTreeMap<Prefix, RouteAttrs> =
            [(v4(1), attrs(1)), (v6(1), attrs(1))].into_iter().collect();
        // IPv4 session: the IPv6 prefix has no next hop.
        let mut rib = AdjRibOut::new();
        let s = rib.sync(&wanted, &export(false));
        assert_eq!(
            s.withheld,
            BTreeMap::from([(v6(1), Withheld::NoNextHop(Family::IPV6_UNICAST))])
        );
        assert_eq!(rib.len(), 1);

        // IPv6 session without extended next hop: the IPv4 prefix stays back.
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut e = export(false);
        e.next_hop_v4 = None;
        e.next_hop_v6 = Some((global, Some(ll)));
        let mut rib = AdjRibOut::new();
        let s = rib.sync(&wanted, &e);
        assert_eq!(
            s.withheld,
            BTreeMap::from([(v4(1), Withheld::ExtendedNextHopNotNegotiated)])
        );
        let back = decoded(&s.updates);
        let mp = back[0]
            .attributes
            .iter()
            .find_map(|a| match a {
                PathAttribute::MpReachNlri(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            mp.next_hop,
            NextHop::V6 {
                global,
                link_local: Some(ll)
            }
        );

        // With it, both go, the IPv4 one in MP_REACH_NLRI.
        e.ipv4_over_ipv6 = true;
        let mut rib = AdjRibOut::new();
        let s = rib.sync(&wanted, &e);
        assert!(s.withheld.is_empty());
        assert_eq!(rib.len(), 2);

        // A family the peer did not offer.
        e.families = vec![Family::IPV6_UNICAST];
        let mut rib = AdjRibOut::new();
        let s = rib.sync(&wanted, &e);
        assert_eq!(
            s.withheld.get(&v4(1)),
            Some(&Withheld::FamilyNotNegotiated(Family::IPV4_UNICAST))
        );
    }

    #[test]
    fn graceful_shutdown_reannounces_everything_and_refresh_resends() {
        let mut rib = AdjRibOut::new();
        let wanted: BTreeMap<Prefix, RouteAttrs> = (0..10).map(|i| (v4(i), attrs(1))).collect();
        rib.sync(&wanted, &export(false));
        let mut e = export(false);
        e.graceful_shutdown = true;
        let s = rib.sync(&wanted, &e);
        assert_eq!(s.announced, 10);
        let back = decoded(&s.updates);
        assert!(back[0].attributes.iter().any(|a| matches!(
            a,
            PathAttribute::Communities(c) if c.contains(&Community::GRACEFUL_SHUTDOWN)
        )));
        let again = rib.refresh(Family::IPV4_UNICAST, &Options::FOUR_OCTET_AS);
        assert_eq!(decoded(&again)[0].nlri.len(), 10);
        assert_eq!(
            rib.refresh(Family::IPV6_UNICAST, &Options::FOUR_OCTET_AS),
            []
        );
    }

    #[test]
    fn many_routes_pack_to_the_limit() {
        let mut rib = AdjRibOut::new();
        let wanted: BTreeMap<Prefix, RouteAttrs> = (0..10_000)
            .map(|i| (v4(i), RouteAttrs::default()))
            .collect();
        let s = rib.sync(&wanted, &export(false));
        // 19 + 4 + ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 = 43 octets, then 5 a /32.
        assert_eq!(s.updates.len(), 10_000usize.div_ceil((4096 - 43) / 5));
        let gone = BTreeMap::new();
        let s = rib.sync(&gone, &export(false));
        assert_eq!(s.withdrawn, 10_000);
        assert_eq!(s.updates.len(), 10_000usize.div_ceil((4096 - 23) / 5));
        assert!(rib.is_empty());
    }
}
