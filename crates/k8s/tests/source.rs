//! The Kubernetes source against the testkit API server with the real kube-rs client: what
//! the snapshots hold, how they follow the cluster, and that no update is lost to a 410 or a
//! dropped connection.

mod support;

use model::plan::SkipReason;
use model::world::Password;
use model::{EndpointsMode, Severity};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_snapshot_holds_the_cluster_and_its_plan() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Local").await;
    // Not herald's: a Secret nobody names, a pool in another namespace, a slice of no
    // Service, another node.
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "unrelated", "namespace": NAMESPACE}, "stringData": {"k": "v"}}),
    )
    .await;
    let mut elsewhere = pool("elsewhere", &["198.51.100.0/24"]);
    elsewhere["metadata"]["namespace"] = json!("default");
    create(&client, elsewhere).await;
    let mut orphan = endpoint_slice("orphan", "none", "IPv4", &[NODE]);
    orphan["metadata"]["labels"] = json!({});
    create(&client, orphan).await;

    let (source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "the service's addresses", |s| {
        s.resources.services.iter().any(|svc| {
            svc.object
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref()?.ingress.as_ref())
                .is_some_and(|i| i.len() == 2)
        })
    })
    .await;

    assert_eq!(
        names(&s),
        set([
            "BGPAdvertisement metallb-system/bgp",
            "BGPPeer metallb-system/router",
            "EndpointSlice default/web-v4",
            "EndpointSlice default/web-v6",
            "IPAddressPool metallb-system/main",
            "L2Advertisement metallb-system/l2",
            "Node node-a",
            "Secret metallb-system/router-password",
            "Service default/web",
        ])
    );
    assert_eq!(s.resources.endpoints_mode, EndpointsMode::Observed);
    assert_eq!(s.resources.load_balancer_class, None);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);

    let checked = s.validate();
    let world = checked.world.clone().expect("a valid configuration");
    let password = world.peers["router"].password.as_ref().expect("a password");
    assert_eq!(password.value(), "s3cret");
    // Held, and never shown: not by the snapshot's Debug, nor the World's.
    let shown = format!("{s:?} {s:#?} {world:?} {:?}", checked.diagnostics);
    assert!(
        !shown.contains("s3cret") && !shown.contains("czNjcmV0"),
        "{shown}"
    );
    assert!(matches!(password, Password::Secret { name, .. } if name == "router-password"));

    let plan = model::plan(&world, NODE);
    assert_eq!(l2(&plan), set(["192.0.2.10", "2001:db8::10"]));
    assert_eq!(
        routes(&plan, "router"),
        set(["192.0.2.10/32", "2001:db8::10/128"])
    );
    // node-b has no local endpoint: herald there would announce nothing.
    let other = model::plan(&world, "node-b");
    assert!(other.l2.is_empty() && routes(&other, "router").is_empty());

    let counters = source.counters();
    assert!(counters.updates >= 9, "{counters:?}");
    assert_eq!(counters.update_errors, 0);
    assert!(counters.snapshots >= 1);
}

#[tokio::test]
async fn only_services_of_our_load_balancer_class_are_held() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let mut config = config();
    config.load_balancer_class = Some("herald.example/lb".into());
    let (_source, mut rx) = start(&server, config);
    let s = wait_for(&mut rx, "the cluster", |s| !s.resources.pools.is_empty()).await;
    assert_eq!(
        s.resources.load_balancer_class.as_deref(),
        Some("herald.example/lb")
    );
    // The class-less Service is not ours: not held, not planned, not even skipped.
    assert!(
        names(&s).iter().all(|n| !n.contains("web")),
        "{:?}",
        names(&s)
    );
    let p = plan(&s, NODE);
    assert!(l2(&p).is_empty() && p.skipped.is_empty(), "{p:#?}");

    let mut ours = service("gold", "Cluster");
    ours["spec"]["loadBalancerClass"] = json!("herald.example/lb");
    create(&client, ours.clone()).await;
    create(&client, endpoint_slice("gold-1", "gold", "IPv4", &[NODE])).await;
    assign(&client, &ours, &["192.0.2.20"]).await;
    let s = wait_for(&mut rx, "the Service of our class", |s| {
        !plan(s, NODE).l2.is_empty()
    })
    .await;
    assert_eq!(l2(&plan(&s, NODE)), set(["192.0.2.20"]));
}

