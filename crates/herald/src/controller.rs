//! `herald controller`: assigns addresses from the IPAddressPools to LoadBalancer Services
//! and writes them to `status.loadBalancer.ingress`, with MetalLB's controller's rules
//! (the `ipam` crate decides; this module watches, converges and writes).
//!
//! One replica is active at a time; the others watch and wait. The replicas stand in an
//! election of their own (`crates/election`, group `herald-controller`, one key
//! `controller`): allocation runs only while this replica acts on that key, and each time
//! it starts to, the allocator is rebuilt from scratch: every address already in a Service's
//! status is registered before any Service is given a new one, so no address is handed to two Services that may not share it, across restarts
//! and failovers alike. Every Service write is conditional on the resourceVersion it was
//! decided from.
//!
//! Writes: one status write per Service that needs one (status and the
//! `metallb.io/ip-allocated-from-pool` annotation together), Events with MetalLB's reasons from
//! a task of their own so they never delay a status write, IPAddressPool status at most once a
//! second per pool, and the controller's ConfigurationState when the configuration changes.

use crate::cli::ControllerArgs;
use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{FutureExt as _, StreamExt as _};
use ipam::{Allocator, Outcome, PoolCounters};
use k8s::allocation as io;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as Watched, watcher};
use model::crd::IPAddressPool;
use model::world::{Labels, ServiceRef};
use model::{Resources, Sourced};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Status writes in flight at once.
const WRITES_IN_FLIGHT: usize = 32;
/// IPAddressPool status is written at most this often per pool.
const POOL_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// A failed write (other than a lost race) is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Watch events handled before converging, so a burst makes few rounds.
const BATCH: usize = 2048;

pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let namespace = crate::cli::resolve_namespace(args.namespace.clone());
    let client = client(args.kubeconfig.clone()).await?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = %namespace,
        lb_class = args.lb_class.as_deref(),
        "starting herald controller"
    );
    let shared = Arc::new(Shared::new());
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-addr {}", args.metrics_addr))?;
    let local_addr = listener
        .local_addr()
        .context("reading the bound metrics address")?;
    let router = router(shared.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    info!(addr = %local_addr, "serving metrics");

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let (elector, active) = elect(client.clone(), &namespace, &identity)?;
    info!(identity = %identity, election = ELECTION, "standing for the active replica");
    let controller = Controller::new(client, namespace, args.lb_class.clone(), shared);
    let result = tokio::select! {
        result = controller.run(active) => result,
        _ = sigterm.recv() => { info!(signal = "SIGTERM", "shutting down"); Ok(()) }
        _ = sigint.recv() => { info!(signal = "SIGINT", "shutting down"); Ok(()) }
    };
    // The controller (and every write it had in flight) is gone before the Lease is released,
    // so the next replica never allocates beside this one.
    elector.shutdown(RELEASE_TIMEOUT).await;
    result
}

/// The election of the active replica: its own group, one key.
const ELECTION: &str = "herald-controller";
const KEY: &str = "controller";
/// How long shutdown waits for the release of the Lease to be written.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Joins the controllers' election and returns the signal that is true while this replica
/// holds its one key: allocation runs only then. The signal's sender goes away when the
/// elector stops, which ends the controller.
fn elect(
    client: kube::Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<(election::Elector, watch::Receiver<bool>)> {
    let (elector, mut events) =
        election::Elector::start(client, election::Config::new(namespace, ELECTION, identity));
    elector
        .set_candidacy(BTreeMap::from([(
            KEY.to_owned(),
            election::Candidacy::default(),
        )]))
        .context("standing for the controller's election")?;
    let (active_tx, active) = watch::channel(false);
    let mut acting = elector.acting();
    tokio::spawn(async move {
        loop {
            let now = acting.borrow_and_update().contains(KEY);
            active_tx.send_if_modified(|was| std::mem::replace(was, now) != now);
            if acting.changed().await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            debug!(?event, "controller election");
        }
    });
    Ok((elector, active))
}

/// `$POD_NAME` (through clap) is the identity in a pod; elsewhere the hostname and the
/// process id, so that replicas on one host stay distinct.
fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A client from `kubeconfig`, else the in-cluster configuration, else `$KUBECONFIG` or
/// `~/.kube/config`.
async fn client(kubeconfig: Option<std::path::PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match &kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .with_context(|| format!("--kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no Kubernetes API to talk to: not in a pod, and no kubeconfig ($KUBECONFIG, \
             ~/.kube/config); give --kubeconfig",
        )?,
    };
    kube::Client::try_from(config).context("cannot make a Kubernetes client")
}

/// What the HTTP endpoints show.
struct Shared {
    registry: Mutex<Registry>,
    pools: Family<PoolLabel, Gauge>,
    pools_v4: Family<PoolLabel, Gauge>,
    pools_v6: Family<PoolLabel, Gauge>,
    in_use: Family<PoolLabel, Gauge>,
    in_use_v4: Family<PoolLabel, Gauge>,
    in_use_v6: Family<PoolLabel, Gauge>,
    active: Gauge,
    pending: Gauge,
    writes: Counter,
    write_errors: Counter,
    status: Mutex<StatusDoc>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Default, Serialize)]
