//! An in-process Kubernetes API server for tests, speaking the real protocol over HTTP/1.1:
//! REST paths, JSON objects, discovery, resourceVersion, watch streams, 409 on conflicts and
//! 410 on expired versions. The production kube-rs client and `kubectl` use it unchanged.
//!
//! It serves the kinds herald reads or writes (one table, `resources::RESOURCES`): core v1
//! namespaces, nodes, services, endpoints, secrets, configmaps, events, pods; leases;
//! endpointslices; events.k8s.io events (the same objects as core events); and the metallb.io
//! kinds, BGPPeer in v1beta1 and v1beta2 (one object, served in either); and, so deploy/'s
//! manifests can be applied, serviceaccounts, daemonsets, deployments, the four RBAC kinds,
//! customresourcedefinitions, servicemonitors and prometheusrules. Objects are JSON
//! without schemas: nothing is validated beyond names, types and versions.
//!
//! What a test gets:
//! - [`ApiServer::start`] (or [`ApiServer::builder`]) runs the server on its own thread; it
//!   stops when the handle drops. [`ApiServer::client`] / [`ApiServer::client_as`] give kube-rs
//!   clients (call them inside a tokio runtime), [`ApiServer::config_as`] their configuration,
//!   [`ApiServer::write_kubeconfig`] a kubeconfig for kubectl or `herald --kubeconfig`.
//! - Clients are told apart by the name in a kubeconfig's server URL (`/clients/NAME`), else
//!   their bearer token, else their User-Agent.
//! - Counters: [`Controls::requests`], [`Controls::requests_from`], [`Controls::request_counts`].
//! - Faults: [`Controls::stop`] / [`Controls::resume`], [`Controls::set_delay`],
//!   [`Controls::drop_watches`], [`Controls::clear_history`] / [`Controls::set_history_limit`]
//!   (forcing 410), [`Controls::cut_off`] / [`Controls::restore`] for one client,
//!   [`Controls::break_discovery`] (discovery documents answer 503). The `_with`
//!   forms answer 503 instead of hanging; note that kube-rs retries 503s for minutes unless
//!   its config's `default_retry` is off.
//! - Setup and inspection without a client: [`Controls::create`], [`Controls::objects`],
//!   [`Controls::open_watches`], [`Controls::resource_version`].
//! - Services defaulted from service CIDRs as a real server does ([`Builder::service_cidrs`]):
//!   `clusterIPs`, `ipFamilies`, `ipFamilyPolicy`, with its rejection messages.
//! - The same controls over HTTP, under `/testkit/`: `counters`, `reset-counters`,
//!   `stop?mode=hang|unavailable`, `resume`, `delay?ms=N`, `drop-watches`, `history?limit=N`,
//!   `clear-history`, `cut-off?client=NAME&mode=…`, `restore?client=NAME`,
//!   `discovery?broken=true|false`, `state`.
//!
//! ```no_run
//! # async fn demo() {
//! use testkit::apiserver::ApiServer;
//! let server = ApiServer::start().unwrap();
//! let client = server.client_as("node-a");
//! server.cut_off("node-a"); // its watches drop, its requests hang until restore
//! server.clear_history(); // every watch resuming from an older version now gets 410
//! server.restore("node-a");
//! # }
//! ```

mod http;
mod objects;
mod protobuf;
mod resources;
mod select;
mod services;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{oneshot, watch};

pub use objects::{BlockingClient, api_for};
use store::{ApiError, Store, Target};

/// How a stopped server or a cut-off client is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Requests wait until the fault is lifted, as over a partitioned network.
    Hang,
    /// Requests get 503 ServiceUnavailable at once.
    Unavailable,
}

#[derive(Clone, Debug, Default)]
struct Faults {
    stopped: Option<FaultMode>,
    cut: HashMap<String, FaultMode>,
    delay: Duration,
    watch_epoch: u64,
    /// Discovery answers 503 while the resources themselves keep working.
    discovery_broken: bool,
}

