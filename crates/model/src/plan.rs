//! `plan()`: what one node should announce, and why everything else is not announced.
//!
//! Pure: no I/O, no clock, no randomness. The same [`World`] gives the same [`NodePlan`]
//! whatever order its inputs arrived in. All of MetalLB's selection rules live here.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::community::{Community, LargeCommunity};
use crate::selector::{Selector, any_matches};
use crate::world::{
    BfdProfile, BgpAdvertisement, Family, L2Advertisement, Labels, Peer, Pool, PoolSelection,
    Service, ServiceRef, TrafficPolicy, World,
};

#[cfg(test)]
mod tests;

/// What `node` should announce.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub node: String,
    /// Addresses this node may answer ARP / NDP for (subject to election), sorted by address.
    pub l2: Vec<L2Announcement>,
    /// Sessions this node should run and the routes each should carry, sorted by peer name.
    pub bgp: Vec<PeerPlan>,
    /// Every service address this node does not announce by some protocol, with the reason.
    pub skipped: Vec<Skipped>,
    /// The node is going away for good (cordoned, or being deleted): a shutdown then ends
    /// BGP sessions so routers drop its routes, rather than keeping them for a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departing: Option<Departure>,
}

/// Why the node is going away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Departure {
    /// `spec.unschedulable`: cordoned, as before a drain.
    Cordoned,
    /// `metadata.deletionTimestamp` set, or the Node deleted.
    Deleting,
}

impl fmt::Display for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Departure::Cordoned => "cordoned",
            Departure::Deleting => "being deleted",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct L2Announcement {
    pub ip: IpAddr,
    pub service: ServiceRef,
    pub pool: String,
    /// The L2Advertisements that select this address for this node.
    pub advertisements: BTreeSet<String>,
    pub interfaces: Interfaces,
    /// This node's score from those advertisements' `preferredNodeSelectors`: where a free
    /// address goes first (higher wins; 0 when none match).
    pub preference: u32,
}

