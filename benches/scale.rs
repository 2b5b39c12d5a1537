//! The scale benchmark (issue 12): herald's Kubernetes mode on a cluster of 100 Nodes and
//! 10,000 Services, of which 2,000 are dual-stack LoadBalancers, with 50,000 endpoints, then
//! 1,000 changes; against a reference measured in the same run: a bare kube-rs reflector
//! (what a typical controller holds: the typed Services, EndpointSlices and this Node, as
//! MetalLB's informers hold them) watching the same API server.
//!
//! The testkit API server runs in this process, in a network namespace; herald (the release
//! binary: `$HERALD_BIN`, else built here with `cargo build --release`) runs in the same
//! namespace as node `node-000`, at the default log level, and so does the reference (this
//! binary again, with `--reference`). The configuration announces every LoadBalancer by BGP
//! to one peer (which never answers, so nothing but the plan is measured) and by Layer 2 from
//! another node only (so herald plans both protocols, and answers for nothing).
//!
//! The changes, one at a time, each waited for:
//! - 800 that change herald's plan: an endpoint of an `externalTrafficPolicy: Local` Service
//!   moved onto or off this node (its routes come or go), and a LoadBalancer's ingress
//!   address changed;
//! - 200 unrelated: a label of a ClusterIP Service changed, or an endpoint of one moved.
//!
//! Measured:
//! - change to plan: from just before the write is sent until herald logs the new plan (its
//!   one info line per plan change), p50 and p99; for the reference, until it sees the event;
//! - peak RSS (VmHWM) of herald and of the reference, after the whole run;
//! - CPU seconds (user + system) per change, over the 1,000 changes;
//! - for the unrelated changes: herald's log lines (there must be none at info or above) and
//!   its configuration reads (`herald_config_reloads_total`: none, so nothing was planned).
//!
//! Targets: peak RSS ≤ 64 MiB; p99 change to plan ≤ 50 ms; no plan and no log line for an
//! unrelated change. Reported, never asserted. Needs root: `cargo xtask bench scale`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::Netns;

