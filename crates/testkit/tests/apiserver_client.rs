//! The production kube-rs client against the testkit API server: every verb, the errors a
//! real server gives, the status subresource, selectors, both BGPPeer versions, counters and
//! faults.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::core::Status;
use serde_json::json;
use testkit::apiserver::{ApiServer, FaultMode};

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A client that does not retry 503s: kube-rs's default policy retries them for minutes.
fn no_retry(server: &ApiServer, name: &str) -> kube::Client {
    let mut config = server.config_as(name);
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn service(name: &str, labels: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn services_every_verb_and_the_errors_of_a_real_server() {
    let server = ApiServer::start().unwrap();
    let api: Api<Service> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();

    let created = api
        .create(&pp, &service("web", json!({"app": "web"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));

    let dup = api_error(
        api.create(&pp, &service("web", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.resource_version, meta.resource_version);
    let missing = api_error(api.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "services \"nope\" not found");

    // Replace: current version succeeds; the now-stale one conflicts; none is unconditional.
    let mut changed = got.clone();
    changed.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let replaced = api.replace("web", &pp, &changed).await.unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );
    let conflict = api_error(api.replace("web", &pp, &changed).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    changed.metadata.resource_version = None;
    api.replace("web", &pp, &changed).await.unwrap();

    // Merge patch, and a merge patch carrying a stale resourceVersion.
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    let labels = patched.metadata.labels.clone().unwrap();
    assert_eq!(labels["tier"], "front");
    assert_eq!(labels["app"], "web");
    let stale = json!({"metadata": {"resourceVersion": got.metadata.resource_version, "labels": {"x": "y"}}});
    let e = api_error(
        api.patch("web", &PatchParams::default(), &Patch::Merge(stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);

    // Status: the main resource ignores status; the subresource changes only status.
    let ingress = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}},
                         "spec": {"type": "NodePort"}});
    let s = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(ingress.clone()),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
    let ips: Vec<_> = s
        .status
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| i.ip.clone().unwrap())
        .collect();
    assert_eq!(ips, ["192.0.2.10", "2001:db8::10"]);
    let main = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": []}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.status, s.status,
        "status is not writable through the main resource"
    );
    let via_get = api.get_status("web").await.unwrap();
    assert_eq!(via_get.status, s.status);

    // Server-side apply, approximately.
    let applied = api
        .patch(
            "applied",
            &PatchParams::apply("herald").force(),
            &Patch::Apply(service("applied", json!({"app": "other"}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.name.as_deref(), Some("applied"));

    // Label selectors and list versions.
    let list = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    let list = api
        .list(&ListParams::default().labels("app in (web,other),tier!=back"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let list = api
        .list(&ListParams::default().fields("metadata.name=applied"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    // Paging carries on with a continue token.
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.clone().expect("a second page");
    let next = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(next.items.len(), 1);
    assert_ne!(next.items[0].metadata.name, page.items[0].metadata.name);
    // A continue token from before a forgotten history has expired.
    api.create(&pp, &service("third", json!({}))).await.unwrap();
    server.clear_history();
    let e = api_error(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));

    // Delete returns the object; a second delete is NotFound.
    let gone = api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_left());
    let e = api_error(
        api.delete("web", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);

    assert_eq!(server.requests("create", "services"), 3);
    assert_eq!(server.requests("patch", "services/status"), 1);
    assert_eq!(server.requests("delete", "services"), 2);
}

#[tokio::test]
async fn creation_in_a_missing_namespace_fails_and_generate_name_names() {
    let server = ApiServer::start().unwrap();
    let leases: Api<Lease> = Api::namespaced(server.client(), "nowhere");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"generateName": "ip-"}, "spec": {}})).unwrap();
    let e = api_error(
        leases
            .create(&PostParams::default(), &lease)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let a = leases.create(&PostParams::default(), &lease).await.unwrap();
    let b = leases.create(&PostParams::default(), &lease).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("ip-") && a.len() == 8, "{a}");
    assert_ne!(a, b);
    assert_eq!(
        leases.get(&a).await.unwrap().metadata.namespace.as_deref(),
        Some("metallb-system")
    );
}

#[tokio::test]
async fn nodes_are_cluster_scoped_and_keep_their_status_on_create() {
    let server = ApiServer::start().unwrap();
    let nodes: Api<Node> = Api::all(server.client());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]},
    }))
    .unwrap();
    let n = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(n.metadata.namespace, None);
    assert!(n.status.is_some());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"zone": "a"}}})),
        )
        .await
        .unwrap();
    let l = nodes
        .list(&ListParams::default().labels("zone=a"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
}

#[tokio::test]
async fn bgppeers_are_one_object_in_two_versions() {
    let server = ApiServer::start().unwrap();
    let client = server.client();
    let ar = |v: &str| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metallb.io", v, "BGPPeer"),
            "bgppeers",
        )
    };
    let v1beta1: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ar("v1beta1"));
    let v1beta2: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ar("v1beta2"));
    let peer: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": "router"},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "2001:db8::1"},
        "status": {"ignored": true},
    }))
    .unwrap();
    let created = v1beta1.create(&PostParams::default(), &peer).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "custom resources drop status on create"
    );
    let seen = v1beta2.get("router").await.unwrap();
    assert_eq!(
        seen.types.as_ref().unwrap().api_version,
        "metallb.io/v1beta2"
    );
    assert_eq!(seen.data["spec"]["peerAddress"], "2001:db8::1");
    let mut updated = seen.clone();
    updated.data["spec"]["holdTime"] = json!("9s");
    v1beta2
        .replace("router", &PostParams::default(), &updated)
        .await
        .unwrap();
    let again = v1beta1.get("router").await.unwrap();
    assert_eq!(again.types.unwrap().api_version, "metallb.io/v1beta1");
    assert_eq!(again.data["spec"]["holdTime"], "9s");
    assert_eq!(again.metadata.generation, Some(2));
    let st = v1beta1
        .patch_status(
            "router",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ok": true}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["ok"], true);
    assert_eq!(
        st.metadata.generation,
        Some(2),
        "status writes leave the generation alone"
    );
    assert_eq!(
        v1beta2
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn one_client_cut_off_while_others_keep_working() {
    let server = ApiServer::start().unwrap();
    let a: Api<Lease> = Api::default_namespaced(no_retry(&server, "node-a"));
    let b: Api<Lease> = Api::default_namespaced(no_retry(&server, "node-b"));
    server.cut_off_with("node-a", FaultMode::Unavailable);
    let e = api_error(a.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 503);
    assert!(b.list(&ListParams::default()).await.is_ok());

    server.cut_off("node-a");
    let hung =
        tokio::time::timeout(Duration::from_millis(300), a.list(&ListParams::default())).await;
    assert!(hung.is_err(), "a cut-off client's request hangs");
    assert!(b.list(&ListParams::default()).await.is_ok());
    server.restore("node-a");
    assert!(a.list(&ListParams::default()).await.is_ok());
    assert!(server.requests_from("node-a", "list", "leases") >= 3);
    assert_eq!(server.requests_from("node-b", "list", "leases"), 2);

    server.set_delay(Duration::from_millis(50));
    assert!(
        b.list(&ListParams::default()).await.is_ok(),
        "slow, not failing"
    );
    server.set_delay(Duration::ZERO);

    server.stop_with(FaultMode::Unavailable);
    assert_eq!(
        api_error(b.list(&ListParams::default()).await.unwrap_err()).code,
        503
    );
    server.resume();
    assert!(b.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn http_controls_and_discovery() {
    let server = ApiServer::start().unwrap();
    let client = server.client();
    let get = |path: &str| {
        let req = http_get(path);
        let client = client.clone();
        async move { client.request::<serde_json::Value>(req).await.unwrap() }
    };
    let groups = get("/apis").await;
    let names: Vec<_> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"metallb.io") && names.contains(&"coordination.k8s.io"));
    let core = get("/api/v1").await;
    let svc = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "services")
        .unwrap();
    assert_eq!(svc["shortNames"], json!(["svc"]));
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "services/status")
    );
    let counters = get("/testkit/counters").await;
    assert!(
        counters.as_array().unwrap().is_empty(),
        "discovery is not counted: {counters}"
    );
    get("/testkit/cut-off?client=x&mode=unavailable").await;
    let other: Api<Lease> = Api::default_namespaced(no_retry(&server, "x"));
    assert_eq!(api_error(other.get("l").await.unwrap_err()).code, 503);
    let counters = get("/testkit/counters").await;
    assert_eq!(
        counters,
        json!([{"client": "x", "verb": "get", "resource": "leases", "count": 1}])
    );
}

