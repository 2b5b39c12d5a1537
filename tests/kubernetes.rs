//! `herald speaker` in Kubernetes mode, end to end: the testkit API server (the real
//! protocol, over HTTP) holds the cluster, herald reads it with its production client code
//! through a kubeconfig, and the test changes the cluster as users and controllers would and
//! reads herald's `/status`, `/metrics` and the Events it writes back.
//!
//! herald runs in a network namespace, and so does the API server it talks to; a BIRD router
//! in another namespace receives what herald announces. Needs root; nothing is timed.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Instant;
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::Netns;
use testkit::routers::{Kind, Link, Neighbor, ROUTER_AS, ROUTER_V4, Router};
use testkit::{PATIENCE, Speaker, metric};

const NAMESPACE: &str = "metallb-system";
const NODE: &str = "node-a";
const WEB_V4: &str = "203.0.113.1";
const WEB_V6: &str = "2001:db8:5::1";

fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"addresses": addresses},
    })
}

fn node(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": labels}})
}

fn web() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "RequireDualStack",
            "ipFamilies": ["IPv4", "IPv6"],
            "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}],
        },
    })
}

/// web's EndpointSlice of `family` with one ready endpoint on `on_node`.
fn endpoints(family: &str, on_node: &str) -> Value {
    let (name, address) = match family {
        "IPv4" => ("web-v4", "10.0.0.1"),
        _ => ("web-v6", "fd00::1"),
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": family,
        "endpoints": [{"addresses": [address], "nodeName": on_node, "conditions": {"ready": true}}],
    })
}

/// A cluster whose API server listens in a namespace, and herald reading it from there.
struct Cluster {
    api: BlockingClient,
    herald: Speaker,
    _server: ApiServer,
}

impl Cluster {
    /// Starts an API server in `ns` holding `objects`, with web's addresses assigned, and
    /// herald in `ns` reading it.
    fn start(ns: &Netns, objects: Vec<Value>) -> Cluster {
        let server = ApiServer::builder()
            .start_in(ns.name())
            .expect("the API server starts");
        let api = BlockingClient::new(&server, "writer", Some(ns.name()));
        for object in objects {
            api.create(object);
        }
        // As MetalLB's controller does once it has picked the addresses.
        api.patch_status(
            &web(),
            json!({"status": {"loadBalancer": {"ingress": [{"ip": WEB_V4}, {"ip": WEB_V6}]}}}),
        );
        let herald = Speaker::start_kubernetes_in(ns, &server, NODE, NAMESPACE);
        Cluster {
            api,
            herald,
            _server: server,
        }
    }

    /// `/status` once `check` holds of it.
    fn status_where(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.herald.eventually(what, |s| {
            let st = s.get_json("/status");
            check(&st).then_some(st)
        })
    }
}

fn l2_ips(st: &Value) -> BTreeSet<String> {
    st["plan"]["l2"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["ip"].as_str().map(str::to_owned))
        .collect()
}

fn routes(st: &Value) -> BTreeSet<String> {
    st["plan"]["bgp"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["routes"].as_array().into_iter().flatten())
        .filter_map(|r| r["prefix"].as_str().map(str::to_owned))
        .collect()
}

fn both<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A namespace with a veth pair of its own: links for Layer 2 to answer on, whose frames go
/// nowhere but to each other.
fn lone_namespace() -> Netns {
    let ns = Netns::new("k8");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth1", "up"]);
    ns
}

/// The pool, advertisements and peer `peer_address` (ASN 64513, both families over one
/// session), this node (labelled for BGP), and web with its endpoints here.
fn cluster_objects(peer_address: &str) -> Vec<Value> {
    vec![
        pool("public", &["203.0.113.0/28", "2001:db8:5::/124"]),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "l2", "namespace": NAMESPACE},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "bgp", "namespace": NAMESPACE},
            "spec": {"nodeSelectors": [{"matchLabels": {"bgp": "on"}}], "communities": ["64512:7"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "router", "namespace": NAMESPACE},
            "spec": {"myASN": 64512, "peerASN": ROUTER_AS, "peerAddress": peer_address,
                     "dualStackAddressFamily": true},
        }),
        node(json!({"kubernetes.io/hostname": NODE, "bgp": "on"})),
        web(),
        endpoints("IPv4", NODE),
        endpoints("IPv6", NODE),
    ]
}

