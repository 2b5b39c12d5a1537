//! `herald-lab`: herald's main job on a self-contained network, for seeing it work.
//!
//! Builds a LAN (a bridge) in network namespaces with two Kubernetes nodes, a client, a BIRD
//! router and a control plane running the testkit API server; creates MetalLB's
//! configuration and two dual-stack Services through the API; runs `herald controller`, which
//! assigns their addresses (one by pool annotation, one by requested addresses), and `herald
//! speaker` in Kubernetes mode on both nodes; and reports what the client's kernel resolves the Layer 2
//! Service to and what the router learns over BGP. Then it deletes the BGP Service and shows
//! the routes go. With `--keep` it stays up until Ctrl-C for exploring.
//!
//! Needs root, iproute2, bird2 and iputils-ping (`cargo xtask lab` installs them). Sends
//! nothing outside the namespaces it creates; they are deleted when it ends.

use clap::Parser;
use serde_json::{Value, json};
use std::path::PathBuf;
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::{Bridge, Netns, output, poll_until};
use testkit::routers::{Daemon, Kind, RouterRoute, parse_bird};
use testkit::{PATIENCE, Speaker};

#[derive(Parser)]
#[command(about = "herald on a self-contained network: two nodes, a client, a BGP router")]
struct Args {
    /// Stay up after the report, until Ctrl-C, to look around.
    #[arg(long)]
    keep: bool,
}

const NS: &str = "metallb-system";
const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const CONTROL_PLANE: (&str, &str) = ("192.0.2.250", "2001:db8::250");
const ROUTER: (&str, &str) = ("192.0.2.254", "2001:db8::254");
const CLIENT: (&str, &str) = ("192.0.2.100", "2001:db8::100");
const NODES: [(&str, &str, &str); 2] = [
    ("node-1", "192.0.2.11", "2001:db8::11"),
    ("node-2", "192.0.2.12", "2001:db8::12"),
];
/// Answered by ARP/NDP on the LAN.
const WEB: (&str, &str) = ("192.0.2.200", "2001:db8::200");
/// Routed by BGP.
const API: (&str, &str) = ("198.51.100.1", "2001:db8:100::1");

fn main() {
    let args = Args::parse();
    testkit::netns::require_privileges();
    // The report says what matters; herald's own logs stay out of it.
    testkit::echo_speaker_logs(false);
    let lab = Lab::build();
    lab.report();
    if args.keep {
        lab.explore();
        wait_for_interrupt();
    }
    lab.withdraw();
    println!("\nlab: done; removing its namespaces");
}

