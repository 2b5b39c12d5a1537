//! The speaker against real routers — BIRD 2, FRR bgpd (without zebra) and GoBGP — each in
//! its own network namespace, linked to the speaker's namespace by a dual-stack veth pair
//! (IPv4 sessions) and an IPv6-only one (IPv6 sessions). Every assertion reads the router's
//! own table: a session that is up but carries wrong routes fails here.
//!
//! One test per router, so the three run concurrently. Each runs eight sessions at once
//! (eBGP and iBGP over IPv4 and IPv6, a 4-octet AS, TCP MD5 with the right and a wrong
//! password, a passive one the router connects to), each carrying a /32 and a /128, then:
//! a withdrawal, a route refresh, the router frozen with SIGSTOP, the speaker killed and
//! restarted under graceful restart, the router restarted, and a graceful shutdown.

mod common;

use bgp::fsm::{Backoff, PeerAs, State};
use bgp::wire::{Community, LargeCommunity, Prefix};
use bgp::{PeerConfig, RouteAttrs, Routes, SpeakerConfig};
use common::*;
use std::net::IpAddr;
use std::time::Duration;

const SPEAKER_AS: u32 = 64512;
const AS4: u32 = 4_200_000_001;
const LIMIT: Duration = Duration::from_secs(45);

/// One session of the scenario: its speaker-side address and AS, and the prefixes it
/// announces.
struct Session {
    id: &'static str,
    source: &'static str,
    local_as: u32,
    peer_as: PeerAs,
    v4: &'static str,
    v6: &'static str,
    local_pref: Option<u32>,
    password: Option<(&'static str, &'static str)>,
}

const SESSIONS: [Session; 8] = [
    Session {
        id: "ebgp4",
        source: "192.0.2.1",
        local_as: SPEAKER_AS,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.1/32",
        v6: "2001:db8:100::1/128",
        local_pref: None,
        password: None,
    },
    Session {
        id: "ebgp6",
        source: "2001:db8:1::1",
        local_as: SPEAKER_AS,
        peer_as: PeerAs::External,
        v4: "198.51.100.2/32",
        v6: "2001:db8:100::2/128",
        local_pref: None,
        password: None,
    },
    Session {
        id: "ibgp4",
        source: "192.0.2.3",
        local_as: ROUTER_AS,
        peer_as: PeerAs::Internal,
        v4: "198.51.100.3/32",
        v6: "2001:db8:100::3/128",
        local_pref: Some(200),
        password: None,
    },
    Session {
        id: "ibgp6",
        source: "2001:db8:1::3",
        local_as: ROUTER_AS,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.4/32",
        v6: "2001:db8:100::4/128",
        local_pref: None,
        password: None,
    },
    Session {
        id: "as4",
        source: "192.0.2.5",
        local_as: AS4,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.5/32",
        v6: "2001:db8:100::5/128",
        local_pref: None,
        password: None,
    },
    Session {
        id: "md5",
        source: "192.0.2.6",
        local_as: 64513,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.6/32",
        v6: "2001:db8:100::6/128",
        local_pref: None,
        password: Some(("s3cret", "s3cret")),
    },
    Session {
        id: "md5bad",
        source: "192.0.2.7",
        local_as: 64514,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.7/32",
        v6: "2001:db8:100::7/128",
        local_pref: None,
        password: Some(("wrong", "s3cret")),
    },
    // The router connects to our listener; MD5 keys are on the listening socket.
    Session {
        id: "passive",
        source: "192.0.2.8",
        local_as: 64515,
        peer_as: PeerAs::Fixed(ROUTER_AS),
        v4: "198.51.100.8/32",
        v6: "2001:db8:100::8/128",
        local_pref: None,
        password: Some(("s3cret", "s3cret")),
    },
];

