//! One bad object harms one Service (issue 12), end to end: herald in Kubernetes mode on a
//! node of a test LAN, reading the testkit API server, announcing by Layer 2 to the LAN's
//! client and by BGP to a BIRD router on the LAN's other node (testkit's routers sit at
//! 192.0.2.2, that node's address). Among valid Services the cluster holds
//! one whose ingress address herald cannot parse (`010.0.0.1`, which Kubernetes accepts) and
//! one with a malformed `metallb.io/loadBalancerIPs` annotation: both are skipped, each with a
//! warning logged once, an Event on it, and its reason in `/status`; the configuration stays
//! valid, and a Service created afterwards is announced and withdrawn as usual, as the
//! router's table and the client's neighbor cache show.
//!
//! Needs root (namespaces); fails, never skips, without it. Nothing is timed.

use serde_json::{Value, json};
use std::path::PathBuf;
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::lan::{Lan, arping, ndisc6, resolve_to};
use testkit::netns::poll_until;
use testkit::routers::{Kind, Neighbor, ROUTER_AS, ROUTER_V4, Router};
use testkit::{PATIENCE, Speaker};

const NAMESPACE: &str = "metallb-system";
const NODE: &str = "node-1";

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack",
                 "ports": [{"port": 80}]},
    })
}

/// The Service's EndpointSlice, with one ready endpoint on this node.
fn slice(service: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": NODE, "conditions": {"ready": true}}],
    })
}

fn configuration() -> Vec<Value> {
    vec![
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "lan", "namespace": NAMESPACE},
               "spec": {"addresses": ["192.0.2.200-192.0.2.220", "2001:db8::200-2001:db8::220"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
               "metadata": {"name": "l2", "namespace": NAMESPACE}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "bgp", "namespace": NAMESPACE}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "router", "namespace": NAMESPACE},
               "spec": {"myASN": 64512, "peerASN": ROUTER_AS, "peerAddress": ROUTER_V4,
                        "dualStackAddressFamily": true}}),
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}),
    ]
}

/// Creates a Service with its endpoints, its annotations, and the ingress addresses a
/// controller would have written.
fn create_service(api: &BlockingClient, name: &str, annotations: Value, ingress: &[&str]) {
    let mut svc = service(name);
    svc["metadata"]["annotations"] = annotations;
    api.create(svc);
    api.create(slice(name));
    let ingress: Vec<Value> = ingress.iter().map(|ip| json!({"ip": ip})).collect();
    api.patch_status(
        &service(name),
        json!({"status": {"loadBalancer": {"ingress": ingress}}}),
    );
}

fn skipped_reason(st: &Value, name: &str) -> Option<String> {
    st["plan"]["skipped"]
        .as_array()?
        .iter()
        .find(|s| s["service"]["name"] == name)
        .map(|s| s["reason"].to_string())
}

fn holds(router: &Router, prefix: &str) -> bool {
    !router.routes(prefix).unwrap_or_default().is_empty()
}

fn wait_route(router: &Router, prefix: &str, present: bool) {
    let what = if present { "hold" } else { "drop" };
    poll_until(&format!("BIRD to {what} {prefix}"), PATIENCE, |last| {
        *last = router.dump();
        (holds(router, prefix) == present).then_some(())
    });
}

