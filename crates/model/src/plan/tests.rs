//! One test per selection rule, then property tests that `plan` is deterministic and does not
//! depend on the order anything was built in.

use super::*;
use crate::community::{Community, LargeCommunity};
use crate::world::{
    AddressRange, BgpAdvertisement, Endpoints, L2Advertisement, Node, Peer, PeerAsn, PeerEndpoint,
    Pool, Service, ServiceRef, TrafficPolicy, World,
};

mod builder {
    use super::*;

    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    pub fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn sel(kv: &[(&str, &str)]) -> Selector {
        Selector {
            match_labels: labels(kv),
            requirements: vec![],
        }
    }

    pub fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    pub fn svc_ref(s: &str) -> ServiceRef {
        let (namespace, name) = s.split_once('/').unwrap();
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn pool(name: &str, cidr: &str) -> Pool {
        let n = net(cidr);
        Pool {
            name: name.into(),
            labels: Labels::new(),
            ranges: vec![AddressRange {
                first: n.network(),
                last: n.broadcast(),
            }],
            cidrs: vec![n],
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }

    pub fn l2ad(name: &str) -> L2Advertisement {
        L2Advertisement {
            name: name.into(),
            pools: PoolSelection::default(),
            node_selectors: vec![],
            interfaces: BTreeSet::new(),
            service_selectors: vec![],
            preferred_nodes: vec![],
        }
    }

    pub fn bgpad(name: &str) -> BgpAdvertisement {
        BgpAdvertisement {
            name: name.into(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: BTreeSet::new(),
            large_communities: BTreeSet::new(),
            pools: PoolSelection::default(),
            node_selectors: vec![],
            peers: BTreeSet::new(),
            service_selectors: vec![],
        }
    }

    /// A peer of AS `peer_asn` from our AS 64500 (so 64500 makes it iBGP).
    pub fn peer(name: &str, addr: &str, peer_asn: u32) -> Peer {
        Peer::with_defaults(
            name,
            64500,
            PeerAsn::Fixed(peer_asn),
            PeerEndpoint::Address(ip(addr)),
        )
    }

    /// A LoadBalancer service of class `None`, policy Cluster, with a ready endpoint on `n1`.
    pub fn svc(key: &str, ips: &[&str]) -> Service {
        Service {
            key: svc_ref(key),
            labels: Labels::new(),
            is_load_balancer: true,
            load_balancer_class: None,
            external_traffic_policy: TrafficPolicy::Cluster,
            ips: ips.iter().map(|s| ip(s)).collect(),
            requested_pool: None,
            endpoints: Endpoints {
                ready: names(&["n1"]),
                serving: names(&["n1"]),
                assumed_everywhere: false,
            },
            problems: Vec::new(),
        }
    }

    pub fn node(name: &str, kv: &[(&str, &str)]) -> Node {
        Node {
            name: name.into(),
            labels: labels(kv),
            excluded_from_load_balancers: false,
            network_unavailable: false,
            unschedulable: false,
            deleting: false,
            problems: Vec::new(),
        }
    }

    /// Collects resources into a `World`, keyed by name as `validate` does.
    #[derive(Default)]
    pub struct WorldBuilder(pub World);

    pub fn world() -> WorldBuilder {
        WorldBuilder::default()
    }

    impl WorldBuilder {
        pub fn pool(mut self, p: Pool) -> Self {
            self.0.pools.insert(p.name.clone(), p);
            self
        }
        pub fn l2(mut self, a: L2Advertisement) -> Self {
            self.0.l2_advertisements.insert(a.name.clone(), a);
            self
        }
        pub fn bgp(mut self, a: BgpAdvertisement) -> Self {
            self.0.bgp_advertisements.insert(a.name.clone(), a);
            self
        }
        pub fn peer(mut self, p: Peer) -> Self {
            self.0.peers.insert(p.name.clone(), p);
            self
        }
        pub fn svc(mut self, s: Service) -> Self {
            self.0.services.insert(s.key.clone(), s);
            self
        }
        pub fn node(mut self, n: Node) -> Self {
            self.0.nodes.insert(n.name.clone(), n);
            self
        }
        pub fn class(mut self, c: &str) -> Self {
            self.0.load_balancer_class = Some(c.into());
            self
        }
        pub fn plan(&self, node: &str) -> NodePlan {
            plan(&self.0, node)
        }
    }

    /// One pool `a` = 192.0.2.0/24 and `b` = 2001:db8::/64, node `n1` labelled zone=a.
    pub fn base() -> WorldBuilder {
        world()
            .pool(pool("a", "192.0.2.0/24"))
            .pool(pool("b", "2001:db8::/64"))
            .node(node("n1", &[("zone", "a")]))
    }

    pub fn ann(
        ipaddr: &str,
        service: &str,
        pool: &str,
        ads: &[&str],
        ifs: Interfaces,
    ) -> L2Announcement {
        L2Announcement {
            ip: ip(ipaddr),
            service: svc_ref(service),
            pool: pool.into(),
            advertisements: names(ads),
            interfaces: ifs,
            preference: 0,
        }
    }

    pub fn skip(
        service: &str,
        ipaddr: Option<&str>,
        protocol: Option<Protocol>,
        reason: SkipReason,
    ) -> Skipped {
        Skipped {
            service: svc_ref(service),
            ip: ipaddr.map(ip),
            protocol,
            reason,
        }
    }

    pub fn route(prefix: &str, services: &[&str], ads: &[&str], local_pref: Option<u32>) -> Route {
        Route {
            prefix: net(prefix),
            services: services
                .iter()
                .map(|s| svc_ref(s))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            communities: BTreeSet::new(),
            large_communities: BTreeSet::new(),
            local_pref,
            advertisements: names(ads).into_iter().collect(),
        }
    }

    /// (peer name, routes) for every planned session, for compact assertions.
    pub fn sessions(p: &NodePlan) -> Vec<(String, Vec<Route>)> {
        p.bgp
            .iter()
            .map(|s| (s.peer.name.clone(), s.routes.clone()))
            .collect()
    }
}

use builder::*;

const L2: Option<Protocol> = Some(Protocol::Layer2);
const BGP: Option<Protocol> = Some(Protocol::Bgp);

// ---- the service ----

#[test]
fn not_a_load_balancer_is_skipped_once_for_the_whole_service() {
    let w = base().l2(l2ad("l2")).svc(Service {
        is_load_balancer: false,
        ..svc("ns/web", &["192.0.2.1", "2001:db8::1"])
    });
    let p = w.plan("n1");
    assert_eq!(p.l2, vec![]);
    assert_eq!(
        p.skipped,
        vec![skip("ns/web", None, None, SkipReason::NotLoadBalancer)]
    );
}

#[test]
fn only_services_of_our_load_balancer_class() {
    let other = Service {
        load_balancer_class: Some("other".into()),
        ..svc("ns/other", &["192.0.2.1"])
    };
    let plain = svc("ns/plain", &["192.0.2.2"]);
    let w = base().l2(l2ad("l2")).svc(other.clone()).svc(plain.clone());
    let p = w.plan("n1");
    assert_eq!(
        p.l2,
        vec![ann("192.0.2.2", "ns/plain", "a", &["l2"], Interfaces::Any)]
    );
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/other",
            None,
            None,
            SkipReason::OtherLoadBalancerClass {
                class: Some("other".into()),
                ours: None
            }
        )]
    );

