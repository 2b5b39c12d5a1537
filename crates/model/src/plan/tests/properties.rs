//! Random small worlds: `plan` is deterministic, ignores input order, and accounts for every
//! address exactly once per protocol.

use super::*;
use crate::selector::Requirement;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

const KEYS: &[&str] = &["zone", "tier", "app"];
const VALUES: &[&str] = &["a", "b"];
const NODES: &[&str] = &["n0", "n1", "n2"];
const PEERS: &[&str] = &["r0", "r1", "r2"];
/// Addresses services draw from: inside each pool template, and two outside every pool.
const ADDRESSES: &[&str] = &[
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.200",
    "198.51.100.3",
    "198.51.100.70",
    "2001:db8::1",
    "2001:db8::2:1",
    "2001:db8:1::5",
    "203.0.113.1",
    "2001:db8:ffff::1",
];

/// Everything a World holds, as unordered lists: names are unique by construction, so any
/// order collects into the same maps.
#[derive(Clone, Debug)]
struct Parts {
    pools: Vec<Pool>,
    l2: Vec<L2Advertisement>,
    bgp: Vec<BgpAdvertisement>,
    peers: Vec<Peer>,
    services: Vec<Service>,
    nodes: Vec<Node>,
    class: Option<String>,
}

impl Parts {
    fn world(&self) -> World {
        World {
            pools: self
                .pools
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
            l2_advertisements: self
                .l2
                .iter()
                .map(|a| (a.name.clone(), a.clone()))
                .collect(),
            bgp_advertisements: self
                .bgp
                .iter()
                .map(|a| (a.name.clone(), a.clone()))
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
            services: self
                .services
                .iter()
                .map(|s| (s.key.clone(), s.clone()))
                .collect(),
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            load_balancer_class: self.class.clone(),
            ..World::default()
        }
    }
}

fn label_map() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(
        select(KEYS).prop_map(String::from),
        select(VALUES).prop_map(String::from),
        0..3,
    )
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let key = select(KEYS).prop_map(String::from);
    let values = subsequence(VALUES, 1..=2)
        .prop_map(|v| v.into_iter().map(String::from).collect::<BTreeSet<_>>());
    prop_oneof![
        (key.clone(), values.clone()).prop_map(|(key, values)| Requirement::In { key, values }),
        (key.clone(), values).prop_map(|(key, values)| Requirement::NotIn { key, values }),
        key.clone().prop_map(|key| Requirement::Exists { key }),
        key.prop_map(|key| Requirement::DoesNotExist { key }),
    ]
}

fn selector() -> impl Strategy<Value = Selector> {
    (
        prop::collection::btree_map(
            select(KEYS).prop_map(String::from),
            select(VALUES).prop_map(String::from),
            0..2,
        ),
        prop::collection::vec(requirement(), 0..3),
    )
        .prop_map(|(match_labels, requirements)| Selector {
            match_labels,
            requirements,
        })
}

/// Mostly empty (all), so that much of each world is selected.
fn selectors() -> impl Strategy<Value = Vec<Selector>> {
    prop_oneof![
        2 => Just(vec![]),
        1 => prop::collection::vec(selector(), 1..3),
    ]
}

fn name_set(from: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    subsequence(from, 0..=from.len()).prop_map(|v| v.into_iter().map(String::from).collect())
}

fn pool_selection() -> impl Strategy<Value = PoolSelection> {
    prop_oneof![
        2 => Just(PoolSelection::default()),
        1 => (name_set(&["p0", "p1", "p2", "p3", "gone"]), selectors())
            .prop_map(|(names, selectors)| PoolSelection { names, selectors }),
    ]
}