#[test]
fn the_plan_follows_the_cluster() {
    let ns = lone_namespace();
    let c = Cluster::start(&ns, cluster_objects("198.51.100.1"));
    let st = c.status_where("the plan of the cluster's dual-stack Service", |st| {
        l2_ips(st) == both([WEB_V4, WEB_V6])
    });
    assert_eq!(st["config"]["mode"], "kubernetes", "{st:#}");
    assert_eq!(st["config"]["namespace"], NAMESPACE, "{st:#}");
    assert_eq!(
        routes(&st),
        both(["203.0.113.1/32", "2001:db8:5::1/128"]),
        "{st:#}"
    );
    let m = c.herald.scrape();
    assert_eq!(
        metric(&m, "metallb_k8s_client_config_loaded_bool", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "metallb_k8s_client_config_stale_bool", &[]),
        Some(0.0)
    );
    let updates = metric(&m, "metallb_k8s_client_updates_total", &[]).unwrap_or(0.0);
    assert!(
        updates >= 8.0,
        "metallb_k8s_client_updates_total = {updates}"
    );
    // Both protocols announce web here: an Event on the Service says so for each.
    c.herald.eventually("nodeAssigned Events on web", |_| {
        let events = c.api.events_about("default", "web");
        let assigned = events.iter().filter(|(r, _)| r == "nodeAssigned").count();
        (assigned == 2).then_some(())
    });

    // The last local endpoint leaves (externalTrafficPolicy: Local): nothing is announced.
    let moved = Instant::now();
    for family in ["IPv4", "IPv6"] {
        c.api.patch(
            &endpoints(family, NODE),
            json!({"endpoints": [{"addresses": [if family == "IPv4" { "10.0.0.1" } else { "fd00::1" }],
                                  "nodeName": "node-b", "conditions": {"ready": true}}]}),
        );
    }
    let st = c.status_where("web to leave the plan with its local endpoints", |st| {
        l2_ips(st).is_empty() && routes(st).is_empty()
    });
    eprintln!(
        "plan followed the EndpointSlice change after {:?}",
        moved.elapsed()
    );
    let reasons: BTreeSet<&str> = st["plan"]["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["reason"]["reason"].as_str())
        .collect();
    assert!(reasons.contains("no-local-endpoint"), "{st:#}");

    // They come back; then the node loses the label the BGP advertisement selects.
    for family in ["IPv4", "IPv6"] {
        c.api
            .patch(&endpoints(family, NODE), endpoints(family, NODE));
    }
    c.status_where("web back in the plan", |st| {
        l2_ips(st).len() == 2 && routes(st).len() == 2
    });
    let relabelled = Instant::now();
    c.api.patch(
        &node(json!({})),
        json!({"metadata": {"labels": {"bgp": "off"}}}),
    );
    c.status_where("BGP to leave the plan with the node label", |st| {
        l2_ips(st).len() == 2 && routes(st).is_empty()
    });
    eprintln!(
        "plan followed the Node label change after {:?}",
        relabelled.elapsed()
    );

    // An invalid pool is rejected; the running plan stays, and the error is an Event on the
    // pool and shows in the metrics.
    c.api.create(pool("bad", &["2001:db8:prod::/64"]));
    let st = c.status_where("the configuration to be stale", |st| {
        st["config"]["state"] == "stale"
    });
    assert_eq!(l2_ips(&st).len(), 2, "the last good plan stays: {st:#}");
    let errors = st["config"]["last_errors"].to_string();
    assert!(errors.contains("prod"), "{st:#}");
    let m = c.herald.scrape();
    assert_eq!(
        metric(&m, "metallb_k8s_client_config_loaded_bool", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "metallb_k8s_client_config_stale_bool", &[]),
        Some(1.0)
    );
    c.herald
        .eventually("an invalidConfiguration Event on the bad pool", |_| {
            let events = c.api.events_about(NAMESPACE, "bad");
            events
                .iter()
                .any(|(reason, note)| reason == "invalidConfiguration" && note.contains("prod"))
                .then_some(())
        });
    c.api.delete(&pool("bad", &[]));
    c.status_where("the configuration to load again", |st| {
        st["config"]["state"] == "loaded"
    });

    // The Service is deleted: it leaves the plan.
    c.api.delete(&web());
    c.status_where("web to leave the plan", |st| {
        l2_ips(st).is_empty() && routes(st).is_empty() && st["config"]["state"] == "loaded"
    });
}

#[test]
fn a_router_learns_the_routes_of_a_service_created_through_the_api() {
    let link = Link::new("kb");
    let router = Router::start(
        Kind::Bird,
        &link.router,
        &[Neighbor {
            name: "herald".into(),
            address: "192.0.2.1".into(),
            asn: 64512,
            hold_time: None,
            password: None,
            extended_next_hop: false,
            active: false,
            ..Neighbor::default()
        }],
    );
    let c = Cluster::start(&link.speaker, cluster_objects(ROUTER_V4));
    let holds = |prefix: &str| {
        router
            .routes(prefix)
            .unwrap_or_default()
            .iter()
            .any(|r| r.communities.iter().any(|c| c == "64512:7"))
    };
    for prefix in [format!("{WEB_V4}/32"), format!("{WEB_V6}/128")] {
        testkit::netns::poll_until(&format!("BIRD to hold {prefix}"), PATIENCE, |last| {
            *last = router.dump();
            holds(&prefix).then_some(())
        });
    }
    c.api.delete(&web());
    for prefix in [format!("{WEB_V4}/32"), format!("{WEB_V6}/128")] {
        testkit::netns::poll_until(&format!("BIRD to drop {prefix}"), PATIENCE, |last| {
            *last = router.dump();
            router
                .routes(&prefix)
                .unwrap_or_default()
                .is_empty()
                .then_some(())
        });
    }
}