/// On which interfaces to answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interfaces {
    /// Every usable interface (an advertisement without `interfaces`).
    Any,
    /// Only these (the union of the selecting advertisements' `interfaces`).
    Only(BTreeSet<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerPlan {
    pub peer: Peer,
    /// The BFDProfile the peer names, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdProfile>,
    /// Families the session carries (MetalLB's dualStackAddressFamily rule).
    pub families: BTreeSet<Family>,
    /// Sorted by prefix.
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Route {
    /// A /32 or /128, or the aggregate the advertisement asks for.
    pub prefix: IpNet,
    /// Services with an address inside the prefix that this route is for, sorted. (A sorted
    /// list rather than a set: a route usually has one, and a set's node is sized for eleven.)
    pub services: Vec<ServiceRef>,
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
    /// What goes on the wire: the advertisement's value (100 if unset) to iBGP peers,
    /// `None` to eBGP peers, where LOCAL_PREF is not sent.
    pub local_pref: Option<u32>,
    /// Sorted.
    pub advertisements: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Layer2,
    Bgp,
}

/// A service address (or a whole service) this node does not announce, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skipped {
    pub service: ServiceRef,
    /// `None` when the reason concerns the whole service (e.g. not a LoadBalancer).
    pub ip: Option<IpAddr>,
    /// `None` when the reason holds for every protocol.
    pub protocol: Option<Protocol>,
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// `spec.type` is not LoadBalancer.
    NotLoadBalancer,
    /// `spec.loadBalancerClass` is not the one herald serves.
    OtherLoadBalancerClass {
        class: Option<String>,
        ours: Option<String>,
    },
    /// herald cannot use the Service, or this node's Node object: an ingress address it
    /// cannot parse, a malformed annotation, an object it could not read. Each problem is
    /// also a warning (and an Event on the object in Kubernetes mode).
    Unusable { problems: Vec<String> },
    /// No address in `status.loadBalancer.ingress` yet.
    NoAddress,
    /// The address is in no IPAddressPool.
    NotInAnyPool,
    /// The node carries `node.kubernetes.io/exclude-from-external-load-balancers`.
    NodeExcluded,
    /// The node's `NetworkUnavailable` condition is True.
    NodeNetworkUnavailable,
    /// externalTrafficPolicy Cluster and no serving endpoint anywhere.
    NoServingEndpoint,
    /// externalTrafficPolicy Local and no ready or serving endpoint on this node.
    NoLocalEndpoint,
    /// No L2Advertisement and no BGPAdvertisement selects the address's pool (always with
    /// `protocol: None`: a pool that only one protocol's advertisements select is simply not
    /// announced by the other, which is no reason to report).
    NoAdvertisement { pool: String },
    /// Advertisements select the pool, but none selects this node.
    NodeNotSelected {
        pool: String,
        advertisements: BTreeSet<String>,
    },
    /// Advertisements select the pool and node, but none selects this service.
    ServiceNotSelected {
        pool: String,
        advertisements: BTreeSet<String>,
    },
    /// BGP: advertisements select the address, but none of them targets a peer of this node
    /// (the node matches no BGPPeer's `nodeSelectors`, or `peers` names only other peers).
    NoPeerForNode { advertisements: BTreeSet<String> },
    /// BGP: peers are selected, but none of their sessions carries this address family.
    NoPeerCarriesFamily {
        family: Family,
        peers: BTreeSet<String>,
    },
}

/// LOCAL_PREF sent to iBGP peers when no advertisement sets one (the BGP default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The label the kubelet sets on every node to its name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// What `node` should announce, given `world`.
///
/// Each service address is checked in MetalLB's order: the service (type, class, addresses),
/// the pool holding the address, the node (exclusion label, NetworkUnavailable), the
/// endpoints (externalTrafficPolicy), and then per protocol the advertisements that select
/// pool, node and service; for BGP also the peers of this node that they target and whose
/// sessions carry the address family. The first rule that fails is the reason recorded in
/// [`NodePlan::skipped`]; reasons before the advertisements hold for both protocols. A
/// protocol with no advertisement for the address's pool is not in use for it and records
/// nothing, unless neither protocol has one.
pub fn plan(world: &World, node: &str) -> NodePlan {
    // A node the World does not describe (file mode without a Node document) still has the
    // label the kubelet gives every node, so hostname selectors work the same in both modes.
    let implied_labels = Labels::from([(HOSTNAME_LABEL.to_owned(), node.to_owned())]);
    let this_node = world.nodes.get(node);
    let node_labels = this_node.map_or(&implied_labels, |n| &n.labels);
    let node_gate = this_node.and_then(|n| {
        if !n.problems.is_empty() {
            Some(SkipReason::Unusable {
                problems: n.problems.clone(),
            })
        } else if n.excluded_from_load_balancers {
            Some(SkipReason::NodeExcluded)
        } else if n.network_unavailable {
            Some(SkipReason::NodeNetworkUnavailable)
        } else {
            None
        }
    });
    let peers: Vec<&Peer> = world
        .peers
        .values()
        .filter(|p| any_matches(&p.node_selectors, node_labels))
        .collect();

    let mut l2 = Vec::new();
    let mut skipped = Vec::new();
    let mut routes = BTreeMap::new();
    for svc in world.services.values() {
        let mut skip = |ip, protocol, reason| {
            skipped.push(Skipped {
                service: svc.key.clone(),
                ip,
                protocol,
                reason,
            })
        };
        if let Some(reason) = service_gate(world, svc) {
            skip(None, None, reason);
            continue;
        }
        for &ip in &svc.ips {
            let Some(pool) = world.pools.values().find(|p| p.contains(&ip)) else {
                skip(Some(ip), None, SkipReason::NotInAnyPool);
                continue;
            };
            if let Some(reason) = node_gate.clone().or_else(|| endpoint_gate(svc, node)) {
                skip(Some(ip), None, reason);
                continue;
            }
            let l2_ads = selecting(world.l2_advertisements.values(), pool, node_labels, svc);
            let bgp_ads = selecting(world.bgp_advertisements.values(), pool, node_labels, svc);
            // A pool is announced by the protocols whose advertisements select it; only when
            // neither does is that a reason worth reporting.
            let unused = |r: Option<&_>| matches!(r, Some(SkipReason::NoAdvertisement { .. }));
            if unused(l2_ads.as_ref().err()) && unused(bgp_ads.as_ref().err()) {
                let pool = pool.name.clone();
                skip(Some(ip), None, SkipReason::NoAdvertisement { pool });
                continue;
            }
            match l2_ads {
                Ok(ads) => l2.push(L2Announcement {
                    ip,
                    service: svc.key.clone(),
                    pool: pool.name.clone(),
                    advertisements: ads.iter().map(|a| a.name.clone()).collect(),
                    interfaces: interfaces(&ads),
                    preference: preference(&ads, node_labels),
                }),
                Err(SkipReason::NoAdvertisement { .. }) => {}
                Err(reason) => skip(Some(ip), Some(Protocol::Layer2), reason),
            }
            match bgp_ads.and_then(|ads| add_routes(&mut routes, ip, svc, &ads, &peers)) {
                Ok(()) | Err(SkipReason::NoAdvertisement { .. }) => {}
                Err(reason) => skip(Some(ip), Some(Protocol::Bgp), reason),
            }
        }
    }

    l2.sort();
    l2.dedup();
    skipped.sort();
    skipped.dedup();
    // Kept until the next plan: without the room left from growing (a Skipped is large).
    l2.shrink_to_fit();
    skipped.shrink_to_fit();
    let mut bgp: Vec<PeerPlan> = peers
        .iter()
        .map(|peer| PeerPlan {
            peer: canonical(peer),
            bfd: peer
                .bfd_profile
                .as_ref()
                .and_then(|name| world.bfd_profiles.get(name))
                .cloned(),
            families: peer.families(),
            routes: routes
                .remove(peer.name.as_str())
                .unwrap_or_default()
                .into_values()
                .map(|mut route| {
                    // Only what is configured was merged; the wire value is decided per session.
                    route.local_pref = peer
                        .is_ibgp()
                        .then(|| route.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
                    route
                })
                .collect(),
        })
        .collect();
    bgp.sort_by(|a, b| a.peer.name.cmp(&b.peer.name));
    NodePlan {
        node: node.to_owned(),
        l2,
        bgp,
        skipped,
        departing: this_node.and_then(|n| {
            if n.deleting {
                Some(Departure::Deleting)
            } else if n.unschedulable {
                Some(Departure::Cordoned)
            } else {
                None
            }
        }),
    }
}

/// Whether the service is one herald announces at all; reasons here concern every address.
fn service_gate(world: &World, svc: &Service) -> Option<SkipReason> {
    if !svc.is_load_balancer {
        Some(SkipReason::NotLoadBalancer)
    } else if svc.load_balancer_class != world.load_balancer_class {
        Some(SkipReason::OtherLoadBalancerClass {
            class: svc.load_balancer_class.clone(),
            ours: world.load_balancer_class.clone(),
        })
    } else if !svc.problems.is_empty() {
        Some(SkipReason::Unusable {
            problems: svc.problems.clone(),
        })
    } else if svc.ips.is_empty() {
        Some(SkipReason::NoAddress)
    } else {
        None
    }
}

/// externalTrafficPolicy: Local needs an endpoint on this node, Cluster one anywhere.
fn endpoint_gate(svc: &Service, node: &str) -> Option<SkipReason> {
    let e = &svc.endpoints;
    if e.assumed_everywhere {
        return None;
    }
    match svc.external_traffic_policy {
        TrafficPolicy::Local if !e.ready.contains(node) && !e.serving.contains(node) => {
            Some(SkipReason::NoLocalEndpoint)
        }
        TrafficPolicy::Cluster if e.ready.is_empty() && e.serving.is_empty() => {
            Some(SkipReason::NoServingEndpoint)
        }
        _ => None,
    }
}

/// What L2Advertisements and BGPAdvertisements have in common: whom they select.
trait Advertisement {
    fn name(&self) -> &str;
    fn pools(&self) -> &PoolSelection;
    fn node_selectors(&self) -> &[Selector];
    fn service_selectors(&self) -> &[Selector];
}

macro_rules! impl_advertisement {
    ($($t:ty),*) => {$(
        impl Advertisement for $t {
            fn name(&self) -> &str { &self.name }
            fn pools(&self) -> &PoolSelection { &self.pools }
            fn node_selectors(&self) -> &[Selector] { &self.node_selectors }
            fn service_selectors(&self) -> &[Selector] { &self.service_selectors }
        }
    )*};
}
impl_advertisement!(L2Advertisement, BgpAdvertisement);

/// MetalLB's pool rule: listed by name or matched by a selector; neither given means all pools.
pub fn selects_pool(sel: &PoolSelection, pool: &Pool) -> bool {
    (sel.names.is_empty() && sel.selectors.is_empty())
        || sel.names.contains(&pool.name)
        || sel.selectors.iter().any(|s| s.matches(&pool.labels))
}

/// The advertisements that select `pool`, then the node, then the service; or, when none is
/// left, the stage where the last ones dropped out.
fn selecting<'a, A: Advertisement>(
    ads: impl IntoIterator<Item = &'a A>,
    pool: &Pool,
    node_labels: &Labels,
    svc: &Service,
) -> Result<Vec<&'a A>, SkipReason> {
    let names = |ads: &[&A]| ads.iter().map(|a| a.name().to_owned()).collect();
    let for_pool: Vec<&A> = ads
        .into_iter()
        .filter(|a| selects_pool(a.pools(), pool))
        .collect();
    if for_pool.is_empty() {
        return Err(SkipReason::NoAdvertisement {
            pool: pool.name.clone(),
        });
    }
    let for_node: Vec<&A> = for_pool
        .iter()
        .copied()
        .filter(|a| any_matches(a.node_selectors(), node_labels))
        .collect();
    if for_node.is_empty() {
        return Err(SkipReason::NodeNotSelected {
            pool: pool.name.clone(),
            advertisements: names(&for_pool),
        });
    }
    let for_service: Vec<&A> = for_node
        .iter()
        .copied()
        .filter(|a| any_matches(a.service_selectors(), &svc.labels))
        .collect();
    if for_service.is_empty() {
        return Err(SkipReason::ServiceNotSelected {
            pool: pool.name.clone(),
            advertisements: names(&for_node),
        });
    }
    Ok(for_service)
}

