//! The Layer 2 actuator: makes the plan's L2 announcements true on this node's links.
//!
//! The plan says which addresses this node may answer for and on which interfaces (every
//! usable one, or those the L2Advertisements name). Here they are resolved against the links
//! and addresses rtnetlink reports ([`assign`]): where an interface holds a subnet containing
//! the address, only such interfaces answer; an interface numbered only in other subnets of
//! the address's family (a management network, say) never does. Resolution runs again
//! whenever the plan or the links change, so an interface that appears later is served, and
//! one that goes away or down is dropped.
//!
//! In Kubernetes mode the node stands as a candidate for each address it could answer
//! (`crate::leadership`) and answers only for those it leads; the election decides. It also
//! watches the wire: another herald node announcing an address this node leads is reported to
//! the election (which decides whether to step back), anyone else doing so is an address
//! conflict. In file mode there is no election: every eligible node answers.

use crate::leadership;
use crate::metrics::{Family, counter_family, gauge_family};
use crate::supervise::{TaskHealth, Tasks};
use election::{Elector, Event as ElectionEvent, Members};
use l2::{InterfaceSelection, Link, LinkTable, Responder};
use model::plan::{Interfaces, L2Announcement};
use model::world::ServiceRef;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Where one planned address is answered on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub ip: IpAddr,
    pub service: ServiceRef,
    /// The links that would answer for it. Empty: this node is not eligible for the address.
    pub interfaces: BTreeSet<String>,
    /// Interfaces the advertisements name that this node does not have (as Ethernet links).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub unmatched: BTreeSet<String>,
    /// Why the usable links do not answer (down, or on other subnets), when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// This node's preference for the address (`preferredNodeSelectors`).
    pub preference: u32,
    /// The node whose Lease holds the address (Kubernetes mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Whether this node answers for the address now.
    pub answering: bool,
}

impl Assignment {
    /// Why this node cannot answer for the address, when it cannot.
    pub fn why_not(&self) -> Option<String> {
        if !self.interfaces.is_empty() {
            return None;
        }
        Some(if let Some(why) = &self.unusable {
            why.clone()
        } else if self.unmatched.is_empty() {
            "this node has no usable interface (every link is loopback, virtual, or a bridge or bond member); name one in the L2Advertisement's interfaces".to_owned()
        } else {
            let named = self
                .unmatched
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            format!("no interface of this node matches the L2Advertisement's interfaces ({named})")
        })
    }
}

/// Whether `net` is a subnet (not a host address) holding `ip`.
fn on_subnet(net: &ipnet::IpNet, ip: IpAddr) -> bool {
    net.prefix_len() < net.max_prefix_len() && net.contains(&ip)
}

/// Whether `link` has an address of `ip`'s family that could make it a network of its own
/// (global, not link-local).
fn numbered_for(link: &Link, ip: IpAddr) -> bool {
    link.addresses.iter().any(|net| match (net.addr(), ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => net.prefix_len() < net.max_prefix_len(),
        (IpAddr::V6(a), IpAddr::V6(_)) => {
            !a.is_unicast_link_local() && net.prefix_len() < net.max_prefix_len()
        }
        _ => false,
    })
}