#[tokio::test]
async fn an_endpoint_leaving_or_a_node_label_changing_changes_the_plan() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Local").await;
    let (_source, mut rx) = start(&server, config());
    wait_for(&mut rx, "web announced", |s| {
        !s.resources.services.is_empty() && !plan(s, NODE).l2.is_empty()
    })
    .await;

    // The last local endpoint moves away: under externalTrafficPolicy Local, node-a stops
    // announcing web.
    patch(
        &client,
        &endpoint_slice("web-v4", "web", "IPv4", &[]),
        json!({"endpoints": [{"addresses": ["10.0.0.9"], "nodeName": "node-b", "conditions": {"ready": true}}]}),
    )
    .await;
    delete(&client, &endpoint_slice("web-v6", "web", "IPv6", &[])).await;
    let s = wait_for(&mut rx, "no local endpoint left", |s| {
        s.resources.endpoint_slices.len() == 1 && plan(s, NODE).l2.is_empty()
    })
    .await;
    let p = plan(&s, NODE);
    assert!(routes(&p, "router").is_empty());
    assert!(
        p.skipped
            .iter()
            .any(|k| k.reason == SkipReason::NoLocalEndpoint),
        "{:?}",
        p.skipped
    );
    assert_eq!(l2(&plan(&s, "node-b")), set(["192.0.2.10", "2001:db8::10"]));

    // Back on node-a, then node-a's label stops matching the BGPAdvertisement: layer 2 stays,
    // BGP goes.
    patch(
        &client,
        &endpoint_slice("web-v4", "web", "IPv4", &[]),
        json!({"endpoints": [{"addresses": ["10.0.0.1"], "nodeName": NODE, "conditions": {"ready": true}}]}),
    )
    .await;
    wait_for(&mut rx, "web back on node-a", |s| {
        routes(&plan(s, NODE), "router").len() == 2
    })
    .await;
    patch(
        &client,
        &node(NODE, json!({})),
        json!({"metadata": {"labels": {"bgp": "off"}}}),
    )
    .await;
    let s = wait_for(&mut rx, "node-a no longer selected for BGP", |s| {
        routes(&plan(s, NODE), "router").is_empty()
    })
    .await;
    let p = plan(&s, NODE);
    assert_eq!(l2(&p), set(["192.0.2.10", "2001:db8::10"]));
    assert!(
        p.skipped
            .iter()
            .any(|k| matches!(k.reason, SkipReason::NodeNotSelected { .. })),
        "{:?}",
        p.skipped
    );
}

#[tokio::test]
async fn a_deleted_service_leaves_the_snapshot() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (_source, mut rx) = start(&server, config());
    wait_for(&mut rx, "web", |s| !plan(s, NODE).l2.is_empty()).await;
    delete(&client, &service("web", "Cluster")).await;
    let s = wait_for(&mut rx, "web gone", |s| s.resources.services.is_empty()).await;
    let p = plan(&s, NODE);
    assert!(p.l2.is_empty() && routes(&p, "router").is_empty());
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
}

#[tokio::test]
async fn a_burst_of_changes_yields_few_snapshots() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    // A longer quiet time than the default, so that a slow machine delivering the burst
    // slowly still sees it as one; the bound is on the count, not on time.
    let mut config = config();
    config.quiet = Duration::from_millis(300);
    config.max_delay = Duration::from_secs(3);
    let (source, mut rx) = start(&server, config);
    wait_for(&mut rx, "the cluster", |s| !s.resources.services.is_empty()).await;
    let before = source.counters().snapshots;

    for i in 0..50 {
        let mut svc = service(&format!("burst-{i}"), "Cluster");
        svc["metadata"]["namespace"] = json!("default");
        server.create(svc).expect("created");
    }
    wait_for(&mut rx, "all 50 services", |s| {
        s.resources.services.len() == 51
    })
    .await;
    let published = source.counters().snapshots - before;
    assert!(
        (1..=5).contains(&published),
        "50 changes made {published} snapshots"
    );
}

