//! Real routing daemons in network namespaces: BIRD 2, FRR and GoBGP, each started from a
//! configuration in a directory of its own (the configuration, the control sockets, the
//! log), with its command-line client run inside the namespace. FRR runs as a real FRR
//! router does: zebra (as user `frr`, its zserv socket and pid file in that directory),
//! bgpd and bfdd beside it, all reading the one integrated configuration.
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
    /// The routing daemon (bgpd for FRR) last, after what it depends on (zebra, bfdd).
    children: Vec<Child>,
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
        let mut commands: Vec<Vec<String>> = Vec::new();
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
            Kind::Frr => {
                // zebra drops to user frr: the directory must be its to write in.
                chown_to_frr(&dir);
                let conf = path(&dir.join("frr.conf"));
                let zserv = path(&dir.join("zserv.api"));
                let vty = path(&dir);
                let daemon = |name: &str, extra: &[&str]| -> Vec<String> {
                    let mut v: Vec<String> = vec![
                        format!("/usr/lib/frr/{name}"),
                        "-f".into(),
                        conf.clone(),
                        "-i".into(),
                        path(&dir.join(format!("{name}.pid"))),
                        "-z".into(),
                        zserv.clone(),
                        "--vty_socket".into(),
                        vty.clone(),
                        // No vty TCP port.
                        "-P".into(),
                        "0".into(),
                        "--log".into(),
                        "stdout".into(),
                    ];
                    v.extend(extra.iter().map(|s| s.to_string()));
                    v
                };
                commands.push(daemon("zebra", &["-u", "frr", "-g", "frr"]));
                let bfdctl = path(&dir.join("bfdd.sock"));
                // bfdd, like zebra, runs as frr (it has no option to stay root).
                commands.push(daemon("bfdd", &["--bfdctl", &bfdctl]));
                ("frr.conf", daemon("bgpd", &["-S"]))
            }
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
        if kind == Kind::Frr {
            chown_to_frr(&dir.join(file));
        }
        commands.push(args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .expect("daemon log file");
        let mut daemon = Daemon {
            kind,
            dir,
            children: Vec::new(),
            ns: ns.name().to_owned(),
        };
        for args in &commands {
            // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
            let child = ns
                .command(&args[0])
                .args(&args[1..])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("daemon log file"))
                .stderr(log.try_clone().expect("daemon log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {kind:?} ({args:?}): {e}"));
            daemon.children.push(child);
            if args[0].ends_with("zebra") {
                // The others connect to its socket as they start.
                let socket = daemon.dir.join("zserv.api");
                let deadline = Instant::now() + START_LIMIT;
                while !socket.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
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

    /// The routing daemon's pid (bgpd's for FRR).
    pub fn pid(&self) -> u32 {
        self.children.last().map_or(0, Child::id)
    }

    /// Every process of the daemon (zebra, bfdd and bgpd for FRR).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
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

    /// Sends `signal` to the daemon (every process of it, for FRR).
    pub fn signal(&self, signal: i32) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid this daemon started.
            let rc = unsafe { libc::kill(pid as i32, signal) };
            assert_eq!(rc, 0, "kill {signal} {pid}: {}", io::Error::last_os_error());
        }
    }

    /// Its peak resident set size so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
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
        // The routing daemon first, then what it depends on.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Gives `path` to user and group `frr`, whose zebra writes its socket and pid file there.