fn pools() -> impl Strategy<Value = Vec<Pool>> {
    // p1 has two ranges so their order can be permuted.
    let templates: [(&str, &[&str]); 4] = [
        ("p0", &["192.0.2.0/24"]),
        ("p1", &["198.51.100.0/28", "198.51.100.64/28"]),
        ("p2", &["2001:db8::/64"]),
        ("p3", &["2001:db8:1::/120"]),
    ];
    (
        subsequence(templates.to_vec(), 2..=4),
        prop::collection::vec(label_map(), 4),
    )
        .prop_map(|(chosen, labels)| {
            chosen
                .into_iter()
                .zip(labels)
                .map(|((name, cidrs), labels)| {
                    let cidrs: Vec<IpNet> = cidrs.iter().map(|c| net(c)).collect();
                    Pool {
                        labels,
                        ranges: cidrs
                            .iter()
                            .map(|n| AddressRange {
                                first: n.network(),
                                last: n.broadcast(),
                            })
                            .collect(),
                        cidrs,
                        ..pool(name, "0.0.0.0/32")
                    }
                })
                .collect()
        })
}

fn l2_ads() -> impl Strategy<Value = Vec<L2Advertisement>> {
    prop::collection::vec(
        (
            pool_selection(),
            selectors(),
            name_set(&["eth0", "eth1"]),
            selectors(),
        ),
        0..4,
    )
    .prop_map(|ads| {
        ads.into_iter()
            .enumerate()
            .map(
                |(i, (pools, node_selectors, interfaces, service_selectors))| L2Advertisement {
                    name: format!("l2-{i}"),
                    pools,
                    node_selectors,
                    interfaces,
                    service_selectors,
                    preferred_nodes: vec![],
                },
            )
            .collect()
    })
}

fn bgp_ads() -> impl Strategy<Value = Vec<BgpAdvertisement>> {
    let communities = subsequence(
        vec![
            Community::new(64500, 1),
            Community::new(64500, 2),
            Community::NO_EXPORT,
        ],
        0..=2,
    );
    let large = subsequence(
        vec![
            LargeCommunity {
                global_admin: 64500,
                local_data_1: 1,
                local_data_2: 1,
            },
            LargeCommunity {
                global_admin: 64500,
                local_data_1: 2,
                local_data_2: 2,
            },
        ],
        0..=2,
    );
    prop::collection::vec(
        (
            select(vec![32u8, 28, 24]),
            select(vec![128u8, 120, 64]),
            prop::option::of(select(vec![100u32, 200, 300])),
            communities,
            large,
            pool_selection(),
            selectors(),
            prop_oneof![2 => Just(BTreeSet::new()), 1 => name_set(&["r0", "r1", "r2", "gone"])],
            selectors(),
        ),
        0..4,
    )
    .prop_map(|ads| {
        ads.into_iter()
            .enumerate()
            .map(
                |(i, (len4, len6, local_pref, c, l, pools, nodes, peers, svcs))| BgpAdvertisement {
                    name: format!("bgp-{i}"),
                    aggregation_length: len4,
                    aggregation_length_v6: len6,
                    local_pref,
                    communities: c.into_iter().collect(),
                    large_communities: l.into_iter().collect(),
                    pools,
                    node_selectors: nodes,
                    peers,
                    service_selectors: svcs,
                },
            )
            .collect()
    })
}

fn peers() -> impl Strategy<Value = Vec<Peer>> {
    let endpoint = prop_oneof![
        Just(PeerEndpoint::Address(ip("192.0.2.254"))),
        Just(PeerEndpoint::Address(ip("2001:db8::fe"))),
        Just(PeerEndpoint::Interface("eth0".into())),
    ];
    let asn = prop_oneof![
        Just(PeerAsn::Fixed(64500)),
        Just(PeerAsn::Fixed(64501)),
        Just(PeerAsn::Internal),
        Just(PeerAsn::External),
    ];
    (
        subsequence(PEERS, 0..=PEERS.len()),
        prop::collection::vec((endpoint, asn, any::<bool>(), selectors()), PEERS.len()),
    )
        .prop_map(|(names, attrs)| {
            names
                .into_iter()
                .zip(attrs)
                .map(|(name, (endpoint, peer_asn, dual, node_selectors))| Peer {
                    endpoint,
                    peer_asn,
                    dual_stack_address_family: dual,
                    node_selectors,
                    ..peer(name, "192.0.2.254", 0)
                })
                .collect()
        })
}

