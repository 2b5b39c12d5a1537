//! The `metallb.io` custom resources, field for field as MetalLB defines them.
//!
//! These are the wire types: what a user writes and what the API server stores. They carry
//! no defaults beyond MetalLB's own and no validation; [`crate::validate`] turns them into the
//! checked forms in [`crate::world`].

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group every MetalLB kind lives in.
pub const GROUP: &str = "metallb.io";
pub const GROUP_V1BETA1: &str = "metallb.io/v1beta1";
pub const GROUP_V1BETA2: &str = "metallb.io/v1beta2";

pub mod v1beta1 {
    use super::*;

    /// A set of addresses that services may be given, and so that herald may announce.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "IPAddressPool",
        plural = "ipaddresspools",
        namespaced,
        status = "IPAddressPoolStatus",
        printcolumn = r#"{"name":"Auto Assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
        printcolumn = r#"{"name":"Avoid Buggy IPs","type":"boolean","jsonPath":".spec.avoidBuggyIPs"}"#,
        printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct IPAddressPoolSpec {
        /// CIDR prefixes (`192.0.2.0/24`, `2001:db8::/64`) or inclusive ranges
        /// (`192.0.2.10-192.0.2.20`).
        pub addresses: Vec<String>,
        /// Whether the controller may hand out addresses from this pool on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub auto_assign: Option<bool>,
        /// Keep addresses ending in .0 and .255 out of the pool.
        #[serde(
            default,
            rename = "avoidBuggyIPs",
            skip_serializing_if = "Option::is_none"
        )]
        pub avoid_buggy_ips: Option<bool>,
        /// Which services may take addresses from this pool, and with what priority.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub service_allocation: Option<ServiceAllocation>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ServiceAllocation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub namespaces: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub namespace_selectors: Vec<LabelSelector>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub service_selectors: Vec<LabelSelector>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct IPAddressPoolStatus {
        #[serde(
            default,
            rename = "assignedIPv4",
            skip_serializing_if = "Option::is_none"
        )]
        pub assigned_ipv4: Option<i64>,
        #[serde(
            default,
            rename = "assignedIPv6",
            skip_serializing_if = "Option::is_none"
        )]
        pub assigned_ipv6: Option<i64>,
        #[serde(
            default,
            rename = "availableIPv4",
            skip_serializing_if = "Option::is_none"
        )]
        pub available_ipv4: Option<i64>,
        #[serde(
            default,
            rename = "availableIPv6",
            skip_serializing_if = "Option::is_none"
        )]
        pub available_ipv6: Option<i64>,
    }

    /// Announce the selected pools' addresses by ARP / NDP from one elected node.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "L2Advertisement",
        plural = "l2advertisements",
        namespaced,
        printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
        printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct L2AdvertisementSpec {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ip_address_pools: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ip_address_pool_selectors: Vec<LabelSelector>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<LabelSelector>,
        /// Interfaces to answer on; empty means every usable interface.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub interfaces: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub service_selectors: Vec<LabelSelector>,
        /// Soft preferences for the node that answers (MetalLB's main branch): among the nodes
        /// this advertisement selects, those matching a preference's selector score its
        /// weight, summed over preferences and advertisements; a free address goes to the
        /// highest score. herald keeps an address where it is when a preferred node returns.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub preferred_node_selectors: Vec<PreferredNodeSelector>,
    }

    /// A weighted soft node preference, as Kubernetes' PreferredSchedulingTerm.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PreferredNodeSelector {
        /// 1 to 100.
        #[schemars(range(min = 1, max = 100))]
        pub weight: i32,
        pub preference: LabelSelector,
    }

    /// Announce the selected pools' addresses to BGP peers.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "BGPAdvertisement",
        plural = "bgpadvertisements",
        namespaced,
        printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
        printcolumn = r#"{"name":"Peers","type":"string","jsonPath":".spec.peers"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPAdvertisementSpec {
        /// Announce the /N holding each address instead of the /32 (default 32).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub aggregation_length: Option<i32>,
        /// Announce the /N holding each address instead of the /128 (default 128).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub aggregation_length_v6: Option<i32>,
        /// LOCAL_PREF, sent to iBGP peers only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub local_pref: Option<u32>,
        /// `A:B`, `large:A:B:C`, a well-known name (`no-export`) or a Community alias.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub communities: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ip_address_pools: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ip_address_pool_selectors: Vec<LabelSelector>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<LabelSelector>,
        /// BGPPeer names to announce to; empty means every peer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub peers: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub service_selectors: Vec<LabelSelector>,
    }

    /// Named community values that BGPAdvertisements refer to by name.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "Community",
        plural = "communities",
        namespaced
    )]
    #[serde(rename_all = "camelCase")]
    pub struct CommunitySpec {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub communities: Vec<CommunityAlias>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct CommunityAlias {
        pub name: String,
        pub value: String,
    }

    /// BFD session settings a BGPPeer may refer to.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "BFDProfile",
        plural = "bfdprofiles",
        namespaced,
        printcolumn = r#"{"name":"Passive Mode","type":"boolean","jsonPath":".spec.passiveMode"}"#,
        printcolumn = r#"{"name":"Transmit Interval","type":"integer","jsonPath":".spec.transmitInterval"}"#,
        printcolumn = r#"{"name":"Receive Interval","type":"integer","jsonPath":".spec.receiveInterval"}"#,
        printcolumn = r#"{"name":"Multiplier","type":"integer","jsonPath":".spec.detectMultiplier"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BFDProfileSpec {
        /// Milliseconds, 10 to 60000 (default 300).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub receive_interval: Option<u32>,
        /// Milliseconds, 10 to 60000 (default 300).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub transmit_interval: Option<u32>,
        /// 2 to 255 (default 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub detect_multiplier: Option<u32>,
        /// Milliseconds, 10 to 60000 (default 50).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub echo_interval: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub echo_mode: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub passive_mode: Option<bool>,
        /// 1 to 254, multi-hop sessions only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub minimum_ttl: Option<u32>,
    }

    /// The older BGPPeer shape; read and converted to v1beta2.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta1",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        #[serde(rename = "myASN")]
        pub my_asn: u32,
        #[serde(rename = "peerASN")]
        pub peer_asn: u32,
        pub peer_address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub peer_port: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<NodeSelector>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ebgp_multi_hop: Option<bool>,
    }

    /// v1beta1's own selector shape; it means what a LabelSelector means.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeSelector {
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        pub match_labels: std::collections::BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub match_expressions: Vec<MatchExpression>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct MatchExpression {
        pub key: String,
        pub operator: String,
        #[serde(default)]
        pub values: Vec<String>,
    }
}

