//! [`Source`]: the watches, their stores, and the debounced snapshots made of them.
//!
//! One task owns every store and every watch stream (merged), so a snapshot is assembled from
//! stores no other code is changing: no locks, and no snapshot that is half one change. The
//! watches are kube-rs watchers with a backoff capped at [`WATCH_BACKOFF_MAX`], so after an
//! outage of the API server every watch is back within about a second of its return; after a
//! dropped connection they resume from their last resourceVersion, and when they cannot (410
//! Gone) they list again, which replaces the store and is published like any other change.
//! A watch that fails is logged once when it starts failing and once when it recovers.
//!
//! A snapshot shares the stores' objects (no copies), and only a change to something herald
//! reads publishes one: a Service that is not a LoadBalancer of herald's class is never held,
//! and a change to an EndpointSlice of such a Service publishes nothing.

use crate::backoff::WatchBackoff;
use crate::debounce::Debounce;
use crate::kinds::{Feed, SecretKey};
use crate::read::{Read, Scope};
use crate::snapshot::Snapshot;
use crate::store::{Applied, Key, Store, key_of};
use futures::stream::{self, AbortHandle, BoxStream, SelectAll, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use model::resources::Unreadable;
use model::validate::SERVICE_NAME_LABEL;
use model::{Diagnostic, EndpointsMode, ResourceRef, Resources, Sourced};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What to watch and how eagerly to publish.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// herald's namespace: where the `metallb.io` configuration lives (`--namespace`).
    pub namespace: String,
    /// This node's name (`--node`): the one Node watched.
    pub node: String,
    /// The `spec.loadBalancerClass` of the Services herald announces; `None` for Services
    /// without a class, as MetalLB's default.
    pub load_balancer_class: Option<String>,
    /// A change after this long without one is published at once; changes that follow
    /// closely are published once they have stopped for this long (default 10 ms: the rest of
    /// a burst, such as a Service's EndpointSlices after it, makes one snapshot)...
    pub quiet: Duration,
    /// ...or this long after the first unpublished change, whichever is sooner (default
    /// 100 ms), so a steady stream of changes cannot hold a new snapshot back.
    pub max_delay: Duration,
    /// How long a snapshot may wait for a Secret a BGPPeer has just started naming to be
    /// listed (default 5 s). Publishing at once would report the Secret missing for a moment,
    /// and reject the configuration for it; past this, the snapshot goes out with the Secret
    /// reported unreadable.
    pub secret_wait: Duration,
}

impl SourceConfig {
    pub fn new(namespace: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            node: node.into(),
            load_balancer_class: None,
            quiet: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            secret_wait: Duration::from_secs(5),
        }
    }
}

/// The source's counters, as MetalLB's `metallb_k8s_client_*` metrics mean them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `metallb_k8s_client_updates_total`: objects received from the API server, each added,
    /// modified or deleted object and each object of a (re-)list.
    pub updates: u64,
    /// `metallb_k8s_client_update_errors_total`: updates that could not be processed: objects
    /// received that could not be read, and list or watch requests that failed (each is
    /// retried with backoff).
    pub update_errors: u64,
    /// Snapshots published (herald's own; no MetalLB metric counts these).
    pub snapshots: u64,
}

/// A handle on the counters that outlives borrows of the [`Source`], for a metrics
/// collector to read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Arc<Atomics>);

#[derive(Debug, Default)]
struct Atomics {
    updates: AtomicU64,
    update_errors: AtomicU64,
    snapshots: AtomicU64,
}