const NODES: usize = 100;
const SERVICES: usize = 10_000;
const LOAD_BALANCERS: usize = 2_000;
const ENDPOINTS_PER_SERVICE: usize = 5;
const CHANGES: usize = 1_000;
/// One change in this many is unrelated to herald.
const UNRELATED_EVERY: usize = 5;
const NODE: &str = "node-000";
const NAMESPACE: &str = "metallb-system";
/// How long herald gets to say something about an unrelated change before it counts as
/// having said nothing: well past its debounce (10 ms) and planning time.
const SILENCE: Duration = Duration::from_millis(150);
const LIMIT: Duration = Duration::from_secs(120);
const RSS_TARGET_KIB: u64 = 64 * 1024;
const P99_TARGET: Duration = Duration::from_millis(50);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reference") {
        let kubeconfig = args.get(i + 1).expect("--reference KUBECONFIG");
        reference::run(kubeconfig);
        return;
    }
    testkit::netns::require_privileges();
    let herald_bin = testkit::herald_bin();
    let ns = Netns::new("sc");
    ns.ip(&["link", "set", "lo", "up"]);
    let server = ApiServer::builder()
        .start_in(ns.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(ns.name()));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, "herald")
        .expect("a kubeconfig");
    let reference_kubeconfig = dir.path().join("reference");
    server
        .write_kubeconfig(&reference_kubeconfig, "reference")
        .expect("a kubeconfig");

    let cluster = Cluster::new();
    let loaded = Instant::now();
    populate(&api, &cluster);
    eprintln!(
        "scale: {} objects written in {:.1?}",
        NODES + 2 * SERVICES + 5,
        loaded.elapsed()
    );

    let started = Instant::now();
    let mut herald = Process::start(
        &ns,
        Command::new(&herald_bin).args([
            "speaker",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--namespace",
            NAMESPACE,
            "--node",
            NODE,
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ]),
        Stream::Stderr,
    );
    let first = herald
        .wait(LIMIT, is_plan_line)
        .expect("herald's first plan");
    let herald_sync = first.0 - started;
    let metrics_addr = herald
        .seen()
        .iter()
        .find(|(_, l)| l["message"] == "serving metrics")
        .and_then(|(_, l)| l["addr"].as_str()?.parse().ok())
        .expect("herald says where it serves metrics");
    let started = Instant::now();
    let exe = std::env::current_exe().expect("this binary");
    let mut reference = Process::start(
        &ns,
        Command::new(exe).args(["--reference", &reference_kubeconfig.display().to_string()]),
        Stream::Stdout,
    );
    reference
        .wait(LIMIT, |l| l["synced"] == true)
        .expect("the reference's first list");
    let reference_sync = started.elapsed();
    eprintln!(
        "scale: herald planned the cluster {herald_sync:.1?} after starting, the reference \
         listed it in {reference_sync:.1?}"
    );

    let writer = Writer::start(&api);
    let cpu_before = cpu_seconds(herald.pid());
    let reloads_before = reloads(&ns, metrics_addr);
    let mut latencies = Vec::new();
    let mut reference_latencies = Vec::new();
    let mut unrelated = Unrelated::default();
    let mut state = cluster.clone();
    for i in 0..CHANGES {
        let change = state.next_change(i);
        if !change.affects_plan {
            // What the change before this one made herald log may still be on its way: let it
            // come, so that only what this change causes is counted.
            std::thread::sleep(SILENCE);
        }
        herald.clear();
        reference.clear();
        let reloads_at = (!change.affects_plan)
            .then(|| reloads(&ns, metrics_addr))
            .flatten();
        let sent = writer.send(change.write.clone());
        let seen = reference
            .wait(LIMIT, |l| l["name"] == change.object)
            .unwrap_or_else(|| panic!("the reference never saw change {i} ({})", change.object));
        reference_latencies.push(seen.0 - sent);
        if change.affects_plan {
            let (at, _) = herald
                .wait(LIMIT, is_plan_line)
                .unwrap_or_else(|| panic!("herald never planned change {i} ({})", change.object));
            latencies.push(at - sent);
        } else {
            std::thread::sleep(SILENCE);
            unrelated.changes += 1;
            for (_, line) in herald.seen() {
                unrelated.log_lines += 1;
                let message = line["message"].as_str().unwrap_or("?").to_owned();
                if !unrelated.messages.contains(&message) {
                    unrelated.messages.push(message);
                }
            }
            if let (Some(before), Some(after)) = (reloads_at, reloads(&ns, metrics_addr)) {
                unrelated.reads += after.saturating_sub(before);
            }
        }
    }
    let cpu = cpu_seconds(herald.pid()) - cpu_before;
    let reads = reloads(&ns, metrics_addr).unwrap_or(0) - reloads_before.unwrap_or(0);
    let herald_rss = testkit::routers::peak_rss_kib(herald.pid()).unwrap_or(0);
    let reference_rss = testkit::routers::peak_rss_kib(reference.pid()).unwrap_or(0);
    report(Report {
        herald_rss,
        reference_rss,
        cpu,
        reads,
        latencies,
        reference_latencies,
        unrelated,
        herald_sync,
        reference_sync,
    });
    drop(writer);
    drop(herald);
    drop(reference);
}

fn is_plan_line(l: &Value) -> bool {
    l["message"] == "configuration loaded; plan updated"
}

/// The cluster as written, and what the changes do to it.
#[derive(Clone)]
struct Cluster {
    /// Per LoadBalancer: its index, and whether an endpoint of it is on this node.
    local_here: Vec<bool>,
    /// Per LoadBalancer: the generation of its ingress addresses.
    address_round: Vec<u32>,
    /// Per unrelated Service: how often it was touched.
    touched: Vec<u32>,
}

/// One change: what to write, which object the reference will see change, and whether
/// herald's plan must change.
struct Change {
    write: Write,
    object: String,
    affects_plan: bool,
}

#[derive(Clone)]
enum Write {
    /// A merge patch of the object like this.
    Patch(Value, Value),
    /// A merge patch of the status of the object like this.
    PatchStatus(Value, Value),
}

