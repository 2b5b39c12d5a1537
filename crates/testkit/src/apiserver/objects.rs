//! Writing and reading objects as a real client does (over HTTP, with kube-rs), for test
//! setup: the API of any object this server serves, found from its `apiVersion` and `kind`,
//! and a blocking client for plain `#[test]` functions, which can run from inside a network
//! namespace (where a speaker under test reaches the server).

use super::{ApiServer, resource_of, resources};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;

/// The API serving objects like `object` (only its `apiVersion`, `kind` and `metadata`
/// count), and the object's name. A namespaced object without a namespace is in
/// `metallb-system`.
///
/// # Panics
/// When the server does not serve the kind.
pub fn api_for(client: &kube::Client, object: &Value) -> (Api<DynamicObject>, String) {
    let (res, version) = resource_of(object).unwrap_or_else(|e| panic!("{e}"));
    let def = &resources::RESOURCES[res];
    let gvk = GroupVersionKind::gvk(def.group, version, def.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, def.plural);
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let api = if def.namespaced {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("metallb-system");
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    (api, name)
}

/// A kube-rs client for synchronous tests: each call runs on a thread of its own, inside
/// the named network namespace when there is one.
#[derive(Clone)]
pub struct BlockingClient {
    config: kube::Config,
    netns: Option<String>,
}

impl BlockingClient {
    /// A client of `server` as `client`; from inside the network namespace `netns` when given
    /// (the server must listen there: [`super::Builder::start_in`]).
    pub fn new(server: &ApiServer, client: &str, netns: Option<&str>) -> BlockingClient {
        BlockingClient {
            config: server.config_as(client),
            netns: netns.map(str::to_owned),
        }
    }

    /// Runs `f` with a client, on a current-thread runtime, and returns its result.
    pub fn run<F, Fut, R>(&self, f: F) -> R
    where
        F: FnOnce(kube::Client) -> Fut + Send + 'static,
        Fut: Future<Output = R>,
        R: Send + 'static,
    {
        let config = self.config.clone();
        let body = move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let client = kube::Client::try_from(config).expect("a plain-HTTP client builds");
                f(client).await
            })
        };
        let thread = match &self.netns {
            Some(ns) => crate::netns::spawn_in(ns, body),
            None => std::thread::spawn(body),
        };
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// POSTs `object`; returns it as stored.
    pub fn create(&self, object: Value) -> Value {
        self.run(move |client| async move {
            let (api, name) = api_for(&client, &object);
            let object: DynamicObject =
                serde_json::from_value(object).expect("a Kubernetes object");
            let created = api
                .create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("creating {name}: {e}"));
            serde_json::to_value(created).expect("an object serializes")
        })
    }

    /// A merge patch of the object `like` names.
    pub fn patch(&self, like: &Value, patch: Value) {
        let like = like.clone();
        self.run(move |client| async move {
            let (api, name) = api_for(&client, &like);
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap_or_else(|e| panic!("patching {name}: {e}"));
        });
    }

    /// A merge patch of the `status` subresource of the object `like` names.
    pub fn patch_status(&self, like: &Value, patch: Value) {
        let like = like.clone();
        self.run(move |client| async move {
            let (api, name) = api_for(&client, &like);
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap_or_else(|e| panic!("patching the status of {name}: {e}"));
        });
    }

    pub fn delete(&self, like: &Value) {
        let like = like.clone();
        self.run(move |client| async move {
            let (api, name) = api_for(&client, &like);
            api.delete(&name, &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
        });
    }

    /// Every object of the kind `like` names, in its namespace (or cluster-wide).
    pub fn list(&self, like: &Value) -> Vec<Value> {
        let like = like.clone();
        self.run(move |client| async move {
            let (api, _) = api_for(&client, &like);
            let list = api
                .list(&ListParams::default())
                .await
                .unwrap_or_else(|e| panic!("listing: {e}"));
            list.items
                .into_iter()
                .map(|o| serde_json::to_value(o).expect("an object serializes"))
                .collect()
        })
    }

    /// The Events (events.k8s.io) in `namespace` about the object named `name`, as
    /// (reason, note).
    pub fn events_about(&self, namespace: &str, name: &str) -> BTreeSet<(String, String)> {
        let like = serde_json::json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"namespace": namespace},
        });
        self.list(&like)
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (text(&e["reason"]), text(&e["note"]))
            })
            .collect()
    }
}
