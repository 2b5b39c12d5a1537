//! The BGP benchmark (issue 4): how quickly a router learns a large table from herald's
//! speaker, against BIRD and GoBGP announcing the same routes to the same router in the same
//! run, so the figures are read as ratios.
//!
//! The router is BIRD 2 with two eBGP sessions to the announcer, one a family: IPv4 unicast
//! over IPv4 and IPv6 unicast over IPv6 (so no announcer has to pick a next hop of the other
//! family), importing everything into its tables and nothing into the kernel. Every round,
//! each announcer in turn gets a fresh router, a fresh namespace of its own linked to the
//! router's by a veth pair, and announces the same 100,000 IPv4 /32 and 100,000 IPv6 /128:
//! - herald: `bgp::Speaker` in a child process (this binary again, with
//!   `--herald-announcer`) that holds only the speaker and its routes, so its peak RSS is
//!   herald's; routes are set before the peers.
//! - BIRD: the routes in `protocol static`.
//! - GoBGP: the routes injected from an MRT table dump (`gobgp mrt inject global`).
//!
//! Every announcer is passive with its whole table loaded before the router's sessions are
//! enabled; the router then connects. Measured:
//! - time: from the router's first SYN (a capture on the router's side of the link) until
//!   its two channels have imported all 200,000 routes (asked on BIRD's control socket every
//!   10 ms). Starting at the SYN leaves out the connect timers (BIRD waits at least a second
//!   after `enable`; GoBGP's first active attempt comes 5–10 s after start), which are
//!   configuration, not speed.
//! - octets: the TCP payload the announcer's BGP connections had sent (without
//!   retransmissions) when the router held everything, from the kernel's TCP_INFO (`ss`):
//!   every BGP message, headers included, and nothing below TCP. The announcer's veth TX
//!   counter is shown beside it ("wire octets": its own ACKs and the Ethernet/IP/TCP headers
//!   too, though with GSO on veth one set of headers covers up to 64 KiB of payload).
//! - peak RSS (VmHWM) of each announcer's process.
//!
//! The octets are compared with the minimal encoding of the same routes ([`minimal_octets`]).
//! Targets: herald's time ≤ 1.0× BIRD's and ≤ 0.3× GoBGP's, octets per prefix within 5% of
//! the minimal encoding, peak RSS ≤ 64 MiB. Reported, never asserted.
//!
//! Needs root and bird2, gobgpd and tcpdump: `cargo xtask bench bgp`. Rounds:
//! `HERALD_BENCH_ROUNDS` (default 3). Sends only inside the namespaces it creates.

use bgp::fsm::PeerAs;
use bgp::wire::Prefix;
use bgp::{PeerConfig, RouteAttrs, Routes, Speaker, SpeakerConfig};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::mrt;
use testkit::netns::{self, Netns};
use testkit::routers::{self, BirdControl, Daemon, Kind};

/// Routes of each family.
const ROUTES: u32 = 100_000;
const ANNOUNCER_AS: u32 = 64512;
const ROUTER_AS: u32 = 65000;
const ANNOUNCER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const ANNOUNCER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// How long one load may take before the benchmark gives up on it.
const LOAD_LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(10);
/// RFC 4271's largest message; nobody here offers RFC 8654 extended messages.
const MAX_MESSAGE: usize = 4096;
const RSS_TARGET_KIB: u64 = 64 * 1024;

fn v4_routes() -> impl Iterator<Item = Ipv4Addr> {
    (0..ROUTES).map(|i| Ipv4Addr::from(0x0a00_0000 + i))
}

fn v6_routes() -> impl Iterator<Item = Ipv6Addr> {
    (0..ROUTES).map(|i| Ipv6Addr::from((0x2001_0db8_0200u128 << 80) + u128::from(i)))
}