struct StatusDoc {
    active: bool,
    synced: bool,
    configuration: String,
    pools: BTreeMap<String, PoolCounters>,
    pending: Vec<String>,
}

impl Shared {
    fn new() -> Self {
        let s = Shared {
            registry: Mutex::new(Registry::default()),
            pools: Family::default(),
            pools_v4: Family::default(),
            pools_v6: Family::default(),
            in_use: Family::default(),
            in_use_v4: Family::default(),
            in_use_v6: Family::default(),
            active: Gauge::default(),
            pending: Gauge::default(),
            writes: Counter::default(),
            write_errors: Counter::default(),
            status: Mutex::new(StatusDoc::default()),
        };
        {
            let mut r = s.registry.lock().unwrap_or_else(|e| e.into_inner());
            let m = &mut *r;
            m.register(
                "metallb_allocator_addresses_total",
                "Number of usable IP addresses, per pool",
                s.pools.clone(),
            );
            m.register(
                "metallb_allocator_ipv4_addresses_total",
                "Number of usable IPV4 addresses, per pool",
                s.pools_v4.clone(),
            );
            m.register(
                "metallb_allocator_ipv6_addresses_total",
                "Number of usable IPV6 addresses, per pool",
                s.pools_v6.clone(),
            );
            m.register(
                "metallb_allocator_addresses_in_use_total",
                "Number of IP addresses in use, per pool",
                s.in_use.clone(),
            );
            m.register(
                "metallb_allocator_ipv4_addresses_in_use_total",
                "Number of IPV4 addresses in use, per pool",
                s.in_use_v4.clone(),
            );
            m.register(
                "metallb_allocator_ipv6_addresses_in_use_total",
                "Number of IPV6 addresses in use, per pool",
                s.in_use_v6.clone(),
            );
            m.register(
                "herald_controller_active",
                "1 while this replica allocates",
                s.active.clone(),
            );
            m.register(
                "herald_controller_services_pending",
                "LoadBalancer Services that could not be given addresses",
                s.pending.clone(),
            );
            m.register(
                "herald_controller_status_writes",
                "Service status writes made",
                s.writes.clone(),
            );
            m.register(
                "herald_controller_status_write_errors",
                "Service status writes that failed (lost races included)",
                s.write_errors.clone(),
            );
        }
        s
    }