fn services() -> impl Strategy<Value = Vec<Service>> {
    let nodes = || name_set(&["n0", "n1", "n2", "n9"]);
    prop::collection::vec(
        (
            label_map(),
            prop::bool::weighted(0.9),
            prop_oneof![9 => Just(None), 1 => Just(Some("other".to_string()))],
            prop_oneof![Just(TrafficPolicy::Cluster), Just(TrafficPolicy::Local)],
            prop_oneof![1 => Just(vec![]), 9 => subsequence(ADDRESSES, 1..=3)],
            prop::option::of(select(vec!["p0", "p2", "gone"])),
            (nodes(), nodes(), prop::bool::weighted(0.3)),
        ),
        1..5,
    )
    .prop_map(|svcs| {
        svcs.into_iter()
            .enumerate()
            .map(
                |(i, (labels, lb, class, policy, ips, requested, (ready, serving, assumed)))| {
                    Service {
                        labels,
                        is_load_balancer: lb,
                        load_balancer_class: class,
                        external_traffic_policy: policy,
                        requested_pool: requested.map(String::from),
                        endpoints: Endpoints {
                            ready,
                            serving,
                            assumed_everywhere: assumed,
                        },
                        ..svc(&format!("ns/s{i}"), &ips)
                    }
                },
            )
            .collect()
    })
}

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    (
        subsequence(NODES, 0..=NODES.len()),
        prop::collection::vec(
            (
                label_map(),
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
            ),
            NODES.len(),
        ),
    )
        .prop_map(|(names, attrs)| {
            names
                .into_iter()
                .zip(attrs)
                .map(|(name, (labels, excluded, unavailable))| Node {
                    labels,
                    excluded_from_load_balancers: excluded,
                    network_unavailable: unavailable,
                    ..node(name, &[])
                })
                .collect()
        })
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        pools(),
        l2_ads(),
        bgp_ads(),
        peers(),
        services(),
        nodes(),
        prop_oneof![7 => Just(None), 1 => Just(Some("other".to_string()))],
    )
        .prop_map(|(pools, l2, bgp, peers, services, nodes, class)| Parts {
            pools,
            l2,
            bgp,
            peers,
            services,
            nodes,
            class,
        })
}

/// A small deterministic shuffler (xorshift), so a failing case reproduces from its seed.
struct Shuffler(u64);

impl Shuffler {
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
    }

    fn selectors(&mut self, v: &mut [Selector]) {
        self.shuffle(v);
        for s in v {
            self.shuffle(&mut s.requirements);
        }
    }
}

/// The same parts in another order: every list, and every list inside whose order means
/// nothing (ranges, selectors, requirements, a service's addresses).
fn permuted(parts: &Parts, seed: u64) -> Parts {
    let mut r = Shuffler(seed | 1);
    let mut p = parts.clone();
    r.shuffle(&mut p.pools);
    for pool in &mut p.pools {
        r.shuffle(&mut pool.ranges);
        r.shuffle(&mut pool.cidrs);
    }
    r.shuffle(&mut p.l2);
    for a in &mut p.l2 {
        r.selectors(&mut a.pools.selectors);
        r.selectors(&mut a.node_selectors);
        r.selectors(&mut a.service_selectors);
    }
    r.shuffle(&mut p.bgp);
    for a in &mut p.bgp {
        r.selectors(&mut a.pools.selectors);
        r.selectors(&mut a.node_selectors);
        r.selectors(&mut a.service_selectors);
    }
    r.shuffle(&mut p.peers);
    for peer in &mut p.peers {
        r.selectors(&mut peer.node_selectors);
    }
    r.shuffle(&mut p.services);
    for s in &mut p.services {
        r.shuffle(&mut s.ips);
    }
    r.shuffle(&mut p.nodes);
    p
}

