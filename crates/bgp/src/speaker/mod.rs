//! The speaker: one tokio task per peer around a [`crate::fsm::Session`], fed with the
//! peers to talk to ([`Speaker::set_peers`]) and, level-based, the routes each should hold
//! ([`Speaker::set_routes`]). [`Speaker::status`] is a plain-data snapshot per peer, from
//! which the binary derives its metrics.
//!
//! Incoming connections are taken by [`Speaker::listen`] and handed to the peer whose
//! address they come from (RFC 4271 §6.8 settles collisions); without it, a `passive` peer
//! never comes up.
//!
//! Once a session is Established the peer gets its whole table, then End-of-RIB for each
//! negotiated family; after that only differences. Set a peer's routes before the peer
//! itself after a restart, or its first table (and End-of-RIB, which ends the peer's
//! graceful restart) goes out empty. Next hops come from the session: its local address,
//! and for the other family an address of the same interface (plus the link-local one for
//! IPv6 when the peer is on-link); an IPv4 route on a link without IPv4 needs RFC 8950
//! extended next hop. A route that cannot go is listed in [`PeerStatus::withheld`] with
//! the reason.
//!
//! Session state is pushed, not polled: every change of a peer's state is counted and kept
//! (the last few, with their reasons) in its [`PeerStatus`] and published as a
//! [`SessionEvent`] to [`Speaker::events`] subscribers, however briefly the state lasted.
//!
//! Graceful restart (RFC 4724, RFC 8538): with [`PeerConfig::graceful_restart`] the OPEN
//! carries the restart time, the F bit for every family (the node forwards while the
//! speaker restarts) and the N bit. How a session ends then decides whether the peer keeps
//! our routes, per [`crate::fsm::StopKind`]:
//!
//! | how herald stops | N bit negotiated (FRR) | GR without N (BIRD 2) | no GR |
//! |---|---|---|---|
//! | restart ([`StopKind::Restart`]: SIGTERM, node staying) | Cease / Administrative Reset: routes kept, stale until our End-of-RIB | connection closed without NOTIFICATION: kept likewise | Cease / Administrative Shutdown: withdrawn |
//! | for good ([`StopKind::Shutdown`]: node cordoned or deleted, or draining asked for) | after the drain wait (routes with GRACEFUL_SHUTDOWN), Cease / Hard Reset: withdrawn | Cease / Administrative Shutdown: withdrawn | withdrawn |
//! | killed (`kill -9`, crash) | the kernel closes the connection: kept until the restart time or our End-of-RIB | kept likewise | withdrawn |
//! | peer removed from the configuration | Hard Reset (Peer De-configured) | Peer De-configured | withdrawn |
//! | peer's configuration changed | Other Configuration Change: kept while it reconnects | closed silently: kept | withdrawn |
//! | its BFD session went down | Cease / BFD Down (RFC 9384): the router's policy decides | same | withdrawn |
//!
//! After a restart each peer's first OPEN carries the R bit, and the whole table then
//! End-of-RIB replace what the peer kept.
//!
//! BFD ([`PeerConfig::bfd`]): the session starts only while [`Speaker::set_bfd`] says the
//! peer's BFD session is up, and stops with Cease / BFD Down as soon as it says down.
//!
//! Unnumbered ([`PeerConfig::interface`] with an unspecified address): the router's
//! link-local address is learnt from its Router Advertisements on the interface or from
//! its connection to us, and ours is advertised there ([`crate::unnumbered`]). Over such a
//! link the link-local address is the IPv6 next hop, and IPv4 routes need RFC 8950.
//!
//! A peer that keeps the session up but does not read costs bounded memory: see
//! [`SEND_QUEUE_LIMIT`].
//!
//! Not here: where peers and routes come from (Kubernetes, MetalLB's resources), and the
//! BFD sessions themselves.

mod peer;

pub use peer::SEND_QUEUE_LIMIT;

use crate::adj_rib_out::Withheld;
use crate::fsm::{Backoff, ConfigError, PeerAs, State, StopKind};
use crate::unnumbered::{Discovery, DiscoveryStatus};
use crate::wire::{Family, NotificationRepr, Prefix};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use crate::adj_rib_out::RouteAttrs;

/// The routes one peer should hold, with what each carries.
pub type Routes = BTreeMap<Prefix, RouteAttrs>;