#[test]
fn a_service_herald_cannot_use_is_skipped_and_the_others_follow_the_cluster() {
    let lan = Lan::new();
    assert_eq!(testkit::lan::NODE2_V4, ROUTER_V4);
    let router = Router::start(
        Kind::Bird,
        &lan.node2,
        &[Neighbor {
            name: "herald".into(),
            address: testkit::lan::NODE1_V4.into(),
            asn: 64512,
            hold_time: None,
            password: None,
            extended_next_hop: false,
            active: false,
            ..Neighbor::default()
        }],
    );
    let server = ApiServer::builder()
        .start_in(lan.node1.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(lan.node1.name()));
    for object in configuration() {
        api.create(object);
    }
    create_service(&api, "web", json!({}), &["192.0.2.201", "2001:db8::201"]);
    create_service(
        &api,
        "leading-zero",
        json!({}),
        &["192.0.2.202", "010.0.0.1"],
    );
    create_service(
        &api,
        "bad-annotation",
        json!({"metallb.io/loadBalancerIPs": "192.0.2.203,192.0.2.x"}),
        &["192.0.2.203"],
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, "herald")
        .expect("writing the kubeconfig");
    let kubeconfig = kubeconfig.display().to_string();
    let herald = Speaker::start_in(
        &lan.node1,
        &Vec::<PathBuf>::new(),
        NODE,
        &["--kubeconfig", &kubeconfig, "--namespace", NAMESPACE],
    );
    let mac = lan.node1.mac("eth0");

    // The valid Service is announced both ways; the two bad ones are skipped, each saying
    // why, and the configuration stays loaded (not stale).
    wait_route(&router, "192.0.2.201/32", true);
    wait_route(&router, "2001:db8::201/128", true);
    resolve_to(&lan.client, "192.0.2.201", "eth0", &mac);
    let st = herald.eventually("both bad Services skipped in /status", |s| {
        let st = s.get_json("/status");
        let both = ["leading-zero", "bad-annotation"]
            .iter()
            .all(|n| skipped_reason(&st, n).is_some());
        both.then_some(st)
    });
    assert_eq!(st["config"]["state"], "loaded", "{st:#}");
    let why = skipped_reason(&st, "leading-zero").unwrap_or_default();
    assert!(
        why.contains("unusable") && why.contains("010.0.0.1"),
        "{why}"
    );
    let why = skipped_reason(&st, "bad-annotation").unwrap_or_default();
    assert!(
        why.contains("unusable") && why.contains("192.0.2.x"),
        "{why}"
    );
    for prefix in ["192.0.2.202/32", "192.0.2.203/32"] {
        assert!(
            !holds(&router, prefix),
            "{prefix} announced:\n{}",
            router.dump()
        );
    }
    for name in ["leading-zero", "bad-annotation"] {
        herald.eventually(&format!("a configurationWarning Event on {name}"), |_| {
            api.events_about("default", name)
                .iter()
                .any(|(reason, _)| reason == "configurationWarning")
                .then_some(())
        });
    }

    // A Service created afterwards is announced...
    create_service(&api, "late", json!({}), &["192.0.2.204", "2001:db8::204"]);
    wait_route(&router, "192.0.2.204/32", true);
    wait_route(&router, "2001:db8::204/128", true);
    resolve_to(&lan.client, "192.0.2.204", "eth0", &mac);
    resolve_to(&lan.client, "2001:db8::204", "eth0", &mac);

    // ...and withdrawn as usual.
    api.delete(&service("late"));
    wait_route(&router, "192.0.2.204/32", false);
    wait_route(&router, "2001:db8::204/128", false);
    herald.eventually("192.0.2.204 no longer answered", |s| {
        let st = s.get_json("/status");
        let answered = st["announcing"]["layer2"]["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["ip"] == "192.0.2.204"));
        (!answered).then_some(())
    });
    let (ok, out) = arping(
        &lan.client,
        &["-c", "2", "-w", "3", "-i", "eth0", "192.0.2.204"],
    );
    assert!(!ok, "192.0.2.204 is still answered: {out}");
    let (ok, out) = ndisc6(&lan.client, "2001:db8::204", "eth0");
    assert!(!ok, "2001:db8::204 is still answered: {out}");

    // Through all those snapshots, each bad Service's warning was logged once, and nothing
    // said the configuration was rejected.
    for name in ["leading-zero", "bad-annotation"] {
        let warned = herald.count_logs(|l| {
            l["level"] == "WARN"
                && l["resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!("default/{name}")))
        });
        assert_eq!(warned, 1, "warnings about {name}:\n{}", herald.logs_text());
    }
    let rejected = herald.count_logs(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("configuration rejected"))
    });
    assert_eq!(rejected, 0, "{}", herald.logs_text());
}
