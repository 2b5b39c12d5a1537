//! `Resources`: the raw objects a source has read, before any checking.
//!
//! File mode and the Kubernetes source both fill this one type; [`crate::validate`] turns it
//! into a [`crate::World`]. Each object keeps its [`Origin`] and, when it came from YAML, the
//! line of every field, so a diagnostic can point at the exact line.

use crate::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use crate::diag::{Origin, ResourceRef};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Line numbers of the fields of one YAML document, keyed by path (`spec.addresses[0]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldLines(pub BTreeMap<String, usize>);

impl FieldLines {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.0.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// An object together with where it came from.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    pub object: T,
    pub origin: Origin,
    pub lines: Arc<FieldLines>,
}

impl<T> Sourced<T> {
    /// An object with no file behind it (from the API server, or built in a test).
    pub fn new(object: T) -> Self {
        Self {
            object,
            origin: Origin::default(),
            lines: Arc::default(),
        }
    }

    /// The origin, pointed at the line of `field` when it is known.
    pub fn origin_at(&self, field: &str) -> Origin {
        let mut origin = self.origin.clone();
        if let Some(line) = self.lines.line_of(field) {
            origin.line = Some(line);
        }
        origin
    }
}

impl<T: Resource<DynamicType = ()>> Sourced<T> {
    pub fn name(&self) -> &str {
        self.object.meta().name.as_deref().unwrap_or_default()
    }

    pub fn resource_ref(&self) -> ResourceRef {
        resource_ref(&self.object)
    }
}

/// `Kind namespace/name` of any Kubernetes object.
pub fn resource_ref<T: Resource<DynamicType = ()>>(object: &T) -> ResourceRef {
    ResourceRef {
        kind: T::kind(&()).into_owned(),
        namespace: object.meta().namespace.clone(),
        name: object.meta().name.clone().unwrap_or_default(),
    }
}

/// How to read the absence of EndpointSlices for a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointsMode {
    /// The API server's EndpointSlices are the truth: no slice means no endpoint.
    #[default]
    Observed,
    /// File mode: a service with no EndpointSlice in the files is taken to have a ready
    /// endpoint on every node, since there is no kubelet to say otherwise.
    AssumeReadyEverywhere,
}

/// Everything a source has read, unchecked. Order carries no meaning.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub pools: Vec<Sourced<IPAddressPool>>,
    pub l2_advertisements: Vec<Sourced<L2Advertisement>>,
    pub bgp_advertisements: Vec<Sourced<BGPAdvertisement>>,
    /// v1beta1 peers are converted to v1beta2 when read.
    pub bgp_peers: Vec<Sourced<BGPPeer>>,
    pub communities: Vec<Sourced<Community>>,
    pub bfd_profiles: Vec<Sourced<BFDProfile>>,
    pub services: Vec<Sourced<Service>>,
    pub endpoint_slices: Vec<Sourced<EndpointSlice>>,
    pub nodes: Vec<Sourced<Node>>,
    pub secrets: Vec<Sourced<Secret>>,
    pub endpoints_mode: EndpointsMode,
    /// Only services of this `spec.loadBalancerClass` are ours; `None` means services
    /// without a class (MetalLB's default).
    pub load_balancer_class: Option<String>,
    /// Objects the source found but could not read (a field of the wrong type, say), and has
    /// already reported. Their names still count when other objects refer to them, so one
    /// mistake is reported once, not again as an unknown pool, peer or profile.
    pub unreadable: Vec<ResourceRef>,
}
