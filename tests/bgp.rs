//! `herald speaker` in file mode announcing over BGP, end to end, to BIRD 2, FRR bgpd and
//! GoBGP: herald runs in one namespace, the router in another (`testkit::routers::Link`: a
//! dual-stack link for IPv4 sessions, an IPv6-only link for IPv6 sessions), and every
//! assertion reads the router's own table. The configuration is MetalLB's, written to a
//! file and changed as a user would change it.
//!
//! Four sessions per router: eBGP and iBGP, over IPv4 and over IPv6, each carrying both
//! families (dualStackAddressFamily), one with its TCP MD5 password in a Secret. A
//! dual-stack Service goes out as a /32 and a /128 with communities, large communities
//! and (iBGP only) local-pref; another pool is aggregated. Then the Service goes away, and
//! finally herald stops.
//!
//! Needs root and the Debian packages bird2, frr and gobgpd; nothing is timed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use testkit::routers::{
    Kind, Link, Neighbor, ROUTER_AS, ROUTER_V4, ROUTER_V6, Router, RouterRoute, SPEAKER_DUAL_V6,
};
use testkit::{PATIENCE, Signal, Speaker, metric};

const HERALD_AS: u32 = 64512;
const WEB_V4: &str = "198.51.100.1";
const WEB_V6: &str = "2001:db8:100::1";
const AGG_V4: &str = "203.0.113.0/28";
const AGG_V6: &str = "2001:db8:200::/124";

/// One BGPPeer of the configuration and how the router sees it.
struct Session {
    name: &'static str,
    /// herald's address for it (its sourceAddress); the router's neighbor address.
    source: &'static str,
    my_asn: u32,
    password: Option<&'static str>,
}

const SESSIONS: [Session; 4] = [
    Session {
        name: "ebgp4",
        source: "192.0.2.1",
        my_asn: HERALD_AS,
        password: None,
    },
    Session {
        name: "ibgp4",
        source: "192.0.2.3",
        my_asn: ROUTER_AS,
        password: None,
    },
    Session {
        name: "ebgp6",
        source: "2001:db8:1::1",
        my_asn: HERALD_AS,
        password: Some("s3cret"),
    },
    Session {
        name: "ibgp6",
        source: "2001:db8:1::3",
        my_asn: ROUTER_AS,
        password: None,
    },
];

impl Session {
    fn is_v6(&self) -> bool {
        self.source.contains(':')
    }

    fn router(&self) -> &'static str {
        if self.is_v6() { ROUTER_V6 } else { ROUTER_V4 }
    }

    fn internal(&self) -> bool {
        self.my_asn == ROUTER_AS
    }

    /// The next hop the router should hold for a prefix of the family of `prefix`: the
    /// session's own address, or on the dual-stack link the interface's IPv6 address for
    /// IPv6 routes; IPv4 routes on the IPv6-only link go with the IPv6 one (RFC 8950).
    fn next_hop(&self, prefix: &str) -> IpAddr {
        let hop = if prefix.contains(':') && !self.is_v6() {
            SPEAKER_DUAL_V6
        } else {
            self.source
        };
        hop.parse().expect("an address")
    }
}

fn config(with_web: bool) -> String {
    let mut text = String::from(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/28, 2001:db8:100::/124]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bulk, namespace: metallb-system}
spec:
  addresses: [203.0.113.0/28, 2001:db8:200::/124]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: public, namespace: metallb-system}
spec:
  ipAddressPools: [public]
  communities: [64512:100, no-export, edge]
  localPref: 250
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bulk, namespace: metallb-system}
spec:
  ipAddressPools: [bulk]
  aggregationLength: 28
  aggregationLengthV6: 124
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: metallb-system}
spec:
  communities:
  - {name: edge, value: 'large:4200000001:1:2'}
