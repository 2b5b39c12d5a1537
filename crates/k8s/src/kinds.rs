//! The kinds the source watches, and how the objects of each are read.

use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::core::ApiResource;
use model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use std::fmt;
use std::sync::LazyLock;

/// How objects of one kind are read.
pub(crate) struct Kind {
    pub resource: ApiResource,
    /// Whether herald's type holds a status. MetalLB's CRDs give most kinds an empty one,
    /// which says nothing, so it is dropped rather than reported as unknown.
    pub has_status: bool,
    /// MetalLB lets these kinds be written without a spec (meaning: all defaults).
    pub spec_optional: bool,
    /// Report fields herald's type does not have, as warnings. Only for the `metallb.io`
    /// kinds: the API server prunes fields its CRD does not declare, so one that arrives is in
    /// the installed CRD (a newer MetalLB's, say) and would be silently ignored by herald.
    /// Built-in kinds grow fields with every Kubernetes release; those are not configuration.
    pub report_unknown_fields: bool,
}

fn kind<K: Resource<DynamicType = ()>>(has_status: bool, metallb: bool) -> Kind {
    Kind {
        resource: ApiResource::erase::<K>(&()),
        has_status,
        spec_optional: metallb && K::kind(&()) != "IPAddressPool" && K::kind(&()) != "BGPPeer",
        report_unknown_fields: metallb,
    }
}

pub(crate) static POOLS: LazyLock<Kind> = LazyLock::new(|| kind::<IPAddressPool>(true, true));
pub(crate) static L2_ADVERTISEMENTS: LazyLock<Kind> =
    LazyLock::new(|| kind::<L2Advertisement>(false, true));
pub(crate) static BGP_ADVERTISEMENTS: LazyLock<Kind> =
    LazyLock::new(|| kind::<BGPAdvertisement>(false, true));
/// v1beta2 only: the API server serves every BGPPeer in both versions (converting), so
/// watching v1beta1 as well would see each peer twice.
pub(crate) static BGP_PEERS: LazyLock<Kind> = LazyLock::new(|| kind::<BGPPeer>(false, true));
pub(crate) static COMMUNITIES: LazyLock<Kind> = LazyLock::new(|| kind::<Community>(false, true));
pub(crate) static BFD_PROFILES: LazyLock<Kind> = LazyLock::new(|| kind::<BFDProfile>(false, true));
pub(crate) static SERVICES: LazyLock<Kind> = LazyLock::new(|| kind::<Service>(true, false));
pub(crate) static ENDPOINT_SLICES: LazyLock<Kind> =
    LazyLock::new(|| kind::<EndpointSlice>(false, false));
pub(crate) static NODES: LazyLock<Kind> = LazyLock::new(|| kind::<Node>(true, false));
pub(crate) static SECRETS: LazyLock<Kind> = LazyLock::new(|| kind::<Secret>(false, false));

/// A Secret a BGPPeer names for its password.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SecretKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One watch: where its events go.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Feed {
    Pools,
    L2Advertisements,
    BgpAdvertisements,
    BgpPeers,
    Communities,
    BfdProfiles,
    Services,
    EndpointSlices,
    Node,
    Secret(SecretKey),
}

impl Feed {
    /// The watches that run for the whole life of the source.
    pub const FIXED: [Feed; 9] = [
        Feed::Pools,
        Feed::L2Advertisements,
        Feed::BgpAdvertisements,
        Feed::BgpPeers,
        Feed::Communities,
        Feed::BfdProfiles,
        Feed::Services,
        Feed::EndpointSlices,
        Feed::Node,
    ];

    pub fn kind(&self) -> &'static Kind {
        match self {
            Feed::Pools => &POOLS,
            Feed::L2Advertisements => &L2_ADVERTISEMENTS,
            Feed::BgpAdvertisements => &BGP_ADVERTISEMENTS,
            Feed::BgpPeers => &BGP_PEERS,
            Feed::Communities => &COMMUNITIES,
            Feed::BfdProfiles => &BFD_PROFILES,
            Feed::Services => &SERVICES,
            Feed::EndpointSlices => &ENDPOINT_SLICES,
            Feed::Node => &NODES,
            Feed::Secret(_) => &SECRETS,
        }
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feed::Secret(key) => write!(f, "Secret {key}"),
            other => f.write_str(&other.kind().resource.plural),
        }
    }
}