    // With a class of our own, only that class is ours, and unclassed services are not.
    let p = w.class("other").plan("n1");
    assert_eq!(
        p.l2,
        vec![ann("192.0.2.1", "ns/other", "a", &["l2"], Interfaces::Any)]
    );
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/plain",
            None,
            None,
            SkipReason::OtherLoadBalancerClass {
                class: None,
                ours: Some("other".into())
            }
        )]
    );
}

#[test]
fn a_service_without_address_says_so() {
    let p = base().l2(l2ad("l2")).svc(svc("ns/web", &[])).plan("n1");
    assert_eq!(
        p.skipped,
        vec![skip("ns/web", None, None, SkipReason::NoAddress)]
    );
    assert!(p.is_empty());
}

// ---- the node ----

#[test]
fn excluded_node_announces_nothing() {
    let w = base()
        .l2(l2ad("l2"))
        .bgp(bgpad("bgp"))
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["192.0.2.1"]))
        .node(Node {
            excluded_from_load_balancers: true,
            ..node("n1", &[])
        });
    let p = w.plan("n1");
    assert_eq!(p.l2, vec![]);
    assert_eq!(sessions(&p), vec![("r1".into(), vec![])]);
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("192.0.2.1"),
            None,
            SkipReason::NodeExcluded
        )]
    );
}