/// What the whole speaker shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// BGP identifier, unless a peer sets its own.
    pub router_id: Ipv4Addr,
    /// This process has just restarted: the graceful restart capability carries the R bit
    /// in each peer's first OPEN (RFC 4724 §3).
    pub restarting: bool,
}

/// One peer and how to talk to it. Two configurations that compare equal are the same
/// session: [`Speaker::set_peers`] resets a peer only when its configuration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Names the peer in [`Speaker::set_routes`] and [`PeerStatus`].
    pub id: String,
    pub address: IpAddr,
    pub port: u16,
    pub local_as: u32,
    pub peer_as: PeerAs,
    /// Connect from this address (MetalLB's `sourceAddress`).
    pub source_address: Option<IpAddr>,
    /// BGP identifier for this session instead of the speaker's.
    pub router_id: Option<Ipv4Addr>,
    /// Seconds; 0 or at least 3.
    pub hold_time: u16,
    /// Seconds; `None` for a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// How long one connection attempt may take (MetalLB's `connectTime`).
    pub connect_time: Duration,
    /// The peer is more than one hop away: TTL 255 instead of 1 on eBGP.
    pub ebgp_multihop: bool,
    /// TCP MD5 signature password (never shown by `Debug`).
    pub password: Option<crate::socket::Md5Password>,
    /// Never connect; wait for the peer to (needs [`Speaker::listen`]).
    pub passive: bool,
    /// Graceful restart with this restart time in seconds (RFC 4724).
    pub graceful_restart: Option<u16>,
    /// Offer IPv4 routes with an IPv6 next hop (RFC 8950); used on IPv6 sessions only.
    pub extended_next_hop: bool,
    /// Add the interface's link-local address to IPv6 next hops when the peer is on-link
    /// (RFC 2545 §3). A router that cannot tie a link-local address to an interface (FRR
    /// bgpd without zebra) treats such routes as withdrawn: turn it off for those.
    pub link_local_next_hop: bool,
    pub backoff: Backoff,
    /// The interface the peer is on. With a link-local `address` it scopes the address;
    /// with an unspecified one (`::`) the peer is unnumbered: the router at the other end
    /// of the interface, found by its Router Advertisements (see [`crate::unnumbered`]).
    pub interface: Option<String>,
    /// Run the session only while its BFD session is up ([`Speaker::set_bfd`]).
    pub bfd: bool,
}

impl PeerConfig {
    /// A peer with MetalLB's defaults: port 179, hold time 90 s, connect time 10 s, direct,
    /// no password, extended next hop offered on IPv6 sessions.
    pub fn new(id: impl Into<String>, address: IpAddr, local_as: u32, peer_as: PeerAs) -> Self {
        PeerConfig {
            id: id.into(),
            address,
            port: 179,
            local_as,
            peer_as,
            source_address: None,
            router_id: None,
            hold_time: 90,
            keepalive_time: None,
            connect_time: Duration::from_secs(10),
            ebgp_multihop: false,
            password: None,
            passive: false,
            graceful_restart: None,
            extended_next_hop: true,
            link_local_next_hop: true,
            backoff: Backoff {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(120),
            },
            interface: None,
            bfd: false,
        }
    }

    /// An unnumbered peer: the router on `interface`, at whatever link-local address it
    /// advertises.
    pub fn unnumbered(
        id: impl Into<String>,
        interface: &str,
        local_as: u32,
        peer_as: PeerAs,
    ) -> Self {
        let mut p = PeerConfig::new(id, IpAddr::V6(Ipv6Addr::UNSPECIFIED), local_as, peer_as);
        p.interface = Some(interface.to_owned());
        p
    }

    /// Whether the peer's address is learnt on its interface.
    pub fn is_unnumbered(&self) -> bool {
        self.address.is_unspecified() && self.interface.is_some()
    }

