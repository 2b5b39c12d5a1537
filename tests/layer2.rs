//! `herald speaker` in file mode answering ARP and NDP, end to end: two herald processes on
//! the node namespaces of a test LAN, the client's own kernel, `arping` and `ndisc6` asking,
//! and the assertions on what the client holds. Configuration changes go through the file,
//! as a user would make them.
//!
//! Needs root (namespaces); fails, never skips, without it. Nothing is timed.

use serde_json::{Value, json};
use std::path::PathBuf;
use testkit::lan::{Lan, arping, ndisc6, neigh, resolve_to};
use testkit::netns::poll_until;
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