---
apiVersion: v1
kind: Secret
metadata: {name: ebgp6-password, namespace: metallb-system}
type: kubernetes.io/basic-auth
stringData: {password: s3cret}
",
    );
    text += &testkit::service_yaml("bulk", &["203.0.113.5", "2001:db8:200::5"]);
    for s in &SESSIONS {
        let password = match s.password {
            Some(_) => format!("\n  passwordSecret: {{name: {}-password}}", s.name),
            None => String::new(),
        };
        text += &format!(
            "---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: {name}, namespace: metallb-system}}
spec:
  myASN: {my_asn}
  peerASN: {ROUTER_AS}
  peerAddress: '{router}'
  sourceAddress: '{source}'
  dualStackAddressFamily: true
  holdTime: 9s{password}
",
            name = s.name,
            my_asn = s.my_asn,
            router = s.router(),
            source = s.source,
        );
    }
    if with_web {
        text += &testkit::service_yaml("web", &[WEB_V4, WEB_V6]);
    }
    text
}

fn neighbors() -> Vec<Neighbor> {
    SESSIONS
        .iter()
        .map(|s| Neighbor {
            name: s.name.into(),
            address: s.source.into(),
            asn: s.my_asn,
            hold_time: None,
            password: s.password.map(str::to_owned),
            extended_next_hop: s.is_v6(),
            active: false,
            ..Neighbor::default()
        })
        .collect()
}

/// Waits until the router holds, from session `s`, a route for `prefix` that `ok` accepts.
fn route_from(router: &Router, s: &Session, prefix: &str, ok: impl Fn(&RouterRoute) -> bool) {
    let next_hop = s.next_hop(prefix);
    let path: Vec<u32> = if s.internal() { vec![] } else { vec![s.my_asn] };
    testkit::netns::poll_until(
        &format!("{:?} to hold {prefix} from {}", router.kind, s.name),
        PATIENCE,
        |last| {
            let routes = router.routes(prefix).unwrap_or_default();
            let found = routes
                .iter()
                .any(|r| r.next_hops.contains(&next_hop) && r.as_path == path && ok(r));
            *last = format!("{routes:#?}\ntable:\n{}", router.dump());
            found.then_some(())
        },
    );
}

fn absent(router: &Router, prefix: &str) {
    testkit::netns::poll_until(
        &format!("{:?} to drop {prefix}", router.kind),
        PATIENCE,
        |last| {
            let routes = router.routes(prefix).unwrap_or_default();
            *last = format!("{routes:#?}");
            routes.is_empty().then_some(())
        },
    );
}

fn exercise(kind: Kind, tag: &str) {
    let link = Link::new(tag);
    let router = Router::start(kind, &link.router, &neighbors());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &config(true));
    // bgpd without zebra knows no interfaces, so it drops routes with a link-local next hop.
    let link_local = if kind == Kind::Frr { "false" } else { "true" };
    let mut herald = Speaker::start_in(
        &link.speaker,
        &[&file],
        "node-a",
        &["--bgp-link-local-next-hop", link_local],
    );

    for s in &SESSIONS {
        for prefix in [format!("{WEB_V4}/32"), format!("{WEB_V6}/128")] {
            route_from(&router, s, &prefix, |r| {
                r.communities.iter().any(|c| c == "64512:100")
                    && r.communities.iter().any(|c| c == "65535:65281")
                    && r.large_communities.iter().any(|c| c == "4200000001:1:2")
                    // Only iBGP carries LOCAL_PREF; routers give eBGP routes their own.
                    && (!s.internal() || r.local_pref == Some(250))
            });
        }
        // The other pool goes out as its aggregates, never as the Service's own addresses.
        for prefix in [AGG_V4, AGG_V6] {
            route_from(&router, s, prefix, |_| true);
        }
    }
    for host in ["203.0.113.5/32", "2001:db8:200::5/128"] {
        assert!(
            router.routes(host).unwrap_or_default().is_empty(),
            "{kind:?} holds {host}, which should only go out as an aggregate"
        );
    }
    let m = herald.scrape();
    for s in &SESSIONS {
        let peer = std::net::SocketAddr::new(s.router().parse().expect("ip"), 179).to_string();
        let labels = [("peer", peer.as_str()), ("name", s.name)];
        assert_eq!(
            metric(&m, "metallb_bgp_session_up", &labels),
            Some(1.0),
            "{}",
            s.name
        );
        assert_eq!(
            metric(&m, "metallb_bgp_announced_prefixes_total", &labels),
            Some(4.0),
            "{}",
            s.name
        );
    }
    assert_eq!(
        metric(
            &m,
            "metallb_speaker_announced",
            &[
                ("service", "default/web"),
                ("protocol", "bgp"),
                ("ip", WEB_V6)
            ]
        ),
        Some(1.0)
    );

    // The Service goes away: its routes are withdrawn everywhere, the aggregates stay.
    testkit::replace_file(&file, &config(false));
    absent(&router, &format!("{WEB_V4}/32"));
    absent(&router, &format!("{WEB_V6}/128"));
    for s in &SESSIONS {
        route_from(&router, s, AGG_V4, |_| true);
    }

    // herald stops: Cease on every session, and the router drops what it had from us.
    herald.signal(Signal::Term);
    let status = herald.wait_exit(PATIENCE).expect("herald exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    absent(&router, AGG_V4);
    absent(&router, AGG_V6);
    if kind == Kind::Bird {
        // BIRD shows the shutdown communication (RFC 9003) it received.
        testkit::netns::poll_until("BIRD to show why the session ended", PATIENCE, |last| {
            *last = router
                .neighbor_info("ebgp4", "192.0.2.1")
                .unwrap_or_else(|e| e);
            last.contains("node-a").then_some(())
        });
    }
}

