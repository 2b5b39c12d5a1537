//! `herald speaker` in file mode answering ARP and NDP, end to end: two herald processes on
//! the node namespaces of a test LAN, the client's own kernel, `arping` and `ndisc6` asking,
//! and the assertions on what the client holds. Configuration changes go through the file,
//! as a user would make them.
//!
//! Needs root (namespaces); fails, never skips, without it. Nothing is timed, beyond printing
//! how long the client took to come back after a foreign claim.

use serde_json::{Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;
use testkit::lan::{CLIENT_V4, Lan, arping, ndisc6, neigh, resolve_to};
use testkit::netns::{Netns, poll_until};
use testkit::{PATIENCE, Speaker, metric};

const WEB_V4: &str = "192.0.2.10";
const WEB_V6: &str = "2001:db8::10";
const ELSEWHERE_V4: &str = "192.0.2.20";

/// A pool answered from the node named `owner`, holding the dual-stack service `web` (when
/// `with_web`), and a second pool whose advertisement names an interface no node has.
fn config(owner: &str, with_web: bool) -> String {
    let mut text = format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan, namespace: metallb-system}}
spec:
  addresses: [192.0.2.10-192.0.2.19, 2001:db8::10-2001:db8::19]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: lan, namespace: metallb-system}}
spec:
  ipAddressPools: [lan]
  nodeSelectors:
  - matchLabels: {{kubernetes.io/hostname: {owner}}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: elsewhere, namespace: metallb-system}}
spec:
  addresses: [192.0.2.20/32]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: elsewhere, namespace: metallb-system}}
spec:
  ipAddressPools: [elsewhere]
  interfaces: [ens9]
"
    );
    text += &testkit::service_yaml("other", &[ELSEWHERE_V4]);
    if with_web {
        text += &testkit::service_yaml("web", &[WEB_V4, WEB_V6]);
    }
    text
}

fn start(lan_node: &testkit::netns::Netns, file: &PathBuf, node: &str) -> Speaker {
    // No periodic refresh: every announcement the client sees comes from a takeover.
    Speaker::start_in(lan_node, &[file], node, &["--l2-refresh-interval", "0"])
}

/// The `announcing.layer2.addresses` entry of `ip` in `/status`, once it satisfies `ok`.
fn wait_assignment(s: &Speaker, ip: &str, ok: impl Fn(&Value) -> bool) -> Value {
    s.eventually(&format!("/status to show {ip} as expected"), |s| {
        let st = s.get_json("/status");
        let found = st["announcing"]["layer2"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["ip"] == ip)
            .cloned();
        match found {
            Some(a) if ok(&a) => Some(a),
            None if ok(&Value::Null) => Some(Value::Null),
            _ => None,
        }
    })
}

fn answering_on_eth0(a: &Value) -> bool {
    a["interfaces"] == json!(["eth0"])
}