#[test]
fn a_cordoned_or_deleted_node_is_departing_and_still_announces() {
    let base = || {
        base()
            .bgp(bgpad("bgp"))
            .peer(peer("r1", "192.0.2.254", 64501))
            .svc(svc("ns/web", &["192.0.2.1"]))
    };
    assert_eq!(base().node(node("n1", &[])).plan("n1").departing, None);
    let cordoned = base()
        .node(Node {
            unschedulable: true,
            ..node("n1", &[])
        })
        .plan("n1");
    assert_eq!(cordoned.departing, Some(Departure::Cordoned));
    // Cordoned is not excluded: MetalLB announces from it until it is gone.
    assert_eq!(cordoned.bgp[0].routes.len(), 1);
    let deleting = base()
        .node(Node {
            unschedulable: true,
            deleting: true,
            ..node("n1", &[])
        })
        .plan("n1");
    assert_eq!(deleting.departing, Some(Departure::Deleting));
}

#[test]
fn a_peer_carries_the_bfd_profile_it_names() {
    let mut p = peer("r1", "192.0.2.254", 64501);
    p.bfd_profile = Some("fast".into());
    let mut w = base().peer(p);
    let fast = crate::world::BfdProfile {
        name: "fast".into(),
        receive_interval_ms: 100,
        transmit_interval_ms: 120,
        detect_multiplier: 4,
        echo_interval_ms: 50,
        echo_mode: false,
        passive_mode: true,
        minimum_ttl: 254,
    };
    w.0.bfd_profiles.insert("fast".into(), fast.clone());
    assert_eq!(w.plan("n1").bgp[0].bfd, Some(fast));
    w.0.bfd_profiles.clear();
    assert_eq!(w.plan("n1").bgp[0].bfd, None);
}

#[test]
fn node_with_network_unavailable_announces_nothing() {
    let w = base()
        .l2(l2ad("l2"))
        .bgp(bgpad("bgp"))
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["192.0.2.1"]))
        .node(Node {
            network_unavailable: true,
            ..node("n1", &[])
        });
    let p = w.plan("n1");
    assert!(p.is_empty());
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("192.0.2.1"),
            None,
            SkipReason::NodeNetworkUnavailable
        )]
    );
}

#[test]
fn an_unknown_node_has_only_the_hostname_label_and_no_conditions() {
    let w = base()
        .l2(L2Advertisement {
            node_selectors: vec![sel(&[("zone", "a")])],
            ..l2ad("zoned")
        })
        .l2(L2Advertisement {
            node_selectors: vec![sel(&[("kubernetes.io/hostname", "ghost")])],
            ..l2ad("by-hostname")
        })
        .l2(l2ad("everywhere"))
        .svc(Service {
            endpoints: Endpoints {
                assumed_everywhere: true,
                ..Endpoints::default()
            },
            ..svc("ns/web", &["192.0.2.1"])
        });
    assert_eq!(
        w.plan("ghost").l2,
        vec![ann(
            "192.0.2.1",
            "ns/web",
            "a",
            &["by-hostname", "everywhere"],
            Interfaces::Any
        )]
    );
    assert_eq!(
        w.plan("n1").l2,
        vec![ann(
            "192.0.2.1",
            "ns/web",
            "a",
            &["everywhere", "zoned"],
            Interfaces::Any
        )]
    );
}

// ---- endpoints ----

#[test]
fn policy_local_needs_a_ready_or_serving_endpoint_on_this_node() {
    let local = |ready: &[&str], serving: &[&str], assumed| Service {
        external_traffic_policy: TrafficPolicy::Local,
        endpoints: Endpoints {
            ready: names(ready),
            serving: names(serving),
            assumed_everywhere: assumed,
        },
        ..svc("ns/web", &["192.0.2.1"])
    };
    let announced = |s: Service| !base().l2(l2ad("l2")).svc(s).plan("n1").l2.is_empty();
    assert!(announced(local(&["n1"], &["n1"], false)));
    assert!(
        announced(local(&[], &["n1"], false)),
        "terminating but serving counts"
    );
    assert!(announced(local(&[], &[], true)));
    let p = base()
        .l2(l2ad("l2"))
        .svc(local(&["n2"], &["n2"], false))
        .plan("n1");
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("192.0.2.1"),
            None,
            SkipReason::NoLocalEndpoint
        )]
    );
}

