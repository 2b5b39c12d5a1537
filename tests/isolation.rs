//! One bad object harms one Service (issue 12), end to end: herald in Kubernetes mode on a
//! node of a test LAN, reading the testkit API server, announcing by Layer 2 to the LAN's
//! client and by BGP to a BIRD router on the LAN's other node (testkit's routers sit at
//! 192.0.2.2, that node's address). Among valid Services the cluster holds
//! one whose ingress address herald cannot parse (`010.0.0.1`, which Kubernetes accepts) and
//! one with a malformed `metallb.io/loadBalancerIPs` annotation: both are skipped, each with a
//! warning logged once, an Event on it, and its reason in `/status`; the configuration stays
//! valid, and a Service created afterwards is announced and withdrawn as usual, as the
//! router's table and the client's neighbor cache show.
//!
//! Needs root (namespaces); fails, never skips, without it. Nothing is timed.

use serde_json::{Value, json};
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::lan::{Lan, arping, ndisc6, resolve_to};
use testkit::{Speaker, manifests};

const NAMESPACE: &str = "metallb-system";
const NODE: &str = "node-1";

fn skipped_reason(st: &Value, name: &str) -> Option<String> {
    st["plan"]["skipped"]
        .as_array()?
        .iter()
        .find(|s| s["service"]["name"] == name)
        .map(|s| s["reason"].to_string())
}

#[test]
fn a_service_herald_cannot_use_is_skipped_and_the_others_follow_the_cluster() {
    let lan = Lan::new();
    let router = lan.bird_for_node1(64512, None);
    let server = ApiServer::builder()
        .start_in(lan.node1.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(lan.node1.name()));
    for object in manifests::lan_configuration(NAMESPACE, NODE, 64512) {
        api.create(object);
    }
    manifests::create_service(
        &api,
        "web",
        NODE,
        json!({}),
        &["192.0.2.201", "2001:db8::201"],
    );
    manifests::create_service(
        &api,
        "leading-zero",
        NODE,
        json!({}),
        &["192.0.2.202", "010.0.0.1"],
    );
    manifests::create_service(
        &api,
        "bad-annotation",
        NODE,
        json!({"metallb.io/loadBalancerIPs": "192.0.2.203,192.0.2.x"}),
        &["192.0.2.203"],
    );

    let herald = Speaker::start_kubernetes_in(&lan.node1, &server, NODE, NAMESPACE);
    let mac = lan.node1.mac("eth0");

    // The valid Service is announced both ways; the two bad ones are skipped, each saying
    // why, and the configuration stays loaded (not stale).
    router.wait_holds("192.0.2.201/32", true);
    router.wait_holds("2001:db8::201/128", true);
    resolve_to(&lan.client, "192.0.2.201", "eth0", &mac);
    let st = herald.eventually("both bad Services skipped in /status", |s| {
        let st = s.get_json("/status");
        let both = ["leading-zero", "bad-annotation"]
            .iter()
            .all(|n| skipped_reason(&st, n).is_some());
        both.then_some(st)
    });
    assert_eq!(st["config"]["state"], "loaded", "{st:#}");
    let why = skipped_reason(&st, "leading-zero").unwrap_or_default();
    assert!(
        why.contains("unusable") && why.contains("010.0.0.1"),
        "{why}"
    );
    let why = skipped_reason(&st, "bad-annotation").unwrap_or_default();
    assert!(
        why.contains("unusable") && why.contains("192.0.2.x"),
        "{why}"
    );
    for prefix in ["192.0.2.202/32", "192.0.2.203/32"] {
        assert!(
            !router.holds(prefix),
            "{prefix} announced:\n{}",
            router.dump()
        );
    }
    for name in ["leading-zero", "bad-annotation"] {
        herald.eventually(&format!("a configurationWarning Event on {name}"), |_| {
            api.events_about("default", name)
                .iter()
                .any(|(reason, _)| reason == "configurationWarning")
                .then_some(())
        });
    }

    // A Service created afterwards is announced...
    manifests::create_service(
        &api,
        "late",
        NODE,
        json!({}),
        &["192.0.2.204", "2001:db8::204"],
    );
    router.wait_holds("192.0.2.204/32", true);
    router.wait_holds("2001:db8::204/128", true);
    resolve_to(&lan.client, "192.0.2.204", "eth0", &mac);
    resolve_to(&lan.client, "2001:db8::204", "eth0", &mac);

    // ...and withdrawn as usual.
    api.delete(&manifests::load_balancer("late"));
    router.wait_holds("192.0.2.204/32", false);
    router.wait_holds("2001:db8::204/128", false);
    herald.eventually("192.0.2.204 no longer answered", |s| {
        let st = s.get_json("/status");
        let answered = st["announcing"]["layer2"]["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["ip"] == "192.0.2.204"));
        (!answered).then_some(())
    });
    let (ok, out) = arping(
        &lan.client,
        &["-c", "2", "-w", "3", "-i", "eth0", "192.0.2.204"],
    );
    assert!(!ok, "192.0.2.204 is still answered: {out}");
    let (ok, out) = ndisc6(&lan.client, "2001:db8::204", "eth0");
    assert!(!ok, "2001:db8::204 is still answered: {out}");

    // Through all those snapshots, each bad Service's warning was logged once, and nothing
    // said the configuration was rejected.
    for name in ["leading-zero", "bad-annotation"] {
        let warned = herald.count_logs(|l| {
            l["level"] == "WARN"
                && l["resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!("default/{name}")))
        });
        assert_eq!(warned, 1, "warnings about {name}:\n{}", herald.logs_text());
    }
    let rejected = herald.count_logs(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("configuration rejected"))
    });
    assert_eq!(rejected, 0, "{}", herald.logs_text());
}
