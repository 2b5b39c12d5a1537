//! No task dies silently, and every way out is the same orderly shutdown (issue 12), end to
//! end: herald on a node of a test LAN announcing by Layer 2 to the LAN's client and by BGP
//! to a BIRD router on the LAN's other node (testkit's routers sit at 192.0.2.2, that node's
//! address).
//!
//! - Supervision (file mode): a BGP peer's task and the Layer 2 task of `eth0` are made to
//!   panic, once each, through the route only a herald built with its `fault-injection`
//!   feature has (testkit builds it so for tests; the released binary never has it). Each
//!   panic is logged at error, counted, the task runs again, and announcements resume:
//!   a Service added after the panic reaches BIRD's table, and the client's kernel resolves
//!   addresses by ARP and NDP again.
//! - The Kubernetes source (Kubernetes mode, the testkit API server in the node's
//!   namespace): discovery breaking mid-run changes nothing, since herald reads no discovery
//!   document; the API server answering every request with 503 for a long while leaves
//!   every announcement standing (fail static) until it answers again; only the watches
//!   ending for good (a bug: made to panic here) fails the source, and herald then shuts down
//!   in order: it stops answering, releases its Lease, BIRD receives a Cease
//!   NOTIFICATION and withdraws the routes, and herald exits non-zero saying why.
//!
//! Needs root (namespaces) and bird2; fails, never skips, without them. Nothing is timed.

use serde_json::{Value, json};
use std::time::Duration;
use testkit::apiserver::{ApiServer, BlockingClient, FaultMode};
use testkit::lan::{Lan, NODE1_V4, arping, ndisc6, neigh, resolve_to};
use testkit::netns::poll_until;
use testkit::routers::{ROUTER_AS, ROUTER_V4, Router};
use testkit::{PATIENCE, Speaker, manifests, metric};

const NAMESPACE: &str = "metallb-system";
const NODE: &str = "node-1";
const HERALD_AS: u32 = 64512;

/// Waits until the router holds both routes of a dual-stack Service's addresses.
fn wait_routes(router: &Router, v4: &str, v6: &str) {
    router.wait_holds(&format!("{v4}/32"), true);
    router.wait_holds(&format!("{v6}/128"), true);
}

/// A dual-stack Service's addresses, number `i` of the pool.
fn addresses(i: u8) -> (String, String) {
    (
        format!("192.0.2.{}", 200 + i),
        format!("2001:db8::{}", 200 + i),
    )
}

/// The pool, both advertisements and the BGPPeer `router` to BIRD, and a Service per name
/// in `services` (the `i`th holding `addresses(i + 1)`), as one file.
fn file_config(services: &[&str]) -> String {
    let mut text = format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan, namespace: {NAMESPACE}}}
spec:
  addresses: [192.0.2.200-192.0.2.220, 2001:db8::200-2001:db8::220]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {NAMESPACE}}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {NAMESPACE}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: {NAMESPACE}}}
spec:
  myASN: {HERALD_AS}
  peerASN: {ROUTER_AS}
  peerAddress: '{ROUTER_V4}'
  dualStackAddressFamily: true
"
    );
    for (i, name) in services.iter().enumerate() {
        let (v4, v6) = addresses(i as u8 + 1);
        text += &testkit::service_yaml(name, &[&v4, &v6]);
    }
    text
}

/// The value of counter `name{task}` now (0 when herald has no such sample yet).
fn restarts(herald: &Speaker, name: &str, task: &str) -> f64 {
    metric(&herald.scrape(), name, &[("task", task)]).unwrap_or(0.0)
}

/// Waits until the error line about `task`'s unexpected end is logged; returns it.
fn wait_error(herald: &Speaker, what: &str, about: impl Fn(&Value) -> bool) -> Value {
    herald
        .wait_for_log(|l| l["level"] == "ERROR" && about(l), PATIENCE)
        .unwrap_or_else(|| panic!("no error logged for {what}:\n{}", herald.logs_text()))
}

