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
