//! The responder: one tokio task per interface that reads ARP and neighbor discovery frames from
//! a [`PacketSocket`], answers those about owned addresses with [`answer`], and announces
//! addresses it gains (and again on link-up, and periodically while held).
//!
//! The owned addresses are desired state, set as a whole with [`Responder::set_owned`]
//! (level-based). An address removed is not answered for from the moment `set_owned` returns;
//! an address added gets its solicited-node group joined and a burst of announcements.
//!
//! Counters are plain atomics and maps, read as a [`Stats`] snapshot; turning them into metrics
//! is the binary's business.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::answer::{
    AnswerKind, FrameBuf, NoAnswer, answer, gratuitous_arp_reply, gratuitous_arp_request,
    unsolicited_neighbor_advertisement,
};
use crate::bpf::{FilterKind, SOCKET_FILTER, owned_target_filter};
use crate::claim::{Claim, ConflictDefense, claimed};
use crate::frame::Frame;
use crate::link::{
    AbortOnDrop, Backoff, Link, LinkError, LinkMonitor, LinkTable, MonitorHealth, TaskHealth,
};
use crate::mld::GroupMemberships;
use crate::ratelimit::{Limiter, RateLimits};
use crate::socket::{BATCH, PacketSocket, RecvBatch};
use crate::validate::DropReason;
use crate::wire::{
    EthernetAddress, solicited_node_multicast, solicited_node_multicast_ethernet_addr,
};

/// How and when addresses are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Rounds of announcements when an address is gained or its link comes up. Each round
    /// is a gratuitous ARP request and reply (IPv4) or an unsolicited NA (IPv6).
    pub announce_count: u32,
    /// Time between rounds. Linux ignores ARP updates for an entry within `locktime` (1 s by
    /// default) of its last one, so rounds closer than that could all be ignored but the first.
    pub announce_interval: Duration,
    /// One round every this long while an address is held, so switches' forwarding tables and
    /// clients' caches stay current; `None` turns it off.
    pub refresh_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            announce_count: 3,
            announce_interval: Duration::from_millis(1100),
            refresh_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// The `reason` label of a frame read that got no answer: a [`DropReason`], or one of these.
pub const NOT_OWNED: &str = "not_owned";
pub const OWN_FRAME: &str = "own_frame";
pub const NOT_A_QUESTION: &str = "not_a_question";
/// Addressed to another station's MAC (PACKET_OTHERHOST: a promiscuous interface).
pub const OTHER_HOST: &str = "other_host";

/// Every `reason` label, for pre-registering metrics.
pub fn drop_labels() -> impl Iterator<Item = &'static str> {
    DropReason::ALL.iter().map(|r| r.as_str()).chain([
        NOT_OWNED,
        OWN_FRAME,
        NOT_A_QUESTION,
        OTHER_HOST,
    ])
}

/// The `reason` label for a frame that got no answer.
pub fn drop_label(no_answer: &NoAnswer) -> &'static str {
    match no_answer {
        NoAnswer::OwnFrame => OWN_FRAME,
        NoAnswer::NotAQuestion => NOT_A_QUESTION,
        NoAnswer::NotOwned(_) => NOT_OWNED,
        NoAnswer::Dropped(reason) => reason.as_str(),
    }
}

/// Counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Frames that passed the socket filter (`herald_l2_frames_read_total`).
    pub frames_read: u64,
    /// Frames read that got no answer, by reason (`herald_l2_dropped_total`).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Sends that failed (replies and announcements).
    pub send_errors: u64,
    /// Actions held back by a rate limit, by what they were (`herald_l2_rate_limited_total`;
    /// see [`crate::ratelimit::RateLimits`]).
    pub rate_limited: BTreeMap<&'static str, u64>,
    /// Whether a socket is open on the interface now.
    pub listening: bool,
    /// The last error opening or reading the socket, if the last attempt failed.
    pub error: Option<String>,
    /// The interface's task: up, or ended and waiting to be restarted.
    pub task: TaskHealth,
    /// The socket filter attached for the owned set: the owned-target program, or the family
    /// filter past the kernel's size limit (see [`crate::bpf::owned_target_filter`]).
    pub filter: Option<FilterKind>,
}

/// Counters of one address, over all interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressStats {
    /// ARP requests and NS about this address that are answered
    /// (`metallb_layer2_requests_received`).
    pub requests_received: u64,
    /// Replies sent (`metallb_layer2_responses_sent`).
    pub responses_sent: u64,
    /// Gratuitous ARP and unsolicited NA frames sent (`metallb_layer2_gratuitous_sent`).
    pub gratuitous_sent: u64,
    /// Claims of this address on the wire by another MAC (see [`Claim`]), herald nodes' and
    /// others' alike.
    pub claims: u64,
    /// Claims by a MAC that is not a herald node ([`Responder::set_peers`]): address
    /// conflicts, each answered by a rate-limited re-announcement
    /// (`herald_l2_address_conflicts_total`).
    pub conflicts: u64,
}