    /// The peer is in our AS, as far as can be known before its OPEN.
    pub fn is_internal(&self) -> bool {
        match self.peer_as {
            PeerAs::Fixed(asn) => asn == self.local_as,
            PeerAs::Internal => true,
            PeerAs::External => false,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// A peer configuration the speaker cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerConfigError {
    #[error("peer {id}: {error}")]
    Session { id: String, error: ConfigError },
    #[error("peer {id}: TCP MD5 password longer than 80 octets")]
    PasswordTooLong { id: String },
    #[error("peer {id} is configured twice")]
    Duplicate { id: String },
    #[error("peer {id}: cannot set its TCP MD5 key on the listener: {error}")]
    ListenerKey { id: String, error: String },
}

/// NOTIFICATIONs counted by (code, subcode).
pub type NotificationCounts = BTreeMap<(u8, u8), u64>;

/// How many of a peer's latest state changes its status keeps.
pub const MAX_RECENT_TRANSITIONS: usize = 16;

/// One change of a session's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: SystemTime,
    /// Why, when the session went down: what was sent or received, or what failed.
    pub reason: Option<String>,
}

/// A change of one peer's session state, as published to [`Speaker::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub id: String,
    /// The peer's address (learnt, for an unnumbered peer, once known).
    pub address: SocketAddr,
    pub from: State,
    pub to: State,
    pub at: SystemTime,
    pub reason: Option<String>,
    /// Families negotiated, when it came up.
    pub families: Vec<Family>,
    /// Routes wanted for the peer at the time.
    pub wanted: usize,
}

/// A snapshot of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: String,
    pub address: SocketAddr,
    pub state: State,
    /// Since when the session has been Established.
    pub uptime: Option<Duration>,
    pub local_address: Option<SocketAddr>,
    pub peer_as: Option<u32>,
    pub hold_time: Option<u16>,
    /// Families negotiated on the current session.
    pub families: Vec<Family>,
    pub ipv4_over_ipv6: bool,
    /// Routes the caller wants the peer to hold.
    pub wanted: usize,
    /// Routes the peer holds from us.
    pub advertised: usize,
    /// Wanted but not (yet) advertised: the session is down, or they are withheld.
    pub pending: usize,
    /// Wanted routes this session cannot carry, and why.
    pub withheld: BTreeMap<Prefix, Withheld>,
    pub updates_sent: u64,
    /// Octets of every message sent, headers included.
    pub bytes_sent: u64,
    pub updates_received: u64,
    /// ROUTE-REFRESH requests answered with the family's routes again.
    pub route_refreshes_received: u64,
    pub connect_attempts: u64,
    /// How often the session reached Established.
    pub sessions_established: u64,
    pub notifications_sent: NotificationCounts,
    pub notifications_received: NotificationCounts,
    pub last_notification_sent: Option<NotificationRepr>,
    pub last_notification_received: Option<NotificationRepr>,
    pub last_error: Option<String>,
    /// The interface of an unnumbered or link-local peer.
    pub interface: Option<String>,
    /// The remote end of the current (or last) connection.
    pub remote_address: Option<SocketAddr>,
    /// An unnumbered peer's link-local address, once learnt.
    pub discovered: Option<Ipv6Addr>,
    /// Router discovery on the interface of an unnumbered peer.
    pub discovery: Option<DiscoveryStatus>,
    /// Graceful restart negotiated on the current session, and with it the N bit.
    pub graceful_restart: bool,
    pub graceful_notification: bool,
    /// For a peer that waits for BFD: whether its BFD session is up.
    pub bfd_up: Option<bool>,
    /// Octets waiting to be written to the connection now, and the most there ever were.
    pub send_queue_bytes: usize,
    pub send_queue_peak: usize,
    /// How often route changes were held back because the send queue was full.
    pub send_queue_full: u64,
    /// Every state change, counted by the state entered.
    pub transitions: BTreeMap<State, u64>,
    /// The latest state changes, oldest first (at most [`MAX_RECENT_TRANSITIONS`]).
    pub recent: Vec<Transition>,
}

/// What a peer task keeps up to date for [`Speaker::status`].
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerStats {
    pub state: Option<State>,
    pub established_at: Option<tokio::time::Instant>,
    pub local_address: Option<SocketAddr>,
    pub peer_as: Option<u32>,
    pub hold_time: Option<u16>,
    pub families: Vec<Family>,
    pub ipv4_over_ipv6: bool,
    pub wanted: usize,
    pub advertised: usize,
    pub withheld: BTreeMap<Prefix, Withheld>,
    pub updates_sent: u64,
    pub bytes_sent: u64,
    pub updates_received: u64,
    pub route_refreshes_received: u64,
    pub connect_attempts: u64,
    pub sessions_established: u64,
    pub notifications_sent: NotificationCounts,
    pub notifications_received: NotificationCounts,
    pub last_notification_sent: Option<NotificationRepr>,
    pub last_notification_received: Option<NotificationRepr>,
    pub last_error: Option<String>,
    pub remote_address: Option<SocketAddr>,
    pub discovered: Option<Ipv6Addr>,
    pub graceful_restart: bool,
    pub graceful_notification: bool,
    pub bfd_up: Option<bool>,
    pub send_queue: Option<Arc<peer::SendQueue>>,
    pub send_queue_peak: usize,
    pub send_queue_full: u64,
    pub transitions: BTreeMap<State, u64>,
    pub recent: VecDeque<Transition>,
}

