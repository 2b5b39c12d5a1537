//! The controller benchmark (issue 13): 10,000 LoadBalancer Services created at once against
//! one pool of an IPv4 /16 and an IPv6 /112 (a third SingleStack IPv4, a third SingleStack
//! IPv6, a third RequireDualStack), on the testkit API server with dual-stack service CIDRs.
//!
//! The reference, measured in the same run on a fresh server with the same objects, is a
//! "null controller": a watch and a status write per Service with addresses counted off a
//! list, 32 writes in flight like herald's; no allocation rules, no Events. It is what the
//! API server and the client stack cost alone, so herald's figures read as ratios to it.
//!
//! Measured, for herald's `herald controller` process (release build) and the reference:
//! - time from the first creation until every Service has its addresses;
//! - API writes per Service: status writes (target: 1), and every write including Events;
//! - the controller's RSS (VmRSS) and peak RSS (VmHWM) with 10,000 allocated;
//! - the median (and 90th percentile) time from one more Service's creation to its status
//!   carrying an address, with 10,000 already allocated, over 200 Services created one at a
//!   time (target: median ≤ 50 ms).
//!
//! Unprivileged: everything talks over loopback. `cargo xtask bench controller`, or
//! `cargo bench -p herald-e2e --bench controller`. `HERALD_BENCH_SERVICES` (default 10000),
//! `HERALD_BIN` to use a built binary.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testkit::apiserver::ApiServer;

const CIDRS: &str = "10.96.0.0/12,fd00:10:96::/112";
const LATENCY_SAMPLES: usize = 200;

fn services() -> usize {
    std::env::var("HERALD_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn service(name: &str, i: usize) -> Value {
    let (policy, families) = match i % 3 {
        0 => ("SingleStack", json!(["IPv4"])),
        1 => ("SingleStack", json!(["IPv6"])),
        _ => ("RequireDualStack", json!(["IPv4", "IPv6"])),
    };
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": policy, "ipFamilies": families,
                 "ports": [{"port": 80}]},
    })
}

fn server() -> ApiServer {
    let server = ApiServer::builder()
        .service_cidrs(CIDRS)
        .history_limit(200_000)
        .start()
        .expect("the API server starts");
    server
        .create(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "bench", "namespace": "metallb-system"},
            "spec": {"addresses": ["10.20.0.0/16", "fd00:20::/112"]},
        }))
        .expect("creating the pool");
    server
}