fn is_sorted_strictly<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Every address of every service of ours is accounted for exactly once per protocol:
/// announced, or skipped with a reason (for both protocols or for this one).
fn check_accounting(world: &World, p: &NodePlan) -> Result<(), TestCaseError> {
    for svc in world.services.values() {
        let whole: Vec<_> = p
            .skipped
            .iter()
            .filter(|s| s.service == svc.key && s.ip.is_none())
            .collect();
        let ours = svc.is_load_balancer && svc.load_balancer_class == world.load_balancer_class;
        if !ours || svc.ips.is_empty() {
            prop_assert_eq!(whole.len(), 1);
            prop_assert!(p.l2.iter().all(|a| a.service != svc.key));
            prop_assert!(p.routes().all(|(_, r)| !r.services.contains(&svc.key)));
            continue;
        }
        prop_assert!(whole.is_empty());
        for &ip in &svc.ips {
            let skips: Vec<_> = p
                .skipped
                .iter()
                .filter(|s| s.service == svc.key && s.ip == Some(ip))
                .collect();
            let l2 = p.l2.iter().any(|a| a.service == svc.key && a.ip == ip);
            let bgp = p
                .routes()
                .any(|(_, r)| r.services.contains(&svc.key) && r.prefix.contains(&ip));
            let skipped = |proto| skips.iter().filter(|s| s.protocol == proto).count();
            if skipped(None) == 1 {
                prop_assert_eq!(skips.len(), 1);
                prop_assert!(!l2 && !bgp);
            } else {
                // A protocol whose advertisements do not select the pool is not in use for it.
                let pool = world.pools.values().find(|p| p.contains(&ip)).unwrap();
                let uses_l2 = world
                    .l2_advertisements
                    .values()
                    .any(|a| selects_pool(&a.pools, pool));
                let uses_bgp = world
                    .bgp_advertisements
                    .values()
                    .any(|a| selects_pool(&a.pools, pool));
                prop_assert!(uses_l2 || uses_bgp);
                prop_assert_eq!(
                    usize::from(l2) + skipped(Some(Protocol::Layer2)),
                    usize::from(uses_l2),
                    "L2 for {} {}",
                    svc.key,
                    ip
                );
                prop_assert_eq!(
                    usize::from(bgp) + skipped(Some(Protocol::Bgp)),
                    usize::from(uses_bgp),
                    "BGP for {} {}",
                    svc.key,
                    ip
                );
            }
        }
    }
    Ok(())
}

/// Sorted, without duplicates, and what goes on the wire follows the session.
fn check_shape(p: &NodePlan) -> Result<(), TestCaseError> {
    prop_assert!(is_sorted_strictly(&p.l2));
    prop_assert!(is_sorted_strictly(&p.skipped));
    let peers: Vec<_> = p.bgp.iter().map(|s| &s.peer.name).collect();
    prop_assert!(is_sorted_strictly(&peers));
    for s in &p.bgp {
        let prefixes: Vec<_> = s.routes.iter().map(|r| r.prefix).collect();
        prop_assert!(is_sorted_strictly(&prefixes));
        prop_assert_eq!(&s.families, &s.peer.families());
        for r in &s.routes {
            prop_assert!(s.families.contains(&Family::of(&r.prefix.addr())));
            prop_assert_eq!(r.local_pref.is_some(), s.peer.is_ibgp());
            prop_assert!(!r.services.is_empty() && !r.advertisements.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn plan_is_deterministic_and_independent_of_input_order(
        parts in parts(),
        seed in any::<u64>(),
        node in select(vec!["n0", "n1", "n2", "n3"]),
    ) {
        let world = parts.world();
        let p = plan(&world, node);
        prop_assert_eq!(&p, &plan(&world.clone(), node));
        prop_assert_eq!(&p, &plan(&parts.world(), node));
        let shuffled = permuted(&parts, seed);
        prop_assert_eq!(&p, &plan(&shuffled.world(), node));
        prop_assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(&plan(&shuffled.world(), node)).unwrap()
        );
        check_shape(&p)?;
        check_accounting(&world, &p)?;
    }
}