/// What the speaker tells a peer task.
#[derive(Debug)]
pub(crate) enum Control {
    /// End the session the way `StopKind` says, with this message where one is sent.
    Stop(String, StopKind),
    /// The peer connected to us.
    Incoming(tokio::net::TcpStream),
    /// Panic, so tests can see the task started again ([`Speaker::revive`]).
    #[cfg(any(test, feature = "fault-injection"))]
    Panic,
}

struct PeerEntry {
    config: PeerConfig,
    control: mpsc::UnboundedSender<Control>,
    stats: Arc<Mutex<PeerStats>>,
    task: JoinHandle<()>,
}

/// Where the listener sends a connection: to the peer configured with the remote address
/// (and scope, for link-local ones), else to the unnumbered peer of the interface it came
/// in on.
#[derive(Default)]
struct IncomingRoutes {
    by_address: HashMap<(IpAddr, u32), mpsc::UnboundedSender<Control>>,
    by_interface: HashMap<u32, mpsc::UnboundedSender<Control>>,
}

/// How many session events wait for a slow subscriber before it misses some (it is told
/// how many; the counts in [`PeerStatus`] miss nothing).
const EVENT_BACKLOG: usize = 1024;

/// The BGP speaker. Create it inside a tokio runtime; its peer tasks run on that runtime.
pub struct Speaker {
    config: SpeakerConfig,
    runtime: tokio::runtime::Handle,
    peers: BTreeMap<String, PeerEntry>,
    routes: BTreeMap<String, watch::Sender<Arc<Routes>>>,
    graceful_shutdown: watch::Sender<bool>,
    /// Per peer id: still owed an OPEN with the graceful restart R bit. Outlives the peer's
    /// task, so a session reset by a configuration change does not claim a restart again.
    restarting: BTreeMap<String, Arc<AtomicBool>>,
    /// Per peer id: whether its BFD session is up. Kept like the routes, for a peer that
    /// is reset or configured later.
    bfd: BTreeMap<String, watch::Sender<bool>>,
    /// Router discovery per interface of an unnumbered peer.
    discovery: BTreeMap<String, Discovery>,
    /// Where incoming connections go; shared with the listener.
    incoming: Arc<Mutex<IncomingRoutes>>,
    listeners: Vec<Listener>,
    events: broadcast::Sender<SessionEvent>,
}

struct Listener {
    socket: Arc<socket2::Socket>,
    /// Addresses whose TCP MD5 key is set on it.
    keyed: Vec<IpAddr>,
    task: JoinHandle<()>,
}