/// A snapshot of every counter. Counters only grow; an address or interface once seen stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub interfaces: BTreeMap<String, InterfaceStats>,
    pub addresses: BTreeMap<IpAddr, AddressStats>,
    /// Claims that a slow receiver of [`Responder::claims`] never saw: the channel was full
    /// and the oldest was dropped (`herald_l2_claims_lost_total`).
    pub claims_lost: u64,
}

#[derive(Debug, Default)]
struct InterfaceCounters {
    frames_read: AtomicU64,
    send_errors: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    status: Mutex<(bool, Option<String>)>,
    task: Mutex<TaskHealth>,
    /// A test's request that the task fail.
    #[cfg(feature = "fault-injection")]
    fault: tokio::sync::Notify,
    filter: Mutex<Option<FilterKind>>,
}

impl InterfaceCounters {
    fn drop_frames(&self, counts: &[(&'static str, u64)]) {
        if counts.is_empty() {
            return;
        }
        let mut dropped = lock(&self.dropped);
        for &(label, count) in counts {
            *dropped.entry(label).or_default() += count;
        }
    }

    fn limit(&self, what: &'static str) {
        self.limit_n(what, 1);
    }

    fn limit_n(&self, what: &'static str, n: u64) {
        *lock(&self.rate_limited).entry(what).or_default() += n;
    }

    fn task_down(&self, why: String) {
        let mut task = lock(&self.task);
        task.up = false;
        task.last_error = Some(why);
    }

    fn task_restarted(&self) {
        let mut task = lock(&self.task);
        task.up = true;
        task.restarts += 1;
    }

    fn set_status(&self, listening: bool, error: Option<String>) {
        *lock(&self.status) = (listening, error);
    }

    fn snapshot(&self) -> InterfaceStats {
        let (listening, error) = lock(&self.status).clone();
        InterfaceStats {
            frames_read: self.frames_read.load(Ordering::Relaxed),
            dropped: lock(&self.dropped).clone(),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            rate_limited: lock(&self.rate_limited).clone(),
            task: lock(&self.task).clone(),
            filter: *lock(&self.filter),
            listening,
            error,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

type Owned = Arc<BTreeSet<IpAddr>>;

/// Receive buffer of each packet socket; the filter keeps it to ARP and NS/NA frames.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Claims held for receivers of [`Responder::claims`] before the oldest is dropped.
pub const CLAIM_CHANNEL_CAPACITY: usize = 1024;

#[derive(Debug)]
struct Shared {
    addresses: Mutex<BTreeMap<IpAddr, AddressStats>>,
    claims: broadcast::Sender<Claim>,
    claims_lost: AtomicU64,
    /// MACs of the other herald nodes: their claims are reported, not conflicts.
    peers: Mutex<Arc<BTreeSet<EthernetAddress>>>,
    /// Read by each interface task when it starts serving a socket.
    rate_limits: Mutex<RateLimits>,
    /// Addresses to re-announce at once ([`Responder::reannounce`]).
    reannounce: broadcast::Sender<IpAddr>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            addresses: Mutex::default(),
            claims: broadcast::channel(CLAIM_CHANNEL_CAPACITY).0,
            claims_lost: AtomicU64::new(0),
            peers: Mutex::default(),
            rate_limits: Mutex::default(),
            reannounce: broadcast::channel(CLAIM_CHANNEL_CAPACITY).0,
        }
    }
}

impl Shared {
    fn count(&self, address: IpAddr, f: impl FnOnce(&mut AddressStats)) {
        f(lock(&self.addresses).entry(address).or_default());
    }

    /// `f` once for each address in `addresses` (repeats included), under one lock.
    fn count_each(&self, addresses: impl Iterator<Item = IpAddr>, f: impl Fn(&mut AddressStats)) {
        let mut stats = lock(&self.addresses);
        for address in addresses {
            f(stats.entry(address).or_default());
        }
    }
}

/// An interface ever named in `set_owned`: its counters, and while it is named, its task.
#[derive(Debug)]
struct Interface {
    counters: Arc<InterfaceCounters>,
    active: Option<Active>,
}

#[derive(Debug)]
struct Active {
    owned: watch::Sender<Owned>,
    task: JoinHandle<()>,
}

impl Active {
    fn stop(self) {
        // Nothing is answered from here on, even before the task is gone.
        self.owned.send_replace(Arc::default());
        self.task.abort();
    }
}

/// Answers and announces owned addresses on this host's interfaces; see the module
/// documentation. Tasks stop when it is dropped.
#[derive(Debug)]
pub struct Responder {
    config: Config,
    runtime: tokio::runtime::Handle,
    links: LinkMonitor,
    shared: Arc<Shared>,
    interfaces: Mutex<BTreeMap<String, Interface>>,
}

impl Responder {
    /// Starts following this namespace's links (the namespace of the calling thread). The
    /// interface tasks run on the runtime this is called in.
    pub async fn start(config: Config) -> Result<Responder, LinkError> {
        Ok(Responder {
            config,
            runtime: tokio::runtime::Handle::current(),
            links: LinkMonitor::start().await?,
            shared: Arc::new(Shared::default()),
            interfaces: Mutex::new(BTreeMap::new()),
        })
    }

    /// This namespace's links, kept current from rtnetlink events.
    pub fn links(&self) -> &LinkMonitor {
        &self.links
    }

    /// Makes `owned` (interface name → addresses to answer for on it) the whole desired
    /// state. An interface named here is listened on (even with no addresses, so its drops
    /// are counted) as soon as a link of that name exists; an interface left out stops being
    /// listened on. Callable from any thread.
    pub fn set_owned(&self, owned: &BTreeMap<String, BTreeSet<IpAddr>>) {
        let mut interfaces = lock(&self.interfaces);
        for (name, interface) in interfaces.iter_mut() {
            if !owned.contains_key(name)
                && let Some(active) = interface.active.take()
            {
                active.stop();
                interface.counters.set_status(false, None);
            }
        }
        for (name, addresses) in owned {
            let addresses: Owned = Arc::new(addresses.clone());
            let interface = interfaces.entry(name.clone()).or_insert_with(|| Interface {
                counters: Arc::new(InterfaceCounters::default()),
                active: None,
            });
            if interface.active.is_none() {
                // Running from now on (again, if it was let go of before).
                lock(&interface.counters.task).up = true;
            }
            match &interface.active {
                Some(active) => {
                    active.owned.send_if_modified(|current| {
                        let changed = *current != addresses;
                        *current = addresses;
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(addresses);
                    let task = self.runtime.spawn(supervise_interface(InterfaceTask {
                        name: name.clone(),
                        config: self.config,
                        owned: rx,
                        links: self.links.subscribe(),
                        counters: interface.counters.clone(),
                        shared: self.shared.clone(),
                    }));
                    interface.active = Some(Active { owned: tx, task });
                }
            }
        }
    }

    /// The addresses currently answered for, by interface.
    pub fn owned(&self) -> BTreeMap<String, BTreeSet<IpAddr>> {
        lock(&self.interfaces)
            .iter()
            .filter_map(|(name, i)| {
                let active = i.active.as_ref()?;
                Some((name.clone(), (**active.owned.borrow()).clone()))
            })
            .collect()
    }

    /// Every counter. Interfaces no longer listened on are kept, so counters never go back.
    pub fn stats(&self) -> Stats {
        let interfaces = lock(&self.interfaces)
            .iter()
            .map(|(name, i)| (name.clone(), i.counters.snapshot()))
            .collect();
        Stats {
            interfaces,
            addresses: lock(&self.shared.addresses).clone(),
            claims_lost: self.shared.claims_lost.load(Ordering::Relaxed),
        }
    }

    /// Every claim seen on the wire from now on: a gratuitous ARP, an ARP reply or a Neighbor
    /// Advertisement from another MAC for an address owned on the interface it arrived on
    /// (see [`crate::claim`]). Sending never waits for receivers: one that falls more than
    /// [`CLAIM_CHANNEL_CAPACITY`] behind loses the oldest (`RecvError::Lagged`), counted in
    /// [`Stats::claims_lost`].
    pub fn claims(&self) -> broadcast::Receiver<Claim> {
        self.shared.claims.subscribe()
    }

    /// Whether every task is running: the link monitor, and each interface's. A task that
    /// ended unexpectedly shows here (with why) until it has been restarted.
    pub fn health(&self) -> Health {
        let interfaces = lock(&self.interfaces)
            .iter()
            .filter(|(_, i)| i.active.is_some())
            .map(|(name, i)| (name.clone(), lock(&i.counters.task).clone()))
            .collect();
        Health {
            link_monitor: self.links.health(),
            interfaces,
        }
    }

    /// Makes the task of interface `name` panic, so tests can see it restarted; false when
    /// the responder has no task there. Only with the `fault-injection` feature, which the
    /// released binary never has.
    #[cfg(feature = "fault-injection")]
    pub fn inject_interface_failure(&self, name: &str) -> bool {
        match lock(&self.interfaces).get(name) {
            Some(interface) if interface.active.is_some() => {
                interface.counters.fault.notify_one();
                true
            }
            _ => false,
        }
    }

    /// The MACs of the other herald nodes. A claim from one of them is only reported (the
    /// election decides what it means); a claim from any other MAC is also an address
    /// conflict: counted, logged, and answered by a re-announcement of the address, the
    /// first at once and then at most one per address per interface per second. With no
    /// peers set (file mode), every claim is a conflict.
    pub fn set_peers(&self, peers: BTreeSet<EthernetAddress>) {
        *lock(&self.shared.peers) = Arc::new(peers);
    }

    /// Re-announces `address` on every interface that answers for it, as a conflict would be
    /// answered (at once, then at most once per second): for a claim by a peer that the owner
    /// of the decision found to be stale.
    pub fn reannounce(&self, address: IpAddr) {
        let _ = self.shared.reannounce.send(address);
    }

    /// Replaces the [`RateLimits`] (the defaults are documented there); sockets opened from
    /// then on use them.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        *lock(&self.shared.rate_limits) = limits;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for interface in lock(&self.interfaces).values_mut() {
            if let Some(active) = interface.active.take() {
                active.stop();
            }
        }
    }
}

#[derive(Clone)]
struct InterfaceTask {
    name: String,
    config: Config,
    owned: watch::Receiver<Owned>,
    links: watch::Receiver<Arc<LinkTable>>,
    counters: Arc<InterfaceCounters>,
    shared: Arc<Shared>,
}

/// Runs [`run_interface`] and, should it end while the interface is still wanted (a socket
/// that failed, or a bug), starts it again after a backoff; logged, and shown in the
/// interface's [`TaskHealth`] until it runs again.
async fn supervise_interface(task: InterfaceTask) {
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let mut run = AbortOnDrop(tokio::spawn(run_interface(task.clone())));
        let why = match run.await_end().await {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(err) => format!("the task failed: {err}"),
        };
        if task.owned.has_changed().is_err() {
            // Let go of meanwhile: nothing to restart.
            return;
        }
        let wait = backoff.next(started.elapsed());
        task.counters.set_status(false, Some(why.clone()));
        task.counters.task_down(why.clone());
        error!(
            interface = %task.name,
            error = %why,
            retry_in = ?wait,
            "layer 2: the interface's task ended; nothing is answered there until it restarts"
        );
        tokio::time::sleep(wait).await;
        task.counters.task_restarted();
        info!(interface = %task.name, "layer 2: the interface's task runs again");
    }
}

/// Panics once a test asks the interface's task to fail
/// ([`Responder::inject_interface_failure`]); never ends without the `fault-injection`
/// feature.
async fn injected_failure(counters: &InterfaceCounters, name: &str) {
    #[cfg(feature = "fault-injection")]
    {
        counters.fault.notified().await;
        panic!("layer 2: injected failure of the task of {name} (a test)");
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (counters, name);
        std::future::pending::<()>().await;
    }
}

/// Waits for the link, listens on it until it goes away or is replaced, and starts over.
/// Returns `Ok` when the responder lets go of the interface, `Err` when the socket fails.
async fn run_interface(mut task: InterfaceTask) -> Result<(), String> {
    loop {
        let link = loop {
            let found = task.links.borrow_and_update().by_name(&task.name).cloned();
            match found {
                Some(link) if link.mac.is_some() => break link,
                _ => {
                    task.counters.set_status(false, None);
                    if task.links.changed().await.is_err() {
                        return Err("the link monitor stopped".to_owned());
                    }
                }
            }
        };
        let socket = match PacketSocket::open(link.index) {
            Ok(socket) => socket,
            Err(err) => {
                task.counters.set_status(false, Some(err.to_string()));
                // Try again when the link changes (e.g. is recreated).
                if task.links.changed().await.is_err() {
                    return Err("the link monitor stopped".to_owned());
                }
                continue;
            }
        };
        // Room for a burst of questions (e.g. every client re-resolving after a failover).
        let _ = socket.set_receive_buffer(RECEIVE_BUFFER);
        task.counters.set_status(true, None);
        match serve(&mut task, &socket, link).await {
            Ok(Ended::Stopped) => return Ok(()),
            Ok(Ended::LinkChanged) => {}
            Err(err) => return Err(format!("reading the packet socket failed: {err}")),
        }
    }
}

/// The health of the responder's tasks ([`Responder::health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub link_monitor: MonitorHealth,
    /// The interfaces listened on (wanted), by name.
    pub interfaces: BTreeMap<String, TaskHealth>,
}

impl Health {
    /// A line for each task that is down, saying why; empty when all run.
    pub fn problems(&self) -> Vec<String> {
        let monitor = &self.link_monitor.task;
        let monitor = (!monitor.up).then(|| {
            format!(
                "the link monitor is down: {}",
                monitor.last_error.as_deref().unwrap_or("unknown")
            )
        });
        let interfaces = self
            .interfaces
            .iter()
            .filter(|(_, t)| !t.up)
            .map(|(name, t)| {
                format!(
                    "the layer 2 task of interface {name} is down: {}",
                    t.last_error.as_deref().unwrap_or("unknown")
                )
            });
        monitor.into_iter().chain(interfaces).collect()
    }
}

/// Why [`serve`] returned without an error.
enum Ended {
    /// The link is gone or was replaced: look it up again.
    LinkChanged,
    /// The responder let go of this interface.
    Stopped,
}

/// When each held address is next announced: a burst of [`Config::announce_count`] rounds
/// [`Config::announce_interval`] apart, then one round every [`Config::refresh_interval`].
/// Pure: the caller says what time it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceSchedule {
    /// Rounds left in the current burst (1 while refreshing) and when the next is due.
    entries: BTreeMap<IpAddr, (u32, Instant)>,
}