pub mod v1beta2 {
    use super::*;

    /// A BGP router to peer with; the stored version.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "metallb.io",
        derive = "PartialEq",
        version = "v1beta2",
        kind = "BGPPeer",
        plural = "bgppeers",
        namespaced,
        printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.peerAddress"}"#,
        printcolumn = r#"{"name":"ASN","type":"string","jsonPath":".spec.peerASN"}"#,
        printcolumn = r#"{"name":"BFD Profile","type":"string","jsonPath":".spec.bfdProfile"}"#,
        printcolumn = r#"{"name":"Multi Hops","type":"string","jsonPath":".spec.ebgpMultiHop"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct BGPPeerSpec {
        /// Our AS number.
        #[serde(rename = "myASN")]
        pub my_asn: u32,
        /// The peer's AS number; exclusive with `dynamicASN`.
        #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
        pub peer_asn: Option<u32>,
        /// `internal` or `external`: accept whatever AS the peer has, of that kind.
        #[serde(
            default,
            rename = "dynamicASN",
            skip_serializing_if = "Option::is_none"
        )]
        pub dynamic_asn: Option<DynamicAsn>,
        /// The AS number presented to this peer instead of `myASN` (a "local-as").
        #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
        pub local_asn: Option<u32>,
        /// Exclusive with `interface`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub peer_address: Option<String>,
        /// Unnumbered peering over this interface; exclusive with `peerAddress`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interface: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_address: Option<String>,
        /// 1 to 16384 (default 179).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub peer_port: Option<u16>,
        /// A duration such as `90s` or `3m`; 0 or at least 3 s (default 90s).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hold_time: Option<String>,
        /// At most the hold time (default a third of it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keepalive_time: Option<String>,
        /// Whole seconds, 1 to 65535.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_time: Option<String>,
        #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
        pub router_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub node_selectors: Vec<LabelSelector>,
        /// TCP MD5 password; exclusive with `passwordSecret`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        /// A `kubernetes.io/basic-auth` Secret whose `password` key holds the TCP MD5 password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password_secret: Option<SecretReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bfd_profile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enable_graceful_restart: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ebgp_multi_hop: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub vrf: Option<String>,
        /// Deprecated by MetalLB in favour of `dualStackAddressFamily`.
        #[serde(default, rename = "disableMP", skip_serializing_if = "Option::is_none")]
        pub disable_mp: Option<bool>,
        /// Carry the other address family over this session too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dual_stack_address_family: Option<bool>,
    }

    #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum DynamicAsn {
        Internal,
        External,
    }

    impl From<super::v1beta1::BGPPeer> for BGPPeer {
        fn from(old: super::v1beta1::BGPPeer) -> Self {
            let s = old.spec;
            let spec = BGPPeerSpec {
                my_asn: s.my_asn,
                peer_asn: Some(s.peer_asn),
                peer_address: Some(s.peer_address),
                source_address: s.source_address,
                peer_port: s.peer_port,
                hold_time: s.hold_time,
                keepalive_time: s.keepalive_time,
                router_id: s.router_id,
                node_selectors: s.node_selectors.into_iter().map(Into::into).collect(),
                password: s.password,
                bfd_profile: s.bfd_profile,
                ebgp_multi_hop: s.ebgp_multi_hop,
                ..Default::default()
            };
            let mut new = BGPPeer::new(old.metadata.name.as_deref().unwrap_or_default(), spec);
            new.metadata = old.metadata;
            new
        }
    }
}

