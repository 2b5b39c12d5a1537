//! A Kubernetes cluster on a test LAN, for everything that needs several herald nodes
//! electing among themselves: the testkit API server in a control-plane namespace, nodes each
//! running `herald speaker` in Kubernetes mode, and a client, all on one bridge. The nodes
//! reach the API server over the LAN, as kubelets and DaemonSet pods do, so one node can be
//! cut off from it with a firewall rule while its LAN stays up.
//!
//! Addresses: the LAN is 192.0.2.0/24 and 2001:db8::/64; the control plane is .2, the client
//! .100, node `i` (from 0) is .11 + i. Service addresses for Layer 2 come from the same LAN
//! ([`service_v4`], [`service_v6`]).

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apiserver::{ApiServer, BlockingClient};
use crate::lan::{neigh, probe_soon, quiet};
use crate::netns::{Bridge, Netns, output, poll_until};
use crate::{PATIENCE, Signal, Speaker};

/// The namespace of MetalLB's configuration and herald's Leases.
pub const NAMESPACE: &str = "metallb-system";
pub const CONTROL_PLANE: (&str, &str) = ("192.0.2.2", "2001:db8::2");
pub const CLIENT: (&str, &str) = ("192.0.2.100", "2001:db8::100");
const API_PORT: u16 = 6443;

/// The IPv4 service address number `i` (0 to 49): 192.0.2.200 on.
pub fn service_v4(i: usize) -> String {
    assert!(i < 50, "only 50 IPv4 service addresses on the test LAN");
    Ipv4Addr::new(192, 0, 2, 200 + i as u8).to_string()
}

/// The IPv6 service address number `i` (0 to 65535): 2001:db8::1:0 on.
pub fn service_v6(i: usize) -> String {
    assert!(i < 65536, "only 65536 IPv6 service addresses");
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i as u16).to_string()
}

/// One node of the cluster.
pub struct Node {
    pub name: String,
    pub ns: Netns,
    pub v4: String,
    pub v6: String,
    /// herald, while it runs.
    pub speaker: Option<Speaker>,
    kubeconfig: PathBuf,
}

impl Node {
    pub fn mac(&self) -> String {
        self.ns.mac("eth0")
    }

    pub fn speaker(&self) -> &Speaker {
        self.speaker
            .as_ref()
            .unwrap_or_else(|| panic!("herald is not running on {}", self.name))
    }

    /// Runs `herald ARGS... --kubeconfig K --namespace N --node NAME` to completion in this
    /// node's namespace, as an operator would on the node (`herald doctor`).
    pub fn herald(&self, args: &[&str]) -> crate::Output {
        let mut cmd = self.ns.command(&crate::herald_bin().display().to_string());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", NAMESPACE, "--node", &self.name]);
        crate::run_herald(cmd)
    }
}

pub struct Cluster {
    pub client: Netns,
    pub nodes: Vec<Node>,
    pub api: BlockingClient,
    pub server: ApiServer,
    /// Extra arguments every speaker gets.
    pub speaker_args: Vec<String>,
    _dir: tempfile::TempDir,
    control_plane: Netns,
    // Dropped last: the namespaces above hold the other ends of its ports.
    bridge: Bridge,
}