#[test]
fn policy_cluster_needs_a_serving_endpoint_anywhere() {
    let cluster = |ready: &[&str], serving: &[&str], assumed| Service {
        endpoints: Endpoints {
            ready: names(ready),
            serving: names(serving),
            assumed_everywhere: assumed,
        },
        ..svc("ns/web", &["192.0.2.1"])
    };
    let announced = |s: Service| !base().l2(l2ad("l2")).svc(s).plan("n1").l2.is_empty();
    assert!(announced(cluster(&[], &["n2"], false)));
    assert!(announced(cluster(&["n2"], &[], false)));
    assert!(announced(cluster(&[], &[], true)));
    let p = base()
        .l2(l2ad("l2"))
        .svc(cluster(&[], &[], false))
        .plan("n1");
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("192.0.2.1"),
            None,
            SkipReason::NoServingEndpoint
        )]
    );
}

// ---- pools ----

#[test]
fn an_address_outside_every_pool_is_not_announced_and_the_others_are() {
    let p = base()
        .l2(l2ad("l2"))
        .svc(svc("ns/web", &["198.51.100.1", "192.0.2.1"]))
        .plan("n1");
    assert_eq!(
        p.l2,
        vec![ann("192.0.2.1", "ns/web", "a", &["l2"], Interfaces::Any)]
    );
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("198.51.100.1"),
            None,
            SkipReason::NotInAnyPool
        )]
    );
}

#[test]
fn the_pool_holding_the_address_wins_over_the_requested_one() {
    let p = base()
        .l2(L2Advertisement {
            pools: PoolSelection {
                names: names(&["a"]),
                selectors: vec![],
            },
            ..l2ad("only-a")
        })
        .svc(Service {
            requested_pool: Some("b".into()),
            ..svc("ns/web", &["192.0.2.1"])
        })
        .plan("n1");
    assert_eq!(
        p.l2,
        vec![ann(
            "192.0.2.1",
            "ns/web",
            "a",
            &["only-a"],
            Interfaces::Any
        )]
    );
}

// ---- Layer 2 ----

#[test]
fn l2_advertisements_select_pools_by_name_by_label_or_all() {
    let by_name = L2Advertisement {
        pools: PoolSelection {
            names: names(&["a"]),
            selectors: vec![],
        },
        ..l2ad("by-name")
    };
    let by_label = L2Advertisement {
        pools: PoolSelection {
            names: BTreeSet::new(),
            selectors: vec![sel(&[("tier", "gold")])],
        },
        ..l2ad("by-label")
    };
    let w = base()
        .pool(Pool {
            labels: labels(&[("tier", "gold")]),
            ..pool("gold", "198.51.100.0/24")
        })
        .l2(by_name)
        .l2(by_label)
        .l2(l2ad("all"))
        .svc(svc("ns/web", &["192.0.2.1", "198.51.100.1", "2001:db8::1"]));
    assert_eq!(
        w.plan("n1").l2,
        vec![
            ann(
                "192.0.2.1",
                "ns/web",
                "a",
                &["all", "by-name"],
                Interfaces::Any
            ),
            ann(
                "198.51.100.1",
                "ns/web",
                "gold",
                &["all", "by-label"],
                Interfaces::Any
            ),
            ann("2001:db8::1", "ns/web", "b", &["all"], Interfaces::Any),
        ]
    );
}

#[test]
fn without_an_advertisement_for_the_pool_by_either_protocol() {
    let p = base()
        .l2(L2Advertisement {
            pools: PoolSelection {
                names: names(&["b"]),
                selectors: vec![],
            },
            ..l2ad("only-b")
        })
        .svc(svc("ns/web", &["192.0.2.1"]))
        .plan("n1");
    assert_eq!(p.l2, vec![]);
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/web",
            Some("192.0.2.1"),
            None,
            SkipReason::NoAdvertisement { pool: "a".into() }
        )]
    );
}

