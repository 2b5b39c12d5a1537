//! Layer 2 election end to end: three `herald speaker` processes in Kubernetes mode on node
//! namespaces of one LAN, the testkit API server in a control-plane namespace on the same
//! LAN, and a client whose kernel, `arping`, `ndisc6` and `tcpdump` say who answers.
//!
//! What is asserted is what the client sees (its neighbor cache, who answers its questions,
//! who sends announcements on the wire) and what the API server holds (the Leases). Times
//! are printed, never asserted. Needs root; fails, never skips, without it.

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use testkit::cluster::{Cluster, service_v4, service_v6};
use testkit::lan::{arping, neigh};
use testkit::netns::{output, poll_until};
use testkit::{PATIENCE, Signal, metric};

/// A three-node cluster running herald everywhere, with one dual-stack Service.
fn three_nodes() -> (Cluster, [String; 2]) {
    let mut c = Cluster::new(3);
    c.layer2_config();
    let ips = [service_v4(0), service_v6(0)];
    c.service("web", &ips, false);
    c.start_all();
    (c, ips)
}

/// The MACs that answer `arping` for `ip` from the client (two requests); arping prints
/// "60 bytes from MAC (IP): ..." for each answer.
fn arp_answerers(c: &Cluster, ip: &str) -> BTreeSet<String> {
    let (_, out) = arping(&c.client, &["-c", "2", "-w", "3", "-i", "eth0", ip]);
    out.lines()
        .filter_map(|l| l.split(" bytes from ").nth(1)?.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The MACs that answer `ndisc6 -m` (every answer) for `ip` from the client.
fn nd_answerers(c: &Cluster, ip: &str) -> BTreeSet<String> {
    let out = output(
        c.client
            .command("ndisc6")
            .args(["-m", "-r", "2", "-w", "1000", ip, "eth0"]),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("Target link-layer address"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_lowercase))
        .collect()
}

fn answerers(c: &Cluster, ip: &str) -> BTreeSet<String> {
    if ip.contains(':') {
        nd_answerers(c, ip)
    } else {
        arp_answerers(c, ip)
    }
}

/// A capture, on the client, of the gratuitous ARPs and unsolicited NAs on the LAN.
struct Announcements(std::process::Child);

impl Announcements {
    fn start(c: &Cluster) -> Announcements {
        let dump = c
            .client
            .command("tcpdump")
            .args([
                "-l",
                "-n",
                "-e",
                "-i",
                "eth0",
                "arp or (icmp6 and ip6[40] == 136)",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump runs");
        std::thread::sleep(Duration::from_secs(1));
        Announcements(dump)
    }

    /// The sender MACs seen announcing each of `ips`.
    fn finish(mut self, ips: &[String]) -> BTreeMap<String, BTreeSet<String>> {
        std::thread::sleep(Duration::from_secs(1));
        let _ = self.0.kill();
        let out = self.0.wait_with_output().expect("tcpdump output");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            let Some(src) = line.split_whitespace().nth(1) else {
                continue;
            };
            for ip in ips {
                // A gratuitous ARP names the address as its sender ("tell IP", "IP is-at");
                // an unsolicited NA says "tgt is IP".
                let about = line.contains(&format!("tell {ip},"))
                    || line.contains(&format!("Reply {ip} is-at"))
                    || line.contains(&format!("tgt is {ip},"));
                if about {
                    seen.entry(ip.clone()).or_default().insert(src.to_owned());
                }
            }
        }
        seen
    }
}

#[test]
fn exactly_one_node_answers_and_announces_each_address() {
    let (mut c, ips) = three_nodes();
    let leaders: Vec<usize> = ips.iter().map(|ip| c.wait_leader(ip)).collect();
    for (ip, &leader) in ips.iter().zip(&leaders) {
        c.wait_client_sees(ip, leader);
        let who = answerers(&c, ip);
        assert_eq!(
            who,
            BTreeSet::from([c.nodes[leader].mac()]),
            "{ip}: {who:?}"
        );
        assert_eq!(
            c.lease_holder(ip).as_deref(),
            Some(c.nodes[leader].name.as_str())
        );
    }
    // A restart of a standby, and a new Service: every announcement on the wire comes from
    // the address's leader.
    let standby = (0..3).find(|i| !leaders.contains(i)).unwrap_or(0);
    let new = [service_v4(1), service_v6(1)];
    let mut all: Vec<String> = ips.to_vec();
    all.extend(new.iter().cloned());
    let capture = Announcements::start(&c);
    c.stop(standby, Signal::Term);
    c.start(standby, &[]);
    c.service("web2", &new, false);
    for ip in &new {
        c.wait_leader(ip);
    }
    std::thread::sleep(Duration::from_secs(3));
    let seen = capture.finish(&all);
    for ip in &all {
        let leader = c.wait_leader(ip);
        let macs = seen.get(ip).cloned().unwrap_or_default();
        assert!(
            macs.is_empty() || macs == BTreeSet::from([c.nodes[leader].mac()]),
            "{ip}: announced by {macs:?}, led by {}",
            c.nodes[leader].name
        );
    }
    for ip in &new {
        assert!(
            seen.contains_key(ip),
            "the new address {ip} was announced: {seen:?}"
        );
    }
    for n in &c.nodes {
        let scrape = n.speaker().scrape();
        assert_eq!(
            metric(&scrape, "herald_l2_leader_not_answering", &[]),
            Some(0.0),
            "{}",
            n.name
        );
    }
}

#[test]
fn an_api_server_outage_moves_nothing_and_every_node_follows_again_after_it() {
    let (c, ips) = three_nodes();
    let leaders: Vec<usize> = ips.iter().map(|ip| c.wait_leader(ip)).collect();
    let holders = c.lease_holders();
    c.server.controls().stop();
    let until = Instant::now() + Duration::from_secs(120);
    let mut checks = 0;
    while Instant::now() < until {
        for (ip, &leader) in ips.iter().zip(&leaders) {
            let _ = c.client.ip(&["neigh", "flush", "to", ip, "dev", "eth0"]);
            let who = answerers(&c, ip);
            assert_eq!(
                who,
                BTreeSet::from([c.nodes[leader].mac()]),
                "{ip} during the outage"
            );
        }
        checks += 1;
        std::thread::sleep(Duration::from_secs(5));
    }
    c.server.controls().resume();
    let back = Instant::now();
    // Every node's view of the election is current again, and a change is followed.
    for n in &c.nodes {
        poll_until(
            &format!("{} to follow the election again", n.name),
            PATIENCE,
            |_| {
                let st = n.speaker().get_json("/status");
                (st["announcing"]["layer2"]["election"]["healthy"] == true).then_some(())
            },
        );
    }
    println!(
        "after a 120 s outage ({checks} rounds of checks), every node followed the Leases again {:.2} s after the API server's return",
        back.elapsed().as_secs_f64()
    );
    let new = service_v4(2);
    c.service("after", std::slice::from_ref(&new), false);
    let leader = c.wait_leader(&new);
    c.wait_client_sees(&new, leader);
    println!(
        "a Service created after the outage was answered {:.2} s after the return",
        back.elapsed().as_secs_f64()
    );
    let mut after = c.lease_holders();
    after.retain(|k, _| holders.contains_key(k));
    assert_eq!(after, holders, "no holder changed");
}

#[test]
fn a_node_cut_off_from_the_api_server_hands_over_and_steps_back_on_the_wire() {
    let (c, ips) = three_nodes();
    let ip = &ips[0];
    let old = c.wait_leader(ip);
    c.wait_client_sees(ip, old);
    c.cut_off(old, true);
    let cut = Instant::now();
    let new = poll_until("another node to take the address", PATIENCE, |_| {
        let holder = c.lease_holder(ip)?;
        c.nodes
            .iter()
            .position(|n| n.name == holder)
            .filter(|&i| i != old)
    });
    let took = cut.elapsed();
    c.wait_client_sees(ip, new);
    let seen = cut.elapsed();
    poll_until("the cut-off node to stop answering", PATIENCE, |_| {
        (c.address_status(old, ip)?["answering"] == false).then_some(())
    });
    let stopped = cut.elapsed();
    println!(
        "cut off at 0: the Lease moved at {:.2} s, the client saw the new holder at {:.2} s, the old holder stopped answering at {:.2} s",
        took.as_secs_f64(),
        seen.as_secs_f64(),
        stopped.as_secs_f64()
    );
    assert_eq!(answerers(&c, ip), BTreeSet::from([c.nodes[new].mac()]));
    let scrape = c.nodes[old].speaker().scrape();
    assert!(
        metric(
            &scrape,
            "herald_lease_transitions_total",
            &[("reason", "yielded")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    // Back on the API: it sees the new holder and stays a standby.
    c.cut_off(old, false);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.answering(ip), vec![new]);
}

#[test]
fn a_dropped_watch_and_a_lease_deleted_by_hand_move_nothing() {
    let (c, ips) = three_nodes();
    let leaders: Vec<usize> = ips.iter().map(|ip| c.wait_leader(ip)).collect();
    let holders = c.lease_holders();
    c.server.controls().drop_watches();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.lease_holders(), holders, "a dropped watch moves nothing");
    // The Lease of the IPv4 address, deleted by hand: its holder writes it again.
    let name = format!("herald-{}", testkit::cluster::lease_key(&ips[0]));
    c.api.delete(&json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": testkit::cluster::NAMESPACE},
    }));
    poll_until("the Lease to be written again", PATIENCE, |_| {
        c.lease_holder(&ips[0])
            .filter(|h| *h == c.nodes[leaders[0]].name)
    });
    std::thread::sleep(Duration::from_secs(3));
    for (ip, &leader) in ips.iter().zip(&leaders) {
        assert_eq!(c.answering(ip), vec![leader], "{ip}");
    }
}

#[test]
fn the_holders_interface_going_down_moves_the_address() {
    let (c, ips) = three_nodes();
    let ip = &ips[1];
    let old = c.wait_leader(ip);
    c.wait_client_sees(ip, old);
    // Its LAN link stays down on the node's side: the address must move.
    c.nodes[old].ns.ip(&["link", "set", "eth0", "down"]);
    let new = poll_until("another node to answer", PATIENCE, |_| {
        c.answering(ip).into_iter().find(|&i| i != old)
    });
    c.wait_client_sees(ip, new);
    let st = c
        .address_status(old, ip)
        .expect("the old holder still plans the address");
    assert_eq!(st["answering"], false);
    assert!(
        st["unusable"].as_str().is_some_and(|w| w.contains("down")),
        "{st}"
    );
    c.nodes[old].ns.ip(&["link", "set", "eth0", "up"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.answering(ip),
        vec![new],
        "sticky: the old holder takes nothing back"
    );
}

#[test]
fn the_last_local_endpoint_leaving_moves_the_address_to_a_node_with_one() {
    let mut c = Cluster::new(3);
    c.layer2_config();
    let ip = service_v4(3);
    c.service("local", std::slice::from_ref(&ip), true);
    c.start_all();
    let old = c.wait_leader(&ip);
    let others: Vec<&str> = c
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != old)
        .map(|(_, n)| n.name.as_str())
        .collect();
    c.endpoints("local", &others);
    let new = poll_until("a node with an endpoint to answer", PATIENCE, |_| {
        c.answering(&ip).into_iter().find(|&i| i != old)
    });
    c.wait_client_sees(&ip, new);
    assert_eq!(c.answering(&ip), vec![new]);
}

#[test]
fn a_foreign_host_claiming_an_address_is_a_conflict_and_herald_keeps_it() {
    let (c, ips) = three_nodes();
    let ip = &ips[0];
    let leader = c.wait_leader(ip);
    c.wait_client_sees(ip, leader);
    // Another host claims the address with a gratuitous ARP from its own MAC (no herald
    // node's): the client follows it, then herald announces the address back.
    let intruder = c.host("in", "192.0.2.66", "2001:db8::66");
    let intruder_mac = intruder.mac("eth0");
    let _ = arping(
        &intruder,
        &["-U", "-c", "1", "-w", "1", "-i", "eth0", "-S", ip, ip],
    );
    // The client follows the claim for a moment (herald answers within a second)...
    let moved = (0..500).any(|_| {
        let moved = neigh(&c.client, ip, "eth0").contains(&intruder_mac);
        if !moved {
            std::thread::sleep(Duration::from_millis(2));
        }
        moved
    });
    println!("the client's cache followed the intruder's claim: {moved}");
    // ...and comes back to herald's node.
    c.wait_client_sees(ip, leader);
    poll_until("the conflict to be counted", PATIENCE, |_| {
        let scrape = c.nodes[leader].speaker().scrape();
        (metric(&scrape, "herald_l2_address_conflicts_total", &[("ip", ip)]).unwrap_or(0.0) >= 1.0)
            .then_some(())
    });
    assert_eq!(c.answering(ip), vec![leader], "herald keeps the address");
    let entry = neigh(&c.client, ip, "eth0");
    assert!(entry.contains(&c.nodes[leader].mac()), "{entry}");
}
