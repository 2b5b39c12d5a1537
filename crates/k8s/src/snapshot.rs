//! What the source publishes: the cluster's objects as the model reads them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use model::diag::has_errors;
use model::world::ServiceRef;
use model::{Checked, Diagnostic, ResourceRef, Resources, Sourced};

/// One consistent view of everything herald reads from the cluster: the same [`Resources`]
/// file mode reads (with `EndpointsMode::Observed`), and what went wrong reading it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Counts the snapshots this source has published, from 1; a reader that missed some
    /// (the channel keeps only the latest) can tell.
    pub generation: u64,
    pub resources: Resources,
    /// Problems met reading objects, before validation: objects that could not be read
    /// (errors, each naming its object; the object is also in `resources.unreadable`), fields
    /// herald does not read (warnings), a Secret that could not be fetched, a missing Node.
    pub diagnostics: Vec<Diagnostic>,
    /// How Events point at the objects that could not be read, which `resources` lacks.
    pub(crate) unreadable_references: Vec<ObjectReference>,
}

impl Snapshot {
    /// Reading and validation diagnostics together, and the `World` exactly when none of
    /// them is an error: what file mode's `load_files` + `validate` give, for the cluster.
    pub fn validate(&self) -> Checked {
        let checked = model::validate(&self.resources);
        let mut diagnostics = self.diagnostics.clone();
        diagnostics.extend(checked.diagnostics);
        diagnostics.sort();
        diagnostics.dedup();
        let world = if has_errors(&diagnostics) {
            None
        } else {
            checked.world
        };
        Checked { world, diagnostics }
    }

    /// How an Event points at `resource` (with its uid, so `kubectl describe` shows it), when
    /// the snapshot holds it.
    pub fn object_reference(&self, resource: &ResourceRef) -> Option<ObjectReference> {
        let r = &self.resources;
        let found = match resource.kind.as_str() {
            "IPAddressPool" => find(&r.pools, resource),
            "L2Advertisement" => find(&r.l2_advertisements, resource),
            "BGPAdvertisement" => find(&r.bgp_advertisements, resource),
            "BGPPeer" => find(&r.bgp_peers, resource),
            "Community" => find(&r.communities, resource),
            "BFDProfile" => find(&r.bfd_profiles, resource),
            "Service" => find(&r.services, resource),
            "EndpointSlice" => find(&r.endpoint_slices, resource),
            "Node" => find(&r.nodes, resource),
            "Secret" => find(&r.secrets, resource),
            _ => None,
        };
        found.or_else(|| {
            self.unreadable_references
                .iter()
                .find(|o| {
                    o.kind.as_deref() == Some(resource.kind.as_str())
                        && o.namespace == resource.namespace
                        && o.name.as_deref() == Some(resource.name.as_str())
                })
                .cloned()
        })
    }

    /// [`Snapshot::object_reference`] of a Service.
    pub fn service_reference(&self, service: &ServiceRef) -> Option<ObjectReference> {
        self.object_reference(&ResourceRef {
            kind: "Service".into(),
            namespace: Some(service.namespace.clone()),
            name: service.name.clone(),
        })
    }
}

fn find<K: Resource<DynamicType = ()>>(
    list: &[Sourced<K>],
    resource: &ResourceRef,
) -> Option<ObjectReference> {
    list.iter()
        .find(|s| {
            let meta = s.object.meta();
            meta.name.as_deref() == Some(resource.name.as_str())
                && meta.namespace == resource.namespace
        })
        .map(|s| s.object.object_ref(&()))
}