/// How many requests one client made with one verb on one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCount {
    /// The client's bearer token, else its User-Agent.
    pub client: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// The plural resource name, with `/status` for the subresource (`services/status`).
    pub resource: String,
    pub count: u64,
}

/// The server's state as a test sees it: counters, faults, direct reads and writes. Shared
/// with the HTTP handlers.
pub struct Controls {
    store: Mutex<Store>,
    rv_tx: watch::Sender<u64>,
    faults: watch::Sender<Faults>,
    counters: Mutex<BTreeMap<(String, String, String), u64>>,
    open_watches: AtomicUsize,
    bookmark_interval: Duration,
    server_address: String,
}

impl Controls {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a write on the store and wakes the watches.
    fn write<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let mut store = self.store();
        let out = f(&mut store);
        let rv = store.rv();
        drop(store);
        self.rv_tx
            .send_if_modified(|old| std::mem::replace(old, rv) != rv);
        out
    }

    fn count(&self, client: &str, verb: &str, resource: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((client.to_string(), verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    /// Holds or refuses a request while a fault applies to it, then applies the delay.
    async fn gate(&self, client: &str) -> Result<(), ApiError> {
        let mut rx = self.faults.subscribe();
        loop {
            let mode = {
                let f = rx.borrow_and_update();
                f.stopped.or_else(|| f.cut.get(client).copied())
            };
            match mode {
                None => break,
                Some(FaultMode::Unavailable) => {
                    return Err(ApiError::new(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    ));
                }
                Some(FaultMode::Hang) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
        let delay = self.faults.borrow().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// Request counts, sorted by client, verb and resource.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.iter()
            .map(|((client, verb, resource), n)| RequestCount {
                client: client.clone(),
                verb: verb.clone(),
                resource: resource.clone(),
                count: *n,
            })
            .collect()
    }

    /// Requests by every client with `verb` on `resource` (`leases`, `services/status`).
    pub fn requests(&self, verb: &str, resource: &str) -> u64 {
        self.request_counts()
            .iter()
            .filter(|c| c.verb == verb && c.resource == resource)
            .map(|c| c.count)
            .sum()
    }

    /// Requests by one client with `verb` on `resource`.
    pub fn requests_from(&self, client: &str, verb: &str, resource: &str) -> u64 {
        self.request_counts()
            .iter()
            .filter(|c| c.client == client && c.verb == verb && c.resource == resource)
            .map(|c| c.count)
            .sum()
    }

    pub fn reset_counters(&self) {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Stops serving: open watches are cut and new requests hang until [`Controls::resume`].
    pub fn stop(&self) {
        self.stop_with(FaultMode::Hang);
    }

    pub fn stop_with(&self, mode: FaultMode) {
        self.faults.send_modify(|f| f.stopped = Some(mode));
    }

    pub fn resume(&self) {
        self.faults.send_modify(|f| f.stopped = None);
    }

    /// Delays every response (a watch: its start) by `delay`; zero turns it off.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.send_modify(|f| f.delay = delay);
    }

    /// Breaks discovery (`true`) or mends it: while broken, every discovery document
    /// (`/api`, `/apis`, `/api/v1`, `/apis/GROUP[/VERSION]`, `/openapi/v3...`) gets 503
    /// ServiceUnavailable, as when an aggregated API server is down or the API server cannot
    /// build its discovery documents, while reads, writes and watches of the resources
    /// keep working.
    pub fn break_discovery(&self, broken: bool) {
        self.faults.send_modify(|f| f.discovery_broken = broken);
    }

    /// Cuts every open watch connection; clients reconnect as after a network failure.
    pub fn drop_watches(&self) {
        self.faults.send_modify(|f| f.watch_epoch += 1);
    }

    /// Cuts one client's watches and makes its requests hang until [`Controls::restore`];
    /// other clients keep working. `client` is the kubeconfig's token (see
    /// [`ApiServer::client_as`]) or, for clients without a token, the User-Agent.
    pub fn cut_off(&self, client: &str) {
        self.cut_off_with(client, FaultMode::Hang);
    }

    pub fn cut_off_with(&self, client: &str, mode: FaultMode) {
        self.faults
            .send_modify(|f| _ = f.cut.insert(client.to_string(), mode));
    }

    pub fn restore(&self, client: &str) {
        self.faults.send_modify(|f| _ = f.cut.remove(client));
    }

    /// Keeps only the last `limit` change events; watches from older versions get 410.
    pub fn set_history_limit(&self, limit: usize) {
        self.store().set_history_limit(limit);
    }

    /// Forgets every change event: a watch resuming from any version before now gets 410
    /// Expired and must list again.
    pub fn clear_history(&self) {
        self.store().clear_history();
    }

    pub fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::SeqCst)
    }

    /// The latest resourceVersion, as a number.
    pub fn resource_version(&self) -> u64 {
        self.store().rv()
    }

    /// Creates an object directly, as a POST would (watches see it), for test setup without a
    /// client. The resource is found from `apiVersion` and `kind`; a namespaced object without
    /// `metadata.namespace` goes to `metallb-system`.
    pub fn create(&self, obj: serde_json::Value) -> Result<serde_json::Value, String> {
        let (res, version) = resource_of(&obj)?;
        let obj = resources::to_storage(res, obj);
        let ns = if resources::RESOURCES[res].namespaced {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("metallb-system")
                .to_string()
        } else {
            String::new()
        };
        let t = Target {
            res: resources::storage_of(res),
            namespace: &ns,
        };
        let created = self.write(|st| st.create(&t, obj)).map_err(|e| e.message)?;
        Ok(resources::to_served(res, version, created))
    }

    /// Every stored object of a kind, in every namespace, in `apiVersion`'s version.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<serde_json::Value> {
        let Ok((res, version)) = resource_of(&json!({"apiVersion": api_version, "kind": kind}))
        else {
            return Vec::new();
        };
        self.store()
            .list(resources::storage_of(res), None, None)
            .map(|o| resources::to_served(res, version, o.clone()))
            .collect()
    }
}

fn resource_of(obj: &serde_json::Value) -> Result<(usize, &'static str), String> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    resources::RESOURCES
        .iter()
        .enumerate()
        .find(|(_, d)| d.group == group && d.kind == kind)
        .and_then(|(i, d)| {
            let v = d.versions.iter().find(|v| **v == version)?;
            Some((i, *v))
        })
        .ok_or_else(|| format!("no resource serves {api_version} {kind}"))
}

/// The namespaces a fresh cluster has, plus herald's.
const INITIAL_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "metallb-system",
];

