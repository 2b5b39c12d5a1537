//! Real routing daemons in network namespaces: BIRD 2, FRR bgpd (without zebra) and GoBGP,
//! each started from a configuration in a directory of its own (the configuration, the
//! control socket, the log), with its command-line client run inside the namespace.
//!
//! [`Daemon`] runs any configuration (the BGP benchmark writes its own). [`Router`] is the
//! routers of the BGP tests: configured with [`Neighbor`]s on the two links of a [`Link`],
//! their tables read back as [`RouterRoute`]s whatever the daemon.
//!
//! Needs root and the Debian packages bird2, frr and gobgpd (`cargo xtask test` installs
//! them). A daemon that does not start makes the caller panic with its log: a privileged
//! test never skips.

use crate::netns::{Netns, veth};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bird,
    Frr,
    Gobgp,
}

/// A routing daemon running in a namespace, killed when dropped. Its directory is removed
/// then too, unless the thread is panicking: the configuration and log say what it saw.
pub struct Daemon {
    kind: Kind,
    dir: PathBuf,
    child: Child,
    ns: String,
}

/// How long a daemon may take to answer on its control interface after it was started.
const START_LIMIT: Duration = Duration::from_secs(20);

impl Daemon {
    /// Writes `config` into a new directory and starts `kind` with it in `ns` (in the
    /// foreground, output to `log` in the directory), then waits until its control
    /// interface answers. Panics, with the log, if it never does.
    pub fn start(kind: Kind, ns: &Netns, config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("{}-{kind:?}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let (file, args): (&str, Vec<String>) = match kind {
            Kind::Bird => (
                "bird.conf",
                vec![
                    "bird".into(),
                    "-f".into(),
                    "-c".into(),
                    path(&dir.join("bird.conf")),
                    "-s".into(),
                    path(&dir.join("bird.ctl")),
                ],
            ),
            Kind::Frr => (
                "frr.conf",
                [
                    "/usr/lib/frr/bgpd",
                    "-f",
                    &path(&dir.join("frr.conf")),
                    "-i",
                    &path(&dir.join("bgpd.pid")),
                    "--vty_socket",
                    &path(&dir),
                    // No zebra, no listener outside what the configuration says, no vty port.
                    "-Z",
                    "-S",
                    "-n",
                    "-P",
                    "0",
                    "--log",
                    "stdout",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Kind::Gobgp => (
                "gobgpd.toml",
                [
                    "gobgpd",
                    "-f",
                    &path(&dir.join("gobgpd.toml")),
                    "-p",
                    "--pprof-disable",
                    // The API is per namespace: every GoBGP can use the default port.
                    "--api-hosts",
                    "127.0.0.1:50051",
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        std::fs::write(dir.join(file), config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", dir.join(file).display()));
        let log = std::fs::File::create(dir.join("log")).expect("daemon log file");
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        let child = ns
            .command(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("daemon log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?} ({args:?}): {e}"));
        let daemon = Daemon {
            kind,
            dir,
            child,
            ns: ns.name().to_owned(),
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let answer = match kind {
                Kind::Bird => daemon.birdc(&["show", "status"]),
                Kind::Frr => daemon.vtysh("show bgp summary json"),
                Kind::Gobgp => daemon.gobgp(&["global", "-j"]),
            };
            match answer {
                Ok(_) => return daemon,
                Err(e) if Instant::now() >= deadline => panic!(
                    "{kind:?} did not answer within {START_LIMIT:?}: {e}\nits log:\n{}",
                    daemon.log()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where its configuration, control socket and log are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `program ARGS` inside the daemon's namespace: stdout when it succeeds, else
    /// what it printed.
    pub fn cli(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, program])
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `birdc COMMAND...` on this BIRD's control socket.
    pub fn birdc(&self, command: &[&str]) -> Result<String, String> {
        let socket = path(&self.dir.join("bird.ctl"));
        let mut args = vec!["-s", &socket];
        args.extend_from_slice(command);
        self.cli("birdc", &args)
    }

    /// A connection to this BIRD's control socket, for asking often without starting a
    /// process each time.
    pub fn bird_control(&self) -> io::Result<BirdControl> {
        BirdControl::connect(&self.dir.join("bird.ctl"))
    }

    /// `vtysh -c COMMAND` against this FRR.
    pub fn vtysh(&self, command: &str) -> Result<String, String> {
        self.cli("vtysh", &["--vty_socket", &path(&self.dir), "-c", command])
    }

    /// `gobgp ARGS...` against this GoBGP's API.
    pub fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        self.cli("gobgp", args)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the daemon's own pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(
            rc,
            0,
            "kill {signal} {}: {}",
            self.child.id(),
            io::Error::last_os_error()
        );
    }

    /// Its peak resident set size so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The peak resident set size (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn path(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// A connection to BIRD's control socket, speaking what `birdc` speaks: one command a line;
/// the reply is lines of a four-digit code and `-` (more follows) or a space (the last
/// line), or a space alone (continuing the previous code). A Unix socket is reachable from
/// any namespace, so this needs no `ip netns exec`.
pub struct BirdControl {
    stream: BufReader<UnixStream>,
}

impl BirdControl {
    /// Connects and reads the greeting.
    pub fn connect(socket: &Path) -> io::Result<BirdControl> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut control = BirdControl {
            stream: BufReader::new(stream),
        };
        control.reply()?;
        Ok(control)
    }

    /// Sends `command` (as typed at `birdc`) and returns the reply's text, one line per
    /// line, without the codes.
    pub fn command(&mut self, command: &str) -> io::Result<String> {
        let stream = self.stream.get_mut();
        stream.write_all(command.as_bytes())?;
        stream.write_all(b"\n")?;
        self.reply()
    }

    fn reply(&mut self) -> io::Result<String> {
        let mut text = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "BIRD closed its control socket",
                ));
            }
            let line = line.trim_end_matches('\n');
            let bytes = line.as_bytes();
            let coded = bytes.len() >= 4
                && bytes[..4].iter().all(u8::is_ascii_digit)
                && matches!(bytes.get(4), None | Some(b' ' | b'-'));
            if coded {
                text.push_str(line.get(5..).unwrap_or_default());
                text.push('\n');
                if bytes.get(4) != Some(&b'-') {
                    return Ok(text);
                }
            } else if let Some(rest) = line.strip_prefix(' ') {
                text.push_str(rest);
                text.push('\n');
            }
            // Anything else ('+' asynchronous messages) is not part of the reply.
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

    /// What the router says about its session with `neighbor` (BIRD protocol `peer_<name>`,
    /// or its address), as it prints it.
    pub fn neighbor_info(&self, name: &str, address: &str) -> Result<String, String> {
        match self.kind {
            Kind::Bird => self
                .daemon
                .birdc(&["show", "protocols", "all", &format!("peer_{name}")]),
            Kind::Frr => self.daemon.vtysh(&format!("show bgp neighbors {address}")),
            Kind::Gobgp => self.daemon.gobgp(&["neighbor", address]),
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