#[tokio::test]
async fn broken_discovery_fails_discovery_and_nothing_else() {
    let server = ApiServer::start().unwrap();
    let client = no_retry(&server, "d");
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    server.break_discovery(true);
    let Err(e) = kube::discovery::Discovery::new(client.clone()).run().await else {
        panic!("discovery works while broken");
    };
    assert_eq!(api_error(e).code, 503);
    let Err(e) = kube::discovery::group(&client, "metallb.io").await else {
        panic!("a group's document is served while discovery is broken");
    };
    assert_eq!(api_error(e).code, 503);
    // The resources themselves are served as before.
    assert!(leases.list(&ListParams::default()).await.is_ok());

    // Mended over HTTP, as a process outside the test would.
    let req = http_get("/testkit/discovery?broken=false");
    client.request::<serde_json::Value>(req).await.unwrap();
    let discovery = kube::discovery::Discovery::new(client)
        .run()
        .await
        .expect("discovery works again");
    assert!(discovery.has_group("metallb.io"));
}

#[tokio::test]
async fn a_written_kubeconfig_names_its_client() {
    let server = ApiServer::start().unwrap();
    let path = std::env::temp_dir().join(format!("herald-kubeconfig-{}", std::process::id()));
    server.write_kubeconfig(&path, "speaker-1").unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "metallb-system");
    let leases: Api<Lease> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
    assert!(
        leases
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(server.requests_from("speaker-1", "list", "leases"), 1);
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn objects_created_from_the_handle_are_seen_by_clients() {
    let server = ApiServer::start().unwrap();
    let pool = server
        .create(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "pool"}, "spec": {"addresses": ["2001:db8::/120"]},
        }))
        .unwrap();
    assert_eq!(pool["metadata"]["namespace"], "metallb-system");
    server
        .create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
        .unwrap();
    assert!(
        server
            .create(json!({"apiVersion": "v9", "kind": "Node"}))
            .is_err()
    );
    let nodes: Api<Node> = Api::all(server.client());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let peers = server.objects("metallb.io/v1beta1", "IPAddressPool");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["spec"]["addresses"][0], "2001:db8::/120");
}