impl Metrics {
    pub fn counters(&self) -> Counters {
        Counters {
            updates: self.0.updates.load(Ordering::Relaxed),
            update_errors: self.0.update_errors.load(Ordering::Relaxed),
            snapshots: self.0.snapshots.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The running watches. Dropping it stops them.
pub struct Source {
    task: JoinHandle<()>,
    metrics: Metrics,
    #[cfg(feature = "fault-injection")]
    fault: FaultHandle,
}

/// Makes the watches' task panic, as a bug would, so a test sees what the reader of the
/// snapshots does when they stop for good. Only with the `fault-injection` feature, which
/// the released binary never has.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Debug, Default)]
pub struct FaultHandle(Arc<tokio::sync::Notify>);

#[cfg(feature = "fault-injection")]
impl FaultHandle {
    /// The watches' task panics at its next turn; the snapshot channel then closes.
    pub fn panic_watches(&self) {
        self.0.notify_one();
    }
}

impl Source {
    /// Starts watching; call inside a tokio runtime. The receiver holds `None` until every
    /// watch has listed once (so an empty cluster is never mistaken for a not-yet-read one),
    /// then the latest [`Snapshot`]; each change of the cluster yields a new one after the
    /// debounce. A reader that is slow sees only the latest, which is all a level-based
    /// reader needs.
    pub fn start(
        client: Client,
        config: SourceConfig,
    ) -> (Source, watch::Receiver<Option<Arc<Snapshot>>>) {
        let (tx, rx) = watch::channel(None);
        let metrics = Metrics::default();
        let mut feeds = SelectAll::new();
        for feed in Feed::FIXED {
            feeds.push(watch_feed(&client, &config, feed));
        }
        let state = State::new(client, config, metrics.clone());
        #[cfg(feature = "fault-injection")]
        let fault = state.fault.clone();
        let task = tokio::spawn(run(state, feeds, tx));
        let source = Source {
            task,
            metrics,
            #[cfg(feature = "fault-injection")]
            fault,
        };
        (source, rx)
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Where a test makes the watches fail (see [`FaultHandle`]).
    #[cfg(feature = "fault-injection")]
    pub fn fault_handle(&self) -> FaultHandle {
        self.fault.clone()
    }

    pub fn counters(&self) -> Counters {
        self.metrics.counters()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Item = (Feed, Result<watcher::Event<DynamicObject>, watcher::Error>);
type Feeds = SelectAll<BoxStream<'static, Item>>;

/// A field selector value, escaped as the API server's field selector parser expects.
fn field_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

fn watch_feed(client: &Client, config: &SourceConfig, feed: Feed) -> BoxStream<'static, Item> {
    let resource = &feed.kind().resource;
    let everywhere = || Api::<DynamicObject>::all_with(client.clone(), resource);
    let (api, selection) = match &feed {
        Feed::Services => (everywhere(), watcher::Config::default()),
        // A slice without the label belongs to no Service: nothing here would read it.
        Feed::EndpointSlices => (
            everywhere(),
            watcher::Config::default().labels(SERVICE_NAME_LABEL),
        ),
        // Only this node's labels and conditions decide what it announces; watching every
        // Node would wake herald for each heartbeat of a large cluster.
        Feed::Node => (
            everywhere(),
            watcher::Config::default()
                .fields(&format!("metadata.name={}", field_value(&config.node))),
        ),
        // One watch per Secret named by a BGPPeer, by name, rather than every Secret of the
        // namespace as MetalLB's cache does: herald then never holds (or wakes for) the
        // other Secrets there, such as Helm's release records and the memberlist key.
        Feed::Secret(key) => (
            Api::namespaced_with(client.clone(), &key.namespace, resource),
            watcher::Config::default().fields(&format!("metadata.name={}", field_value(&key.name))),
        ),
        _ => (
            Api::namespaced_with(client.clone(), &config.namespace, resource),
            watcher::Config::default(),
        ),
    };
    let seed = seed_of(&config.node, &feed);
    watcher(api, selection)
        .backoff(WatchBackoff::new(seed))
        .map(move |result| (feed.clone(), result))
        .boxed()
}

/// Where a watch's retry jitter starts: different per node and watch, so the nodes of a
/// cluster do not all come back to a recovered API server at the same instant.
fn seed_of(node: &str, feed: &Feed) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.hash(&mut h);
    feed.hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

/// The longest a watch waits before trying the API server again.
pub const WATCH_BACKOFF_MAX: Duration = crate::backoff::MAX;

/// A watch on one Secret, started when a BGPPeer names it and stopped when none does.
struct SecretWatch {
    store: Store<Secret>,
    abort: AbortHandle,
    started: Instant,
    last_error: Option<String>,
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

struct State {
    client: Client,
    config: SourceConfig,
    scope: Scope,
    /// Watches that are failing, with the error they last met: logged when they start
    /// failing and when they recover, not at every retry.
    failing: BTreeMap<Feed, String>,
    metrics: Metrics,
    debounce: Debounce,
    generation: u64,
    pools: Store<IPAddressPool>,
    l2_advertisements: Store<L2Advertisement>,
    bgp_advertisements: Store<BGPAdvertisement>,
    bgp_peers: Store<BGPPeer>,
    communities: Store<Community>,
    bfd_profiles: Store<BFDProfile>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    node: Store<Node>,
    secrets: BTreeMap<SecretKey, SecretWatch>,
    /// Watches whose kind the API server does not serve (a CRD not installed).
    unserved: BTreeSet<Feed>,
    #[cfg(feature = "fault-injection")]
    fault: FaultHandle,
}

/// This node's Node, deleted, stays as it was last seen with a deletion timestamp: the node
/// is going away (BGP then withdraws at shutdown instead of keeping routes for a restart),
/// not a node nobody describes.
fn node_tombstone(event: watcher::Event<DynamicObject>) -> watcher::Event<DynamicObject> {
    match event {
        watcher::Event::Delete(mut object) => {
            if object.metadata.deletion_timestamp.is_none() {
                object.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    ));
            }
            watcher::Event::Apply(object)
        }
        other => other,
    }
}

/// Whether the API server does not serve the watched kind at all, as when its CRD is not
/// installed. Waiting for it would hold every snapshot back; MetalLB's own CRDs have grown
/// kinds over releases, so a cluster may well lack one.
fn not_served(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404 || s.is_not_found())
}

async fn run(mut state: State, mut feeds: Feeds, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    loop {
        let publish_at = state.publish_at();
        tokio::select! {
            item = feeds.next() => {
                // The fixed watches never end, so neither does the merged stream.
                let Some((feed, result)) = item else { return };
                let peers_changed = state.apply(&feed, result, Instant::now());
                if peers_changed {
                    state.follow_peers(&mut feeds, Instant::now());
                }
            }
            () = sleep_until(publish_at) => state.publish(&tx),
            () = tx.closed() => return,
            () = injected_failure(&state) => {}
        }
    }
}

/// Panics once a test asks for it ([`FaultHandle::panic_watches`]); never ends without the
/// `fault-injection` feature.
async fn injected_failure(state: &State) {
    #[cfg(feature = "fault-injection")]
    {
        state.fault.0.notified().await;
        panic!("the Kubernetes watches: injected failure (a test)");
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = state;
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn new(client: Client, config: SourceConfig, metrics: Metrics) -> Self {
        Self {
            client,
            debounce: Debounce::new(config.quiet, config.max_delay),
            scope: Scope {
                load_balancer_class: config.load_balancer_class.clone(),
            },
            failing: BTreeMap::new(),
            config,
            metrics,
            generation: 0,
            pools: Store::default(),
            l2_advertisements: Store::default(),
            bgp_advertisements: Store::default(),
            bgp_peers: Store::default(),
            communities: Store::default(),
            bfd_profiles: Store::default(),
            services: Store::default(),
            endpoint_slices: Store::default(),
            node: Store::default(),
            secrets: BTreeMap::new(),
            unserved: BTreeSet::new(),
            #[cfg(feature = "fault-injection")]
            fault: FaultHandle::default(),
        }
    }

    /// Applies one item of a watch; says whether the BGPPeers changed.
    fn apply(
        &mut self,
        feed: &Feed,
        result: Result<watcher::Event<DynamicObject>, watcher::Error>,
        now: Instant,
    ) -> bool {
        let event = match result {
            Ok(event) => event,
            Err(e) => {
                Metrics::add(&self.metrics.0.update_errors, 1);
                let error = e.to_string();
                match self.failing.insert(feed.clone(), error.clone()) {
                    None => tracing::warn!(
                        watch = %feed, error,
                        "watching the API server failed; retrying until it answers"
                    ),
                    Some(_) => tracing::debug!(watch = %feed, error, "still failing; retrying"),
                }
                if let Feed::Secret(key) = feed
                    && let Some(w) = self.secrets.get_mut(key)
                {
                    w.last_error = Some(e.to_string());
                }
                // Retried all the same, so installing the CRD later is seen.
                if not_served(&e) {
                    self.unserved.insert(feed.clone());
                    if self.absent(feed) {
                        self.debounce.changed(now);
                        return *feed == Feed::BgpPeers;
                    }
                }
                return false;
            }
        };
        self.unserved.remove(feed);
        if let Some(error) = self.failing.remove(feed) {
            tracing::info!(watch = %feed, last_error = error, "watching the API server again");
        }
        let kind = feed.kind();
        let scope = &self.scope;
        let applied: Applied = match feed {
            Feed::Pools => self.pools.apply(kind, scope, event),
            Feed::L2Advertisements => self.l2_advertisements.apply(kind, scope, event),
            Feed::BgpAdvertisements => self.bgp_advertisements.apply(kind, scope, event),
            Feed::BgpPeers => self.bgp_peers.apply(kind, scope, event),
            Feed::Communities => self.communities.apply(kind, scope, event),
            Feed::BfdProfiles => self.bfd_profiles.apply(kind, scope, event),
            Feed::Services => {
                let relisted = matches!(event, watcher::Event::InitDone);
                let key = key_of_event(&event);
                let held = |s: &Store<Service>| key.as_ref().is_some_and(|k| s.contains(k));
                let before = held(&self.services);
                let mut applied = self.services.apply(kind, scope, event);
                // A Service that became ours, or stopped being ours: its slices follow.
                if relisted || before != held(&self.services) {
                    applied.changed |= self.sort_slices();
                }
                applied
            }
            Feed::EndpointSlices => {
                let relisted = matches!(event, watcher::Event::InitDone);
                let services = &self.services;
                let mut applied = self.endpoint_slices.apply_parking(kind, scope, event, |s| {
                    let owner = (s.metadata.namespace.clone(), service_label(&s.metadata)?);
                    (!services.contains(&owner)).then_some(owner)
                });
                // The list was sorted by the Services of its time.
                if relisted {
                    applied.changed |= self.sort_slices();
                }
                applied
            }
            Feed::Node => self.node.apply(kind, scope, node_tombstone(event)),
            Feed::Secret(key) => match self.secrets.get_mut(key) {
                Some(w) => w.store.apply(kind, scope, event),
                // Stopped: what it had in flight no longer matters.
                None => return false,
            },
        };
        Metrics::add(&self.metrics.0.updates, applied.received);
        Metrics::add(&self.metrics.0.update_errors, applied.unreadable);
        if applied.changed {
            self.debounce.changed(now);
        }
        applied.changed && *feed == Feed::BgpPeers
    }

    /// Shows the EndpointSlices of our Services and parks the others; says whether what is
    /// shown changed.
    fn sort_slices(&mut self) -> bool {
        let services = &self.services;
        self.endpoint_slices.rehome(
            Feed::EndpointSlices.kind(),
            &self.scope,
            |r| {
                let slice = &r.object.as_ref()?.object;
                Some((
                    slice.metadata.namespace.clone(),
                    service_label(&slice.metadata)?,
                ))
            },
            |owner| services.contains(owner),
        )
    }

    /// Empties the store of a kind the API server does not serve; says whether that changed
    /// it.
    fn absent(&mut self, feed: &Feed) -> bool {
        match feed {
            Feed::Pools => self.pools.absent(),
            Feed::L2Advertisements => self.l2_advertisements.absent(),
            Feed::BgpAdvertisements => self.bgp_advertisements.absent(),
            Feed::BgpPeers => self.bgp_peers.absent(),
            Feed::Communities => self.communities.absent(),
            Feed::BfdProfiles => self.bfd_profiles.absent(),
            Feed::Services => self.services.absent(),
            Feed::EndpointSlices => self.endpoint_slices.absent(),
            Feed::Node => self.node.absent(),
            Feed::Secret(key) => self.secrets.get_mut(key).is_some_and(|w| w.store.absent()),
        }
    }

    /// The Secrets the BGPPeers name: `passwordSecret`, in its namespace if it gives one, else
    /// the peer's.
    fn wanted_secrets(&self) -> BTreeSet<SecretKey> {
        self.bgp_peers
            .objects()
            .filter_map(|r| r.object.as_ref())
            .filter_map(|peer| {
                let reference = peer.object.spec.password_secret.as_ref()?;
                let name = reference.name.clone().filter(|n| !n.is_empty())?;
                let namespace = reference
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| peer.object.metadata.namespace.clone())
                    .unwrap_or_else(|| self.config.namespace.clone());
                Some(SecretKey { namespace, name })
            })
            .collect()
    }

    /// Starts a watch for each newly named Secret and stops those no peer names any more.
    fn follow_peers(&mut self, feeds: &mut Feeds, now: Instant) {
        let wanted = self.wanted_secrets();
        let before = self.secrets.len();
        self.secrets.retain(|key, _| wanted.contains(key));
        if self.secrets.len() != before {
            self.debounce.changed(now);
        }
        for key in wanted {
            if self.secrets.contains_key(&key) {
                continue;
            }
            let (feed, abort) = stream::abortable(watch_feed(
                &self.client,
                &self.config,
                Feed::Secret(key.clone()),
            ));
            feeds.push(feed.boxed());
            let watch = SecretWatch {
                store: Store::default(),
                abort,
                started: now,
                last_error: None,
            };
            self.secrets.insert(key, watch);
        }
    }

    fn fixed_synced(&self) -> bool {
        self.pools.synced()
            && self.l2_advertisements.synced()
            && self.bgp_advertisements.synced()
            && self.bgp_peers.synced()
            && self.communities.synced()
            && self.bfd_profiles.synced()
            && self.services.synced()
            && self.endpoint_slices.synced()
            && self.node.synced()
    }

    /// When to publish next: `None` before every fixed watch has listed once, or while
    /// nothing changed since the last snapshot.
    fn publish_at(&self) -> Option<Instant> {
        if !self.fixed_synced() {
            return None;
        }
        let due = self.debounce.deadline()?;
        let secrets_listed = self
            .secrets
            .values()
            .filter(|w| !w.store.synced())
            .map(|w| w.started + self.config.secret_wait)
            .max();
        Some(secrets_listed.map_or(due, |at| at.max(due)))
    }

    fn publish(&mut self, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
        self.generation += 1;
        let snapshot = self.snapshot();
        tracing::debug!(
            generation = snapshot.generation,
            diagnostics = snapshot.diagnostics.len(),
            "publishing a snapshot of the cluster"
        );
        tx.send_replace(Some(Arc::new(snapshot)));
        Metrics::add(&self.metrics.0.snapshots, 1);
        self.debounce.published(Instant::now());
    }

    fn snapshot(&self) -> Snapshot {
        let mut r = Resources {
            endpoints_mode: EndpointsMode::Observed,
            load_balancer_class: self.config.load_balancer_class.clone(),
            ..Resources::default()
        };
        let mut side = Side::default();
        side.collect(&self.pools, &mut r.pools);
        side.collect(&self.l2_advertisements, &mut r.l2_advertisements);
        side.collect(&self.bgp_advertisements, &mut r.bgp_advertisements);
        side.collect(&self.bgp_peers, &mut r.bgp_peers);
        side.collect(&self.communities, &mut r.communities);
        side.collect(&self.bfd_profiles, &mut r.bfd_profiles);
        side.collect(&self.services, &mut r.services);
        // Only the slices of our Services: the others are parked.
        side.collect(&self.endpoint_slices, &mut r.endpoint_slices);
        side.collect(&self.node, &mut r.nodes);
        for (key, w) in &self.secrets {
            if w.store.synced() {
                side.collect(&w.store, &mut r.secrets);
                continue;
            }
            // Whether it exists is unknown; "no such Secret" would be a guess.
            let resource = ResourceRef {
                kind: "Secret".into(),
                namespace: Some(key.namespace.clone()),
                name: key.name.clone(),
            };
            let why = w.last_error.as_deref().unwrap_or("no answer yet");
            side.diagnostics.push(
                Diagnostic::error(
                    resource.clone(),
                    "",
                    format!("the Secret cannot be read from the API server ({why})"),
                )
                .fix(format!(
                    "check that herald may get, list and watch Secrets in namespace {:?}",
                    key.namespace
                )),
            );
            side.unreadable
                .push(Unreadable::new(resource, format!("cannot be read ({why})")));
        }
        if r.nodes.is_empty() && !side.unreadable.iter().any(|u| u.resource.kind == "Node") {
            side.diagnostics.push(
                Diagnostic::warning(
                    ResourceRef {
                        kind: "Node".into(),
                        namespace: None,
                        name: self.config.node.clone(),
                    },
                    "",
                    "no Node of this name exists, so this node's labels are unknown and node \
                     selectors other than kubernetes.io/hostname do not match it",
                )
                .fix("give --node (or NODE_NAME) the Kubernetes name of this node"),
            );
        }
        for feed in &self.unserved {
            let resource = &feed.kind().resource;
            side.diagnostics.push(
                Diagnostic::warning(
                    ResourceRef::default(),
                    "",
                    format!(
                        "the API server does not serve {}/{} {}, so there are none",
                        resource.plural, resource.api_version, resource.kind
                    ),
                )
                .fix("install herald's CRDs (deploy/crds/), or MetalLB's of a release that has this kind"),
            );
        }
        r.unreadable = side.unreadable;
        Snapshot {
            generation: self.generation,
            resources: r,
            diagnostics: side.diagnostics,
            unreadable_references: side.references,
        }
    }
}

/// The name of the Service an EndpointSlice belongs to.
fn service_label(metadata: &ObjectMeta) -> Option<String> {
    metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL).cloned()
}

/// The key of the object an event is about, when it is about one.
fn key_of_event(event: &watcher::Event<DynamicObject>) -> Option<Key> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) => Some(key_of(o)),
        _ => None,
    }
}