/// The client name [`ApiServer::client`] and [`ApiServer::config`] use.
pub const DEFAULT_CLIENT: &str = "herald-test";

pub struct Builder {
    listen: SocketAddr,
    history_limit: usize,
    bookmark_interval: Duration,
    service_cidrs: Option<String>,
}

impl Builder {
    /// Where to listen; the default is a free port on 127.0.0.1.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How many change events watches can resume from (default 10 000).
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// How often watches that allow bookmarks get one (default 5 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// The service CIDRs (`--service-cluster-ip-range`): `10.96.0.0/12`, `fd00:10:96::/112`,
    /// or one of each comma-separated for a dual-stack cluster, the primary family first.
    /// With them, Services are given `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` on
    /// create, and refused as a real server refuses them (an IPv6 family on an IPv4-only
    /// cluster, say); without them (the default) Services get no cluster IP.
    pub fn service_cidrs(mut self, cidrs: &str) -> Self {
        self.service_cidrs = Some(cidrs.to_owned());
        self
    }

    /// Like [`Builder::start`], listening inside the network namespace `netns`, where a
    /// speaker in that namespace reaches it (and clients of the test reach it through
    /// [`BlockingClient`]).
    pub fn start_in(self, netns: &str) -> std::io::Result<ApiServer> {
        crate::netns::spawn_in(netns, move || self.start())
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Binds and starts serving on a thread of its own, so it works from sync tests and from
    /// any runtime. It stops when the returned handle is dropped.
    pub fn start(self) -> std::io::Result<ApiServer> {
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut store = Store::new(self.history_limit);
        if let Some(cidrs) = &self.service_cidrs {
            store.services = services::ServiceNetwork::parse(cidrs)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        let ns = resources::find("", "v1", "namespaces")
            .expect("the table serves namespaces")
            .0;
        for name in INITIAL_NAMESPACES {
            let t = Target {
                res: ns,
                namespace: "",
            };
            store
                .create(&t, json!({"metadata": {"name": name}}))
                .map_err(|e| std::io::Error::other(e.message))?;
        }
        let (rv_tx, _) = watch::channel(store.rv());
        let shared = Arc::new(Controls {
            store: Mutex::new(store),
            rv_tx,
            faults: watch::channel(Faults::default()).0,
            counters: Mutex::default(),
            open_watches: AtomicUsize::new(0),
            bookmark_interval: self.bookmark_interval,
            server_address: addr.to_string(),
        });
        let (shutdown, stop_rx) = oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("apiserver-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(ApiServer {
            shared,
            addr,
            _shutdown: shutdown,
        })
    }
}

/// A running server. It derefs to [`Controls`] for counters and faults.
pub struct ApiServer {
    shared: Arc<Controls>,
    addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl std::ops::Deref for ApiServer {
    type Target = Controls;
    fn deref(&self) -> &Controls {
        &self.shared
    }
}

impl ApiServer {
    pub fn builder() -> Builder {
        Builder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
            service_cidrs: None,
        }
    }

