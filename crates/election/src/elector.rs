//! The elector: [`Core`] driven by one watch over the election's Leases, writes made with a
//! kube client, and a timer. Everything the election decides is the core's; this is I/O.
//!
//! Writes of this member's own Leases (renewals, candidacy) go out at once; claims, releases
//! and deletions share a bounded number of requests in flight, so a failover of many keys
//! cannot delay a renewal behind them. Every request has a timeout; one that ends in none is
//! a failure the core knows how to live with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::utils::{Backoff, WatchStreamExt};
use kube::runtime::watcher;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::core::{Action, Candidacy, Core, KeyStatus, OpId, Outcome, Timing, Transition, Write};
use crate::lease::{self, ANNOTATION_RELEASED_BY, Meta};
use crate::names::{self, ANNOTATION_CANDIDACY, ANNOTATION_KEY, ANNOTATION_MEMBER};

/// How an elector is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the Leases live.
    pub namespace: String,
    /// The election's name: its Leases' label and name prefix (`herald` for the speakers'
    /// Layer 2 addresses, `herald-controller` for the controller).
    pub election: String,
    /// This member: a node's or pod's name.
    pub identity: String,
    pub timing: Timing,
    /// How long one write may take before it counts as failed.
    pub request_timeout: Duration,
    /// How long the read after a claim seen on the wire may take; past it this member steps
    /// back, as one cut off from the API must.
    pub verify_timeout: Duration,
    /// Claims, releases and deletions in flight at once.
    pub max_concurrent_writes: usize,
}

impl Config {
    pub fn new(namespace: &str, election: &str, identity: &str) -> Config {
        Config {
            namespace: namespace.to_owned(),
            election: election.to_owned(),
            identity: identity.to_owned(),
            timing: Timing::default(),
            request_timeout: Duration::from_secs(2),
            verify_timeout: Duration::from_millis(500),
            max_concurrent_writes: 32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0:?} cannot be an election key: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 200 characters"
    )]
    InvalidKey(String),
}

/// What the elector tells its user, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This member started (`acting: true`) or stopped acting on `key`, and why.
    Changed {
        key: String,
        acting: bool,
        reason: Transition,
    },
    /// Another member claimed `key` on the wire but the API says it is this member's:
    /// announce it again.
    Defend(String),
}

/// One member as this member sees it, for `/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberStatus {
    pub identity: String,
    pub alive: bool,
    pub annotations: BTreeMap<String, String>,
}

/// The election seen from this member, for `/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub identity: String,
    /// This member's view of the API is current (see [`Core::healthy`]).
    pub healthy: bool,
    pub members: Vec<MemberStatus>,
    pub keys: Vec<KeyStatus>,
}

/// Counters for metrics, read at scrape time.
#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    transitions: Mutex<BTreeMap<Transition, u64>>,
    acting: Mutex<usize>,
}

impl Stats {
    fn request(&self, verb: &'static str) {
        *lock(&self.requests).entry(verb).or_default() += 1;
    }