/// Resolves every announcement against `links`: on which interfaces this node would answer
/// for each address, or why it cannot.
///
/// Of the interfaces the advertisements select, those holding a subnet that contains the
/// address are the ones to answer on. When none does: named interfaces all answer (naming them
/// is a decision), and of the default selection only interfaces without an address of the
/// family's own (an unnumbered LAN) do; one numbered in other subnets is another network.
/// Interfaces that are down do not answer.
pub fn assign(announcements: &[L2Announcement], links: &LinkTable) -> Vec<Assignment> {
    announcements
        .iter()
        .map(|a| {
            let selection = match &a.interfaces {
                Interfaces::Any => InterfaceSelection::Any,
                Interfaces::Only(names) => InterfaceSelection::Only(names.clone()),
            };
            let resolved = l2::resolve(&selection, links.links.values());
            let selected: Vec<&Link> = resolved
                .interfaces
                .iter()
                .filter_map(|name| links.by_name(name))
                .collect();
            let on_link: Vec<&Link> = selected
                .iter()
                .copied()
                .filter(|l| l.addresses.iter().any(|net| on_subnet(net, a.ip)))
                .collect();
            let candidates: Vec<&Link> = if !on_link.is_empty() {
                on_link
            } else if matches!(a.interfaces, Interfaces::Only(_)) {
                selected.clone()
            } else {
                selected.iter().copied().filter(|l| !numbered_for(l, a.ip)).collect()
            };
            let up: BTreeSet<String> = candidates
                .iter()
                .filter(|l| l.is_operational())
                .map(|l| l.name.clone())
                .collect();
            let unusable = if !up.is_empty() || selected.is_empty() {
                None
            } else if candidates.is_empty() {
                let elsewhere = selected
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(format!(
                    "no interface of this node is on a subnet containing {} ({elsewhere} are on other subnets); add an address of that subnet to the interface on its LAN, or name the interface in the L2Advertisement's interfaces",
                    a.ip
                ))
            } else {
                let down = candidates
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(format!("the interfaces to answer on are down ({down})"))
            };
            Assignment {
                ip: a.ip,
                service: a.service.clone(),
                interfaces: up,
                unmatched: resolved.unmatched,
                unusable,
                preference: a.preference,
                leader: None,
                answering: false,
            }
        })
        .collect()
}

/// Interface name → addresses to answer for, from the assignments this node answers.
fn owned(assignments: &[Assignment]) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut owned: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for a in assignments.iter().filter(|a| a.answering) {
        for name in &a.interfaces {
            owned.entry(name.clone()).or_default().insert(a.ip);
        }
    }
    owned
}

/// What `/status` shows of Layer 2.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Layer2Status {
    /// Why the responder is not running, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub addresses: Vec<Assignment>,
    pub interfaces: BTreeMap<String, InterfaceStatus>,
    /// The election as this node sees it (Kubernetes mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election: Option<ElectionStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InterfaceStatus {
    pub listening: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub frames_read: u64,
}

/// The election summed up for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct ElectionStatus {
    /// This node's view of the API is current; when it is not, it claims nothing and keeps
    /// what it holds.
    pub healthy: bool,
    /// Herald nodes known, and whether each is alive.
    pub members: BTreeMap<String, bool>,
}

/// The election, when there is one (Kubernetes mode).
#[derive(Debug)]
struct Election {
    elector: Elector,
    /// The last status read from the elector.
    status: Mutex<Option<election::Status>>,
}

/// The running Layer 2 actuator.
pub struct Layer2 {
    plan: watch::Sender<Arc<Vec<L2Announcement>>>,
    state: Arc<State>,
    /// Runs the reconcile loop, task [`RECONCILE_TASK`].
    tasks: Tasks,
    /// Bumped whenever the addresses this node answers change, for Events.
    changed: watch::Receiver<u64>,
}

impl std::fmt::Debug for Layer2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer2").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    node: String,
    responder: Option<Responder>,
    start_error: Option<String>,
    assignments: Mutex<Vec<Assignment>>,
    election: Option<Election>,
    /// Addresses this node answers for that a station other than a herald node claimed on
    /// the wire lately: the claimant and when it was last seen.
    conflicts: Mutex<BTreeMap<IpAddr, (l2::EthernetAddress, Instant)>>,
}

/// How long a conflict is remembered after its last claim: one Event per conflict, and
/// another only if it comes back after this.
const CONFLICT_MEMORY: Duration = Duration::from_secs(60);

/// How often the elector's view is read for `/status` when nothing else happens.
const STATUS_REFRESH: Duration = Duration::from_secs(1);