    /// Starts a server on a free port of 127.0.0.1 with the defaults.
    pub fn start() -> std::io::Result<Self> {
        Self::builder().start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the cluster's server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle to counters and faults that can outlive borrows of the server.
    pub fn controls(&self) -> Arc<Controls> {
        self.shared.clone()
    }

    /// A kubeconfig for `client`, context namespace `metallb-system`. The server URL is
    /// `{url}/clients/{client}`, which identifies the client to the counters and faults
    /// (kubectl sends no bearer token over plain HTTP; the token is there for clients that do).
    /// `client` should be a plain name: letters, digits, `-`, `_`, `.`.
    pub fn kubeconfig_yaml(&self, client: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: herald-apiserver\n  cluster:\n    server: {url}/clients/{client}\n\
             users:\n- name: {client}\n  user:\n    token: {client}\ncontexts:\n- name: herald-apiserver\n  context:\n    \
             cluster: herald-apiserver\n    user: {client}\n    namespace: metallb-system\n\
             current-context: herald-apiserver\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes the kubeconfig atomically (a rename), so whoever polls for the file never
    /// reads half of it.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, client: &str) -> std::io::Result<()> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.kubeconfig_yaml(client))?;
        std::fs::rename(&tmp, path)
    }

    /// A kube-rs configuration as `client`, default namespace `metallb-system`.
    pub fn config_as(&self, client: &str) -> kube::Config {
        let url = self
            .url()
            .parse()
            .expect("a socket address makes a valid URL");
        let mut config = kube::Config::new(url);
        config.default_namespace = "metallb-system".into();
        config.auth_info.token = Some(client.to_string().into());
        config
    }

    pub fn config(&self) -> kube::Config {
        self.config_as(DEFAULT_CLIENT)
    }

    /// A kube-rs client as `client`; call it inside a tokio runtime.
    pub fn client_as(&self, client: &str) -> kube::Client {
        kube::Client::try_from(self.config_as(client)).expect("a plain-HTTP client always builds")
    }

    pub fn client(&self) -> kube::Client {
        self.client_as(DEFAULT_CLIENT)
    }
}