#[test]
fn the_planned_node_answers_and_the_file_moves_and_removes_the_address() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &config("node-1", true));
    let node1 = start(&lan.node1, &file, "node-1");
    let node2 = start(&lan.node2, &file, "node-2");
    let mac1 = lan.node1.mac("eth0");
    let mac2 = lan.node2.mac("eth0");

    // Node 1 is planned for web and answers for both of its addresses on eth0; node 2 is not.
    for ip in [WEB_V4, WEB_V6] {
        wait_assignment(&node1, ip, answering_on_eth0);
    }
    wait_assignment(&node2, WEB_V4, Value::is_null);
    resolve_to(&lan.client, WEB_V4, "eth0", &mac1);
    resolve_to(&lan.client, WEB_V6, "eth0", &mac1);
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", WEB_V4]);
    assert!(
        ok && out.contains(&mac1) && !out.contains(&mac2),
        "arping: {out}"
    );
    let (ok, out) = ndisc6(&lan.client, WEB_V6, "eth0");
    assert!(ok && out.contains(&mac1), "ndisc6: {out}");

    // MetalLB's metrics say so, with its labels.
    let m = node1.scrape();
    for ip in [WEB_V4, WEB_V6] {
        let announced = [
            ("service", "default/web"),
            ("protocol", "layer2"),
            ("node", "node-1"),
            ("ip", ip),
        ];
        assert_eq!(
            metric(&m, "metallb_speaker_announced", &announced),
            Some(1.0)
        );
        for name in [
            "metallb_layer2_requests_received",
            "metallb_layer2_responses_sent",
            "metallb_layer2_gratuitous_sent",
        ] {
            let n = metric(&m, name, &[("ip", ip)]).unwrap_or(0.0);
            assert!(n >= 1.0, "{name}{{ip={ip}}} = {n}");
        }
    }
    let read = metric(&m, "herald_l2_frames_read_total", &[("interface", "eth0")]);
    assert!(read.is_some_and(|n| n >= 2.0), "frames read: {read:?}");

    // The advertisement naming ens9 matches nothing here: not eligible, and it says why.
    let other = wait_assignment(&node1, ELSEWHERE_V4, |a| !a.is_null());
    assert_eq!(other["interfaces"], json!([]), "{other}");
    assert_eq!(other["unmatched"], json!(["ens9"]), "{other}");
    assert!(
        node1
            .wait_for_log(
                |l| l["ip"] == ELSEWHERE_V4
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("not eligible")),
                PATIENCE
            )
            .is_some(),
        "the log says why {ELSEWHERE_V4} is not answered"
    );
    let (ok, out) = arping(
        &lan.client,
        &["-c", "2", "-w", "3", "-i", "eth0", ELSEWHERE_V4],
    );
    assert!(!ok, "nobody may answer for {ELSEWHERE_V4}: {out}");

    // The file moves web to node 2. The client sends nothing: only node 2's announcements
    // can move its cache.
    testkit::replace_file(&file, &config("node-2", true));
    for ip in [WEB_V4, WEB_V6] {
        poll_until(
            &format!("the client's entry for {ip} to point at node 2"),
            PATIENCE,
            |last| {
                *last = neigh(&lan.client, ip, "eth0");
                last.contains(&format!("lladdr {mac2} ")).then_some(())
            },
        );
    }
    wait_assignment(&node1, WEB_V4, Value::is_null);
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", WEB_V4]);
    assert!(
        ok && out.contains(&mac2) && !out.contains(&mac1),
        "arping: {out}"
    );

    // The service goes away: nobody answers for its addresses any more.
    testkit::replace_file(&file, &config("node-2", false));
    wait_assignment(&node2, WEB_V4, Value::is_null);
    wait_assignment(&node2, WEB_V6, Value::is_null);
    let (ok, out) = arping(&lan.client, &["-c", "2", "-w", "3", "-i", "eth0", WEB_V4]);
    assert!(
        !ok,
        "{WEB_V4} is still answered after its service went away: {out}"
    );
    let (ok, out) = ndisc6(&lan.client, WEB_V6, "eth0");
    assert!(
        !ok,
        "{WEB_V6} is still answered after its service went away: {out}"
    );
    assert!(
        node2
            .wait_for_log(
                |l| l["ip"] == WEB_V4 && l["message"] == "stopped answering ARP/NDP",
                PATIENCE
            )
            .is_some(),
        "the log says node 2 stopped answering"
    );
}

/// Sends `frames` out of `ns`'s eth0 from a packet socket, as a foreign host or a client
/// writing its own frames.
fn send_raw(ns: &Netns, frames: Vec<Vec<u8>>) {
    let ifindex = ns.ifindex("eth0");
    ns.spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let socket = l2::socket::PacketSocket::open(ifindex).expect("packet socket");
                for frame in frames {
                    socket.send(&frame).await.expect("send");
                }
            })
    })
    .join()
    .expect("sender thread");
}

fn counter(s: &Speaker, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&s.scrape(), name, labels).unwrap_or(0.0)
}

#[test]
fn a_foreign_claim_is_answered_with_a_reannouncement_and_the_client_comes_back() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &config("node-1", true));
    let node1 = start(&lan.node1, &file, "node-1");
    let mac1 = lan.node1.mac("eth0");
    let mac2: l2::EthernetAddress = lan.node2.mac("eth0").parse().expect("MAC");
    resolve_to(&lan.client, WEB_V4, "eth0", &mac1);
    resolve_to(&lan.client, WEB_V6, "eth0", &mac1);
    // The takeover burst is over (3 rounds: a request and a reply for IPv4, an NA for IPv6),
    // so any announcement from now on answers a claim.
    node1.eventually("the takeover burst to end", |s| {
        let v4 = counter(s, "metallb_layer2_gratuitous_sent", &[("ip", WEB_V4)]);
        let v6 = counter(s, "metallb_layer2_gratuitous_sent", &[("ip", WEB_V6)]);
        (v4 == 6.0 && v6 == 3.0).then_some(())
    });

    // Node 2, which runs no herald, claims the IPv4 address with a gratuitous ARP (arping's
    // unsolicited mode, its own MAC, the address as sender).
    let claimed = Instant::now();
    let (_, out) = arping(
        &lan.node2,
        &["-U", "-S", WEB_V4, "-i", "eth0", "-c", "1", WEB_V4],
    );
    node1.eventually("the IPv4 conflict answered", |s| {
        let conflicts = counter(s, "herald_l2_address_conflicts_total", &[("ip", WEB_V4)]);
        let sent = counter(s, "metallb_layer2_gratuitous_sent", &[("ip", WEB_V4)]);
        (conflicts >= 1.0 && sent >= 8.0).then_some(())
    });
    resolve_to(&lan.client, WEB_V4, "eth0", &mac1);
    eprintln!(
        "IPv4: a re-announcement and the client's cache on herald's MAC {:?} after the claim (arping: {})",
        claimed.elapsed(),
        out.trim()
    );

    // Then an unsolicited NA with O=1 for the IPv6 address.
    let v6: Ipv6Addr = WEB_V6.parse().expect("IPv6");
    let claimed = Instant::now();
    send_raw(
        &lan.node2,
        vec![
            l2::unsolicited_neighbor_advertisement(mac2, v6)
                .as_bytes()
                .to_vec(),
        ],
    );
    node1.eventually("the IPv6 conflict answered", |s| {
        let conflicts = counter(s, "herald_l2_address_conflicts_total", &[("ip", WEB_V6)]);
        let sent = counter(s, "metallb_layer2_gratuitous_sent", &[("ip", WEB_V6)]);
        (conflicts >= 1.0 && sent >= 4.0).then_some(())
    });
    resolve_to(&lan.client, WEB_V6, "eth0", &mac1);
    eprintln!(
        "IPv6: a re-announcement and the client's cache on herald's MAC {:?} after the claim",
        claimed.elapsed()
    );
    assert!(
        node1
            .wait_for_log(
                |l| l["ip"] == WEB_V6
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("address conflict")),
                PATIENCE
            )
            .is_some(),
        "the conflict is logged"
    );
}