/// An advertisement without `interfaces` allows every interface, so it wins over any list.
fn interfaces(ads: &[&L2Advertisement]) -> Interfaces {
    if ads.iter().any(|a| a.interfaces.is_empty()) {
        Interfaces::Any
    } else {
        Interfaces::Only(
            ads.iter()
                .flat_map(|a| a.interfaces.iter().cloned())
                .collect(),
        )
    }
}

/// MetalLB's preference score: each advertisement that selects the pool, this node and the
/// service adds the weights of its preferences that match this node.
fn preference(ads: &[&L2Advertisement], node_labels: &Labels) -> u32 {
    ads.iter()
        .flat_map(|a| &a.preferred_nodes)
        .filter(|(_, s)| s.matches(node_labels))
        .map(|(w, _)| *w)
        .sum()
}

/// The prefix `ad` announces for `ip`: the address masked to the aggregation length.
fn prefix(ip: IpAddr, ad: &BgpAdvertisement) -> IpNet {
    let len = match ip {
        IpAddr::V4(_) => ad.aggregation_length,
        IpAddr::V6(_) => ad.aggregation_length_v6,
    };
    // Validation keeps lengths within the family; a host route is the safe reading otherwise.
    IpNet::new(ip, len).map_or_else(|_| IpNet::from(ip), |net| net.trunc())
}