impl Layer2 {
    /// Starts following this namespace's links. A failure to do so (no netlink) is logged
    /// and shown in `/status`; the rest of herald keeps running without Layer 2. With an
    /// elector, answers only for the addresses it leads.
    pub async fn start(
        node: String,
        config: l2::Config,
        elector: Option<(Elector, mpsc::UnboundedReceiver<ElectionEvent>)>,
        tasks: &Tasks,
    ) -> Layer2 {
        let (responder, start_error) = match Responder::start(config).await {
            Ok(r) => (Some(r), None),
            Err(e) => {
                let e = format!("cannot follow this node's links, so Layer 2 is off: {e}");
                warn!(error = %e, "layer 2 responder not started");
                (None, Some(e))
            }
        };
        let (elector, events) = match elector {
            Some((e, events)) => (Some(e), Some(events)),
            None => (None, None),
        };
        let state = Arc::new(State {
            node,
            conflicts: Mutex::new(BTreeMap::new()),
            responder,
            start_error,
            assignments: Mutex::new(Vec::new()),
            election: elector.map(|elector| Election {
                elector,
                status: Mutex::new(None),
            }),
        });
        let (plan, plan_rx) = watch::channel(Arc::new(Vec::new()));
        let (changed_tx, changed) = watch::channel(0);
        let followed = Arc::downgrade(&state);
        tasks.follow(move || {
            let state = followed.upgrade();
            let health = state
                .as_ref()
                .and_then(|s| Some(s.responder.as_ref()?.health()));
            health.map(|h| responder_tasks(&h)).unwrap_or_default()
        });
        if let Some(r) = &state.responder {
            // Everything the loop reads outlives it, so a loop that died is started again
            // and takes up where the state is (level-based). The election's events are
            // kept behind a lock the loop holds while it runs.
            let (state, links) = (state.clone(), r.links().subscribe());
            let events = events.map(|e| Arc::new(tokio::sync::Mutex::new(e)));
            let changed_tx = Arc::new(changed_tx);
            tasks.spawn(RECONCILE_TASK, move || {
                reconcile_loop(
                    state.clone(),
                    plan_rx.clone(),
                    links.clone(),
                    events.clone(),
                    changed_tx.clone(),
                )
            });
        }
        Layer2 {
            plan,
            state,
            tasks: tasks.clone(),
            changed,
        }
    }

    /// Makes `announcements` the addresses to answer for (level-based).
    pub fn set(&self, announcements: &[L2Announcement]) {
        let new = Arc::new(announcements.to_vec());
        self.plan.send_if_modified(|current| {
            let changed = **current != *new;
            *current = new;
            changed
        });
    }

    /// This node's links as the responder's monitor keeps them; `None` when the responder
    /// could not start.
    pub fn links(&self) -> Option<watch::Receiver<Arc<LinkTable>>> {
        self.state.responder.as_ref().map(|r| r.links().subscribe())
    }

