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

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::answer::{
    FrameBuf, NoAnswer, answer, gratuitous_arp_reply, gratuitous_arp_request,
    unsolicited_neighbor_advertisement,
};
use crate::frame::Frame;
use crate::link::{Link, LinkError, LinkMonitor, LinkTable};
use crate::socket::{BATCH, PacketSocket, RecvBatch};
use crate::validate::DropReason;
use crate::wire::{EthernetAddress, solicited_node_multicast_ethernet_addr};

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

/// Every `reason` label, for pre-registering metrics.
pub fn drop_labels() -> impl Iterator<Item = &'static str> {
    DropReason::ALL
        .iter()
        .map(|r| r.as_str())
        .chain([NOT_OWNED, OWN_FRAME, NOT_A_QUESTION])
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
    /// Whether a socket is open on the interface now.
    pub listening: bool,
    /// The last error opening or reading the socket, if the last attempt failed.
    pub error: Option<String>,
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
}

/// A snapshot of every counter. Counters only grow; an address or interface once seen stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub interfaces: BTreeMap<String, InterfaceStats>,
    pub addresses: BTreeMap<IpAddr, AddressStats>,
}

#[derive(Debug, Default)]
struct InterfaceCounters {
    frames_read: AtomicU64,
    send_errors: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    status: Mutex<(bool, Option<String>)>,
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

    fn set_status(&self, listening: bool, error: Option<String>) {
        *lock(&self.status) = (listening, error);
    }

    fn snapshot(&self) -> InterfaceStats {
        let (listening, error) = lock(&self.status).clone();
        InterfaceStats {
            frames_read: self.frames_read.load(Ordering::Relaxed),
            dropped: lock(&self.dropped).clone(),
            send_errors: self.send_errors.load(Ordering::Relaxed),
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

#[derive(Debug, Default)]
struct Shared {
    addresses: Mutex<BTreeMap<IpAddr, AddressStats>>,
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
                    let task = self.runtime.spawn(run_interface(InterfaceTask {
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
        }
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

struct InterfaceTask {
    name: String,
    config: Config,
    owned: watch::Receiver<Owned>,
    links: watch::Receiver<Arc<LinkTable>>,
    counters: Arc<InterfaceCounters>,
    shared: Arc<Shared>,
}

/// Waits for the link, listens on it until it goes away or is replaced, and starts over.
async fn run_interface(mut task: InterfaceTask) {
    loop {
        let link = loop {
            let found = task.links.borrow_and_update().by_name(&task.name).cloned();
            match found {
                Some(link) if link.mac.is_some() => break link,
                _ => {
                    task.counters.set_status(false, None);
                    if task.links.changed().await.is_err() {
                        return;
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
                    return;
                }
                continue;
            }
        };
        // Room for a burst of questions (e.g. every client re-resolving after a failover).
        let _ = socket.set_receive_buffer(RECEIVE_BUFFER);
        task.counters.set_status(true, None);
        match serve(&mut task, &socket, link).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::LinkChanged) => {}
            Err(err) => {
                task.counters.set_status(false, Some(err.to_string()));
                drop(socket);
                // Not in a tight loop: start over when the link changes.
                if task.links.changed().await.is_err() {
                    return;
                }
            }
        }
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
    link: Link,
    mac: EthernetAddress,
    held: BTreeSet<IpAddr>,
    schedule: AnnounceSchedule,
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
            }
            self.schedule.remove(gone);
        }
        let new: Vec<IpAddr> = owned.difference(&self.held).copied().collect();
        for address in new {
            if let IpAddr::V6(v6) = address
                && let Err(err) = self
                    .socket
                    .join_multicast(solicited_node_multicast_ethernet_addr(v6))
            {
                let error = format!("joining the solicited-node group of {v6}: {err}");
                task.counters.set_status(true, Some(error));
            }
            self.burst(address, &task.config);
        }
        self.held = owned.clone();
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

    /// Sends the announcements that are due and schedules the next ones.
    async fn announce_due(&mut self, task: &InterfaceTask) {
        for address in self.schedule.take_due(&task.config, Instant::now()) {
            // A link that is down drops what is sent; link-up starts a new burst.
            if self.link.is_operational() {
                announce(task, self.socket, self.mac, address).await;
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
    let mut session = Session {
        socket,
        mac: link.mac.unwrap_or(EthernetAddress::UNSPECIFIED),
        link,
        held: BTreeSet::new(),
        schedule: AnnounceSchedule::default(),
    };
    let mut batch = RecvBatch::new();
    let mut scratch = Scratch::default();
    // Everything owned is new to this socket.
    task.owned.mark_changed();
    // Link events stop only if the link monitor does; serve on with the last known state.
    let mut links_open = true;

    loop {
        let next_due = session.schedule.next_due();
        tokio::select! {
            biased;
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
                    respond(task, socket, &batch, session.mac, &mut scratch).await;
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
    scratch: &mut Scratch,
) {
    let Scratch {
        frames,
        addresses,
        dropped,
    } = scratch;
    frames.clear();
    addresses.clear();
    dropped.clear();
    let mut read = 0;
    for bytes in batch.frames() {
        read += 1;
        let result = match Frame::parse(bytes) {
            Ok(frame) => {
                // The latest desired state, even if this task has not processed the change yet.
                let owned = task.owned.borrow();
                answer(&frame, mac, |ip| owned.contains(&ip))
            }
            Err(err) => Err(NoAnswer::Dropped(err.into())),
        };
        match result {
            Ok(reply) => {
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
    task.counters.frames_read.fetch_add(read, Ordering::Relaxed);
    task.counters.drop_frames(dropped);
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
