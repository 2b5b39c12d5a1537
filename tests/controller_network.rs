//! `herald controller` and `herald speaker` together, end to end: on a LAN of network
//! namespaces (two nodes, a client, a BIRD router, the testkit API server on a control plane),
//! the controller assigns two dual-stack Services their addresses from MetalLB's objects, and
//! what the speakers then make of them is checked where it lands: the client's own neighbor
//! cache for the Layer 2 Service, BIRD's routing table for the BGP one, and MetalLB's
//! ServiceL2Status / ServiceBGPStatus objects. Needs root; fails, never skips, without it.

use serde_json::{Value, json};
use testkit::PATIENCE;
use testkit::cluster::{Cluster, NAMESPACE};
use testkit::netns::poll_until;
use testkit::routers::{Daemon, Kind, RouterRoute, parse_bird};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const ROUTER: (&str, &str) = ("192.0.2.254", "2001:db8::254");

fn bird_config(cluster: &Cluster) -> String {
    let mut c = format!(
        "log stderr all;\nrouter id {};\nprotocol device {{ scan time 1; }}\n",
        ROUTER.0
    );
    for n in &cluster.nodes {
        c += &format!(
            "protocol bgp {} {{\n  local {} as {ROUTER_AS};\n  neighbor {} as {NODE_AS};\n  passive on;\n  direct;\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n",
            n.name.replace('-', "_"),
            ROUTER.0,
            n.v4
        );
    }
    c
}

fn configuration() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"addresses": ["192.0.2.200-192.0.2.209", "2001:db8::1:0/124"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "routed", "namespace": NAMESPACE},
            "spec": {"addresses": ["198.51.100.0/28", "2001:db8:100::/124"], "autoAssign": false},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"ipAddressPools": ["lan"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "routed", "namespace": NAMESPACE},
            "spec": {"ipAddressPools": ["routed"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "router", "namespace": NAMESPACE},
            "spec": {"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER.0,
                     "dualStackAddressFamily": true, "holdTime": "9s"},
        }),
    ]
}

fn ingress(cluster: &Cluster, name: &str) -> Vec<String> {
    cluster
        .server
        .objects("v1", "Service")
        .into_iter()
        .filter(|s| s["metadata"]["name"] == name && s["metadata"]["namespace"] == "default")
        .flat_map(|s| {
            s["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The nodes named by MetalLB's status objects of `kind` for `default/NAME`.
fn status_nodes(cluster: &Cluster, kind: &str, name: &str) -> Vec<String> {
    let mut nodes: Vec<String> = cluster
        .server
        .objects("metallb.io/v1beta1", kind)
        .into_iter()
        .filter(|o| {
            o["metadata"]["labels"]["metallb.io/service-name"] == name
                && o["status"]["serviceName"] == name
                && o["status"]["serviceNamespace"] == "default"
        })
        .filter_map(|o| o["status"]["node"].as_str().map(str::to_owned))
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn the_speakers_announce_what_the_controller_assigns() {
    let mut c = Cluster::new(2);
    let router_ns = c.host("rt", ROUTER.0, ROUTER.1);
    let router = Daemon::start(Kind::Bird, &router_ns, &bird_config(&c));
    for object in configuration() {
        c.api.create(object);
    }
    let on: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    let on: Vec<&str> = on.iter().map(String::as_str).collect();
    // web takes the first addresses of the auto-assign pool; api asks for its own addresses
    // of the pool that is not auto-assigned, as MetalLB's annotation says.
    for (i, (name, annotations)) in [
        ("web", json!({})),
        (
            "api",
            json!({"metallb.io/loadBalancerIPs": "198.51.100.1,2001:db8:100::1"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        c.api.create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                     "ipFamilies": ["IPv4", "IPv6"],
                     "clusterIPs": [format!("10.96.0.{}", 10 + i), format!("fd00:10:96::{}", 10 + i)],
                     "ports": [{"port": 80}]},
        }));
        c.endpoints(name, &on);
    }
    let controller = c.controller(&[]);
    for (name, want) in [
        ("web", ["192.0.2.200", "2001:db8::1:0"]),
        ("api", ["198.51.100.1", "2001:db8:100::1"]),
    ] {
        poll_until(
            &format!("the controller to give {name} {want:?}"),
            PATIENCE,
            |last| {
                let got = ingress(&c, name);
                *last = format!(
                    "{got:?}; the controller's logs:\n{}",
                    controller.logs_text()
                );
                (got == want).then_some(())
            },
        );
    }
    c.start_all();

    // Layer 2: one node answers each address, and the client's kernel resolves it there.
    let mut leaders = Vec::new();
    for ip in ["192.0.2.200", "2001:db8::1:0"] {
        let leader = c.wait_leader(ip);
        c.wait_client_sees(ip, leader);
        leaders.push(c.nodes[leader].name.clone());
    }
    // ... and MetalLB's ServiceL2Status names the nodes that answer.
    let mut want_l2 = leaders.clone();
    want_l2.sort();
    want_l2.dedup();
    poll_until("web's ServiceL2Status objects", PATIENCE, |last| {
        let got = status_nodes(&c, "ServiceL2Status", "web");
        *last = format!("{got:?}");
        (got == want_l2).then_some(())
    });

    // BGP: the router learned both of api's addresses from every node.
    for prefix in ["198.51.100.1/32", "2001:db8:100::1/128"] {
        poll_until(
            &format!("the router's routes for {prefix} from both nodes"),
            PATIENCE,
            |last| {
                let out = router.birdc(&["show", "route", "all"]).unwrap_or_default();
                let routes: Vec<RouterRoute> = parse_bird(&out)
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .collect();
                *last = out;
                // One route per node, each with that node's address as its next hop (an
                // IPv6 next hop may carry the node's link-local address after it).
                let mut hops: Vec<String> = routes
                    .iter()
                    .filter_map(|r| r.next_hops.first().map(ToString::to_string))
                    .collect();
                hops.sort();
                let mut want: Vec<String> = c
                    .nodes
                    .iter()
                    .map(|n| {
                        if prefix.contains(':') {
                            n.v6.clone()
                        } else {
                            n.v4.clone()
                        }
                    })
                    .collect();
                want.sort();
                (hops == want).then_some(())
            },
        );
    }
    poll_until("api's ServiceBGPStatus objects", PATIENCE, |last| {
        let got = status_nodes(&c, "ServiceBGPStatus", "api");
        *last = format!("{got:?}");
        (got == ["node-1", "node-2"]).then_some(())
    });
    drop(controller);
    drop(router);
    drop(router_ns);
}