#[tokio::test]
async fn events_k8s_io_creates_are_checked_strictly_and_core_ones_are_not() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let server = ApiServer::start().unwrap();
    let events: Api<Event> = Api::default_namespaced(server.client());
    let core: Api<CoreEvent> = Api::default_namespaced(server.client());
    let bare = json!({
        "metadata": {"name": "web.1"},
        "regarding": {"kind": "Service", "name": "web", "namespace": "metallb-system"},
        "involvedObject": {"kind": "Service", "name": "web", "namespace": "metallb-system"},
        "reason": "nodeAssigned", "type": "Normal",
    });
    let e = api_error(
        events
            .create(
                &PostParams::default(),
                &serde_json::from_value(bare.clone()).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    for missing in [
        "reportingController",
        "reportingInstance",
        "action",
        "eventTime",
    ] {
        assert!(e.message.contains(missing), "{missing}: {}", e.message);
    }
    // The same Event through the old core API passes: client-go's recorder writes those.
    core.create(
        &PostParams::default(),
        &serde_json::from_value(bare).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn events_are_one_store_in_both_groups() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let server = ApiServer::start().unwrap();
    let events: Api<Event> = Api::default_namespaced(server.client());
    let core: Api<CoreEvent> = Api::default_namespaced(server.client());
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "web."},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Service", "name": "web", "namespace": "metallb-system"},
        "reason": "nodeAssigned", "note": "announcing from node n1", "type": "Normal",
        "action": "Announce", "reportingController": "herald", "reportingInstance": "herald-n1",
    }))
    .unwrap();
    let created = events.create(&PostParams::default(), &ev).await.unwrap();
    let name = created.metadata.name.unwrap();
    let seen = core.get(&name).await.unwrap();
    assert_eq!(seen.message.as_deref(), Some("announcing from node n1"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("web"));
    assert_eq!(seen.reporting_component.as_deref(), Some("herald"));
    let by_object = core
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(by_object.items.len(), 1);
    core.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"message": "again"})),
    )
    .await
    .unwrap();
    assert_eq!(
        events.get(&name).await.unwrap().note.as_deref(),
        Some("again")
    );
    assert_eq!(server.objects("v1", "Event")[0]["message"], "again");
    assert_eq!(
        server.objects("events.k8s.io/v1", "Event")[0]["note"],
        "again"
    );
}
