//! `World`: one checked, immutable snapshot of everything `plan()` needs.
//!
//! Built only by [`crate::validate`], so every value here is already known to be good:
//! addresses are parsed, references resolve, community aliases are expanded. Maps are keyed
//! and sorted, so iteration order never depends on the order the inputs arrived in.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::community::{Community, LargeCommunity};
use crate::resources::EndpointsMode;
use crate::selector::Selector;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct World {
    pub pools: BTreeMap<String, Pool>,
    pub l2_advertisements: BTreeMap<String, L2Advertisement>,
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    pub peers: BTreeMap<String, Peer>,
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    pub services: BTreeMap<ServiceRef, Service>,
    pub nodes: BTreeMap<String, Node>,
    pub endpoints_mode: EndpointsModeSer,
    pub load_balancer_class: Option<String>,
}

/// [`EndpointsMode`] in a form that serializes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointsModeSer {
    #[default]
    Observed,
    AssumeReadyEverywhere,
}

impl From<EndpointsMode> for EndpointsModeSer {
    fn from(m: EndpointsMode) -> Self {
        match m {
            EndpointsMode::Observed => Self::Observed,
            EndpointsMode::AssumeReadyEverywhere => Self::AssumeReadyEverywhere,
        }
    }
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// An inclusive range of addresses of one family, as a pool entry describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AddressRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl AddressRange {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == Family::of(&self.first) && *ip >= self.first && *ip <= self.last
    }

    pub fn overlaps(&self, other: &AddressRange) -> bool {
        Family::of(&self.first) == Family::of(&other.first)
            && self.first <= other.last
            && other.first <= self.last
    }

    pub fn family(&self) -> Family {
        Family::of(&self.first)
    }
}

/// `first-last`, or the one address when both are the same.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub name: String,
    pub labels: Labels,
    /// Each entry as written, in order.
    pub ranges: Vec<AddressRange>,
    /// The same addresses as the smallest set of CIDR prefixes.
    pub cidrs: Vec<IpNet>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub service_allocation: Option<ServiceAllocation>,
}

impl Pool {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    pub fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family() == family)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceAllocation {
    pub priority: Option<i32>,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Vec<Selector>,
    pub service_selectors: Vec<Selector>,
}