fn service_name(i: usize) -> String {
    if i < LOAD_BALANCERS {
        format!("lb-{i:05}")
    } else {
        format!("svc-{i:05}")
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// Whether LoadBalancer `i` uses `externalTrafficPolicy: Local` (half of them).
fn local(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// The addresses of LoadBalancer `i` in round `round`: distinct for every pair.
fn addresses(i: usize, round: u32) -> (String, String) {
    let n = (i + round as usize * LOAD_BALANCERS) % 4096;
    (
        format!("10.64.{}.{}", n / 256, n % 256),
        format!("fd00:64::{n:x}"),
    )
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            // Every fourth Local LoadBalancer starts with an endpoint here.
            local_here: (0..LOAD_BALANCERS)
                .map(|i| local(i) && i % 8 == 0)
                .collect(),
            address_round: vec![0; LOAD_BALANCERS],
            touched: vec![0; SERVICES - LOAD_BALANCERS],
        }
    }

    /// The nodes of Service `i`'s endpoints.
    fn endpoint_nodes(&self, i: usize) -> Vec<String> {
        (0..ENDPOINTS_PER_SERVICE)
            .map(|k| {
                if k == 0 && i < LOAD_BALANCERS && self.local_here[i] {
                    NODE.to_owned()
                } else {
                    // Never node 0 otherwise.
                    node_name(1 + (i * 7 + k * 13) % (NODES - 1))
                }
            })
            .collect()
    }

    fn next_change(&mut self, n: usize) -> Change {
        if n % UNRELATED_EVERY == UNRELATED_EVERY - 1 {
            let j = (n * 37) % (SERVICES - LOAD_BALANCERS);
            let i = LOAD_BALANCERS + j;
            self.touched[j] += 1;
            let touched = self.touched[j];
            return if n.is_multiple_of(2) {
                Change {
                    write: Write::Patch(
                        service(i),
                        json!({"metadata": {"labels": {"touched": touched.to_string()}}}),
                    ),
                    object: service_name(i),
                    affects_plan: false,
                }
            } else {
                let mut nodes = self.endpoint_nodes(i);
                // Another node than the endpoint is on: a patch that changes nothing makes no
                // event, and nothing would ever see it.
                let before = nodes[0].clone();
                let mut k = touched as usize * 3;
                while nodes[0] == before {
                    nodes[0] = node_name(1 + k % (NODES - 1));
                    k += 1;
                }
                Change {
                    write: Write::Patch(slice(i, &[]), json!({"endpoints": endpoints(i, &nodes)})),
                    object: slice_name(i),
                    affects_plan: false,
                }
            };
        }
        let i = (n * 13) % LOAD_BALANCERS;
        if local(i) && !n.is_multiple_of(3) {
            // Local: moving the endpoint here or away adds or removes its routes.
            self.local_here[i] = !self.local_here[i];
            let nodes = self.endpoint_nodes(i);
            Change {
                write: Write::Patch(slice(i, &[]), json!({"endpoints": endpoints(i, &nodes)})),
                object: slice_name(i),
                affects_plan: true,
            }
        } else if local(i) && !self.local_here[i] {
            // Not announced here: a new address would change nothing; bring it here.
            self.local_here[i] = true;
            let nodes = self.endpoint_nodes(i);
            Change {
                write: Write::Patch(slice(i, &[]), json!({"endpoints": endpoints(i, &nodes)})),
                object: slice_name(i),
                affects_plan: true,
            }
        } else {
            self.address_round[i] += 1;
            let (v4, v6) = addresses(i, self.address_round[i]);
            Change {
                write: Write::PatchStatus(
                    service(i),
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": v4}, {"ip": v6}]}}}),
                ),
                object: service_name(i),
                affects_plan: true,
            }
        }
    }
}

/// A long annotation, as `kubectl apply` leaves on every object it applied.
fn last_applied(name: &str) -> String {
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"annotations\":{{}},\
         \"labels\":{{\"app.kubernetes.io/name\":\"{name}\",\"app.kubernetes.io/part-of\":\
         \"shop\"}},\"name\":\"{name}\",\"namespace\":\"default\"}},\"spec\":{{\"ports\":[{{\
         \"name\":\"http\",\"port\":80,\"protocol\":\"TCP\",\"targetPort\":8080}},{{\"name\":\
         \"https\",\"port\":443,\"protocol\":\"TCP\",\"targetPort\":8443}}],\"selector\":{{\
         \"app.kubernetes.io/name\":\"{name}\"}}}}}}"
    )
}

