//! Real routers in network namespaces: the link between the speaker's namespace and the
//! router's, configurations for BIRD 2, FRR bgpd and GoBGP (which `testkit::routers` runs),
//! their tables read back as [`RouterRoute`]s, and the speaker run inside a namespace on a
//! thread of its own.
//!
//! Everything needs root. A test that cannot set up its namespaces or start its router
//! fails: it never skips.

#![allow(dead_code)]

use bgp::{PeerStatus, Routes, Speaker, SpeakerConfig};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};
pub use testkit::netns::{Netns, veth};
pub use testkit::routers::{Daemon, Kind};

/// Polls `check` until it gives a value; fails with `what` and the last state once
/// `limit` has passed. The limit only bounds a failing test: nothing is asserted about
/// how long it took.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > limit => {
                panic!("gave up waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Two namespaces joined by two veth pairs: a dual-stack link that carries the IPv4
/// sessions, and an IPv6-only link that carries the IPv6 sessions (so IPv4 routes on them
/// need RFC 8950 extended next hop).
pub struct Link {
    pub speaker: Netns,
    pub router: Netns,
}

/// The speaker's addresses: one per session, so the router tells sessions apart.
pub const SPEAKER_V4: [&str; 6] = [
    "192.0.2.1",
    "192.0.2.3",
    "192.0.2.5",
    "192.0.2.6",
    "192.0.2.7",
    "192.0.2.8",
];
/// The speaker's IPv6 address on the dual-stack link: the next hop of IPv6 routes sent on
/// IPv4 sessions.
pub const SPEAKER_DUAL_V6: &str = "2001:db8::1";
pub const ROUTER_DUAL_V6: &str = "2001:db8::2";
/// On the IPv6-only link.
pub const SPEAKER_V6: [&str; 2] = ["2001:db8:1::1", "2001:db8:1::3"];
pub const ROUTER_V4: &str = "192.0.2.2";
pub const ROUTER_V6: &str = "2001:db8:1::2";

impl Link {
    pub fn new(tag: &str) -> Link {
        let speaker = Netns::new(&format!("hb{tag}s"));
        let router = Netns::new(&format!("hb{tag}r"));
        for ns in [&speaker, &router] {
            // Addresses are usable at once: sessions start as soon as the link is up.
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        }
        let dual: Vec<String> = SPEAKER_V4
            .iter()
            .map(|a| format!("{a}/24"))
            .chain([format!("{SPEAKER_DUAL_V6}/64")])
            .collect();
        let router_dual = [format!("{ROUTER_V4}/24"), format!("{ROUTER_DUAL_V6}/64")];
        let v6: Vec<String> = SPEAKER_V6.iter().map(|a| format!("{a}/64")).collect();
        let router_v6 = [format!("{ROUTER_V6}/64")];
        for (ours, theirs, speaker_addrs, router_addrs) in [
            ("dual0", "dual1", &dual[..], &router_dual[..]),
            ("v6only0", "v6only1", &v6[..], &router_v6[..]),
        ] {
            veth(&speaker, ours, &router, theirs);
            let add = |ns: &Netns, addr: &str, dev: &str| {
                let mut args = vec!["addr", "add", addr, "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                ns.ip(&args);
            };
            for addr in speaker_addrs {
                add(&speaker, addr, ours);
            }
            for addr in router_addrs {
                add(&router, addr, theirs);
            }
        }
        Link { speaker, router }
    }
}

/// A route as a router holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterRoute {
    pub prefix: String,
    pub next_hops: Vec<IpAddr>,
    pub as_path: Vec<u32>,
    /// "a:b"
    pub communities: Vec<String>,
    /// "a:b:c"
    pub large_communities: Vec<String>,
    pub local_pref: Option<u32>,
    /// Kept by a graceful restart helper while the session is down (FRR and GoBGP say so;
    /// BIRD's text does not).
    pub stale: bool,
}

/// One neighbor in a router's configuration.
#[derive(Debug, Clone)]
pub struct Neighbor {
    pub name: String,
    pub address: String,
    pub asn: u32,
    pub hold_time: Option<u16>,
    pub password: Option<String>,
    pub extended_next_hop: bool,
    /// The router connects to us (the speaker's side is passive).
    pub active: bool,
}

pub const ROUTER_AS: u32 = 65000;

/// A router in its namespace, configured with the scenario's neighbors; killed when
/// dropped.
pub struct Router {
    pub kind: Kind,
    daemon: Daemon,
}

impl Router {
    pub fn start(kind: Kind, ns: &Netns, neighbors: &[Neighbor]) -> Router {
        let config = match kind {
            Kind::Bird => bird_config(neighbors),
            Kind::Frr => frr_config(neighbors),
            Kind::Gobgp => gobgp_config(neighbors),
        };
        Router {
            kind,
            daemon: Daemon::start(kind, ns, &config),
        }
    }

    /// The routes the router holds for `prefix`, one per path.
    pub fn routes(&self, prefix: &str) -> Result<Vec<RouterRoute>, String> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        match self.kind {
            Kind::Bird => {
                let out = self.daemon.birdc(&["show", "route", "all"])?;
                Ok(parse_bird(&out)
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .collect())
            }
            Kind::Frr => {
                let out = self
                    .daemon
                    .vtysh(&format!("show bgp {afi} unicast {prefix} json"))?;
                parse_frr(&out)
            }
            Kind::Gobgp => {
                let out = self.daemon.gobgp(&["global", "rib", "-a", afi, "-j"])?;
                Ok(parse_gobgp(&out)?
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .collect())
            }
        }
    }

    pub fn signal(&self, signal: i32) {
        self.daemon.signal(signal);
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    /// Whether the router has the session with `neighbor` (its BIRD protocol name
    /// `peer_<name>`, or its address) Established.
    pub fn session_up(&self, name: &str, address: &str) -> Result<bool, String> {
        match self.kind {
            Kind::Bird => {
                let out = self
                    .daemon
                    .birdc(&["show", "protocols", &format!("peer_{name}")])?;
                Ok(out.contains("Established"))
            }
            Kind::Frr => {
                let out = self
                    .daemon
                    .vtysh(&format!("show bgp neighbors {address} json"))?;
                let v: serde_json::Value =
                    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
                Ok(v[address]["bgpState"].as_str() == Some("Established"))
            }
            Kind::Gobgp => {
                let out = self.daemon.gobgp(&["neighbor"])?;
                Ok(out
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(address) && l.contains("Establ")))
            }
        }
    }

    /// Makes the router ask for our IPv4 routes again with a ROUTE-REFRESH.
    pub fn request_refresh(&self, name: &str, address: &str) {
        let result = match self.kind {
            Kind::Bird => self
                .daemon
                .birdc(&["reload", "in", &format!("peer_{name}")]),
            Kind::Frr => self
                .daemon
                .vtysh(&format!("clear bgp ipv4 unicast {address} soft in")),
            Kind::Gobgp => self
                .daemon
                .gobgp(&["neighbor", address, "softresetin", "-a", "ipv4"]),
        };
        if let Err(e) = result {
            panic!("{:?} refresh: {e}", self.kind);
        }
    }

    /// The router's whole table and neighbor states as it prints them, for failure
    /// messages.
    pub fn dump(&self) -> String {
        let out = match self.kind {
            Kind::Bird => self.daemon.birdc(&["show", "route", "all"]),
            Kind::Frr => self.daemon.vtysh("show bgp ipv4 unicast"),
            Kind::Gobgp => self.daemon.gobgp(&["global", "rib", "-a", "ipv4"]),
        };
        out.unwrap_or_else(|e| e)
    }
}

