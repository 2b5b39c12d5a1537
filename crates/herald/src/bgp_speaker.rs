//! The BGP actuator: runs the plan's sessions, and the BFD sessions of the peers that name
//! a BFDProfile, and gives each peer the plan's routes.
//!
//! Turns each planned peer (a MetalLB BGPPeer that selects this node) into a session of the
//! `bgp` crate's speaker and each planned route into a prefix with its communities and
//! local-pref. Routes are set before peers, so a session that comes up (after a restart,
//! under graceful restart) sends its complete table before End-of-RIB. Peers the speaker
//! cannot run are shown in `/status` with the reason and logged, not silently dropped.
//! An unnumbered BGPPeer (`interface`) is the router at the other end of that interface,
//! found by its Router Advertisements (see `bgp::unnumbered`).
//!
//! BFD: a peer whose BGPPeer names a BFDProfile gets a BFD session of the `bfd` crate with
//! the profile's values (`receiveInterval`, `transmitInterval`, `detectMultiplier`,
//! `passiveMode`, and `minimumTtl` for multihop, which `ebgpMultiHop` peers are). Its BGP
//! session starts only once BFD is up and ends (Cease / BFD Down) as soon as BFD goes
//! down. `echoMode` and `echoInterval` are not run: herald warns once per profile and runs
//! the session on control packets alone.
//!
//! Session state is pushed by both crates as it changes: every transition is logged here,
//! and counted and kept (the latest few) for `/status` and `/metrics` by the crates.
//!
//! Shutdown, per the graceful restart table of the `bgp` crate: a node that stays (herald
//! restarts) closes its sessions so routers keep its routes (`StopKind::Restart`), unless
//! the node is going away (cordoned or being deleted) or `--bgp-graceful-shutdown` asks to
//! drain first: then routes are withdrawn (`StopKind::Shutdown`, a Hard Reset where RFC
//! 8538 is negotiated). BFD sessions say AdminDown after the BGP sessions have closed.

use crate::metrics::{Family, counter_family, gauge_family};
use crate::state::rfc3339;
use crate::supervise::{Reporter, Tasks};
use bfd::{Bfd, BfdEvent, SessionConfig as BfdConfig, SessionStatus as BfdStatus};
use bgp::StopKind;
use bgp::fsm::{PeerAs, State};
use bgp::wire::{Community, LargeCommunity, Prefix};
use bgp::{PeerConfig, PeerStatus, RouteAttrs, Routes, SessionEvent, Speaker, SpeakerConfig};
use model::plan::{Departure, PeerPlan};
use model::world::{BfdProfile, Peer, PeerAsn, PeerEndpoint, ServiceRef};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, error, info, warn};

/// The restart time offered with graceful restart (FRR's and MetalLB's default).
const GRACEFUL_RESTART_TIME: u16 = 120;

/// How often withheld routes are looked for, to log them (they are not session state).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The name of the task that watches the sessions (starts dead peer tasks again, and logs
/// withheld routes).
const SESSIONS_TASK: &str = "bgp_sessions";
/// The name of the task that logs every BGP session transition.
const SESSION_LOG_TASK: &str = "bgp_session_log";
/// The name of the task that takes each BFD session's state to its BGP session.
const BFD_TASK: &str = "bfd_sessions";

/// One planned peer as the speaker should run it, or why it cannot.
struct Planned {
    peer: Peer,
    /// Which services each planned route is for (for `metallb_speaker_announced`); the
    /// routes themselves go to the speaker.
    services: BTreeMap<Prefix, Vec<ServiceRef>>,
    session: Result<PeerConfig, String>,
    /// Its BFD session, when the peer names a profile.
    bfd: Option<BfdConfig>,
    /// What of the profile is not run.
    bfd_warnings: Vec<String>,
}

