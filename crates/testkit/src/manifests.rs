//! Kubernetes objects the end-to-end tests of one herald node create on the testkit API
//! server: a LoadBalancer Service with its endpoints and addresses, and a MetalLB
//! configuration announcing the LAN's service range by Layer 2 and by BGP to the routers'
//! address.

use crate::apiserver::BlockingClient;
use crate::routers::{ROUTER_AS, ROUTER_V4};
use serde_json::{Value, json};

/// A dual-stack LoadBalancer Service `default/NAME`.
pub fn load_balancer(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack",
                 "ports": [{"port": 80}]},
    })
}

/// The Service's EndpointSlice, with one ready endpoint on `node`.
pub fn endpoint_slice(service: &str, node: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": node, "conditions": {"ready": true}}],
    })
}

/// Creates Service `name` with `annotations`, a ready endpoint on `node`, and the ingress
/// addresses a controller would have written.
pub fn create_service(
    api: &BlockingClient,
    name: &str,
    node: &str,
    annotations: Value,
    ingress: &[&str],
) {
    let mut svc = load_balancer(name);
    svc["metadata"]["annotations"] = annotations;
    api.create(svc);
    api.create(endpoint_slice(name, node));
    let ingress: Vec<Value> = ingress.iter().map(|ip| json!({"ip": ip})).collect();
    api.patch_status(
        &load_balancer(name),
        json!({"status": {"loadBalancer": {"ingress": ingress}}}),
    );
}

/// In `namespace`: a pool of the LAN's service addresses, announced by Layer 2 and by BGP to
/// the router (AS `ROUTER_AS` at `ROUTER_V4`) from AS `herald_as`; and Node `node`.
pub fn lan_configuration(namespace: &str, node: &str, herald_as: u32) -> Vec<Value> {
    vec![
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "lan", "namespace": namespace},
               "spec": {"addresses": ["192.0.2.200-192.0.2.220", "2001:db8::200-2001:db8::220"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
               "metadata": {"name": "l2", "namespace": namespace}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "bgp", "namespace": namespace}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "router", "namespace": namespace},
               "spec": {"myASN": herald_as, "peerASN": ROUTER_AS, "peerAddress": ROUTER_V4,
                        "dualStackAddressFamily": true}}),
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}}),
    ]
}
