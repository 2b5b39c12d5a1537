//! The task that runs one peer: it owns the connection, the timers and the Adj-RIB-Out,
//! and carries out what the [`Session`] decides.
//!
//! Received octets go into one `BytesMut`; each complete message is split off its front
//! (no copy, no shifting of what follows) and decoded. Sent octets go through a queue to a
//! writer task; when more than [`SEND_QUEUE_LIMIT`] octets wait there (the peer keeps the
//! session up but does not read), route changes are not encoded at all: once the writer
//! has drained the queue to half the limit, the next sync derives what to send from the
//! wanted table as it is then, so any number of changes in between costs nothing.

use super::{
    Control, MAX_RECENT_TRANSITIONS, PeerConfig, PeerStats, Routes, SessionEvent, SpeakerConfig,
    Transition,
};
use crate::adj_rib_out::{AdjRibOut, Export};
use crate::fsm::{
    self, Action, DownReason, Event, GracefulRestartConfig, Negotiated, Session, State, StopKind,
    Timer,
};
use crate::socket::{self, ConnectParams};
use crate::wire::{self, Family, Message, Options, UpdateRepr};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a closing connection may take to deliver what was queued (a NOTIFICATION)
/// before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Octets waiting for the connection beyond which route changes are held back (see the
/// module docs). KEEPALIVEs and NOTIFICATIONs still go: they are few and small.
pub const SEND_QUEUE_LIMIT: usize = 256 * 1024;

/// The session configuration a peer runs with.
pub(super) fn session_config(
    p: &PeerConfig,
    speaker: &SpeakerConfig,
    restarting: bool,
) -> fsm::Config {
    let mut c = fsm::Config::new(
        p.local_as,
        p.peer_as,
        p.router_id.unwrap_or(speaker.router_id),
    );
    c.hold_time = p.hold_time;
    c.keepalive_time = p.keepalive_time;
    c.passive = p.passive;
    c.connect_timeout = p.connect_time;
    c.backoff = p.backoff;
    c.extended_next_hop = p.extended_next_hop && p.address.is_ipv6();
    c.graceful_restart = p
        .graceful_restart
        .map(|restart_time| GracefulRestartConfig::new(restart_time, restarting));
    c
}

/// Jitter for the reconnect backoff (xorshift; quality does not matter, spread does).
struct Jitter(u64);

impl fsm::Random for Jitter {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
}

fn seed(id: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(id.as_bytes());
    h.finish() | 1
}

/// What waits to be written, shared by the peer task (which adds) and the writer task
/// (which takes away as the kernel accepts the octets).
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    pub queued: AtomicUsize,
    pub drained: Notify,
}

impl SendQueue {
    fn add(&self, len: usize) -> usize {
        self.queued.fetch_add(len, Ordering::Relaxed) + len
    }