fn chown_to_frr(path: &Path) {
    let name = std::ffi::CString::new("frr").expect("no NUL");
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let ids = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    };
    let Some((uid, gid)) = ids else {
        panic!("no user frr: install the Debian package frr");
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown frr {}: {e}", path.display()));
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
#[derive(Debug, Clone, Default)]
pub struct Neighbor {
    pub name: String,
    /// The speaker's address. For an unnumbered neighbor: its link-local address for BIRD
    /// (which names neighbors by address), unused by FRR (which finds it on `interface`).
    pub address: String,
    pub asn: u32,
    pub hold_time: Option<u16>,
    pub password: Option<String>,
    pub extended_next_hop: bool,
    /// The router connects to us (the speaker's side is passive).
    pub active: bool,
    /// Graceful restart: the router keeps our routes across our restarts (FRR with the
    /// RFC 8538 N bit, BIRD without), and logs what it does.
    pub graceful_restart: bool,
    /// BFD for the session, with the router's own timers.
    pub bfd: Option<BfdTimers>,
    /// Unnumbered: the router's interface toward the speaker.
    pub interface: Option<String>,
}

/// A router's side of a BFD session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdTimers {
    pub receive_ms: u32,
    pub transmit_ms: u32,
    pub multiplier: u8,
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

    /// Whether the router holds a route to `prefix`.
    pub fn holds(&self, prefix: &str) -> bool {
        !self.routes(prefix).unwrap_or_default().is_empty()
    }

    /// Waits until the router holds a route to `prefix` (`present`), or holds none.
    pub fn wait_holds(&self, prefix: &str, present: bool) {
        let what = if present { "hold" } else { "drop" };
        crate::netns::poll_until(
            &format!("{:?} to {what} {prefix}", self.kind),
            crate::PATIENCE,
            |last| {
                *last = self.dump();
                (self.holds(prefix) == present).then_some(())
            },
        );
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

    /// The router's daemon, for what the scenarios here do not cover.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The router's BFD sessions as it shows them (FRR's bfdd, BIRD's `protocol bfd`).
    pub fn bfd_sessions(&self) -> Result<Vec<RouterBfd>, String> {
        match self.kind {
            Kind::Bird => Ok(parse_bird_bfd(
                &self.daemon.birdc(&["show", "bfd", "sessions"])?,
            )),
            Kind::Frr => parse_frr_bfd(&self.daemon.vtysh("show bfd peers json")?),
            Kind::Gobgp => Err("GoBGP has no BFD".into()),
        }
    }
}

/// A BFD session as a router shows it. FRR shows what the speaker asked for; BIRD only
/// what is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterBfd {
    pub peer: String,
    pub up: bool,
    /// The speaker's Required Min RX, Desired Min TX and Detect Mult, as received (FRR).
    pub remote_receive_ms: Option<u32>,
    pub remote_transmit_ms: Option<u32>,
    pub remote_multiplier: Option<u32>,
    /// The router's transmit interval in force: the slower of its own and the speaker's
    /// Required Min RX (BIRD's "Interval").
    pub interval_ms: Option<u32>,
    /// How long the router waits for the speaker: the speaker's Detect Mult × the slower of
    /// the router's Required Min RX and the speaker's Desired Min TX (BIRD's "Timeout").
    pub timeout_ms: Option<u32>,
}

/// Parses `birdc show bfd sessions`: a header, then `ADDRESS INTERFACE STATE SINCE...
/// INTERVAL TIMEOUT` per session, the last two in seconds.
pub fn parse_bird_bfd(out: &str) -> Vec<RouterBfd> {
    let ms = |s: &str| -> Option<u32> {
        let secs: f64 = s.parse().ok()?;
        Some((secs * 1000.0).round() as u32)
    };
    out.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let peer: IpAddr = words.first()?.parse().ok()?;
            let state = words
                .iter()
                .position(|w| matches!(*w, "Up" | "Down" | "Init" | "AdminDown"))?;
            let n = words.len();
            Some(RouterBfd {
                peer: peer.to_string(),
                up: words[state] == "Up",
                interval_ms: ms(words[n.checked_sub(2)?]),
                timeout_ms: ms(words[n - 1]),
                ..RouterBfd::default()
            })
        })
        .collect()
}

/// Parses `show bfd peers json` of FRR's bfdd.
pub fn parse_frr_bfd(out: &str) -> Result<Vec<RouterBfd>, String> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|e| format!("{e}: {out}"))?;
    let Some(peers) = v.as_array() else {
        return Ok(Vec::new());
    };
    let num = |p: &serde_json::Value, k: &str| p[k].as_u64().map(|x| x as u32);
    Ok(peers
        .iter()
        .map(|p| RouterBfd {
            peer: p["peer"].as_str().unwrap_or_default().to_string(),
            up: p["status"].as_str() == Some("up"),
            remote_receive_ms: num(p, "remote-receive-interval"),
            remote_transmit_ms: num(p, "remote-transmit-interval"),
            remote_multiplier: num(p, "remote-detect-multiplier"),
            interval_ms: num(p, "transmit-interval"),
            timeout_ms: None,
        })
        .collect())
}

fn local_of(address: &str) -> &'static str {
    if address.contains(':') {
        ROUTER_V6
    } else {
        ROUTER_V4
    }
}