impl Speaker {
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(config: SpeakerConfig) -> Speaker {
        Speaker {
            config,
            runtime: tokio::runtime::Handle::current(),
            peers: BTreeMap::new(),
            routes: BTreeMap::new(),
            graceful_shutdown: watch::channel(false).0,
            restarting: BTreeMap::new(),
            bfd: BTreeMap::new(),
            discovery: BTreeMap::new(),
            incoming: Arc::new(Mutex::new(IncomingRoutes::default())),
            listeners: Vec::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    /// Every change of any peer's session state from now on, as it happens.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// Whether peer `id`'s BFD session is up. A peer with [`PeerConfig::bfd`] runs only
    /// while it is; others ignore it. Kept for a peer not configured yet.
    pub fn set_bfd(&mut self, id: &str, up: bool) {
        self.bfd_sender(id).send_if_modified(|was| {
            let changed = *was != up;
            *was = up;
            changed
        });
    }

    fn bfd_sender(&mut self, id: &str) -> &watch::Sender<bool> {
        self.bfd
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(false).0)
    }

    /// Makes `peers` the speaker's peers: new ones are started, removed ones stopped with
    /// Cease / Administrative Shutdown, changed ones reset, unchanged ones left alone.
    /// Invalid configurations are reported and not run (a peer whose new configuration is
    /// invalid is stopped).
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) -> Result<(), Vec<PeerConfigError>> {
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, PeerConfig> = BTreeMap::new();
        for p in peers {
            if let Err(e) = self.check(&p) {
                errors.push(e);
            } else if wanted.contains_key(&p.id) {
                errors.push(PeerConfigError::Duplicate { id: p.id.clone() });
            } else {
                wanted.insert(p.id.clone(), p);
            }
        }
        let stale: Vec<String> = self
            .peers
            .iter()
            .filter(|(id, e)| wanted.get(*id) != Some(&e.config))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(entry) = self.peers.remove(&id) {
                let (why, kind) = if wanted.contains_key(&id) {
                    ("configuration changed", StopKind::Reconfigure)
                } else {
                    ("peer removed from configuration", StopKind::Deconfigured)
                };
                let _ = entry.control.send(Control::Stop(why.to_string(), kind));
            }
        }
        // Router discovery runs on the interfaces of unnumbered peers, and only there.
        let interfaces: std::collections::BTreeSet<String> = wanted
            .values()
            .filter(|p| p.is_unnumbered())
            .filter_map(|p| p.interface.clone())
            .collect();
        self.discovery.retain(|name, _| interfaces.contains(name));
        for name in interfaces {
            if !self.discovery.contains_key(&name) {
                let _guard = self.runtime.enter();
                self.discovery.insert(name.clone(), Discovery::start(&name));
            }
        }
        for (id, config) in wanted {
            if self.peers.contains_key(&id) {
                continue;
            }
            match self.start(config) {
                Ok(entry) => {
                    self.peers.insert(id, entry);
                }
                Err(error) => errors.push(PeerConfigError::Session { id, error }),
            }
        }
        self.route_incoming();
        errors.extend(self.key_listeners());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Accepts BGP connections on `address` (usually `[::]:179`, which takes IPv4 too) and
    /// hands each to the peer configured with the remote address; others are closed. TCP
    /// MD5 keys of the peers with a password are set on the listening socket.
    pub fn listen(&mut self, address: SocketAddr) -> std::io::Result<()> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if address.is_ipv6() {
            socket.set_only_v6(false)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(64)?;
        let socket = Arc::new(socket);
        let std_listener: std::net::TcpListener = socket.try_clone()?.into();
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let incoming = self.incoming.clone();
        let task = self.runtime.spawn(accept_loop(listener, incoming));
        self.listeners.push(Listener {
            socket,
            keyed: Vec::new(),
            task,
        });
        let errors = self.key_listeners();
        match errors.into_iter().next() {
            Some(e) => Err(std::io::Error::other(e.to_string())),
            None => Ok(()),
        }
    }

    fn route_incoming(&self) {
        let mut routes = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        routes.by_address.clear();
        routes.by_interface.clear();
        for entry in self.peers.values() {
            let c = &entry.config;
            let scope = c.interface.as_deref().map_or(0, crate::socket::if_index);
            if c.is_unnumbered() {
                routes.by_interface.insert(scope, entry.control.clone());
            } else {
                let scope = if is_link_local(&c.address) { scope } else { 0 };
                routes
                    .by_address
                    .insert((c.address, scope), entry.control.clone());
            }
        }
    }