#[test]
fn bird() {
    exercise(Kind::Bird, "eb");
}

#[test]
fn frr() {
    exercise(Kind::Frr, "ef");
}

#[test]
fn gobgp() {
    exercise(Kind::Gobgp, "eg");
}

// ---- graceful restart, BFD, unnumbered (issue 11) ----

/// herald's configuration for one eBGP session over IPv4 to the router carrying both
/// families: the web Service, `peer_extra` added to the BGPPeer's spec, and `more`
/// documents (a BFDProfile, a Node).
fn one_peer_config(peer_extra: &str, more: &str) -> String {
    format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: public, namespace: metallb-system}}
spec:
  addresses: [198.51.100.0/28, 2001:db8:100::/124]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: public, namespace: metallb-system}}
spec:
  ipAddressPools: [public]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: ebgp4, namespace: metallb-system}}
spec:
  myASN: {HERALD_AS}
  peerASN: {ROUTER_AS}
  peerAddress: '{ROUTER_V4}'
  sourceAddress: '192.0.2.1'
  dualStackAddressFamily: true
{peer_extra}
{more}{web}",
        web = testkit::service_yaml("web", &[WEB_V4, WEB_V6]),
    )
}

const EBGP4: &Session = &SESSIONS[0];

fn neighbor(name: &str, address: &str) -> Neighbor {
    Neighbor {
        name: name.into(),
        address: address.into(),
        asn: HERALD_AS,
        ..Neighbor::default()
    }
}

/// Whether the router holds both of the web Service's routes from the ebgp4 session.
fn holds_web(router: &Router) -> Result<(bool, bool, bool), String> {
    let v4 = router.routes(&format!("{WEB_V4}/32"))?;
    let v6 = router.routes(&format!("{WEB_V6}/128"))?;
    let ok = |routes: &[RouterRoute], prefix: &str| {
        routes
            .iter()
            .any(|r| r.next_hops.contains(&EBGP4.next_hop(prefix)))
    };
    let stale = v4.iter().chain(&v6).any(|r| r.stale);
    Ok((ok(&v4, WEB_V4), ok(&v6, WEB_V6), stale))
}

/// Reads the router's table every 100 ms (or as fast as it answers) while `during` runs;
/// returns every read that lacked a route, and how many reads there were. `during` is
/// given the count of reads so far, to let some happen.
fn read_throughout(router: &Router, during: impl FnOnce(&AtomicUsize)) -> (Vec<String>, usize) {
    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut missing = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let n = reads.load(Ordering::Relaxed) + 1;
                match holds_web(router) {
                    Ok((true, true, _)) => {}
                    other => missing.push(format!("read {n}: {other:?}")),
                }
                reads.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
            }
            missing
        });
        during(&reads);
        stop.store(true, Ordering::Relaxed);
        let missing = reader.join().expect("the reader thread");
        (missing, reads.load(Ordering::Relaxed))
    })
}