fn service(i: usize) -> Value {
    let name = service_name(i);
    let mut spec = json!({
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": name},
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
        ],
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    });
    if i < LOAD_BALANCERS {
        spec["type"] = json!("LoadBalancer");
        spec["ipFamilyPolicy"] = json!("RequireDualStack");
        spec["ipFamilies"] = json!(["IPv4", "IPv6"]);
        spec["externalTrafficPolicy"] = json!(if local(i) { "Local" } else { "Cluster" });
        spec["allocateLoadBalancerNodePorts"] = json!(false);
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied(&name)},
        },
        "spec": spec,
    })
}

fn slice_name(i: usize) -> String {
    format!("{}-abcde", service_name(i))
}

fn endpoints(i: usize, nodes: &[String]) -> Value {
    let list: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(k, node)| {
            json!({
                "addresses": [format!("10.{}.{}.{}", 100 + k, i / 256, i % 256)],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": node,
                "targetRef": {"kind": "Pod", "namespace": "default",
                              "name": format!("{}-7d9c8b6f5-{k}x2z", service_name(i)),
                              "uid": format!("0b7e5a1c-0000-4000-8000-{i:08}{k:04}")},
                "zone": format!("zone-{}", k % 3),
            })
        })
        .collect();
    Value::Array(list)
}

fn slice(i: usize, nodes: &[String]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(i), "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": service_name(i),
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints(i, nodes),
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "https", "port": 8443, "protocol": "TCP"}],
    })
}

fn configuration() -> Vec<Value> {
    vec![
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "public", "namespace": NAMESPACE},
               "spec": {"addresses": ["10.64.0.0/20", "fd00:64::/116"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "routers", "namespace": NAMESPACE},
               "spec": {"communities": ["64512:100"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
               "metadata": {"name": "elsewhere", "namespace": NAMESPACE},
               "spec": {"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node-001"}}]}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "router", "namespace": NAMESPACE},
               "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.254",
                        "dualStackAddressFamily": true}}),
    ]
}

fn node(i: usize) -> Value {
    let name = node_name(i);
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "NetworkUnavailable", "status": "False"},
        ]},
    })
}

/// Writes the cluster, many requests at a time.
fn populate(api: &BlockingClient, c: &Cluster) {
    let mut objects: Vec<Value> = configuration();
    objects.extend((0..NODES).map(node));
    objects.extend((0..SERVICES).map(service));
    objects.extend((0..SERVICES).map(|i| slice(i, &c.endpoint_nodes(i))));
    let statuses: Vec<(Value, Value)> = (0..LOAD_BALANCERS)
        .map(|i| {
            let (v4, v6) = addresses(i, 0);
            (
                service(i),
                json!({"status": {"loadBalancer": {"ingress": [{"ip": v4}, {"ip": v6}]}}}),
            )
        })
        .collect();
    api.run(move |client| async move {
        use futures::StreamExt;
        use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
        let creates = objects.into_iter().map(|o| {
            let client = client.clone();
            async move {
                let (api, name) = testkit::apiserver::api_for(&client, &o);
                let o: DynamicObject = serde_json::from_value(o).expect("an object");
                api.create(&PostParams::default(), &o)
                    .await
                    .unwrap_or_else(|e| panic!("creating {name}: {e}"));
            }
        });
        futures::stream::iter(creates)
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        let patches = statuses.into_iter().map(|(like, patch)| {
            let client = client.clone();
            async move {
                let (api, name) = testkit::apiserver::api_for(&client, &like);
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap_or_else(|e| panic!("assigning {name}: {e}"));
            }
        });
        futures::stream::iter(patches)
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });
}

