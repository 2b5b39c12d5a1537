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
use std::fmt;
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

/// An object together with where it came from. The object is shared, not copied: a source
/// keeps each object once, and every snapshot it publishes points at the same one.
#[derive(Debug)]
pub struct Sourced<T> {
    pub object: Arc<T>,
    pub origin: Origin,
    pub lines: Arc<FieldLines>,
}

/// Shares the object: no copy of it is made.
impl<T> Clone for Sourced<T> {
    fn clone(&self) -> Self {
        Self {
            object: self.object.clone(),
            origin: self.origin.clone(),
            lines: self.lines.clone(),
        }
    }
}

impl<T> Sourced<T> {
    /// An object with no file behind it (from the API server, or built in a test).
    pub fn new(object: T) -> Self {
        Self {
            object: Arc::new(object),
            origin: Origin::default(),
            lines: Arc::default(),
        }
    }

    /// The object to change, copied first if another holder shares it (for tests and
    /// conversions; sources never change an object they have published).
    pub fn object_mut(&mut self) -> &mut T
    where
        T: Clone,
    {
        Arc::make_mut(&mut self.object)
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
        resource_ref(&*self.object)
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

/// An object a source found but could not read, already reported.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unreadable {
    pub resource: ResourceRef,
    /// Why, in a few words: what the plan gives as the reason a Service or Node that could
    /// not be read is skipped.
    pub problem: String,
}

impl Unreadable {
    pub fn new(resource: ResourceRef, problem: impl Into<String>) -> Self {
        Self {
            resource,
            problem: problem.into(),
        }
    }
}

/// Everything a source has read, unchecked. Order carries no meaning.
///
/// Its `Debug` output never shows a password: Secrets appear by name and type only, and a
/// BGPPeer's inline `password` as `<redacted>`.
#[derive(Clone, Default)]
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
    /// mistake is reported once, not again as an unknown pool, peer or profile; a Service or
    /// Node among them is skipped with the problem as its reason.
    pub unreadable: Vec<Unreadable>,
}

impl Resources {
    /// Whether the source could not read an object of `kind` named `name`.
    pub fn is_unreadable(&self, kind: &str, name: &str) -> bool {
        self.unreadable
            .iter()
            .any(|u| u.resource.kind == kind && u.resource.name == name)
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peers: Vec<Redacted<'_, BGPPeer>> = self.bgp_peers.iter().map(Redacted).collect();
        let secrets: Vec<Redacted<'_, Secret>> = self.secrets.iter().map(Redacted).collect();
        f.debug_struct("Resources")
            .field("pools", &self.pools)
            .field("l2_advertisements", &self.l2_advertisements)
            .field("bgp_advertisements", &self.bgp_advertisements)
            .field("bgp_peers", &peers)
            .field("communities", &self.communities)
            .field("bfd_profiles", &self.bfd_profiles)
            .field("services", &self.services)
            .field("endpoint_slices", &self.endpoint_slices)
            .field("nodes", &self.nodes)
            .field("secrets", &secrets)
            .field("endpoints_mode", &self.endpoints_mode)
            .field("load_balancer_class", &self.load_balancer_class)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

/// An object whose secret parts `Debug` leaves out.
pub struct Redacted<'a, T>(pub &'a Sourced<T>);

impl fmt::Debug for Redacted<'_, BGPPeer> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut peer = (*self.0.object).clone();
        if peer.spec.password.is_some() {
            peer.spec.password = Some("<redacted>".into());
        }
        f.debug_struct("Sourced")
            .field("object", &peer)
            .field("origin", &self.0.origin)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Redacted<'_, Secret> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = &self.0.object;
        let data: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
        let string_data: Vec<&String> = secret.string_data.iter().flat_map(|d| d.keys()).collect();
        f.debug_struct("Secret")
            .field("namespace", &secret.metadata.namespace)
            .field("name", &secret.metadata.name)
            .field("type", &secret.type_)
            .field("data_keys", &data)
            .field("string_data_keys", &string_data)
            .field("origin", &self.0.origin)
            .finish_non_exhaustive()
    }
}