#[test]
fn a_panicked_peer_task_and_interface_task_are_restarted_counted_and_announce_again() {
    let lan = Lan::new();
    let router = lan.bird_for_node1(HERALD_AS, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &file_config(&["web"]));
    let herald = Speaker::start_in(&lan.node1, &[&file], NODE, &[]);
    let mac = lan.node1.mac("eth0");
    let (web4, web6) = addresses(1);
    wait_routes(&router, &web4, &web6);
    resolve_to(&lan.client, &web4, "eth0", &mac);
    resolve_to(&lan.client, &web6, "eth0", &mac);

    // The BGP session task of peer `router` panics.
    let peer_task = "bgp_peer:router";
    herald.panic_task(peer_task);
    let line = wait_error(&herald, peer_task, |l| l["task"] == peer_task);
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("ended unexpectedly")),
        "{line}"
    );
    herald.eventually(
        "herald_task_restarts_total{task=bgp_peer:router} to be 1",
        |h| (restarts(h, "herald_task_restarts_total", peer_task) == 1.0).then_some(()),
    );
    // The new task made a new session: the connection died with the old one.
    herald.eventually("a second session with the router", |h| {
        let established =
            h.count_logs(|l| l["message"] == "BGP session established" && l["peer"] == "router");
        (established == 2).then_some(())
    });
    // Announcements resume: a Service added after the panic reaches BIRD, beside the old one.
    testkit::replace_file(&file, &file_config(&["web", "after-peer-panic"]));
    let (late4, late6) = addresses(2);
    wait_routes(&router, &late4, &late6);
    wait_routes(&router, &web4, &web6);
    herald.eventually("BIRD's session to be up", |_| {
        router
            .session_up("herald", NODE1_V4)
            .unwrap_or(false)
            .then_some(())
    });

    // The Layer 2 task of eth0 panics.
    let interface_task = "interface:eth0";
    herald.panic_task(interface_task);
    let line = wait_error(&herald, interface_task, |l| l["interface"] == "eth0");
    assert!(
        line["error"].as_str().is_some_and(|e| e.contains("panic")),
        "the error line says it panicked: {line}"
    );
    herald.eventually(
        "herald_task_restarts_total{task=interface:eth0} to be 1",
        |h| {
            let m = h.scrape();
            let labels = [("task", interface_task)];
            let restarted = metric(&m, "herald_task_restarts_total", &labels) == Some(1.0);
            let up = metric(&m, "herald_task_up", &labels) == Some(1.0);
            (restarted && up).then_some(())
        },
    );
    herald.eventually("/healthz to be ok again", |h| {
        (h.get("/healthz").0 == 200).then_some(())
    });
    // Answers resume: the client forgets what it knew and resolves again, and a Service
    // added after the panic is resolved too, by ARP and by NDP.
    lan.client.ip(&["neigh", "flush", "dev", "eth0"]);
    assert!(
        !neigh(&lan.client, &web4, "eth0").contains("lladdr"),
        "the client's cache is empty"
    );
    resolve_to(&lan.client, &web4, "eth0", &mac);
    resolve_to(&lan.client, &web6, "eth0", &mac);
    testkit::replace_file(
        &file,
        &file_config(&["web", "after-peer-panic", "after-interface-panic"]),
    );
    let (new4, new6) = addresses(3);
    resolve_to(&lan.client, &new4, "eth0", &mac);
    resolve_to(&lan.client, &new6, "eth0", &mac);
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", &new4]);
    assert!(ok && out.contains(&mac), "arping: {out}");
    let (ok, out) = ndisc6(&lan.client, &new6, "eth0");
    assert!(ok && out.contains(&mac), "ndisc6: {out}");
    wait_routes(&router, &new4, &new6);

    // Each panic was counted once, and nothing else ended.
    assert_eq!(
        restarts(&herald, "herald_task_restarts_total", peer_task),
        1.0
    );
    assert_eq!(
        restarts(&herald, "herald_task_restarts_total", interface_task),
        1.0
    );
    let others: Vec<String> = herald
        .scrape()
        .samples
        .iter()
        .filter(|s| s.metric.ends_with("task_restarts_total"))
        .filter(|s| {
            let task = s.labels.get("task").unwrap_or_default();
            task != peer_task && task != interface_task
        })
        .filter(|s| {
            use prometheus_parse::Value::{Counter, Untyped};
            !matches!(s.value, Counter(v) | Untyped(v) if v == 0.0)
        })
        .map(|s| format!("{} {:?} {:?}", s.metric, s.labels, s.value))
        .collect();
    assert!(others.is_empty(), "other restarts: {others:?}");
}

