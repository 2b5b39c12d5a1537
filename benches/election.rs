//! The election benchmark: what the Layer 2 election costs the API server in steady state,
//! with 10 service addresses and then with 1,000, counted at the testkit API server.
//!
//! Three nodes run `herald speaker` in Kubernetes mode (default settings). Once every address
//! has a holder and things have settled, every request from the nodes is counted for 30 s
//! (watches opened, lists, gets, creates, updates: everything, not only the election's).
//!
//! Target (issue 9): the rate with 1,000 addresses within 10% of the rate with 10. The
//! reference is client-go's per-Service election (as Cilium and kube-vip run it), computed for
//! the same setup from client-go's defaults: each candidate reads each Lease every retry period
//! (2 s) and the holder also writes it.
//!
//! Needs root: `cargo xtask bench election`. Sends only inside the namespaces it creates.
//! `HERALD_BENCH_LOGS=1` shows the speakers' logs.

use std::collections::BTreeMap;
use std::time::Duration;
use testkit::cluster::{Cluster, service_v6};
use testkit::netns::poll_until;

const WINDOW: Duration = Duration::from_secs(30);
const NODES: usize = 3;

/// Requests per second from the nodes over the window, by verb.
fn measure(c: &Cluster) -> BTreeMap<String, f64> {
    // Let the placement's writes and Events finish.
    std::thread::sleep(Duration::from_secs(10));
    let controls = c.server.controls();
    controls.reset_counters();
    std::thread::sleep(WINDOW);
    let mut by_verb: BTreeMap<String, f64> = BTreeMap::new();
    for r in controls.request_counts() {
        if c.nodes.iter().any(|n| n.name == r.client) {
            *by_verb
                .entry(format!("{} {}", r.verb, r.resource))
                .or_default() += r.count as f64 / WINDOW.as_secs_f64();
        }
    }
    by_verb
}

fn add_addresses(c: &Cluster, from: usize, to: usize) {
    const PER_SERVICE: usize = 10;
    for s in (from / PER_SERVICE)..(to / PER_SERVICE) {
        let ips: Vec<String> = (0..PER_SERVICE)
            .map(|i| service_v6(s * PER_SERVICE + i))
            .collect();
        c.service(&format!("svc-{s}"), &ips, false);
    }
}

fn wait_held(c: &Cluster, n: usize) {
    poll_until(
        &format!("{n} addresses to be held"),
        Duration::from_secs(300),
        |last| {
            let held = c.lease_holders().len();
            *last = format!("{held} held");
            (held == n).then_some(())
        },
    );
}

fn main() {
    testkit::netns::require_privileges();
    testkit::echo_speaker_logs(std::env::var_os("HERALD_BENCH_LOGS").is_some());
    let mut c = Cluster::new(NODES);
    c.layer2_config();
    add_addresses(&c, 0, 10);
    c.start_all();
    wait_held(&c, 10);
    let ten = measure(&c);
    add_addresses(&c, 10, 1000);
    wait_held(&c, 1000);
    let thousand = measure(&c);

    let total = |m: &BTreeMap<String, f64>| m.values().sum::<f64>();
    let writes = |m: &BTreeMap<String, f64>| {
        m.iter()
            .filter(|(k, _)| {
                k.starts_with("update leases")
                    || k.starts_with("create leases")
                    || k.starts_with("patch leases")
            })
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    println!(
        "\nelection API requests from {NODES} nodes in steady state, per second over {} s:",
        WINDOW.as_secs()
    );
    for (label, m) in [("10 addresses", &ten), ("1000 addresses", &thousand)] {
        println!(
            "election: {label:15} total {:.2}/s, Lease writes {:.2}/s ({:.2}/s per node)",
            total(m),
            writes(m),
            writes(m) / NODES as f64
        );
        for (verb, rate) in m {
            println!("election:     {verb:40} {rate:.2}/s");
        }
    }
    let ratio = total(&thousand) / total(&ten);
    println!(
        "election: 1000 / 10 addresses = {ratio:.3} (target within 10%: {})",
        if (0.9..=1.1).contains(&ratio) {
            "met"
        } else {
            "MISSED"
        }
    );
    let per_node = writes(&ten) / NODES as f64;
    println!(
        "election: at 1000 nodes the same design writes {:.0} Lease renewals/s (one per node per renew interval), whatever the number of addresses; each renewal is one watch event to each of the 1000 nodes ({:.0} events/s delivered)",
        per_node * 1000.0,
        per_node * 1000.0 * 1000.0
    );
    // client-go's leader election per Service (Cilium, kube-vip): every candidate GETs every
    // Lease each retry period, and the holder also UPDATEs it.
    let retry = 2.0;
    for addresses in [10.0, 1000.0] {
        let rate = addresses * (NODES as f64 + 1.0) / retry;
        println!(
            "election: client-go-style per-address election, {NODES} nodes, {addresses} addresses: {rate:.0} requests/s ({:.0}x herald's)",
            rate / total(if addresses < 100.0 { &ten } else { &thousand })
        );
    }
}