/// The source's view must equal the server's: every object herald watches, at the same
/// resourceVersion.
fn server_state(server: &testkit::apiserver::ApiServer) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (api_version, kind) in [
        ("metallb.io/v1beta1", "IPAddressPool"),
        ("metallb.io/v1beta1", "L2Advertisement"),
        ("metallb.io/v1beta1", "BGPAdvertisement"),
        ("metallb.io/v1beta2", "BGPPeer"),
        ("v1", "Service"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("v1", "Node"),
        ("v1", "Secret"),
    ] {
        for o in server.objects(api_version, kind) {
            let m = &o["metadata"];
            let (ns, name) = (m["namespace"].as_str(), m["name"].as_str().unwrap_or(""));
            let ours = match kind {
                "Node" => name == NODE,
                "Service" | "EndpointSlice" => true,
                "Secret" => name == "router-password",
                _ => ns == Some(NAMESPACE),
            };
            if ours {
                out.insert(format!(
                    "{kind} {}/{name}@{}",
                    ns.unwrap_or(""),
                    m["resourceVersion"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}

fn snapshot_state(s: &k8s::Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    each_object(s, |kind, m| {
        out.insert(format!(
            "{kind} {}/{}@{}",
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or(""),
            m.resource_version.as_deref().unwrap_or("")
        ));
    });
    out
}

/// Changes of every watched kind: creations, updates and deletions.
async fn churn(client: &kube::Client, round: u32) {
    let name = |what: &str| format!("{what}-{round}");
    create(
        client,
        pool(&name("pool"), &[&format!("198.51.100.{round}/32")]),
    )
    .await;
    create(client, service(&name("svc"), "Cluster")).await;
    assign(client, &service(&name("svc"), "Cluster"), &["192.0.2.99"]).await;
    create(
        client,
        endpoint_slice(&name("slice"), &name("svc"), "IPv4", &[NODE]),
    )
    .await;
    patch(
        client,
        &node(NODE, json!({})),
        json!({"metadata": {"labels": {"round": round.to_string()}}}),
    )
    .await;
    patch(
        client,
        &password_secret("router-password", ""),
        json!({"stringData": {"password": format!("password-{round}")}}),
    )
    .await;
    if round > 0 {
        let before = |what: &str| format!("{what}-{}", round - 1);
        delete(client, &pool(&before("pool"), &[])).await;
        delete(client, &service(&before("svc"), "Cluster")).await;
        delete(client, &endpoint_slice(&before("slice"), "", "IPv4", &[])).await;
    }
}

#[tokio::test]
async fn no_update_is_lost_through_a_410_and_dropped_connections() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (source, mut rx) = start(&server, config());
    let exact = async |rx: &mut _, what: &str| {
        let want = server_state(&server);
        wait_for(rx, what, |s| snapshot_state(s) == want).await
    };
    exact(&mut rx, "the initial state").await;
    churn(&client, 0).await;
    exact(&mut rx, "live changes").await;

    // Cut off: changes made meanwhile arrive when the watches resume from history.
    server.cut_off(HERALD);
    eventually("the watches are cut", || server.open_watches() == 0).await;
    churn(&client, 1).await;
    server.restore(HERALD);
    exact(&mut rx, "changes made while cut off").await;

    // Cut off past the kept history: each watch gets 410 Gone on resuming and lists again;
    // what was deleted meanwhile must leave the snapshot, not linger.
    let lists = server.requests_from(HERALD, "list", "services");
    server.set_history_limit(3);
    server.cut_off(HERALD);
    eventually("the watches are cut", || server.open_watches() == 0).await;
    churn(&client, 2).await;
    churn(&client, 3).await;
    server.restore(HERALD);
    let s = exact(&mut rx, "changes made while cut off, after a 410").await;
    assert!(
        server.requests_from(HERALD, "list", "services") > lists,
        "the services watch listed again after 410"
    );
    assert!(!names(&s).contains("Service default/svc-2"));
    let password = s.validate().world.expect("valid").peers["router"]
        .password
        .clone()
        .expect("a password");
    assert_eq!(password.value(), "password-3");

    // Every watch dropped with writes right behind, while history is still short.
    for round in 4..7 {
        server.drop_watches();
        churn(&client, round).await;
    }
    exact(&mut rx, "changes around dropped watches").await;

    // A stopped server: watches cut, requests hang; the handle still writes.
    server.set_history_limit(10_000);
    server.stop();
    eventually("the watches are cut", || server.open_watches() == 0).await;
    for i in 0..3 {
        server
            .create(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("while-stopped-{i}"), "namespace": "default"},
                "spec": {"type": "LoadBalancer"}}))
            .expect("created");
    }
    server.resume();
    exact(&mut rx, "changes made while the server was stopped").await;
    assert!(
        source.counters().update_errors > 0,
        "the failed watches are counted: {:?}",
        source.counters()
    );
}

#[tokio::test]
async fn an_unreadable_object_is_reported_and_the_rest_keeps_working() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    // The testkit server, like a cluster with a CRD that differs from herald's, stores a
    // pool whose addresses are not a list.
    let mut bad = pool("bad", &[]);
    bad["spec"]["addresses"] = json!("192.0.2.0/24");
    create(&client, bad).await;
    let (source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "the cluster", |s| !s.resources.services.is_empty()).await;

    assert_eq!(s.resources.unreadable.len(), 1);
    assert_eq!(
        s.resources.unreadable[0].resource.to_string(),
        "IPAddressPool metallb-system/bad"
    );
    let d = &s.diagnostics[0];
    assert_eq!(
        (d.severity, d.resource.name.as_str(), d.field.as_str()),
        (Severity::Error, "bad", "spec.addresses")
    );
    assert_eq!(s.resources.pools.len(), 1, "the good pool is read");
    let checked = s.validate();
    assert!(
        checked.world.is_none(),
        "an unreadable object rejects the configuration"
    );
    assert_eq!(
        checked.diagnostics.iter().filter(|d| d.is_error()).count(),
        1,
        "reported once: {:?}",
        checked.diagnostics
    );
    assert!(source.counters().update_errors >= 1);

    // Fixed, it is read like any other.
    patch(
        &client,
        &pool("bad", &[]),
        json!({"spec": {"addresses": ["192.0.2.128/25"]}}),
    )
    .await;
    let s = wait_for(&mut rx, "the pool fixed", |s| {
        s.resources.unreadable.is_empty()
    })
    .await;
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    assert_eq!(s.resources.pools.len(), 2);
}

#[tokio::test]
async fn password_secrets_are_watched_by_name_as_peers_name_them() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (_source, mut rx) = start(&server, config());
    wait_for(&mut rx, "the router's secret", |s| {
        s.resources.secrets.len() == 1
    })
    .await;

    // A second peer, written as v1beta1 and read as v1beta2, naming a Secret that does not
    // exist yet: the configuration is invalid until it does.
    create(
        &client,
        json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": "old-style", "namespace": NAMESPACE},
            "spec": {"myASN": 64500, "peerASN": 64502, "peerAddress": "2001:db8::fe"},
        }),
    )
    .await;
    patch(
        &client,
        &peer("old-style", ""),
        json!({"spec": {"passwordSecret": {"name": "second"}}}),
    )
    .await;
    let s = wait_for(&mut rx, "the second peer", |s| {
        s.resources.bgp_peers.len() == 2
    })
    .await;
    let errors: Vec<String> = s
        .validate()
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors.len() == 1 && errors[0].contains("no Secret metallb-system/second exists"),
        "{errors:?}"
    );
    create(&client, password_secret("second", "another")).await;
    let s = wait_for(&mut rx, "the second secret", |s| {
        s.resources.secrets.len() == 2
    })
    .await;
    let world = s.validate().world.expect("valid once the Secret exists");
    assert_eq!(
        world.peers["old-style"]
            .password
            .as_ref()
            .map(|p| p.value()),
        Some("another")
    );

    // No peer names the router's Secret any more: it leaves the snapshot.
    delete(&client, &peer("router", "")).await;
    let s = wait_for(&mut rx, "the router's secret dropped", |s| {
        s.resources.secrets.len() == 1
    })
    .await;
    assert_eq!(s.resources.secrets[0].name(), "second");
}

