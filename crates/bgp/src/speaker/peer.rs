//! The task that runs one peer: it owns the connection, the timers and the Adj-RIB-Out,
//! and carries out what the [`Session`] decides.

use super::{Control, PeerConfig, PeerStats, Routes, SpeakerConfig};
use crate::adj_rib_out::{AdjRibOut, Export};
use crate::fsm::{
    self, Action, DownReason, Event, GracefulRestartConfig, Negotiated, Session, Timer,
};
use crate::socket::{self, ConnectParams};
use crate::wire::{self, Family, Message, Options, UpdateRepr};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a closing connection may take to deliver what was queued (a NOTIFICATION)
/// before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

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
        .map(|restart_time| GracefulRestartConfig {
            restart_time,
            restarting,
        });
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

struct Connection {
    reader: OwnedReadHalf,
    buf: Vec<u8>,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    writer_task: JoinHandle<()>,
    local: SocketAddr,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

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
    routes: watch::Receiver<Arc<Routes>>,
    graceful_shutdown: watch::Receiver<bool>,
    control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<Mutex<PeerStats>>,
}

impl PeerTask {
    pub(super) fn new(
        config: PeerConfig,
        speaker: &SpeakerConfig,
        restarting: Arc<AtomicBool>,
        routes: watch::Receiver<Arc<Routes>>,
        graceful_shutdown: watch::Receiver<bool>,
        control: mpsc::UnboundedReceiver<Control>,
        stats: Arc<Mutex<PeerStats>>,
    ) -> Result<PeerTask, fsm::ConfigError> {
        let session_config = session_config(&config, speaker, restarting.load(Ordering::Relaxed));
        let jitter = Jitter(seed(&config.id));
        let session = Session::new(session_config, jitter)?;
        Ok(PeerTask {
            config,
            restarting,
            session,
            connection: None,
            connecting: None,
            pending_incoming: None,
            closing: Vec::new(),
            timers: HashMap::new(),
            rib: AdjRibOut::new(),
            export: None,
            routes,
            graceful_shutdown,
            control,
            stats,
        })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, PeerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn run(mut self) {
        {
            let wanted = self.routes.borrow_and_update().len();
            self.stats().wanted = wanted;
        }
        let actions = self.session.handle(Event::Start);
        self.apply(actions);
        loop {
            let next_timer = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let established = self.export.is_some();
            tokio::select! {
                control = self.control.recv() => {
                    let reason = match control {
                        Some(Control::Incoming(stream)) => {
                            self.incoming(stream);
                            continue;
                        }
                        Some(Control::Stop(reason)) => reason,
                        #[cfg(test)]
                        Some(Control::Panic) => panic!("a fault injected by a test"),
                        None => "speaker stopped".to_string(),
                    };
                    self.stop(reason).await;
                    return;
                }
                result = connect_done(&mut self.connecting) => {
                    self.connecting = None;
                    match result {
                        Ok(stream) => match self.attach(stream) {
                            Ok(()) => {
                                let actions = self.session.handle(Event::TcpConnected);
                                self.apply(actions);
                            }
                            Err(e) => self.tcp_failed(e),
                        },
                        Err(e) => self.tcp_failed(e),
                    }
                }
                result = read_some(&mut self.connection) => {
                    match result {
                        Ok(0) | Err(_) => {
                            if let Ok(0) = result {
                                self.stats().last_error = Some("connection closed by the peer".into());
                            } else if let Err(e) = result {
                                self.stats().last_error = Some(format!("read: {e}"));
                            }
                            self.close_connection();
                            let actions = self.session.handle(Event::TcpClosed);
                            self.apply(actions);
                        }
                        Ok(_) => self.receive(),
                    }
                }
                _ = sleep_until(next_timer) => {
                    if let Some((timer, _)) = next_timer {
                        self.timers.remove(&timer);
                        let actions = self.session.handle(Event::TimerFired(timer));
                        self.apply(actions);
                    }
                }
                changed = self.routes.changed(), if established => {
                    if changed.is_err() {
                        // The speaker is gone without saying stop.
                        self.stop("speaker stopped".to_string()).await;
                        return;
                    }
                    self.sync();
                }
                changed = self.graceful_shutdown.changed() => {
                    if changed.is_err() {
                        self.stop("speaker stopped".to_string()).await;
                        return;
                    }
                    // Seen now, so a session that is down does not wake again for it;
                    // the next Established reads it.
                    self.graceful_shutdown.borrow_and_update();
                    if self.export.is_some() {
                        self.sync();
                    }
                }
            }
        }
    }

    /// The peer connected to us: the session takes the connection or refuses it.
    fn incoming(&mut self, stream: TcpStream) {
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_tcp_nodelay(true);
        let ttl = self.connect_params().ttl;
        let _ = match self.config.address {
            IpAddr::V4(_) => sock.set_ttl_v4(ttl),
            IpAddr::V6(_) => sock.set_unicast_hops_v6(ttl),
        };
        self.pending_incoming = Some(stream);
        let actions = self.session.handle(Event::IncomingConnection);
        self.apply(actions);
        // Neither taken nor refused (cannot happen with the FSM's answers): close it.
        self.pending_incoming = None;
    }

    /// Ends the session with Cease / Administrative Shutdown and lets it go out.
    async fn stop(&mut self, reason: String) {
        let actions = self.session.handle(Event::Stop { reason });
        self.apply(actions);
        self.finish().await;
    }

    fn tcp_failed(&mut self, e: io::Error) {
        self.stats().last_error = Some(format!("connect to {}: {e}", self.config.socket_addr()));
        let actions = self.session.handle(Event::TcpFailed);
        self.apply(actions);
    }

    fn attach(&mut self, stream: TcpStream) -> io::Result<()> {
        let local = stream.local_addr()?;
        // An IPv4 peer accepted on a dual-stack listener shows as ::ffff:a.b.c.d.
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_task = tokio::spawn(write_loop(writer, rx));
        self.connection = Some(Connection {
            reader,
            buf: Vec::with_capacity(8192),
            writer: tx,
            writer_task,
            local,
        });
        self.stats().local_address = Some(local);
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
                    let result = Message::from_bytes(&conn.buf[..len], &options);
                    conn.buf.drain(..len);
                    match result {
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
            let actions = self.session.handle(event);
            self.apply(actions);
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
                    self.connecting = Some(Box::pin(socket::connect(self.connect_params())));
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
                    if let Some(export) = &self.export {
                        let updates = self.rib.refresh(rr.family, &export.options);
                        self.send_updates(updates);
                    }
                }
            }
            self.stats().state = Some(self.session.state());
        }
    }

    fn connect_params(&self) -> ConnectParams {
        ConnectParams {
            peer: self.config.socket_addr(),
            source: self.config.source_address,
            ttl: if self.config.is_internal() || self.config.ebgp_multihop {
                255
            } else {
                1
            },
            md5_key: self.config.password.clone(),
        }
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
        if let Some(conn) = &self.connection {
            let len = bytes.len() as u64;
            if conn.writer.send(bytes).is_ok() {
                self.stats().bytes_sent += len;
            }
        }
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
        let len = batch.len() as u64;
        if let Some(conn) = &self.connection
            && conn.writer.send(batch).is_ok()
        {
            let mut s = self.stats();
            s.bytes_sent += len;
            s.updates_sent += count;
        }
        let actions = self.session.handle(Event::UpdateSent);
        self.apply(actions);
    }

    fn established(&mut self, n: Negotiated) {
        self.session.clear_restarting();
        self.restarting.store(false, Ordering::Relaxed);
        let local = self
            .connection
            .as_ref()
            .map(|c| socket::local_addresses(c.local.ip(), self.config.address))
            .unwrap_or_default();
        let link_local = local.link_local.filter(|_| self.config.link_local_next_hop);
        let next_hop_v4 = local.v4;
        let next_hop_v6 = local.v6.map(|global| (global, link_local));
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
        }
        self.export = Some(export);
        self.rib.clear();
        self.sync();
        // The initial table is complete (RFC 4724 §2).
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
        let mut s = self.stats();
        s.established_at = None;
        s.advertised = 0;
        s.families.clear();
        s.withheld.clear();
        s.last_error = Some(match reason {
            DownReason::Stopped(m) => format!("stopped: {m}"),
            DownReason::NotificationReceived(n) => format!("peer sent {n}"),
            DownReason::NotificationSent(n) => format!("sent {n}"),
            DownReason::ConnectionClosed => "connection closed".to_string(),
        });
    }

    /// Sends what changed between what the peer holds and what is wanted.
    fn sync(&mut self) {
        let Some(export) = self.export.as_mut() else {
            return;
        };
        export.graceful_shutdown = *self.graceful_shutdown.borrow_and_update();
        let wanted = self.routes.borrow_and_update().clone();
        let sync = self.rib.sync(&wanted, export);
        {
            let mut s = self.stats();
            s.wanted = wanted.len();
            s.advertised = self.rib.len();
            s.withheld = sync.withheld;
        }
        self.send_updates(sync.updates);
    }

    fn close_connection(&mut self) {
        if let Some(conn) = self.connection.take() {
            // Dropping the sender lets the writer deliver what is queued, then shut down.
            drop(conn.writer);
            drop(conn.reader);
            self.closing.retain(|t| !t.is_finished());
            self.closing.push(conn.writer_task);
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

async fn connect_done(connecting: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match connecting {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn read_some(connection: &mut Option<Connection>) -> io::Result<usize> {
    match connection {
        Some(conn) => {
            let mut chunk = [0u8; 16384];
            let n = conn.reader.read(&mut chunk).await?;
            conn.buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(timer: Option<(Timer, Instant)>) {
    match timer {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes queued messages in order, coalescing what is waiting into one write.
async fn write_loop(mut writer: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(mut bytes) = queue.recv().await {
        while bytes.len() < 65536 {
            match queue.try_recv() {
                Ok(more) => bytes.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
