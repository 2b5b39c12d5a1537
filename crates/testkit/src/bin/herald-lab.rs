//! `herald-lab`: herald's main job on a self-contained network, for seeing it work.
//!
//! Builds a LAN (a bridge) in network namespaces with three Kubernetes nodes, a client, a BIRD
//! router and a control plane running the testkit API server ([`testkit::cluster`]); creates
//! MetalLB's configuration (one L2Advertisement for every node, one BGPAdvertisement) and two
//! dual-stack Services through the API; runs `herald controller`, which assigns their
//! addresses (one by pool annotation, one by requested addresses), and `herald speaker` in
//! Kubernetes mode on every node. It reports which node the election put on each Layer 2 address and what the client's
//! kernel resolves them to, and what the router learns over BGP; then stops the leader of an
//! address gracefully and then with `kill -9`, printing the failover times the client saw;
//! then deletes the BGP Service and shows the routes go; and finally runs `herald doctor` on a
//! node whose IPv6 it turned off, to show the failure named with its fix. With `--keep` it
//! stays up (before the last two steps) until Ctrl-C for exploring.
//!
//! Needs root, iproute2, bird2 and iputils-ping (`cargo xtask lab` installs them). Sends
//! nothing outside the namespaces it creates; they are deleted when it ends.

use clap::Parser;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::cluster::{Cluster, NAMESPACE, time_until_client_sees};
use testkit::netns::{Netns, poll_until};
use testkit::routers::{Daemon, Kind, RouterRoute, parse_bird};
use testkit::{PATIENCE, Signal};

#[derive(Parser)]
#[command(about = "herald on a self-contained network: three nodes, a client, a BGP router")]
struct Args {
    /// Stay up after the report, until Ctrl-C, to look around.
    #[arg(long)]
    keep: bool,
}

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const ROUTER: (&str, &str) = ("192.0.2.254", "2001:db8::254");
/// Answered by ARP/NDP on the LAN.
const WEB: (&str, &str) = ("192.0.2.200", "2001:db8::1:0");
/// Routed by BGP.
const API: (&str, &str) = ("198.51.100.1", "2001:db8:100::1");

fn main() {
    let args = Args::parse();
    testkit::netns::require_privileges();
    // The report says what matters; herald's own logs stay out of it.
    testkit::echo_speaker_logs(false);
    let mut lab = Lab::build();
    lab.report();
    lab.failover();
    if args.keep {
        lab.explore();
        wait_for_interrupt();
    }
    lab.withdraw();
    lab.doctor();
    println!("\nlab: done; removing its namespaces");
}

struct Lab {
    // Dropped first: it runs in the cluster's control plane.
    _controller: testkit::Speaker,
    cluster: Cluster,
    router: Daemon,
    _router_ns: Netns,
}

