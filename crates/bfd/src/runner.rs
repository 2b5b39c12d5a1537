//! The thin I/O around the sessions: UDP sockets, timers, and one tokio task per session
//! carrying out what its [`Session`] decides.
//!
//! - Packets are received on one socket per port and family: 3784 for single-hop sessions
//!   (RFC 5881), 4784 for multihop ones (RFC 5883), each with the TTL / hop limit and the
//!   arrival interface of every datagram (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`, packet info).
//!   A datagram goes to the session its Your Discriminator names, or while that is zero to
//!   the session of its source address (and interface, for a link-local source). A
//!   single-hop packet must arrive with TTL 255 (RFC 5881 §5: it was not forwarded); a
//!   multihop one with at least the session's minimum TTL. Anything else is counted and
//!   dropped, never answered.
//! - Each session sends from a socket of its own, bound to a source port in
//!   49152–65535 (RFC 5881 §4) and, for a link-local peer, to its interface, with TTL 255.
//! - A session whose peer address is unspecified but whose interface is given (an
//!   unnumbered BGP peer) learns the peer from the first packet that arrives for it on
//!   that interface from a link-local address.
//!
//! [`Bfd::set_sessions`] is level-based like the BGP speaker's peers: new sessions start,
//! removed ones say AdminDown and end, ones whose intervals changed take them without a
//! flap (a Poll Sequence), others are left alone. Every change of state is counted, kept
//! and published to [`Bfd::events`].

use crate::packet::{ControlRepr, Diagnostic, State};
use crate::session::{self, Action, Config, Event, Session, Timer};
use nix::sys::socket::{SetSockOpt, sockopt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// RFC 5881: single-hop control packets.
pub const SINGLE_HOP_PORT: u16 = 3784;
/// RFC 5883: multihop control packets.
pub const MULTIHOP_PORT: u16 = 4784;
/// How many AdminDown packets a removed session sends, a few milliseconds apart.
const ADMIN_DOWN_PACKETS: u32 = 3;
/// How many of a session's latest state changes its status keeps.
pub const MAX_RECENT: usize = 16;

/// One session as configured: a BGP peer and its BFDProfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Names the session in status and events (the BGP peer's name).
    pub id: String,
    /// The peer's address; unspecified (`::`) with `interface` set: learnt on the link.
    pub peer: IpAddr,
    /// Needed for a link-local peer.
    pub interface: Option<String>,
    /// Send from this address.
    pub source: Option<IpAddr>,
    /// RFC 5883 (the BGP peer is more than one hop away).
    pub multihop: bool,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_multiplier: u8,
    pub passive: bool,
    /// Multihop only: the lowest TTL accepted. Single-hop packets always need 255.
    pub minimum_ttl: u8,
}

impl SessionConfig {
    /// A single-hop session with BFD's usual 300 ms × 3.
    pub fn new(id: impl Into<String>, peer: IpAddr) -> SessionConfig {
        SessionConfig {
            id: id.into(),
            peer,
            interface: None,
            source: None,
            multihop: false,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
            minimum_ttl: 254,
        }
    }

    fn learns_peer(&self) -> bool {
        self.peer.is_unspecified() && self.interface.is_some()
    }

    /// What identifies the session: changing any of it makes a new session.
    fn identity(&self) -> (IpAddr, Option<&str>, Option<IpAddr>, bool) {
        (
            self.peer,
            self.interface.as_deref(),
            self.source,
            self.multihop,
        )
    }

    fn fsm(&self, local_discriminator: u32) -> Config {
        Config {
            local_discriminator,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            detect_multiplier: self.detect_multiplier,
            passive: self.passive,
        }
    }
}

/// A session that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("BFD session {id}: {error}")]
    Config {
        id: String,
        error: session::ConfigError,
    },
    #[error("BFD session {id} is configured twice")]
    Duplicate { id: String },
    #[error("BFD session {id}: a link-local or learnt peer needs an interface")]
    NoInterface { id: String },
}