    fn publish(&self, doc: StatusDoc) {
        let known: BTreeSet<String> = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pools
            .keys()
            .cloned()
            .collect();
        for gone in known.iter().filter(|p| !doc.pools.contains_key(*p)) {
            let l = PoolLabel { pool: gone.clone() };
            for f in [
                &self.pools,
                &self.pools_v4,
                &self.pools_v6,
                &self.in_use,
                &self.in_use_v4,
                &self.in_use_v6,
            ] {
                f.remove(&l);
            }
        }
        for (name, c) in &doc.pools {
            let l = PoolLabel { pool: name.clone() };
            self.pools.get_or_create(&l).set(c.total);
            self.pools_v4.get_or_create(&l).set(c.total_ipv4);
            self.pools_v6.get_or_create(&l).set(c.total_ipv6);
            self.in_use.get_or_create(&l).set(c.assigned());
            self.in_use_v4.get_or_create(&l).set(c.assigned_ipv4);
            self.in_use_v6.get_or_create(&l).set(c.assigned_ipv6);
        }
        self.active.set(i64::from(doc.active));
        self.pending.set(doc.pending.len() as i64);
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = doc;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = String::new();
    let registry = shared.registry.lock().unwrap_or_else(|e| e.into_inner());
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

/// Ready once every watch has listed: a standby is ready too (it takes over at once).
async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared
        .status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .synced
    {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the watches have not listed yet\n",
        )
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let doc = shared
        .status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    axum::Json(doc).into_response()
}

/// One watch event, tagged with its watch. Each lives only until it is applied, so the
/// size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Feed {
    Services(Result<Watched<Service>, watcher::Error>),
    Pools(Result<Watched<DynamicObject>, watcher::Error>),
    Namespaces(Result<Watched<Namespace>, watcher::Error>),
}

type WriteResult = (ServiceRef, Option<String>, Result<Service, kube::Error>);

struct Controller {
    client: kube::Client,
    namespace: String,
    lb_class: Option<String>,
    shared: Arc<Shared>,
    services: HashMap<ServiceRef, Service>,
    pools: BTreeMap<String, DynamicObject>,
    namespaces: BTreeMap<String, Labels>,
    relist_services: Option<HashMap<ServiceRef, Service>>,
    relist_pools: Option<BTreeMap<String, DynamicObject>>,
    relist_namespaces: Option<BTreeMap<String, Labels>>,
    /// Services, pools, namespaces have listed once.
    synced: [bool; 3],
    allocator: Allocator,
    /// The pools the allocator has, from the last valid configuration.
    valid_pools: Option<BTreeMap<String, model::world::Pool>>,
    config_dirty: bool,
    config_text: String,
    active: bool,
    /// Rebuild the allocator and register every status before converging.
    resync: bool,
    dirty: BTreeSet<ServiceRef>,
    pending: BTreeSet<ServiceRef>,
    desired: HashMap<ServiceRef, Outcome>,
    queue: BTreeSet<ServiceRef>,
    /// Writes in flight, and whether the Service changed meanwhile.
    in_flight: HashMap<ServiceRef, bool>,
    writes: JoinSet<WriteResult>,
    retry: Vec<(Instant, ServiceRef)>,
    events: mpsc::UnboundedSender<(ObjectReference, ipam::Event)>,
    pool_written: HashMap<String, PoolCounters>,
    pool_due: Option<Instant>,
    pool_last: Option<Instant>,
    side_writes: JoinSet<()>,
}

impl Controller {
    fn new(
        client: kube::Client,
        namespace: String,
        lb_class: Option<String>,
        shared: Arc<Shared>,
    ) -> Self {
        let (events, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_events(client.clone(), rx));
        Controller {
            client,
            namespace,
            lb_class,
            shared,
            services: HashMap::new(),
            pools: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            relist_services: None,
            relist_pools: None,
            relist_namespaces: None,
            synced: [false; 3],
            allocator: Allocator::new(),
            valid_pools: None,
            config_dirty: false,
            config_text: "pending".into(),
            active: false,
            resync: false,
            dirty: BTreeSet::new(),
            pending: BTreeSet::new(),
            desired: HashMap::new(),
            queue: BTreeSet::new(),
            in_flight: HashMap::new(),
            writes: JoinSet::new(),
            retry: Vec::new(),
            events,
            pool_written: HashMap::new(),
            pool_due: None,
            pool_last: None,
            side_writes: JoinSet::new(),
        }
    }