/// Merges the routes `ads` give `ip` into `routes`, keyed by peer, then prefix. `local_pref`
/// holds the highest configured value only; [`plan`] turns it into the wire value per peer.
fn add_routes<'a>(
    routes: &mut BTreeMap<&'a str, BTreeMap<IpNet, Route>>,
    ip: IpAddr,
    svc: &Service,
    ads: &[&BgpAdvertisement],
    peers: &[&'a Peer],
) -> Result<(), SkipReason> {
    let family = Family::of(&ip);
    let mut targeted = BTreeSet::new();
    let mut carried = false;
    for ad in ads {
        let prefix = prefix(ip, ad);
        for peer in peers
            .iter()
            .filter(|p| ad.peers.is_empty() || ad.peers.contains(&p.name))
        {
            targeted.insert(peer.name.clone());
            if !peer.families().contains(&family) {
                continue;
            }
            carried = true;
            let route = routes
                .entry(peer.name.as_str())
                .or_default()
                .entry(prefix)
                .or_insert_with(|| Route {
                    prefix,
                    services: Vec::new(),
                    communities: BTreeSet::new(),
                    large_communities: BTreeSet::new(),
                    local_pref: None,
                    advertisements: Vec::new(),
                });
            insert_sorted(&mut route.services, &svc.key);
            route.communities.extend(&ad.communities);
            route.large_communities.extend(&ad.large_communities);
            route.local_pref = route.local_pref.max(ad.local_pref);
            insert_sorted(&mut route.advertisements, &ad.name);
        }
    }
    if targeted.is_empty() {
        Err(SkipReason::NoPeerForNode {
            advertisements: ads.iter().map(|a| a.name.clone()).collect(),
        })
    } else if !carried {
        Err(SkipReason::NoPeerCarriesFamily {
            family,
            peers: targeted,
        })
    } else {
        Ok(())
    }
}

/// Adds `item` to the sorted `list` unless it is there.
fn insert_sorted<T: Ord + Clone>(list: &mut Vec<T>, item: &T) {
    if let Err(at) = list.binary_search(item) {
        list.insert(at, item.clone());
    }
}

/// The peer as the plan reports it, with selector lists in a fixed order so the plan does not
/// depend on the order they were written in.
fn canonical(peer: &Peer) -> Peer {
    let mut peer = peer.clone();
    for s in &mut peer.node_selectors {
        s.requirements.sort();
        s.requirements.dedup();
    }
    peer.node_selectors.sort();
    peer.node_selectors.dedup();
    peer
}