#[test]
fn l2_node_selectors() {
    let w = base()
        .node(node("n2", &[("zone", "b")]))
        .l2(L2Advertisement {
            node_selectors: vec![sel(&[("zone", "a")]), sel(&[("zone", "c")])],
            ..l2ad("zone-a-or-c")
        })
        .svc(svc("ns/web", &["192.0.2.1"]));
    assert_eq!(
        w.plan("n1").l2,
        vec![ann(
            "192.0.2.1",
            "ns/web",
            "a",
            &["zone-a-or-c"],
            Interfaces::Any
        )]
    );
    let p = w.plan("n2");
    assert_eq!(p.l2, vec![]);
    assert_eq!(
        p.skipped[0],
        skip(
            "ns/web",
            Some("192.0.2.1"),
            L2,
            SkipReason::NodeNotSelected {
                pool: "a".into(),
                advertisements: names(&["zone-a-or-c"])
            }
        )
    );
}

#[test]
fn l2_service_selectors() {
    let w = base()
        .l2(L2Advertisement {
            service_selectors: vec![sel(&[("app", "web")])],
            ..l2ad("web-only")
        })
        .l2(L2Advertisement {
            node_selectors: vec![sel(&[("zone", "z")])],
            ..l2ad("elsewhere")
        })
        .svc(Service {
            labels: labels(&[("app", "web")]),
            ..svc("ns/web", &["192.0.2.1"])
        })
        .svc(svc("ns/db", &["192.0.2.2"]));
    let p = w.plan("n1");
    assert_eq!(
        p.l2,
        vec![ann(
            "192.0.2.1",
            "ns/web",
            "a",
            &["web-only"],
            Interfaces::Any
        )]
    );
    // Only the advertisement that got as far as the node is named.
    assert_eq!(
        p.skipped[0],
        skip(
            "ns/db",
            Some("192.0.2.2"),
            L2,
            SkipReason::ServiceNotSelected {
                pool: "a".into(),
                advertisements: names(&["web-only"])
            }
        )
    );
}

#[test]
fn l2_interfaces_are_the_union_unless_one_advertisement_allows_any() {
    let on = |name: &str, ifs: &[&str]| L2Advertisement {
        interfaces: names(ifs),
        ..l2ad(name)
    };
    let w = base()
        .l2(on("x", &["eth0"]))
        .l2(on("y", &["eth1", "eth0"]))
        .svc(svc("ns/web", &["192.0.2.1"]));
    assert_eq!(
        w.plan("n1").l2[0].interfaces,
        Interfaces::Only(names(&["eth0", "eth1"]))
    );
    assert_eq!(w.l2(l2ad("z")).plan("n1").l2[0].interfaces, Interfaces::Any);
}

#[test]
fn l2_is_sorted_by_address_then_service_with_one_entry_per_sharing_service() {
    let p = base()
        .l2(l2ad("l2"))
        .svc(svc("ns/b", &["192.0.2.9", "192.0.2.1"]))
        .svc(svc("ns/a", &["192.0.2.9"]))
        .plan("n1");
    let got: Vec<_> = p.l2.iter().map(|a| (a.ip, a.service.to_string())).collect();
    assert_eq!(
        got,
        vec![
            (ip("192.0.2.1"), "ns/b".into()),
            (ip("192.0.2.9"), "ns/a".into()),
            (ip("192.0.2.9"), "ns/b".into()),
        ]
    );
}

#[test]
fn a_repeated_address_is_planned_once() {
    // Sources promise no duplicates; the plan must not depend on that promise.
    let p = base()
        .l2(l2ad("l2"))
        .svc(svc("ns/web", &["192.0.2.1", "192.0.2.1"]))
        .svc(svc("ns/db", &["198.51.100.1", "198.51.100.1"]))
        .plan("n1");
    assert_eq!(
        p.l2,
        vec![ann("192.0.2.1", "ns/web", "a", &["l2"], Interfaces::Any)]
    );
    assert_eq!(
        p.skipped,
        vec![skip(
            "ns/db",
            Some("198.51.100.1"),
            None,
            SkipReason::NotInAnyPool
        )]
    );
}

// ---- BGP ----