pub fn bird_config(neighbors: &[Neighbor]) -> String {
    // The kernel protocols install what BIRD selects in the namespace's forwarding table, as
    // on any router.
    let mut c = format!(
        "log stderr all;\nrouter id {ROUTER_V4};\nprotocol device {{ scan time 1; }}\nprotocol kernel {{ ipv4 {{ export all; }}; }}\nprotocol kernel {{ ipv6 {{ export all; }}; }}\n"
    );
    if neighbors.iter().any(|n| n.bfd.is_some()) {
        c.push_str("protocol bfd { interface \"*\" { }; multihop { }; }\n");
    }
    let unnumbered: Vec<&str> = neighbors
        .iter()
        .filter_map(|n| n.interface.as_deref())
        .collect();
    if !unnumbered.is_empty() {
        // Router Advertisements, so the speaker learns our link-local address; lifetime 0:
        // no default router for anyone.
        c.push_str("protocol radv {\n");
        for i in &unnumbered {
            let _ = writeln!(
                c,
                "  interface \"{i}\" {{ min ra interval 3; max ra interval 4; default lifetime 0; }};"
            );
        }
        c.push_str("}\n");
    }
    for n in neighbors {
        let _ = writeln!(c, "protocol bgp peer_{} {{", n.name);
        match &n.interface {
            Some(i) => {
                let _ = writeln!(c, "  local as {ROUTER_AS};");
                let _ = writeln!(c, "  neighbor {} as {};", n.address, n.asn);
                let _ = writeln!(c, "  interface \"{i}\";");
            }
            None => {
                let _ = writeln!(c, "  local {} as {ROUTER_AS};", local_of(&n.address));
                let _ = writeln!(c, "  neighbor {} as {};", n.address, n.asn);
            }
        }
        if n.graceful_restart {
            // BIRD 2 has no RFC 8538: graceful restart covers a connection that closes
            // without a NOTIFICATION.
            c.push_str("  graceful restart on;\n  graceful restart time 120;\n  debug { states, events };\n");
        }
        if let Some(b) = n.bfd {
            let _ = writeln!(
                c,
                "  bfd {{ min rx interval {} ms; min tx interval {} ms; multiplier {}; }};",
                b.receive_ms, b.transmit_ms, b.multiplier
            );
        }
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
        let enh = if n.extended_next_hop || n.interface.is_some() {
            " extended next hop on;"
        } else {
            ""
        };
        let _ = writeln!(c, "  ipv4 {{ import all; export none;{enh} }};");
        c.push_str("  ipv6 { import all; export none; };\n}\n");
    }
    c
}

/// The integrated configuration zebra, bfdd and bgpd all read: each takes its own sections
/// and reports the others' lines as unknown. No `exit` lines: at the top level one would
/// leave configuration mode for the rest of the file.
pub fn frr_config(neighbors: &[Neighbor]) -> String {
    let mut c = String::from("frr defaults traditional\nhostname r\nlog stdout\n");
    if neighbors.iter().any(|n| n.graceful_restart) {
        c.push_str("debug bgp graceful-restart\ndebug bgp neighbor-events\n");
    }
    for n in neighbors {
        if let Some(i) = &n.interface {
            // Router Advertisements every second, so the speaker learns us quickly (bgpd
            // turns them on for an interface neighbor; this only makes them frequent).
            let _ = writeln!(
                c,
                "interface {i}\n ipv6 nd ra-interval 1\n no ipv6 nd suppress-ra"
            );
        }
    }
    let profiles: Vec<(String, BfdTimers)> = neighbors
        .iter()
        .filter_map(|n| Some((format!("p_{}", n.name), n.bfd?)))
        .collect();
    if !profiles.is_empty() {
        // bfdd and bgpd log what happens to BFD sessions, for failure messages.
        c.push_str("debug bfd peer\ndebug bfd zebra\ndebug bgp bfd\nbfd\n");
        for (name, b) in &profiles {
            let _ = writeln!(
                c,
                " profile {name}\n  receive-interval {}\n  transmit-interval {}\n  detect-multiplier {}",
                b.receive_ms, b.transmit_ms, b.multiplier
            );
        }
    }
    let _ = write!(
        c,
        "router bgp {ROUTER_AS}\n bgp router-id {ROUTER_V4}\n bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n"
    );
    if neighbors.iter().any(|n| n.graceful_restart) {
        // Helper for the speaker's restarts, with the RFC 8538 N bit (FRR's default since
        // 8.3, said here so the configuration shows it).
        c.push_str(" bgp graceful-restart\n bgp graceful-restart notification\n");
    }
    for n in neighbors {
        let a = match &n.interface {
            Some(i) => {
                let _ = writeln!(c, " neighbor {i} interface remote-as external");
                i
            }
            None => {
                let _ = writeln!(c, " neighbor {} remote-as {}", n.address, n.asn);
                &n.address
            }
        };
        if n.bfd.is_some() {
            let _ = writeln!(
                c,
                " neighbor {a} bfd\n neighbor {a} bfd profile p_{}",
                n.name
            );
        }
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
            let a = n.interface.as_ref().unwrap_or(&n.address);
            let _ = writeln!(c, "  neighbor {a} activate");
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
