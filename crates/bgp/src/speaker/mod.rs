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
//! Not here: where peers and routes come from (Kubernetes, MetalLB's resources).

mod peer;

use crate::adj_rib_out::Withheld;
use crate::fsm::{Backoff, ConfigError, PeerAs, State};
use crate::wire::{Family, NotificationRepr, Prefix};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
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
        }
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
}

/// What the speaker tells a peer task.
#[derive(Debug)]
pub(crate) enum Control {
    /// Send Cease / Administrative Shutdown with this message and end.
    Stop(String),
    /// The peer connected to us.
    Incoming(tokio::net::TcpStream),
    /// Panic, so tests can see the task started again ([`Speaker::revive`]).
    #[cfg(test)]
    Panic,
}

struct PeerEntry {
    config: PeerConfig,
    control: mpsc::UnboundedSender<Control>,
    stats: Arc<Mutex<PeerStats>>,
    task: JoinHandle<()>,
}

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
    /// Where incoming connections go, by the peer's address; shared with the listener.
    incoming: Arc<Mutex<HashMap<IpAddr, mpsc::UnboundedSender<Control>>>>,
    listeners: Vec<Listener>,
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
            incoming: Arc::new(Mutex::new(HashMap::new())),
            listeners: Vec::new(),
        }
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
                let why = if wanted.contains_key(&id) {
                    "configuration changed"
                } else {
                    "peer removed from configuration"
                };
                let _ = entry.control.send(Control::Stop(why.to_string()));
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
        let mut map = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        map.clear();
        for entry in self.peers.values() {
            map.insert(entry.config.address, entry.control.clone());
        }
    }

    /// Sets each password-protected peer's key on every listener and removes keys of
    /// peers that no longer have one.
    fn key_listeners(&mut self) -> Vec<PeerConfigError> {
        let mut errors = Vec::new();
        let keys: HashMap<IpAddr, (&str, &[u8])> = self
            .peers
            .values()
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
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(PeerStats::default()));
        let restarting = self
            .restarting
            .entry(config.id.clone())
            .or_insert_with(|| Arc::new(AtomicBool::new(self.config.restarting)))
            .clone();
        let task = peer::PeerTask::new(
            config.clone(),
            &self.config,
            restarting,
            routes,
            self.graceful_shutdown.subscribe(),
            control_rx,
            stats.clone(),
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

    /// Makes peer `id`'s task panic. Only for tests of [`Speaker::revive`].
    #[cfg(test)]
    pub(crate) fn panic_peer(&self, id: &str) {
        if let Some(e) = self.peers.get(id) {
            let _ = e.control.send(Control::Panic);
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
                }
            })
            .collect()
    }

    /// Ends every session. With `graceful_shutdown_wait`, every route is first announced
    /// again with GRACEFUL_SHUTDOWN (65535:0, RFC 8326) so peers move traffic away, and the
    /// speaker waits that long. Then each session gets Cease / Administrative Shutdown with
    /// `message` (RFC 9003) and the call returns once the tasks have ended.
    pub async fn shutdown(mut self, graceful_shutdown_wait: Option<Duration>, message: &str) {
        if let Some(wait) = graceful_shutdown_wait {
            self.graceful_shutdown.send_replace(true);
            tokio::time::sleep(wait).await;
        }
        for l in self.listeners.drain(..) {
            l.task.abort();
        }
        let peers = std::mem::take(&mut self.peers);
        for entry in peers.values() {
            let _ = entry.control.send(Control::Stop(message.to_string()));
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
            let _ = entry
                .control
                .send(Control::Stop("speaker stopped".to_string()));
        }
    }
}

/// Takes connections and hands each to the peer it comes from.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    incoming: Arc<Mutex<HashMap<IpAddr, mpsc::UnboundedSender<Control>>>>,
) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            // Out of descriptors or similar: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let peer = remote.ip().to_canonical();
        let target = incoming
            .lock()
            .map(|m| m.get(&peer).cloned())
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
