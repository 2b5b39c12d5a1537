//! Properties over random pools, Services and histories: no address is ever held by two
//! Services that may not share it, the counters agree with the allocations, converging is
//! idempotent and deterministic, and a fresh allocator that registers the statuses first
//! (a restarted or newly active controller) keeps every address where it is.

mod support;

use ipam::{Allocator, FamilyPolicy, Request, converge, register};
use model::world::Family;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use support::*;

#[derive(Clone, Debug)]
enum Op {
    Converge(usize),
    Delete(usize),
    Pools(usize),
}

const POOL_SETS: [&[(&str, &[&str])]; 3] = [
    &[
        ("a", &["192.0.2.0/29", "2001:db8::/125"]),
        ("b", &["198.51.100.1-198.51.100.3"]),
    ],
    &[
        ("a", &["192.0.2.0/30", "2001:db8::/126"]),
        ("c", &["2001:db8:1::/126"]),
    ],
    &[("b", &["198.51.100.0/29", "2001:db8::/125"])],
];

fn yaml(set: usize) -> String {
    POOL_SETS[set]
        .iter()
        .map(|(n, a)| pool(n, a))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn request() -> impl Strategy<Value = Request> {
    (
        0..4usize,
        prop_oneof![Just(""), Just("k"), Just("j")],
        proptest::collection::btree_set(prop_oneof![Just(80), Just(443), Just(53)], 1..3),
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some("192.0.2.1")),
            Just(Some("2001:db8::2")),
            Just(Some("198.51.100.2"))
        ],
        prop_oneof![Just(None), Just(Some("a")), Just(Some("b"))],
    )
        .prop_map(|(shape, key, ports, local, ip, pool)| {
            let mut r = match shape {
                0 => v4("x"),
                1 => v6("x"),
                2 => dual("x", FamilyPolicy::PreferDualStack, false),
                _ => dual("x", FamilyPolicy::RequireDualStack, true),
            };
            r.sharing_key = key.into();
            r.ports = ports.into_iter().map(tcp).collect();
            r.backend_key = if local { "app=x".into() } else { String::new() };
            r.load_balancer_ip = ip.map(str::to_owned);
            r.address_pool = pool.map(str::to_owned);
            r
        })
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n).prop_map(Op::Converge),
        2 => (0..n).prop_map(Op::Delete),
        1 => (0..POOL_SETS.len()).prop_map(Op::Pools),
    ]
}

struct World {
    alloc: Allocator,
    services: Vec<Request>,
    live: Vec<bool>,
    failed: BTreeSet<usize>,
}

impl World {
    fn new(mut services: Vec<Request>) -> Self {
        for (i, s) in services.iter_mut().enumerate() {
            s.key.name = format!("s{i}");
        }
        let live = vec![false; services.len()];
        World {
            alloc: allocator(&yaml(0)),
            services,
            live,
            failed: BTreeSet::new(),
        }
    }

    /// Converges `i` as the controller does: when it frees addresses, the Services that are
    /// waiting for some are converged again, until nothing more changes.
    fn converge(&mut self, i: usize, log: &mut Vec<String>) {
        let mut todo = vec![i];
        let mut rounds = 0;
        while let Some(i) = todo.pop() {
            rounds += 1;
            assert!(rounds < 1000, "converging does not settle");
            let out = apply(&mut self.alloc, &mut self.services[i]);
            log.push(format!("{i}:{out:?}"));
            if out.failed {
                self.failed.insert(i);
            } else {
                self.failed.remove(&i);
            }
            if out.released {
                todo.extend(self.failed.iter().copied().filter(|f| *f != i));
            }
        }
    }

    fn step(&mut self, op: &Op) -> Vec<String> {
        let mut log = Vec::new();
        match op {
            Op::Converge(i) => {
                self.live[*i] = true;
                self.converge(*i, &mut log);
            }
            Op::Delete(i) => {
                self.live[*i] = false;
                self.failed.remove(i);
                let released = self.alloc.unassign(&self.services[*i].key).is_some();
                self.services[*i].ingress.clear();
                self.services[*i].allocated_from_pool = None;
                if released {
                    for f in self.failed.clone() {
                        self.converge(f, &mut log);
                    }
                }
            }
            Op::Pools(set) => {
                let released = self
                    .alloc
                    .set_pools(&pools(&yaml(*set)), &Default::default());
                log.push(format!("{released:?}"));
                // As the controller does: every Service converged again, holders first.
                self.reprocess(&mut log);
            }
        }
        log
    }