fn local_of(address: &str) -> &'static str {
    if address.contains(':') {
        ROUTER_V6
    } else {
        ROUTER_V4
    }
}

pub fn bird_config(neighbors: &[Neighbor]) -> String {
    let mut c =
        format!("log stderr all;\nrouter id {ROUTER_V4};\nprotocol device {{ scan time 1; }}\n");
    for n in neighbors {
        let _ = writeln!(c, "protocol bgp peer_{} {{", n.name);
        let _ = writeln!(c, "  local {} as {ROUTER_AS};", local_of(&n.address));
        let _ = writeln!(c, "  neighbor {} as {};", n.address, n.asn);
        // iBGP too is one hop away here; BIRD assumes multihop for it otherwise.
        if n.active {
            c.push_str("  connect delay time 1;\n  connect retry time 2;\n");
        } else {
            c.push_str("  passive on;\n");
        }
        c.push_str("  direct;\n");
        // BIRD waits a minute after a failure before taking connections again by default.
        c.push_str("  error wait time 1, 5;\n");
        if let Some(h) = n.hold_time {
            let _ = writeln!(c, "  hold time {h};\n  keepalive time 1;");
        }
        if let Some(p) = &n.password {
            let _ = writeln!(c, "  password \"{p}\";");
        }
        let enh = if n.extended_next_hop {
            " extended next hop on;"
        } else {
            ""
        };
        let _ = writeln!(c, "  ipv4 {{ import all; export none;{enh} }};");
        c.push_str("  ipv6 { import all; export none; };\n}\n");
    }
    c
}