    fn take(&self, len: usize) {
        let before = self.queued.fetch_sub(len, Ordering::Relaxed);
        let after = before.saturating_sub(len);
        if before > SEND_QUEUE_LIMIT / 2 && after <= SEND_QUEUE_LIMIT / 2 {
            self.drained.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

struct Connection {
    reader: OwnedReadHalf,
    buf: BytesMut,
    writer: mpsc::UnboundedSender<Bytes>,
    writer_task: JoinHandle<()>,
    local: SocketAddr,
    remote: SocketAddr,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// What the speaker hands a peer task besides its configuration.
pub(super) struct PeerChannels {
    pub restarting: Arc<AtomicBool>,
    pub routes: watch::Receiver<Arc<Routes>>,
    pub graceful_shutdown: watch::Receiver<bool>,
    /// Whether the peer's BFD session is up; read only when the peer waits for BFD.
    pub bfd: watch::Receiver<bool>,
    /// The router's link-local address on the interface, for an unnumbered peer.
    pub discovered: Option<watch::Receiver<Option<Ipv6Addr>>>,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub stats: Arc<Mutex<PeerStats>>,
    pub events: broadcast::Sender<SessionEvent>,
}

pub(super) struct PeerTask {
    config: PeerConfig,
    /// Shared with the speaker: whether this peer is still owed the R bit.
    restarting: Arc<AtomicBool>,
    session: Session<Jitter>,
    connection: Option<Connection>,
    connecting: Option<Connecting>,
    /// A connection the peer opened, while the session decides on it.
    pending_incoming: Option<TcpStream>,
    /// Closed connections still delivering their last octets.
    closing: Vec<JoinHandle<()>>,
    timers: HashMap<Timer, Instant>,
    rib: AdjRibOut,
    /// Set while Established.
    export: Option<Export>,
    /// Route changes wait for the send queue to drain.
    held_back: bool,
    /// ROUTE-REFRESH answers owed once the send queue has drained.
    refresh_owed: Vec<Family>,
    routes: watch::Receiver<Arc<Routes>>,
    graceful_shutdown: watch::Receiver<bool>,
    bfd: watch::Receiver<bool>,
    discovered: Option<watch::Receiver<Option<Ipv6Addr>>>,
    /// The address the router last connected to us from (unnumbered peers).
    incoming_from: Option<Ipv6Addr>,
    control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<Mutex<PeerStats>>,
    /// The current connection's.
    queue: Arc<SendQueue>,
    events: broadcast::Sender<SessionEvent>,
}

impl PeerTask {
    pub(super) fn new(
        config: PeerConfig,
        speaker: &SpeakerConfig,
        channels: PeerChannels,
    ) -> Result<PeerTask, fsm::ConfigError> {
        let session_config = session_config(
            &config,
            speaker,
            channels.restarting.load(Ordering::Relaxed),
        );
        let jitter = Jitter(seed(&config.id));
        let session = Session::new(session_config, jitter)?;
        Ok(PeerTask {
            config,
            restarting: channels.restarting,
            session,
            connection: None,
            connecting: None,
            pending_incoming: None,
            closing: Vec::new(),
            timers: HashMap::new(),
            rib: AdjRibOut::new(),
            export: None,
            held_back: false,
            refresh_owed: Vec::new(),
            routes: channels.routes,
            graceful_shutdown: channels.graceful_shutdown,
            bfd: channels.bfd,
            discovered: channels.discovered,
            incoming_from: None,
            control: channels.control,
            stats: channels.stats,
            queue: Arc::new(SendQueue::default()),
            events: channels.events,
        })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, PeerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the session may run: always, unless it waits for its BFD session.
    fn bfd_allows(&mut self) -> bool {
        !self.config.bfd || *self.bfd.borrow_and_update()
    }

    pub(super) async fn run(mut self) {
        {
            let wanted = self.routes.borrow_and_update().len();
            let mut s = self.stats();
            s.wanted = wanted;
            s.state = Some(State::Idle);
        }
        if let Some(d) = &mut self.discovered {
            d.borrow_and_update();
        }
        if self.bfd_allows() {
            self.handle(Event::Start);
        } else {
            self.stats().last_error = Some("waiting for the BFD session to come up".into());
        }
        loop {
            let next_timer = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let established = self.export.is_some();
            let held_back = self.held_back;
            let bfd = self.config.bfd;
            tokio::select! {
                control = self.control.recv() => {
                    let (reason, kind) = match control {
                        Some(Control::Incoming(stream)) => {
                            self.incoming(stream);
                            continue;
                        }
                        Some(Control::Stop(reason, kind)) => (reason, kind),
                        #[cfg(any(test, feature = "fault-injection"))]
                        Some(Control::Panic) => panic!("a fault injected by a test"),
                        None => ("speaker stopped".to_string(), StopKind::Shutdown),
                    };
                    self.stop(reason, kind).await;
                    return;
                }
                result = connect_done(&mut self.connecting) => {
                    self.connecting = None;
                    match result {
                        Ok(stream) => match self.attach(stream) {
                            Ok(()) => self.handle(Event::TcpConnected),
                            Err(e) => self.tcp_failed(e),
                        },
                        Err(e) => self.tcp_failed(e),
                    }
                }
                result = read_some(&mut self.connection) => {
                    match result {
                        Ok(0) | Err(_) => {
                            self.stats().last_error = Some(match result {
                                Err(e) => format!("read: {e}"),
                                Ok(_) => "connection closed by the peer".into(),
                            });
                            self.close_connection();
                            self.handle(Event::TcpClosed);
                        }
                        Ok(_) => self.receive(),
                    }
                }
                _ = sleep_until(next_timer) => {
                    if let Some((timer, _)) = next_timer {
                        self.timers.remove(&timer);
                        self.handle(Event::TimerFired(timer));
                    }
                }
                changed = self.routes.changed(), if established => {
                    if changed.is_err() {
                        // The speaker is gone without saying stop.
                        self.stop("speaker stopped".to_string(), StopKind::Shutdown).await;
                        return;
                    }
                    self.sync();
                }
                () = self.queue.drained.notified(), if held_back => {
                    self.held_back = false;
                    self.sync();
                }
                changed = self.graceful_shutdown.changed() => {
                    if changed.is_err() {
                        self.stop("speaker stopped".to_string(), StopKind::Shutdown).await;
                        return;
                    }
                    // Seen now, so a session that is down does not wake again for it;
                    // the next Established reads it.
                    self.graceful_shutdown.borrow_and_update();
                    if self.export.is_some() {
                        self.sync();
                    }
                }
                changed = self.bfd.changed(), if bfd => {
                    if changed.is_err() {
                        // Nobody reports BFD any more: keep the session as it is.
                        self.config.bfd = false;
                        continue;
                    }
                    self.bfd_changed();
                }
                changed = discovered(&mut self.discovered) => {
                    if changed {
                        self.address_learnt();
                    } else {
                        self.discovered = None;
                    }
                }
            }
        }
    }

    /// Hands `event` to the session and carries out its actions; a change of state is
    /// recorded, counted and published, whatever caused it.
    fn handle(&mut self, event: Event) {
        let before = self.session.state();
        let actions = self.session.handle(event);
        let after = self.session.state();
        let down = actions.iter().find_map(|a| match a {
            Action::Down { reason, .. } => Some(describe_down(reason)),
            _ => None,
        });
        self.apply(actions);
        if before != after {
            self.transition(before, after, down);
        }
    }

    fn transition(&mut self, from: State, to: State, reason: Option<String>) {
        let at = SystemTime::now();
        let remote = self.remote();
        let event = {
            let mut s = self.stats();
            s.state = Some(to);
            // Falling back to Active or Idle is a failure too (a connection refused, a peer
            // that closed): say which, as for a session that goes down.
            let reason = reason.or_else(|| {
                let failed =
                    from == State::Established || matches!(to, State::Active | State::Idle);
                (to != State::Established && failed)
                    .then(|| s.last_error.clone())
                    .flatten()
            });
            *s.transitions.entry(to).or_default() += 1;
            if s.recent.len() == MAX_RECENT_TRANSITIONS {
                s.recent.pop_front();
            }
            s.recent.push_back(Transition {
                from,
                to,
                at,
                reason: reason.clone(),
            });
            SessionEvent {
                id: self.config.id.clone(),
                address: remote.unwrap_or_else(|| self.config.socket_addr()),
                from,
                to,
                at,
                reason,
                families: s.families.clone(),
                wanted: s.wanted,
            }
        };
        // Nobody listening is fine: the counts above are kept all the same.
        let _ = self.events.send(event);
    }

    fn bfd_changed(&mut self) {
        let up = *self.bfd.borrow_and_update();
        self.stats().bfd_up = Some(up);
        match (up, self.session.state()) {
            (true, State::Idle) => {
                self.stats().last_error = None;
                self.handle(Event::Start);
            }
            (false, State::Idle) => {}
            (false, _) => {
                self.stats().last_error = Some("the BFD session went down".into());
                self.handle(Event::Stop {
                    reason: "BFD session down".into(),
                    kind: StopKind::BfdDown,
                });
            }
            (true, _) => {}
        }
    }

    /// The router's link-local address became known (or changed): a session waiting to
    /// connect tries at once.
    fn address_learnt(&mut self) {
        let learnt = self
            .discovered
            .as_mut()
            .and_then(|d| *d.borrow_and_update());
        self.stats().discovered = learnt;
        if learnt.is_some()
            && self.session.state() == State::Active
            && !self.config.passive
            && self.timers.contains_key(&Timer::ConnectRetry)
        {
            self.timers.remove(&Timer::ConnectRetry);
            self.handle(Event::TimerFired(Timer::ConnectRetry));
        }
    }

    /// The peer's address: configured, or for an unnumbered peer learnt from its Router
    /// Advertisements or its last connection to us, scoped to the interface.
    fn remote(&self) -> Option<SocketAddr> {
        let port = self.config.port;
        if !self.config.address.is_unspecified() {
            let addr = match self.config.address {
                IpAddr::V6(a) if is_link_local(&a) => SocketAddr::V6(SocketAddrV6::new(
                    a,
                    port,
                    0,
                    self.config.interface.as_deref().map_or(0, socket::if_index),
                )),
                other => SocketAddr::new(other, port),
            };
            return Some(addr);
        }
        let learnt = self
            .discovered
            .as_ref()
            .and_then(|d| *d.borrow())
            .or(self.incoming_from)?;
        let scope = self.config.interface.as_deref().map_or(0, socket::if_index);
        Some(SocketAddr::V6(SocketAddrV6::new(learnt, port, 0, scope)))
    }

    /// The peer connected to us: the session takes the connection or refuses it.
    fn incoming(&mut self, stream: TcpStream) {
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_tcp_nodelay(true);
        let ttl = self.ttl();
        let from = stream.peer_addr().ok();
        let _ = match from {
            Some(SocketAddr::V6(a)) if a.ip().to_ipv4_mapped().is_none() => {
                sock.set_unicast_hops_v6(ttl)
            }
            _ => sock.set_ttl_v4(ttl),
        };
        self.pending_incoming = Some(stream);
        self.handle(Event::IncomingConnection);
        if self.pending_incoming.is_none()
            && self.config.address.is_unspecified()
            && let Some(SocketAddr::V6(a)) = from
            && self
                .connection
                .as_ref()
                .is_some_and(|c| c.remote == SocketAddr::V6(a))
        {
            // An unnumbered peer that connected to us is where we connect next time.
            self.incoming_from = Some(*a.ip());
            self.stats().discovered = Some(*a.ip());
        }
        // Neither taken nor refused (cannot happen with the FSM's answers): close it.
        self.pending_incoming = None;
    }

    /// Ends the session as `kind` says and lets the last NOTIFICATION (if any) go out.
    async fn stop(&mut self, reason: String, kind: StopKind) {
        self.handle(Event::Stop { reason, kind });
        self.finish().await;
    }

    fn tcp_failed(&mut self, e: io::Error) {
        let to = self
            .remote()
            .map_or_else(|| "the peer".to_string(), |a| a.to_string());
        self.stats().last_error = Some(format!("connect to {to}: {e}"));
        self.handle(Event::TcpFailed);
    }

    fn attach(&mut self, stream: TcpStream) -> io::Result<()> {
        let local = canonical(stream.local_addr()?);
        let remote = canonical(stream.peer_addr()?);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        // A queue of its own: what an old connection still delivers holds nothing back.
        self.queue = Arc::new(SendQueue::default());
        let writer_task = tokio::spawn(write_loop(writer, rx, self.queue.clone()));
        self.connection = Some(Connection {
            reader,
            buf: BytesMut::with_capacity(READ_CHUNK),
            writer: tx,
            writer_task,
            local,
            remote,
        });
        let mut s = self.stats();
        s.local_address = Some(local);
        s.remote_address = Some(remote);
        s.send_queue = Some(self.queue.clone());
        Ok(())
    }

    /// Cuts the octets received so far into messages and hands them to the session.
    fn receive(&mut self) {
        loop {
            let Some(conn) = self.connection.as_mut() else {
                return;
            };
            let options = self.session.options();
            let event = match wire::message_len(&conn.buf, &options) {
                Ok(None) => return,
                Ok(Some(len)) if conn.buf.len() < len => return,
                Ok(Some(len)) => {
                    // The message leaves the front of the buffer without moving the rest.
                    let frame = conn.buf.split_to(len);
                    match Message::from_bytes(&frame, &options) {
                        Ok(message) => {
                            self.count_received(&message);
                            Event::MessageReceived(message)
                        }
                        Err(e) => Event::MalformedMessage(e),
                    }
                }
                Err(e) => {
                    conn.buf.clear();
                    Event::MalformedMessage(e)
                }
            };
            if let Event::MalformedMessage(e) = &event {
                self.stats().last_error = Some(format!("malformed message: {e}"));
            }
            self.handle(event);
        }
    }

    fn count_received(&self, message: &Message) {
        let mut s = self.stats();
        match message {
            Message::Update(_) => s.updates_received += 1,
            Message::Notification(n) => {
                *s.notifications_received
                    .entry((n.code, n.subcode))
                    .or_default() += 1;
                s.last_notification_received = Some(n.clone());
                s.last_error = Some(format!("peer sent {n}"));
            }
            _ => {}
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect => {
                    self.stats().connect_attempts += 1;
                    match self.connect_params() {
                        Some(params) => {
                            self.connecting = Some(Box::pin(socket::connect(params)));
                        }
                        None => {
                            let interface = self.config.interface.clone().unwrap_or_default();
                            self.connecting = Some(Box::pin(async move {
                                Err(io::Error::new(
                                    io::ErrorKind::NotConnected,
                                    format!(
                                        "the router's link-local address on {interface} is not known yet \
                                         (no Router Advertisement or connection from it)"
                                    ),
                                ))
                            }));
                        }
                    }
                }
                Action::Send(message) => self.send(&message),
                Action::ArmTimer(timer, after) => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Action::CancelTimer(timer) => {
                    self.timers.remove(&timer);
                }
                Action::Close => {
                    self.connecting = None;
                    self.close_connection();
                }
                Action::Accept => {
                    if let Some(stream) = self.pending_incoming.take() {
                        // Replaces whatever connection the session had (the FSM closed it).
                        self.close_connection();
                        self.connecting = None;
                        if let Err(e) = self.attach(stream) {
                            self.stats().last_error = Some(format!("incoming connection: {e}"));
                        }
                    }
                }
                Action::Reject(notification) => {
                    if let Some(mut stream) = self.pending_incoming.take() {
                        let bytes = notification.and_then(|n| {
                            Message::Notification(n).to_bytes(&Options::default()).ok()
                        });
                        self.closing.push(tokio::spawn(async move {
                            if let Some(b) = bytes {
                                let _ = stream.write_all(&b).await;
                            }
                            let _ = stream.shutdown().await;
                        }));
                    }
                }
                Action::Established(negotiated) => self.established(negotiated),
                Action::Down { reason, .. } => self.down(reason),
                Action::RouteRefreshRequested(rr) => {
                    self.stats().route_refreshes_received += 1;
                    if !self.refresh_owed.contains(&rr.family) {
                        self.refresh_owed.push(rr.family);
                    }
                    self.sync();
                }
            }
        }
    }

    /// TTL / hop limit of our packets: 1 for directly connected eBGP, 255 otherwise.
    fn ttl(&self) -> u32 {
        if self.config.is_internal() || self.config.ebgp_multihop {
            255
        } else {
            1
        }
    }

    fn connect_params(&self) -> Option<ConnectParams> {
        let peer = self.remote()?;
        Some(ConnectParams {
            peer,
            source: self.config.source_address,
            ttl: self.ttl(),
            md5_key: self.config.password.clone(),
        })
    }

    /// Queues `bytes` for the connection, whatever the queue holds.
    fn enqueue(&mut self, bytes: Bytes) -> bool {
        let Some(conn) = &self.connection else {
            return false;
        };
        let len = bytes.len();
        let queued = self.queue.add(len);
        if conn.writer.send(bytes).is_err() {
            self.queue.take(len);
            return false;
        }
        let mut s = self.stats();
        s.bytes_sent += len as u64;
        s.send_queue_peak = s.send_queue_peak.max(queued);
        true
    }

    fn send(&mut self, message: &Message) {
        let options = self.session.options();
        let bytes = match message.to_bytes(&options) {
            Ok(b) => b,
            Err(e) => {
                self.stats().last_error =
                    Some(format!("cannot encode {:?}: {e}", message.msg_type()));
                return;
            }
        };
        if let Message::Notification(n) = message {
            let mut s = self.stats();
            *s.notifications_sent.entry((n.code, n.subcode)).or_default() += 1;
            s.last_notification_sent = Some(n.clone());
            s.last_error = Some(format!("sent {n}"));
        }
        self.enqueue(Bytes::from(bytes));
    }

    fn send_updates(&mut self, updates: Vec<UpdateRepr>) {
        if updates.is_empty() {
            return;
        }
        let options = self.session.options();
        let mut batch = Vec::new();
        let mut count = 0u64;
        for u in updates {
            match Message::Update(u).emit(&mut batch, &options) {
                Ok(()) => count += 1,
                Err(e) => self.stats().last_error = Some(format!("cannot encode UPDATE: {e}")),
            }
        }
        if self.enqueue(Bytes::from(batch)) {
            self.stats().updates_sent += count;
        }
        self.handle(Event::UpdateSent);
    }

    fn established(&mut self, n: Negotiated) {
        self.session.clear_restarting();
        self.restarting.store(false, Ordering::Relaxed);
        let local = self
            .connection
            .as_ref()
            .map(|c| socket::local_addresses(c.local, c.remote.ip()))
            .unwrap_or_default();
        let link_local = local.link_local.filter(|_| self.config.link_local_next_hop);
        let next_hop_v4 = local.v4;
        let next_hop_v6 = match (local.v6, local.link_local) {
            (Some(global), _) => Some((global, link_local)),
            // Over a link with only link-local addresses (unnumbered), the link-local
            // address is the next hop, in both fields as FRR sends it.
            (None, Some(ll)) => Some((ll, Some(ll))),
            (None, None) => None,
        };
        let export = Export {
            local_as: self.config.local_as,
            internal: n.internal,
            families: n.families.clone(),
            ipv4_over_ipv6: n.ipv4_over_ipv6(),
            next_hop_v4,
            next_hop_v6,
            graceful_shutdown: *self.graceful_shutdown.borrow(),
            options: n.options(),
        };
        {
            let mut s = self.stats();
            s.established_at = Some(Instant::now());
            s.sessions_established += 1;
            s.peer_as = Some(n.peer_as);
            s.hold_time = Some(n.hold_time);
            s.families = n.families.clone();
            s.ipv4_over_ipv6 = n.ipv4_over_ipv6();
            s.graceful_restart = n.peer_graceful_restart.is_some();
            s.graceful_notification = n.graceful_notification;
            s.last_error = None;
        }
        self.export = Some(export);
        self.rib.clear();
        self.held_back = false;
        self.refresh_owed.clear();
        // The whole table goes out at once, whatever the queue limit: End-of-RIB must
        // follow a complete table (RFC 4724 §2), and a new connection's queue is empty.
        self.sync_now();
        let eor: Vec<UpdateRepr> = n
            .families
            .iter()
            .filter(|f| **f == Family::IPV4_UNICAST || **f == Family::IPV6_UNICAST)
            .map(|f| wire::end_of_rib(*f))
            .collect();
        self.send_updates(eor);
    }

    fn down(&mut self, reason: DownReason) {
        self.export = None;
        self.rib.clear();
        self.held_back = false;
        self.refresh_owed.clear();
        let mut s = self.stats();
        s.established_at = None;
        s.advertised = 0;
        s.families.clear();
        s.withheld.clear();
        s.graceful_restart = false;
        s.graceful_notification = false;
        s.last_error = Some(describe_down(&reason));
    }

    /// Sends what changed between what the peer holds and what is wanted, unless the send
    /// queue is full: then it waits until the queue drains, and derives the difference
    /// afresh then.
    fn sync(&mut self) {
        if self.export.is_none() {
            return;
        }
        if self.queue.len() > SEND_QUEUE_LIMIT {
            if !self.held_back {
                self.held_back = true;
                self.stats().send_queue_full += 1;
            }
            // Seen, so a change does not wake the task again until the queue drains.
            self.routes.borrow_and_update();
            return;
        }
        self.sync_now();
    }

    fn sync_now(&mut self) {
        let Some(export) = self.export.as_mut() else {
            return;
        };
        export.graceful_shutdown = *self.graceful_shutdown.borrow_and_update();
        let wanted = self.routes.borrow_and_update().clone();
        let sync = self.rib.sync(&wanted, export);
        let options = export.options;
        {
            let mut s = self.stats();
            s.wanted = wanted.len();
            s.advertised = self.rib.len();
            s.withheld = sync.withheld;
        }
        self.send_updates(sync.updates);
        for family in std::mem::take(&mut self.refresh_owed) {
            let updates = self.rib.refresh(family, &options);
            self.send_updates(updates);
        }
    }

    fn close_connection(&mut self) {
        if let Some(conn) = self.connection.take() {
            // Dropping the sender lets the writer deliver what is queued, then shut down;
            // a peer that does not read gets CLOSE_GRACE, then the socket is closed on it.
            drop(conn.writer);
            drop(conn.reader);
            let writer = conn.writer_task;
            let abort = writer.abort_handle();
            self.closing.retain(|t| !t.is_finished());
            self.closing.push(tokio::spawn(async move {
                if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                    abort.abort();
                }
            }));
            self.stats().send_queue = None;
        }
    }

    /// Lets the last NOTIFICATION go out, within a bound.
    async fn finish(&mut self) {
        self.close_connection();
        for task in self.closing.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        self.stats().established_at = None;
    }
}

fn describe_down(reason: &DownReason) -> String {
    match reason {
        DownReason::Stopped(m) => format!("stopped: {m}"),
        DownReason::NotificationReceived(n) => format!("peer sent {n}"),
        DownReason::NotificationSent(n) => format!("sent {n}"),
        DownReason::ConnectionClosed => "connection closed".to_string(),
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// An IPv4 peer accepted on a dual-stack listener shows as ::ffff:a.b.c.d.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(v6.ip().to_canonical(), v6.port())
        }
        other => other,
    }
}

async fn connect_done(connecting: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match connecting {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// At least this much room is made in the read buffer before each read.
const READ_CHUNK: usize = 16384;

async fn read_some(connection: &mut Option<Connection>) -> io::Result<usize> {
    match connection {
        Some(conn) => {
            // Reclaims the room of messages already split off when nothing holds them.
            conn.buf.reserve(READ_CHUNK);
            conn.reader.read_buf(&mut conn.buf).await
        }
        None => std::future::pending().await,
    }
}

/// Resolves when an unnumbered peer's learnt address changes (`true`), or when nobody
/// can report it any more (`false`); never without discovery.
async fn discovered(d: &mut Option<watch::Receiver<Option<Ipv6Addr>>>) -> bool {
    match d {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(timer: Option<(Timer, Instant)>) {
    match timer {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The writer's end of the queue. Whatever it was given and has not written is taken off
/// the queue's count when it ends, however it ends (aborted at [`CLOSE_GRACE`] too).
struct Unwritten {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queue: Arc<SendQueue>,
    /// Received from the channel, not yet written.
    pending: usize,
}

impl Drop for Unwritten {
    fn drop(&mut self) {
        while let Ok(more) = self.rx.try_recv() {
            self.pending += more.len();
        }
        self.queue.take(self.pending);
    }
}

/// Writes queued messages in order, coalescing what is waiting into one write.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<Bytes>,
    queue: Arc<SendQueue>,
) {
    let mut q = Unwritten {
        rx,
        queue,
        pending: 0,
    };
    let mut batch = BytesMut::new();
    while let Some(first) = q.rx.recv().await {
        q.pending += first.len();
        let chunk = if first.len() >= 65536 {
            first
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < 65536 {
                match q.rx.try_recv() {
                    Ok(more) => {
                        q.pending += more.len();
                        batch.extend_from_slice(&more);
                    }
                    Err(_) => break,
                }
            }
            batch.split().freeze()
        };
        if writer.write_all(&chunk).await.is_err() {
            return;
        }
        q.queue.take(chunk.len());
        q.pending -= chunk.len();
    }
    let _ = writer.shutdown().await;
}