/// What a snapshot gathers beside the objects themselves.
#[derive(Default)]
struct Side {
    diagnostics: Vec<Diagnostic>,
    unreadable: Vec<Unreadable>,
    references: Vec<ObjectReference>,
}

impl Side {
    /// Adds every object of `store` (shared, not copied), and what could not be read.
    fn collect<K>(&mut self, store: &Store<K>, into: &mut Vec<Sourced<K>>) {
        into.reserve(store.len());
        for read in store.objects() {
            let Read {
                object,
                reference,
                diagnostics,
            } = read;
            self.diagnostics.extend(diagnostics.iter().cloned());
            match object {
                Some(object) => into.push(object.clone()),
                None => {
                    self.unreadable
                        .push(Unreadable::new(read.resource_ref(), read.problem()));
                    self.references.push(reference.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn only_a_404_on_listing_means_the_kind_is_not_served() {
        let api = |code| kube::Error::Api(Status::failure("x", "y").with_code(code).boxed());
        assert!(not_served(&watcher::Error::InitialListFailed(api(404))));
        assert!(!not_served(&watcher::Error::InitialListFailed(api(403))));
        assert!(!not_served(&watcher::Error::WatchFailed(api(404))));
        assert!(!not_served(&watcher::Error::NoResourceVersion));
    }

    // The state machine driven by hand: events in, the time given, no server. The client
    // points nowhere; the watches it would start are never polled.

    const MS: Duration = Duration::from_millis(1);

    fn state() -> State {
        let url = "http://127.0.0.1:9".parse().expect("a URL");
        let client = Client::try_from(kube::Config::new(url)).expect("a client");
        // The times the tests below were written for, longer than the defaults.
        let mut config = SourceConfig::new("ns", "node-a");
        config.quiet = Duration::from_millis(150);
        config.max_delay = Duration::from_millis(500);
        State::new(client, config, Metrics::default())
    }

    fn object(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).expect("a DynamicObject")
    }

    fn list(s: &mut State, feed: &Feed, objects: Vec<DynamicObject>, now: Instant) -> bool {
        let mut peers = s.apply(feed, Ok(watcher::Event::Init), now);
        for o in objects {
            peers |= s.apply(feed, Ok(watcher::Event::InitApply(o)), now);
        }
        peers | s.apply(feed, Ok(watcher::Event::InitDone), now)
    }

    fn peer(name: &str, secret: &str) -> DynamicObject {
        object(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1",
                     "passwordSecret": {"name": secret}},
        }))
    }

    fn forbidden() -> watcher::Error {
        let status = Status::failure("secrets is forbidden", "Forbidden").with_code(403);
        watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()))
    }

    #[tokio::test]
    async fn nothing_is_published_before_every_watch_has_listed_once() {
        let (mut s, t0) = (state(), Instant::now());
        for feed in &Feed::FIXED[..8] {
            list(&mut s, feed, Vec::new(), t0);
            assert_eq!(s.publish_at(), None, "after {feed}");
        }
        list(&mut s, &Feed::Node, Vec::new(), t0 + 10 * MS);
        assert_eq!(
            s.publish_at(),
            Some(t0 + 160 * MS),
            "a quiet time after the last"
        );
        let snapshot = s.snapshot();
        let warned: Vec<String> = snapshot.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            warned.len() == 1
                && warned[0].starts_with("warning: Node node-a: no Node of this name"),
            "{warned:?}"
        );
    }

    #[tokio::test]
    async fn a_newly_named_secret_holds_the_snapshot_back_until_listed_or_the_wait_is_over() {
        let (mut s, t0) = (state(), Instant::now());
        let mut feeds = Feeds::new();
        for feed in &Feed::FIXED {
            if list(&mut s, feed, Vec::new(), t0) {
                s.follow_peers(&mut feeds, t0);
            }
        }
        s.debounce.published(t0);
        assert_eq!(s.publish_at(), None);

        let t1 = t0 + 1000 * MS;
        assert!(s.apply(
            &Feed::BgpPeers,
            Ok(watcher::Event::Apply(peer("r", "pw"))),
            t1
        ));
        s.follow_peers(&mut feeds, t1);
        let key = SecretKey {
            namespace: "ns".into(),
            name: "pw".into(),
        };
        assert!(s.secrets.contains_key(&key));
        assert_eq!(feeds.len(), 1, "one watch started, for that Secret alone");
        assert_eq!(s.publish_at(), Some(t1 + s.config.secret_wait));

        // Listed: publishing goes back to the usual quiet time.
        let secret = object(serde_json::json!({
            "metadata": {"name": "pw", "namespace": "ns"},
            "type": "kubernetes.io/basic-auth", "data": {"password": "cHc="},
        }));
        let t2 = t1 + 40 * MS;
        list(&mut s, &Feed::Secret(key.clone()), vec![secret], t2);
        assert_eq!(s.publish_at(), Some(t1 + 500 * MS).min(Some(t2 + 150 * MS)));
        assert_eq!(s.snapshot().resources.secrets.len(), 1);
        s.debounce.published(t2);

        // A second Secret that cannot be listed: past the wait it goes out as unreadable, with
        // the API server's reason, rather than as missing.
        let t3 = t2 + 1000 * MS;
        s.apply(
            &Feed::BgpPeers,
            Ok(watcher::Event::Apply(peer("r2", "pw2"))),
            t3,
        );
        s.follow_peers(&mut feeds, t3);
        let key2 = SecretKey {
            namespace: "ns".into(),
            name: "pw2".into(),
        };
        s.apply(&Feed::Secret(key2), Err(forbidden()), t3 + 10 * MS);
        assert_eq!(s.publish_at(), Some(t3 + s.config.secret_wait));
        let snapshot = s.snapshot();
        assert_eq!(snapshot.resources.unreadable.len(), 1);
        assert_eq!(
            snapshot.resources.unreadable[0].resource.to_string(),
            "Secret ns/pw2"
        );
        let d = &snapshot.diagnostics[0];
        assert!(
            d.is_error() && d.problem.contains("secrets is forbidden"),
            "{d}"
        );
        assert_eq!(s.metrics.counters().update_errors, 1);

        // No peer names pw2 any more: its watch stops and the snapshot forgets it.
        s.apply(
            &Feed::BgpPeers,
            Ok(watcher::Event::Delete(peer("r2", ""))),
            t3 + 20 * MS,
        );
        s.follow_peers(&mut feeds, t3 + 20 * MS);
        assert_eq!(s.secrets.len(), 1);
        assert!(s.snapshot().resources.unreadable.is_empty());
    }

    #[tokio::test]
    async fn a_kind_not_served_is_published_as_none_with_a_warning() {
        let (mut s, t0) = (state(), Instant::now());
        for feed in &Feed::FIXED {
            if *feed == Feed::Communities {
                let status = Status::failure(
                    "the server could not find the requested resource",
                    "NotFound",
                )
                .with_code(404);
                let e = watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()));
                s.apply(feed, Err(e), t0);
            } else {
                list(&mut s, feed, Vec::new(), t0);
            }
        }
        assert_eq!(s.publish_at(), Some(t0 + 150 * MS));
        let snapshot = s.snapshot();
        assert!(
            snapshot.diagnostics.iter().any(|d| d
                .problem
                .contains("does not serve communities/metallb.io/v1beta1")),
            "{:?}",
            snapshot.diagnostics
        );
        // Installed later: the retried watch lists, and the warning goes.
        list(&mut s, &Feed::Communities, Vec::new(), t0 + 10 * MS);
        assert!(
            !s.snapshot()
                .diagnostics
                .iter()
                .any(|d| d.problem.contains("does not serve"))
        );
    }

    #[test]
    fn field_selector_values_are_escaped() {
        assert_eq!(field_value("node-a"), "node-a");
        assert_eq!(field_value(r"a,b=c\d"), r"a\,b\=c\\d");
    }
}