/// Waits until the reader has read the router's table `n` more times: herald stays away
/// that long, as a real restart may, and every read meanwhile sees only what the router
/// kept.
fn let_reads_happen(reads: &AtomicUsize, n: usize) {
    let until = reads.load(Ordering::Relaxed) + n;
    testkit::netns::poll_until(
        "the router to be read while herald is away",
        PATIENCE,
        |_| (reads.load(Ordering::Relaxed) >= until).then_some(()),
    );
}

fn speaker_pid_kill(herald: &Speaker) {
    // SAFETY: kill(2) on the herald this test started.
    let rc = unsafe { libc::kill(herald.pid() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 herald: {}", std::io::Error::last_os_error());
}

/// Waits until the router holds both routes, fresh (not kept from before a restart), and
/// herald's session is up again.
fn fresh_again(router: &Router, herald: &Speaker) {
    herald.eventually("herald's session to be Established", |h| {
        let status = h.get_json("/status");
        let bgp = &status["announcing"]["bgp"][0];
        (bgp["state"] == "Established").then_some(())
    });
    testkit::netns::poll_until("the routes to be fresh again", PATIENCE, |last| {
        let held = holds_web(router);
        *last = format!("{held:?}\n{}", router.dump());
        matches!(held, Ok((true, true, false))).then_some(())
    });
}

fn graceful_restart(kind: Kind, tag: &str) {
    let link = Link::new(tag);
    let mut n = neighbor("ebgp4", "192.0.2.1");
    n.graceful_restart = true;
    let router = Router::start(kind, &link.router, &[n]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &one_peer_config("  enableGracefulRestart: true", ""));
    let start = || Speaker::start_in(&link.speaker, &[&file], "node-a", &[]);
    let mut herald = start();
    fresh_again(&router, &herald);
    if kind == Kind::Frr {
        // The router sees us as a restarting speaker, with the N bit negotiated.
        let out = router
            .daemon()
            .vtysh("show bgp neighbors 192.0.2.1 json")
            .expect("neighbor info");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let gr = &v["192.0.2.1"]["gracefulRestartInfo"];
        assert_eq!(gr["nBit"], true, "{gr:#}");
        assert_eq!(gr["remoteGrMode"], "Restart", "{gr:#}");
        eprintln!("FRR's view of herald's graceful restart: {gr}");
    }

    let (missing, reads) = read_throughout(&router, |reads| {
        // SIGTERM: a restart (the node stays). The router keeps the routes...
        herald.signal(Signal::Term);
        assert!(herald.wait_exit(PATIENCE).expect("herald exits").success());
        testkit::netns::poll_until("the router to hold the routes as stale", PATIENCE, |last| {
            let up = router.session_up("ebgp4", "192.0.2.1");
            let held = holds_web(&router);
            *last = format!("session up: {up:?}, held: {held:?}");
            (up == Ok(false) && matches!(held, Ok((true, true, _)))).then_some(())
        });
        // ... while herald is away, and takes fresh ones from the restarted herald.
        let_reads_happen(reads, 5);
        herald = start();
        fresh_again(&router, &herald);

        // kill -9: the kernel closes the connection; the same again.
        speaker_pid_kill(&herald);
        herald.wait_exit(PATIENCE).expect("herald dies");
        testkit::netns::poll_until("the router to see the session drop", PATIENCE, |last| {
            let up = router.session_up("ebgp4", "192.0.2.1");
            *last = format!("{up:?}");
            (up == Ok(false)).then_some(())
        });
        let_reads_happen(reads, 5);
        herald = start();
        fresh_again(&router, &herald);
    });
    assert!(reads >= 10, "only {reads} reads");
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "{kind:?} lost routes in {reads} reads"
    );
    eprintln!("{kind:?}: both routes present in all {reads} reads across SIGTERM and kill -9");
    // A graceful restart, not a session loss.
    let log = router.log().to_lowercase();
    assert!(log.contains("graceful restart"), "{kind:?} log:\n{log}");

    // Cordoned: the node is going away, so SIGTERM withdraws.
    let node =
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {unschedulable: true}\n";
    testkit::replace_file(
        &file,
        &one_peer_config("  enableGracefulRestart: true", node),
    );
    herald
        .wait_for_log(
            |l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("the node is going away"))
            },
            PATIENCE,
        )
        .expect("herald sees the node is cordoned");
    herald.signal(Signal::Term);
    assert!(herald.wait_exit(PATIENCE).expect("herald exits").success());
    absent(&router, &format!("{WEB_V4}/32"));
    absent(&router, &format!("{WEB_V6}/128"));
}