/// Counts of what a [`NodePlan`] holds, for logs and `herald check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Distinct addresses answered for by L2 (an address shared by two services counts once).
    pub l2_addresses: usize,
    /// BGP sessions this node runs.
    pub bgp_peers: usize,
    /// Routes over all sessions (a prefix sent to two peers counts twice).
    pub bgp_routes: usize,
    /// Distinct prefixes announced to at least one peer.
    pub bgp_prefixes: usize,
    /// Entries in [`NodePlan::skipped`].
    pub skipped: usize,
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} L2 addresses, {} BGP peers, {} routes ({} prefixes), {} skipped",
            self.l2_addresses, self.bgp_peers, self.bgp_routes, self.bgp_prefixes, self.skipped
        )
    }
}

impl NodePlan {
    /// Whether the node announces nothing by either protocol. BGP sessions may still be
    /// planned: a session without routes keeps running.
    pub fn is_empty(&self) -> bool {
        self.l2.is_empty() && self.bgp.iter().all(|p| p.routes.is_empty())
    }

    pub fn summary(&self) -> PlanSummary {
        let l2: BTreeSet<_> = self.l2.iter().map(|a| a.ip).collect();
        let prefixes: BTreeSet<_> = self.routes().map(|(_, r)| r.prefix).collect();
        PlanSummary {
            l2_addresses: l2.len(),
            bgp_peers: self.bgp.len(),
            bgp_routes: self.bgp.iter().map(|p| p.routes.len()).sum(),
            bgp_prefixes: prefixes.len(),
            skipped: self.skipped.len(),
        }
    }

    /// Every route with the peer it goes to, by peer name then prefix.
    pub fn routes(&self) -> impl Iterator<Item = (&Peer, &Route)> {
        self.bgp
            .iter()
            .flat_map(|p| p.routes.iter().map(move |r| (&p.peer, r)))
    }

    /// Why `ip` of `service` is not announced (each protocol's reason, or one for both).
    pub fn why_not<'a>(
        &'a self,
        service: &'a ServiceRef,
        ip: IpAddr,
    ) -> impl Iterator<Item = &'a Skipped> {
        self.skipped
            .iter()
            .filter(move |s| s.service == *service && s.ip.is_none_or(|i| i == ip))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Layer2 => "L2",
            Protocol::Bgp => "BGP",
        })
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        match self {
            SkipReason::NotLoadBalancer => f.write_str("not a LoadBalancer service"),
            SkipReason::OtherLoadBalancerClass { class, ours } => write!(
                f,
                "loadBalancerClass {} is not ours ({})",
                class.as_deref().unwrap_or("<none>"),
                ours.as_deref().unwrap_or("<none>")
            ),
            SkipReason::Unusable { problems } => {
                write!(f, "herald cannot use it: {}", problems.join("; "))
            }
            SkipReason::NoAddress => f.write_str("no address assigned yet"),
            SkipReason::NotInAnyPool => f.write_str("address is in no IPAddressPool"),
            SkipReason::NodeExcluded => f.write_str(
                "node is labelled node.kubernetes.io/exclude-from-external-load-balancers",
            ),
            SkipReason::NodeNetworkUnavailable => f.write_str("node is NetworkUnavailable"),
            SkipReason::NoServingEndpoint => {
                f.write_str("externalTrafficPolicy Cluster and no serving endpoint on any node")
            }
            SkipReason::NoLocalEndpoint => {
                f.write_str("externalTrafficPolicy Local and no ready endpoint on this node")
            }
            SkipReason::NoAdvertisement { pool } => {
                write!(f, "no advertisement selects pool {pool}")
            }
            SkipReason::NodeNotSelected {
                pool,
                advertisements,
            } => write!(
                f,
                "advertisements for pool {pool} ({}) do not select this node",
                list(advertisements)
            ),
            SkipReason::ServiceNotSelected {
                pool,
                advertisements,
            } => write!(
                f,
                "advertisements for pool {pool} and this node ({}) do not select the service",
                list(advertisements)
            ),
            SkipReason::NoPeerForNode { advertisements } => write!(
                f,
                "advertisements ({}) target no BGP peer of this node",
                list(advertisements)
            ),
            SkipReason::NoPeerCarriesFamily { family, peers } => write!(
                f,
                "no session to the selected peers ({}) carries {family}",
                list(peers)
            ),
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.service)?;
        if let Some(ip) = self.ip {
            write!(f, " {ip}")?;
        }
        if let Some(p) = self.protocol {
            write!(f, " ({p})")?;
        }
        write!(f, ": {}", self.reason)
    }
}