impl AnnounceSchedule {
    /// Starts (or restarts) a burst for `address`, its first round due at `now`.
    pub fn start_burst(&mut self, address: IpAddr, config: &Config, now: Instant) {
        if config.announce_count == 0 && config.refresh_interval.is_none() {
            self.entries.remove(&address);
            return;
        }
        let (rounds, due) = match config.refresh_interval {
            Some(refresh) if config.announce_count == 0 => (1, now + refresh),
            _ => (config.announce_count, now),
        };
        self.entries.insert(address, (rounds, due));
    }

    /// Stops announcing `address`.
    pub fn remove(&mut self, address: &IpAddr) {
        self.entries.remove(address);
    }

    /// When the next round is due, if any is scheduled.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().map(|&(_, due)| due).min()
    }

    /// The addresses whose round is due at `now`, each rescheduled for its next round.
    pub fn take_due(&mut self, config: &Config, now: Instant) -> Vec<IpAddr> {
        let due: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|&(_, &(_, due))| due <= now)
            .map(|(&ip, _)| ip)
            .collect();
        for address in &due {
            let Some((rounds, next)) = self.entries.get_mut(address) else {
                continue;
            };
            *rounds = rounds.saturating_sub(1);
            if *rounds > 0 {
                *next = now + config.announce_interval;
            } else if let Some(refresh) = config.refresh_interval {
                *rounds = 1;
                *next = now + refresh;
            } else {
                self.entries.remove(address);
            }
        }
        due
    }
}