    /// API requests this elector made, by verb: `create`, `update`, `delete`, `get`, and for
    /// the watch `list` (each full listing) and `watch` (each watch (re)started).
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.requests).clone()
    }

    pub fn transitions(&self) -> BTreeMap<Transition, u64> {
        lock(&self.transitions).clone()
    }

    /// Keys acted on now.
    pub fn acting(&self) -> usize {
        *lock(&self.acting)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Command {
    Candidacy(BTreeMap<String, Candidacy>),
    MemberAnnotations(BTreeMap<String, String>),
    ClaimSeen { key: String, claimant: String },
    Status(oneshot::Sender<Status>),
    Shutdown(oneshot::Sender<()>),
}

/// Members by identity, with their member Lease's annotations.
pub type Members = Arc<BTreeMap<String, BTreeMap<String, String>>>;

/// A running member of one election. Dropping it stops the task without releasing anything
/// (as a crash would); [`Elector::shutdown`] releases first.
#[derive(Debug)]
pub struct Elector {
    commands: mpsc::UnboundedSender<Command>,
    acting: watch::Receiver<BTreeSet<String>>,
    members: watch::Receiver<Members>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Elector {
    /// Joins the election; events arrive on the returned receiver.
    pub fn start(
        client: kube::Client,
        config: Config,
    ) -> (Elector, mpsc::UnboundedReceiver<Event>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (acting_tx, acting) = watch::channel(BTreeSet::new());
        let (members_tx, members) = watch::channel(Members::default());
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(
            Task {
                api: Api::namespaced(client, &config.namespace),
                core: Core::new(config.identity.clone(), config.timing),
                semaphore: Arc::new(Semaphore::new(config.max_concurrent_writes.max(1))),
                config,
                events,
                acting: acting_tx,
                members: members_tx,
                stats: stats.clone(),
            }
            .run(commands_rx),
        );
        let elector = Elector {
            commands,
            acting,
            members,
            stats,
            task,
        };
        (elector, events_rx)
    }

    /// What this member stands for (the whole set; level-based).
    pub fn set_candidacy(&self, keys: BTreeMap<String, Candidacy>) -> Result<(), Error> {
        if let Some(bad) = keys.keys().find(|k| !names::valid_key(k)) {
            return Err(Error::InvalidKey(bad.clone()));
        }
        let _ = self.commands.send(Command::Candidacy(keys));
        Ok(())
    }

    /// Annotations for this member's member Lease (herald puts its MAC addresses there).
    pub fn set_member_annotations(&self, annotations: BTreeMap<String, String>) {
        let _ = self.commands.send(Command::MemberAnnotations(annotations));
    }

    /// Another member was seen claiming `key` on the wire.
    pub fn claim_seen(&self, key: &str, claimant: &str) {
        let _ = self.commands.send(Command::ClaimSeen {
            key: key.to_owned(),
            claimant: claimant.to_owned(),
        });
    }

    /// The keys this member acts on now.
    pub fn acting(&self) -> watch::Receiver<BTreeSet<String>> {
        self.acting.clone()
    }

    /// Every member seen, alive or not, with its annotations.
    pub fn members(&self) -> watch::Receiver<Members> {
        self.members.clone()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The election as this member sees it; `None` once the elector has stopped.
    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Status(tx)).ok()?;
        rx.await.ok()
    }

    /// Stops acting on every key at once and releases this member, so the others take over
    /// without waiting for it to expire; waits at most `timeout` for the release to be written.
    pub async fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
        self.task.abort();
    }

    /// Whether the task has ended (it only does after shutdown, or if it panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch (re)connection backoff: quick and capped, so that every member follows the API again
/// within about a second of its return (client-go's default grows to 30 s).
struct CappedBackoff(Duration);

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Iterator for CappedBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.0;
        self.0 = (d * 2).min(BACKOFF_MAX);
        Some(d)
    }
}