#[test]
fn bgp_host_routes_to_every_peer_of_the_node() {
    let p = base()
        .bgp(bgpad("bgp"))
        .peer(peer("r2", "192.0.2.253", 64502))
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["192.0.2.1"]))
        .plan("n1");
    let r = route("192.0.2.1/32", &["ns/web"], &["bgp"], None);
    assert_eq!(
        sessions(&p),
        vec![("r1".into(), vec![r.clone()]), ("r2".into(), vec![r])]
    );
    assert_eq!(p.bgp[0].families, [Family::Ipv4].into());
    // Without an L2Advertisement the pool is simply not a layer 2 pool: nothing to report.
    assert_eq!(p.skipped, vec![]);
}

#[test]
fn bgp_peer_node_selectors_decide_which_sessions_a_node_runs() {
    let w = base()
        .node(node("n2", &[("zone", "b")]))
        .bgp(bgpad("bgp"))
        .peer(Peer {
            node_selectors: vec![sel(&[("zone", "a")])],
            ..peer("tor-a", "192.0.2.254", 64501)
        })
        .svc(svc("ns/web", &["192.0.2.1"]));
    assert_eq!(
        sessions(&w.plan("n1")),
        vec![(
            "tor-a".into(),
            vec![route("192.0.2.1/32", &["ns/web"], &["bgp"], None)]
        )]
    );
    let p = w.plan("n2");
    assert_eq!(p.bgp, vec![]);
    assert_eq!(
        p.skipped.last(),
        Some(&skip(
            "ns/web",
            Some("192.0.2.1"),
            BGP,
            SkipReason::NoPeerForNode {
                advertisements: names(&["bgp"])
            }
        ))
    );
}

#[test]
fn bgp_advertisement_peers_restrict_the_sessions_that_carry_it() {
    let w = base()
        .bgp(BgpAdvertisement {
            peers: names(&["r2", "not-on-this-node"]),
            ..bgpad("to-r2")
        })
        .peer(peer("r1", "192.0.2.254", 64501))
        .peer(peer("r2", "192.0.2.253", 64502))
        .svc(svc("ns/web", &["192.0.2.1"]));
    assert_eq!(
        sessions(&w.plan("n1")),
        vec![
            ("r1".into(), vec![]),
            (
                "r2".into(),
                vec![route("192.0.2.1/32", &["ns/web"], &["to-r2"], None)]
            )
        ]
    );
    // Naming only peers the node does not have leaves the address without a session.
    let w = w.bgp(BgpAdvertisement {
        peers: names(&["not-on-this-node"]),
        ..bgpad("to-r2")
    });
    assert_eq!(
        w.plan("n1").skipped.last().map(|s| &s.reason),
        Some(&SkipReason::NoPeerForNode {
            advertisements: names(&["to-r2"])
        })
    );
}

#[test]
fn bgp_node_and_service_selectors() {
    let w = base()
        .bgp(BgpAdvertisement {
            node_selectors: vec![sel(&[("zone", "b")])],
            ..bgpad("zone-b")
        })
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["192.0.2.1"]));
    assert_eq!(
        w.plan("n1").skipped.last().map(|s| &s.reason),
        Some(&SkipReason::NodeNotSelected {
            pool: "a".into(),
            advertisements: names(&["zone-b"])
        })
    );
    let w = w.bgp(BgpAdvertisement {
        service_selectors: vec![sel(&[("app", "db")])],
        ..bgpad("zone-b")
    });
    assert_eq!(
        w.plan("n1").skipped.last().map(|s| &s.reason),
        Some(&SkipReason::ServiceNotSelected {
            pool: "a".into(),
            advertisements: names(&["zone-b"])
        })
    );
}

#[test]
fn bgp_says_when_no_selected_peer_carries_the_family() {
    let p = base()
        .bgp(bgpad("bgp"))
        .peer(peer("r4", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["2001:db8::1"]))
        .plan("n1");
    assert_eq!(sessions(&p), vec![("r4".into(), vec![])]);
    assert_eq!(
        p.skipped.last(),
        Some(&skip(
            "ns/web",
            Some("2001:db8::1"),
            BGP,
            SkipReason::NoPeerCarriesFamily {
                family: Family::Ipv6,
                peers: names(&["r4"])
            }
        ))
    );
}