    /// Changes whenever the addresses this node answers for change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    pub fn status(&self) -> Layer2Status {
        let interfaces = self
            .state
            .responder
            .as_ref()
            .map(|r| {
                r.stats()
                    .interfaces
                    .into_iter()
                    .map(|(name, s)| {
                        let status = InterfaceStatus {
                            listening: s.listening,
                            error: s.error,
                            frames_read: s.frames_read,
                        };
                        (name, status)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let election = self.state.election.as_ref().and_then(|e| {
            let status = lock(&e.status).clone()?;
            Some(ElectionStatus {
                healthy: status.healthy,
                members: status
                    .members
                    .iter()
                    .map(|m| (m.identity.clone(), m.alive))
                    .collect(),
            })
        });
        Layer2Status {
            error: self.state.start_error.clone(),
            addresses: self.state.assignments().clone(),
            interfaces,
            election,
        }
    }

    /// Where `announcements` would be answered on the links as they are now, and whether this
    /// node answers them; `Err` when Layer 2 is off on this node.
    pub fn resolve(&self, announcements: &[L2Announcement]) -> Result<Vec<Assignment>, String> {
        match &self.state.responder {
            Some(r) => {
                let answering: BTreeSet<IpAddr> = self
                    .state
                    .assignments()
                    .iter()
                    .filter(|a| a.answering)
                    .map(|a| a.ip)
                    .collect();
                let mut assignments = assign(announcements, &r.links().table());
                for a in &mut assignments {
                    a.answering = answering.contains(&a.ip) && !a.interfaces.is_empty();
                }
                Ok(assignments)
            }
            None => Err(self.state.start_error.clone().unwrap_or_default()),
        }
    }

    /// Address conflicts seen lately: for each address, what to tell its Services.
    pub fn conflicts(&self) -> BTreeMap<IpAddr, String> {
        lock(&self.state.conflicts)
            .iter()
            .map(|(ip, (mac, _))| {
                let text = format!(
                    "address conflict: {mac}, which is not a herald node, claims {ip} on the LAN; herald keeps answering for it and announces it again. Find the host with that MAC and take the address off it"
                );
                (*ip, text)
            })
            .collect()
    }

    /// Whether an election decides which node answers (Kubernetes mode).
    pub fn elected(&self) -> bool {
        self.state.election.is_some()
    }

    /// The addresses this node answers for.
    pub fn announced(&self) -> BTreeSet<(ServiceRef, String)> {
        self.state
            .assignments()
            .iter()
            .filter(|a| a.answering)
            .map(|a| (a.service.clone(), a.ip.to_string()))
            .collect()
    }

    /// Makes the task of `interface` panic (a test); false when there is none.
    #[cfg(feature = "fault-injection")]
    pub fn fail_interface(&self, interface: &str) -> bool {
        self.state
            .responder
            .as_ref()
            .is_some_and(|r| r.inject_interface_failure(interface))
    }

    /// The metrics of Layer 2, read at scrape time.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(Layer2Collector(self.state.clone()))
    }

    /// Stops answering for every address at once, and releases every address this node
    /// leads so that the other nodes take over without waiting for it to expire.
    pub async fn stop(&self) {
        self.tasks.stop_task(RECONCILE_TASK);
        if let Some(r) = &self.state.responder {
            r.set_owned(&BTreeMap::new());
        }
        let stopped = std::mem::take(&mut *self.state.assignments());
        log_changes(&stopped, &[]);
        if let Some(e) = &self.state.election {
            e.elector.shutdown(RELEASE_TIMEOUT).await;
        }
    }
}

/// The Layer 2 responder's own tasks (it starts them again itself), named as the speaker's
/// tasks are: `link_monitor`, `interface:NAME`.
fn responder_tasks(health: &l2::responder::Health) -> Vec<(String, TaskHealth)> {
    let task = |t: &l2::link::TaskHealth| TaskHealth {
        up: t.up,
        restarts: t.restarts,
        last_failure: t.last_error.clone(),
    };
    let interfaces = health
        .interfaces
        .iter()
        .map(|(n, t)| (format!("interface:{n}"), task(t)));
    std::iter::once(("link_monitor".to_owned(), task(&health.link_monitor.task)))
        .chain(interfaces)
        .collect()
}

/// The name of the reconcile loop among the speaker's tasks.
const RECONCILE_TASK: &str = "layer2_reconcile";

/// How long shutdown waits for the release to be written before leaving the others to find
/// this node's Lease expired.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

impl Drop for Layer2 {
    fn drop(&mut self) {
        self.tasks.stop_task(RECONCILE_TASK);
        if let Some(r) = &self.state.responder {
            r.set_owned(&BTreeMap::new());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn assignments(&self) -> std::sync::MutexGuard<'_, Vec<Assignment>> {
        lock(&self.assignments)
    }
}

async fn reconcile_loop(
    state: Arc<State>,
    mut plan: watch::Receiver<Arc<Vec<L2Announcement>>>,
    mut links: watch::Receiver<Arc<LinkTable>>,
    events: Option<Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ElectionEvent>>>>,
    changed: Arc<watch::Sender<u64>>,
) {
    let Some(responder) = &state.responder else {
        return;
    };
    let mut events = match &events {
        Some(e) => Some(e.lock().await),
        None => None,
    };

    let election = state.election.as_ref();
    let mut acting = election.map(|e| e.elector.acting());
    let mut members = election.map(|e| e.elector.members());
    // Socket trouble (no CAP_NET_RAW, say) is only seen in the responder's counters; a look
    // once a second puts it in the log. The election's view is read as often for /status.
    let mut tick = tokio::time::interval(SOCKET_CHECK_INTERVAL.min(STATUS_REFRESH));
    let mut socket_errors: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut claims = responder.claims();
    let mut dirty = true;
    loop {
        if dirty {
            let announcements = plan.borrow_and_update().clone();
            let table = links.borrow_and_update().clone();
            let mut assignments = assign(&announcements, &table);
            match election {
                None => {
                    for a in &mut assignments {
                        a.answering = !a.interfaces.is_empty();
                    }
                }
                Some(e) => {
                    let _ = e.elector.set_candidacy(leadership::candidacy(&assignments));
                    e.elector
                        .set_member_annotations(leadership::member_annotations(&table));
                    let leading = acting
                        .as_mut()
                        .map(|a| a.borrow_and_update().clone())
                        .unwrap_or_default();
                    let status = lock(&e.status).clone();
                    let holders: BTreeMap<String, Option<String>> = status
                        .map(|s| s.keys.into_iter().map(|k| (k.key, k.holder)).collect())
                        .unwrap_or_default();
                    for a in &mut assignments {
                        let key = leadership::key(a.ip);
                        a.answering = leading.contains(&key) && !a.interfaces.is_empty();
                        a.leader = holders.get(&key).cloned().flatten();
                    }
                    if let Some(m) = members.as_mut() {
                        let owners = leadership::owners(&m.borrow_and_update());
                        responder.set_peers(
                            owners
                                .into_iter()
                                .filter(|(_, node)| *node != state.node)
                                .map(|(mac, _)| mac)
                                .collect(),
                        );
                    }
                }
            }
            responder.set_owned(&owned(&assignments));
            let previous = std::mem::replace(&mut *state.assignments(), assignments.clone());
            if answering(&previous) != answering(&assignments) {
                changed.send_modify(|n| *n += 1);
            }
            log_changes(&previous, &assignments);
        }
        dirty = false;
        tokio::select! {
            r = plan.changed() => if r.is_err() { return } else { dirty = true },
            r = links.changed() => if r.is_err() { return } else { dirty = true },
            r = changed_opt(&mut acting) => if r.is_err() { return } else { dirty = true },
            r = changed_members(&mut members) => if r.is_err() { return } else { dirty = true },
            event = recv_opt(&mut events) => match event {
                None => return,
                Some(ElectionEvent::Changed { key, acting, reason }) => {
                    if let Some(ip) = leadership::ip(&key) {
                        if acting {
                            info!(protocol = "layer2", %ip, reason = reason.as_str(), "elected to answer for the address");
                        } else {
                            info!(protocol = "layer2", %ip, reason = reason.as_str(), "no longer leading the address");
                        }
                    }
                    dirty = true;
                }
                Some(ElectionEvent::Defend(key)) => {
                    if let Some(ip) = leadership::ip(&key) {
                        warn!(protocol = "layer2", %ip, "another herald node announced an address the API says this node holds: announcing it again");
                        responder.reannounce(ip);
                    }
                }
            },
            claim = claims.recv() => match claim {
                Ok(claim) => {
                    if on_claim(&state, members.as_ref(), &claim) {
                        changed.send_modify(|n| *n += 1);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    warn!(protocol = "layer2", lost, "claims seen on the wire came faster than they could be read; some were not looked at");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                log_socket_errors(responder, &mut socket_errors);
                let expired = {
                    let mut conflicts = lock(&state.conflicts);
                    let before = conflicts.len();
                    conflicts.retain(|_, (_, seen)| seen.elapsed() < CONFLICT_MEMORY);
                    conflicts.len() != before
                };
                if expired {
                    changed.send_modify(|n| *n += 1);
                }
                if let Some(e) = election {
                    let status = e.elector.status().await;
                    let before = lock(&e.status).as_ref().map(holders_of);
                    let after = status.as_ref().map(holders_of);
                    *lock(&e.status) = status;
                    dirty = before != after;
                }
            }
        }
    }
}

/// Another station claimed an address this node answers for. Another herald node's claim is
/// the election's to judge; anyone else's is a conflict (the responder has already announced
/// the address again). True when a new conflict appeared.
fn on_claim(state: &State, members: Option<&watch::Receiver<Members>>, claim: &l2::Claim) -> bool {
    let claimant = members.and_then(|m| leadership::owners(&m.borrow()).remove(&claim.mac));
    match (claimant, &state.election) {
        (Some(node), _) if node == state.node => false,
        (Some(node), Some(e)) => {
            info!(protocol = "layer2", ip = %claim.address, claimant = %node, interface = %claim.interface, "another herald node announced an address this node answers for");
            e.elector.claim_seen(&leadership::key(claim.address), &node);
            false
        }
        _ => {
            let mut conflicts = lock(&state.conflicts);
            let new = conflicts
                .get(&claim.address)
                .is_none_or(|(mac, _)| *mac != claim.mac);
            conflicts.insert(claim.address, (claim.mac, Instant::now()));
            new
        }
    }
}

fn holders_of(s: &election::Status) -> Vec<(String, Option<String>)> {
    s.keys
        .iter()
        .map(|k| (k.key.clone(), k.holder.clone()))
        .collect()
}

fn answering(assignments: &[Assignment]) -> BTreeSet<(IpAddr, &ServiceRef)> {
    assignments
        .iter()
        .filter(|a| a.answering)
        .map(|a| (a.ip, &a.service))
        .collect()
}

async fn changed_opt<T>(
    rx: &mut Option<watch::Receiver<T>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

async fn changed_members(
    rx: &mut Option<watch::Receiver<Members>>,
) -> Result<(), watch::error::RecvError> {
    changed_opt(rx).await
}

async fn recv_opt<T, R>(rx: &mut Option<R>) -> Option<T>
where
    R: std::ops::DerefMut<Target = mpsc::UnboundedReceiver<T>>,
{
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

const SOCKET_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn log_socket_errors(responder: &Responder, seen: &mut BTreeMap<String, Option<String>>) {
    for (name, s) in responder.stats().interfaces {
        if seen.get(&name) == Some(&s.error) {
            continue;
        }
        match &s.error {
            Some(e) => error!(
                protocol = "layer2",
                interface = %name,
                error = %e,
                hint = e
                    .contains("not permitted")
                    .then_some("herald needs CAP_NET_RAW to listen for Layer 2 (CAP_NET_ADMIN only raises its receive buffer)"),
                "cannot listen on the interface, so nothing is answered there"
            ),
            None if seen.get(&name).is_some_and(Option::is_some) => {
                info!(protocol = "layer2", interface = %name, "listening on the interface again")
            }
            None => {}
        }
        seen.insert(name, s.error);
    }
}

/// One line per address whose answering changed, so the log tells when this node started or
/// stopped answering for an address, and why not when it cannot.
fn log_changes(before: &[Assignment], after: &[Assignment]) {
    let old: BTreeMap<IpAddr, &Assignment> = before.iter().map(|a| (a.ip, a)).collect();
    let new: BTreeMap<IpAddr, &Assignment> = after.iter().map(|a| (a.ip, a)).collect();
    for (ip, a) in &new {
        let was = old.get(ip);
        let same = was.is_some_and(|w| {
            (&w.interfaces, &w.unmatched, &w.unusable, w.answering)
                == (&a.interfaces, &a.unmatched, &a.unusable, a.answering)
        });
        if same {
            continue;
        }
        match a.why_not() {
            Some(why) => warn!(
                protocol = "layer2",
                %ip,
                service = %a.service,
                reason = %why,
                "not answering ARP/NDP: this node is not eligible for the address"
            ),
            None if a.answering => {
                let interfaces = a.interfaces.iter().cloned().collect::<Vec<_>>().join(",");
                info!(protocol = "layer2", %ip, service = %a.service, interfaces, "answering ARP/NDP");
            }
            None if was.is_some_and(|w| w.answering) => {
                info!(protocol = "layer2", %ip, service = %a.service, leader = a.leader.as_deref(), "stopped answering ARP/NDP: another node leads the address");
            }
            None => {}
        }
    }
    for (ip, a) in &old {
        if !new.contains_key(ip) && a.answering {
            info!(protocol = "layer2", %ip, service = %a.service, "stopped answering ARP/NDP");
        }
    }
}

#[derive(Debug)]
struct Layer2Collector(Arc<State>);

impl Collector for Layer2Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(responder) = &self.0.responder else {
            return Ok(());
        };
        let stats = responder.stats();
        let by_ip = |f: fn(&l2::AddressStats) -> u64| -> Family {
            stats
                .addresses
                .iter()
                .map(|(ip, s)| (vec![("ip", ip.to_string())], f(s)))
                .collect()
        };
        // MetalLB's names carry no `_total`: typed `unknown`, they keep their exact names.
        gauge_family(
            &mut encoder,
            "metallb_layer2_requests_received",
            "ARP requests and neighbor solicitations received for owned addresses",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.requests_received),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_layer2_responses_sent",
            "ARP replies and neighbor advertisements sent in answer",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.responses_sent),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_layer2_gratuitous_sent",
            "Gratuitous ARP and unsolicited neighbor advertisements sent",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.gratuitous_sent),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_frames_read",
            "Frames that passed the socket filter, by interface",
            stats
                .interfaces
                .iter()
                .map(|(name, s)| (vec![("interface", name.clone())], s.frames_read))
                .collect(),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_dropped",
            "Frames read that got no answer, by interface and reason",
            stats
                .interfaces
                .iter()
                .flat_map(|(name, s)| {
                    l2::responder::drop_labels().map(move |reason| {
                        let n = s.dropped.get(reason).copied().unwrap_or(0);
                        let labels = vec![("interface", name.clone()), ("reason", reason.into())];
                        (labels, n)
                    })
                })
                .collect(),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_address_conflicts",
            "Claims of an owned address on the wire by a MAC that is not a herald node, by address",
            by_ip(|s| s.conflicts),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_claims",
            "Claims of an owned address on the wire by another MAC (herald nodes' included), by address",
            by_ip(|s| s.claims),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_claims_lost",
            "Claims a slow receiver never saw",
            vec![(vec![], stats.claims_lost)],
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_rate_limited",
            "Actions held back by a rate limit, by interface and what",
            stats
                .interfaces
                .iter()
                .flat_map(|(name, s)| {
                    l2::responder::rate_limited_labels().map(move |what| {
                        let n = s.rate_limited.get(what).copied().unwrap_or(0);
                        (vec![("interface", name.clone()), ("what", what.into())], n)
                    })
                })
                .collect(),
        )?;
        let health = responder.health();
        counter_family(
            &mut encoder,
            "herald_l2_link_resyncs",
            "Full reads of links and addresses after lost netlink events or an interrupted dump",
            vec![(vec![], health.link_monitor.resyncs)],
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_send_errors",
            "Replies and announcements that could not be sent, by interface",
            stats
                .interfaces
                .iter()
                .map(|(name, s)| (vec![("interface", name.clone())], s.send_errors))
                .collect(),
        )?;
        let Some(election) = &self.0.election else {
            return Ok(());
        };
        let elector = election.elector.stats();
        gauge_family(
            &mut encoder,
            "herald_leases_held",
            "Layer 2 addresses whose Lease this node holds and acts on",
            prometheus_client::metrics::MetricType::Gauge,
            vec![(vec![], elector.acting() as u64)],
        )?;
        let transitions = elector.transitions();
        counter_family(
            &mut encoder,
            "herald_lease_transitions",
            "Times this node started (new, handoff, failover, adopted) or stopped (released, lost, yielded, shutdown) acting on an address's Lease, by reason",
            election::Transition::ALL
                .iter()
                .map(|t| {
                    let n = transitions.get(t).copied().unwrap_or(0);
                    (vec![("reason", t.as_str().to_owned())], n)
                })
                .collect(),
        )?;
        let requests = elector.requests();
        counter_family(
            &mut encoder,
            "herald_election_api_requests",
            "Requests the election made to the API server, by verb",
            ["create", "update", "delete", "get", "list", "watch"]
                .iter()
                .map(|v| {
                    (
                        vec![("verb", (*v).to_owned())],
                        requests.get(v).copied().unwrap_or(0),
                    )
                })
                .collect(),
        )?;
        // An address this node leads that no listening interface answers: clients get nothing.
        let leading = election.elector.acting().borrow().clone();
        let assignments = self.0.assignments().clone();
        let not_answering = leading
            .iter()
            .filter_map(|key| leadership::ip(key))
            .filter(|ip| {
                !assignments.iter().any(|a| {
                    a.ip == *ip
                        && a.answering
                        && a.interfaces
                            .iter()
                            .any(|i| stats.interfaces.get(i).is_some_and(|s| s.listening))
                })
            })
            .count();
        gauge_family(
            &mut encoder,
            "herald_l2_leader_not_answering",
            "Addresses this node leads but answers on no listening interface",
            prometheus_client::metrics::MetricType::Gauge,
            vec![(vec![], not_answering as u64)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2::EthernetAddress;

    fn link(index: u32, name: &str, addresses: &[&str]) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(EthernetAddress([2, 0, 0, 0, 0, index as u8])),
            hardware_type: 1,
            flags: 0x1 | 0x40,
            master: None,
            kind: None,
            up_generation: 0,
            addresses: addresses
                .iter()
                .map(|a| a.parse().expect("a network"))
                .collect(),
        }
    }

    fn table(links: &[(&str, &[&str])]) -> LinkTable {
        LinkTable {
            links: links
                .iter()
                .enumerate()
                .map(|(i, (n, a))| (i as u32 + 1, link(i as u32 + 1, n, a)))
                .collect(),
        }
    }

    fn announcement(ip: &str, interfaces: Interfaces) -> L2Announcement {
        L2Announcement {
            ip: ip.parse().expect("ip"),
            service: ServiceRef {
                namespace: "default".into(),
                name: "web".into(),
            },
            pool: "pool".into(),
            advertisements: BTreeSet::new(),
            interfaces,
            preference: 0,
        }
    }

    fn names(a: &Assignment) -> Vec<&str> {
        a.interfaces.iter().map(String::as_str).collect()
    }

    #[test]
    fn any_means_every_default_candidate_and_names_narrow_it() {
        let links = table(&[
            ("eth0", &["192.0.2.5/24", "2001:db8::5/64"]),
            ("eth1", &[]),
            ("veth12", &["192.0.2.6/24"]),
            ("docker0", &["192.0.2.7/24"]),
        ]);
        let only = Interfaces::Only(["eth1".to_owned(), "bond9".to_owned()].into());
        let a = assign(
            &[
                announcement("192.0.2.10", Interfaces::Any),
                announcement("2001:db8::10", only),
            ],
            &links,
        );
        assert_eq!(
            names(&a[0]),
            ["eth0"],
            "the interface on the address's subnet"
        );
        assert_eq!(
            names(&a[1]),
            ["eth1"],
            "named interfaces answer wherever they are"
        );
        assert_eq!(a[1].unmatched, BTreeSet::from(["bond9".to_owned()]));
    }

    #[test]
    fn only_interfaces_on_the_subnet_or_unnumbered_ones_answer_by_default() {
        let links = table(&[
            ("mgmt0", &["172.16.0.5/24", "fe80::1/64"]),
            ("lan0", &["fe80::2/64"]),
        ]);
        // No interface on 192.0.2.0/24: the unnumbered LAN answers, the management network
        // (numbered in another subnet) does not.
        let a = assign(&[announcement("192.0.2.10", Interfaces::Any)], &links);
        assert_eq!(names(&a[0]), ["lan0"]);
        // IPv6 with only link-local addresses anywhere: both are unnumbered for IPv6.
        let a = assign(&[announcement("2001:db8::10", Interfaces::Any)], &links);
        assert_eq!(names(&a[0]), ["lan0", "mgmt0"]);
        // A node whose only link is the management network does not campaign, and says why.
        let mgmt_only = table(&[("mgmt0", &["172.16.0.5/24"])]);
        let a = assign(&[announcement("192.0.2.10", Interfaces::Any)], &mgmt_only);
        assert!(a[0].interfaces.is_empty());
        assert!(
            a[0].why_not().is_some_and(|w| w.contains("subnet")),
            "{:?}",
            a[0].why_not()
        );
    }

    #[test]
    fn a_down_interface_does_not_answer() {
        let mut links = table(&[("eth0", &["192.0.2.5/24"])]);
        links.links.get_mut(&1).expect("eth0").flags = 0x1;
        let a = assign(&[announcement("192.0.2.10", Interfaces::Any)], &links);
        assert!(a[0].interfaces.is_empty());
        assert!(
            a[0].why_not().is_some_and(|w| w.contains("down")),
            "{:?}",
            a[0].why_not()
        );
    }

    #[test]
    fn named_interfaces_missing_here_make_the_node_ineligible() {
        let links = table(&[("eth0", &[])]);
        let only = Interfaces::Only(["ens5".to_owned()].into());
        let a = assign(&[announcement("192.0.2.10", only)], &links);
        assert!(a[0].interfaces.is_empty());
        assert_eq!(a[0].unmatched, BTreeSet::from(["ens5".to_owned()]));
        assert!(a[0].why_not().is_some_and(|w| w.contains("ens5")));
    }
}