pub fn frr_config(neighbors: &[Neighbor]) -> String {
    let mut c = format!(
        "frr defaults traditional\nhostname r\nrouter bgp {ROUTER_AS}\n bgp router-id {ROUTER_V4}\n bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n"
    );
    for n in neighbors {
        let a = &n.address;
        let _ = writeln!(c, " neighbor {a} remote-as {}", n.asn);
        if n.active {
            let _ = writeln!(c, " neighbor {a} timers connect 1");
        } else {
            let _ = writeln!(c, " neighbor {a} passive");
        }
        if let Some(h) = n.hold_time {
            let _ = writeln!(c, " neighbor {a} timers 1 {h}");
        }
        if let Some(p) = &n.password {
            let _ = writeln!(c, " neighbor {a} password {p}");
        }
        if n.extended_next_hop {
            let _ = writeln!(c, " neighbor {a} capability extended-nexthop");
        }
    }
    for afi in ["ipv4", "ipv6"] {
        let _ = writeln!(c, " address-family {afi} unicast");
        for n in neighbors {
            let _ = writeln!(c, "  neighbor {} activate", n.address);
        }
        c.push_str(" exit-address-family\n");
    }
    c
}

pub fn gobgp_config(neighbors: &[Neighbor]) -> String {
    let mut c = format!(
        "[global.config]\n  as = {ROUTER_AS}\n  router-id = \"{ROUTER_V4}\"\n  local-address-list = [\"{ROUTER_V4}\", \"{ROUTER_V6}\"]\n"
    );
    for n in neighbors {
        let _ = write!(
            c,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.address, n.asn
        );
        if let Some(p) = &n.password {
            let _ = writeln!(c, "    auth-password = \"{p}\"");
        }
        if let Some(h) = n.hold_time {
            let _ = write!(
                c,
                "  [neighbors.timers.config]\n    hold-time = {h}\n    keepalive-interval = 1\n"
            );
        } else if n.active {
            c.push_str("  [neighbors.timers.config]\n    connect-retry = 1\n");
        }
        let _ = write!(
            c,
            "  [neighbors.transport.config]\n    passive-mode = {}\n    local-address = \"{}\"\n",
            !n.active,
            local_of(&n.address)
        );
        // Graceful restart helper, so our routes outlive a restart of the speaker.
        c.push_str(
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    helper-only = true\n",
        );
        for afi in ["ipv4-unicast", "ipv6-unicast"] {
            let _ = write!(
                c,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{afi}\"\n    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
            );
        }
    }
    c
}