    /// Sets each password-protected peer's key on every listener and removes keys of
    /// peers that no longer have one.
    fn key_listeners(&mut self) -> Vec<PeerConfigError> {
        let mut errors = Vec::new();
        let keys: HashMap<IpAddr, (&str, &[u8])> = self
            .peers
            .values()
            .filter(|e| !e.config.is_unnumbered())
            .filter_map(|e| {
                let pw = e.config.password.as_ref()?;
                Some((e.config.address, (e.config.id.as_str(), pw.as_bytes())))
            })
            .collect();
        for l in &mut self.listeners {
            let v6 = l
                .socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a.is_ipv6());
            let on_socket = |addr: IpAddr| match addr {
                IpAddr::V4(a) if v6 => IpAddr::V6(a.to_ipv6_mapped()),
                other => other,
            };
            for old in std::mem::take(&mut l.keyed) {
                if !keys.contains_key(&old) {
                    let _ = crate::socket::set_md5_key(&l.socket, on_socket(old), &[]);
                }
            }
            for (addr, (id, key)) in &keys {
                if v6 || addr.is_ipv4() {
                    match crate::socket::set_md5_key(&l.socket, on_socket(*addr), key) {
                        Ok(()) => l.keyed.push(*addr),
                        Err(error) => errors.push(PeerConfigError::ListenerKey {
                            id: id.to_string(),
                            error: error.to_string(),
                        }),
                    }
                }
            }
        }
        errors
    }

    fn check(&self, p: &PeerConfig) -> Result<(), PeerConfigError> {
        if p.password
            .as_ref()
            .is_some_and(|pw| pw.len() > crate::socket::MD5_MAX_KEY_LEN)
        {
            return Err(PeerConfigError::PasswordTooLong { id: p.id.clone() });
        }
        peer::session_config(p, &self.config, self.config.restarting)
            .validate()
            .map_err(|error| PeerConfigError::Session {
                id: p.id.clone(),
                error,
            })
    }

    fn routes_sender(&mut self, id: &str) -> &watch::Sender<Arc<Routes>> {
        self.routes
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(Arc::new(Routes::new())).0)
    }

    fn start(&mut self, config: PeerConfig) -> Result<PeerEntry, ConfigError> {
        let routes = self.routes_sender(&config.id).subscribe();
        let bfd = self.bfd_sender(&config.id).subscribe();
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(PeerStats::default()));
        let restarting = self
            .restarting
            .entry(config.id.clone())
            .or_insert_with(|| Arc::new(AtomicBool::new(self.config.restarting)))
            .clone();
        let discovered = if config.is_unnumbered() {
            config
                .interface
                .as_ref()
                .and_then(|i| self.discovery.get(i))
                .map(Discovery::router)
        } else {
            None
        };
        let task = peer::PeerTask::new(
            config.clone(),
            &self.config,
            peer::PeerChannels {
                restarting,
                routes,
                graceful_shutdown: self.graceful_shutdown.subscribe(),
                bfd,
                discovered,
                control: control_rx,
                stats: stats.clone(),
                events: self.events.clone(),
            },
        )?;
        let task = self.runtime.spawn(task.run());
        Ok(PeerEntry {
            config,
            control,
            stats,
            task,
        })
    }

    /// Starts again the task of every configured peer whose task ended on its own, and
    /// returns their ids. A peer task ends only when told to (its peer removed or changed,
    /// or the speaker stopped), so one that ended while still configured panicked. Its
    /// routes and graceful restart state outlive it, so the new task takes up where the
    /// old one was (after a new connection).
    pub fn revive(&mut self) -> Vec<String> {
        let ended: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, e)| e.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        let mut revived = Vec::new();
        for id in ended {
            let Some(old) = self.peers.remove(&id) else {
                continue;
            };
            match self.start(old.config.clone()) {
                Ok(entry) => {
                    self.peers.insert(id.clone(), entry);
                    revived.push(id);
                }
                // It started with this configuration before; should it not now, the old
                // entry stays and the next call tries again.
                Err(_) => {
                    self.peers.insert(id, old);
                }
            }
        }
        if !revived.is_empty() {
            self.route_incoming();
        }
        revived
    }

    /// Makes peer `id`'s task panic, so a test sees it started again ([`Speaker::revive`]);
    /// false when no such peer is configured. Only in tests and in builds with the
    /// `fault-injection` feature, which the released binary never has.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn panic_peer(&self, id: &str) -> bool {
        match self.peers.get(id) {
            Some(e) => e.control.send(Control::Panic).is_ok(),
            None => false,
        }
    }

    /// The routes peer `id` should hold, replacing what was set before. Kept for a peer
    /// not configured yet.
    pub fn set_routes(&mut self, id: &str, routes: Routes) {
        self.routes_sender(id).send_replace(Arc::new(routes));
    }

    /// A snapshot of every configured peer, in id order.
    pub fn status(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(id, e)| {
                let s = e.stats.lock().map(|s| s.clone()).unwrap_or_default();
                PeerStatus {
                    id: id.clone(),
                    address: e.config.socket_addr(),
                    state: s.state.unwrap_or(State::Idle),
                    uptime: s.established_at.map(|t| t.elapsed()),
                    local_address: s.local_address,
                    peer_as: s.peer_as,
                    hold_time: s.hold_time,
                    families: s.families,
                    ipv4_over_ipv6: s.ipv4_over_ipv6,
                    wanted: s.wanted,
                    advertised: s.advertised,
                    pending: s.wanted.saturating_sub(s.advertised),
                    withheld: s.withheld,
                    updates_sent: s.updates_sent,
                    bytes_sent: s.bytes_sent,
                    updates_received: s.updates_received,
                    route_refreshes_received: s.route_refreshes_received,
                    connect_attempts: s.connect_attempts,
                    sessions_established: s.sessions_established,
                    notifications_sent: s.notifications_sent,
                    notifications_received: s.notifications_received,
                    last_notification_sent: s.last_notification_sent,
                    last_notification_received: s.last_notification_received,
                    last_error: s.last_error,
                    interface: e.config.interface.clone(),
                    remote_address: s.remote_address,
                    discovered: s.discovered,
                    discovery: e
                        .config
                        .interface
                        .as_ref()
                        .filter(|_| e.config.is_unnumbered())
                        .and_then(|i| self.discovery.get(i))
                        .map(Discovery::status),
                    graceful_restart: s.graceful_restart,
                    graceful_notification: s.graceful_notification,
                    bfd_up: e
                        .config
                        .bfd
                        .then(|| self.bfd.get(id).is_some_and(|b| *b.borrow())),
                    send_queue_bytes: s.send_queue.as_ref().map_or(0, |q| q.len()),
                    send_queue_peak: s.send_queue_peak,
                    send_queue_full: s.send_queue_full,
                    transitions: s.transitions,
                    recent: s.recent.into_iter().collect(),
                }
            })
            .collect()
    }

    /// Ends every session the way `kind` says (see [`StopKind`]), with `message` where the
    /// NOTIFICATION carries one (RFC 9003). With `graceful_shutdown_wait`, every route is
    /// first announced again with GRACEFUL_SHUTDOWN (65535:0, RFC 8326) so peers move
    /// traffic away, and the speaker waits that long. Returns once the tasks have ended.
    pub async fn shutdown(
        mut self,
        graceful_shutdown_wait: Option<Duration>,
        kind: StopKind,
        message: &str,
    ) {
        if let Some(wait) = graceful_shutdown_wait {
            self.graceful_shutdown.send_replace(true);
            tokio::time::sleep(wait).await;
        }
        for l in self.listeners.drain(..) {
            l.task.abort();
        }
        let peers = std::mem::take(&mut self.peers);
        for entry in peers.values() {
            let _ = entry.control.send(Control::Stop(message.to_string(), kind));
        }
        for (_, entry) in peers {
            let abort = entry.task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), entry.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.task.abort();
        }
        for entry in self.peers.values() {
            let _ = entry.control.send(Control::Stop(
                "speaker stopped".to_string(),
                StopKind::Shutdown,
            ));
        }
    }
}