// ---- the Kubernetes source ----

/// Creates Service `name` on this node with its addresses `(v4, v6)`.
fn create_service(api: &BlockingClient, name: &str, (v4, v6): &(String, String)) {
    manifests::create_service(api, name, NODE, json!({}), &[v4, v6]);
}

/// `GET path` on the API server from herald's namespace, as herald would reach it.
fn api_get(lan: &Lan, server: &ApiServer, path: &str) -> testkit::Response {
    let (addr, owned) = (server.addr(), path.to_owned());
    testkit::netns::spawn_in(lan.node1.name(), move || testkit::http_get(addr, &owned))
        .join()
        .expect("the client thread")
        .unwrap_or_else(|e| panic!("GET {path} from the node: {e}"))
}

/// The Lease of address `ip`: the node answering for it.
fn address_lease(ip: &str) -> String {
    format!("herald-{}", testkit::cluster::lease_key(ip))
}

/// This node's own Lease: its holder says the node is alive; released at shutdown, so the
/// other nodes take its addresses at once.
const MEMBER_LEASE: &str = "herald-member-node-1";

/// The holder the API server's Lease `name` names, if any.
fn lease_holder(server: &ApiServer, name: &str) -> Option<String> {
    server
        .objects("coordination.k8s.io/v1", "Lease")
        .into_iter()
        .find(|l| l["metadata"]["name"] == name)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

/// Whether herald is still running.
fn running(herald: &mut Speaker) -> bool {
    herald.wait_exit(Duration::ZERO).is_none()
}

#[test]
fn the_kubernetes_source_fails_static_on_api_trouble_and_shuts_down_in_order_when_it_ends() {
    let lan = Lan::new();
    let router = lan.bird_for_node1(HERALD_AS, None);
    let server = ApiServer::builder()
        .start_in(lan.node1.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(lan.node1.name()));
    for object in manifests::lan_configuration(NAMESPACE, NODE, HERALD_AS) {
        api.create(object);
    }
    let web = addresses(1);
    create_service(&api, "web", &web);
    let mut herald = Speaker::start_kubernetes_in(&lan.node1, &server, NODE, NAMESPACE);
    let mac = lan.node1.mac("eth0");
    wait_routes(&router, &web.0, &web.1);
    resolve_to(&lan.client, &web.0, "eth0", &mac);
    herald.eventually("node-1 to hold web's Lease and its own", |_| {
        let web = lease_holder(&server, &address_lease(&web.0));
        let member = lease_holder(&server, MEMBER_LEASE);
        (web.as_deref() == Some(NODE) && member.as_deref() == Some(NODE)).then_some(())
    });

    // 1. Discovery breaks: every discovery document answers 503, while the resources are
    // served as before. herald reads none (its kinds are compiled in), so it goes on
    // following the cluster: a Service created now is announced both ways.
    server.break_discovery(true);
    for path in ["/api", "/apis", "/apis/metallb.io/v1beta1", "/api/v1"] {
        let r = api_get(&lan, &server, path);
        assert_eq!(r.status, 503, "GET {path} while discovery is broken: {r:?}");
    }
    let during_discovery = addresses(2);
    create_service(&api, "during-discovery", &during_discovery);
    wait_routes(&router, &during_discovery.0, &during_discovery.1);
    resolve_to(&lan.client, &during_discovery.0, "eth0", &mac);
    assert!(
        running(&mut herald),
        "herald exited:\n{}",
        herald.logs_text()
    );
    assert_eq!(herald.get("/healthz").0, 200);
    server.break_discovery(false);

    // 2. The API server answers every request with 503 for a long while: the watches retry
    // (capped backoff) and herald keeps what it announces, since a restart could not read
    // the configuration and would withdraw everything. Wait until the Services watch has
    // failed over and over, and the node's own Lease has gone unrenewed for longer than its
    // duration (3 s; renewed every second): herald holds on even so.
    let tries = |server: &ApiServer, verbs: &[&str], resource: &str| {
        verbs
            .iter()
            .map(|verb| server.requests_from("herald", verb, resource))
            .sum::<u64>()
    };
    let watches = |s: &ApiServer| tries(s, &["list", "watch"], "services");
    let renewals = |s: &ApiServer| tries(s, &["create", "update"], "leases");
    let is_error = |l: &Value| l["level"] == "ERROR";
    let errors_before = herald.count_logs(is_error);
    let (watches_before, renewals_before) = (watches(&server), renewals(&server));
    server.stop_with(FaultMode::Unavailable);
    poll_until(
        "the Services watch to fail 10 times and 5 Lease renewals to be refused",
        PATIENCE,
        |last| {
            let (w, r) = (watches(&server), renewals(&server));
            *last = format!(
                "since the outage began: {} tries to watch Services, {} Lease writes",
                w - watches_before,
                r - renewals_before
            );
            (w >= watches_before + 10 && r >= renewals_before + 5).then_some(())
        },
    );
    assert!(
        running(&mut herald),
        "herald exited:\n{}",
        herald.logs_text()
    );
    assert_eq!(
        herald.get("/healthz").0,
        200,
        "healthy: it keeps announcing"
    );
    wait_routes(&router, &web.0, &web.1);
    wait_routes(&router, &during_discovery.0, &during_discovery.1);
    let (ok, out) = arping(&lan.client, &["-c", "1", "-w", "5", "-i", "eth0", &web.0]);
    assert!(ok && out.contains(&mac), "web still answered: {out}");
    // Said once per watch when it started failing, not at every retry.
    let warned = herald.count_logs(|l| {
        l["watch"] == "services"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("watching the API server failed"))
    });
    assert_eq!(warned, 1, "{}", herald.logs_text());
    server.resume();
    let after_outage = addresses(3);
    create_service(&api, "after-outage", &after_outage);
    wait_routes(&router, &after_outage.0, &after_outage.1);
    assert_eq!(
        herald.count_logs(is_error),
        errors_before,
        "an outage herald rides out is no error, nor an error per retry:\n{}",
        herald.logs_text()
    );

    // 3. The watches end for good (a bug, made to happen here): the source has failed, and
    // herald leaves through the orderly shutdown.
    herald.panic_task("kubernetes_watches");
    let status = herald
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("herald did not exit:\n{}", herald.logs_text()));
    assert!(
        !status.success(),
        "a failed source is a failure: {status:?}"
    );
    let logs = herald.logs();
    let position = |what: &str, check: &dyn Fn(&Value) -> bool| {
        logs.iter()
            .position(check)
            .unwrap_or_else(|| panic!("no log line: {what}\n{}", herald.logs_text()))
    };
    let failed = position("the failure", &|l| {
        l["level"] == "ERROR"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutting down after a failure"))
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("the Kubernetes watches stopped"))
    });
    let closed = position("BGP sessions closed", &|l| {
        l["message"] == "BGP sessions closed"
    });
    let stopped = position("stopped", &|l| l["message"] == "stopped");
    assert!(
        failed < closed && closed < stopped,
        "{}",
        herald.logs_text()
    );
    // BIRD got a Cease NOTIFICATION, and withdrew what herald had announced.
    poll_until("BIRD to show the Cease it received", PATIENCE, |last| {
        *last = router
            .neighbor_info("herald", NODE1_V4)
            .unwrap_or_else(|e| e);
        (last.contains("Received: Administrative") && last.contains(NODE)).then_some(())
    });
    router.wait_holds(&format!("{}/32", web.0), false);
    router.wait_holds(&format!("{}/128", after_outage.1), false);
    // The node released its own Lease (the others take its addresses at once), and nobody
    // answers for the addresses any more.
    assert_eq!(
        lease_holder(&server, MEMBER_LEASE),
        None,
        "node-1's Lease released"
    );
    let (ok, out) = arping(&lan.client, &["-c", "2", "-w", "3", "-i", "eth0", &web.0]);
    assert!(!ok, "{} still answered: {out}", web.0);
}