/// Octets of the shortest UPDATEs that carry `count` host routes of one family to an eBGP
/// peer in messages of at most 4096 octets, all routes sharing one attribute set:
///
/// - every message: header 19, withdrawn routes length 2, path attribute length 2;
///   ORIGIN 3 + 1; AS_PATH 3 + 2 + 4 (one AS_SEQUENCE of one 4-octet AS);
/// - IPv4: NEXT_HOP 3 + 4, and 1 + 4 octets a /32 in the NLRI field;
///   fixed 43, so ⌊(4096 − 43) / 5⌋ = 810 prefixes a message;
/// - IPv6: MP_REACH_NLRI with an extended length (its value exceeds 255 octets) 4, AFI 2,
///   SAFI 1, next hop length 1, a global next hop 16, reserved 1, and 1 + 16 octets a /128;
///   fixed 61, so ⌊(4096 − 61) / 17⌋ = 237 prefixes a message;
///
/// total = ⌈count / per message⌉ × fixed + count × per prefix. Not counted: OPEN, KEEPALIVE
/// and End-of-RIB (a few hundred octets a session), and a link-local next hop (16 octets a
/// message, 0.3% of the IPv6 total), which announcers add on a shared link.
fn minimal_octets(count: usize, v6: bool) -> usize {
    const COMMON: usize = 19 + 2 + 2 + (3 + 1) + (3 + 2 + 4);
    let (fixed, per_prefix) = if v6 {
        (COMMON + 4 + 2 + 1 + 1 + 16 + 1, 1 + 16)
    } else {
        (COMMON + 3 + 4, 1 + 4)
    };
    let per_message = (MAX_MESSAGE - fixed) / per_prefix;
    count.div_ceil(per_message) * fixed + count * per_prefix
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announcer {
    Herald,
    Bird,
    Gobgp,
}

impl Announcer {
    const ALL: [Announcer; 3] = [Announcer::Herald, Announcer::Bird, Announcer::Gobgp];

    fn name(self) -> &'static str {
        match self {
            Announcer::Herald => "herald",
            Announcer::Bird => "BIRD",
            Announcer::Gobgp => "GoBGP",
        }
    }
}

/// What one load measured.
#[derive(Debug, Clone)]
struct Load {
    time: Duration,
    /// From enabling the router's sessions, its connect delay included: a check on `time`.
    from_enable: Duration,
    /// TCP payload sent on the BGP connections.
    octets: u64,
    /// The announcer's veth TX counter over the load.
    wire_octets: u64,
    rss_kib: Option<u64>,
    /// What the announcer says it sent, where it says (herald's own counters).
    own_count: Option<String>,
}