impl From<v1beta1::NodeSelector> for LabelSelector {
    fn from(s: v1beta1::NodeSelector) -> Self {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        LabelSelector {
            match_labels: (!s.match_labels.is_empty()).then_some(s.match_labels),
            match_expressions: (!s.match_expressions.is_empty()).then(|| {
                s.match_expressions
                    .into_iter()
                    .map(|e| LabelSelectorRequirement {
                        key: e.key,
                        operator: e.operator,
                        values: Some(e.values),
                    })
                    .collect()
            }),
        }
    }
}

pub use v1beta1::{
    BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, Community, CommunityAlias,
    CommunitySpec, IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec,
    PreferredNodeSelector, ServiceAllocation,
};
pub use v1beta2::{BGPPeer, BGPPeerSpec, DynamicAsn};

/// MetalLB's status kinds have no spec (ConfigurationState) or an empty optional one; the
/// derived schema would require it, and reject MetalLB's own objects.
fn without_spec(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let no_spec = crd.spec.names.kind == "ConfigurationState";
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = &mut schema.required {
            required.retain(|r| r != "spec");
            if required.is_empty() {
                schema.required = None;
            }
        }
        if no_spec && let Some(p) = &mut schema.properties {
            p.remove("spec");
        }
    }
    crd
}

/// The CustomResourceDefinitions for every kind above, as `(file name, YAML)`, in the order
/// `deploy/crds/` holds them. BGPPeer serves v1beta1 and v1beta2 and stores v1beta2.
pub fn definitions() -> Vec<(String, String)> {
    use kube::CustomResourceExt;
    use kube::core::crd::merge_crds;
    let peer = merge_crds(
        vec![v1beta1::BGPPeer::crd(), v1beta2::BGPPeer::crd()],
        "v1beta2",
    )
    .expect("both BGPPeer versions describe the same kind");
    [
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        BGPAdvertisement::crd(),
        peer,
        Community::crd(),
        BFDProfile::crd(),
    ]
    .into_iter()
    .chain([
        crate::status::ServiceL2Status::crd(),
        crate::status::ServiceBGPStatus::crd(),
        crate::status::ConfigurationState::crd(),
    ]
    .map(without_spec))
    .map(|crd| {
        let file = format!("{}_{}.yaml", GROUP, crd.spec.names.plural);
        let yaml = serde_saphyr::to_string(&crd).expect("a CRD always serializes");
        (file, format!("# Generated by `cargo xtask crds` from crates/model/src/crd.rs; do not edit.\n{yaml}"))
    })
    .collect()
}