/// Which pools an advertisement covers: listed by name, chosen by label, or (both empty) all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PoolSelection {
    pub names: BTreeSet<String>,
    pub selectors: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct L2Advertisement {
    pub name: String,
    pub pools: PoolSelection,
    /// Empty: every node.
    pub node_selectors: Vec<Selector>,
    /// Empty: every usable interface.
    pub interfaces: BTreeSet<String>,
    /// Empty: every service.
    pub service_selectors: Vec<Selector>,
    /// Soft node preferences: weight (1 to 100) for nodes the selector matches.
    pub preferred_nodes: Vec<(u32, Selector)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BgpAdvertisement {
    pub name: String,
    /// 32 unless set.
    pub aggregation_length: u8,
    /// 128 unless set.
    pub aggregation_length_v6: u8,
    pub local_pref: Option<u32>,
    /// Aliases already expanded.
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
    pub pools: PoolSelection,
    pub node_selectors: Vec<Selector>,
    /// Empty: every peer.
    pub peers: BTreeSet<String>,
    pub service_selectors: Vec<Selector>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerAsn {
    /// The peer must have exactly this AS.
    Fixed(u32),
    /// Whatever the peer says, as long as it equals ours (iBGP).
    Internal,
    /// Whatever the peer says, as long as it differs from ours (eBGP).
    External,
}

/// Where the TCP MD5 password comes from. Never serialized with its value.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Password {
    Inline(#[serde(skip)] String),
    Secret {
        namespace: Option<String>,
        name: String,
        #[serde(skip)]
        value: String,
    },
}

impl Password {
    pub fn value(&self) -> &str {
        match self {
            Password::Inline(v) | Password::Secret { value: v, .. } => v,
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Inline(_) => f.write_str("Inline(<redacted>)"),
            Password::Secret {
                namespace, name, ..
            } => {
                write!(
                    f,
                    "Secret({}/{name}, <redacted>)",
                    namespace.as_deref().unwrap_or("")
                )
            }
        }
    }
}

/// How the session is addressed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerEndpoint {
    Address(IpAddr),
    /// Unnumbered: the peer is found over this interface by its IPv6 link-local address.
    Interface(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub name: String,
    pub my_asn: u32,
    pub peer_asn: PeerAsn,
    /// The AS presented to this peer when it differs from `my_asn`.
    pub local_asn: Option<u32>,
    pub endpoint: PeerEndpoint,
    pub source_address: Option<IpAddr>,
    /// 179 unless set.
    pub port: u16,
    /// 90 s unless set; zero disables keepalives and the hold timer.
    #[serde(with = "secs")]
    pub hold_time: Duration,
    /// A third of the hold time unless set.
    #[serde(with = "secs")]
    pub keepalive_time: Duration,
    #[serde(with = "opt_secs")]
    pub connect_time: Option<Duration>,
    pub router_id: Option<Ipv4Addr>,
    /// Empty: every node.
    pub node_selectors: Vec<Selector>,
    pub password: Option<Password>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub ebgp_multihop: bool,
    pub vrf: Option<String>,
    pub disable_mp: bool,
    pub dual_stack_address_family: bool,
}

impl Peer {
    /// MetalLB's defaults: port 179, hold time 90 s, keepalive 30 s, nothing optional set.
    pub fn with_defaults(
        name: &str,
        my_asn: u32,
        peer_asn: PeerAsn,
        endpoint: PeerEndpoint,
    ) -> Self {
        Peer {
            name: name.to_owned(),
            my_asn,
            peer_asn,
            local_asn: None,
            endpoint,
            source_address: None,
            port: 179,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            connect_time: None,
            router_id: None,
            node_selectors: Vec::new(),
            password: None,
            bfd_profile: None,
            graceful_restart: false,
            ebgp_multihop: false,
            vrf: None,
            disable_mp: false,
            dual_stack_address_family: false,
        }
    }

    /// The AS we present on this session.
    pub fn local_as(&self) -> u32 {
        self.local_asn.unwrap_or(self.my_asn)
    }

    /// Whether the session is internal BGP (same AS on both ends).
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.local_as(),
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }

    /// The address families this session carries: the family of the session's own
    /// transport, and the other one too with `dualStackAddressFamily` (MetalLB's rule).
    /// An unnumbered session runs over IPv6 link-local and carries IPv4 with extended next hop.
    pub fn families(&self) -> BTreeSet<Family> {
        match &self.endpoint {
            PeerEndpoint::Interface(_) => [Family::Ipv4, Family::Ipv6].into(),
            PeerEndpoint::Address(_) if self.dual_stack_address_family => {
                [Family::Ipv4, Family::Ipv6].into()
            }
            PeerEndpoint::Address(ip) => [Family::of(ip)].into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval_ms: u32,
    pub transmit_interval_ms: u32,
    pub detect_multiplier: u32,
    pub echo_interval_ms: u32,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: u32,
}

/// `namespace/name` of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// What herald needs to know of a Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    pub key: ServiceRef,
    pub labels: Labels,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    pub load_balancer_class: Option<String>,
    pub external_traffic_policy: TrafficPolicy,
    /// From `status.loadBalancer.ingress[].ip`, in order, without duplicates.
    pub ips: Vec<IpAddr>,
    /// The `metallb.io/address-pool` (or `metallb.universe.tf/address-pool`) annotation.
    pub requested_pool: Option<String>,
    pub endpoints: Endpoints,
}

/// Where a service's endpoints are, per node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// Nodes with an endpoint whose `ready` condition holds.
    pub ready: BTreeSet<String>,
    /// Nodes with an endpoint whose `serving` condition holds (ready, or terminating but
    /// still serving).
    pub serving: BTreeSet<String>,
    /// File mode without EndpointSlices: assume a ready endpoint on every node.
    pub assumed_everywhere: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// Carries `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub excluded_from_load_balancers: bool,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// `spec.unschedulable` (cordoned, as before a drain): the node is going away.
    pub unschedulable: bool,
    /// `metadata.deletionTimestamp` is set, or the Node was deleted: it is going away.
    pub deleting: bool,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