struct Lab {
    _controller: Speaker,
    client: Netns,
    nodes: Vec<(&'static str, Netns, Speaker)>,
    router: Daemon,
    api: BlockingClient,
    _server: ApiServer,
    _dir: tempfile::TempDir,
    _control_plane: Netns,
    _router_ns: Netns,
    _bridge: Bridge,
}

impl Lab {
    fn build() -> Lab {
        println!(
            "lab: building the network (a bridge; two nodes, a client, a router, a control plane)"
        );
        let bridge = Bridge::new();
        let on_lan = |prefix: &str, (v4, v6): (&str, &str)| {
            let ns = Netns::new(prefix);
            testkit::lan::quiet(&ns);
            bridge.attach(&ns, "eth0");
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            ns
        };
        let control_plane = on_lan("cp", CONTROL_PLANE);
        let router_ns = on_lan("rt", ROUTER);
        let client = on_lan("cl", CLIENT);
        let node_ns: Vec<Netns> = NODES
            .iter()
            .map(|(_, v4, v6)| on_lan("nd", (v4, v6)))
            .collect();

        let router = Daemon::start(Kind::Bird, &router_ns, &bird_config());
        println!(
            "lab: BIRD runs in {} as AS{ROUTER_AS} at {}",
            router_ns.name(),
            ROUTER.0
        );

        let server = ApiServer::builder()
            .listen(
                format!("{}:6443", CONTROL_PLANE.0)
                    .parse()
                    .expect("an address"),
            )
            .service_cidrs("10.96.0.0/12,fd00:10:96::/112")
            .start_in(control_plane.name())
            .expect("the API server starts");
        println!("lab: the Kubernetes API server listens at {}", server.url());
        let api = BlockingClient::new(&server, "lab", Some(control_plane.name()));
        for object in cluster() {
            api.create(object);
        }
        println!("lab: created MetalLB's configuration, two nodes and two dual-stack Services");

        let dir = tempfile::Builder::new()
            .prefix("herald-lab")
            .tempdir()
            .expect("a scratch directory");
        // herald's controller assigns the addresses, as MetalLB's would.
        let controller_kubeconfig = dir.path().join("controller.kubeconfig");
        server
            .write_kubeconfig(&controller_kubeconfig, "herald-controller")
            .expect("writing a kubeconfig");
        let controller = Speaker::controller_in(
            Some(&control_plane),
            &controller_kubeconfig,
            &["--namespace", NS],
        );
        println!(
            "lab: herald controller runs in {} and assigns the Services' addresses",
            control_plane.name()
        );
        for (service, (v4, v6)) in [("web", WEB), ("api", API)] {
            let deadline = std::time::Instant::now() + testkit::PATIENCE;
            loop {
                let got: Vec<String> = api
                    .list(&service_object(service))
                    .into_iter()
                    .filter(|s| s["metadata"]["name"] == service)
                    .flat_map(|s| {
                        s["status"]["loadBalancer"]["ingress"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if got == [v4, v6] {
                    println!("lab: the controller gave {service} {v4} and {v6}");
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the controller did not give {service} {v4} and {v6} (it has {got:?}); its logs:\n{}",
                    controller.logs_text()
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let nodes = node_ns
            .into_iter()
            .zip(NODES)
            .map(|(ns, (name, _, _))| {
                let kubeconfig = dir.path().join(format!("{name}.kubeconfig"));
                server
                    .write_kubeconfig(&kubeconfig, name)
                    .expect("writing a kubeconfig");
                let kubeconfig = kubeconfig.display().to_string();
                let herald = Speaker::start_in(
                    &ns,
                    &Vec::<PathBuf>::new(),
                    name,
                    &["--kubeconfig", &kubeconfig, "--namespace", NS],
                );
                println!(
                    "lab: herald speaker runs on {name} (namespace {})",
                    ns.name()
                );
                (name, ns, herald)
            })
            .collect();
        Lab {
            _controller: controller,
            client,
            nodes,
            router,
            api,
            _server: server,
            _dir: dir,
            _control_plane: control_plane,
            _router_ns: router_ns,
            _bridge: bridge,
        }
    }

    fn report(&self) {
        println!("\n== What each node plans and does (from its /status)");
        for (name, ns, herald) in &self.nodes {
            let st = herald.eventually("a valid plan", |s| {
                let st = s.get_json("/status");
                (st["config"]["state"] == "loaded").then_some(st)
            });
            let l2: Vec<String> = st["announcing"]["layer2"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["interfaces"].as_array().is_some_and(|i| !i.is_empty()))
                .filter_map(|a| a["ip"].as_str().map(str::to_owned))
                .collect();
            let answers = if l2.is_empty() {
                "nothing".to_owned()
            } else {
                l2.join(", ")
            };
            println!(
                "{name}: answers ARP/NDP for {answers} on eth0 (MAC {})",
                ns.mac("eth0")
            );
            for skipped in st["plan"]["skipped"].as_array().into_iter().flatten() {
                if let (Some(ip), Some(reason)) =
                    (skipped["ip"].as_str(), skipped["reason"]["reason"].as_str())
                {
                    let protocol = skipped["protocol"].as_str().unwrap_or("any protocol");
                    println!("{name}: does not announce {ip} by {protocol}: {reason}");
                }
            }
            let session = herald.eventually("its BGP session to come up", |s| {
                let st = s.get_json("/status");
                let session = st["announcing"]["bgp"][0].clone();
                (session["state"] == "Established").then_some(session)
            });
            println!(
                "{name}: BGP session to {} is {}, {} routes advertised",
                session["address"].as_str().unwrap_or("?"),
                session["state"].as_str().unwrap_or("?"),
                session["routes_advertised"]
            );
        }

        println!("\n== The client's kernel resolves the Layer 2 Service (ip neigh)");
        for ip in [WEB.0, WEB.1] {
            let entry = poll_until(&format!("the client to resolve {ip}"), PATIENCE, |last| {
                let _ = output(self.client.command("ping").args(["-c1", "-W1", ip]));
                *last = self.client.ip(&["neigh", "show", "to", ip, "dev", "eth0"]);
                last.contains("lladdr").then(|| last.trim().to_owned())
            });
            let owner = self
                .nodes
                .iter()
                .find(|(_, ns, _)| entry.contains(&ns.mac("eth0")))
                .map_or("an unknown MAC", |(name, _, _)| name);
            println!("client: {entry}   <- {owner}");
        }

        println!("\n== The router's table for the BGP Service (birdc show route all)");
        for prefix in [format!("{}/32", API.0), format!("{}/128", API.1)] {
            let routes = self.wait_routes(&prefix, |r| r.len() == NODES.len());
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

    fn withdraw(&self) {
        println!("\n== kubectl delete service api: the router drops its routes");
        self.api.delete(&service_object("api"));
        for prefix in [format!("{}/32", API.0), format!("{}/128", API.1)] {
            self.wait_routes(&prefix, |r| r.is_empty());
            println!("router: no route for {prefix} any more");
        }
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
        for (name, ns, herald) in &self.nodes {
            println!(
                "  ip netns exec {} curl -s http://{}/status    # {name}",
                ns.name(),
                herald.addr(),
            );
        }
        println!("  ip netns exec {} ip neigh", self.client.name());
        println!(
            "  birdc -s {}/bird.ctl show route all",
            self.router.dir().display()
        );
    }
}

fn bird_config() -> String {
    let mut c = format!(
        "log stderr all;\nrouter id {};\nprotocol device {{ scan time 1; }}\n",
        ROUTER.0
    );
    for (name, v4, _) in NODES {
        c += &format!(
            "protocol bgp {} {{\n  local {} as {ROUTER_AS};\n  neighbor {v4} as {NODE_AS};\n  passive on;\n  direct;\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n",
            name.replace('-', "_"),
            ROUTER.0
        );
    }
    c
}

fn service_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}})
}

/// MetalLB's configuration for the lab, its nodes and Services.
fn cluster() -> Vec<Value> {
    let mut objects = vec![
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": NS},
            "spec": {"addresses": ["192.0.2.200-192.0.2.219", "2001:db8::200-2001:db8::219"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "routed", "namespace": NS},
            "spec": {"addresses": ["198.51.100.0/28", "2001:db8:100::/124"]},
        }),
        // Until election lands every eligible node answers, so one node is chosen here.
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": NS},
            "spec": {"ipAddressPools": ["lan"],
                     "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node-1"}}]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "routed", "namespace": NS},
            "spec": {"ipAddressPools": ["routed"], "communities": ["64512:100", "no-export"]},
        }),
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "router", "namespace": NS},
            "spec": {"myASN": NODE_AS, "peerASN": ROUTER_AS, "peerAddress": ROUTER.0,
                     "dualStackAddressFamily": true, "holdTime": "9s"},
        }),
    ];
    for (name, _, _) in NODES {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        }));
    }
    // web asks for its pool, api for its addresses: both as MetalLB's annotations say.
    for (service, annotations) in [
        ("web", json!({"metallb.io/address-pool": "lan"})),
        (
            "api",
            json!({"metallb.io/loadBalancerIPs": format!("{},{}", API.0, API.1)}),
        ),
    ] {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": "default", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                     "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]},
        }));
        for (family, address) in [("IPv4", "10.244.0.5"), ("IPv6", "fd00:10:244::5")] {
            let endpoints: Vec<Value> = NODES
                .iter()
                .map(|(node, _, _)| {
                    json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true}})
                })
                .collect();
            objects.push(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{service}-{}", family.to_lowercase()),
                             "namespace": "default",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": family,
                "endpoints": endpoints,
            }));
        }
    }
    objects
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