#[test]
fn graceful_restart_bird() {
    graceful_restart(Kind::Bird, "gb");
}

#[test]
fn graceful_restart_frr() {
    graceful_restart(Kind::Frr, "gf");
}

/// Drops BFD and BGP packets in `ns` (both ways), or stops dropping them. The rules go in
/// as one nft transaction, so the silence begins at one instant, before this returns.
fn silence(ns: &testkit::netns::Netns, on: bool) {
    if !on {
        ns.exec("nft", &["delete", "table", "inet", "silence"]);
        return;
    }
    let drops = "udp dport { 3784, 4784 } drop; udp sport { 3784, 4784 } drop; tcp dport 179 drop; tcp sport 179 drop;";
    let ruleset = format!(
        "table inet silence {{\n chain in {{ type filter hook input priority 0; {drops} }}\n chain out {{ type filter hook output priority 0; {drops} }}\n}}\n"
    );
    let file = std::env::temp_dir().join(format!("herald-silence-{}.nft", ns.name()));
    std::fs::write(&file, ruleset).expect("write the nft ruleset");
    ns.exec("nft", &["-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
}

fn bfd(kind: Kind, tag: &str) {
    let link = Link::new(tag);
    // The router's own timers are quicker than the profile's, so what is in force shows
    // the profile's.
    let mut n = neighbor("ebgp4", "192.0.2.1");
    n.bfd = Some(testkit::routers::BfdTimers {
        receive_ms: 100,
        transmit_ms: 100,
        multiplier: 3,
    });
    let router = Router::start(kind, &link.router, &[n]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    let profile = "---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 300, transmitInterval: 250, detectMultiplier: 3, echoMode: true}
";
    // Echo mode is accepted with a warning (herald runs no echo function), but refused for
    // a peer announcing IPv6 addresses (MetalLB's rule): this pool is IPv4 only.
    let config = one_peer_config("  bfdProfile: fast", profile)
        .replace("[198.51.100.0/28, 2001:db8:100::/124]", "[198.51.100.0/28]");
    testkit::replace_file(&file, &config);
    let herald = Speaker::start_in(&link.speaker, &[&file], "node-a", &[]);

    // Up with the profile's intervals, as the router sees them: it receives at 300 ms, is
    // sent to every 250 ms, three times at most missed (detection 750 ms).
    let view = testkit::netns::poll_until("the router's BFD session to be up", PATIENCE, |last| {
        let sessions = router.bfd_sessions();
        *last = format!("{sessions:?}");
        let s = sessions.ok()?.into_iter().find(|s| s.peer == "192.0.2.1")?;
        let intervals = match kind {
            Kind::Frr => {
                (
                    s.remote_receive_ms,
                    s.remote_transmit_ms,
                    s.remote_multiplier,
                ) == (Some(300), Some(250), Some(3))
            }
            _ => (s.interval_ms, s.timeout_ms) == (Some(300), Some(750)),
        };
        (s.up && intervals).then_some(s)
    });
    eprintln!("{kind:?} BFD view: {view:?}");
    route_from(&router, EBGP4, &format!("{WEB_V4}/32"), |_| true);
    // The router's forwarding table, as its kernel reports changes to it: when the routes
    // leave is read there, not from how quickly the router's CLI answers.
    let fib = testkit::netns::RouteMonitor::start(&link.router);
    testkit::netns::poll_until(
        "the router to install the route in its kernel",
        PATIENCE,
        |last| {
            *last = link.router.ip(&["route", "show", WEB_V4]);
            last.contains(WEB_V4).then_some(())
        },
    );
    let status = herald.get_json("/status");
    let b = &status["announcing"]["bgp"][0]["bfd"];
    assert_eq!(b["state"], "Up", "{status:#}");
    assert_eq!(
        (
            b["receive_interval_ms"].as_f64(),
            b["transmit_interval_ms"].as_f64()
        ),
        (Some(300.0), Some(250.0))
    );
    assert!(
        b["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("echoMode")),
        "echo mode is warned about: {b:#}"
    );
    let m = herald.scrape();
    let labels = [("peer", ROUTER_V4)];
    assert_eq!(metric(&m, "metallb_bfd_session_up", &labels), Some(1.0));
    assert!(metric(&m, "metallb_bfd_control_packet_input", &labels).unwrap_or(0.0) > 0.0);
    assert!(metric(&m, "metallb_bfd_control_packet_output", &labels).unwrap_or(0.0) > 0.0);
    // FRR's bgpd makes its BFD session again, with the interface of the BGP connection, once
    // that connects: the first BGP attempt, which waited for BFD, ends with that bounce.
    let ups = metric(&m, "metallb_bfd_session_up_events", &labels).unwrap_or(0.0);
    assert!(ups >= 1.0, "{ups}");
    assert_eq!(
        metric(&m, "metallb_bfd_echo_packet_output", &labels),
        Some(0.0)
    );

    // herald's node stops answering: the router's BFD session goes down within its
    // detection time (750 ms), and its routes from herald with it, far below the hold
    // time (90 s).
    let detect_ms = 750;
    silence(&link.speaker, true);
    let t0 = testkit::netns::now_ms();
    testkit::netns::poll_until("the router to drop the routes", PATIENCE, |last| {
        let held = holds_web(&router);
        *last = format!("{held:?}");
        matches!(held, Ok((false, false, _))).then_some(())
    });
    let removed = testkit::netns::poll_until(
        "the router's kernel to report the route deleted",
        PATIENCE,
        |_| fib.deleted_at(WEB_V4),
    );
    let gone = removed.saturating_sub(t0);
    eprintln!(
        "{kind:?}: routes gone from the router's forwarding table {gone} ms after herald went silent (detection time {detect_ms} ms)"
    );
    // Herald's last packet left before the silence began (t0); the router's timers on a
    // busy machine may fire late. The hold timer (90 s) would take far longer.
    assert!(
        gone <= detect_ms + 500,
        "{kind:?} dropped the routes {gone} ms after herald went silent"
    );
    let down = router.bfd_sessions().expect("BFD view");
    assert!(down.iter().all(|s| !s.up), "{down:?}");

    // Answering again: BFD comes back, then BGP with the routes.
    silence(&link.speaker, false);
    route_from(&router, EBGP4, &format!("{WEB_V4}/32"), |_| true);

    // The router goes silent: herald's BFD session goes down within its detection time
    // (the router's multiplier 3 × herald's receive interval 300 ms), and the BGP session
    // is closed with it.
    let detect_ms = 900;
    silence(&link.router, true);
    let t1 = testkit::netns::now_ms();
    let status = herald.eventually("herald to show BFD and BGP down", |h| {
        let status = h.get_json("/status");
        let s = &status["announcing"]["bgp"][0];
        (s["bfd"]["state"] == "Down" && s["state"] != "Established").then_some(status)
    });
    let s = &status["announcing"]["bgp"][0];
    let when = |transitions: &serde_json::Value, from: &str| -> u128 {
        let t = transitions
            .as_array()
            .and_then(|ts| ts.iter().rev().find(|t| t["from"] == from))
            .unwrap_or_else(|| panic!("no transition from {from}: {status:#}"));
        testkit::netns::epoch_ms(t["at"].as_str().expect("a time"))
    };
    let bfd_down = when(&s["bfd"]["recent_transitions"], "Up") - t1;
    let bgp_down = when(&s["recent_transitions"], "Established") - t1;
    eprintln!(
        "{kind:?}: herald's BFD down {bfd_down} ms, BGP closed {bgp_down} ms after the router went silent (detection time {detect_ms} ms)"
    );
    // The router's last packet came before the silence began (t1); herald's timers on a
    // busy machine (two cores shared by several test runs) may fire late.
    assert!(bfd_down <= detect_ms + 500, "BFD down after {bfd_down} ms");
    assert!(
        bgp_down <= detect_ms + 500,
        "BGP closed after {bgp_down} ms"
    );
    assert_eq!(s["last_notification_sent"], "NOTIFICATION 6/10", "{s:#}");
    let m = herald.scrape();
    assert_eq!(metric(&m, "metallb_bfd_session_up", &labels), Some(0.0));
    assert_eq!(
        metric(&m, "metallb_bfd_session_down_events", &labels),
        Some(ups + 1.0)
    );
    silence(&link.router, false);
}

#[test]
fn bfd_frr() {
    bfd(Kind::Frr, "bf");
}

#[test]
fn bfd_bird() {
    bfd(Kind::Bird, "bb");
}

/// herald's link-local address on `ifname` in `ns`.
fn link_local(ns: &testkit::netns::Netns, ifname: &str) -> std::net::Ipv6Addr {
    let out = ns.ip(&["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no link-local address on {ifname}: {out}"))
}

fn unnumbered(kind: Kind, tag: &str) {
    let link = Link::new(tag);
    // A link with link-local addresses only.
    testkit::netns::veth(&link.speaker, "un0", &link.router, "un1");
    let ours = link_local(&link.speaker, "un0");
    let mut n = neighbor("unnum", &ours.to_string());
    n.interface = Some("un1".into());
    let router = Router::start(kind, &link.router, &[n]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    let config = format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: public, namespace: metallb-system}}
spec:
  addresses: [198.51.100.0/28, 2001:db8:100::/124]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: public, namespace: metallb-system}}
spec:
  ipAddressPools: [public]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: unnum, namespace: metallb-system}}