/// One change of a session's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdEvent {
    pub id: String,
    pub peer: Option<IpAddr>,
    pub from: State,
    pub to: State,
    /// Why it went down (ours), when it did.
    pub diagnostic: Diagnostic,
    pub at: SystemTime,
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub id: String,
    /// Configured, or learnt.
    pub peer: Option<IpAddr>,
    pub interface: Option<String>,
    /// Where we send from.
    pub local: Option<SocketAddr>,
    pub multihop: bool,
    pub passive: bool,
    pub minimum_ttl: u8,
    pub state: State,
    pub diagnostic: Diagnostic,
    pub remote_state: Option<State>,
    pub remote_diagnostic: Diagnostic,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// As configured.
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_multiplier: u8,
    /// As the peer sends them.
    pub remote_desired_min_tx: Duration,
    pub remote_required_min_rx: Duration,
    pub remote_detect_multiplier: u8,
    /// Between our periodic packets, before jitter (none while none are due).
    pub transmit_interval: Option<Duration>,
    /// How long the peer may be silent.
    pub detection_time: Duration,
    pub up_since: Option<SystemTime>,
    pub control_packets_received: u64,
    pub control_packets_sent: u64,
    pub up_events: u64,
    pub down_events: u64,
    /// Packets for this session that were dropped (TTL too low, or wrong source).
    pub packets_dropped: u64,
    pub last_error: Option<String>,
    /// Latest state changes, oldest first.
    pub recent: Vec<BfdEvent>,
}

#[derive(Debug, Default)]
struct Stats {
    peer: Option<IpAddr>,
    local: Option<SocketAddr>,
    state: Option<State>,
    diagnostic: Diagnostic,
    remote: session::Remote,
    transmit_interval: Option<Duration>,
    detection_time: Duration,
    up_since: Option<SystemTime>,
    received: u64,
    sent: u64,
    up_events: u64,
    down_events: u64,
    dropped: u64,
    last_error: Option<String>,
    recent: VecDeque<BfdEvent>,
}

enum Input {
    Packet(ControlRepr, SocketAddr),
    Reconfigure(SessionConfig),
    Stop,
}

/// Where a received datagram may go.
#[derive(Clone)]
struct Route {
    tx: mpsc::UnboundedSender<Input>,
    stats: Arc<Mutex<Stats>>,
    multihop: bool,
    minimum_ttl: u8,
    /// `None` while a learning session has not heard its peer.
    peer: Option<(IpAddr, u32)>,
    /// For a learning session: the interface it learns on.
    learn_on: Option<u32>,
}

#[derive(Default)]
struct Registry {
    by_discriminator: HashMap<u32, Route>,
    by_peer: HashMap<(bool, IpAddr, u32), u32>,
    learners: HashMap<u32, u32>,
    /// Datagrams that were not BFD Control packets, or for no session.
    unmatched: u64,
    last_error: Option<String>,
}

struct Entry {
    config: SessionConfig,
    discriminator: u32,
    tx: mpsc::UnboundedSender<Input>,
    stats: Arc<Mutex<Stats>>,
    task: JoinHandle<()>,
}