fn is_link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Takes connections and hands each to the peer it comes from.
async fn accept_loop(listener: tokio::net::TcpListener, incoming: Arc<Mutex<IncomingRoutes>>) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            // Out of descriptors or similar: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let peer = remote.ip().to_canonical();
        let scope = match remote {
            SocketAddr::V6(a) if is_link_local(&peer) => a.scope_id(),
            _ => 0,
        };
        let target = incoming
            .lock()
            .map(|routes| {
                routes
                    .by_address
                    .get(&(peer, scope))
                    .or_else(|| {
                        is_link_local(&peer)
                            .then(|| routes.by_interface.get(&scope))
                            .flatten()
                    })
                    .cloned()
            })
            .unwrap_or(None);
        if let Some(control) = target {
            let _ = control.send(Control::Incoming(stream));
        }
        // Otherwise the stream drops here: an unknown peer is closed on.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_task_that_panicked_is_started_again() {
        let mut speaker = Speaker::new(SpeakerConfig {
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            restarting: false,
        });
        let address = IpAddr::from([192, 0, 2, 254]);
        let mut peer = PeerConfig::new("router", address, 64512, PeerAs::Fixed(64513));
        // Never connects: no socket is needed to see the task live and die.
        peer.passive = true;
        speaker.set_peers(vec![peer]).expect("a valid peer");
        assert!(speaker.revive().is_empty(), "a running task is left alone");

        speaker.panic_peer("router");
        let ended = async {
            while !speaker.peers["router"].task.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), ended)
            .await
            .expect("the peer task ends after its panic");
        assert_eq!(speaker.revive(), vec!["router".to_owned()]);
        assert!(
            !speaker.peers["router"].task.is_finished(),
            "a new task runs"
        );
        assert!(speaker.revive().is_empty(), "and is left alone");
        let status = speaker.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].address, SocketAddr::new(address, 179));
    }
}