fn prefix(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').expect("prefix");
    Prefix::new(addr.parse().expect("address"), len.parse().expect("length")).expect("prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn attrs(i: u32, local_pref: Option<u32>) -> RouteAttrs {
    RouteAttrs {
        communities: vec![Community::new(64512, 100 + i as u16)],
        large_communities: vec![LargeCommunity {
            global_administrator: AS4,
            local_data_1: 1,
            local_data_2: i,
        }],
        local_pref,
    }
}

fn peer_config(kind: Kind, s: &Session) -> PeerConfig {
    let router = if s.source.contains(':') {
        ROUTER_V6
    } else {
        ROUTER_V4
    };
    let mut p = PeerConfig::new(s.id, ip(router), s.local_as, s.peer_as);
    p.source_address = Some(ip(s.source));
    p.password = s.password.map(|(ours, _)| ours.to_string());
    p.backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
    };
    p.connect_time = Duration::from_secs(2);
    if s.id == "ebgp4" {
        // The session the router freeze is measured on.
        p.hold_time = 3;
    }
    p.graceful_restart = Some(120);
    p.passive = s.id == "passive";
    // bgpd without zebra knows no interfaces, so it cannot use a link-local next hop.
    p.link_local_next_hop = kind != Kind::Frr;
    p
}

fn neighbors() -> Vec<Neighbor> {
    SESSIONS
        .iter()
        .map(|s| Neighbor {
            name: s.id.to_string(),
            address: s.source.to_string(),
            asn: s.local_as,
            hold_time: (s.id == "ebgp4").then_some(3),
            password: s.password.map(|(_, theirs)| theirs.to_string()),
            extended_next_hop: s.source.contains(':'),
            active: s.id == "passive",
            ..Neighbor::default()
        })
        .collect()
}

/// The one route the router holds for `prefix`, once it has one that `ok` accepts.
fn route_where(
    router: &Router,
    p: &str,
    what: &str,
    ok: impl Fn(&RouterRoute) -> bool,
) -> RouterRoute {
    wait_for(
        &format!("{:?} to hold {p} ({what})", router.kind),
        LIMIT,
        || {
            let routes = router.routes(p)?;
            routes
                .iter()
                .find(|r| ok(r))
                .cloned()
                .ok_or_else(|| format!("{routes:?}\ntable:\n{}", router.dump()))
        },
    )
}

fn absent(router: &Router, p: &str) {
    wait_for(&format!("{:?} to drop {p}", router.kind), LIMIT, || {
        let routes = router.routes(p)?;
        if routes.is_empty() {
            Ok(())
        } else {
            Err(format!("{routes:?}"))
        }
    });
}