spec:
  myASN: {HERALD_AS}
  peerASN: {ROUTER_AS}
  interface: un0
{web}",
        web = testkit::service_yaml("web", &[WEB_V4, WEB_V6]),
    );
    testkit::replace_file(&file, &config);
    let herald = Speaker::start_in(&link.speaker, &[&file], "node-a", &[]);
    for prefix in [format!("{WEB_V4}/32"), format!("{WEB_V6}/128")] {
        testkit::netns::poll_until(
            &format!("{kind:?} to hold {prefix} via herald's link-local address"),
            PATIENCE,
            |last| {
                let routes = router.routes(&prefix).unwrap_or_default();
                *last = format!(
                    "{routes:#?}\n{}\nherald: {}",
                    router.dump(),
                    herald.get("/status").1
                );
                routes
                    .iter()
                    .any(|r| r.next_hops.contains(&IpAddr::V6(ours)) && r.as_path == [HERALD_AS])
                    .then_some(())
            },
        );
    }
    let status = herald.get_json("/status");
    let s = &status["announcing"]["bgp"][0];
    assert_eq!(s["state"], "Established", "{s:#}");
    assert!(
        s["router_discovery"]["advertisements_sent"].as_u64() > Some(0),
        "{s:#}"
    );
    if kind == Kind::Frr {
        // The router found us from our Router Advertisements, and installed the IPv4 route
        // with our link-local address as its gateway (RFC 8950).
        let kernel = link.router.ip(&["route", "show", WEB_V4]);
        assert!(kernel.contains(&ours.to_string()), "{kernel}");
    }
}

#[test]
fn unnumbered_frr() {
    unnumbered(Kind::Frr, "uf");
}

#[test]
fn unnumbered_bird() {
    unnumbered(Kind::Bird, "ub");
}