    async fn run(mut self, mut active: watch::Receiver<bool>) -> anyhow::Result<()> {
        let services = watcher(
            Api::<Service>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(Feed::Services)
        .boxed();
        let pool_resource = kube::core::ApiResource::erase::<IPAddressPool>(&());
        let pools = watcher(
            Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &self.namespace,
                &pool_resource,
            ),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(Feed::Pools)
        .boxed();
        let namespaces = watcher(
            Api::<Namespace>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(Feed::Namespaces)
        .boxed();
        let mut feeds = futures::stream::select_all([services, pools, namespaces]);
        self.set_active(*active.borrow_and_update());
        loop {
            let timer = self.next_timer();
            tokio::select! {
                feed = feeds.next() => {
                    let Some(feed) = feed else { anyhow::bail!("the watches ended") };
                    self.on_feed(feed);
                    for _ in 0..BATCH {
                        match feeds.next().now_or_never() {
                            Some(Some(feed)) => self.on_feed(feed),
                            _ => break,
                        }
                    }
                }
                Some(done) = self.writes.join_next(), if !self.writes.is_empty() => {
                    if let Ok(done) = done {
                        self.on_written(done);
                    }
                    while let Some(Some(Ok(done))) = self.writes.join_next().now_or_never() {
                        self.on_written(done);
                    }
                }
                Some(_) = self.side_writes.join_next(), if !self.side_writes.is_empty() => {}
                changed = active.changed() => {
                    if changed.is_err() {
                        self.set_active(false);
                        anyhow::bail!("the election stopped");
                    }
                    let now = *active.borrow_and_update();
                    self.set_active(now);
                }
                _ = sleep_until(timer) => {}
            }
            self.work();
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let retry = self.retry.iter().map(|(t, _)| *t).min();
        match (retry, self.pool_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn set_active(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        if active {
            info!("active: registering every assigned address, then allocating");
            self.resync = true;
            // Only the active replica writes the ConfigurationState: read the pools again
            // so that it is written now, not at the next pool change.
            self.config_dirty = true;
        } else {
            info!("standby: allocation stopped");
            self.writes.abort_all();
            self.in_flight.clear();
            self.allocator = Allocator::new();
            self.dirty.clear();
            self.queue.clear();
            self.desired.clear();
            self.pending.clear();
            self.retry.clear();
        }
        self.publish();
    }

    fn on_feed(&mut self, feed: Feed) {
        match feed {
            Feed::Services(Ok(ev)) => self.on_service(ev),
            Feed::Pools(Ok(ev)) => self.on_pool(ev),
            Feed::Namespaces(Ok(ev)) => self.on_namespace(ev),
            Feed::Services(Err(e)) | Feed::Pools(Err(e)) | Feed::Namespaces(Err(e)) => {
                warn!(error = %e, "watch failed; retrying")
            }
        }
    }

    fn on_service(&mut self, ev: Watched<Service>) {
        match ev {
            Watched::Init => self.relist_services = Some(HashMap::new()),
            Watched::InitApply(s) => {
                if let Some(buffer) = &mut self.relist_services {
                    buffer.insert(key_of(&s), s);
                }
            }
            Watched::InitDone => {
                let fresh = self.relist_services.take().unwrap_or_default();
                let gone: Vec<ServiceRef> = self
                    .services
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                self.services = fresh;
                for key in gone {
                    self.deleted(&key);
                }
                self.dirty.extend(self.services.keys().cloned());
                self.synced[0] = true;
            }
            Watched::Apply(s) => {
                let key = key_of(&s);
                if let Some(flag) = self.in_flight.get_mut(&key) {
                    *flag = true;
                }
                self.services.insert(key.clone(), s);
                self.dirty.insert(key);
            }
            Watched::Delete(s) => {
                let key = key_of(&s);
                self.services.remove(&key);
                self.deleted(&key);
            }
        }
    }

    fn deleted(&mut self, key: &ServiceRef) {
        self.pending.remove(key);
        self.desired.remove(key);
        self.queue.remove(key);
        self.dirty.remove(key);
        if self.active && self.allocator.unassign(key).is_some() {
            // Others waiting for an address may fit now.
            self.dirty.extend(self.pending.iter().cloned());
        }
    }

    fn on_pool(&mut self, ev: Watched<DynamicObject>) {
        let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
        match ev {
            Watched::Init => self.relist_pools = Some(BTreeMap::new()),
            Watched::InitApply(o) => {
                if let Some(b) = &mut self.relist_pools {
                    b.insert(name(&o), o);
                }
            }
            Watched::InitDone => {
                let fresh = self.relist_pools.take().unwrap_or_default();
                if !same_pools(&self.pools, &fresh) || !self.synced[1] {
                    self.config_dirty = true;
                }
                self.pools = fresh;
                self.synced[1] = true;
            }
            Watched::Apply(o) => {
                // Our own status writes come back here; only spec and labels are configuration.
                if self
                    .pools
                    .get(&name(&o))
                    .is_none_or(|old| !same_pool(old, &o))
                {
                    self.config_dirty = true;
                }
                self.pools.insert(name(&o), o);
            }
            Watched::Delete(o) => {
                self.pools.remove(&name(&o));
                self.config_dirty = true;
            }
        }
    }

    fn on_namespace(&mut self, ev: Watched<Namespace>) {
        let entry = |n: &Namespace| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        };
        let selects = self.pools_select_namespaces();
        match ev {
            Watched::Init => self.relist_namespaces = Some(BTreeMap::new()),
            Watched::InitApply(n) => {
                if let Some(b) = &mut self.relist_namespaces {
                    let (k, v) = entry(&n);
                    b.insert(k, v);
                }
            }
            Watched::InitDone => {
                let fresh = self.relist_namespaces.take().unwrap_or_default();
                if fresh != self.namespaces && selects {
                    self.config_dirty = true;
                }
                self.namespaces = fresh;
                self.synced[2] = true;
            }
            Watched::Apply(n) => {
                let (k, v) = entry(&n);
                if self.namespaces.get(&k) != Some(&v) && selects {
                    self.config_dirty = true;
                }
                self.namespaces.insert(k, v);
            }
            Watched::Delete(n) => {
                let (k, _) = entry(&n);
                if self.namespaces.remove(&k).is_some() && selects {
                    self.config_dirty = true;
                }
            }
        }
    }

    fn pools_select_namespaces(&self) -> bool {
        self.valid_pools.as_ref().is_some_and(|pools| {
            pools.values().any(|p| {
                p.service_allocation
                    .as_ref()
                    .is_some_and(|a| !a.namespace_selectors.is_empty())
            })
        })
    }

    fn is_ours(&self, svc: &Service) -> bool {
        io::is_our_class(svc, self.lb_class.as_deref())
    }

    /// Reads the pools; a configuration with errors keeps the last valid one (MetalLB's rule).
    fn reconfigure(&mut self) {
        self.config_dirty = false;
        let mut resources = Resources::default();
        let mut errors = Vec::new();
        for (name, o) in &self.pools {
            match serde_json::to_value(o).and_then(serde_json::from_value::<IPAddressPool>) {
                Ok(pool) => resources.pools.push(Sourced::new(pool)),
                Err(e) => errors.push(format!("IPAddressPool {name}: {e}")),
            }
        }
        let checked = model::validate(&resources);
        errors.extend(
            checked
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string()),
        );
        match checked.world.filter(|_| errors.is_empty()) {
            Some(world) => {
                info!(pools = world.pools.len(), "configuration loaded");
                self.config_text = "valid".into();
                self.valid_pools = Some(world.pools);
            }
            None => {
                for e in &errors {
                    warn!(error = %e, "invalid configuration; keeping the last valid pools");
                }
                self.config_text = if self.valid_pools.is_some() {
                    "stale".into()
                } else {
                    "invalid".into()
                };
            }
        }
        if self.active {
            let (client, ns) = (self.client.clone(), self.namespace.clone());
            self.side_writes.spawn(async move {
                if let Err(e) = io::write_configuration_state(&client, &ns, &errors).await {
                    warn!(error = %e, "cannot write the ConfigurationState");
                }
            });
        }
        if let Some(pools) = &self.valid_pools {
            let released = self.allocator.set_pools(pools, &self.namespaces);
            debug!(released = released.len(), "pools set");
            // As MetalLB: every Service again, those with addresses registered first.
            self.register_all();
            self.dirty.extend(self.services.keys().cloned());
            self.pools_changed();
        }
    }

    fn register_all(&mut self) {
        let mut keys: Vec<&ServiceRef> = self.services.keys().collect();
        keys.sort();
        let mut registered = 0usize;
        for key in keys {
            let svc = &self.services[key];
            if self.is_ours(svc) && ipam::register(&mut self.allocator, &io::request_of(svc)) {
                registered += 1;
            }
        }
        debug!(registered, "assigned addresses registered");
    }

    fn work(&mut self) {
        if self.synced.iter().any(|s| !s) {
            return;
        }
        if self.config_dirty {
            self.reconfigure();
        }
        let Some(pools) = &self.valid_pools else {
            self.publish();
            return;
        };
        if !self.active {
            self.publish();
            return;
        }
        if self.resync {
            self.resync = false;
            self.allocator = Allocator::new();
            let pools = pools.clone();
            self.allocator.set_pools(&pools, &self.namespaces);
            self.register_all();
            self.dirty.extend(self.services.keys().cloned());
            self.pools_changed();
        }
        let now = Instant::now();
        let due: Vec<ServiceRef> = self
            .retry
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        self.retry.retain(|(t, _)| *t > now);
        self.dirty.extend(due);

        while !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            // Services holding addresses first, as MetalLB orders a full pass.
            let (held, rest): (Vec<ServiceRef>, Vec<ServiceRef>) =
                dirty.into_iter().partition(|k| {
                    self.services
                        .get(k)
                        .is_some_and(|s| !io::request_of(s).ingress.is_empty())
                });
            for key in held.into_iter().chain(rest) {
                self.converge(&key);
            }
        }
        self.start_writes();
        self.write_pool_status(now);
        self.publish();
    }

    fn converge(&mut self, key: &ServiceRef) {
        let Some(svc) = self.services.get(key) else {
            return;
        };
        if !self.is_ours(svc) {
            // Another class's Service: not ours to touch; free what we may have given it.
            if self.allocator.unassign(key).is_some() {
                self.dirty.extend(self.pending.iter().cloned());
                self.pools_changed();
            }
            self.pending.remove(key);
            return;
        }
        let reference = reference_of(svc);
        let req = io::request_of(svc);
        let before = self.allocator.allocation(key).map(|a| a.ips.clone());
        let out = ipam::converge(&mut self.allocator, &req);
        if self.allocator.allocation(key).map(|a| a.ips.clone()) != before {
            self.pools_changed();
        }
        for e in &out.events {
            let _ = self.events.send((reference.clone(), e.clone()));
        }
        if out.failed {
            self.pending.insert(key.clone());
        } else {
            self.pending.remove(key);
        }
        if out.released {
            self.dirty.extend(self.pending.iter().cloned());
        }
        if out.changed {
            self.desired.insert(key.clone(), out);
            if let Some(recheck) = self.in_flight.get_mut(key) {
                *recheck = true;
            } else {
                self.queue.insert(key.clone());
            }
        } else {
            self.desired.remove(key);
            self.queue.remove(key);
        }
    }

    fn start_writes(&mut self) {
        while self.in_flight.len() < WRITES_IN_FLIGHT {
            let Some(key) = self.queue.pop_first() else {
                break;
            };
            let (Some(out), Some(svc)) = (self.desired.get(&key), self.services.get(&key)) else {
                continue;
            };
            let rv = svc.metadata.resource_version.clone();
            let patch = io::status_patch(out, rv.as_deref());
            let client = self.client.clone();
            self.in_flight.insert(key.clone(), false);
            self.writes.spawn(async move {
                let result = io::write_service_status(&client, &key, &patch).await;
                (key, rv, result)
            });
        }
    }

    fn on_written(&mut self, (key, rv, result): WriteResult) {
        let recheck = self.in_flight.remove(&key).unwrap_or(false);
        match result {
            Ok(svc) => {
                self.shared.writes.inc();
                self.desired.remove(&key);
                // Keep the written object unless the watch has brought a newer one already,
                // so the Service is not written again from a stale copy.
                let current = self
                    .services
                    .get(&key)
                    .and_then(|s| s.metadata.resource_version.clone());
                if current == rv {
                    self.services.insert(key.clone(), svc);
                }
                if recheck {
                    self.dirty.insert(key);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.shared.write_errors.inc();
                debug!(service = %key, "lost a race writing the status; converging again from the newer version");
                if recheck {
                    self.dirty.insert(key);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.shared.write_errors.inc();
            }
            Err(e) => {
                self.shared.write_errors.inc();
                warn!(service = %key, error = %e, "cannot write the Service status; trying again");
                self.retry.push((Instant::now() + RETRY_AFTER, key));
            }
        }
    }

    fn write_pool_status(&mut self, now: Instant) {
        let Some(due) = self.pool_due else {
            return;
        };
        if due > now {
            return;
        }
        self.pool_due = None;
        for name in self.allocator.pool_names().cloned().collect::<Vec<_>>() {
            let Some(c) = self.allocator.counters(&name) else {
                continue;
            };
            if self.pool_written.get(&name) == Some(&c) {
                continue;
            }
            self.pool_written.insert(name.clone(), c);
            let (client, ns) = (self.client.clone(), self.namespace.clone());
            self.side_writes.spawn(async move {
                if let Err(e) = io::write_pool_status(&client, &ns, &name, &c).await {
                    debug!(pool = %name, error = %e, "cannot write the pool status");
                }
            });
        }
        self.pool_last = Some(now);
    }

    /// Pool counters may have changed: write them when the interval allows.
    fn pools_changed(&mut self) {
        if self.pool_due.is_none() {
            let now = Instant::now();
            let earliest = self.pool_last.map_or(now, |t| t + POOL_STATUS_INTERVAL);
            self.pool_due = Some(earliest.max(now));
        }
    }

    fn publish(&self) {
        let pools = self
            .allocator
            .pool_names()
            .filter_map(|n| Some((n.clone(), self.allocator.counters(n)?)))
            .collect();
        self.shared.publish(StatusDoc {
            active: self.active,
            synced: self.synced.iter().all(|s| *s),
            configuration: self.config_text.clone(),
            pools,
            pending: self.pending.iter().map(ToString::to_string).collect(),
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn key_of(s: &Service) -> ServiceRef {
    ServiceRef {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
    }
}

fn reference_of(s: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: s.metadata.name.clone(),
        namespace: s.metadata.namespace.clone(),
        uid: s.metadata.uid.clone(),
        resource_version: s.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn pool_config(
    o: &DynamicObject,
) -> (
    Option<&serde_json::Value>,
    Option<&BTreeMap<String, String>>,
) {
    (o.data.get("spec"), o.metadata.labels.as_ref())
}

fn same_pool(a: &DynamicObject, b: &DynamicObject) -> bool {
    pool_config(a) == pool_config(b)
}

fn same_pools(a: &BTreeMap<String, DynamicObject>, b: &BTreeMap<String, DynamicObject>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((n, x), (m, y))| n == m && same_pool(x, y))
}

/// Writes the allocation Events, in order, without holding up status writes.
async fn write_events(
    client: kube::Client,
    mut rx: mpsc::UnboundedReceiver<(ObjectReference, ipam::Event)>,
) {
    let reporter = Reporter {
        controller: "herald-controller".into(),
        instance: std::env::var("POD_NAME").ok().or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        }),
    };
    let recorder = Recorder::new(client, reporter);
    while let Some((reference, e)) = rx.recv().await {
        let event = KubeEvent {
            type_: match e.kind {
                ipam::EventType::Normal => KubeEventType::Normal,
                ipam::EventType::Warning => KubeEventType::Warning,
            },
            reason: e.reason.to_owned(),
            note: Some(truncate(&e.message, 1024)),
            action: "Allocate".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            debug!(error = %err, reason = e.reason, "cannot write an Event");
        }
    }
}

fn truncate(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