fn established(speaker: &NetnsSpeaker, id: &str, times: u64) -> bgp::PeerStatus {
    wait_for(&format!("{id} Established (#{times})"), LIMIT, || {
        let s = speaker.status(id);
        if s.state == State::Established && s.sessions_established >= times {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
}

/// A speaker in the link's speaker namespace with the scenario's peers and routes. Routes
/// are set before peers, so a restarted speaker's first table is already complete.
fn start_speaker(kind: Kind, link: &Link, restarting: bool, withdrawn: &[&str]) -> NetnsSpeaker {
    let speaker = NetnsSpeaker::start(
        &link.speaker,
        SpeakerConfig {
            router_id: "192.0.2.1".parse().expect("router id"),
            restarting,
        },
    );
    for (i, s) in SESSIONS.iter().enumerate() {
        let routes: Routes = if withdrawn.contains(&s.id) {
            Routes::new()
        } else {
            [
                (prefix(s.v4), attrs(i as u32, s.local_pref)),
                (prefix(s.v6), attrs(i as u32, s.local_pref)),
            ]
            .into_iter()
            .collect()
        };
        speaker.set_routes(s.id, routes);
    }
    let configs: Vec<PeerConfig> = SESSIONS.iter().map(|s| peer_config(kind, s)).collect();
    speaker
        .call(move |s| s.set_peers(configs))
        .expect("valid peers");
    speaker
        .call(|s| s.listen("[::]:179".parse().expect("address")))
        .expect("listening on port 179");
    speaker
}

/// The router asks for our IPv4 routes again; they go out on the same session.
fn route_refresh(router: &Router, speaker: &NetnsSpeaker) {
    // On a session with the default hold time, so a busy machine cannot make it flap
    // in between.
    let before = speaker.status("as4");
    router.request_refresh("as4", "192.0.2.5");
    let after = wait_for("as4 to answer a ROUTE-REFRESH", LIMIT, || {
        let s = speaker.status("as4");
        if s.route_refreshes_received > before.route_refreshes_received
            && s.updates_sent > before.updates_sent
        {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    });
    assert_eq!(after.sessions_established, before.sessions_established);
    route_where(router, "198.51.100.5/32", "after the refresh", |r| {
        r.communities.contains(&"64512:104".to_string())
    });
}

fn exercise(kind: Kind, tag: &str) {
    let link = Link::new(tag);
    let mut router = Router::start(kind, &link.router, &neighbors());
    let mut speaker = start_speaker(kind, &link, false, &[]);

    for (i, s) in SESSIONS.iter().enumerate() {
        if s.id == "md5bad" {
            continue;
        }
        let status = established(&speaker, s.id, 1);
        let v6_session = s.source.contains(':');
        let internal = s.local_as == ROUTER_AS;
        let expect_path: Vec<u32> = if internal { vec![] } else { vec![s.local_as] };
        let community = format!("64512:{}", 100 + i);
        let large = format!("{AS4}:1:{i}");
        // Each family's next hop is the session's own address of that family: its source,
        // or for the other family on the dual-stack link the interface's address; on the
        // IPv6-only link IPv4 routes go with the IPv6 next hop (RFC 8950).
        let (v4_next_hop, v6_next_hop) = if v6_session {
            (s.source, s.source)
        } else {
            (s.source, SPEAKER_DUAL_V6)
        };
        let check = |next_hop: &'static str| {
            let expect_path = expect_path.clone();
            let community = community.clone();
            let large = large.clone();
            move |r: &RouterRoute| {
                r.next_hops.contains(&ip(next_hop))
                    && r.as_path == expect_path
                    && r.communities.contains(&community)
                    && r.large_communities.contains(&large)
                    && (!internal || r.local_pref == Some(s.local_pref.unwrap_or(100)))
            }
        };
        let what = |next_hop: &str| {
            format!("next hop {next_hop}, path {expect_path:?}, {community}, {large}")
        };
        route_where(&router, s.v4, &what(v4_next_hop), check(v4_next_hop));
        let r = route_where(&router, s.v6, &what(v6_next_hop), check(v6_next_hop));
        // On-link: the link-local address rides along (RFC 2545), where the router can
        // use it (bgpd without zebra cannot; GoBGP's JSON shows the global one only).
        if kind == Kind::Bird {
            assert!(
                r.next_hops
                    .iter()
                    .any(|h| matches!(h, IpAddr::V6(a) if a.segments()[0] == 0xfe80)),
                "{kind:?} {}: {r:?}",
                s.id
            );
        }
        assert_eq!(
            status.ipv4_over_ipv6, v6_session,
            "{kind:?} {}: {status:?}",
            s.id
        );
        assert!(status.withheld.is_empty(), "{status:?}");
        assert_eq!(status.advertised, 2, "{status:?}");
    }

    // The wrong MD5 password: the router drops our SYNs, so no attempt ever connects.
    let bad = wait_for("md5bad to fail twice", LIMIT, || {
        let s = speaker.status("md5bad");
        if s.connect_attempts >= 2 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    });
    assert_eq!(bad.sessions_established, 0, "{bad:?}");
    assert_ne!(bad.state, State::Established);
    assert!(
        router
            .routes("198.51.100.7/32")
            .expect("router table")
            .is_empty()
    );

    // Withdrawal: the route leaves the router's table; the others stay.
    speaker.set_routes("ibgp4", Routes::new());
    absent(&router, "198.51.100.3/32");
    assert!(
        !router
            .routes("198.51.100.1/32")
            .expect("router table")
            .is_empty()
    );
    assert_eq!(speaker.status("ibgp4").advertised, 0);

    // Route refresh: the router asks, the IPv4 routes go out again on the same session.
    // (GoBGP keeps its Adj-RIB-In and never sends ROUTE-REFRESH: its soft reset is local.)
    if kind != Kind::Gobgp {
        route_refresh(&router, &speaker);
    }

    // A frozen router: our hold timer (3 s) fires, we say so (4/0) and drop the session;
    // once it runs again the session comes back with its routes.
    router.signal(libc::SIGSTOP);
    let frozen = wait_for("ebgp4 hold timer to expire", LIMIT, || {
        let s = speaker.status("ebgp4");
        if s.notifications_sent.contains_key(&(4, 0)) && s.state != State::Established {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    });
    assert_eq!(frozen.advertised, 0);
    router.signal(libc::SIGCONT);
    established(&speaker, "ebgp4", 2);
    route_where(&router, "198.51.100.1/32", "after the freeze", |r| {
        r.next_hops.contains(&ip("192.0.2.1"))
    });

    // Graceful restart: the speaker dies without a word; the router, as helper, keeps
    // the routes while the session is down, and the restarted speaker (R bit set) sends
    // them again, which clears the stale mark.
    speaker.crash();
    wait_for("the router to see the session drop", LIMIT, || match router
        .session_up("ebgp4", "192.0.2.1")
    {
        Ok(false) => Ok(()),
        Ok(true) => Err("still up".into()),
        Err(e) => Err(e),
    });
    let kept = router.routes("198.51.100.1/32").expect("router table");
    assert_eq!(
        kept.len(),
        1,
        "{kind:?} dropped our routes across a restart: {kept:?}"
    );
    if kind != Kind::Bird {
        assert!(kept[0].stale, "{kind:?}: {kept:?}");
    }
    speaker = start_speaker(kind, &link, true, &["ibgp4"]);
    established(&speaker, "ebgp4", 1);
    route_where(
        &router,
        "198.51.100.1/32",
        "refreshed after the restart",
        |r| !r.stale && r.communities.contains(&"64512:100".to_string()),
    );
    established(&speaker, "ebgp6", 1);
    route_where(
        &router,
        "2001:db8:100::2/128",
        "refreshed after the restart",
        |r| !r.stale && r.next_hops.contains(&ip("2001:db8:1::1")),
    );

    // The router restarts: the routes are announced to the new instance.
    drop(router);
    router = Router::start(kind, &link.router, &neighbors());
    route_where(
        &router,
        "198.51.100.1/32",
        "after the router restarted",
        |r| r.next_hops.contains(&ip("192.0.2.1")),
    );
    route_where(
        &router,
        "2001:db8:100::4/128",
        "after the router restarted",
        |r| r.next_hops.contains(&ip("2001:db8:1::3")),
    );

    // Graceful shutdown: every route is re-announced with GRACEFUL_SHUTDOWN, then the
    // sessions end with Cease and the routes leave the router.
    let done = speaker.begin_shutdown(
        Some(Duration::from_secs(5)),
        bgp::StopKind::Shutdown,
        "herald test: node going away",
    );
    route_where(&router, "198.51.100.1/32", "with 65535:0", |r| {
        r.communities.iter().any(|c| c == "65535:0")
    });
    route_where(&router, "2001:db8:100::2/128", "with 65535:0", |r| {
        r.communities.iter().any(|c| c == "65535:0")
    });
    done.recv_timeout(LIMIT).expect("shutdown finished");
    absent(&router, "198.51.100.1/32");
    absent(&router, "2001:db8:100::2/128");
    drop(speaker);
    drop(router);
}

#[test]
fn bird() {
    exercise(Kind::Bird, "bi");
}

#[test]
fn frr() {
    exercise(Kind::Frr, "fr");
}

#[test]
fn gobgp() {
    exercise(Kind::Gobgp, "go");
}

/// A router that keeps the session up but stops reading (BIRD frozen with SIGSTOP, its
/// socket buffers small so the backlog is ours, not the kernel's): 100,000 route changes
/// are made meanwhile; the speaker's send queue stays within its limit, and once the router
/// reads again it holds the last table.
#[test]
fn a_router_that_stops_reading_converges_and_costs_bounded_memory() {
    const ROUTES: u32 = 200;
    const BATCH: u32 = 10;
    const CHANGES: u32 = 100_000;
    let link = Link::new("st");
    // Small TCP buffers on both ends (per namespace): 64 KiB at most.
    for (ns, key) in [
        (&link.router, "net.ipv4.tcp_rmem"),
        (&link.speaker, "net.ipv4.tcp_wmem"),
    ] {
        ns.sysctl(key, "4096 16384 65536");
    }
    let router = Router::start(
        Kind::Bird,
        &link.router,
        &[Neighbor {
            name: "ebgp4".into(),
            address: "192.0.2.1".into(),
            asn: SPEAKER_AS,
            ..Neighbor::default()
        }],
    );
    let speaker = NetnsSpeaker::start(
        &link.speaker,
        SpeakerConfig {
            router_id: "192.0.2.1".parse().expect("router id"),
            restarting: false,
        },
    );
    let host = |i: u32| Prefix::host(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
    let community = |c: u32| RouteAttrs {
        communities: vec![Community::new(64512, (c % 60_000) as u16)],
        ..RouteAttrs::default()
    };
    let mut routes: Routes = (0..ROUTES).map(|i| (host(i), community(i))).collect();
    speaker.set_routes("ebgp4", routes.clone());
    let mut p = PeerConfig::new("ebgp4", ip(ROUTER_V4), SPEAKER_AS, PeerAs::Fixed(ROUTER_AS));
    p.source_address = Some(ip("192.0.2.1"));
    // BIRD's default: no hold timer expires while it is frozen for this long.
    p.hold_time = 240;
    speaker
        .call(move |s| s.set_peers(vec![p]))
        .expect("valid peer");
    let holds = |routes: &Routes| -> Result<(), String> {
        let table = parse_bird(&router.daemon().birdc(&["show", "route", "all"])?);
        let wrong = routes
            .iter()
            .filter(|(prefix, attrs)| {
                let want = attrs.communities[0].to_string();
                !table
                    .iter()
                    .any(|r| r.prefix == prefix.to_string() && r.communities == [want.clone()])
            })
            .count();
        if wrong == 0 {
            Ok(())
        } else {
            Err(format!(
                "{wrong} of {} routes missing or stale",
                routes.len()
            ))
        }
    };
    wait_for("BIRD to hold the first table", LIMIT, || holds(&routes));

    router.signal(libc::SIGSTOP);
    let mut peak = 0;
    for k in (0..CHANGES).step_by(BATCH as usize) {
        for j in k..k + BATCH {
            routes.insert(host(j % ROUTES), community(ROUTES + j));
        }
        let copy = routes.clone();
        let queued = speaker.call(move |s| {
            s.set_routes("ebgp4", copy);
            s.status()[0].send_queue_bytes
        });
        peak = peak.max(queued);
    }
    let s = speaker.status("ebgp4");
    eprintln!(
        "{CHANGES} route changes to a frozen router: send queue peak {} octets (limit {}), \
         held back {} times, speaker RSS peak {:?} KiB",
        s.send_queue_peak,
        bgp::SEND_QUEUE_LIMIT,
        s.send_queue_full,
        testkit::routers::peak_rss_kib(std::process::id()),
    );
    assert!(s.send_queue_full > 0, "the queue never filled: {s:?}");
    // One sync's UPDATEs may go in above the limit: at most the whole table's.
    assert!(
        s.send_queue_peak <= bgp::SEND_QUEUE_LIMIT + 64 * ROUTES as usize,
        "{s:?}"
    );
    assert!(peak <= s.send_queue_peak);
    assert_eq!(s.state, State::Established);

    router.signal(libc::SIGCONT);
    wait_for("BIRD to hold the last table", LIMIT, || holds(&routes));
    assert_eq!(speaker.status("ebgp4").sessions_established, 1);
}