#[tokio::test]
async fn a_service_that_cannot_be_read_is_skipped_alone() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    // A LoadBalancer whose traffic policy is not a string (as from an API server that
    // differs from herald's types), and a ClusterIP Service just as broken, which is no
    // concern of ours.
    let mut odd = service("odd", "Cluster");
    odd["spec"]["externalTrafficPolicy"] = json!(["Local"]);
    create(&client, odd).await;
    let mut other = service("other", "Cluster");
    other["spec"]["type"] = json!("ClusterIP");
    other["spec"]["externalTrafficPolicy"] = json!(["Local"]);
    create(&client, other).await;
    let (_source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "the cluster", |s| !s.resources.services.is_empty()).await;

    let warned: Vec<String> = s.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with("warning: Service default/odd: spec.externalTrafficPolicy"),
        "{warned:?}"
    );
    let checked = s.validate();
    let world = checked.world.expect("a Service harms only itself");
    let p = model::plan(&world, NODE);
    assert_eq!(l2(&p), set(["192.0.2.10", "2001:db8::10"]));
    let odd = p
        .skipped
        .iter()
        .find(|x| x.service.name == "odd")
        .expect("odd skipped");
    assert!(
        matches!(&odd.reason, SkipReason::Unusable { problems }
            if problems[0].contains("spec.externalTrafficPolicy")),
        "{odd}"
    );
    assert!(p.skipped.iter().all(|x| x.service.name != "other"));
}

