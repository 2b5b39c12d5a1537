//! The BGP actuator: runs the plan's sessions and gives each peer the plan's routes.
//!
//! Turns each planned peer (a MetalLB BGPPeer that selects this node) into a session of the
//! `bgp` crate's speaker and each planned route into a prefix with its communities and
//! local-pref. Routes are set before peers, so a session that comes up (after a restart,
//! under graceful restart) sends its complete table before End-of-RIB. Peers the speaker
//! cannot run are shown in `/status` with the reason and logged, not silently dropped.
//!
//! Session changes are logged from a once-a-second look at the speaker's status, since the
//! `bgp` crate reports state rather than events.

use crate::metrics::{Family, counter_family, gauge_family};
use crate::supervise::{Reporter, Tasks};
use bgp::fsm::{PeerAs, State};
use bgp::wire::{Community, LargeCommunity, Prefix};
use bgp::{PeerConfig, PeerStatus, RouteAttrs, Routes, Speaker, SpeakerConfig};
use model::plan::PeerPlan;
use model::world::{Peer, PeerAsn, PeerEndpoint, ServiceRef};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing::{error, info, warn};

/// The restart time offered with graceful restart (FRR's and MetalLB's default).
const GRACEFUL_RESTART_TIME: u16 = 120;

/// How often session changes are looked for, to log them.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The name of the task that watches the sessions (and starts dead peer tasks again).
const SESSIONS_TASK: &str = "bgp_sessions";

/// One planned peer as the speaker should run it, or why it cannot.
struct Planned {
    peer: Peer,
    /// Which services each planned route is for (for `metallb_speaker_announced`); the
    /// routes themselves go to the speaker.
    services: BTreeMap<Prefix, BTreeSet<ServiceRef>>,
    session: Result<PeerConfig, String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    pub router_id: Option<Ipv4Addr>,
    pub families: Vec<String>,
    pub routes_planned: usize,
    pub routes_advertised: usize,
    pub routes_pending: usize,
    /// Planned routes this session cannot carry, with the reason.
    pub withheld: BTreeMap<String, String>,
    pub updates_sent: u64,
    pub sessions_established: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_notification_sent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_notification_received: Option<String>,
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
    planned: Mutex<Vec<Planned>>,
    /// Router ids already given, by peer name, so one never changes under a running session.
    router_ids: Mutex<BTreeMap<String, Ipv4Addr>>,
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
        self.tasks.stop_task(SESSIONS_TASK);
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
        let inner = Arc::new(Inner {
            node,
            graceful_shutdown,
            link_local_next_hop,
            speaker: Mutex::new(Some(speaker)),
            planned: Mutex::new(Vec::new()),
            router_ids: Mutex::new(BTreeMap::new()),
            restarts: tasks.reporter(),
        });
        let watched = inner.clone();
        tasks.spawn(SESSIONS_TASK, move || watch_sessions(watched.clone()));
        BgpSpeaker {
            inner,
            tasks: tasks.clone(),
        }
    }

    /// Makes the plan's peers and routes the speaker's (level-based: unchanged peers are
    /// left alone, changed ones reset, removed ones closed with Cease).
    pub fn set(&self, plan: &[PeerPlan]) {
        let (planned, routes): (Vec<Planned>, Vec<Routes>) =
            plan.iter().map(|p| self.inner.plan_peer(p)).unzip();
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

    /// Ends every session: with a graceful shutdown wait, routes are first re-announced with
    /// GRACEFUL_SHUTDOWN and the wait passes; then each session gets Cease naming the node.
    pub async fn shutdown(&self) {
        self.tasks.stop_task(SESSIONS_TASK);
        let speaker = lock(&self.inner.speaker).take();
        if let Some(speaker) = speaker {
            let message = format!("herald on node {} is shutting down", self.inner.node);
            if let Some(wait) = self.inner.graceful_shutdown {
                info!(
                    protocol = "bgp",
                    wait_seconds = wait.as_secs_f64(),
                    "announcing GRACEFUL_SHUTDOWN (65535:0) before closing sessions"
                );
            }
            speaker
                .shutdown(self.inner.graceful_shutdown, &message)
                .await;
            info!(protocol = "bgp", "BGP sessions closed");
        }
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
        let planned = Planned {
            peer: plan.peer.clone(),
            services,
            session: session_config(
                &plan.peer,
                |address| self.router_id(&plan.peer, address),
                self.link_local_next_hop,
            ),
        };
        (planned, routes)
    }

    /// MetalLB's rule: `routerID` when set, else this node's IPv4 address toward the peer
    /// (the source address when one is given). Without any IPv4 on the way (an IPv6-only
    /// node) a stable 32-bit number from the node name, as RFC 6286 allows.
    fn router_id(&self, peer: &Peer, address: IpAddr) -> Ipv4Addr {
        let mut ids = lock(&self.router_ids);
        *ids.entry(peer.name.clone()).or_insert_with(|| {
            match peer
                .source_address
                .or_else(|| local_address_toward(address))
            {
                Some(IpAddr::V4(v4)) if !v4.is_unspecified() => v4,
                _ => hashed_router_id(&self.node),
            }
        })
    }

    fn status(&self) -> Vec<SessionStatus> {
        let running = self.running();
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
                    uptime_seconds: None,
                    router_id: p.session.as_ref().ok().and_then(|c| c.router_id),
                    families: Vec::new(),
                    routes_planned: p.services.len(),
                    routes_advertised: 0,
                    routes_pending: p.services.len(),
                    withheld: BTreeMap::new(),
                    updates_sent: 0,
                    sessions_established: 0,
                    last_error: None,
                    last_notification_sent: None,
                    last_notification_received: None,
                };
                if let Some(s) = running.get(&p.peer.name) {
                    status.state = format!("{:?}", s.state);
                    status.local_address = s.local_address;
                    status.uptime_seconds = s.uptime.map(|u| u.as_secs());
                    status.families = s.families.iter().map(|f| format!("{f:?}")).collect();
                    status.routes_advertised = s.advertised;
                    status.routes_pending = s.pending;
                    status.withheld = s
                        .withheld
                        .iter()
                        .map(|(prefix, why)| (prefix.to_string(), why.to_string()))
                        .collect();
                    status.updates_sent = s.updates_sent;
                    status.sessions_established = s.sessions_established;
                    status.last_error = s.last_error.clone();
                    status.last_notification_sent =
                        s.last_notification_sent.as_ref().map(ToString::to_string);
                    status.last_notification_received = s
                        .last_notification_received
                        .as_ref()
                        .map(ToString::to_string);
                }
                status
            })
            .collect()
    }
}