/// The BFD sessions of this node. Create it inside a tokio runtime.
pub struct Bfd {
    runtime: tokio::runtime::Handle,
    sessions: BTreeMap<String, Entry>,
    registry: Arc<Mutex<Registry>>,
    /// Receive tasks by (multihop, IPv6).
    receivers: BTreeMap<(bool, bool), JoinHandle<()>>,
    events: broadcast::Sender<BfdEvent>,
    next_discriminator: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

fn if_index(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `c` is a NUL-terminated string valid for the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// A number from the clock and the process, for discriminators and source ports: they
/// need to differ between runs, not to be secret.
fn entropy() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

impl Default for Bfd {
    fn default() -> Self {
        Bfd::new()
    }
}

impl Bfd {
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new() -> Bfd {
        Bfd {
            runtime: tokio::runtime::Handle::current(),
            sessions: BTreeMap::new(),
            registry: Arc::default(),
            receivers: BTreeMap::new(),
            events: broadcast::channel(1024).0,
            next_discriminator: entropy() | 1,
        }
    }

    /// Every change of any session's state from now on.
    pub fn events(&self) -> broadcast::Receiver<BfdEvent> {
        self.events.subscribe()
    }

    /// Makes `sessions` the running ones (see the module docs). Invalid ones are reported
    /// and not run.
    pub fn set_sessions(&mut self, sessions: Vec<SessionConfig>) -> Result<(), Vec<Error>> {
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, SessionConfig> = BTreeMap::new();
        for s in sessions {
            if let Err(error) = s.fsm(1).validate() {
                errors.push(Error::Config {
                    id: s.id.clone(),
                    error,
                });
            } else if (s.learns_peer() || is_link_local(&s.peer) || s.peer.is_unspecified())
                && s.interface.is_none()
            {
                errors.push(Error::NoInterface { id: s.id.clone() });
            } else if wanted.contains_key(&s.id) {
                errors.push(Error::Duplicate { id: s.id.clone() });
            } else {
                wanted.insert(s.id.clone(), s);
            }
        }
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(id, e)| {
                wanted
                    .get(*id)
                    .is_none_or(|w| w.identity() != e.config.identity())
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(e) = self.sessions.remove(&id) {
                self.unregister(e.discriminator);
                let _ = e.tx.send(Input::Stop);
            }
        }
        for (id, config) in wanted {
            if let Some(e) = self.sessions.get_mut(&id) {
                if e.config != config {
                    e.config = config.clone();
                    let _ = e.tx.send(Input::Reconfigure(config));
                }
                continue;
            }
            self.ensure_receiver(
                config.multihop,
                config.peer.is_ipv6() || config.learns_peer(),
            );
            let entry = self.start(config);
            self.sessions.insert(id, entry);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn allocate_discriminator(&mut self) -> u32 {
        loop {
            let d = self.next_discriminator;
            self.next_discriminator = self.next_discriminator.wrapping_add(1).max(1);
            if d != 0 && !self.sessions.values().any(|e| e.discriminator == d) {
                return d;
            }
        }
    }

    fn unregister(&self, discriminator: u32) {
        let mut r = lock(&self.registry);
        r.by_discriminator.remove(&discriminator);
        r.by_peer.retain(|_, d| *d != discriminator);
        r.learners.retain(|_, d| *d != discriminator);
    }

    fn start(&mut self, config: SessionConfig) -> Entry {
        let discriminator = self.allocate_discriminator();
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let scope = config.interface.as_deref().map_or(0, if_index);
        let peer = (!config.learns_peer()).then(|| {
            let scope = if is_link_local(&config.peer) {
                scope
            } else {
                0
            };
            (config.peer, scope)
        });
        {
            let mut r = lock(&self.registry);
            r.by_discriminator.insert(
                discriminator,
                Route {
                    tx: tx.clone(),
                    stats: stats.clone(),
                    multihop: config.multihop,
                    minimum_ttl: config.minimum_ttl,
                    peer,
                    learn_on: config.learns_peer().then_some(scope),
                },
            );
            match peer {
                Some((ip, scope)) => {
                    r.by_peer
                        .insert((config.multihop, ip, scope), discriminator);
                }
                None => {
                    r.learners.insert(scope, discriminator);
                }
            }
        }
        let task = self.runtime.spawn(run_session(
            config.clone(),
            discriminator,
            rx,
            stats.clone(),
            self.events.clone(),
            self.registry.clone(),
        ));
        Entry {
            config,
            discriminator,
            tx,
            stats,
            task,
        }
    }

    fn ensure_receiver(&mut self, multihop: bool, v6: bool) {
        if self
            .receivers
            .get(&(multihop, v6))
            .is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let registry = self.registry.clone();
        let task = self.runtime.spawn(receive_loop(multihop, v6, registry));
        self.receivers.insert((multihop, v6), task);
    }

    /// A snapshot of every session, in id order.
    pub fn status(&self) -> Vec<SessionStatus> {
        self.sessions
            .values()
            .map(|e| {
                let s = lock(&e.stats);
                let c = &e.config;
                SessionStatus {
                    id: c.id.clone(),
                    peer: s.peer.or((!c.learns_peer()).then_some(c.peer)),
                    interface: c.interface.clone(),
                    local: s.local,
                    multihop: c.multihop,
                    passive: c.passive,
                    minimum_ttl: c.minimum_ttl,
                    state: s.state.unwrap_or(State::Down),
                    diagnostic: s.diagnostic,
                    remote_state: s.remote.state,
                    remote_diagnostic: s.remote.diagnostic,
                    local_discriminator: e.discriminator,
                    remote_discriminator: s.remote.discriminator,
                    desired_min_tx: c.desired_min_tx,
                    required_min_rx: c.required_min_rx,
                    detect_multiplier: c.detect_multiplier,
                    remote_desired_min_tx: s.remote.desired_min_tx,
                    remote_required_min_rx: s.remote.required_min_rx,
                    remote_detect_multiplier: s.remote.detect_multiplier,
                    transmit_interval: s.transmit_interval,
                    detection_time: s.detection_time,
                    up_since: s.up_since,
                    control_packets_received: s.received,
                    control_packets_sent: s.sent,
                    up_events: s.up_events,
                    down_events: s.down_events,
                    packets_dropped: s.dropped,
                    last_error: s
                        .last_error
                        .clone()
                        .or_else(|| lock(&self.registry).last_error.clone()),
                    recent: s.recent.iter().cloned().collect(),
                }
            })
            .collect()
    }

    /// Datagrams that reached the BFD ports but were not Control packets for a session.
    pub fn unmatched(&self) -> u64 {
        lock(&self.registry).unmatched
    }

    /// Says AdminDown on every session (RFC 5882 §3.2: the peer must not take it for a
    /// failure) and ends them.
    pub async fn shutdown(mut self) {
        for r in self.receivers.values() {
            r.abort();
        }
        let sessions = std::mem::take(&mut self.sessions);
        for e in sessions.values() {
            let _ = e.tx.send(Input::Stop);
        }
        for (_, e) in sessions {
            let abort = e.task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), e.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        for r in self.receivers.values() {
            r.abort();
        }
        for e in self.sessions.values() {
            let _ = e.tx.send(Input::Stop);
        }
    }
}

/// The socket a session sends from: TTL 255, a source port of RFC 5881's range, bound to
/// the interface when one is given.
fn send_socket(config: &SessionConfig, v6: bool) -> io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if v6 {
        socket.set_only_v6(true)?;
        socket.set_unicast_hops_v6(255)?;
    } else {
        socket.set_ttl_v4(255)?;
    }
    if let Some(interface) = &config.interface {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    socket.set_nonblocking(true)?;
    let ip = config.source.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let start = entropy();
    let mut last = None;
    for i in 0..64u32 {
        let port = 49152 + ((start.wrapping_add(i.wrapping_mul(7919))) % 16384) as u16;
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return tokio::net::UdpSocket::from_std(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free source port")))
}

/// Jitter for the transmit interval (xorshift).
struct Jitter(u32);

impl session::Random for Jitter {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

struct Task {
    config: SessionConfig,
    session: Session<Jitter>,
    socket: Option<tokio::net::UdpSocket>,
    peer: Option<SocketAddr>,
    timers: HashMap<Timer, Instant>,
    stats: Arc<Mutex<Stats>>,
    events: broadcast::Sender<BfdEvent>,
    registry: Arc<Mutex<Registry>>,
    discriminator: u32,
}

async fn run_session(
    config: SessionConfig,
    discriminator: u32,
    mut rx: mpsc::UnboundedReceiver<Input>,
    stats: Arc<Mutex<Stats>>,
    events: broadcast::Sender<BfdEvent>,
    registry: Arc<Mutex<Registry>>,
) {
    let session = match Session::new(config.fsm(discriminator), Jitter(entropy() | 1)) {
        Ok(s) => s,
        Err(e) => {
            lock(&stats).last_error = Some(e.to_string());
            return;
        }
    };
    let scope = config.interface.as_deref().map_or(0, if_index);
    let peer = (!config.learns_peer()).then(|| match config.peer {
        IpAddr::V6(a) if is_link_local(&config.peer) => {
            SocketAddr::V6(SocketAddrV6::new(a, port(&config), 0, scope))
        }
        ip => SocketAddr::new(ip, port(&config)),
    });
    let v6 = config.peer.is_ipv6() || config.learns_peer();
    let socket = match send_socket(&config, v6) {
        Ok(s) => Some(s),
        Err(e) => {
            lock(&stats).last_error = Some(format!("cannot open the sending socket: {e}"));
            None
        }
    };
    {
        let mut s = lock(&stats);
        s.local = socket.as_ref().and_then(|s| s.local_addr().ok());
        s.peer = peer.map(|p| p.ip());
        s.state = Some(State::Down);
    }
    let mut task = Task {
        config,
        session,
        socket,
        peer,
        timers: HashMap::new(),
        stats,
        events,
        registry,
        discriminator,
    };
    task.step(Event::Start);
    loop {
        let next = task
            .timers
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(t, at)| (*t, *at));
        tokio::select! {
            input = rx.recv() => match input {
                Some(Input::Packet(packet, from)) => {
                    if task.peer.is_none() {
                        task.learn(from);
                    }
                    lock(&task.stats).received += 1;
                    task.step(Event::Received(packet));
                }
                Some(Input::Reconfigure(config)) => task.reconfigure(config),
                Some(Input::Stop) | None => {
                    task.admin_down().await;
                    return;
                }
            },
            () = sleep_until(next) => {
                if let Some((timer, _)) = next {
                    task.timers.remove(&timer);
                    task.step(Event::TimerFired(timer));
                }
            }
        }
    }
}

fn port(config: &SessionConfig) -> u16 {
    if config.multihop {
        MULTIHOP_PORT
    } else {
        SINGLE_HOP_PORT
    }
}

async fn sleep_until(next: Option<(Timer, Instant)>) {
    match next {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn learn(&mut self, from: SocketAddr) {
        let SocketAddr::V6(from) = from else { return };
        let to = SocketAddr::V6(SocketAddrV6::new(
            *from.ip(),
            port(&self.config),
            0,
            from.scope_id(),
        ));
        self.peer = Some(to);
        lock(&self.stats).peer = Some(IpAddr::V6(*from.ip()));
        let mut r = lock(&self.registry);
        if let Some(route) = r.by_discriminator.get_mut(&self.discriminator) {
            route.peer = Some((IpAddr::V6(*from.ip()), from.scope_id()));
        }
        r.by_peer.insert(
            (
                self.config.multihop,
                IpAddr::V6(*from.ip()),
                from.scope_id(),
            ),
            self.discriminator,
        );
    }

    fn reconfigure(&mut self, config: SessionConfig) {
        match self.session.reconfigure(config.fsm(self.discriminator)) {
            Ok(actions) => {
                {
                    let mut r = lock(&self.registry);
                    if let Some(route) = r.by_discriminator.get_mut(&self.discriminator) {
                        route.minimum_ttl = config.minimum_ttl;
                    }
                }
                self.config = config;
                self.apply(actions);
            }
            Err(e) => lock(&self.stats).last_error = Some(e.to_string()),
        }
        self.snapshot();
    }

    fn step(&mut self, event: Event) {
        let actions = self.session.handle(event);
        self.apply(actions);
        self.snapshot();
    }

    fn snapshot(&self) {
        let mut s = lock(&self.stats);
        s.state = Some(self.session.state());
        s.diagnostic = self.session.diagnostic();
        s.remote = *self.session.remote();
        s.transmit_interval = self.session.transmit_interval();
        s.detection_time = self.session.detection_time();
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(packet) => self.send(&packet),
                Action::ArmTimer(timer, after) => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Action::CancelTimer(timer) => {
                    self.timers.remove(&timer);
                }
                Action::StateChanged {
                    from,
                    to,
                    diagnostic,
                } => self.changed(from, to, diagnostic),
            }
        }
    }

    fn send(&mut self, packet: &ControlRepr) {
        let (Some(socket), Some(peer)) = (&self.socket, self.peer) else {
            return;
        };
        match socket.try_send_to(&packet.to_bytes(), peer) {
            Ok(_) => lock(&self.stats).sent += 1,
            Err(e) => lock(&self.stats).last_error = Some(format!("sending to {peer}: {e}")),
        }
    }

    fn changed(&mut self, from: State, to: State, diagnostic: Diagnostic) {
        let event = BfdEvent {
            id: self.config.id.clone(),
            peer: self.peer.map(|p| p.ip()),
            from,
            to,
            diagnostic,
            at: SystemTime::now(),
        };
        {
            let mut s = lock(&self.stats);
            if to == State::Up {
                s.up_events += 1;
                s.up_since = Some(event.at);
                s.last_error = None;
            } else if from == State::Up {
                s.down_events += 1;
                s.up_since = None;
            }
            if s.recent.len() == MAX_RECENT {
                s.recent.pop_front();
            }
            s.recent.push_back(event.clone());
        }
        let _ = self.events.send(event);
    }

    /// Tells the peer we are going away, a few times in case one is lost.
    async fn admin_down(&mut self) {
        let actions = self.session.handle(Event::Stop);
        self.apply(actions);
        self.snapshot();
        let packet = self.session.packet();
        for _ in 1..ADMIN_DOWN_PACKETS {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.send(&packet);
        }
    }
}

/// A received datagram with what the kernel says about it.
struct Datagram {
    len: usize,
    from: SocketAddr,
    ttl: Option<u8>,
    ifindex: u32,
}

fn receive_socket(multihop: bool, v6: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let port = if multihop {
        MULTIHOP_PORT
    } else {
        SINGLE_HOP_PORT
    };
    let socket = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    if v6 {
        socket.set_only_v6(true)?;
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
        socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    } else {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?;
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
        socket.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).into())?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// nix's typed socket options, with its error as the `io::Error` the rest of the task uses.
fn setsockopt<O: SetSockOpt>(
    socket: &socket2::Socket,
    option: O,
    value: &O::Val,
) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, option, value).map_err(io::Error::from)
}

fn recv(socket: &socket2::Socket, v6: bool, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage, recvmsg,
    };
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut ttl = None;
    let mut ifindex = 0u32;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => ifindex = info.ipi6_ifindex,
                _ => {}
            }
        }
    }
    let from = msg.address.and_then(|a| {
        if v6 {
            a.as_sockaddr_in6().map(|s: &SockaddrIn6| {
                SocketAddr::V6(SocketAddrV6::new(s.ip(), s.port(), 0, s.scope_id()))
            })
        } else {
            a.as_sockaddr_in()
                .map(|s: &SockaddrIn| SocketAddr::new(IpAddr::V4(s.ip()), s.port()))
        }
    });
    Ok(from.map(|from| Datagram {
        len: msg.bytes,
        from,
        ttl,
        ifindex,
    }))
}

