//! What the k8s tests share: the objects of a small cluster, writing them through the testkit
//! API server with the real kube-rs client, and waiting for the snapshot that shows a change.

#![allow(dead_code)] // Each test binary uses its own part of this.

use k8s::{Snapshot, Source, SourceConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use model::NodePlan;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use testkit::PATIENCE;
use testkit::apiserver::{ApiServer, api_for};
use tokio::sync::watch;

pub const NAMESPACE: &str = "metallb-system";
pub const NODE: &str = "node-a";
/// The client name the source runs as, so faults can single it out.
pub const HERALD: &str = "herald";

pub fn server() -> ApiServer {
    ApiServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .expect("the testkit API server starts")
}

/// A client for setting the cluster up, apart from the source's own.
pub fn writer(server: &ApiServer) -> kube::Client {
    server.client_as("writer")
}

pub fn start(
    server: &ApiServer,
    config: SourceConfig,
) -> (Source, watch::Receiver<Option<Arc<Snapshot>>>) {
    Source::start(server.client_as(HERALD), config)
}

pub fn config() -> SourceConfig {
    SourceConfig::new(NAMESPACE, NODE)
}

pub async fn create(client: &kube::Client, object: Value) -> DynamicObject {
    let (api, name) = api_for(client, &object);
    let object: DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// A merge patch of the object `like` names (only its apiVersion, kind and metadata count).
pub async fn patch(client: &kube::Client, like: &Value, patch: Value) {
    let (api, name) = api_for(client, like);
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name}: {e}"));
}

pub async fn delete(client: &kube::Client, like: &Value) {
    let (api, name) = api_for(client, like);
    api.delete(&name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
}

/// Sets `status.loadBalancer.ingress`, as MetalLB's controller would.
pub async fn assign(client: &kube::Client, service: &Value, ips: &[&str]) {
    let (api, name) = api_for(client, service);
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("assigning addresses to {name}: {e}"));
}

/// Waits for a snapshot that satisfies `check`, and returns it.
pub async fn wait_for(
    rx: &mut watch::Receiver<Option<Arc<Snapshot>>>,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        if let Some(s) = rx.borrow_and_update().clone() {
            if check(&s) {
                return s;
            }
            last = Some(s);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the source stopped before {what}"),
            Err(_) => panic!(
                "no snapshot showed {what}; the last one (generation, diagnostics, objects):\n{:#?}",
                last.map(|s| (s.generation, s.validate().diagnostics, names(&s)))
            ),
        }
    }
}

/// Polls `check` until it holds, for conditions outside the snapshots.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `f` with the kind and metadata of every object in the snapshot.
pub fn each_object(s: &Snapshot, mut f: impl FnMut(&str, &ObjectMeta)) {
    fn visit<K: kube::Resource<DynamicType = ()>>(
        list: &[model::Sourced<K>],
        f: &mut dyn FnMut(&str, &ObjectMeta),
    ) {
        for o in list {
            f(&K::kind(&()), o.object.meta());
        }
    }
    let r = &s.resources;
    visit(&r.pools, &mut f);
    visit(&r.l2_advertisements, &mut f);
    visit(&r.bgp_advertisements, &mut f);
    visit(&r.bgp_peers, &mut f);
    visit(&r.communities, &mut f);
    visit(&r.bfd_profiles, &mut f);
    visit(&r.services, &mut f);
    visit(&r.endpoint_slices, &mut f);
    visit(&r.nodes, &mut f);
    visit(&r.secrets, &mut f);
}

/// `Kind namespace/name` of every object in the snapshot, for failure messages and
/// comparisons.
pub fn names(s: &Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    each_object(s, |kind, m| {
        let reference = model::ResourceRef {
            kind: kind.to_owned(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
        };
        out.insert(reference.to_string());
    });
    out
}

/// The plan for `node`, panicking with the diagnostics when the configuration is invalid.
pub fn plan(s: &Snapshot, node: &str) -> NodePlan {
    let checked = s.validate();
    let world = checked.world.unwrap_or_else(|| {
        panic!(
            "the snapshot is not valid:\n{}",
            checked
                .diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    model::plan(&world, node)
}

/// Every route this node's plan sends to `peer`, as text.
pub fn routes(plan: &NodePlan, peer: &str) -> BTreeSet<String> {
    plan.bgp
        .iter()
        .filter(|p| p.peer.name == peer)
        .flat_map(|p| p.routes.iter().map(|r| r.prefix.to_string()))
        .collect()
}

/// Every address this node's plan answers for on layer 2.
pub fn l2(plan: &NodePlan) -> BTreeSet<String> {
    plan.l2.iter().map(|a| a.ip.to_string()).collect()
}

// The objects of the small cluster the tests build.

pub fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"addresses": addresses},
    })
}

pub fn l2_advertisement(name: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": NAMESPACE},
    })
}

/// Selects nodes labelled `bgp: on`.
pub fn bgp_advertisement(name: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodeSelectors": [{"matchLabels": {"bgp": "on"}}], "communities": ["no-export"]},
    })
}

/// A dual-stack eBGP peer whose password is in the basic-auth Secret `secret`.
pub fn peer(name: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.254",
            "dualStackAddressFamily": true,
            "passwordSecret": {"name": secret},
        },
    })
}

pub fn password_secret(name: &str, password: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "herald", "password": password},
    })
}

pub fn node(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
    })
}

/// A dual-stack LoadBalancer Service in `default`.
pub fn service(name: &str, traffic_policy: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "RequireDualStack",
            "ipFamilies": ["IPv4", "IPv6"],
            "externalTrafficPolicy": traffic_policy,
            "ports": [{"port": 80}],
        },
    })
}

/// An EndpointSlice of `service` with one ready endpoint on each of `nodes`.
pub fn endpoint_slice(name: &str, service: &str, family: &str, nodes: &[&str]) -> Value {
    let endpoints: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let address = if family == "IPv6" {
                format!("fd00::{}", i + 1)
            } else {
                format!("10.0.0.{}", i + 1)
            };
            json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"port": 8080}],
    })
}

/// Creates the whole small cluster: a dual-stack pool announced by L2 and by BGP (on nodes
/// labelled `bgp: on`), a peer with its password Secret, nodes `node-a` and `node-b` (both
/// `bgp: on`), and the Service `default/web` (`traffic_policy`) at 192.0.2.10 and
/// 2001:db8::10 with an endpoint on `node-a` in each family.
pub async fn small_cluster(client: &kube::Client, traffic_policy: &str) {
    for object in [
        pool("main", &["192.0.2.0/24", "2001:db8::/64"]),
        l2_advertisement("l2"),
        bgp_advertisement("bgp"),
        password_secret("router-password", "s3cret"),
        peer("router", "router-password"),
        node(NODE, json!({"bgp": "on"})),
        node("node-b", json!({"bgp": "on"})),
        service("web", traffic_policy),
        endpoint_slice("web-v4", "web", "IPv4", &[NODE]),
        endpoint_slice("web-v6", "web", "IPv6", &[NODE]),
    ] {
        create(client, object).await;
    }
    assign(
        client,
        &service("web", traffic_policy),
        &["192.0.2.10", "2001:db8::10"],
    )
    .await;
}
