//! Events written back through the testkit API server (which checks them as a real server
//! does), and read back from it: on invalid configuration objects, and on Services as this
//! node starts, stops or fails to announce them.

mod support;

use k8s::{EventRecorder, RecorderConfig, ServiceAnnouncement, event_reasons};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use model::plan::Protocol;
use model::world::ServiceRef;
use serde_json::json;
use std::collections::BTreeMap;
use support::*;

/// Every Event in `namespace` about the object named `name`, oldest first, as
/// `(reason, type, note)`.
async fn events_about(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut events = api
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items;
    events.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
    events.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
    events
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_invalid_pool_gets_one_event_until_it_is_fixed() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (_source, mut rx) = start(&server, config());
    let mut recorder = EventRecorder::new(server.client_as(HERALD), RecorderConfig::new(NODE));

    let bad = pool("broken", &["192.0.2.0/33"]);
    let uid = create(&client, bad.clone()).await.metadata.uid;
    let s = wait_for(&mut rx, "the broken pool", |s| s.resources.pools.len() == 2).await;
    let checked = s.validate();
    assert!(checked.world.is_none());
    assert_eq!(
        recorder
            .configuration(&s, &checked.diagnostics)
            .await
            .unwrap(),
        1
    );

    let events = events_about(&client, NAMESPACE, "broken").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (reason, type_, note) = &events[0];
    assert_eq!(reason, event_reasons::INVALID_CONFIGURATION);
    assert_eq!(type_, "Warning");
    assert!(
        note.starts_with("spec.addresses[0] = \"192.0.2.0/33\": "),
        "{note}"
    );
    // It points at the pool by uid, as kubectl describe looks Events up.
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let written = api.list(&ListParams::default()).await.unwrap().items;
    let regarding = written[0].regarding.clone().expect("regarding");
    assert_eq!(regarding.uid, uid);
    assert_eq!(regarding.kind.as_deref(), Some("IPAddressPool"));
    assert_eq!(regarding.api_version.as_deref(), Some("metallb.io/v1beta1"));

    // The same problem, restated with every snapshot, is not written again.
    patch(
        &client,
        &node(NODE, json!({})),
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    let s = wait_for(&mut rx, "the node touched", |s| {
        s.resources.nodes[0]
            .object
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("touched"))
    })
    .await;
    for _ in 0..3 {
        let checked = s.validate();
        assert_eq!(
            recorder
                .configuration(&s, &checked.diagnostics)
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(events_about(&client, NAMESPACE, "broken").await.len(), 1);

    // Fixed, then broken again: the new breakage is news.
    patch(
        &client,
        &bad,
        json!({"spec": {"addresses": ["198.51.100.0/25"]}}),
    )
    .await;
    let s = wait_for(&mut rx, "the pool fixed", |s| s.validate().world.is_some()).await;
    assert_eq!(
        recorder
            .configuration(&s, &s.validate().diagnostics)
            .await
            .unwrap(),
        0
    );
    patch(
        &client,
        &bad,
        json!({"spec": {"addresses": ["192.0.2.0/33"]}}),
    )
    .await;
    let s = wait_for(&mut rx, "the pool broken again", |s| {
        s.validate().world.is_none()
    })
    .await;
    assert_eq!(
        recorder
            .configuration(&s, &s.validate().diagnostics)
            .await
            .unwrap(),
        1
    );
    assert_eq!(events_about(&client, NAMESPACE, "broken").await.len(), 2);
}

#[tokio::test]
async fn an_unreadable_object_gets_its_event_too() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let mut bad = pool("unreadable", &[]);
    bad["spec"]["addresses"] = json!({"not": "a list"});
    let uid = create(&client, bad).await.metadata.uid;
    let (_source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "the cluster", |s| {
        !s.resources.unreadable.is_empty()
    })
    .await;
    let mut recorder = EventRecorder::new(server.client_as(HERALD), RecorderConfig::new(NODE));
    assert_eq!(
        recorder
            .configuration(&s, &s.validate().diagnostics)
            .await
            .unwrap(),
        1
    );
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let written = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(written.len(), 1);
    assert_eq!(
        written[0].regarding.as_ref().and_then(|r| r.uid.clone()),
        uid
    );
    assert!(
        written[0]
            .note
            .as_deref()
            .unwrap_or("")
            .starts_with("spec.addresses: cannot be read"),
        "{:?}",
        written[0].note
    );
}

#[tokio::test]
async fn service_events_follow_what_this_node_announces() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (_source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "web", |s| !s.resources.services.is_empty()).await;
    let mut recorder = EventRecorder::new(server.client_as(HERALD), RecorderConfig::new(NODE));
    let web = ServiceRef {
        namespace: "default".into(),
        name: "web".into(),
    };
    let state = |protocols: &[Protocol], failure: Option<&str>| {
        BTreeMap::from([(
            web.clone(),
            ServiceAnnouncement {
                protocols: protocols.iter().copied().collect(),
                failure: failure.map(str::to_owned),
                ..ServiceAnnouncement::default()
            },
        )])
    };
    let reasons = async || {
        events_about(&client, "default", "web")
            .await
            .into_iter()
            .map(|(reason, type_, note)| format!("{type_} {reason}: {note}"))
            .collect::<Vec<_>>()
    };

    let both = state(&[Protocol::Layer2, Protocol::Bgp], None);
    assert_eq!(recorder.services(&s, &both).await.unwrap(), 2);
    assert_eq!(
        recorder.services(&s, &both).await.unwrap(),
        0,
        "a steady state is quiet"
    );
    assert_eq!(
        reasons().await,
        [
            "Normal nodeAssigned: announcing from node \"node-a\" with protocol \"layer2\"",
            "Normal nodeAssigned: announcing from node \"node-a\" with protocol \"bgp\"",
        ]
    );

    let failing = state(&[Protocol::Bgp], Some("no interface eth9 on this node"));
    assert_eq!(recorder.services(&s, &failing).await.unwrap(), 2);
    assert_eq!(recorder.services(&s, &failing).await.unwrap(), 0);
    assert_eq!(recorder.services(&s, &BTreeMap::new()).await.unwrap(), 1);
    let all = reasons().await;
    assert_eq!(
        all[2..],
        [
            "Normal serviceWithdrawn: no longer announcing from node \"node-a\" with protocol \"layer2\"",
            "Warning announceFailed: announcing from node \"node-a\" failed: no interface eth9 on this node",
            "Normal serviceWithdrawn: no longer announcing from node \"node-a\" with protocol \"bgp\"",
        ]
    );

    // A Service that is gone gets no Event, and leaves nothing behind to write later.
    delete(&client, &service("web", "Cluster")).await;
    let gone = wait_for(&mut rx, "web gone", |s| s.resources.services.is_empty()).await;
    assert_eq!(recorder.services(&gone, &both).await.unwrap(), 0);
    assert_eq!(recorder.services(&gone, &BTreeMap::new()).await.unwrap(), 0);
}