/// What one socket has done: the addresses it joined groups for and announces, and when.
struct Session<'a> {
    socket: &'a PacketSocket,
    /// The program the socket holds, once one for the owned set is attached.
    filter: Option<FilterKind>,
    /// The solicited-node groups joined at the IPv6 layer for held IPv6 addresses.
    groups: GroupMemberships,
    link: Link,
    mac: EthernetAddress,
    held: BTreeSet<IpAddr>,
    schedule: AnnounceSchedule,
    guards: Guards,
}

/// What holds back what neighbours can make this interface do (see [`crate::ratelimit`]).
#[derive(Debug)]
struct Guards {
    /// Re-announcements answering conflicts, at most one per address per second.
    defense: ConflictDefense,
    /// Multicast answers, by the asker's MAC.
    multicast: Limiter<EthernetAddress>,
    /// Re-announcements, by the claimant's MAC.
    reannounce: Limiter<EthernetAddress>,
    /// Log lines, by address.
    log: Limiter<IpAddr>,
}

impl Guards {
    fn new(limits: &RateLimits, now: Instant) -> Guards {
        Guards {
            defense: ConflictDefense::default(),
            multicast: Limiter::new(limits.multicast_answers, now),
            reannounce: Limiter::new(limits.reannouncements, now),
            log: Limiter::new(limits.log_lines, now),
        }
    }
}

