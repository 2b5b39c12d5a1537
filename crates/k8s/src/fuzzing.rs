//! The entry point of the fuzz targets (`crates/k8s/fuzz`), behind the `fuzzing` feature:
//! one object of any kind, read as the watches read it (through a store, so the comparison
//! of reads runs too), then checked and planned beside a valid configuration read the same
//! way.

use crate::kinds::{
    BFD_PROFILES, BGP_ADVERTISEMENTS, BGP_PEERS, COMMUNITIES, ENDPOINT_SLICES, Kind,
    L2_ADVERTISEMENTS, NODES, POOLS, SECRETS, SERVICES,
};
use crate::read::{Read, Scope};
use crate::store::Store;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use model::resources::Unreadable;
use model::{EndpointsMode, Resources, Sourced};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Reads `json` as an object of the kind `kind` picks, adds it to a valid configuration, and
/// validates and plans the result. Panics only on a bug.
pub fn read_check_and_plan(kind: u8, json: &[u8]) {
    let Ok(object) = serde_json::from_slice::<DynamicObject>(json) else {
        return;
    };
    let mut r = baseline();
    match kind % 10 {
        0 => add::<IPAddressPool>(&POOLS, object, &mut r, |r| &mut r.pools),
        1 => add::<L2Advertisement>(&L2_ADVERTISEMENTS, object, &mut r, |r| {
            &mut r.l2_advertisements
        }),
        2 => add::<BGPAdvertisement>(&BGP_ADVERTISEMENTS, object, &mut r, |r| {
            &mut r.bgp_advertisements
        }),
        3 => add::<BGPPeer>(&BGP_PEERS, object, &mut r, |r| &mut r.bgp_peers),
        4 => add::<Community>(&COMMUNITIES, object, &mut r, |r| &mut r.communities),
        5 => add::<BFDProfile>(&BFD_PROFILES, object, &mut r, |r| &mut r.bfd_profiles),
        6 => add::<Service>(&SERVICES, object, &mut r, |r| &mut r.services),
        7 => add::<EndpointSlice>(&ENDPOINT_SLICES, object, &mut r, |r| &mut r.endpoint_slices),
        8 => add::<Node>(&NODES, object, &mut r, |r| &mut r.nodes),
        _ => add::<Secret>(&SECRETS, object, &mut r, |r| &mut r.secrets),
    }
    let _ = format!("{r:?}");
    let checked = model::validate(&r);
    for d in &checked.diagnostics {
        let _ = d.to_string();
    }
    if let Some(world) = checked.world {
        for node in ["node-a", "node-b"] {
            let _ = model::plan(&world, node);
        }
    }
}

/// Through a store, as a watch delivers it: applied twice (the second changes nothing),
/// then the read added to the resources. Parked and read again, as an EndpointSlice is when
/// its Service becomes herald's, it must read the same.
fn add<K: DeserializeOwned + serde::Serialize + kube::Resource + Clone + PartialEq>(
    kind: &Kind,
    object: DynamicObject,
    r: &mut Resources,
    list: impl Fn(&mut Resources) -> &mut Vec<Sourced<K>>,
) {
    let scope = Scope::default();
    let mut store = Store::<K>::default();
    store.apply(kind, &scope, Event::Apply(object.clone()));
    let mut parked = Store::<K>::default();
    let owner = (None, String::new());
    parked.apply_parking(kind, &scope, Event::Apply(object.clone()), |_| {
        Some(owner.clone())
    });
    parked.rehome(kind, &scope, |_| None, |_| true);
    let again = store.apply(kind, &scope, Event::Apply(object));
    debug_assert!(!again.changed || store.len() == 0);
    let reads: Vec<Read<K>> = store.objects().cloned().collect();
    let unparked: Vec<Read<K>> = parked.objects().cloned().collect();
    assert_eq!(
        reads.len(),
        unparked.len(),
        "parking kept or lost an object"
    );
    for (a, b) in reads.iter().zip(&unparked) {
        let object = |r: &Read<K>| r.object.as_ref().map(|o| o.object.clone());
        assert!(object(a) == object(b), "a parked object reads otherwise");
        assert_eq!(
            a.diagnostics, b.diagnostics,
            "a parked object reads otherwise"
        );
        assert_eq!(a.reference, b.reference, "a parked object reads otherwise");
    }
    for read in reads {
        match read.object {
            Some(o) => list(r).push(o),
            None => r
                .unreadable
                .push(Unreadable::new(read.resource_ref(), read.problem())),
        }
    }
}

fn read_one<K: DeserializeOwned>(kind: &Kind, value: serde_json::Value) -> Option<Sourced<K>> {
    let object: DynamicObject = serde_json::from_value(value).ok()?;
    crate::read::read(kind, &Scope::default(), object)?.object
}

/// A small valid configuration: a dual-stack pool announced both ways, a peer, a node, and a
/// Service with endpoints here.
fn baseline() -> Resources {
    let ns = "metallb-system";
    let mut r = Resources {
        endpoints_mode: EndpointsMode::Observed,
        ..Resources::default()
    };
    r.pools.extend(read_one(
        &POOLS,
        json!({"metadata": {"name": "p", "namespace": ns},
               "spec": {"addresses": ["192.0.2.0/28", "2001:db8::/124"]}}),
    ));
    r.l2_advertisements.extend(read_one(
        &L2_ADVERTISEMENTS,
        json!({"metadata": {"name": "l2", "namespace": ns}}),
    ));
    r.bgp_advertisements.extend(read_one(
        &BGP_ADVERTISEMENTS,
        json!({"metadata": {"name": "bgp", "namespace": ns}, "spec": {"localPref": 50}}),
    ));
    r.bgp_peers.extend(read_one(
        &BGP_PEERS,
        json!({"metadata": {"name": "router", "namespace": ns},
               "spec": {"myASN": 64512, "peerASN": 64512, "peerAddress": "192.0.2.254"}}),
    ));
    r.nodes.extend(read_one(
        &NODES,
        json!({"metadata": {"name": "node-a", "labels": {"zone": "a"}}}),
    ));
    r.services.extend(read_one(
        &SERVICES,
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}}),
    ));
    r.endpoint_slices.extend(read_one(
        &ENDPOINT_SLICES,
        json!({"metadata": {"name": "web-1", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "node-a"}]}),
    ));
    r
}