fn main() {
    if std::env::args().any(|a| a == "--herald-announcer") {
        herald_announcer();
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    netns::require_privileges();
    let rounds: usize = std::env::var("HERALD_BENCH_ROUNDS")
        .ok()
        .map(|r| r.parse().expect("HERALD_BENCH_ROUNDS is a number"))
        .unwrap_or(3)
        .max(1);
    let bird_version = version(Command::new("bird").arg("--version"));
    let gobgp_version = version(Command::new("gobgpd").arg("--version"));
    eprintln!(
        "bgp benchmark: {ROUTES} IPv4 /32 + {ROUTES} IPv6 /128 to {bird_version}, {rounds} round(s)"
    );

    let mut loads: Vec<(Announcer, Load)> = Vec::new();
    for round in 1..=rounds {
        // Interleaved, so drift in the machine's load touches every announcer alike.
        for announcer in Announcer::ALL {
            let load = measure(announcer);
            eprintln!(
                "  round {round}: {:<6} {:>8.3} s from the first SYN ({:.3} s from enabling), {} octets, peak RSS {}",
                announcer.name(),
                load.time.as_secs_f64(),
                load.from_enable.as_secs_f64(),
                load.octets,
                rss(load.rss_kib),
            );
            loads.push((announcer, load));
        }
    }
    println!("{}", report(&loads, rounds, &bird_version, &gobgp_version));
}

fn version(cmd: &mut Command) -> String {
    let out = netns::output(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim().to_owned()
}

/// One announcer's load into a fresh router.
fn measure(announcer: Announcer) -> Load {
    let router_ns = Netns::new("bbr");
    let announcer_ns = Netns::new("bba");
    for ns in [&router_ns, &announcer_ns] {
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
    }
    netns::veth(&announcer_ns, "eth0", &router_ns, "eth0");
    for (ns, v4, v6) in [
        (&announcer_ns, ANNOUNCER_V4, ANNOUNCER_V6),
        (&router_ns, ROUTER_V4, ROUTER_V6),
    ] {
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
    }

    let router = Daemon::start(Kind::Bird, &router_ns, &router_config());
    let mut control = router.bird_control().expect("router's control socket");
    let running = Running::start(announcer, &announcer_ns);

    let wire_before = tx_octets(&announcer_ns);
    let syn = FirstSyn::listen(&router_ns);
    for protocol in ["a4", "a6"] {
        control
            .command(&format!("enable {protocol}"))
            .expect("enable the router's session");
    }
    let started = Instant::now();
    let (done_at, from_enable) = loop {
        let imported = imported(&mut control);
        if imported >= u64::from(2 * ROUTES) {
            break (SystemTime::now(), started.elapsed());
        }
        if started.elapsed() > LOAD_LIMIT {
            panic!(
                "{}: the router imported only {imported} routes in {LOAD_LIMIT:?}\nrouter log:\n{}",
                announcer.name(),
                router.log_tail(30)
            );
        }
        std::thread::sleep(POLL);
    };
    let octets = tcp_payload_sent(&announcer_ns);
    let wire_octets = tx_octets(&announcer_ns).saturating_sub(wire_before);
    let syn_at = syn.time();
    let time = done_at
        .duration_since(syn_at)
        .expect("the first SYN comes before the last route");

    // Not timed: the router's tables agree with its channels' counters.
    assert_eq!(
        routes_in_tables(&mut control),
        u64::from(2 * ROUTES),
        "{}: the router's tables disagree with its channels",
        announcer.name()
    );

    let rss_kib = routers::peak_rss_kib(running.pid());
    let own_count = running.finish();
    Load {
        time,
        from_enable,
        octets,
        wire_octets,
        rss_kib,
        own_count,
    }
}

/// The receiving router: both sessions disabled until the announcer is ready, then
/// connecting after BIRD's shortest connect delay (0.75–1 s: a second, less RFC 4271's
/// jitter).
fn router_config() -> String {
    let mut c = format!(
        "log stderr {{ info, warning, error, fatal, bug }};\nrouter id {ROUTER_V4};\nprotocol device {{ }}\n"
    );
    for (name, family, local, neighbor) in [
        (
            "a4",
            "ipv4",
            IpAddr::V4(ROUTER_V4),
            IpAddr::V4(ANNOUNCER_V4),
        ),
        (
            "a6",
            "ipv6",
            IpAddr::V6(ROUTER_V6),
            IpAddr::V6(ANNOUNCER_V6),
        ),
    ] {
        let _ = writeln!(
            c,
            "protocol bgp {name} {{\n  disabled;\n  local {local} as {ROUTER_AS};\n  neighbor {neighbor} as {ANNOUNCER_AS};\n  direct;\n  connect delay time 1;\n  {family} {{ import all; export none; }};\n}}"
        );
    }
    c
}

/// Routes the router's BGP channels have imported (`Routes: N imported, ...` in
/// `show protocols all`): a counter, so asking costs BIRD nothing like walking its tables.
fn imported(control: &mut BirdControl) -> u64 {
    let out = control
        .command("show protocols all")
        .expect("the router answers");
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Routes:"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Routes in all of a BIRD's tables (`show route count`, which walks them).
fn routes_in_tables(control: &mut BirdControl) -> u64 {
    let out = control.command("show route count").expect("route count");
    // "<n> of <m> routes for <k> networks in table master4", one line a table.
    out.lines()
        .filter(|l| l.contains(" in table "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The TCP payload (BGP messages) sent on the namespace's established connections from
/// port 179, without retransmissions.
fn tcp_payload_sent(ns: &Netns) -> u64 {
    let out = ns.exec("ss", &["-tinH", "state", "established", "( sport = :179 )"]);
    let field = |name: &str| -> u64 {
        out.split_whitespace()
            .filter_map(|w| w.strip_prefix(name)?.parse::<u64>().ok())
            .sum()
    };
    let sent = field("bytes_sent:");
    assert!(sent > 0, "no BGP connection with bytes_sent in:\n{out}");
    sent - field("bytes_retrans:")
}

/// The TX octet counter of the namespace's eth0.
fn tx_octets(ns: &Netns) -> u64 {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j prints JSON");
    v[0]["stats64"]["tx"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no TX octets in {out}"))
}

/// A capture of the first packet to or from port 179 on the router's link: the router's
/// first SYN.
struct FirstSyn {
    tcpdump: Child,
    /// Kept open: tcpdump reports on it as it exits.
    stderr: BufReader<std::process::ChildStderr>,
}

impl FirstSyn {
    fn listen(ns: &Netns) -> FirstSyn {
        let mut tcpdump = ns
            .command("tcpdump")
            .args(["-i", "eth0", "-n", "-tt", "-l", "--immediate-mode"])
            .args(["-c", "1", "tcp", "port", "179"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        let stderr = BufReader::new(tcpdump.stderr.take().expect("piped stderr"));
        let mut capture = FirstSyn { tcpdump, stderr };
        let mut said = String::new();
        loop {
            let mut line = String::new();
            let n = capture
                .stderr
                .read_line(&mut line)
                .expect("tcpdump's stderr");
            if n == 0 {
                panic!("tcpdump did not start capturing: {said}");
            }
            if line.contains("listening on") {
                return capture;
            }
            said.push_str(&line);
        }
    }

    /// When the captured packet passed, by the kernel's timestamp.
    fn time(mut self) -> SystemTime {
        let mut line = String::new();
        BufReader::new(self.tcpdump.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("tcpdump's stdout");
        let _ = self.tcpdump.wait();
        let seconds: f64 = line
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no timestamp in tcpdump's line {line:?}"));
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    }
}

impl Drop for FirstSyn {
    fn drop(&mut self) {
        let _ = self.tcpdump.kill();
        let _ = self.tcpdump.wait();
    }
}

/// An announcer with its table loaded, waiting for the router.
enum Running {
    Herald(HeraldProcess),
    Daemon(Daemon),
}

impl Running {
    fn start(announcer: Announcer, ns: &Netns) -> Running {
        match announcer {
            Announcer::Herald => Running::Herald(HeraldProcess::start(ns)),
            Announcer::Bird => {
                let bird = Daemon::start(Kind::Bird, ns, &bird_announcer_config());
                let mut control = bird.bird_control().expect("BIRD's control socket");
                wait_loaded("BIRD's static routes", || routes_in_tables(&mut control));
                Running::Daemon(bird)
            }
            Announcer::Gobgp => {
                let gobgp = Daemon::start(Kind::Gobgp, ns, &gobgp_announcer_config());
                let dump = gobgp.dir().join("routes.mrt");
                let mut file = std::io::BufWriter::new(
                    std::fs::File::create(&dump).expect("create the MRT dump"),
                );
                // The table twice: `gobgp mrt inject` (3.10) returns as soon as it has
                // queued its last message, without waiting for gobgpd to take them, so up
                // to a few thousand routes at the end of the stream are lost (more on a
                // busy machine). Lost from the second copy, they are already there.
                let table = || {
                    v4_routes()
                        .map(|a| (IpAddr::V4(a), 32))
                        .chain(v6_routes().map(|a| (IpAddr::V6(a), 128)))
                };
                let prefixes = table().chain(table());
                let peer = mrt::Peer {
                    bgp_id: ANNOUNCER_V4,
                    address: IpAddr::V4(ANNOUNCER_V4),
                    asn: ANNOUNCER_AS,
                };
                mrt::write_table_dump(
                    &mut file,
                    &peer,
                    prefixes,
                    ANNOUNCER_V4,
                    ANNOUNCER_V6,
                    mrt::MpReach::Full,
                )
                .and_then(|()| file.flush())
                .expect("write the MRT dump");
                drop(file);
                let dump = dump.to_str().expect("UTF-8 path");
                gobgp
                    .gobgp(&["mrt", "inject", "global", dump])
                    .unwrap_or_else(|e| panic!("gobgp mrt inject: {e}"));
                wait_loaded("GoBGP's injected routes", || {
                    ["ipv4", "ipv6"]
                        .iter()
                        .map(|afi| {
                            let out = gobgp
                                .gobgp(&["global", "rib", "summary", "-a", afi])
                                .unwrap_or_default();
                            // "Destination: N, Path: N"
                            out.split("Destination:")
                                .nth(1)
                                .and_then(|r| r.split(',').next()?.trim().parse::<u64>().ok())
                                .unwrap_or(0)
                        })
                        .sum()
                });
                Running::Daemon(gobgp)
            }
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Herald(h) => h.child.id(),
            Running::Daemon(d) => d.pid(),
        }
    }

    /// Stops the announcer; herald's process says what it counted.
    fn finish(self) -> Option<String> {
        match self {
            Running::Herald(h) => Some(h.finish()),
            Running::Daemon(_) => None,
        }
    }
}

/// Waits until `count` says the announcer holds every route. Asks once a second: asking
/// GoBGP starts a process that competes with it for the CPU.
fn wait_loaded(what: &str, mut count: impl FnMut() -> u64) {
    let start = Instant::now();
    loop {
        let n = count();
        if n >= u64::from(2 * ROUTES) {
            return;
        }
        if start.elapsed() > LOAD_LIMIT {
            panic!("{what}: only {n} routes loaded after {LOAD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn bird_announcer_config() -> String {
    let mut c = format!(
        "log stderr {{ info, warning, error, fatal, bug }};\nrouter id {ANNOUNCER_V4};\nprotocol device {{ }}\nprotocol static routes4 {{\n  ipv4;\n"
    );
    for a in v4_routes() {
        let _ = writeln!(c, "  route {a}/32 blackhole;");
    }
    c.push_str("}\nprotocol static routes6 {\n  ipv6;\n");
    for a in v6_routes() {
        let _ = writeln!(c, "  route {a}/128 blackhole;");
    }
    c.push_str("}\n");
    for (name, family, local, neighbor) in [
        (
            "r4",
            "ipv4",
            IpAddr::V4(ANNOUNCER_V4),
            IpAddr::V4(ROUTER_V4),
        ),
        (
            "r6",
            "ipv6",
            IpAddr::V6(ANNOUNCER_V6),
            IpAddr::V6(ROUTER_V6),
        ),
    ] {
        let _ = writeln!(
            c,
            "protocol bgp {name} {{\n  local {local} as {ANNOUNCER_AS};\n  neighbor {neighbor} as {ROUTER_AS};\n  direct;\n  passive on;\n  {family} {{ import none; export all; }};\n}}"
        );
    }
    c
}

fn gobgp_announcer_config() -> String {
    let mut c = format!(
        "[global.config]\n  as = {ANNOUNCER_AS}\n  router-id = \"{ANNOUNCER_V4}\"\n  local-address-list = [\"{ANNOUNCER_V4}\", \"{ANNOUNCER_V6}\"]\n"
    );
    for (neighbor, local, family) in [
        (
            IpAddr::V4(ROUTER_V4),
            IpAddr::V4(ANNOUNCER_V4),
            "ipv4-unicast",
        ),
        (
            IpAddr::V6(ROUTER_V6),
            IpAddr::V6(ANNOUNCER_V6),
            "ipv6-unicast",
        ),
    ] {
        let _ = write!(
            c,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{neighbor}\"\n    peer-as = {ROUTER_AS}\n  [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{local}\"\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
        );
    }
    c
}

/// herald's speaker in a process of its own: this binary, re-run inside the announcer's
/// namespace with `--herald-announcer`.
struct HeraldProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl HeraldProcess {
    fn start(ns: &Netns) -> HeraldProcess {
        let exe = std::env::current_exe().expect("this benchmark's path");
        let mut child = ns
            .command(exe.to_str().expect("UTF-8 path"))
            .arg("--herald-announcer")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start herald's announcer process");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("herald's announcer");
        assert_eq!(line.trim(), "ready", "herald's announcer said {line:?}");
        HeraldProcess { child, stdout }
    }

    /// Closes its stdin, which ends it, and returns what it counted.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let mut said = String::new();
        self.stdout
            .read_to_string(&mut said)
            .expect("herald's announcer");
        let status = self.child.wait().expect("herald's announcer");
        assert!(status.success(), "herald's announcer: {status}");
        said.trim().replace('\n', "; ")
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: the speaker and its routes, nothing else. Set up as the binary does it (a
/// multi-threaded runtime, routes before peers), it says `ready` once it listens, and ends
/// when its stdin closes, printing what it sent.
fn herald_announcer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut speaker = Speaker::new(SpeakerConfig {
            router_id: ANNOUNCER_V4,
            restarting: false,
        });
        let host = |a: IpAddr| (Prefix::host(a), RouteAttrs::default());
        let v4: Routes = v4_routes().map(|a| host(a.into())).collect();
        let v6: Routes = v6_routes().map(|a| host(a.into())).collect();
        speaker.set_routes("v4", v4);
        speaker.set_routes("v6", v6);
        let peer = |id: &str, address: IpAddr| {
            let mut p = PeerConfig::new(id, address, ANNOUNCER_AS, PeerAs::Fixed(ROUTER_AS));
            p.passive = true;
            p
        };
        speaker
            .set_peers(vec![
                peer("v4", IpAddr::V4(ROUTER_V4)),
                peer("v6", IpAddr::V6(ROUTER_V6)),
            ])
            .expect("valid peers");
        speaker
            .listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 179)))
            .expect("listen on port 179");
        let loaded = routers::peak_rss_kib(std::process::id());
        println!("ready");
        std::io::stdout().flush().expect("stdout");
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .expect("stdin reader");
        for p in speaker.status() {
            println!(
                "{}: {} UPDATEs, {} octets",
                p.id, p.updates_sent, p.bytes_sent
            );
        }
        println!("peak RSS before any session: {}", rss(loaded));
        speaker
            .shutdown(None, bgp::StopKind::Shutdown, "benchmark over")
            .await;
    });
}

fn rss(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn report(loads: &[(Announcer, Load)], rounds: usize, bird: &str, gobgp: &str) -> String {
    let prefixes = 2 * ROUTES as usize;
    let minimal = minimal_octets(ROUTES as usize, false) + minimal_octets(ROUTES as usize, true);
    let of = |a: Announcer| -> Vec<&Load> {
        loads
            .iter()
            .filter(|(x, _)| *x == a)
            .map(|(_, l)| l)
            .collect()
    };
    let time = |a: Announcer| median(of(a).iter().map(|l| l.time).collect());
    let mut r = String::new();
    let _ = writeln!(
        r,
        "bgp benchmark: {ROUTES} IPv4 /32 + {ROUTES} IPv6 /128 from each announcer (herald; \
         {bird}; {gobgp}) to a {bird} router, eBGP, one session a family; median of {rounds} \
         round(s)"
    );
    let _ = writeln!(
        r,
        "  {:<9} {:>24} {:>12} {:>9} {:>10} {:>12} {:>10}",
        "announcer",
        "time (median, min–max)",
        "octets",
        "/prefix",
        "÷minimal",
        "wire octets",
        "peak RSS"
    );
    for a in Announcer::ALL {
        let runs = of(a);
        let times: Vec<f64> = runs.iter().map(|l| l.time.as_secs_f64()).collect();
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let last = runs.last().expect("every announcer ran");
        let peak = runs.iter().filter_map(|l| l.rss_kib).max();
        let _ = writeln!(
            r,
            "  {:<9} {:>24} {:>12} {:>9.3} {:>10.4} {:>12} {:>10}",
            a.name(),
            format!("{:.3} s ({min:.3}–{max:.3})", time(a).as_secs_f64()),
            last.octets,
            last.octets as f64 / prefixes as f64,
            last.octets as f64 / minimal as f64,
            last.wire_octets,
            rss(peak),
        );
    }
    let _ = writeln!(
        r,
        "  {:<9} {:>24} {:>12} {:>9.3} {:>10.4}",
        "minimal",
        "",
        minimal,
        minimal as f64 / prefixes as f64,
        1.0
    );
    if let Some(own) = of(Announcer::Herald)
        .last()
        .and_then(|l| l.own_count.clone())
    {
        let _ = writeln!(r, "  herald's own counters (last round): {own}");
    }

    let herald = of(Announcer::Herald);
    let herald_octets = herald.last().expect("herald ran").octets as f64;
    let herald_rss = herald.iter().filter_map(|l| l.rss_kib).max();
    let vs_bird = time(Announcer::Herald).as_secs_f64() / time(Announcer::Bird).as_secs_f64();
    let vs_gobgp = time(Announcer::Herald).as_secs_f64() / time(Announcer::Gobgp).as_secs_f64();
    let vs_minimal = herald_octets / minimal as f64;
    let _ = writeln!(
        r,
        "  herald/BIRD time:    {vs_bird:.3} (target ≤ 1.00): {}",
        verdict(vs_bird <= 1.0)
    );
    let _ = writeln!(
        r,
        "  herald/GoBGP time:   {vs_gobgp:.3} (target ≤ 0.30): {}",
        verdict(vs_gobgp <= 0.3)
    );
    let _ = writeln!(
        r,
        "  herald octets/prefix vs minimal: {vs_minimal:.4} (target ≤ 1.05): {}",
        verdict(vs_minimal <= 1.05)
    );
    let _ = write!(
        r,
        "  herald peak RSS:     {} (target ≤ 64 MiB): {}",
        rss(herald_rss),
        verdict(herald_rss.is_some_and(|k| k <= RSS_TARGET_KIB))
    );
    r
}