#[tokio::test]
async fn an_event_that_could_not_be_written_is_written_on_the_next_call() {
    let server = server();
    let client = writer(&server);
    small_cluster(&client, "Cluster").await;
    let (_source, mut rx) = start(&server, config());
    let s = wait_for(&mut rx, "web", |s| !s.resources.services.is_empty()).await;
    // A recorder whose client gives up at once, so the refusal is seen.
    let mut config = server.config_as("recorder");
    config.default_retry = false;
    let mut recorder = EventRecorder::new(
        kube::Client::try_from(config).unwrap(),
        RecorderConfig::new(NODE),
    );
    let announced = BTreeMap::from([(
        ServiceRef {
            namespace: "default".into(),
            name: "web".into(),
        },
        ServiceAnnouncement {
            protocols: [Protocol::Bgp].into(),
            failure: None,
            ..ServiceAnnouncement::default()
        },
    )]);
    server.cut_off_with("recorder", testkit::apiserver::FaultMode::Unavailable);
    let e = recorder.services(&s, &announced).await.unwrap_err();
    assert!(e.to_string().contains("nodeAssigned"), "{e}");
    server.restore("recorder");
    assert_eq!(recorder.services(&s, &announced).await.unwrap(), 1);
    assert_eq!(events_about(&client, "default", "web").await.len(), 1);
}