#[test]
fn dual_stack_each_family_goes_only_to_the_peer_that_carries_it() {
    let w = base()
        .l2(l2ad("l2"))
        .bgp(bgpad("bgp"))
        .peer(peer("r4", "192.0.2.254", 64501))
        .peer(peer("r6", "2001:db8::fe", 64501))
        .svc(svc("ns/web", &["2001:db8::1", "192.0.2.1"]));
    let p = w.plan("n1");
    let v4 = route("192.0.2.1/32", &["ns/web"], &["bgp"], None);
    let v6 = route("2001:db8::1/128", &["ns/web"], &["bgp"], None);
    assert_eq!(
        sessions(&p),
        vec![
            ("r4".into(), vec![v4.clone()]),
            ("r6".into(), vec![v6.clone()])
        ]
    );
    assert_eq!(p.skipped, vec![]);
    assert_eq!(
        p.l2,
        vec![
            ann("192.0.2.1", "ns/web", "a", &["l2"], Interfaces::Any),
            ann("2001:db8::1", "ns/web", "b", &["l2"], Interfaces::Any),
        ]
    );

    let dual = |p: Peer| Peer {
        dual_stack_address_family: true,
        ..p
    };
    let p = w
        .peer(dual(peer("r4", "192.0.2.254", 64501)))
        .peer(dual(peer("r6", "2001:db8::fe", 64501)))
        .plan("n1");
    let both = vec![v4, v6];
    assert_eq!(
        sessions(&p),
        vec![("r4".into(), both.clone()), ("r6".into(), both)]
    );
    assert_eq!(p.bgp[0].families, [Family::Ipv4, Family::Ipv6].into());
}

#[test]
fn bgp_aggregation_merges_services_into_one_route() {
    let p = base()
        .bgp(BgpAdvertisement {
            aggregation_length: 24,
            aggregation_length_v6: 64,
            communities: [Community::new(64500, 1)].into(),
            ..bgpad("agg")
        })
        .bgp(BgpAdvertisement {
            communities: [Community::NO_EXPORT].into(),
            large_communities: [LargeCommunity {
                global_admin: 64500,
                local_data_1: 1,
                local_data_2: 2,
            }]
            .into(),
            service_selectors: vec![sel(&[("app", "db")])],
            aggregation_length: 24,
            ..bgpad("db")
        })
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/web", &["192.0.2.1"]))
        .svc(Service {
            labels: labels(&[("app", "db")]),
            ..svc("ns/db", &["192.0.2.77"])
        })
        .plan("n1");
    let want = Route {
        communities: [Community::new(64500, 1), Community::NO_EXPORT].into(),
        large_communities: [LargeCommunity {
            global_admin: 64500,
            local_data_1: 1,
            local_data_2: 2,
        }]
        .into(),
        ..route("192.0.2.0/24", &["ns/db", "ns/web"], &["agg", "db"], None)
    };
    assert_eq!(sessions(&p), vec![("r1".into(), vec![want])]);
    assert_eq!(
        p.summary(),
        PlanSummary {
            l2_addresses: 0,
            bgp_peers: 1,
            bgp_routes: 1,
            bgp_prefixes: 1,
            skipped: 0,
        }
    );
}

#[test]
fn bgp_aggregate_and_host_route_are_separate_routes() {
    let p = base()
        .bgp(bgpad("host"))
        .bgp(BgpAdvertisement {
            aggregation_length_v6: 64,
            ..bgpad("agg")
        })
        .peer(peer("r6", "2001:db8::fe", 64501))
        .svc(svc("ns/web", &["2001:db8::1:2"]))
        .plan("n1");
    assert_eq!(
        sessions(&p),
        vec![(
            "r6".into(),
            vec![
                route("2001:db8::/64", &["ns/web"], &["agg"], None),
                route("2001:db8::1:2/128", &["ns/web"], &["host"], None),
            ]
        )]
    );
}

