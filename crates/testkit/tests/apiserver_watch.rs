//! Watches against the testkit API server: the raw event protocol, and kube-rs reflectors
//! that must stay exact through a forced 410, a cut connection and dropped watches.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use testkit::apiserver::ApiServer;

const PATIENCE: Duration = Duration::from_secs(60);

fn cm(name: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "herald"}},
        "data": {"v": data},
    }))
    .unwrap()
}

/// Polls `check` until it holds; panics with `what` after a generous time.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn watch_events_follow_versions_and_selectors() {
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();
    let a = api.create(&pp, &cm("a", "1")).await.unwrap();
    let from = a.metadata.resource_version.clone().unwrap();

    let wp = WatchParams::default().labels("app=herald"); // bookmarks are on by default
    let mut events = api.watch(&wp, &from).await.unwrap().boxed();
    api.create(&pp, &cm("b", "1")).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    // Leaving the selection is a DELETED for this watch, coming back an ADDED.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": null}}})),
    )
    .await
    .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "herald"}}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    let mut bookmarks = 0;
    while seen.len() < 5 {
        match events
            .try_next()
            .await
            .unwrap()
            .expect("the watch stays open")
        {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => bookmarks += 1,
            WatchEvent::Error(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(
        seen,
        ["ADDED b", "MODIFIED a", "DELETED b", "ADDED b", "DELETED a"]
    );
    while bookmarks == 0 {
        if let WatchEvent::Bookmark(b) = events.try_next().await.unwrap().unwrap() {
            assert_eq!(
                b.metadata.resource_version,
                server.resource_version().to_string()
            );
            bookmarks += 1;
        }
    }

    // A version older than the kept history: the watch answers with a 410 event.
    server.clear_history();
    let mut expired = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match expired.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 event, got {other:?}"),
    }
    // Watching from "0" starts with the current state.
    let mut current = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    match current.try_next().await.unwrap() {
        Some(WatchEvent::Added(o)) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected b, got {other:?}"),
    }
}

/// What the server holds: name → (resourceVersion, data).
async fn server_state(api: &Api<ConfigMap>) -> BTreeMap<String, (String, String)> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            let v = c
                .data
                .unwrap_or_default()
                .get("v")
                .cloned()
                .unwrap_or_default();
            (
                c.metadata.name.unwrap(),
                (c.metadata.resource_version.unwrap(), v),
            )
        })
        .collect()
}

fn store_state(store: &reflector::Store<ConfigMap>) -> BTreeMap<String, (String, String)> {
    store
        .state()
        .iter()
        .map(|c| {
            let v = c
                .data
                .clone()
                .unwrap_or_default()
                .get("v")
                .cloned()
                .unwrap_or_default();
            (
                c.metadata.name.clone().unwrap(),
                (c.metadata.resource_version.clone().unwrap(), v),
            )
        })
        .collect()
}

/// Makes a burst of changes: creates, updates and deletes.
async fn churn(api: &Api<ConfigMap>, round: u32) {
    let pp = PostParams::default();
    for i in 0..5 {
        api.create(&pp, &cm(&format!("r{round}-{i}"), "new"))
            .await
            .unwrap();
    }
    api.patch(
        &format!("r{round}-0"),
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "changed"}})),
    )
    .await
    .unwrap();
    api.delete(&format!("r{round}-1"), &DeleteParams::default())
        .await
        .unwrap();
    if round > 0 {
        api.delete(&format!("r{}-2", round - 1), &DeleteParams::default())
            .await
            .unwrap();
        api.patch(
            &format!("r{}-3", round - 1),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": format!("round {round}")}})),
        )
        .await
        .unwrap();
    }
}

async fn reflector_survives(streaming: bool) {
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .unwrap();
    let writer: Api<ConfigMap> = Api::namespaced(server.client_as("writer"), "default");
    let watched: Api<ConfigMap> = Api::namespaced(server.client_as("watcher"), "default");
    churn(&writer, 0).await;

    let (reader, store_writer) = reflector::store();
    let config = if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default().page_size(2)
    };
    let stream =
        reflector(store_writer, watcher(watched, config).default_backoff()).applied_objects();
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    let exact = async |what: &str| {
        let dbg = async || {
            let (a, b) = (store_state(&reader), server_state(&writer).await);
            if a != b && std::env::var("DBG").is_ok() {
                eprintln!(
                    "store {a:?}\nserver {b:?}\n{:?} watches {}",
                    server.request_counts(),
                    server.open_watches()
                );
            }
            a == b
        };
        eventually(what, dbg).await;
    };
    exact("the initial list").await;
    churn(&writer, 1).await;
    exact("live changes").await;

    // A cut connection: changes made while the watcher is away arrive when it resumes,
    // from the kept history, with no new list.
    let lists = server.requests_from("watcher", "list", "configmaps");
    let watches = server.requests_from("watcher", "watch", "configmaps");
    server.cut_off("watcher");
    eventually("the watch is cut", async || server.open_watches() == 0).await;
    churn(&writer, 2).await;
    server.restore("watcher");
    exact("changes made while cut off").await;
    assert!(server.requests_from("watcher", "watch", "configmaps") > watches);
    if !streaming {
        assert_eq!(
            server.requests_from("watcher", "list", "configmaps"),
            lists,
            "resumed, not relisted"
        );
    }

    // Forgotten history: the resumed watch gets 410 and the watcher lists again.
    let watches = server.requests_from("watcher", "watch", "configmaps");
    server.cut_off("watcher");
    eventually("the watch is cut", async || server.open_watches() == 0).await;
    churn(&writer, 3).await;
    server.clear_history();
    server.restore("watcher");
    exact("changes made while cut off, after a 410").await;
    if streaming {
        // A streaming list is a watch too: one to get the 410, one to stream the state.
        assert!(server.requests_from("watcher", "watch", "configmaps") >= watches + 2);
    } else {
        assert!(
            server.requests_from("watcher", "list", "configmaps") > lists,
            "relisted after 410"
        );
    }

    // Every watch dropped at once, with writes right behind.
    for round in 4..7 {
        server.drop_watches();
        churn(&writer, round).await;
    }
    exact("changes around dropped watches").await;

    // A stopped server: watches cut, every request hangs; the handle still writes.
    server.stop();
    eventually("the watch is cut", async || server.open_watches() == 0).await;
    for i in 0..3 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("while-stopped-{i}"), "namespace": "default"}});
        server.create(cm).unwrap();
    }
    server.resume();
    exact("changes made while the server was stopped").await;
    driver.abort();
}

#[tokio::test]
async fn reflector_stays_exact_through_410_and_dropped_connections() {
    reflector_survives(false).await;
}

#[tokio::test]
async fn streaming_list_reflector_stays_exact_too() {
    reflector_survives(true).await;
}