impl Lab {
    fn build() -> Lab {
        println!(
            "lab: building the network (a bridge; three nodes, a client, a router, a control plane)"
        );
        let cluster = Cluster::new(3);
        let router_ns = cluster.host("rt", ROUTER.0, ROUTER.1);
        let router = Daemon::start(Kind::Bird, &router_ns, &bird_config(&cluster));
        println!(
            "lab: BIRD runs in {} as AS{ROUTER_AS} at {}",
            router_ns.name(),
            ROUTER.0
        );
        println!(
            "lab: the Kubernetes API server listens at {}",
            cluster.server.url()
        );
        for object in configuration() {
            cluster.api.create(object);
        }
        let on: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        // web asks for its pool, api for its addresses: both as MetalLB's annotations say.
        for (i, (name, annotations)) in [
            ("web", json!({"metallb.io/address-pool": "lan"})),
            (
                "api",
                json!({"metallb.io/loadBalancerIPs": format!("{},{}", API.0, API.1)}),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            cluster.api.create(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default", "annotations": annotations},
                "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                         "ipFamilies": ["IPv4", "IPv6"],
                         "clusterIPs": [format!("10.96.0.{}", 10 + i), format!("fd00:10:96::{}", 10 + i)],
                         "ports": [{"port": 80}]},
            }));
            cluster.endpoints(name, &on);
        }
        println!(
            "lab: created MetalLB's configuration (one L2Advertisement for every node) and two dual-stack Services without addresses"
        );
        let controller = cluster.controller(&[]);
        println!(
            "lab: herald controller runs on the control plane and assigns the Services' addresses"
        );
        for (name, (v4, v6)) in [("web", WEB), ("api", API)] {
            poll_until(
                &format!("the controller to give {name} {v4} and {v6}"),
                PATIENCE,
                |last| {
                    let got: Vec<String> = cluster
                        .api
                        .list(&json!({"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": name, "namespace": "default"}}))
                        .into_iter()
                        .filter(|s| s["metadata"]["name"] == name)
                        .flat_map(|s| {
                            s["status"]["loadBalancer"]["ingress"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    *last = format!(
                        "{got:?}; the controller's logs:\n{}",
                        controller.logs_text()
                    );
                    (got == [v4, v6]).then_some(())
                },
            );
            println!("lab: the controller gave {name} {v4} and {v6}");
        }
        let mut lab = Lab {
            _controller: controller,
            cluster,
            router,
            _router_ns: router_ns,
        };
        lab.cluster.start_all();
        for n in &lab.cluster.nodes {
            println!(
                "lab: herald speaker runs on {} (namespace {}, MAC {})",
                n.name,
                n.ns.name(),
                n.mac()
            );
        }
        lab
    }

    fn report(&self) {
        let c = &self.cluster;
        println!(
            "\n== The election: which node answers each Layer 2 address (from the Leases and /status)"
        );
        for ip in [WEB.0, WEB.1] {
            let leader = c.wait_leader(ip);
            let st = c.address_status(leader, ip).unwrap_or_default();
            println!(
                "{ip}: {} leads it (Lease herald-{}), answering on {}",
                c.nodes[leader].name,
                testkit::cluster::lease_key(ip),
                st["interfaces"]
            );
        }
        for (i, n) in c.nodes.iter().enumerate() {
            let led: Vec<&str> = [WEB.0, WEB.1]
                .into_iter()
                .filter(|ip| c.answering(ip).contains(&i))
                .collect();
            println!(
                "{}: leads {}",
                n.name,
                if led.is_empty() {
                    "nothing (a standby)".to_owned()
                } else {
                    led.join(", ")
                }
            );
        }

        println!("\n== The client's kernel resolves the Layer 2 Service (ip neigh)");
        for ip in [WEB.0, WEB.1] {
            let leader = c.wait_leader(ip);
            c.wait_client_sees(ip, leader);
            let entry = testkit::lan::neigh(&c.client, ip, "eth0");
            println!("client: {}   <- {}", entry.trim(), c.nodes[leader].name);
        }

        println!("\n== Each node's BGP session (from its /status)");
        for n in &c.nodes {
            let session = n.speaker().eventually("its BGP session to come up", |s| {
                let st = s.get_json("/status");
                let session = st["announcing"]["bgp"][0].clone();
                (session["state"] == "Established").then_some(session)
            });
            println!(
                "{}: BGP session to {} is {}, {} routes advertised",
                n.name,
                session["address"].as_str().unwrap_or("?"),
                session["state"].as_str().unwrap_or("?"),
                session["routes_advertised"]
            );
        }

        println!(
            "\n== The router's table for the BGP Service (birdc show route all): ECMP over every node"
        );
        for prefix in [format!("{}/32", API.0), format!("{}/128", API.1)] {
            let routes = self.wait_routes(&prefix, |r| r.len() == c.nodes.len());
            for r in routes {
                println!(
                    "router: {} via {} path {:?} communities {:?} large {:?}",
                    r.prefix,
                    r.next_hops
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    r.as_path,
                    r.communities,
                    r.large_communities
                );
            }
        }
    }

    /// Stops the leader of the Layer 2 Service's IPv4 address, gracefully and then with
    /// `kill -9`, and times how long the client's neighbor cache takes to follow.
    fn failover(&mut self) {
        println!("\n== Failover, as the client sees it");
        let ip = WEB.0;
        for (what, signal) in [("SIGTERM", Signal::Term), ("kill -9", Signal::Kill)] {
            let c = &mut self.cluster;
            let old = c.wait_leader(ip);
            c.wait_client_sees(ip, old);
            // Past Linux's ARP locktime (1 s), as an entry in use would be.
            std::thread::sleep(Duration::from_millis(1200));
            let since = Instant::now();
            c.stop(old, signal);
            let new = c.wait_leader(ip);
            let took = time_until_client_sees(c, ip, new, since);
            println!(
                "{what} to {}: the client's cache moved {ip} to {} after {:.3} s",
                c.nodes[old].name,
                c.nodes[new].name,
                took.as_secs_f64()
            );
            c.start(old, &[]);
            println!(
                "{} is back as a standby: it takes nothing back",
                c.nodes[old].name
            );
        }
    }

    fn withdraw(&self) {
        println!("\n== kubectl delete service api: the router drops its routes");
        self.cluster.api.delete(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "default"},
        }));
        for prefix in [format!("{}/32", API.0), format!("{}/128", API.1)] {
            self.wait_routes(&prefix, |r| r.is_empty());
            println!("router: no route for {prefix} any more");
        }
    }

    /// `herald doctor` on a node whose IPv6 the lab turns off on purpose: what fails, and the
    /// fix it names.
    fn doctor(&self) {
        let node = &self.cluster.nodes[2];
        println!(
            "\n== herald doctor on {}, after `sysctl net.ipv6.conf.eth0.disable_ipv6=1` there",
            node.name
        );
        node.ns.sysctl("net.ipv6.conf.eth0.disable_ipv6", "1");
        let out = node.herald(&["doctor"]);
        let lines: Vec<&str> = out.stdout.lines().collect();
        for line in lines.iter().filter(|l| !l.starts_with("pass")) {
            println!("{}: {line}", node.name);
        }
        println!(
            "(exit status {}; the checks that passed are left out)",
            out.code().map_or("none".into(), |c| c.to_string())
        );
    }

    fn wait_routes(&self, prefix: &str, ok: impl Fn(&[RouterRoute]) -> bool) -> Vec<RouterRoute> {
        poll_until(
            &format!("the router's routes for {prefix}"),
            PATIENCE,
            |last| {
                let out = self
                    .router
                    .birdc(&["show", "route", "all"])
                    .unwrap_or_default();
                let routes: Vec<RouterRoute> = parse_bird(&out)
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .collect();
                *last = out;
                ok(&routes).then_some(routes)
            },
        )
    }

    fn explore(&self) {
        println!("\n== The lab stays up until Ctrl-C. To look around:");
        for n in &self.cluster.nodes {
            println!(
                "  ip netns exec {} curl -s http://{}/status    # {}",
                n.ns.name(),
                n.speaker().status_addr(),
                n.name
            );
        }
        println!("  ip netns exec {} ip neigh", self.cluster.client.name());
        println!(
            "  birdc -s {}/bird.ctl show route all",
            self.router.dir().display()
        );
        println!(
            "  kubectl --server {} get leases -n {NAMESPACE}",
            self.cluster.server.url()
        );
    }
}

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

/// MetalLB's configuration for the lab: one pool answered on the LAN by every node (the
/// election picks one per address), one routed by BGP.
fn configuration() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"addresses": ["192.0.2.200-192.0.2.219", "2001:db8::1:0/112"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "routed", "namespace": NAMESPACE},
            "spec": {"addresses": ["198.51.100.0/28", "2001:db8:100::/124"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"ipAddressPools": ["lan"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "routed", "namespace": NAMESPACE},
            "spec": {"ipAddressPools": ["routed"], "communities": ["64512:100", "no-export"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "router", "namespace": NAMESPACE},
            "spec": {"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER.0,
                     "dualStackAddressFamily": true, "holdTime": "9s"},
        }),
    ]
}

fn wait_for_interrupt() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}