impl Cluster {
    /// The LAN, the API server holding a Node object per node (labels: hostname), and no
    /// herald running yet.
    pub fn new(nodes: usize) -> Cluster {
        crate::netns::require_privileges();
        let bridge = Bridge::new();
        let on_lan = |prefix: &str, v4: &str, v6: &str| {
            let ns = Netns::new(prefix);
            quiet(&ns);
            bridge.attach(&ns, "eth0");
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            probe_soon(&ns, "eth0");
            ns
        };
        let control_plane = on_lan("cp", CONTROL_PLANE.0, CONTROL_PLANE.1);
        let client = on_lan("cl", CLIENT.0, CLIENT.1);
        let server = ApiServer::builder()
            .listen(
                format!("{}:{API_PORT}", CONTROL_PLANE.0)
                    .parse()
                    .expect("an address"),
            )
            .start_in(control_plane.name())
            .expect("the API server starts");
        let api = BlockingClient::new(&server, "test", Some(control_plane.name()));
        let dir = tempfile::tempdir().expect("a scratch directory");
        let nodes = (0..nodes)
            .map(|i| {
                let name = format!("node-{}", i + 1);
                let v4 = Ipv4Addr::new(192, 0, 2, 11 + i as u8).to_string();
                let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + i as u16).to_string();
                let ns = on_lan("nd", &v4, &v6);
                let kubeconfig = dir.path().join(format!("{name}.kubeconfig"));
                server
                    .write_kubeconfig(&kubeconfig, &name)
                    .expect("writing a kubeconfig");
                api.create(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                }));
                Node {
                    name,
                    ns,
                    v4,
                    v6,
                    speaker: None,
                    kubeconfig,
                }
            })
            .collect();
        Cluster {
            client,
            nodes,
            api,
            server,
            speaker_args: Vec::new(),
            _dir: dir,
            control_plane,
            bridge,
        }
    }

    /// Another host on the LAN (`v4`/24, `v6`/64), e.g. one that misbehaves. It must be
    /// dropped before the cluster.
    pub fn host(&self, prefix: &str, v4: &str, v6: &str) -> Netns {
        let ns = Netns::new(prefix);
        quiet(&ns);
        self.bridge.attach(&ns, "eth0");
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
        ns
    }

    /// One IPAddressPool of the LAN's service addresses and one L2Advertisement for every
    /// node (no node pinned, no interface named).
    pub fn layer2_config(&self) {
        self.api.create(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"addresses": ["192.0.2.200-192.0.2.249", "2001:db8::1:0/112"]},
        }));
        self.api.create(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": NAMESPACE},
            "spec": {"ipAddressPools": ["lan"]},
        }));
    }

    /// A LoadBalancer Service `default/NAME` (externalTrafficPolicy Cluster unless `local`)
    /// holding `ips`, as if MetalLB's controller had assigned them, with one ready endpoint
    /// on every node.
    pub fn service(&self, name: &str, ips: &[String], local: bool) {
        let families: Vec<&str> = ips
            .iter()
            .map(|ip| match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => "IPv4",
                _ => "IPv6",
            })
            .collect();
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "type": "LoadBalancer",
                "ipFamilyPolicy": if families.len() > 1 { "RequireDualStack" } else { "SingleStack" },
                "ipFamilies": families.iter().collect::<std::collections::BTreeSet<_>>(),
                "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                "ports": [{"port": 80}],
            },
        });
        self.api.create(service.clone());
        let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        self.api.patch_status(
            &service,
            json!({"status": {"loadBalancer": {"ingress": ingress}}}),
        );
        let on: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        self.endpoints(name, &on);
    }

    /// Makes `default/NAME`'s ready endpoints exactly one per node in `on` (IPv4 slice).
    pub fn endpoints(&self, name: &str, on: &[&str]) {
        let endpoints: Vec<Value> = on
            .iter()
            .enumerate()
            .map(|(i, node)| {
                json!({"addresses": [format!("10.244.{}.{}", i, 10)], "nodeName": node,
                       "conditions": {"ready": true, "serving": true}})
            })
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-v4"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
        });
        if self
            .api
            .list(&slice)
            .iter()
            .any(|s| s["metadata"]["name"] == slice["metadata"]["name"])
        {
            self.api
                .patch(&slice, json!({"endpoints": slice["endpoints"]}));
        } else {
            self.api.create(slice);
        }
    }

    /// Starts herald on node `i` (in Kubernetes mode, with `speaker_args` and `extra`).
    pub fn start(&mut self, i: usize, extra: &[&str]) {
        let node = &self.nodes[i];
        let kubeconfig = node.kubeconfig.display().to_string();
        let mut args: Vec<&str> = vec!["--kubeconfig", &kubeconfig, "--namespace", NAMESPACE];
        args.extend(self.speaker_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let speaker = Speaker::start_in(&node.ns, &Vec::<PathBuf>::new(), &node.name, &args);
        self.nodes[i].speaker = Some(speaker);
    }

    /// Runs `herald controller` on the control plane (namespace `metallb-system`, plus
    /// `extra`), to assign the Services' addresses.
    pub fn controller(&self, extra: &[&str]) -> Speaker {
        let kubeconfig = self._dir.path().join("controller.kubeconfig");
        self.server
            .write_kubeconfig(&kubeconfig, "herald-controller")
            .expect("writing a kubeconfig");
        let mut args = vec!["--namespace", NAMESPACE];
        args.extend_from_slice(extra);
        Speaker::controller_in(Some(&self.control_plane), &kubeconfig, &args)
    }

    /// Starts herald on every node, one right after the other.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i, &[]);
        }
    }

    /// Stops herald on node `i` with `signal`, and waits for it to be gone.
    pub fn stop(&mut self, i: usize, signal: Signal) {
        let Some(mut speaker) = self.nodes[i].speaker.take() else {
            return;
        };
        speaker.signal(signal);
        assert!(
            speaker.wait_exit(PATIENCE).is_some(),
            "herald on {} did not exit after {}",
            self.nodes[i].name,
            signal.name()
        );
    }

    /// Drops node `i`'s traffic to and from the API server (its LAN stays up), or lets it
    /// through again: a node cut off from the control plane, as a firewall or a broken
    /// route would make it.
    pub fn cut_off(&self, i: usize, cut: bool) {
        let ns = &self.nodes[i].ns;
        if cut {
            let rules = format!(
                "table inet herald_test {{
                   chain out {{ type filter hook output priority 0; ip daddr {cp} tcp dport {API_PORT} drop; }}
                   chain in {{ type filter hook input priority 0; ip saddr {cp} tcp sport {API_PORT} drop; }}
                 }}",
                cp = CONTROL_PLANE.0
            );
            let file = self._dir.path().join(format!("cut-{i}.nft"));
            std::fs::write(&file, rules).expect("writing nft rules");
            crate::netns::run(ns.command("nft").arg("-f").arg(&file));
        } else {
            let _ = output(
                ns.command("nft")
                    .args(["delete", "table", "inet", "herald_test"]),
            );
        }
    }

    /// The index of the node whose MAC the client's neighbor cache holds for `ip` now, after
    /// asking (a ping starts resolution when there is no entry).
    pub fn client_sees(&self, ip: &str) -> Option<usize> {
        let entry = neigh(&self.client, ip, "eth0");
        if entry.contains("lladdr") && !entry.contains("FAILED") && !entry.contains("INCOMPLETE") {
            return self
                .nodes
                .iter()
                .position(|n| entry.contains(&format!("lladdr {} ", n.mac())));
        }
        let _ = output(
            self.client
                .command("ping")
                .args(["-c1", "-W1", "-I", "eth0", ip]),
        );
        None
    }

    /// Waits until the client's cache holds `ip` at node `i`'s MAC.
    pub fn wait_client_sees(&self, ip: &str, i: usize) {
        poll_until(
            &format!("the client to resolve {ip} to {}", self.nodes[i].name),
            PATIENCE,
            |last| {
                let seen = self.client_sees(ip);
                *last = neigh(&self.client, ip, "eth0");
                (seen == Some(i)).then_some(())
            },
        );
    }

    /// The node named in the Lease of `ip`, as the API server holds it.
    pub fn lease_holder(&self, ip: &str) -> Option<String> {
        let name = format!("herald-{}", lease_key(ip));
        self.server
            .controls()
            .objects("coordination.k8s.io/v1", "Lease")
            .into_iter()
            .find(|l| l["metadata"]["name"] == name.as_str())
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }

    /// Every address's Lease holder, by address Lease name.
    pub fn lease_holders(&self) -> std::collections::BTreeMap<String, String> {
        self.server
            .controls()
            .objects("coordination.k8s.io/v1", "Lease")
            .into_iter()
            .filter(|l| l["metadata"]["labels"]["herald.io/lease-role"] == "key")
            .filter_map(|l| {
                let name = l["metadata"]["name"].as_str()?.to_owned();
                let holder = l["spec"]["holderIdentity"].as_str()?.to_owned();
                Some((name, holder))
            })
            .collect()
    }

    /// Node `i`'s `/status` entry for `ip` in `announcing.layer2.addresses`.
    pub fn address_status(&self, i: usize, ip: &str) -> Option<Value> {
        let st = self.nodes[i].speaker().get_json("/status");
        st["announcing"]["layer2"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["ip"] == ip)
            .cloned()
    }

    /// The nodes answering for `ip` now, by their `/status`.
    pub fn answering(&self, ip: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].speaker.is_some())
            .filter(|&i| {
                self.address_status(i, ip)
                    .is_some_and(|a| a["answering"] == true)
            })
            .collect()
    }

    /// Waits until exactly one running node answers for `ip`, and returns it.
    pub fn wait_leader(&self, ip: &str) -> usize {
        poll_until(&format!("one node to answer for {ip}"), PATIENCE, |last| {
            let who = self.answering(ip);
            *last = format!("answering: {who:?}");
            match who.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
    }
}

/// The election key herald gives an address (see herald's `leadership::key`).
pub fn lease_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(v4) => format!("ip-{v4}"),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|s| format!("{s:04x}")).collect();
            format!("ip-{}", groups.join("-"))
        }
    }
}

/// Polls the client's neighbor cache for `ip` until it names node `to`'s MAC, as fast as
/// `ip neigh` answers; the time from `since` when it did.
pub fn time_until_client_sees(cluster: &Cluster, ip: &str, to: usize, since: Instant) -> Duration {
    let mac = cluster.nodes[to].mac();
    loop {
        let entry = neigh(&cluster.client, ip, "eth0");
        if entry.contains(&format!("lladdr {mac} ")) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PATIENCE,
            "the client never saw {ip} move to {}: {entry}",
            cluster.nodes[to].name
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