/// What `/status` shows of one planned peer.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStatus {
    pub peer: String,
    pub address: String,
    /// Idle, Connect, Active, OpenSent, OpenConfirm, Established; or NotRunning.
    pub state: String,
    /// Why the session is not run at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_running: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_address: Option<SocketAddr>,
    /// The far end of the current (or last) connection: an unnumbered peer's link-local
    /// address once learnt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    pub router_id: Option<Ipv4Addr>,
    pub families: Vec<String>,
    /// Graceful restart negotiated on the current session, and the RFC 8538 N bit with it.
    pub graceful_restart: bool,
    pub graceful_restart_notification: bool,
    pub routes_planned: usize,
    pub routes_advertised: usize,
    pub routes_pending: usize,
    /// Planned routes this session cannot carry, with the reason.
    pub withheld: BTreeMap<String, String>,
    pub updates_sent: u64,
    pub sessions_established: u64,
    /// Octets waiting for the connection, the most there were, and how often route changes
    /// waited for the queue to drain.
    pub send_queue_bytes: usize,
    pub send_queue_peak_bytes: usize,
    pub send_queue_full: u64,
    /// State changes, counted by the state entered.
    pub transitions: BTreeMap<String, u64>,
    /// The latest state changes, oldest first, however short each state lasted.
    pub recent_transitions: Vec<TransitionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_notification_sent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_notification_received: Option<String>,
    /// Router discovery on an unnumbered peer's interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_discovery: Option<DiscoveryView>,
    /// The peer's BFD session, when its BGPPeer names a BFDProfile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransitionView {
    pub from: String,
    pub to: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiscoveryView {
    pub interface: String,
    pub router: Option<Ipv6Addr>,
    pub advertisements_sent: u64,
    pub advertisements_received: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `/status` shows of one BFD session.
#[derive(Clone, Debug, Serialize)]
pub struct BfdView {
    pub profile: String,
    /// AdminDown, Down, Init, Up.
    pub state: String,
    pub diagnostic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    pub multihop: bool,
    pub passive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_state: Option<String>,
    pub remote_diagnostic: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// The profile's values.
    pub transmit_interval_ms: f64,
    pub receive_interval_ms: f64,
    pub detect_multiplier: u8,
    /// What the peer sends.
    pub remote_transmit_interval_ms: f64,
    pub remote_receive_interval_ms: f64,
    pub remote_detect_multiplier: u8,
    /// In force: between our packets (before jitter), and until the peer counts as gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_transmit_interval_ms: Option<f64>,
    pub detection_time_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_since: Option<String>,
    pub control_packets_received: u64,
    pub control_packets_sent: u64,
    pub up_events: u64,
    pub down_events: u64,
    pub packets_dropped: u64,
    /// Profile fields herald does not run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub recent_transitions: Vec<TransitionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The running BGP actuator.
#[derive(Debug)]
pub struct BgpSpeaker {
    inner: Arc<Inner>,
    tasks: Tasks,
}

struct Inner {
    node: String,
    graceful_shutdown: Option<Duration>,
    link_local_next_hop: bool,
    speaker: Mutex<Option<Speaker>>,
    bfd: Mutex<Option<Bfd>>,
    planned: Mutex<Vec<Planned>>,
    /// Router ids already given, by peer name, so one never changes under a running session.
    router_ids: Mutex<BTreeMap<String, Ipv4Addr>>,
    /// Profiles already warned about, with what was said.
    bfd_warned: Mutex<BTreeMap<String, Vec<String>>>,
    /// Whether the node is going away, from the running plan.
    departing: Mutex<Option<Departure>>,
    /// Where peer tasks that were started again are counted.
    restarts: Reporter,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgpSpeaker")
            .field("node", &self.node)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for BgpSpeaker {
    fn drop(&mut self) {
        for task in [SESSIONS_TASK, SESSION_LOG_TASK, BFD_TASK] {
            self.tasks.stop_task(task);
        }
    }
}

impl BgpSpeaker {
    /// Starts an empty speaker. Every peer's first OPEN carries the graceful restart R bit:
    /// herald may have been restarted, and a peer keeping our routes must wait for our
    /// End-of-RIB rather than drop them.
    pub fn start(
        node: String,
        graceful_shutdown: Option<Duration>,
        link_local_next_hop: bool,
        tasks: &Tasks,
    ) -> BgpSpeaker {
        let speaker = Speaker::new(SpeakerConfig {
            router_id: hashed_router_id(&node),
            restarting: true,
        });
        let bfd = Bfd::new();
        let sessions = speaker.events();
        let bfd_events = bfd.events();
        let inner = Arc::new(Inner {
            node,
            graceful_shutdown,
            link_local_next_hop,
            speaker: Mutex::new(Some(speaker)),
            bfd: Mutex::new(Some(bfd)),
            planned: Mutex::new(Vec::new()),
            router_ids: Mutex::new(BTreeMap::new()),
            bfd_warned: Mutex::new(BTreeMap::new()),
            departing: Mutex::new(None),
            restarts: tasks.reporter(),
        });
        // Supervised: one that ends is started again, with a new subscription when it
        // followed a channel (what it missed meanwhile is read from the sessions' state).
        let watched = inner.clone();
        tasks.spawn(SESSIONS_TASK, move || watch_sessions(watched.clone()));
        let logged = inner.clone();
        let mut first = Some(sessions);
        tasks.spawn(SESSION_LOG_TASK, move || {
            let events = first
                .take()
                .or_else(|| lock(&logged.speaker).as_ref().map(Speaker::events));
            log_sessions(events)
        });
        let followed = inner.clone();
        let mut first = Some(bfd_events);
        tasks.spawn(BFD_TASK, move || {
            let events = first
                .take()
                .or_else(|| lock(&followed.bfd).as_ref().map(Bfd::events));
            follow_bfd(followed.clone(), events)
        });
        BgpSpeaker {
            inner,
            tasks: tasks.clone(),
        }
    }

    /// Makes the task of peer `id` panic (a test); false when there is none.
    #[cfg(feature = "fault-injection")]
    pub fn panic_peer(&self, id: &str) -> bool {
        lock(&self.inner.speaker)
            .as_ref()
            .is_some_and(|s| s.panic_peer(id))
    }

    /// Makes the plan's peers and routes the speaker's (level-based: unchanged peers are
    /// left alone, changed ones reset, removed ones closed with Cease), and the BFD
    /// sessions of the peers that name a profile. `departing` says whether the node is
    /// going away, which decides how sessions end at shutdown.
    pub fn set(&self, plan: &[PeerPlan], departing: Option<Departure>) {
        let previous = std::mem::replace(&mut *lock(&self.inner.departing), departing);
        if let Some(d) = departing
            && previous != departing
        {
            info!(
                protocol = "bgp",
                node = %self.inner.node,
                departing = %d,
                "the node is going away: at shutdown BGP sessions will withdraw its routes rather than keep them for a restart"
            );
        }
        let (planned, routes): (Vec<Planned>, Vec<Routes>) =
            plan.iter().map(|p| self.inner.plan_peer(p)).unzip();
        self.inner.warn_bfd(&planned);
        let bfd_sessions: Vec<BfdConfig> = planned
            .iter()
            .filter(|p| p.session.is_ok())
            .filter_map(|p| p.bfd.clone())
            .collect();
        if let Some(bfd) = lock(&self.inner.bfd).as_mut()
            && let Err(errors) = bfd.set_sessions(bfd_sessions)
        {
            for e in errors {
                error!(protocol = "bfd", error = %e, "BFD session cannot run");
            }
        }
        let mut guard = lock(&self.inner.speaker);
        let Some(speaker) = guard.as_mut() else {
            return;
        };
        let mut configs = Vec::new();
        for (p, routes) in planned.iter().zip(routes) {
            match &p.session {
                Ok(config) => {
                    speaker.set_routes(&config.id, routes);
                    configs.push(config.clone());
                }
                Err(why) => warn!(
                    protocol = "bgp",
                    peer = %p.peer.name,
                    reason = %why,
                    "BGP session not started"
                ),
            }
        }
        let gone: Vec<String> = lock(&self.inner.planned)
            .iter()
            .filter(|old| !configs.iter().any(|c| c.id == old.peer.name))
            .map(|old| old.peer.name.clone())
            .collect();
        for id in &gone {
            speaker.set_routes(id, Routes::new());
        }
        if let Err(errors) = speaker.set_peers(configs) {
            for e in errors {
                error!(protocol = "bgp", error = %e, "BGP session cannot run");
            }
        }
        drop(guard);
        *lock(&self.inner.planned) = planned;
    }

    pub fn status(&self) -> Vec<SessionStatus> {
        self.inner.status()
    }

    /// The planned peers whose session cannot run, with the reason.
    pub fn not_running(&self) -> BTreeMap<String, String> {
        lock(&self.inner.planned)
            .iter()
            .filter_map(|p| Some((p.peer.name.clone(), p.session.clone().err()?)))
            .collect()
    }

    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(BgpCollector(self.inner.clone()))
    }

    /// Service addresses (or aggregates) that at least one Established session carries.
    pub fn announced(&self) -> BTreeSet<(ServiceRef, String)> {
        let running = self.inner.running();
        let mut out = BTreeSet::new();
        for p in lock(&self.inner.planned).iter() {
            let Some(s) = running.get(&p.peer.name) else {
                continue;
            };
            if s.state != State::Established {
                continue;
            }
            for (prefix, services) in &p.services {
                if s.withheld.contains_key(prefix) {
                    continue;
                }
                for svc in services {
                    out.insert((svc.clone(), announced_ip(prefix)));
                }
            }
        }
        out
    }

    /// Ends every session as the graceful restart table says: kept by routers for a
    /// restart, or (the node going away, or a drain asked for) withdrawn; then the BFD
    /// sessions say AdminDown.
    pub async fn shutdown(&self) {
        self.tasks.stop_task(SESSIONS_TASK);
        let speaker = lock(&self.inner.speaker).take();
        let bfd = lock(&self.inner.bfd).take();
        let departing = *lock(&self.inner.departing);
        let drain = self.inner.graceful_shutdown;
        if let Some(speaker) = speaker {
            let (kind, message) = match (departing, drain) {
                (Some(d), _) => (
                    StopKind::Shutdown,
                    format!("node {} is {d}: withdrawing its routes", self.inner.node),
                ),
                (None, Some(_)) => (
                    StopKind::Shutdown,
                    format!("herald on node {} is shutting down", self.inner.node),
                ),
                (None, None) => (
                    StopKind::Restart,
                    format!("herald on node {} is restarting", self.inner.node),
                ),
            };
            if let Some(wait) = drain {
                info!(
                    protocol = "bgp",
                    wait_seconds = wait.as_secs_f64(),
                    "announcing GRACEFUL_SHUTDOWN (65535:0) before closing sessions"
                );
            }
            info!(
                protocol = "bgp",
                departing = departing.map(|d| d.to_string()),
                keep_routes = kind == StopKind::Restart,
                "{}",
                if kind == StopKind::Restart {
                    "closing BGP sessions for a restart: peers with graceful restart keep this node's routes"
                } else {
                    "closing BGP sessions for good: peers withdraw this node's routes"
                }
            );
            speaker.shutdown(drain, kind, &message).await;
            info!(protocol = "bgp", "BGP sessions closed");
        }
        if let Some(bfd) = bfd {
            bfd.shutdown().await;
        }
        self.tasks.stop_task(SESSION_LOG_TASK);
        self.tasks.stop_task(BFD_TASK);
    }
}

/// The `ip` label of a route: the address of a host route, the prefix of an aggregate.
fn announced_ip(prefix: &Prefix) -> String {
    let host = if prefix.is_ipv4() { 32 } else { 128 };
    if prefix.prefix_len() == host {
        prefix.addr().to_string()
    } else {
        prefix.to_string()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn transitions_view(recent: &[bgp::Transition]) -> Vec<TransitionView> {
    recent
        .iter()
        .map(|t| TransitionView {
            from: format!("{:?}", t.from),
            to: format!("{:?}", t.to),
            at: rfc3339(t.at),
            reason: t.reason.clone(),
        })
        .collect()
}

fn bfd_view(profile: &str, s: &BfdStatus, warnings: Vec<String>) -> BfdView {
    BfdView {
        profile: profile.to_owned(),
        state: s.state.to_string(),
        diagnostic: s.diagnostic.to_string(),
        peer: s.peer,
        local: s.local,
        multihop: s.multihop,
        passive: s.passive,
        remote_state: s.remote_state.map(|r| r.to_string()),
        remote_diagnostic: s.remote_diagnostic.to_string(),
        local_discriminator: s.local_discriminator,
        remote_discriminator: s.remote_discriminator,
        transmit_interval_ms: ms(s.desired_min_tx),
        receive_interval_ms: ms(s.required_min_rx),
        detect_multiplier: s.detect_multiplier,
        remote_transmit_interval_ms: ms(s.remote_desired_min_tx),
        remote_receive_interval_ms: ms(s.remote_required_min_rx),
        remote_detect_multiplier: s.remote_detect_multiplier,
        actual_transmit_interval_ms: s.transmit_interval.map(ms),
        detection_time_ms: ms(s.detection_time),
        up_since: s.up_since.map(rfc3339),
        control_packets_received: s.control_packets_received,
        control_packets_sent: s.control_packets_sent,
        up_events: s.up_events,
        down_events: s.down_events,
        packets_dropped: s.packets_dropped,
        warnings,
        recent_transitions: s
            .recent
            .iter()
            .map(|e| TransitionView {
                from: e.from.to_string(),
                to: e.to.to_string(),
                at: rfc3339(e.at),
                reason: (e.to != bfd::State::Up).then(|| e.diagnostic.to_string()),
            })
            .collect(),
        last_error: s.last_error.clone(),
    }
}

impl Inner {
    fn running(&self) -> BTreeMap<String, PeerStatus> {
        lock(&self.speaker)
            .as_ref()
            .map(|s| {
                s.status()
                    .into_iter()
                    .map(|st| (st.id.clone(), st))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes each BFD session's state now to its BGP session.
    fn sync_bfd(&self) {
        let states = self.bfd_running();
        if let Some(speaker) = lock(&self.speaker).as_mut() {
            for (id, s) in states {
                speaker.set_bfd(&id, s.state == bfd::State::Up);
            }
        }
    }

    fn bfd_running(&self) -> BTreeMap<String, BfdStatus> {
        lock(&self.bfd)
            .as_ref()
            .map(|b| {
                b.status()
                    .into_iter()
                    .map(|st| (st.id.clone(), st))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Logs once per profile (and again when it changes) what herald does not run of it.
    fn warn_bfd(&self, planned: &[Planned]) {
        let mut warned = lock(&self.bfd_warned);
        let mut seen = BTreeSet::new();
        for p in planned {
            let Some(profile) = &p.peer.bfd_profile else {
                continue;
            };
            seen.insert(profile.clone());
            if warned.get(profile) == Some(&p.bfd_warnings) {
                continue;
            }
            for w in &p.bfd_warnings {
                warn!(protocol = "bfd", profile = %profile, peer = %p.peer.name, "{w}");
            }
            warned.insert(profile.clone(), p.bfd_warnings.clone());
        }
        warned.retain(|name, _| seen.contains(name));
    }

    fn plan_peer(&self, plan: &PeerPlan) -> (Planned, Routes) {
        let mut routes = Routes::new();
        let mut services = BTreeMap::new();
        let mut bad_prefix = None;
        for r in &plan.routes {
            let prefix = match Prefix::new(r.prefix.addr(), r.prefix.prefix_len()) {
                Ok(p) => p,
                Err(e) => {
                    bad_prefix = Some(format!("route {}: {e}", r.prefix));
                    continue;
                }
            };
            let attrs = RouteAttrs {
                communities: r.communities.iter().map(|c| Community(c.0)).collect(),
                large_communities: r
                    .large_communities
                    .iter()
                    .map(|c| LargeCommunity {
                        global_administrator: c.global_admin,
                        local_data_1: c.local_data_1,
                        local_data_2: c.local_data_2,
                    })
                    .collect(),
                local_pref: r.local_pref,
            };
            routes.insert(prefix, attrs);
            services.insert(prefix, r.services.clone());
        }
        if let Some(bad) = bad_prefix {
            error!(protocol = "bgp", peer = %plan.peer.name, problem = %bad, "route not announced");
        }
        let mut session = session_config(
            &plan.peer,
            |address| self.router_id(&plan.peer, address),
            self.link_local_next_hop,
        );
        let (bfd, bfd_warnings) = match (&plan.peer.bfd_profile, &plan.bfd) {
            (Some(_), Some(profile)) => {
                let (config, warnings) = bfd_session(&plan.peer, profile);
                (config, warnings)
            }
            (Some(name), None) => (
                None,
                vec![format!(
                    "BFDProfile {name:?} is not known: the BGP session runs without BFD"
                )],
            ),
            (None, _) => (None, Vec::new()),
        };
        if let (Ok(config), Some(_)) = (&mut session, &bfd) {
            config.bfd = true;
        }
        let planned = Planned {
            peer: plan.peer.clone(),
            services,
            session,
            bfd,
            bfd_warnings,
        };
        (planned, routes)
    }

    /// MetalLB's rule: `routerID` when set, else this node's IPv4 address toward the peer
    /// (the source address when one is given). Without any IPv4 on the way (an IPv6-only
    /// node, an unnumbered peer) a stable 32-bit number from the node name, as RFC 6286
    /// allows.
    fn router_id(&self, peer: &Peer, address: IpAddr) -> Ipv4Addr {
        let mut ids = lock(&self.router_ids);
        *ids.entry(peer.name.clone()).or_insert_with(|| {
            let toward = if address.is_unspecified() {
                None
            } else {
                local_address_toward(address)
            };
            match peer.source_address.or(toward) {
                Some(IpAddr::V4(v4)) if !v4.is_unspecified() => v4,
                _ => hashed_router_id(&self.node),
            }
        })
    }

    fn status(&self) -> Vec<SessionStatus> {
        let running = self.running();
        let bfd_running = self.bfd_running();
        lock(&self.planned)
            .iter()
            .map(|p| {
                let address = match &p.peer.endpoint {
                    PeerEndpoint::Address(ip) => SocketAddr::new(*ip, p.peer.port).to_string(),
                    PeerEndpoint::Interface(name) => format!("interface {name}"),
                };
                let mut status = SessionStatus {
                    peer: p.peer.name.clone(),
                    address,
                    state: "NotRunning".into(),
                    not_running: p.session.as_ref().err().cloned(),
                    local_address: None,
                    remote_address: None,
                    uptime_seconds: None,
                    router_id: p.session.as_ref().ok().and_then(|c| c.router_id),
                    families: Vec::new(),
                    graceful_restart: false,
                    graceful_restart_notification: false,
                    routes_planned: p.services.len(),
                    routes_advertised: 0,
                    routes_pending: p.services.len(),
                    withheld: BTreeMap::new(),
                    updates_sent: 0,
                    sessions_established: 0,
                    send_queue_bytes: 0,
                    send_queue_peak_bytes: 0,
                    send_queue_full: 0,
                    transitions: BTreeMap::new(),
                    recent_transitions: Vec::new(),
                    last_error: None,
                    last_notification_sent: None,
                    last_notification_received: None,
                    router_discovery: None,
                    bfd: None,
                };
                if let Some(s) = running.get(&p.peer.name) {
                    status.state = format!("{:?}", s.state);
                    status.local_address = s.local_address;
                    status.remote_address = s.remote_address.map(|a| a.to_string());
                    status.uptime_seconds = s.uptime.map(|u| u.as_secs());
                    status.families = s.families.iter().map(|f| format!("{f:?}")).collect();
                    status.graceful_restart = s.graceful_restart;
                    status.graceful_restart_notification = s.graceful_notification;
                    status.routes_advertised = s.advertised;
                    status.routes_pending = s.pending;
                    status.withheld = s
                        .withheld
                        .iter()
                        .map(|(prefix, why)| (prefix.to_string(), why.to_string()))
                        .collect();
                    status.updates_sent = s.updates_sent;
                    status.sessions_established = s.sessions_established;
                    status.send_queue_bytes = s.send_queue_bytes;
                    status.send_queue_peak_bytes = s.send_queue_peak;
                    status.send_queue_full = s.send_queue_full;
                    status.transitions = s
                        .transitions
                        .iter()
                        .map(|(state, n)| (format!("{state:?}"), *n))
                        .collect();
                    status.recent_transitions = transitions_view(&s.recent);
                    status.last_error = s.last_error.clone();
                    status.last_notification_sent =
                        s.last_notification_sent.as_ref().map(ToString::to_string);
                    status.last_notification_received = s
                        .last_notification_received
                        .as_ref()
                        .map(ToString::to_string);
                    status.router_discovery = s.discovery.as_ref().map(|d| DiscoveryView {
                        interface: d.interface.clone(),
                        router: d.router,
                        advertisements_sent: d.advertisements_sent,
                        advertisements_received: d.advertisements_received,
                        error: d.last_error.clone(),
                    });
                }
                if let (Some(profile), Some(b)) =
                    (&p.peer.bfd_profile, bfd_running.get(&p.peer.name))
                {
                    status.bfd = Some(bfd_view(profile, b, p.bfd_warnings.clone()));
                }
                status
            })
            .collect()
    }
}

/// The BFD session for `peer` with `profile`, and what of the profile is not run.
fn bfd_session(peer: &Peer, profile: &BfdProfile) -> (Option<BfdConfig>, Vec<String>) {
    let mut warnings = Vec::new();
    if profile.echo_mode {
        warnings.push(format!(
            "BFDProfile {:?}: echoMode is not supported; herald runs BFD in asynchronous mode on control packets alone (echoInterval {} ms is not used), and tells the peer not to send echo packets",
            profile.name, profile.echo_interval_ms
        ));
    }
    let (peer_address, interface) = match &peer.endpoint {
        PeerEndpoint::Address(ip) => (*ip, None),
        PeerEndpoint::Interface(name) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), Some(name.clone())),
    };
    let config = BfdConfig {
        id: peer.name.clone(),
        peer: peer_address,
        interface,
        source: peer.source_address,
        multihop: peer.ebgp_multihop,
        desired_min_tx: Duration::from_millis(u64::from(profile.transmit_interval_ms)),
        required_min_rx: Duration::from_millis(u64::from(profile.receive_interval_ms)),
        detect_multiplier: u8::try_from(profile.detect_multiplier).unwrap_or(u8::MAX),
        passive: profile.passive_mode,
        minimum_ttl: u8::try_from(profile.minimum_ttl).unwrap_or(254),
    };
    (Some(config), warnings)
}

/// The session the `bgp` crate runs for a MetalLB BGPPeer, or why none can run. The router
/// id comes from `router_id` when the peer sets none.
fn session_config(
    peer: &Peer,
    router_id: impl FnOnce(IpAddr) -> Ipv4Addr,
    link_local_next_hop: bool,
) -> Result<PeerConfig, String> {
    if let Some(vrf) = &peer.vrf {
        return Err(format!(
            "VRFs (spec.vrf {vrf:?}) are not supported yet; herald runs sessions in the default VRF only"
        ));
    }
    let peer_as = match peer.peer_asn {
        PeerAsn::Fixed(asn) => PeerAs::Fixed(asn),
        PeerAsn::Internal => PeerAs::Internal,
        PeerAsn::External => PeerAs::External,
    };
    let mut config = match &peer.endpoint {
        PeerEndpoint::Address(ip) => {
            PeerConfig::new(peer.name.clone(), *ip, peer.local_as(), peer_as)
        }
        PeerEndpoint::Interface(name) => {
            PeerConfig::unnumbered(peer.name.clone(), name, peer.local_as(), peer_as)
        }
    };
    config.port = peer.port;
    config.source_address = peer.source_address;
    config.router_id = Some(peer.router_id.unwrap_or_else(|| router_id(config.address)));
    config.hold_time = u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX);
    config.keepalive_time = Some(u16::try_from(peer.keepalive_time.as_secs()).unwrap_or(u16::MAX));
    if let Some(connect) = peer.connect_time {
        config.connect_time = connect;
    }
    config.ebgp_multihop = peer.ebgp_multihop;
    config.password = peer.password.as_ref().map(|p| p.value().into());
    config.graceful_restart = peer.graceful_restart.then_some(GRACEFUL_RESTART_TIME);
    // On an unnumbered link the link-local address is all there is: it always goes.
    config.link_local_next_hop = link_local_next_hop || config.is_unnumbered();
    Ok(config)
}

/// The local address the kernel would use to reach `peer`: a route lookup (connecting a UDP
/// socket sends nothing).
fn local_address_toward(peer: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match peer {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect((peer, 179)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// A non-zero BGP identifier from the node name (FNV-1a), the same on every start.
fn hashed_router_id(node: &str) -> Ipv4Addr {
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    Ipv4Addr::from(h.max(1))
}

/// Logs every change of every BGP session's state, as the speaker publishes it.
async fn log_sessions(events: Option<tokio::sync::broadcast::Receiver<SessionEvent>>) {
    // No speaker (it has shut down): nothing to log, and no failure either.
    let Some(mut events) = events else {
        return std::future::pending().await;
    };
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let e = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(missed)) => {
                warn!(
                    protocol = "bgp",
                    missed,
                    "BGP session changes came faster than they could be logged; see /status for their counts"
                );
                continue;
            }
            // The speaker has shut down; nothing more will come, and that is no failure.
            Err(RecvError::Closed) => return std::future::pending().await,
        };
        let from = format!("{:?}", e.from);
        let to = format!("{:?}", e.to);
        let reason = e.reason.as_deref();
        let (peer, address) = (&e.id, &e.address);
        match session_line(&mut failing, &e.id.to_string(), e.from, e.to, reason) {
            SessionLine::Established => info!(
                protocol = "bgp", %peer, %address, from, families = ?e.families,
                routes = e.wanted, "BGP session established"
            ),
            SessionLine::Down => warn!(
                protocol = "bgp", %peer, %address, to, reason = reason.unwrap_or(""),
                "BGP session down"
            ),
            SessionLine::NotEstablished => warn!(
                protocol = "bgp", %peer, %address, from, to, reason,
                "BGP session not established; retrying (attempts that fail alike are logged at debug)"
            ),
            SessionLine::StillNotEstablished => debug!(
                protocol = "bgp", %peer, %address, from, to, reason,
                "BGP session still not established"
            ),
            SessionLine::Changed => info!(
                protocol = "bgp", %peer, %address, from, to, reason,
                "BGP session state changed"
            ),
        }
    }
}

/// How one change of a session's state is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionLine {
    Established,
    Down,
    /// A failure to come up, the first or one unlike the last logged (warn).
    NotEstablished,
    /// A retry of a session that keeps failing (debug).
    StillNotEstablished,
    Changed,
}

/// `failing` holds the sessions failing to come up, with the reason last logged (empty while a
/// first attempt is under way): a peer that keeps failing the same way (a router that refuses,
/// an address nobody answers) is logged when it starts failing and when it is established,
/// its retries in between at debug.
fn session_line(
    failing: &mut BTreeMap<String, String>,
    id: &str,
    from: State,
    to: State,
    reason: Option<&str>,
) -> SessionLine {
    if to == State::Established {
        failing.remove(id);
        SessionLine::Established
    } else if from == State::Established {
        SessionLine::Down
    } else if let Some(reason) = reason
        && matches!(to, State::Active | State::Idle)
        && failing.get(id).map(String::as_str) != Some(reason)
    {
        failing.insert(id.to_owned(), reason.to_owned());
        SessionLine::NotEstablished
    } else if failing.contains_key(id) {
        SessionLine::StillNotEstablished
    } else {
        // The first step of a first attempt: what follows is logged when it fails.
        failing.insert(id.to_owned(), String::new());
        SessionLine::Changed
    }
}

/// Takes each BFD session's state to its BGP session (down at once, up to start it), and
/// logs every change.
async fn follow_bfd(inner: Arc<Inner>, events: Option<tokio::sync::broadcast::Receiver<BfdEvent>>) {
    let Some(mut events) = events else {
        return std::future::pending().await;
    };
    // Started again after a failure, changes were missed: the sessions' states now count.
    inner.sync_bfd();
    loop {
        match events.recv().await {
            Ok(e) => {
                let up = e.to == bfd::State::Up;
                if let Some(speaker) = lock(&inner.speaker).as_mut() {
                    speaker.set_bfd(&e.id, up);
                }
                let peer = e.peer.map(|p| p.to_string());
                if up {
                    info!(protocol = "bfd", peer = %e.id, address = peer, from = %e.from, "BFD session up");
                } else if e.from == bfd::State::Up {
                    warn!(
                        protocol = "bfd",
                        peer = %e.id,
                        address = peer,
                        to = %e.to,
                        diagnostic = %e.diagnostic,
                        "BFD session down: its BGP session closes"
                    );
                } else {
                    debug!(protocol = "bfd", peer = %e.id, address = peer, from = %e.from, to = %e.to, "BFD session state changed");
                }
            }
            // Missed some: the sessions' states now are what counts.
            Err(RecvError::Lagged(_)) => inner.sync_bfd(),
            // The BFD runner has shut down; nothing more will come, and that is no failure.
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Starts dead peer tasks again, and logs planned routes a session cannot carry, once each.
async fn watch_sessions(inner: Arc<Inner>) {
    let mut seen: BTreeMap<String, BTreeSet<Prefix>> = BTreeMap::new();
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tick.tick().await;
        // A peer task ends only when told to; one that panicked is started again here, at
        // most once a tick, and counted as task `bgp_peer:NAME`.
        let revived = lock(&inner.speaker)
            .as_mut()
            .map(Speaker::revive)
            .unwrap_or_default();
        for id in revived {
            inner.restarts.restarted(
                &format!("bgp_peer:{id}"),
                "the peer's task ended while the peer is configured (a panic)",
            );
        }
        let running = inner.running();
        seen.retain(|id, _| running.contains_key(id));
        for (id, s) in running {
            let before = seen.entry(id.clone()).or_default();
            for (prefix, why) in &s.withheld {
                if !before.contains(prefix) {
                    warn!(protocol = "bgp", peer = %id, %prefix, reason = %why, "route not sent to this peer");
                }
            }
            *before = s.withheld.keys().copied().collect();
        }
    }
}

/// MetalLB's `peer` label (`address:port`, or the interface of an unnumbered peer), and
/// the BGPPeer's name: two BGPPeers may reach the same address (from different source
/// addresses), and a scrape with two identical series is rejected whole.
fn peer_labels(s: &PeerStatus) -> Vec<(&'static str, String)> {
    let peer = match (&s.interface, s.address.ip().is_unspecified()) {
        (Some(interface), true) => interface.clone(),
        _ => s.address.to_string(),
    };
    vec![("peer", peer), ("name", s.id.clone())]
}

/// MetalLB's `peer` label of its BFD metrics (the peer's address, or for an unnumbered peer
/// its interface), and the BGPPeer's name.
fn bfd_labels(s: &BfdStatus) -> Vec<(&'static str, String)> {
    let peer = match (&s.interface, s.peer) {
        (Some(interface), _) => interface.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => String::new(),
    };
    vec![("peer", peer), ("name", s.id.clone())]
}

#[derive(Debug)]
struct BgpCollector(Arc<Inner>);

impl Collector for BgpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let running = self.0.running();
        let per_peer = |f: fn(&PeerStatus) -> u64| -> Family {
            running.values().map(|s| (peer_labels(s), f(s))).collect()
        };
        gauge_family(
            &mut encoder,
            "metallb_bgp_session_up",
            "1 while the BGP session to the peer is Established",
            MetricType::Gauge,
            per_peer(|s| u64::from(s.state == State::Established)),
        )?;
        counter_family(
            &mut encoder,
            "metallb_bgp_updates",
            "BGP UPDATE messages sent to the peer",
            per_peer(|s| s.updates_sent),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_bgp_announced_prefixes_total",
            "Prefixes the peer holds from this node",
            MetricType::Gauge,
            per_peer(|s| s.advertised as u64),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_bgp_pending_prefixes_total",
            "Prefixes planned for the peer but not advertised (session down, or withheld)",
            MetricType::Gauge,
            per_peer(|s| s.pending as u64),
        )?;
        let notifications: Family = running
            .values()
            .flat_map(|s| {
                let sent = s.notifications_sent.iter().map(|k| ("sent", k));
                let received = s.notifications_received.iter().map(|k| ("received", k));
                sent.chain(received)
                    .map(|(direction, (&(code, subcode), &n))| {
                        let mut labels = peer_labels(s);
                        labels.extend([
                            ("direction", direction.to_owned()),
                            ("code", code.to_string()),
                            ("subcode", subcode.to_string()),
                        ]);
                        (labels, n)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        counter_family(
            &mut encoder,
            "herald_bgp_notifications",
            "BGP NOTIFICATION messages, by peer, direction, error code and subcode",
            notifications,
        )?;
        let transitions: Family = running
            .values()
            .flat_map(|s| {
                s.transitions.iter().map(|(state, n)| {
                    let mut labels = peer_labels(s);
                    labels.push(("state", format!("{state:?}")));
                    (labels, *n)
                })
            })
            .collect();
        counter_family(
            &mut encoder,
            "herald_bgp_session_transitions",
            "Changes of the BGP session's state, by the state entered (each counted, however short)",
            transitions,
        )?;
        gauge_family(
            &mut encoder,
            "herald_bgp_send_queue_bytes",
            "Octets waiting to be written to the peer's connection",
            MetricType::Gauge,
            per_peer(|s| s.send_queue_bytes as u64),
        )?;
        counter_family(
            &mut encoder,
            "herald_bgp_send_queue_full",
            "Times route changes waited for the peer to read (the send queue was full)",
            per_peer(|s| s.send_queue_full),
        )?;

        let bfd = self.0.bfd_running();
        let per_session = |f: fn(&BfdStatus) -> u64| -> Family {
            bfd.values().map(|s| (bfd_labels(s), f(s))).collect()
        };
        gauge_family(
            &mut encoder,
            "metallb_bfd_session_up",
            "BFD session state (1 is up, 0 is down)",
            MetricType::Gauge,
            per_session(|s| u64::from(s.state == bfd::State::Up)),
        )?;
        // MetalLB's BFD counters carry no _total suffix: exposed untyped under their names.
        for (name, help, f) in [
            (
                "metallb_bfd_control_packet_input",
                "Number of received BFD control packets",
                (|s: &BfdStatus| s.control_packets_received) as fn(&BfdStatus) -> u64,
            ),
            (
                "metallb_bfd_control_packet_output",
                "Number of sent BFD control packets",
                |s: &BfdStatus| s.control_packets_sent,
            ),
            (
                "metallb_bfd_echo_packet_input",
                "Number of received BFD echo packets (always 0: herald runs no echo function)",
                |_: &BfdStatus| 0,
            ),
            (
                "metallb_bfd_echo_packet_output",
                "Number of sent BFD echo packets (always 0: herald runs no echo function)",
                |_: &BfdStatus| 0,
            ),
            (
                "metallb_bfd_session_up_events",
                "Number of BFD session up events",
                |s: &BfdStatus| s.up_events,
            ),
            (
                "metallb_bfd_session_down_events",
                "Number of BFD session down events",
                |s: &BfdStatus| s.down_events,
            ),
        ] {
            gauge_family(
                &mut encoder,
                name,
                help,
                MetricType::Unknown,
                per_session(f),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_keeps_failing_alike_is_logged_once_until_it_is_established() {
        use SessionLine::*;
        let mut failing = BTreeMap::new();
        let refused = Some("connection refused");
        let mut line = |from, to, reason| session_line(&mut failing, "router", from, to, reason);
        assert_eq!(line(State::Idle, State::Connect, None), Changed);
        assert_eq!(line(State::Connect, State::Active, refused), NotEstablished);
        // Steps that say nothing new, however often: at debug.
        assert_eq!(
            line(State::Active, State::Connect, None),
            StillNotEstablished
        );
        // The retries, failing the same way: nothing at info or above.
        for _ in 0..5 {
            assert_eq!(
                line(State::Active, State::Connect, None),
                StillNotEstablished
            );
            assert_eq!(
                line(State::Connect, State::Active, refused),
                StillNotEstablished
            );
        }
        // Failing another way is news.
        let timed_out = Some("connection timed out");
        assert_eq!(
            line(State::Connect, State::Active, timed_out),
            NotEstablished
        );
        assert_eq!(
            line(State::OpenConfirm, State::Established, None),
            Established
        );
        assert_eq!(
            line(State::Established, State::Idle, Some("hold timer expired")),
            Down
        );
        // Down, then failing as before it was up: news again.
        assert_eq!(line(State::Connect, State::Active, refused), NotEstablished);
    }

    #[test]
    fn hashed_router_id_is_stable_and_never_zero() {
        assert_eq!(hashed_router_id("node-a"), hashed_router_id("node-a"));
        assert_ne!(hashed_router_id("node-a"), hashed_router_id("node-b"));
        assert_ne!(hashed_router_id(""), Ipv4Addr::UNSPECIFIED);
    }

    fn peer() -> Peer {
        Peer::with_defaults(
            "router",
            64512,
            PeerAsn::Fixed(64513),
            PeerEndpoint::Address("2001:db8::1".parse().expect("ip")),
        )
    }

    #[test]
    fn a_metallb_peer_becomes_the_session_it_describes() {
        let mut p = peer();
        p.local_asn = Some(4_200_000_001);
        p.port = 1179;
        p.source_address = Some("2001:db8::10".parse().expect("ip"));
        p.hold_time = Duration::from_secs(9);
        p.keepalive_time = Duration::from_secs(3);
        p.connect_time = Some(Duration::from_secs(4));
        p.ebgp_multihop = true;
        p.password = Some(model::world::Password::Inline("s3cret".into()));
        p.graceful_restart = true;
        let fallback = Ipv4Addr::new(10, 0, 0, 9);
        let c = session_config(&p, |_| fallback, false).expect("runs");
        assert_eq!(c.id, "router");
        assert_eq!(c.socket_addr(), "[2001:db8::1]:1179".parse().expect("addr"));
        assert_eq!(
            (c.local_as, c.peer_as),
            (4_200_000_001, PeerAs::Fixed(64513))
        );
        assert_eq!(c.source_address, p.source_address);
        assert_eq!(c.router_id, Some(fallback));
        assert_eq!((c.hold_time, c.keepalive_time), (9, Some(3)));
        assert_eq!(c.connect_time, Duration::from_secs(4));
        assert!(c.ebgp_multihop && !c.link_local_next_hop && !c.passive);
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(c.graceful_restart, Some(GRACEFUL_RESTART_TIME));

        // MetalLB's defaults, and a router id of its own when the peer gives one.
        let mut p = peer();
        p.router_id = Some(Ipv4Addr::new(192, 0, 2, 1));
        let c = session_config(&p, |_| panic!("not asked"), true).expect("runs");
        assert_eq!(c.router_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!((c.port, c.hold_time, c.keepalive_time), (179, 90, Some(30)));
        assert_eq!((c.password, c.graceful_restart), (None, None));
    }

    #[test]
    fn an_unnumbered_peer_is_the_router_on_its_interface() {
        let mut p = peer();
        p.endpoint = PeerEndpoint::Interface("eth1".into());
        let c = session_config(&p, |_| Ipv4Addr::new(10, 0, 0, 9), false).expect("runs");
        assert!(c.is_unnumbered());
        assert_eq!(c.interface.as_deref(), Some("eth1"));
        // The link-local next hop is all there is on such a link: it goes whatever the flag.
        assert!(c.link_local_next_hop && c.extended_next_hop);
        assert_eq!(c.router_id, Some(Ipv4Addr::new(10, 0, 0, 9)));
    }

    #[test]
    fn a_bfd_profile_becomes_the_session_it_describes_and_echo_is_warned_about() {
        let mut p = peer();
        p.ebgp_multihop = true;
        p.source_address = Some("2001:db8::10".parse().expect("ip"));
        let profile = BfdProfile {
            name: "fast".into(),
            receive_interval_ms: 100,
            transmit_interval_ms: 150,
            detect_multiplier: 4,
            echo_interval_ms: 60,
            echo_mode: false,
            passive_mode: true,
            minimum_ttl: 250,
        };
        let (c, warnings) = bfd_session(&p, &profile);
        let c = c.expect("a session");
        assert_eq!(c.id, "router");
        assert_eq!(c.peer, "2001:db8::1".parse::<IpAddr>().expect("ip"));
        assert_eq!(c.source, p.source_address);
        assert!(c.multihop && c.passive);
        assert_eq!(
            (
                c.required_min_rx,
                c.desired_min_tx,
                c.detect_multiplier,
                c.minimum_ttl
            ),
            (
                Duration::from_millis(100),
                Duration::from_millis(150),
                4,
                250
            )
        );
        assert_eq!(warnings, Vec::<String>::new());
        let echo = BfdProfile {
            echo_mode: true,
            ..profile
        };
        let (_, warnings) = bfd_session(&p, &echo);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("echoMode") && warnings[0].contains("60 ms"),
            "{warnings:?}"
        );
        // Unnumbered: the BFD peer is learnt on the interface too.
        p.endpoint = PeerEndpoint::Interface("eth1".into());
        let (c, _) = bfd_session(&p, &echo);
        let c = c.expect("a session");
        assert!(c.peer.is_unspecified());
        assert_eq!(c.interface.as_deref(), Some("eth1"));
    }

    #[test]
    fn sessions_herald_cannot_run_say_why() {
        let mut p = peer();
        p.vrf = Some("red".into());
        let why = session_config(&p, |_| Ipv4Addr::LOCALHOST, true).expect_err("vrf");
        assert!(why.contains("spec.vrf"), "{why}");
    }

    #[test]
    fn aggregates_keep_their_length_in_the_ip_label() {
        let host = Prefix::host("192.0.2.1".parse().expect("ip"));
        assert_eq!(announced_ip(&host), "192.0.2.1");
        let agg = Prefix::new("2001:db8::".parse().expect("ip"), 64).expect("prefix");
        assert_eq!(announced_ip(&agg), "2001:db8::/64");
    }
}