/// A thread inside the namespace that makes one write at a time and says when it sent it.
struct Writer {
    tx: Option<mpsc::Sender<(Write, mpsc::Sender<Instant>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(api: &BlockingClient) -> Writer {
        let (tx, rx) = mpsc::channel::<(Write, mpsc::Sender<Instant>)>();
        let api = api.clone();
        let thread = std::thread::spawn(move || {
            api.run(move |client| async move {
                use kube::api::{Patch, PatchParams};
                while let Ok((write, done)) = rx.recv() {
                    let (like, patch, status) = match write {
                        Write::Patch(like, patch) => (like, patch, false),
                        Write::PatchStatus(like, patch) => (like, patch, true),
                    };
                    let (api, name) = testkit::apiserver::api_for(&client, &like);
                    let params = PatchParams::default();
                    let sent = Instant::now();
                    let result = if status {
                        api.patch_status(&name, &params, &Patch::Merge(patch)).await
                    } else {
                        api.patch(&name, &params, &Patch::Merge(patch)).await
                    };
                    result.unwrap_or_else(|e| panic!("writing {name}: {e}"));
                    let _ = done.send(sent);
                }
            })
        });
        Writer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Makes the write; returns when it was sent.
    fn send(&self, write: Write) -> Instant {
        let (done, sent) = mpsc::channel();
        self.tx
            .as_ref()
            .expect("running")
            .send((write, done))
            .expect("the writer runs");
        sent.recv().expect("the writer answers")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A child process whose JSON output lines are read as they come, each with its arrival time.
struct Process {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl Process {
    fn start(ns: &Netns, cmd: &mut Command, stream: Stream) -> Process {
        let mut full = ns.command(&cmd.get_program().to_string_lossy());
        full.args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        let mut child = full.spawn().expect("spawning");
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn std::io::Read + Send> = match stream {
            Stream::Stdout => Box::new(child.stdout.take().expect("piped")),
            Stream::Stderr => Box::new(child.stderr.take().expect("piped")),
        };
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let at = Instant::now();
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send((at, value)).is_err() {
                    return;
                }
            }
        });
        Process {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forgets the lines seen so far, and those already waiting.
    fn clear(&mut self) {
        self.seen.clear();
        while self.lines.try_recv().is_ok() {}
    }

    /// The lines since the last `clear`, taking those waiting.
    fn seen(&mut self) -> &[(Instant, Value)] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits for a line (since the last `clear`) that satisfies `want`.
    fn wait(&mut self, limit: Duration, want: impl Fn(&Value) -> bool) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + limit;
        if let Some(found) = self.seen().iter().find(|(_, l)| want(l)) {
            return Some(found.clone());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if want(&line.1) {
                return Some(line);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let per_second = 100.0; // USER_HZ on Linux
    (ticks(11) + ticks(12)) / per_second
}

/// herald's `herald_config_reloads_total` over all results: how many reads it planned.
fn reloads(ns: &Netns, addr: std::net::SocketAddr) -> Option<u64> {
    let body = testkit::netns::spawn_in(ns.name(), move || testkit::http_get(addr, "/metrics"))
        .join()
        .ok()?
        .ok()?
        .body;
    let total = body
        .lines()
        .filter(|l| l.starts_with("herald_config_reloads_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Some(total as u64)
}

#[derive(Default)]
struct Unrelated {
    changes: usize,
    log_lines: usize,
    /// What those lines said, each once.
    messages: Vec<String>,
    reads: u64,
}

struct Report {
    herald_rss: u64,
    reference_rss: u64,
    cpu: f64,
    reads: u64,
    latencies: Vec<Duration>,
    reference_latencies: Vec<Duration>,
    unrelated: Unrelated,
    herald_sync: Duration,
    reference_sync: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(mut r: Report) {
    r.latencies.sort();
    r.reference_latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99) = (
        percentile(&r.latencies, 50.0),
        percentile(&r.latencies, 99.0),
    );
    let (rp50, rp99) = (
        percentile(&r.reference_latencies, 50.0),
        percentile(&r.reference_latencies, 99.0),
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!();
    println!(
        "scale: {NODES} Nodes, {SERVICES} Services ({LOAD_BALANCERS} dual-stack LoadBalancers), \
         {} endpoints; {CHANGES} changes ({} plan changes, {} unrelated)",
        SERVICES * ENDPOINTS_PER_SERVICE,
        r.latencies.len(),
        r.unrelated.changes
    );
    println!("                         herald     reference (kube-rs reflector)   ratio");
    println!(
        "peak RSS (MiB)         {:>8.1}     {:>8.1}                        {:>5.2}   target ≤ 64 MiB: {}",
        mib(r.herald_rss),
        mib(r.reference_rss),
        ratio(r.herald_rss as f64, r.reference_rss as f64),
        verdict(r.herald_rss <= RSS_TARGET_KIB)
    );
    println!(
        "change → plan p50 (ms) {:>8.2}     {:>8.2} (change → event)        {:>5.2}",
        ms(p50),
        ms(rp50),
        ratio(ms(p50), ms(rp50))
    );
    println!(
        "change → plan p99 (ms) {:>8.2}     {:>8.2} (change → event)        {:>5.2}   target ≤ 50 ms: {}",
        ms(p99),
        ms(rp99),
        ratio(ms(p99), ms(rp99)),
        verdict(p99 <= P99_TARGET)
    );
    println!(
        "CPU per change (ms)    {:>8.2}     (user + system, over all {CHANGES} changes)",
        r.cpu * 1000.0 / CHANGES as f64
    );
    println!(
        "startup to first plan  {:>8.2} s   (reference: first list {:.2} s)",
        r.herald_sync.as_secs_f64(),
        r.reference_sync.as_secs_f64()
    );
    println!(
        "configuration reads    {:>8}       (one per plan change at most: {})",
        r.reads,
        r.latencies.len()
    );
    let quiet = r.unrelated.log_lines == 0 && r.unrelated.reads == 0;
    println!(
        "unrelated changes: {} log lines at info or above, {} configuration reads: {}",
        r.unrelated.log_lines,
        r.unrelated.reads,
        verdict(quiet)
    );
    for message in &r.unrelated.messages {
        println!("  logged after an unrelated change: {message:?}");
    }
}

/// The reference: kube-rs reflectors over what herald watches (every Service, every
/// EndpointSlice of a Service, this Node), holding the typed objects, printing a JSON line for
/// each object that changes.
mod reference {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{Node, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::Resource;
    use kube::api::Api;
    use kube::runtime::reflector::{self, Store};
    use kube::runtime::{WatchStreamExt, watcher};
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;
    use std::hash::Hash;

    pub fn run(kubeconfig: &str) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let file = kube::config::Kubeconfig::read_from(kubeconfig).expect("a kubeconfig");
            let mut config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .expect("a config");
            config.default_retry = false;
            let client = kube::Client::try_from(config).expect("a client");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
            let services = watch::<Service>(
                Api::all(client.clone()),
                watcher::Config::default(),
                tx.clone(),
            );
            let slices = watch::<EndpointSlice>(
                Api::all(client.clone()),
                watcher::Config::default().labels("kubernetes.io/service-name"),
                tx.clone(),
            );
            let node = watch::<Node>(
                Api::all(client),
                watcher::Config::default().fields("metadata.name=node-000"),
                tx,
            );
            let mut synced = 0;
            while rx.recv().await.is_some() {
                synced += 1;
                if synced == 3 {
                    println!("{}", serde_json::json!({"synced": true}));
                }
            }
            let _ = (services, slices, node);
        });
    }

    /// A reflector over `api`, printing each object that changes; sends once when listed.
    fn watch<K>(
        api: Api<K>,
        config: watcher::Config,
        synced: tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let (store, writer) = reflector::store::<K>();
        let stream = watcher(api, config).default_backoff().reflect(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = synced.send("synced");
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                        let name = o.meta().name.clone().unwrap_or_default();
                        println!("{}", serde_json::json!({"name": name}));
                    }
                    _ => {}
                }
            }
        });
        store
    }
}
