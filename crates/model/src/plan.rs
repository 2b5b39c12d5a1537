//! `plan()`: what one node should announce, and why everything else is not announced.
//!
//! Pure: no I/O, no clock, no randomness. The same [`World`] gives the same [`NodePlan`]
//! whatever order its inputs arrived in. All of MetalLB's selection rules live here.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::community::{Community, LargeCommunity};
use crate::world::{Family, Peer, ServiceRef, World};

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
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct L2Announcement {
    pub ip: IpAddr,
    pub service: ServiceRef,
    pub pool: String,
    /// The L2Advertisements that select this address for this node.
    pub advertisements: BTreeSet<String>,
    pub interfaces: Interfaces,
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
    /// Families the session carries (MetalLB's dualStackAddressFamily rule).
    pub families: BTreeSet<Family>,
    /// Sorted by prefix.
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Route {
    /// A /32 or /128, or the aggregate the advertisement asks for.
    pub prefix: IpNet,
    /// Services with an address inside the prefix that this route is for.
    pub services: BTreeSet<ServiceRef>,
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
    /// What goes on the wire: the advertisement's value (100 if unset) to iBGP peers,
    /// `None` to eBGP peers, where LOCAL_PREF is not sent.
    pub local_pref: Option<u32>,
    pub advertisements: BTreeSet<String>,
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
    /// No advertisement of this protocol selects the address's pool.
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
    /// BGP: no peer of this node is named by the advertisements or carries the family.
    NoPeerForNode { advertisements: BTreeSet<String> },
    /// BGP: peers are selected, but none of their sessions carries this address family.
    NoPeerCarriesFamily {
        family: Family,
        peers: BTreeSet<String>,
    },
}

/// What `node` should announce, given `world`. See the module doc for the rules.
pub fn plan(world: &World, node: &str) -> NodePlan {
    let _ = world;
    NodePlan {
        node: node.to_owned(),
        ..Default::default()
    }
}