#[tokio::test]
async fn a_change_to_a_service_that_is_not_ours_publishes_nothing() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let mut plain = service("plain", "Cluster");
    plain["spec"]["type"] = json!("ClusterIP");
    create(&client, plain.clone()).await;
    create(
        &client,
        endpoint_slice("plain-1", "plain", "IPv4", &["node-b"]),
    )
    .await;
    let (source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "the cluster", |s| !s.resources.services.is_empty()).await;
    assert!(
        !names(&s).iter().any(|n| n.contains("plain")),
        "neither the Service nor its slice is held: {:?}",
        names(&s)
    );
    let before = source.counters().snapshots;

    // Changes to the ClusterIP Service and its slice, then one to ours: only the last makes
    // a snapshot.
    patch(
        &client,
        &plain,
        json!({"metadata": {"labels": {"tier": "x"}}}),
    )
    .await;
    patch(
        &client,
        &endpoint_slice("plain-1", "", "IPv4", &[]),
        json!({"endpoints": [{"addresses": ["10.9.9.9"], "nodeName": NODE}]}),
    )
    .await;
    // And to ours, in a field herald does not read: nothing either.
    patch(
        &client,
        &service("web", ""),
        json!({"metadata": {"annotations": {"note": "unread"}}}),
    )
    .await;
    patch(
        &client,
        &service("web", ""),
        json!({"metadata": {"labels": {"tier": "front"}}}),
    )
    .await;
    wait_for(&mut rx, "web's new label", |s| {
        s.resources.services.iter().any(|svc| {
            svc.object
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("tier"))
        })
    })
    .await;
    assert_eq!(
        source.counters().snapshots,
        before + 1,
        "one snapshot, for the one change herald reads"
    );

    // The ClusterIP Service becomes a LoadBalancer: now it and its slice are ours.
    patch(&client, &plain, json!({"spec": {"type": "LoadBalancer"}})).await;
    let s = wait_for(&mut rx, "plain, now a LoadBalancer", |s| {
        names(s).contains("Service default/plain")
    })
    .await;
    assert!(names(&s).contains("EndpointSlice default/plain-1"));
}

#[tokio::test]
async fn after_an_outage_every_watch_is_back_within_two_seconds() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    // As herald makes it: without kube's own retries, whose waits grow to minutes.
    let mut config_ = server.config_as(HERALD);
    config_.default_retry = false;
    let source_client = kube::Client::try_from(config_).expect("a client");
    let (_source, mut rx) = k8s::Source::start(source_client, config());
    wait_for(&mut rx, "the cluster", |s| !s.resources.services.is_empty()).await;
    eventually("every watch open", || server.open_watches() == 10).await;

    for (outage, history) in [("the history kept", true), ("the history lost", false)] {
        // The API server refuses every request for long enough that kube-rs's default
        // backoff would have grown past 6 s; meanwhile a Service is created.
        server.stop_with(testkit::apiserver::FaultMode::Unavailable);
        eventually("the watches are cut", || server.open_watches() == 0).await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        let name = format!("after-{}", history);
        let mut svc = service(&name, "Cluster");
        svc["metadata"]["namespace"] = json!("default");
        server.create(svc).expect("created");
        if !history {
            // No watch can resume from where it was: each must list again.
            server.clear_history();
        }
        let lists = server.requests_from(HERALD, "list", "services");
        let back = tokio::time::Instant::now();
        server.resume();
        let s = wait_for(&mut rx, "the Service created during the outage", |s| {
            names(s).contains(&format!("Service default/{name}"))
        })
        .await;
        eventually("every watch open again", || server.open_watches() == 10).await;
        let took = back.elapsed();
        eprintln!(
            "after an outage with {outage}: every watch back and the change seen in {took:?}"
        );
        assert!(!s.validate().diagnostics.iter().any(|d| d.is_error()));
        if !history {
            assert!(
                server.requests_from(HERALD, "list", "services") > lists,
                "listed again"
            );
        }
        // The bound is 2 s; the backoff is capped at 1 s. Judged with patience for a
        // busy machine: far below the 6 s and more of an uncapped backoff.
        assert!(took < Duration::from_secs(5), "{outage}: {took:?}");
    }
}