/// The session the `bgp` crate runs for a MetalLB BGPPeer, or why none can run. The router
/// id comes from `router_id` when the peer sets none.
fn session_config(
    peer: &Peer,
    router_id: impl FnOnce(IpAddr) -> Ipv4Addr,
    link_local_next_hop: bool,
) -> Result<PeerConfig, String> {
    let address = match &peer.endpoint {
        PeerEndpoint::Address(ip) => *ip,
        PeerEndpoint::Interface(name) => {
            return Err(format!(
                "unnumbered BGP (spec.interface {name:?}) is not supported yet; give spec.peerAddress"
            ));
        }
    };
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
    let mut config = PeerConfig::new(peer.name.clone(), address, peer.local_as(), peer_as);
    config.port = peer.port;
    config.source_address = peer.source_address;
    config.router_id = Some(peer.router_id.unwrap_or_else(|| router_id(address)));
    config.hold_time = u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX);
    config.keepalive_time = Some(u16::try_from(peer.keepalive_time.as_secs()).unwrap_or(u16::MAX));
    if let Some(connect) = peer.connect_time {
        config.connect_time = connect;
    }
    config.ebgp_multihop = peer.ebgp_multihop;
    config.password = peer.password.as_ref().map(|p| p.value().into());
    config.graceful_restart = peer.graceful_restart.then_some(GRACEFUL_RESTART_TIME);
    config.link_local_next_hop = link_local_next_hop;
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

/// What was last seen of a session, to log only changes.
#[derive(PartialEq, Eq)]
struct Seen {
    state: State,
    last_error: Option<String>,
    withheld: BTreeSet<Prefix>,
}

async fn watch_sessions(inner: Arc<Inner>) {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
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
            let now = Seen {
                state: s.state,
                last_error: s.last_error.clone(),
                withheld: s.withheld.keys().copied().collect(),
            };
            let before = seen.get(&id);
            if before.map(|b| b.state) != Some(s.state) {
                let peer = s.address.to_string();
                if s.state == State::Established {
                    info!(
                        protocol = "bgp",
                        peer = %id,
                        address = %peer,
                        families = ?s.families,
                        routes = s.wanted,
                        "BGP session established"
                    );
                } else if before.is_some_and(|b| b.state == State::Established) {
                    warn!(
                        protocol = "bgp",
                        peer = %id,
                        address = %peer,
                        state = ?s.state,
                        error = s.last_error.as_deref().unwrap_or(""),
                        last_notification_sent = s.last_notification_sent.as_ref().map(ToString::to_string),
                        last_notification_received = s.last_notification_received.as_ref().map(ToString::to_string),
                        "BGP session down"
                    );
                }
            }
            if s.state != State::Established
                && now.last_error.is_some()
                && before.map(|b| &b.last_error) != Some(&now.last_error)
            {
                warn!(
                    protocol = "bgp",
                    peer = %id,
                    address = %s.address,
                    error = now.last_error.as_deref().unwrap_or(""),
                    "BGP session not established"
                );
            }
            for (prefix, why) in &s.withheld {
                if !before.is_some_and(|b| b.withheld.contains(prefix)) {
                    warn!(protocol = "bgp", peer = %id, %prefix, reason = %why, "route not sent to this peer");
                }
            }
            seen.insert(id, now);
        }
    }
}

/// MetalLB's `peer` label (`address:port`), and the BGPPeer's name: two BGPPeers may
/// reach the same address (from different source addresses), and a scrape with two
/// identical series is rejected whole.
fn peer_labels(s: &PeerStatus) -> Vec<(&'static str, String)> {
    vec![("peer", s.address.to_string()), ("name", s.id.clone())]
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
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sessions_herald_cannot_run_say_why() {
        let mut p = peer();
        p.endpoint = PeerEndpoint::Interface("eth1".into());
        let why = session_config(&p, |_| Ipv4Addr::LOCALHOST, true).expect_err("unnumbered");
        assert!(
            why.contains("spec.interface") && why.contains("peerAddress"),
            "{why}"
        );
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