async fn receive_loop(multihop: bool, v6: bool, registry: Arc<Mutex<Registry>>) {
    let socket = loop {
        let registered = receive_socket(multihop, v6).and_then(|s| {
            // SAFETY: the socket owns its descriptor, which stays open until the AsyncFd
            // drops the socket.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE)
            }
            .map_err(io::Error::from)
        });
        match registered {
            Ok(s) => break s,
            Err(e) => {
                let port = if multihop {
                    MULTIHOP_PORT
                } else {
                    SINGLE_HOP_PORT
                };
                let family = if v6 { "IPv6" } else { "IPv4" };
                lock(&registry).last_error =
                    Some(format!("cannot receive on {family} UDP port {port}: {e}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let mut buf = [0u8; 512];
    loop {
        let Ok(mut guard) = socket.readable().await else {
            return;
        };
        let Ok(result) = guard.try_io(|s| recv(s.get_ref(), v6, &mut buf)) else {
            continue;
        };
        let datagram = match result {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                lock(&registry).last_error = Some(format!("receiving BFD packets: {e}"));
                continue;
            }
        };
        let Some(bytes) = buf.get(..datagram.len) else {
            continue;
        };
        dispatch(&registry, multihop, bytes, &datagram);
    }
}

/// Finds the session a datagram is for and checks it may be: RFC 5880 §6.8.6 and the
/// TTL rules of RFC 5881 §5 / RFC 5883 §2.
fn dispatch(registry: &Mutex<Registry>, multihop: bool, bytes: &[u8], d: &Datagram) {
    let mut r = lock(registry);
    let Ok(packet) = ControlRepr::from_bytes(bytes) else {
        r.unmatched += 1;
        return;
    };
    let source = d.from.ip().to_canonical();
    let scope = if is_link_local(&source) { d.ifindex } else { 0 };
    let discriminator = if packet.your_discriminator != 0 {
        Some(packet.your_discriminator)
    } else {
        r.by_peer
            .get(&(multihop, source, scope))
            .or_else(|| {
                (!multihop && is_link_local(&source))
                    .then(|| r.learners.get(&d.ifindex))
                    .flatten()
            })
            .copied()
    };
    let Some(route) = discriminator
        .and_then(|d| r.by_discriminator.get(&d))
        .cloned()
    else {
        r.unmatched += 1;
        return;
    };
    drop(r);
    let from_peer = match route.peer {
        Some((ip, s)) => ip == source && (s == 0 || s == scope),
        None => route.learn_on == Some(d.ifindex) && is_link_local(&source),
    };
    let ttl_ok = if route.multihop {
        d.ttl.is_some_and(|t| t >= route.minimum_ttl)
    } else {
        d.ttl == Some(255)
    };
    if route.multihop != multihop || !from_peer || !ttl_ok {
        lock(&route.stats).dropped += 1;
        return;
    }
    let from = match d.from {
        SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, d.ifindex)),
        other => other,
    };
    let _ = route.tx.send(Input::Packet(packet, from));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(your: u32, state: State) -> [u8; 24] {
        ControlRepr {
            diagnostic: Diagnostic::NONE,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_multiplier: 3,
            my_discriminator: 42,
            your_discriminator: your,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
        .to_bytes()
    }

    fn registry(
        multihop: bool,
        peer: Option<(IpAddr, u32)>,
        learn_on: Option<u32>,
    ) -> (
        Mutex<Registry>,
        mpsc::UnboundedReceiver<Input>,
        Arc<Mutex<Stats>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let mut r = Registry::default();
        r.by_discriminator.insert(
            7,
            Route {
                tx,
                stats: stats.clone(),
                multihop,
                minimum_ttl: 250,
                peer,
                learn_on,
            },
        );
        match peer {
            Some((ip, scope)) => {
                r.by_peer.insert((multihop, ip, scope), 7);
            }
            None => {
                r.learners.insert(learn_on.unwrap_or(0), 7);
            }
        }
        (Mutex::new(r), rx, stats)
    }

    fn datagram(from: &str, ttl: u8, ifindex: u32) -> Datagram {
        Datagram {
            len: 24,
            from: from.parse().unwrap(),
            ttl: Some(ttl),
            ifindex,
        }
    }

    #[test]
    fn single_hop_packets_need_ttl_255_and_the_right_source() {
        let peer: IpAddr = "192.0.2.2".parse().unwrap();
        let (r, mut rx, stats) = registry(false, Some((peer, 0)), None);
        // By source while Your Discriminator is zero, then by discriminator.
        dispatch(
            &r,
            false,
            &packet(0, State::Down),
            &datagram("192.0.2.2:49200", 255, 2),
        );
        dispatch(
            &r,
            false,
            &packet(7, State::Init),
            &datagram("192.0.2.2:49200", 255, 2),
        );
        assert!(matches!(rx.try_recv(), Ok(Input::Packet(p, _)) if p.state == State::Down));
        assert!(matches!(rx.try_recv(), Ok(Input::Packet(p, _)) if p.state == State::Init));
        // Forwarded (TTL 254), or from another address with our discriminator: dropped.
        dispatch(
            &r,
            false,
            &packet(7, State::Up),
            &datagram("192.0.2.2:49200", 254, 2),
        );
        dispatch(
            &r,
            false,
            &packet(7, State::Up),
            &datagram("192.0.2.9:49200", 255, 2),
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(lock(&stats).dropped, 2);
        // Unknown discriminators and garbage are counted, not delivered.
        dispatch(
            &r,
            false,
            &packet(8, State::Up),
            &datagram("192.0.2.2:49200", 255, 2),
        );
        dispatch(&r, false, &[1, 2, 3], &datagram("192.0.2.2:49200", 255, 2));
        assert_eq!(lock(&r).unmatched, 2);
        // A single-hop session takes nothing from the multihop port.
        dispatch(
            &r,
            true,
            &packet(7, State::Up),
            &datagram("192.0.2.2:49200", 255, 2),
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn multihop_packets_need_the_minimum_ttl() {
        let peer: IpAddr = "2001:db8::2".parse().unwrap();
        let (r, mut rx, stats) = registry(true, Some((peer, 0)), None);
        dispatch(
            &r,
            true,
            &packet(7, State::Up),
            &datagram("[2001:db8::2]:50000", 250, 3),
        );
        assert!(rx.try_recv().is_ok());
        dispatch(
            &r,
            true,
            &packet(7, State::Up),
            &datagram("[2001:db8::2]:50000", 249, 3),
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(lock(&stats).dropped, 1);
    }

    #[test]
    fn a_learning_session_takes_link_local_packets_of_its_interface() {
        let (r, mut rx, stats) = registry(false, None, Some(4));
        dispatch(
            &r,
            false,
            &packet(0, State::Down),
            &datagram("[fe80::2]:49999", 255, 4),
        );
        let Ok(Input::Packet(_, from)) = rx.try_recv() else {
            panic!("not delivered")
        };
        assert_eq!(from, "[fe80::2%4]:49999".parse().unwrap());
        // Another interface, or a global source: not its peer.
        dispatch(
            &r,
            false,
            &packet(7, State::Down),
            &datagram("[fe80::2]:49999", 255, 5),
        );
        dispatch(
            &r,
            false,
            &packet(7, State::Down),
            &datagram("[2001:db8::2]:49999", 255, 4),
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(lock(&stats).dropped, 2);
    }
}