#[test]
fn local_pref_only_to_ibgp_peers_highest_wins_default_100() {
    let w = base()
        .bgp(BgpAdvertisement {
            local_pref: Some(150),
            pools: PoolSelection {
                names: names(&["a"]),
                selectors: vec![],
            },
            ..bgpad("lp150")
        })
        .bgp(BgpAdvertisement {
            local_pref: Some(200),
            service_selectors: vec![sel(&[("app", "db")])],
            ..bgpad("lp200")
        })
        .bgp(BgpAdvertisement {
            pools: PoolSelection {
                names: names(&["b"]),
                selectors: vec![],
            },
            ..bgpad("v6-plain")
        })
        .peer(Peer {
            dual_stack_address_family: true,
            ..peer("ebgp", "192.0.2.253", 64501)
        })
        .peer(Peer {
            dual_stack_address_family: true,
            ..peer("ibgp", "192.0.2.254", 64500)
        })
        .svc(svc("ns/web", &["192.0.2.1", "2001:db8::1"]))
        .svc(Service {
            labels: labels(&[("app", "db")]),
            ..svc("ns/db", &["192.0.2.2"])
        });
    let p = w.plan("n1");
    let pref = |peer: &str| -> Vec<(String, Option<u32>)> {
        let s = p.bgp.iter().find(|s| s.peer.name == peer).unwrap();
        s.routes
            .iter()
            .map(|r| (r.prefix.to_string(), r.local_pref))
            .collect()
    };
    assert_eq!(
        pref("ebgp"),
        vec![
            ("192.0.2.1/32".into(), None),
            ("192.0.2.2/32".into(), None),
            ("2001:db8::1/128".into(), None),
        ]
    );
    assert_eq!(
        pref("ibgp"),
        vec![
            ("192.0.2.1/32".into(), Some(150)),
            ("192.0.2.2/32".into(), Some(200)),
            ("2001:db8::1/128".into(), Some(100)),
        ]
    );
}

#[test]
fn every_peer_of_the_node_gets_a_session_even_without_routes() {
    let p = base()
        .peer(peer("b", "192.0.2.253", 64501))
        .peer(peer("a", "2001:db8::fe", 64501))
        .plan("n1");
    assert_eq!(
        sessions(&p),
        vec![("a".into(), vec![]), ("b".into(), vec![])]
    );
    assert!(p.is_empty());
    assert_eq!(p.summary().bgp_peers, 2);
}

#[test]
fn helpers_summarise_and_explain() {
    let p = base()
        .l2(l2ad("l2"))
        .bgp(bgpad("bgp"))
        .peer(peer("r1", "192.0.2.254", 64501))
        .svc(svc("ns/a", &["192.0.2.1"]))
        .svc(svc("ns/b", &["192.0.2.1", "2001:db8::1"]))
        .plan("n1");
    assert!(!p.is_empty());
    assert_eq!(
        p.summary(),
        PlanSummary {
            l2_addresses: 2,
            bgp_peers: 1,
            bgp_routes: 1,
            bgp_prefixes: 1,
            skipped: 1,
        }
    );
    assert_eq!(
        p.summary().to_string(),
        "2 L2 addresses, 1 BGP peers, 1 routes (1 prefixes), 1 skipped"
    );
    let why: Vec<String> = p
        .why_not(&svc_ref("ns/b"), ip("2001:db8::1"))
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        why,
        vec!["ns/b 2001:db8::1 (BGP): no session to the selected peers (r1) carries IPv6"]
    );
    assert_eq!(p.routes().count(), 1);
}

mod properties;

#[test]
fn preference_sums_the_weights_of_the_advertisements_that_select_the_node() {
    let prefer =
        |name: &str, nodes: &[(&str, &str)], prefs: &[(u32, &[(&str, &str)])]| L2Advertisement {
            node_selectors: vec![sel(nodes)],
            preferred_nodes: prefs.iter().map(|(w, kv)| (*w, sel(kv))).collect(),
            ..l2ad(name)
        };
    let w = base()
        .l2(prefer(
            "ad1",
            &[("role", "lb")],
            &[(70, &[("zone", "primary")])],
        ))
        .l2(prefer(
            "ad2",
            &[("role", "lb")],
            &[(30, &[("gpu", "true")])],
        ))
        // Selects only gpu nodes: its preference never lifts a node it does not select.
        .l2(prefer(
            "ad3",
            &[("role", "gpu")],
            &[(100, &[("zone", "primary")])],
        ))
        .node(node(
            "x",
            &[("role", "lb"), ("zone", "primary"), ("gpu", "true")],
        ))
        .node(node("y", &[("role", "lb"), ("zone", "primary")]))
        .node(node("z", &[("role", "lb")]))
        .svc(svc("ns/web", &["192.0.2.1"]));
    let score = |n: &str| w.plan(n).l2[0].preference;
    assert_eq!((score("x"), score("y"), score("z")), (100, 70, 0));
}