#[test]
fn the_link_monitor_recovers_from_an_overrun_and_a_later_plan_change_is_answered() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &config("node-1", false));
    let node1 = start(&lan.node1, &file, "node-1");
    node1.eventually("/healthz to say ok", |s| {
        (s.get("/healthz").0 == 200).then_some(())
    });
    // herald reads nothing while stopped; thousands of address events overflow its netlink
    // socket's buffer meanwhile.
    lan.node1.ip(&[
        "link", "add", "ovr0", "type", "veth", "peer", "name", "ovr1",
    ]);
    let batch: String = (1..=3000u32)
        .map(|i| format!("addr add 2001:db8:1::{i:x}/128 dev ovr0 nodad\n"))
        .collect();
    let batch_file = dir.path().join("batch");
    std::fs::write(&batch_file, batch).expect("batch file");
    let pid = node1.pid().to_string();
    testkit::netns::run(std::process::Command::new("kill").args(["-STOP", &pid]));
    lan.node1
        .ip(&["-batch", batch_file.to_str().expect("path")]);
    testkit::netns::run(std::process::Command::new("kill").args(["-CONT", &pid]));
    node1.eventually("the overrun to be seen and a fresh read made", |s| {
        (counter(s, "herald_l2_link_resyncs_total", &[]) >= 1.0).then_some(())
    });
    assert!(
        node1
            .wait_for_log(
                |l| l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("reading every link and address again")),
                PATIENCE
            )
            .is_some(),
        "the overrun is logged"
    );
    assert_eq!(node1.get("/healthz").0, 200);
    // A plan change made afterwards is answered.
    testkit::replace_file(&file, &config("node-1", true));
    let mac1 = lan.node1.mac("eth0");
    resolve_to(&lan.client, WEB_V4, "eth0", &mac1);
    resolve_to(&lan.client, WEB_V6, "eth0", &mac1);
}

#[test]
fn broadcast_arp_for_addresses_not_owned_is_never_read() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &config("node-1", true));
    let node1 = start(&lan.node1, &file, "node-1");
    let mac1 = lan.node1.mac("eth0");
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", WEB_V4]);
    assert!(ok && out.contains(&mac1), "arping: {out}");
    let read = |s: &Speaker| counter(s, "herald_l2_frames_read_total", &[("interface", "eth0")]);
    let before = read(&node1);
    let client_mac: l2::EthernetAddress = lan.client.mac("eth0").parse().expect("MAC");
    let client_v4: Ipv4Addr = CLIENT_V4.parse().expect("IPv4");
    let storm: Vec<Vec<u8>> = (0..100_000u32)
        .map(|i| {
            // 198.51.100.0/24: nobody's.
            let target = Ipv4Addr::from(0xc633_6400 + (i % 250));
            l2::arp_request(l2::wire::VlanTags::Untagged, client_mac, client_v4, target)
                .as_bytes()
                .to_vec()
        })
        .collect();
    send_raw(&lan.client, storm);
    // One question about an owned address after the storm: read and answered after it.
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", WEB_V4]);
    assert!(ok && out.contains(&mac1), "arping: {out}");
    let after = read(&node1);
    eprintln!(
        "frames read: {before} before 100,000 unrelated ARP requests, {after} after them and one question"
    );
    assert_eq!(after - before, 1.0, "only the question was read");
}