/// The `what` label of an action held back by a rate limit
/// (`herald_l2_rate_limited_total{what}`).
pub const LIMITED_MULTICAST_ANSWER: &str = "multicast_answer";
pub const LIMITED_REANNOUNCEMENT: &str = "reannouncement";
pub const LIMITED_LOG_LINE: &str = "log_line";

/// Every `what` label, for pre-registering metrics.
pub fn rate_limited_labels() -> impl Iterator<Item = &'static str> {
    [
        LIMITED_MULTICAST_ANSWER,
        LIMITED_REANNOUNCEMENT,
        LIMITED_LOG_LINE,
    ]
    .into_iter()
}

impl Session<'_> {
    fn burst(&mut self, address: IpAddr, config: &Config) {
        self.schedule.start_burst(address, config, Instant::now());
    }

    /// Joins and leaves solicited-node groups and starts bursts for what `owned` changed.
    fn sync_owned(&mut self, task: &InterfaceTask, owned: &BTreeSet<IpAddr>) {
        for gone in self.held.difference(owned) {
            if let IpAddr::V6(v6) = gone {
                let group = solicited_node_multicast_ethernet_addr(*v6);
                let _ = self.socket.leave_multicast(group);
                let _ = self.groups.leave(solicited_node_multicast(*v6));
            }
            self.schedule.remove(gone);
            self.guards.defense.remove(gone);
        }
        let new: Vec<IpAddr> = owned.difference(&self.held).copied().collect();
        for address in new {
            if let IpAddr::V6(v6) = address {
                if let Err(err) = self
                    .socket
                    .join_multicast(solicited_node_multicast_ethernet_addr(v6))
                {
                    let error = format!("programming the solicited-node MAC of {v6}: {err}");
                    task.counters.set_status(true, Some(error));
                }
                // So the kernel sends MLD reports, and snooping switches forward the group.
                if let Err(err) = self.groups.join(solicited_node_multicast(v6)) {
                    let error = format!(
                        "joining the solicited-node group of {v6} (no MLD report, so a snooping switch may not forward solicitations): {err}"
                    );
                    task.counters.set_status(true, Some(error));
                }
            }
            self.burst(address, &task.config);
        }
        self.held = owned.clone();
        self.swap_filter(task);
    }

    /// Makes the socket's filter pass only frames about the addresses now held, or every
    /// ARP and NS/NA frame when that program would be too large for the kernel.
    fn swap_filter(&mut self, task: &InterfaceTask) {
        let (program, kind) = match owned_target_filter(&self.held) {
            Ok(program) => (program, FilterKind::OwnedTargets),
            Err(too_large) => {
                if self.filter != Some(FilterKind::Family) {
                    warn!(
                        interface = %task.name,
                        error = %too_large,
                        "layer 2: too many addresses for the owned-target filter; every ARP and neighbor discovery frame reaches herald"
                    );
                }
                (SOCKET_FILTER.to_vec(), FilterKind::Family)
            }
        };
        match self.socket.set_filter(&program) {
            Ok(()) => {
                self.filter = Some(kind);
                *lock(&task.counters.filter) = Some(kind);
            }
            Err(err) => {
                let error = format!("attaching the socket filter: {err}");
                task.counters.set_status(true, Some(error));
            }
        }
    }

    /// Follows the link's state; false when the link is gone or replaced.
    fn sync_link(&mut self, task: &InterfaceTask, table: &LinkTable) -> bool {
        let Some(now) = table.by_index(self.link.index) else {
            return false;
        };
        if now.name != task.name {
            return false;
        }
        let came_up = now.up_generation != self.link.up_generation;
        let new_mac = now.mac.filter(|&m| m != self.mac);
        if let Some(mac) = new_mac {
            self.mac = mac;
        }
        if came_up || new_mac.is_some() {
            // The LAN may have forgotten us, or knows an old MAC.
            for address in self.held.clone() {
                self.burst(address, &task.config);
            }
        }
        self.link = now.clone();
        true
    }

    /// When the next announcement or re-announcement is due.
    fn next_due(&self) -> Option<Instant> {
        match (self.schedule.next_due(), self.guards.defense.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends the announcements and re-announcements that are due and schedules the next ones.
    async fn announce_due(&mut self, task: &InterfaceTask) {
        let now = Instant::now();
        let mut due = self.schedule.take_due(&task.config, now);
        for address in self.guards.defense.take_due(now) {
            // A round already due answers the conflict as well.
            if !due.contains(&address) && self.held.contains(&address) {
                due.push(address);
            }
        }
        for address in due {
            // A link that is down drops what is sent; link-up starts a new burst.
            if self.link.is_operational() {
                announce(task, self.socket, self.mac, address).await;
            }
        }
    }

    /// Reports claims seen on the wire, and answers conflicts (claims from MACs that are not
    /// herald nodes) with a re-announcement.
    fn on_claims(&mut self, task: &InterfaceTask, claims: &[(IpAddr, EthernetAddress)]) {
        if claims.is_empty() {
            return;
        }
        let peers = lock(&task.shared.peers).clone();
        let now = Instant::now();
        let claims_tx = &task.shared.claims;
        for &(address, mac) in claims {
            if claims_tx.receiver_count() > 0 {
                if claims_tx.len() >= CLAIM_CHANNEL_CAPACITY {
                    task.shared.claims_lost.fetch_add(1, Ordering::Relaxed);
                }
                let _ = claims_tx.send(Claim {
                    interface: task.name.clone(),
                    address,
                    mac,
                });
            }
            let conflict = !peers.contains(&mac);
            task.shared.count(address, |s| {
                s.claims += 1;
                s.conflicts += u64::from(conflict);
            });
            if !conflict {
                continue;
            }
            if !self.guards.defense.is_pending(&address) {
                if self.guards.reannounce.allow(&mac, now) {
                    self.guards.defense.on_conflict(address, now);
                } else {
                    task.counters.limit(LIMITED_REANNOUNCEMENT);
                }
            }
            if self.guards.log.allow(&address, now) {
                warn!(
                    interface = %task.name,
                    ip = %address,
                    mac = %mac,
                    "address conflict: a station that is not a herald node claims an address this node answers for; re-announcing it"
                );
            } else {
                task.counters.limit(LIMITED_LOG_LINE);
            }
        }
    }
}

/// Serves one socket until the link disappears or is replaced, the responder lets go of the
/// interface, or reading fails.
async fn serve(
    task: &mut InterfaceTask,
    socket: &PacketSocket,
    link: Link,
) -> std::io::Result<Ended> {
    let limits = *lock(&task.shared.rate_limits);
    let mut session = Session {
        socket,
        filter: None,
        groups: GroupMemberships::new(link.index),
        mac: link.mac.unwrap_or(EthernetAddress::UNSPECIFIED),
        link,
        held: BTreeSet::new(),
        schedule: AnnounceSchedule::default(),
        guards: Guards::new(&limits, Instant::now()),
    };
    let mut batch = RecvBatch::new();
    let mut scratch = Scratch::default();
    // Everything owned is new to this socket.
    task.owned.mark_changed();
    // Link events stop only if the link monitor does; serve on with the last known state.
    let mut links_open = true;
    let mut reannounce = task.shared.reannounce.subscribe();

    loop {
        let next_due = session.next_due();
        tokio::select! {
            biased;
            Ok(address) = reannounce.recv() => {
                if session.held.contains(&address) && !session.guards.defense.is_pending(&address) {
                    session.guards.defense.on_conflict(address, Instant::now());
                }
            }
            () = injected_failure(&task.counters, &task.name) => {}
            changed = task.owned.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Stopped);
                }
                let owned = task.owned.borrow_and_update().clone();
                session.sync_owned(task, &owned);
            }
            changed = task.links.changed(), if links_open => {
                if changed.is_err() {
                    links_open = false;
                    continue;
                }
                let table = task.links.borrow_and_update().clone();
                if !session.sync_link(task, &table) {
                    // Gone or renamed: start over with whatever has the name now.
                    return Ok(Ended::LinkChanged);
                }
            }
            _ = sleep_until(next_due), if next_due.is_some() => {
                session.announce_due(task).await;
            }
            read = socket.recv_batch(&mut batch) => {
                match read {
                    Ok(()) => {}
                    // The link went down; the kernel hooks the socket up again when it is up.
                    Err(err) if err.raw_os_error() == Some(libc::ENETDOWN) => continue,
                    Err(err) => return Err(err),
                }
                let mut taken = 0;
                loop {
                    respond(task, socket, &batch, session.mac, &mut session.guards, &mut scratch)
                        .await;
                    session.on_claims(task, &scratch.claims);
                    taken += batch.messages();
                    // A lone frame, the usual case, and it is back to waiting. More than one
                    // means a burst (every client re-resolving after a failover): read on while
                    // it lasts, up to TURN frames, before owned-set, link and timer events are
                    // looked at again. Each answer still reads the latest owned set.
                    if batch.messages() < 2 || taken >= TURN {
                        break;
                    }
                    match socket.try_recv_batch(&mut batch) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(err) if err.raw_os_error() == Some(libc::ENETDOWN) => break,
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
}

/// Frames answered in a row, in batches, before owned-set, link and timer events are looked at
/// again.
const TURN: usize = 4 * BATCH;

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Buffers [`respond`] reuses from one batch to the next, so answering does not allocate.
#[derive(Debug, Default)]
struct Scratch {
    /// Each reply's frame and the owned address it is about.
    frames: Vec<FrameBuf>,
    addresses: Vec<IpAddr>,
    dropped: Vec<(&'static str, u64)>,
    /// Claims seen in the batch: the owned address, and the claimant's MAC.
    claims: Vec<(IpAddr, EthernetAddress)>,
}

// `respond` keeps which replies went out as one bit each.
const _: () = assert!(BATCH <= 64);

/// Answers a batch of frames: the replies go out with one system call, and the counters are
/// updated once per batch rather than once per frame.
async fn respond(
    task: &InterfaceTask,
    socket: &PacketSocket,
    batch: &RecvBatch,
    mac: EthernetAddress,
    guards: &mut Guards,
    scratch: &mut Scratch,
) {
    let Scratch {
        frames,
        addresses,
        dropped,
        claims,
    } = scratch;
    frames.clear();
    addresses.clear();
    dropped.clear();
    claims.clear();
    let mut read = 0;
    let mut limited = 0;
    for bytes in batch.frames() {
        read += 1;
        let result = match Frame::parse(bytes) {
            Ok(frame) => {
                // The latest desired state, even if this task has not processed the change yet.
                let owned = task.owned.borrow();
                let owns = |ip| owned.contains(&ip);
                if let Frame::Arp { .. } | Frame::NeighborAdvertisement(_) = frame
                    && let Some(claim) = claimed(&frame, mac, owns)
                {
                    claims.push(claim);
                }
                answer(&frame, mac, owns).map(|reply| (reply, frame.ethernet().src_addr))
            }
            Err(err) => Err(NoAnswer::Dropped(err.into())),
        };
        match result {
            Ok((reply, asker)) => {
                if reply.kind == AnswerKind::DadDefense
                    && !guards.multicast.allow(&asker, Instant::now())
                {
                    limited += 1;
                    continue;
                }
                frames.push(reply.frame);
                addresses.push(reply.address);
            }
            Err(no_answer) => {
                let label = drop_label(&no_answer);
                match dropped.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, count)) => *count += 1,
                    None => dropped.push((label, 1)),
                }
            }
        }
    }
    let other_host = batch.other_host() as u64;
    if other_host > 0 {
        dropped.push((OTHER_HOST, other_host));
    }
    task.counters
        .frames_read
        .fetch_add(read + other_host, Ordering::Relaxed);
    task.counters.drop_frames(dropped);
    if limited > 0 {
        task.counters.limit_n(LIMITED_MULTICAST_ANSWER, limited);
    }
    if frames.is_empty() {
        return;
    }
    task.shared
        .count_each(addresses.iter().copied(), |s| s.requests_received += 1);
    let mut sent = 0u64;
    socket
        .send_batch(frames, |i, result| match result {
            Ok(()) => sent |= 1 << i,
            Err(_) => {
                task.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
    let sent_to = addresses
        .iter()
        .enumerate()
        .filter(|&(i, _)| sent & (1 << i) != 0)
        .map(|(_, &address)| address);
    task.shared.count_each(sent_to, |s| s.responses_sent += 1);
}

/// One round of announcements for `address`.
async fn announce(
    task: &InterfaceTask,
    socket: &PacketSocket,
    mac: EthernetAddress,
    address: IpAddr,
) {
    let frames = match address {
        IpAddr::V4(v4) => vec![
            gratuitous_arp_request(mac, v4),
            gratuitous_arp_reply(mac, v4),
        ],
        IpAddr::V6(v6) => vec![unsolicited_neighbor_advertisement(mac, v6)],
    };
    for frame in frames {
        match socket.send(&frame).await {
            Ok(()) => task.shared.count(address, |s| s.gratuitous_sent += 1),
            Err(_) => {
                task.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_then_refreshes() {
        let config = Config {
            announce_count: 3,
            announce_interval: 1100 * MS,
            refresh_interval: Some(60_000 * MS),
        };
        let t0 = Instant::now();
        let mut schedule = AnnounceSchedule::default();
        schedule.start_burst(ip("192.0.2.10"), &config, t0);
        assert_eq!(schedule.next_due(), Some(t0));
        let mut rounds = Vec::new();
        let mut now = t0;
        while rounds.len() < 5 {
            now = schedule.next_due().unwrap();
            assert_eq!(schedule.take_due(&config, now), vec![ip("192.0.2.10")]);
            rounds.push(now - t0);
        }
        assert_eq!(
            rounds,
            [0, 1100, 2200, 62_200, 122_200].map(|ms| ms * MS).to_vec()
        );
        // Nothing is due in between.
        assert!(schedule.take_due(&config, now + MS).is_empty());
    }

    #[test]
    fn without_refresh_the_address_leaves_after_its_burst() {
        let config = Config {
            announce_count: 2,
            announce_interval: 100 * MS,
            refresh_interval: None,
        };
        let t0 = Instant::now();
        let mut schedule = AnnounceSchedule::default();
        schedule.start_burst(ip("2001:db8::10"), &config, t0);
        assert_eq!(schedule.take_due(&config, t0).len(), 1);
        assert_eq!(schedule.take_due(&config, t0 + 100 * MS).len(), 1);
        assert_eq!(schedule.next_due(), None);
    }

    #[test]
    fn a_new_burst_restarts_and_removal_stops() {
        let config = Config::default();
        let t0 = Instant::now();
        let mut schedule = AnnounceSchedule::default();
        let (a, b) = (ip("192.0.2.10"), ip("2001:db8::10"));
        schedule.start_burst(a, &config, t0);
        schedule.start_burst(b, &config, t0 + 500 * MS);
        assert_eq!(schedule.take_due(&config, t0), vec![a]);
        // Link-up at t0 + 600 ms: both start over.
        let up = t0 + 600 * MS;
        schedule.start_burst(a, &config, up);
        schedule.start_burst(b, &config, up);
        assert_eq!(schedule.take_due(&config, up), vec![a, b]);
        schedule.remove(&a);
        let next = schedule.next_due().unwrap();
        assert_eq!(next, up + config.announce_interval);
        assert_eq!(schedule.take_due(&config, next), vec![b]);
    }

    #[test]
    fn zero_rounds_means_refresh_only() {
        let config = Config {
            announce_count: 0,
            announce_interval: 100 * MS,
            refresh_interval: Some(1000 * MS),
        };
        let t0 = Instant::now();
        let mut schedule = AnnounceSchedule::default();
        schedule.start_burst(ip("192.0.2.10"), &config, t0);
        assert_eq!(schedule.next_due(), Some(t0 + 1000 * MS));
    }
}