    fn reprocess(&mut self, log: &mut Vec<String>) {
        for i in 0..self.services.len() {
            if self.live[i] {
                register(&mut self.alloc, &self.services[i]);
            }
        }
        for i in 0..self.services.len() {
            if self.live[i] {
                self.converge(i, log);
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let mut holders: HashMap<IpAddr, Vec<&Request>> = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let held: Vec<IpAddr> = s.ingress.iter().map(|x| x.parse().unwrap()).collect();
            if !self.live[i] {
                continue;
            }
            let alloc = self.alloc.allocation(&s.key);
            prop_assert_eq!(
                alloc.map(|a| a.ips.clone()).unwrap_or_default(),
                held.clone()
            );
            prop_assert_eq!(alloc.map(|a| a.pool.clone()), s.allocated_from_pool.clone());
            if let Some(a) = alloc {
                let pool = self.alloc.pool(&a.pool).expect("the pool exists");
                prop_assert!(held.iter().all(|ip| pool.contains(ip)));
                let families: BTreeSet<Family> = held.iter().map(Family::of).collect();
                prop_assert_eq!(families.len(), held.len(), "one address per family");
            }
            for ip in held {
                holders.entry(ip).or_default().push(s);
            }
        }
        for (ip, users) in &holders {
            for (x, a) in users.iter().enumerate() {
                for b in &users[x + 1..] {
                    prop_assert!(
                        !a.sharing_key.is_empty()
                            && a.sharing_key == b.sharing_key
                            && a.backend_key == b.backend_key
                            && a.ports.iter().all(|p| !b.ports.contains(p)),
                        "{} held by {} and {} which may not share it",
                        ip,
                        a.key,
                        b.key
                    );
                }
            }
        }
        let mut per_pool: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for ip in holders.keys() {
            let s = holders[ip][0];
            let pool = self.alloc.pool_of(&s.key).unwrap().to_owned();
            let e = per_pool.entry(pool).or_default();
            if ip.is_ipv4() { e.0 += 1 } else { e.1 += 1 }
        }
        for name in self.alloc.pool_names() {
            let c = self.alloc.counters(name).unwrap();
            let want = per_pool.get(name).copied().unwrap_or_default();
            prop_assert_eq!(
                (c.assigned_ipv4, c.assigned_ipv6),
                want,
                "counters of {}",
                name
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_address_is_held_by_services_that_may_not_share_it(
        services in proptest::collection::vec(request(), 1..10),
        ops in proptest::collection::vec(op(10), 1..60),
    ) {
        let n = services.len();
        let mut w = World::new(services);
        for op in ops.iter().filter(|o| match o { Op::Converge(i) | Op::Delete(i) => *i < n, Op::Pools(_) => true }) {
            w.step(op);
            w.check()?;
        }
        // Converging again changes nothing.
        for i in 0..n {
            if w.live[i] {
                let out = converge(&mut w.alloc, &w.services[i]);
                prop_assert!(!out.changed, "{} changed on a second look: {:?}", w.services[i].key, out);
            }
        }
    }

    #[test]
    fn the_same_history_gives_the_same_addresses(
        services in proptest::collection::vec(request(), 1..10),
        ops in proptest::collection::vec(op(10), 1..60),
    ) {
        let n = services.len();
        let ops: Vec<Op> = ops.into_iter().filter(|o| match o { Op::Converge(i) | Op::Delete(i) => *i < n, Op::Pools(_) => true }).collect();
        let mut a = World::new(services.clone());
        let mut b = World::new(services);
        for op in &ops {
            prop_assert_eq!(a.step(op), b.step(op));
        }
    }

    #[test]
    fn a_fresh_allocator_registering_statuses_first_keeps_every_address(
        services in proptest::collection::vec(request(), 1..10),
        ops in proptest::collection::vec(op(10), 1..60),
        newcomers in proptest::collection::vec(request(), 1..5),
        order in any::<u64>(),
    ) {
        let n = services.len();
        let mut w = World::new(services);
        for op in ops.iter().filter(|o| matches!(o, Op::Converge(i) if *i < n)) {
            w.step(op);
        }
        w.failed.clear();
        let before: Vec<Vec<String>> = w.services.iter().map(|s| s.ingress.clone()).collect();
        // The new controller: a fresh allocator, the same pools, new Services arriving too.
        w.alloc = allocator(&yaml(0));
        let first = w.services.len();
        for (j, mut s) in newcomers.into_iter().enumerate() {
            s.key.name = format!("new{j}");
            w.services.push(s);
            w.live.push(true);
        }
        let mut idx: Vec<usize> = (0..w.services.len()).collect();
        idx.sort_by_key(|i| (*i as u64).wrapping_mul(order | 1) % 97);
        for &i in &idx {
            if w.live[i] {
                register(&mut w.alloc, &w.services[i]);
            }
        }
        for &i in &idx {
            if w.live[i] {
                apply(&mut w.alloc, &mut w.services[i]);
            }
        }
        w.check()?;
        for (i, was) in before.iter().enumerate().take(first) {
            if w.live[i] && !was.is_empty() {
                prop_assert_eq!(&w.services[i].ingress, was, "{} moved", w.services[i].key);
            }
        }
    }
}