/// Parses `birdc show route all`: a route starts on a line naming its network (or, for
/// further routes of the same network, an indented line with the protocol in brackets);
/// its attributes follow, one `BGP.name: value` per line.
pub fn parse_bird(out: &str) -> Vec<RouterRoute> {
    let mut routes: Vec<RouterRoute> = Vec::new();
    let mut net = String::new();
    for line in out.lines() {
        let indented = line.starts_with(|c: char| c.is_whitespace());
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("Table ") || trimmed.starts_with("BIRD ") {
            continue;
        }
        let starts_route = trimmed.contains(" [")
            && (trimmed.contains("unicast") || trimmed.contains("unreachable"));
        if !indented && starts_route {
            net = trimmed
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            routes.push(RouterRoute {
                prefix: net.clone(),
                ..RouterRoute::default()
            });
            continue;
        }
        if indented && starts_route && !trimmed.starts_with("via") {
            routes.push(RouterRoute {
                prefix: net.clone(),
                ..RouterRoute::default()
            });
            continue;
        }
        let Some(route) = routes.last_mut() else {
            continue;
        };
        let Some((name, value)) = trimmed.split_once(": ") else {
            continue;
        };
        match name {
            "BGP.next_hop" => {
                route.next_hops = value
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
            }
            "BGP.as_path" => {
                route.as_path = value
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
            }
            "BGP.local_pref" => route.local_pref = value.trim().parse().ok(),
            "BGP.community" => {
                route.communities = bird_tuples(value)
                    .into_iter()
                    .map(|t| t.join(":"))
                    .collect();
            }
            "BGP.large_community" => {
                route.large_communities = bird_tuples(value)
                    .into_iter()
                    .map(|t| t.join(":"))
                    .collect();
            }
            _ => {}
        }
    }
    routes
}

/// "(1,2) (3, 4)" → [["1","2"],["3","4"]]
fn bird_tuples(value: &str) -> Vec<Vec<String>> {
    value
        .split('(')
        .filter_map(|t| t.split_once(')'))
        .map(|(inner, _)| inner.split(',').map(|x| x.trim().to_string()).collect())
        .collect()
}

