//! The placement benchmark: 1,000 Layer 2 addresses (100 Services of 10 IPv6 addresses) over
//! three `herald speaker` processes in Kubernetes mode started together, against the testkit
//! API server. It reports how the Leases spread, how long the 333-odd addresses of a node
//! stopped with SIGTERM take to change hands, and how many addresses change holder in the
//! 10 s after that node returns.
//!
//! Targets (issue 9): each node holds 25–42% of the addresses; the returning node takes
//! nothing back and nothing else moves. Exits 1 when a target is missed. The reference beside
//! the move time is the lease duration (3 s), what a single address's failover is bounded by.
//!
//! This was a test until it showed that the outcome depends on the machine's load more than on
//! the election (on 2 cores running other tests beside it, a node whose watch lags claims
//! nothing and the others take its share); as a benchmark it runs alone and reports figures.
//!
//! Needs root: `cargo xtask bench placement`. Sends only inside the namespaces it creates.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use testkit::cluster::{Cluster, service_v6};
use testkit::netns::poll_until;
use testkit::{PATIENCE, Signal, metric};

fn main() -> ExitCode {
    let mut c = Cluster::new(3);
    c.layer2_config();
    let per_service = 10;
    for s in 0..100 {
        let ips: Vec<String> = (0..per_service)
            .map(|i| service_v6(s * per_service + i))
            .collect();
        c.service(&format!("svc-{s}"), &ips, false);
    }
    let started = Instant::now();
    c.start_all();
    let holders = poll_until("every address to have a holder", PATIENCE * 4, |last| {
        let h = c.lease_holders();
        *last = format!("{} Leases held", h.len());
        (h.len() == 1000).then_some(h)
    });
    println!(
        "1000 addresses placed {:.2} s after start",
        started.elapsed().as_secs_f64()
    );
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for holder in holders.values() {
        *count.entry(holder.as_str()).or_default() += 1;
    }
    let mut missed = Vec::new();
    for n in &c.nodes {
        let held = count.get(n.name.as_str()).copied().unwrap_or(0);
        println!("{} holds {held} of 1000 (target 250–420)", n.name);
        if !(250..=420).contains(&held) {
            missed.push(format!("{} holds {held} of 1000", n.name));
        }
    }
    let stopped = Instant::now();
    c.stop(1, Signal::Term);
    poll_until("node-2's addresses to move", PATIENCE * 4, |last| {
        let left = c
            .lease_holders()
            .values()
            .filter(|h| *h == "node-2")
            .count();
        *last = format!("node-2 still holds {left}");
        (left == 0).then_some(())
    });
    println!(
        "node-2's addresses moved {:.2} s after its SIGTERM (reference: one address within the lease duration, 3 s)",
        stopped.elapsed().as_secs_f64()
    );
    let moved = c.lease_holders();
    c.start(1, &[]);
    std::thread::sleep(Duration::from_secs(10));
    let after = c.lease_holders();
    let changed = moved
        .iter()
        .filter(|(lease, holder)| after.get(*lease) != Some(*holder))
        .count();
    println!(
        "addresses that changed holder in the 10 s after node-2 returned: {changed} (target 0)"
    );
    if changed > 0 {
        missed.push(format!(
            "{changed} addresses changed holder after node-2 returned"
        ));
    }
    let scrape = c.nodes[1].speaker().scrape();
    let held = metric(&scrape, "herald_leases_held", &[]);
    println!("node-2's herald_leases_held after its return: {held:?} (target 0)");
    if held != Some(0.0) {
        missed.push(format!("node-2 holds {held:?} Leases after its return"));
    }
    if missed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("targets missed: {}", missed.join("; "));
        ExitCode::FAILURE
    }
}