fn assigned(server: &ApiServer) -> usize {
    server
        .objects("v1", "Service")
        .iter()
        .filter(|s| {
            s["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .count()
}

/// Creates `n` Services as fast as the server takes them and waits until all have
/// addresses; returns the time from the first creation.
fn burst(server: &ApiServer, n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        server
            .create(service(&format!("svc-{i}"), i))
            .expect("creating a Service");
    }
    let deadline = start + Duration::from_secs(600);
    while assigned(server) < n {
        assert!(
            Instant::now() < deadline,
            "not every Service got addresses in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

/// Creates Services one at a time and measures creation to status with an address, seen
/// through a watch of the bench's own.
fn latencies(
    server: &ApiServer,
    runtime: &tokio::runtime::Runtime,
    samples: usize,
) -> Vec<Duration> {
    let client = runtime.block_on(async { server.client_as("bench-watch") });
    let api: Api<Service> = Api::namespaced(client, "default");
    let mut out = Vec::new();
    for i in 0..samples {
        let name = format!("lat-{i}");
        let rv = server.resource_version().to_string();
        let took = runtime.block_on(async {
            let mut stream = api
                .watch(
                    &WatchParams::default().fields(&format!("metadata.name={name}")),
                    &rv,
                )
                .await
                .expect("watching")
                .boxed();
            let start = Instant::now();
            server
                .create(service(&name, i))
                .expect("creating a Service");
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Modified(s) | WatchEvent::Added(s)) = ev
                    && s.status
                        .and_then(|s| s.load_balancer)
                        .and_then(|l| l.ingress)
                        .is_some_and(|i| !i.is_empty())
                {
                    return start.elapsed();
                }
            }
            panic!("the watch ended before {name} got an address");
        });
        out.push(took);
    }
    out.sort();
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// The reference: a status write per new Service, addresses counted off, 32 in flight.
fn null_controller(
    server: &ApiServer,
    runtime: &tokio::runtime::Runtime,
) -> tokio::task::JoinHandle<()> {
    let client = runtime.block_on(async { server.client_as("null-controller") });
    runtime.spawn(async move {
        let all: Api<Service> = Api::all(client.clone());
        let next = Arc::new(AtomicU64::new(1));
        let gate = Arc::new(tokio::sync::Semaphore::new(32));
        let mut stream = kube::runtime::watcher(all, Default::default()).boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let svc = match ev {
                kube::runtime::watcher::Event::Apply(s) | kube::runtime::watcher::Event::InitApply(s) => s,
                _ => continue,
            };
            let has = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref()).is_some_and(|i| !i.is_empty());
            if has {
                continue;
            }
            let n = next.fetch_add(1, Ordering::Relaxed);
            let ip = format!("10.20.{}.{}", (n >> 8) & 0xff, n & 0xff);
            let api: Api<Service> = Api::namespaced(client.clone(), svc.metadata.namespace.as_deref().unwrap_or("default"));
            let name = svc.metadata.name.clone().unwrap_or_default();
            let rv = svc.metadata.resource_version.clone();
            let permit = gate.clone().acquire_owned().await;
            tokio::spawn(async move {
                let patch = json!({"metadata": {"resourceVersion": rv}, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                drop(permit);
            });
        }
    })
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Figures {
    burst: Duration,
    status_writes: f64,
    all_writes: f64,
    rss: (u64, u64),
    median: Duration,
    p90: Duration,
}

/// Whether a replica holds the controllers' election key (Lease
/// `herald-controller-controller`).
fn holds_the_controller_lease(server: &ApiServer) -> bool {
    server
        .objects("coordination.k8s.io/v1", "Lease")
        .iter()
        .any(|l| {
            l["metadata"]["name"] == "herald-controller-controller"
                && l["spec"]["holderIdentity"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty())
        })
}

/// Status writes and every write, of `client`; the election's Leases (a renewal a second,
/// whatever the number of Services) are not counted.
fn writes(server: &ApiServer, client: &str) -> (u64, u64) {
    let counts = server.request_counts();
    let status = counts
        .iter()
        .filter(|c| c.client == client && c.resource == "services/status")
        .map(|c| c.count)
        .sum();
    let all = counts
        .iter()
        .filter(|c| {
            c.client == client
                && c.resource != "leases"
                && matches!(c.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .map(|c| c.count)
        .sum();
    (status, all)
}

fn main() {
    let n = services();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");

    // The reference.
    let reference = {
        let server = server();
        let task = null_controller(&server, &runtime);
        std::thread::sleep(Duration::from_millis(500));
        let burst = burst(&server, n);
        let (status, all) = writes(&server, "null-controller");
        let lat = latencies(&server, &runtime, LATENCY_SAMPLES);
        task.abort();
        Figures {
            burst,
            status_writes: status as f64 / n as f64,
            all_writes: all as f64 / n as f64,
            rss: (0, 0),
            median: percentile(&lat, 0.5),
            p90: percentile(&lat, 0.9),
        }
    };

    // herald.
    let bin = testkit::herald_bin();
    let server = server();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, "herald-controller")
        .expect("writing the kubeconfig");
    let mut child: Child = Command::new(&bin)
        .arg("controller")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--namespace",
            "metallb-system",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting herald controller");
    // Ready once it is the active replica (it holds the election's one key) and has listed
    // the Services; give it a moment after, to register what is there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds_the_controller_lease(&server)
        || server.requests_from("herald-controller", "list", "services") == 0
    {
        assert!(
            Instant::now() < deadline,
            "herald controller never became active"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let burst_time = burst(&server, n);
    let (status, all) = writes(&server, "herald-controller");
    let rss = rss_kib(child.id());
    let lat = latencies(&server, &runtime, LATENCY_SAMPLES);
    let herald = Figures {
        burst: burst_time,
        status_writes: status as f64 / n as f64,
        all_writes: all as f64 / n as f64,
        rss,
        median: percentile(&lat, 0.5),
        p90: percentile(&lat, 0.9),
    };
    let _ = child.kill();
    let _ = child.wait();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "controller benchmark ({n} Services: a /16 and a /112 pool; herald vs a null controller, same server, same run):"
    );
    println!(
        "  time until all have addresses: herald {:.0} ms, reference {:.0} ms, ratio {:.2}",
        ms(herald.burst),
        ms(reference.burst),
        herald.burst.as_secs_f64() / reference.burst.as_secs_f64()
    );
    println!(
        "  status writes per Service:     herald {:.3} (target 1), reference {:.3}",
        herald.status_writes, reference.status_writes
    );
    println!(
        "  all API writes per Service:    herald {:.3} (status + Events + pool status), reference {:.3}",
        herald.all_writes, reference.all_writes
    );
    println!(
        "  controller RSS with {n} allocated: {:.1} MiB (peak {:.1} MiB)",
        herald.rss.0 as f64 / 1024.0,
        herald.rss.1 as f64 / 1024.0
    );
    println!(
        "  creation to status, {n} allocated: median herald {:.1} ms (target <= 50), reference {:.1} ms, ratio {:.2}; p90 herald {:.1} ms, reference {:.1} ms",
        ms(herald.median),
        ms(reference.median),
        herald.median.as_secs_f64() / reference.median.as_secs_f64().max(1e-9),
        ms(herald.p90),
        ms(reference.p90)
    );
}