/// Parses `show bgp <afi> unicast <prefix> json`.
pub fn parse_frr(out: &str) -> Result<Vec<RouterRoute>, String> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|e| format!("{e}: {out}"))?;
    let prefix = v["prefix"].as_str().unwrap_or_default().to_string();
    let Some(paths) = v["paths"].as_array() else {
        return Ok(Vec::new());
    };
    Ok(paths
        .iter()
        .map(|p| RouterRoute {
            prefix: prefix.clone(),
            next_hops: p["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["ip"].as_str()?.parse().ok())
                .collect(),
            as_path: p["aspath"]["string"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect(),
            communities: words(&p["community"]["string"])
                .into_iter()
                .map(frr_well_known)
                .collect(),
            large_communities: words(&p["largeCommunity"]["string"]),
            local_pref: p["locPrf"].as_u64().map(|x| x as u32),
            stale: p["stale"].as_bool().unwrap_or(false),
        })
        .collect())
}

/// FRR prints well-known communities by name.
fn frr_well_known(c: String) -> String {
    match c.as_str() {
        "graceful-shutdown" => "65535:0".into(),
        "no-export" => "65535:65281".into(),
        "no-advertise" => "65535:65282".into(),
        "local-AS" => "65535:65283".into(),
        _ => c,
    }
}

fn words(v: &serde_json::Value) -> Vec<String> {
    v.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Parses `gobgp global rib -a <afi> -j`: prefixes mapping to paths whose `attrs` are
/// objects with a numeric `type`.
pub fn parse_gobgp(out: &str) -> Result<Vec<RouterRoute>, String> {
    if out.trim().is_empty() || out.trim() == "null" {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(out).map_err(|e| format!("{e}: {out}"))?;
    let mut routes = Vec::new();
    let Some(map) = v.as_object() else {
        return Err(format!("not an object: {out}"));
    };
    for (prefix, paths) in map {
        for p in paths.as_array().into_iter().flatten() {
            let mut r = RouterRoute {
                prefix: prefix.clone(),
                stale: p["stale"].as_bool().unwrap_or(false),
                ..RouterRoute::default()
            };
            for a in p["attrs"].as_array().into_iter().flatten() {
                match a["type"].as_u64() {
                    Some(2) => {
                        r.as_path = a["as_paths"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .flat_map(|seg| seg["asns"].as_array().cloned().unwrap_or_default())
                            .filter_map(|x| x.as_u64().map(|x| x as u32))
                            .collect();
                    }
                    Some(3) | Some(14) => {
                        for key in ["nexthop", "linklocal_nexthop"] {
                            if let Some(ip) = a[key].as_str().and_then(|s| s.parse().ok()) {
                                r.next_hops.push(ip);
                            }
                        }
                    }
                    Some(5) => r.local_pref = a["value"].as_u64().map(|x| x as u32),
                    Some(8) => {
                        r.communities = a["communities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_u64())
                            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                            .collect();
                    }
                    Some(32) => {
                        r.large_communities = a["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|l| {
                                let n = |k: &str| l[k].as_u64().unwrap_or_default();
                                format!("{}:{}:{}", n("ASN"), n("LocalData1"), n("LocalData2"))
                            })
                            .collect();
                    }
                    _ => {}
                }
            }
            routes.push(r);
        }
    }
    Ok(routes)
}

/// A [`Speaker`] running inside a network namespace, on a thread that entered it with
/// setns(2) and owns a current-thread runtime.
pub struct NetnsSpeaker {
    tx: tokio::sync::mpsc::UnboundedSender<SpeakerCommand>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Call = Box<dyn FnOnce(&mut Speaker) + Send>;

enum SpeakerCommand {
    Call(Call),
    /// End without a word to the peers, as a killed process would.
    Crash,
    Shutdown(Option<Duration>, String, std::sync::mpsc::Sender<()>),
}

impl NetnsSpeaker {
    pub fn start(ns: &Netns, config: SpeakerConfig) -> NetnsSpeaker {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SpeakerCommand>();
        let thread = ns.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut speaker = Speaker::new(config);
                while let Some(cmd) = rx.recv().await {
                    match cmd {
                        SpeakerCommand::Call(f) => f(&mut speaker),
                        SpeakerCommand::Crash => {
                            // No Cease: the Stop that dropping the speaker queues is never
                            // read, since the runtime goes away with the tasks as soon as
                            // this returns, and the kernel closes their sockets.
                            drop(speaker);
                            return;
                        }
                        SpeakerCommand::Shutdown(wait, message, done) => {
                            speaker.shutdown(wait, &message).await;
                            let _ = done.send(());
                            return;
                        }
                    }
                }
            });
        });
        NetnsSpeaker {
            tx,
            thread: Some(thread),
        }
    }

    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Speaker) -> R + Send + 'static) -> R {
        let (done, result) = std::sync::mpsc::channel();
        let call: Call = Box::new(move |s| {
            let _ = done.send(f(s));
        });
        assert!(
            self.tx.send(SpeakerCommand::Call(call)).is_ok(),
            "speaker thread gone"
        );
        result.recv().expect("speaker thread gone")
    }

    pub fn set_routes(&self, id: &str, routes: Routes) {
        let id = id.to_string();
        self.call(move |s| s.set_routes(&id, routes));
    }

    pub fn status(&self, id: &str) -> PeerStatus {
        let owned = id.to_string();
        self.call(move |s| s.status().into_iter().find(|p| p.id == owned))
            .unwrap_or_else(|| panic!("no peer {id}"))
    }

    /// Ends the speaker as if its process were killed: connections close, no NOTIFICATION.
    pub fn crash(mut self) {
        let _ = self.tx.send(SpeakerCommand::Crash);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts shutting down; the receiver says when it is done.
    pub fn begin_shutdown(
        &self,
        wait: Option<Duration>,
        message: &str,
    ) -> std::sync::mpsc::Receiver<()> {
        let (done, rx) = std::sync::mpsc::channel();
        assert!(
            self.tx
                .send(SpeakerCommand::Shutdown(wait, message.to_string(), done))
                .is_ok()
        );
        rx
    }
}

impl Drop for NetnsSpeaker {
    fn drop(&mut self) {
        let (done, _rx) = std::sync::mpsc::channel();
        let _ = self
            .tx
            .send(SpeakerCommand::Shutdown(None, "test over".into(), done));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