impl Backoff for CappedBackoff {
    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// At most this many watch events are taken in before the election is looked at again.
const WATCH_BATCH: usize = 1024;

type LeaseStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<watcher::Event<Lease>, watcher::Error>> + Send>>;

struct Task {
    api: Api<Lease>,
    core: Core,
    config: Config,
    semaphore: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
    acting: watch::Sender<BTreeSet<String>>,
    members: watch::Sender<Members>,
    stats: Arc<Stats>,
}

impl Task {
    fn watch(&self) -> LeaseStream {
        self.stats.request("watch");
        let selector = format!("{}={}", names::LABEL_ELECTION, self.config.election);
        watcher(
            self.api.clone(),
            watcher::Config::default().labels(&selector),
        )
        .backoff(CappedBackoff(BACKOFF_MIN))
        .boxed()
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (done_tx, mut done) = mpsc::unbounded_channel::<(OpId, Outcome)>();
        let mut stream = self.watch();
        let mut restarted: Option<Instant> = None;
        // When the watch last delivered anything: a watch that lags behind under load still
        // delivers, and starting it again (a full list) would only add to the load.
        let mut delivered = Instant::now();
        let mut shutdown_reply: Option<oneshot::Sender<()>> = None;
        let mut last_status_log: Option<bool> = None;
        loop {
            let now = std::time::Instant::now();
            for action in self.core.poll(now) {
                match action {
                    Action::Write(op, write) => self.perform(op, write, &done_tx),
                    Action::Defend(key) => {
                        let _ = self.events.send(Event::Defend(key));
                    }
                }
            }
            self.publish();
            let healthy = self.core.healthy(now);
            if last_status_log != Some(healthy) && shutdown_reply.is_none() {
                if healthy {
                    info!(election = %self.config.election, "following the election's Leases");
                } else if last_status_log.is_some() {
                    warn!(election = %self.config.election, "cannot follow the election's Leases (API server unreachable or slow): holding what this node holds, claiming nothing");
                }
                last_status_log = Some(healthy);
            }
            if self.core.shutdown_complete() {
                if let Some(reply) = shutdown_reply.take() {
                    let _ = reply.send(());
                }
                return;
            }
            let lease_duration = self.config.timing.lease_duration;
            if self.core.watch_stale(now)
                && delivered.elapsed() > lease_duration
                && restarted.is_none_or(|t| t.elapsed() > lease_duration)
            {
                warn!(election = %self.config.election, "the Lease watch delivers nothing although the API answers: starting it again");
                stream = self.watch();
                restarted = Some(Instant::now());
            }
            let deadline = self.core.next_deadline(now).map(Instant::from_std);
            tokio::select! {
                event = stream.next() => {
                    // Take in whatever else the watch has ready before deciding anything: one
                    // look at the election per batch, not per event, keeps a member that fell
                    // behind (thousands of keys changing at once) from falling further behind.
                    let mut next = Some(event);
                    let mut taken = 0;
                    while let Some(event) = next.take() {
                        match event {
                            Some(Ok(event)) => {
                                delivered = Instant::now();
                                self.watched(event);
                            }
                            Some(Err(e)) => {
                                self.stats.request("watch");
                                debug!(election = %self.config.election, error = %e, "Lease watch failed; retrying");
                            }
                            None => {
                                stream = self.watch();
                                break;
                            }
                        }
                        taken += 1;
                        if taken < WATCH_BATCH {
                            next = stream.next().now_or_never();
                        }
                    }
                }
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Candidacy(keys)) => self.core.set_candidacy(keys),
                    Some(Command::MemberAnnotations(a)) => self.core.set_member_annotations(a),
                    Some(Command::ClaimSeen { key, claimant }) => {
                        self.core.claim_seen(&key, &claimant, std::time::Instant::now());
                    }
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(self.status(std::time::Instant::now()));
                    }
                    Some(Command::Shutdown(reply)) => {
                        self.core.shutdown();
                        shutdown_reply = Some(reply);
                    }
                },
                Some((op, outcome)) = done.recv() => {
                    self.core.outcome(op, outcome, std::time::Instant::now());
                    while let Ok((op, outcome)) = done.try_recv() {
                        self.core.outcome(op, outcome, std::time::Instant::now());
                    }
                }
                () = sleep_until(deadline) => {}
            }
        }
    }

    fn watched(&mut self, event: watcher::Event<Lease>) {
        let now = std::time::Instant::now();
        let election = &self.config.election;
        match event {
            watcher::Event::Init => {
                self.stats.request("list");
                self.core.relist_started();
            }
            watcher::Event::InitApply(l) | watcher::Event::Apply(l) => {
                if let Some(o) = lease::read(&l, election) {
                    self.core.observe(o, now);
                }
            }
            watcher::Event::InitDone => self.core.relist_done(),
            watcher::Event::Delete(l) => {
                if let Some(o) = lease::read(&l, election) {
                    self.core.observe_deleted(o.id());
                }
            }
        }
    }

    /// Hands the core's decisions to the user: the keys to act on, what changed, who is known.
    fn publish(&mut self) {
        for (key, reason) in self.core.take_changes() {
            let acting = self.core.acting().contains(&key);
            debug!(election = %self.config.election, %key, acting, reason = reason.as_str(), "election change");
            let _ = self.events.send(Event::Changed {
                key,
                acting,
                reason,
            });
        }
        let acting = self.core.acting();
        self.acting.send_if_modified(|a| {
            let changed = a != acting;
            if changed {
                a.clone_from(acting);
            }
            changed
        });
        *lock(&self.stats.acting) = acting.len();
        lock(&self.stats.transitions).clone_from(self.core.transitions());
        let known = self.core.known_members();
        self.members.send_if_modified(|m| {
            let changed = **m != known;
            if changed {
                *m = Arc::new(known);
            }
            changed
        });
    }

    fn status(&self, now: std::time::Instant) -> Status {
        let live = self.core.live_members();
        let mut members: Vec<MemberStatus> = self
            .core
            .known_members()
            .into_iter()
            .map(|(identity, annotations)| MemberStatus {
                alive: live.contains_key(&identity),
                identity,
                annotations,
            })
            .collect();
        if !members.iter().any(|m| m.identity == self.core.identity()) {
            members.push(MemberStatus {
                identity: self.core.identity().to_owned(),
                alive: live.contains_key(self.core.identity()),
                annotations: BTreeMap::new(),
            });
        }
        Status {
            identity: self.core.identity().to_owned(),
            healthy: self.core.healthy(now),
            members,
            keys: self
                .core
                .keys()
                .iter()
                .map(|k| self.core.key_status(k))
                .collect(),
        }
    }

    fn perform(&self, op: OpId, write: Write, done: &mpsc::UnboundedSender<(OpId, Outcome)>) {
        let own = matches!(write, Write::Member { .. } | Write::Candidacy { .. });
        let request = Request {
            api: self.api.clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
        };
        let semaphore = (!own).then(|| self.semaphore.clone());
        let done = done.clone();
        tokio::spawn(async move {
            // Renewals never wait behind claims.
            let _permit = match semaphore {
                Some(s) => s.acquire_owned().await.ok(),
                None => None,
            };
            let outcome = request.perform(write).await;
            let _ = done.send((op, outcome));
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One write or read, with what it needs.
struct Request {
    api: Api<Lease>,
    config: Config,
    stats: Arc<Stats>,
}

impl Request {
    fn meta(&self, name: String, role: &'static str, resource_version: Option<String>) -> Meta<'_> {
        Meta {
            election: &self.config.election,
            namespace: &self.config.namespace,
            name,
            role,
            resource_version,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// A key Lease's metadata: the caller's labels and annotations, and the key itself.
    fn key_meta(
        &self,
        key: &str,
        resource_version: Option<String>,
        labels: BTreeMap<String, String>,
        mut annotations: BTreeMap<String, String>,
    ) -> Meta<'_> {
        annotations.insert(ANNOTATION_KEY.into(), key.to_owned());
        Meta {
            labels,
            annotations,
            ..self.meta(
                names::key_lease(&self.config.election, key),
                names::ROLE_KEY,
                resource_version,
            )
        }
    }

    async fn perform(&self, write: Write) -> Outcome {
        let c = &self.config;
        let identity = c.identity.as_str();
        match write {
            Write::Member {
                resource_version,
                holder,
                duration,
                mut annotations,
            } => {
                annotations.insert(ANNOTATION_MEMBER.into(), identity.into());
                let meta = Meta {
                    annotations,
                    ..self.meta(
                        names::member_lease(&c.election, identity),
                        names::ROLE_MEMBER,
                        resource_version,
                    )
                };
                self.put(lease::member(meta, holder.as_deref(), duration))
                    .await
            }
            Write::Candidacy {
                resource_version,
                keys,
            } => {
                let annotations = BTreeMap::from([
                    (ANNOTATION_MEMBER.to_owned(), identity.to_owned()),
                    (
                        ANNOTATION_CANDIDACY.to_owned(),
                        lease::format_candidacy(&keys),
                    ),
                ]);
                let meta = Meta {
                    annotations,
                    ..self.meta(
                        names::candidacy_lease(&c.election, identity),
                        names::ROLE_CANDIDACY,
                        resource_version,
                    )
                };
                self.put(lease::candidacy(meta, identity)).await
            }
            Write::Claim {
                key,
                resource_version,
                transitions,
                labels,
                annotations,
            } => {
                let transitions = if resource_version.is_some() {
                    transitions.saturating_add(1)
                } else {
                    0
                };
                let meta = self.key_meta(&key, resource_version, labels, annotations);
                self.put(lease::key(meta, Some(identity), transitions))
                    .await
            }
            Write::Release {
                key,
                resource_version,
                transitions,
                labels,
                mut annotations,
            } => {
                annotations.insert(ANNOTATION_RELEASED_BY.into(), identity.into());
                let meta = self.key_meta(&key, Some(resource_version), labels, annotations);
                self.put(lease::key(meta, None, transitions)).await
            }
            Write::Delete {
                key,
                resource_version,
            } => {
                self.stats.request("delete");
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: Some(resource_version),
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                let name = names::key_lease(&c.election, &key);
                match tokio::time::timeout(c.request_timeout, self.api.delete(&name, &params)).await
                {
                    Ok(Ok(_)) => Outcome::Deleted,
                    Ok(Err(e)) => api_error(e),
                    Err(_) => Outcome::Failed("timed out".into()),
                }
            }
            Write::Verify { key } => {
                self.stats.request("get");
                let name = names::key_lease(&c.election, &key);
                match tokio::time::timeout(c.verify_timeout, self.api.get(&name)).await {
                    Ok(Ok(l)) => self.read(&l),
                    Ok(Err(e)) => api_error(e),
                    Err(_) => Outcome::Failed("timed out".into()),
                }
            }
        }
    }

    /// Creates the Lease when it names no resource version, else replaces it conditionally.
    async fn put(&self, lease: Lease) -> Outcome {
        let params = PostParams::default();
        let timeout = self.config.request_timeout;
        let result = if lease.metadata.resource_version.is_none() {
            self.stats.request("create");
            tokio::time::timeout(timeout, self.api.create(&params, &lease)).await
        } else {
            self.stats.request("update");
            let name = lease.metadata.name.clone().unwrap_or_default();
            tokio::time::timeout(timeout, self.api.replace(&name, &params, &lease)).await
        };
        match result {
            Ok(Ok(l)) => self.read(&l),
            Ok(Err(e)) => api_error(e),
            Err(_) => Outcome::Failed("timed out".into()),
        }
    }

    fn read(&self, l: &Lease) -> Outcome {
        match lease::read(l, &self.config.election) {
            Some(o) => Outcome::Done(o),
            None => Outcome::Failed("the server returned a Lease this election cannot read".into()),
        }
    }
}

fn api_error(e: kube::Error) -> Outcome {
    match &e {
        kube::Error::Api(s) if s.code == 409 => Outcome::Conflict,
        kube::Error::Api(s) if s.code == 404 => Outcome::NotFound,
        _ => Outcome::Failed(e.to_string()),
    }
}
