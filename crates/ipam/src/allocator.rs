//! [`Allocator`]: which Service holds which addresses, and MetalLB's rules for handing out
//! more.
//!
//! The rules follow MetalLB's allocator: a Service's addresses come from one pool; an address
//! is shared only by Services with the same non-empty sharing key (and, under `Local`
//! traffic policy, the same selector) whose ports do not overlap; within a pool, ranges are
//! tried in the order written and each from its first address, so the lowest usable address
//! is taken; `avoidBuggyIPs` pools skip IPv4 addresses ending in .0 and .255. Where MetalLB
//! leaves an order to Go's map iteration (pools of equal priority), herald takes pool names
//! in order, so the outcome never depends on chance.

use crate::request::{FamilyPolicy, Port, Request, Stack};
use crate::space::{IntervalSet, bits, from_bits, index, is_buggy};
use model::net::range_cidrs;
use model::selector::Selector;
use model::world::{Family, Labels, Pool, ServiceRef};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

/// What one Service holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub pool: String,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<Port>,
    pub sharing_key: String,
    pub backend_key: String,
}

/// MetalLB's pool counters, as written to an IPAddressPool's status and to the
/// `metallb_allocator_*` metrics. Pools of 2^62 addresses or more count as `i64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PoolCounters {
    /// Usable addresses (without .0 / .255 in `avoidBuggyIPs` pools).
    pub total: i64,
    pub total_ipv4: i64,
    pub total_ipv6: i64,
    pub assigned_ipv4: i64,
    pub assigned_ipv6: i64,
    pub available_ipv4: i64,
    pub available_ipv6: i64,
}

impl PoolCounters {
    pub fn assigned(&self) -> i64 {
        self.assigned_ipv4.saturating_add(self.assigned_ipv6)
    }
}

/// Why an address cannot be given to a Service.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    #[error("{} is not allowed in config: {why}", quoted(.ips))]
    NotInPool { ips: Vec<IpAddr>, why: String },
    #[error("pool {pool} not compatible for ip assignment: {why}")]
    PoolNotCompatible { pool: String, why: String },
    #[error("more than two addresses {}", quoted(.0))]
    TooMany(Vec<IpAddr>),
    #[error("\"{0}\" \"{1}\" has the same family")]
    SameFamily(IpAddr, IpAddr),
    #[error(
        "{ip} is already used by {other}, which {why}; to share it, give both Services the same metallb.io/allow-shared-ip value{local}"
    )]
    NotShared {
        ip: IpAddr,
        other: ServiceRef,
        why: String,
        local: &'static str,
    },
    #[error("port {port} is already in use on \"{ip}\" by {other}")]
    PortInUse {
        ip: IpAddr,
        port: Port,
        other: ServiceRef,
    },
}

/// Addresses as Go's `%q` prints a slice of them: `["192.0.2.1" "2001:db8::1"]`.
pub fn quoted(ips: &[IpAddr]) -> String {
    let inner: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", inner.join(" "))
}

/// A pool as the allocator uses it: the checked pool, with `serviceAllocation`'s namespace
/// selectors resolved against the namespaces that exist.
#[derive(Clone, Debug)]
pub(crate) struct PoolConfig {
    pub pool: Pool,
    /// `serviceAllocation` is set.
    pub pinned: bool,
    /// `serviceAllocation.priority` when positive; 0 (lowest) otherwise.
    pub priority: i32,
    /// `serviceAllocation.namespaces` and the namespaces its `namespaceSelectors` match.
    pub namespaces: BTreeSet<String>,
    /// `serviceAllocation.serviceSelectors`; a `serviceAllocation` naming nothing matches
    /// every Service (MetalLB's rule).
    pub service_selectors: Vec<Selector>,
    pub counters: PoolCounters,
}

impl PoolConfig {
    fn new(pool: &Pool, namespaces: &BTreeMap<String, Labels>) -> Self {
        let mut out = PoolConfig {
            pool: pool.clone(),
            pinned: false,
            priority: 0,
            namespaces: BTreeSet::new(),
            service_selectors: Vec::new(),
            counters: capacity(pool),
        };
        if let Some(sa) = &pool.service_allocation {
            out.pinned = true;
            out.priority = sa.priority.filter(|p| *p > 0).unwrap_or(0);
            out.namespaces = sa.namespaces.clone();
            if sa.namespaces.is_empty()
                && sa.namespace_selectors.is_empty()
                && sa.service_selectors.is_empty()
            {
                out.service_selectors = vec![Selector::default()];
            } else {
                for (name, labels) in namespaces {
                    if sa.namespace_selectors.iter().any(|s| s.matches(labels)) {
                        out.namespaces.insert(name.clone());
                    }
                }
                out.service_selectors = sa.service_selectors.clone();
            }
        }
        out
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        !(self.pool.avoid_buggy_ips && is_buggy(ip)) && self.pool.contains(ip)
    }

    /// MetalLB's `isPoolCompatibleWithService`: the namespace is allowed (when the pool names
    /// any), and a service selector matches (when the pool has any).
    pub(crate) fn compatible(&self, req: &Request) -> Result<(), String> {
        if !self.namespaces.is_empty() && !self.namespaces.contains(&req.key.namespace) {
            return Err(format!(
                "its serviceAllocation allows namespaces {} only",
                names(self.namespaces.iter())
            ));
        }
        if !self.service_selectors.is_empty()
            && !self
                .service_selectors
                .iter()
                .any(|s| s.matches(&req.labels))
        {
            return Err(
                "the Service's labels match none of its serviceAllocation.serviceSelectors".into(),
            );
        }
        Ok(())
    }

    /// Sort key: positive priorities first, lowest number first; then by name.
    fn order(&self) -> (bool, i32, &str) {
        (self.priority == 0, self.priority, &self.pool.name)
    }
}

pub(crate) fn names<'a>(it: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.into_iter().map(String::as_str).collect();
    match v.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The usable addresses of a pool per family, MetalLB's `poolCount`.
fn capacity(pool: &Pool) -> PoolCounters {
    let mut v4: i64 = 0;
    let mut v6: i64 = 0;
    for range in &pool.ranges {
        for cidr in range_cidrs(range) {
            let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
            let size: i64 = if host_bits >= 62 {
                i64::MAX
            } else {
                let mut size = 1i64 << host_bits;
                if pool.avoid_buggy_ips && cidr.addr().is_ipv4() {
                    if cidr.prefix_len() <= 24 {
                        size -= (1i64 << (24 - u32::from(cidr.prefix_len()))) * 2;
                    } else {
                        size -= i64::from(is_buggy(&cidr.network()));
                        size -= i64::from(is_buggy(&cidr.broadcast()));
                    }
                }
                size
            };
            match Family::of(&cidr.addr()) {
                Family::Ipv4 => v4 = v4.saturating_add(size),
                Family::Ipv6 => v6 = v6.saturating_add(size),
            }
        }
    }
    PoolCounters {
        total: v4.saturating_add(v6),
        total_ipv4: v4,
        total_ipv6: v6,
        available_ipv4: v4,
        available_ipv6: v6,
        ..Default::default()
    }
}

/// The free addresses one pool offers a Service: the first usable of each family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Offer {
    pub pool: String,
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

impl Offer {
    pub fn get(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4 => self.v4,
            Family::Ipv6 => self.v6,
        }
    }

    /// MetalLB's `selectIPsForFamilyAndPolicy`, with the two addresses of a dual-stack
    /// Service in the order of its `ipFamilies`.
    pub fn select(
        &self,
        stack: Stack,
        policy: FamilyPolicy,
        primary: Family,
    ) -> Result<Vec<IpAddr>, String> {
        let both = |a: IpAddr, b: IpAddr| {
            if Family::of(&a) == primary {
                vec![a, b]
            } else {
                vec![b, a]
            }
        };
        let picked = match (stack, policy) {
            (Stack::Single(f), _) => self.get(f).map(|ip| vec![ip]),
            (Stack::Dual, FamilyPolicy::SingleStack) => None,
            (Stack::Dual, FamilyPolicy::RequireDualStack) => {
                self.v4.zip(self.v6).map(|(a, b)| both(a, b))
            }
            (Stack::Dual, FamilyPolicy::PreferDualStack) => match (self.v4, self.v6) {
                (Some(a), Some(b)) => Some(both(a, b)),
                (Some(a), None) | (None, Some(a)) => Some(vec![a]),
                (None, None) => None,
            },
        };
        picked.ok_or_else(|| {
            format!(
                "no available IPs in pool {} for {} IPFamily",
                self.pool,
                match stack {
                    Stack::Single(Family::Ipv4) => "ipv4",
                    Stack::Single(Family::Ipv6) => "ipv6",
                    Stack::Dual => "dual",
                }
            )
        })
    }
}

/// Every allocation, and the pools they come from. Pure: no I/O, no clock.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pub(crate) pools: BTreeMap<String, PoolConfig>,
    allocated: HashMap<ServiceRef, Allocation>,
    /// The Services on each address in use.
    users: HashMap<IpAddr, BTreeSet<ServiceRef>>,
    /// Addresses in use, per family (index 0: IPv4).
    used: [IntervalSet; 2],
    /// Addresses in use by Services with a sharing key, per key.
    shared: HashMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the pools (MetalLB's `SetPools`). `namespaces` gives each namespace's labels,
    /// for `serviceAllocation.namespaceSelectors`. Allocations whose addresses no pool holds
    /// any more are released; their Services come back, so the caller converges them again.
    pub fn set_pools(
        &mut self,
        pools: &BTreeMap<String, Pool>,
        namespaces: &BTreeMap<String, Labels>,
    ) -> Vec<ServiceRef> {
        self.pools = pools
            .iter()
            .map(|(name, p)| (name.clone(), PoolConfig::new(p, namespaces)))
            .collect();
        let mut released = Vec::new();
        let moved: Vec<(ServiceRef, Option<String>)> = self
            .allocated
            .iter()
            .map(|(key, a)| {
                (
                    key.clone(),
                    self.pool_for(&a.ips).map(|p| p.pool.name.clone()),
                )
            })
            .collect();
        for (key, pool) in moved {
            match pool {
                None => {
                    self.unassign(&key);
                    released.push(key);
                }
                Some(pool) => {
                    if let Some(a) = self.allocated.get_mut(&key) {
                        a.pool = pool;
                    }
                }
            }
        }
        self.recount();
        released.sort();
        released
    }

    /// Names of the pools, in order.
    pub fn pool_names(&self) -> impl Iterator<Item = &String> {
        self.pools.keys()
    }

    pub fn has_pools(&self) -> bool {
        !self.pools.is_empty()
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name).map(|p| &p.pool)
    }

    pub fn counters(&self, pool: &str) -> Option<PoolCounters> {
        self.pools.get(pool).map(|p| p.counters)
    }

    /// What `key` holds, if anything.
    pub fn allocation(&self, key: &ServiceRef) -> Option<&Allocation> {
        self.allocated.get(key)
    }

    /// The pool `key`'s addresses come from (MetalLB's `Pool`).
    pub fn pool_of(&self, key: &ServiceRef) -> Option<&str> {
        self.allocated.get(key).map(|a| a.pool.as_str())
    }

    /// Every allocation, in no particular order.
    pub fn allocations(&self) -> impl Iterator<Item = (&ServiceRef, &Allocation)> {
        self.allocated.iter()
    }

    /// The Services on `ip`.
    pub fn users(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceRef> {
        self.users.get(ip).into_iter().flatten()
    }

    fn recount(&mut self) {
        let mut in_use: HashMap<&str, [i64; 2]> = HashMap::new();
        for (ip, users) in &self.users {
            let Some(pool) = users
                .iter()
                .next()
                .and_then(|k| self.allocated.get(k))
                .map(|a| a.pool.as_str())
            else {
                continue;
            };
            in_use.entry(pool).or_default()[index(Family::of(ip))] += 1;
        }
        let in_use: HashMap<String, [i64; 2]> =
            in_use.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for (name, p) in &mut self.pools {
            let [v4, v6] = in_use.get(name).copied().unwrap_or_default();
            p.counters.assigned_ipv4 = v4;
            p.counters.assigned_ipv6 = v6;
            p.counters.available_ipv4 = p.counters.total_ipv4.saturating_sub(v4);
            p.counters.available_ipv6 = p.counters.total_ipv6.saturating_sub(v6);
        }
    }

    fn count(&mut self, pool: &str, ip: &IpAddr, delta: i64) {
        if let Some(p) = self.pools.get_mut(pool) {
            let c = &mut p.counters;
            match Family::of(ip) {
                Family::Ipv4 => {
                    c.assigned_ipv4 += delta;
                    c.available_ipv4 = c.total_ipv4.saturating_sub(c.assigned_ipv4);
                }
                Family::Ipv6 => {
                    c.assigned_ipv6 += delta;
                    c.available_ipv6 = c.total_ipv6.saturating_sub(c.assigned_ipv6);
                }
            }
        }
    }

    /// The pool holding every one of `ips` (MetalLB's `poolFor`).
    pub(crate) fn pool_for(&self, ips: &[IpAddr]) -> Option<&PoolConfig> {
        if ips.is_empty() {
            return None;
        }
        self.pools
            .values()
            .find(|p| ips.iter().all(|ip| p.contains(ip)))
    }

    /// Where an address outside every pool would have to go, for the error.
    fn not_in_pool(&self, ips: &[IpAddr]) -> AssignError {
        let mut why = Vec::new();
        for ip in ips {
            let holder = self.pools.values().find(|p| p.pool.contains(ip));
            match holder {
                Some(p) if p.pool.avoid_buggy_ips && is_buggy(ip) => why.push(format!(
                    "{ip} ends in .0 or .255, which pool {} avoids (avoidBuggyIPs)",
                    p.pool.name
                )),
                Some(p) => {
                    let others: Vec<&IpAddr> = ips.iter().filter(|o| !p.contains(o)).collect();
                    if !others.is_empty() {
                        why.push(format!(
                            "{ip} is in pool {} but {} {} not, and a Service's addresses come from one pool",
                            p.pool.name,
                            others.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "),
                            if others.len() == 1 { "is" } else { "are" }
                        ));
                    }
                }
                None => {
                    let family = Family::of(ip);
                    let ranges: Vec<String> = self
                        .pools
                        .values()
                        .flat_map(|p| {
                            p.pool
                                .ranges
                                .iter()
                                .filter(|r| r.family() == family)
                                .map(|r| format!("{} {r}", p.pool.name))
                        })
                        .collect();
                    if ranges.is_empty() {
                        why.push(format!(
                            "{ip} is in no IPAddressPool, and no pool has an {family} range; add one"
                        ));
                    } else {
                        why.push(format!(
                            "{ip} is in no IPAddressPool; pick an address from one ({}), or add it to a pool",
                            ranges.join(", ")
                        ));
                    }
                }
            }
        }
        why.dedup();
        AssignError::NotInPool {
            ips: ips.to_vec(),
            why: why.join("; "),
        }
    }

    /// Whether `req` may use `ip` beside the Services already on it (MetalLB's
    /// `checkSharing`): the same non-empty sharing key and backend key, no port in common.
    /// The Service itself does not count.
    pub(crate) fn check_sharing(&self, req: &Request, ip: IpAddr) -> Result<(), AssignError> {
        let Some(users) = self.users.get(&ip) else {
            return Ok(());
        };
        for other in users.iter().filter(|o| **o != req.key) {
            let Some(a) = self.allocated.get(other) else {
                continue;
            };
            let why = if a.sharing_key.is_empty() {
                Some("does not allow sharing".to_owned())
            } else if req.sharing_key.is_empty() {
                Some(format!(
                    "has sharing key {:?}, but this Service has none",
                    a.sharing_key
                ))
            } else if a.sharing_key != req.sharing_key {
                Some(format!(
                    "has sharing key {:?}, not {:?}",
                    a.sharing_key, req.sharing_key
                ))
            } else if a.backend_key != req.backend_key {
                Some(format!(
                    "selects other pods ({:?}, not {:?}) under externalTrafficPolicy: Local",
                    a.backend_key, req.backend_key
                ))
            } else {
                None
            };
            if let Some(why) = why {
                let local = if a.backend_key != req.backend_key {
                    " and the same selector (or externalTrafficPolicy: Cluster)"
                } else {
                    ""
                };
                return Err(AssignError::NotShared {
                    ip,
                    other: other.clone(),
                    why,
                    local,
                });
            }
            if let Some(port) = req.ports.iter().find(|p| a.ports.contains(p)) {
                return Err(AssignError::PortInUse {
                    ip,
                    port: port.clone(),
                    other: other.clone(),
                });
            }
        }
        Ok(())
    }

    /// Gives `req` exactly `ips`, if the rules allow (MetalLB's `Assign`). Idempotent: the
    /// Service's previous allocation is replaced.
    pub fn assign(&mut self, req: &Request, ips: &[IpAddr]) -> Result<(), AssignError> {
        let Some(pool) = self.pool_for(ips) else {
            return Err(self.not_in_pool(ips));
        };
        pool.compatible(req)
            .map_err(|why| AssignError::PoolNotCompatible {
                pool: pool.pool.name.clone(),
                why,
            })?;
        let pool = pool.pool.name.clone();
        match ips {
            [a, b] if Family::of(a) == Family::of(b) => {
                return Err(AssignError::SameFamily(*a, *b));
            }
            [_, _, _, ..] => return Err(AssignError::TooMany(ips.to_vec())),
            _ => {}
        }
        for ip in ips {
            self.check_sharing(req, *ip)?;
        }
        self.record(
            req.key.clone(),
            Allocation {
                pool,
                ips: ips.to_vec(),
                ports: req.ports.clone(),
                sharing_key: req.sharing_key.clone(),
                backend_key: req.backend_key.clone(),
            },
        );
        Ok(())
    }

    fn record(&mut self, key: ServiceRef, alloc: Allocation) {
        self.unassign(&key);
        for ip in &alloc.ips {
            let users = self.users.entry(*ip).or_default();
            let first = users.is_empty();
            users.insert(key.clone());
            if first {
                let (family, n) = bits(*ip);
                self.used[index(family)].insert(n);
                if !alloc.sharing_key.is_empty() {
                    self.shared
                        .entry(alloc.sharing_key.clone())
                        .or_default()
                        .insert(*ip);
                }
                let pool = alloc.pool.clone();
                self.count(&pool, ip, 1);
            }
        }
        self.allocated.insert(key, alloc);
    }

    /// Releases what `key` holds (MetalLB's `Unassign`); returns it.
    pub fn unassign(&mut self, key: &ServiceRef) -> Option<Allocation> {
        let alloc = self.allocated.remove(key)?;
        for ip in &alloc.ips {
            let Some(users) = self.users.get_mut(ip) else {
                continue;
            };
            users.remove(key);
            if users.is_empty() {
                self.users.remove(ip);
                let (family, n) = bits(*ip);
                self.used[index(family)].remove(n);
                if let Some(set) = self.shared.get_mut(&alloc.sharing_key) {
                    set.remove(ip);
                    if set.is_empty() {
                        self.shared.remove(&alloc.sharing_key);
                    }
                }
                self.count(&alloc.pool, ip, -1);
            }
        }
        Some(alloc)
    }

    /// The lowest address of `range` that `req` may take: free, or shared compatibly.
    fn first_usable_in(
        &self,
        range: &model::world::AddressRange,
        avoid_buggy: bool,
        req: &Request,
    ) -> Option<IpAddr> {
        let (family, lo) = bits(range.first);
        let (_, hi) = bits(range.last);
        let used = &self.used[index(family)];
        let mut free = None;
        let mut at = lo;
        while let Some(n) = used.first_absent(at) {
            if n > hi {
                break;
            }
            if avoid_buggy && is_buggy(&from_bits(family, n)) {
                match n.checked_add(1) {
                    Some(next) => {
                        at = next;
                        continue;
                    }
                    None => break,
                }
            }
            free = Some(n);
            break;
        }
        if !req.sharing_key.is_empty()
            && let Some(shared) = self.shared.get(&req.sharing_key)
        {
            let upper = free.map_or(hi, |f| f.saturating_sub(1));
            if free != Some(lo) {
                let span = from_bits(family, lo)..=from_bits(family, upper);
                for ip in shared.range(span) {
                    if !(avoid_buggy && is_buggy(ip)) && self.check_sharing(req, *ip).is_ok() {
                        return Some(*ip);
                    }
                }
            }
        }
        free.map(|n| from_bits(family, n))
    }

    /// The first usable address of each family in `pool` (MetalLB's `getFreeIPsFromPool`).
    pub(crate) fn offer(&self, pool: &PoolConfig, req: &Request) -> Offer {
        let mut offer = Offer {
            pool: pool.pool.name.clone(),
            ..Default::default()
        };
        for range in &pool.pool.ranges {
            let slot = match range.family() {
                Family::Ipv4 => &mut offer.v4,
                Family::Ipv6 => &mut offer.v6,
            };
            if slot.is_none() {
                *slot = self.first_usable_in(range, pool.pool.avoid_buggy_ips, req);
            }
        }
        offer
    }

    /// Pools with `serviceAllocation` that take `req` on their own, best first (MetalLB's
    /// `pinnedPoolsForService`).
    pub(crate) fn pinned_pools(&self, req: &Request) -> Vec<&PoolConfig> {
        let mut pools: Vec<&PoolConfig> = self
            .pools
            .values()
            .filter(|p| p.pinned && p.pool.auto_assign)
            .filter(|p| {
                p.namespaces.contains(&req.key.namespace) || !p.service_selectors.is_empty()
            })
            .filter(|p| p.compatible(req).is_ok())
            .collect();
        pools.sort_by(|a, b| a.order().cmp(&b.order()));
        pools
    }

    /// Pools any Service may take from: auto-assign, without `serviceAllocation`.
    pub(crate) fn open_pools(&self) -> Vec<&PoolConfig> {
        self.pools
            .values()
            .filter(|p| p.pool.auto_assign && !p.pinned)
            .collect()
    }

    /// MetalLB's `findBestPoolForService`.
    fn best_offer(&self, pools: &[&PoolConfig], req: &Request, stack: Stack) -> Option<Offer> {
        let primary = req.primary_family();
        let secondary = match primary {
            Family::Ipv4 => Family::Ipv6,
            Family::Ipv6 => Family::Ipv4,
        };
        let mut first_primary = None;
        let mut first_secondary = None;
        for pool in pools {
            let offer = self.offer(pool, req);
            if offer.v4.is_none() && offer.v6.is_none() {
                continue;
            }
            if let Stack::Single(f) = stack
                && offer.get(f).is_some()
            {
                return Some(offer);
            }
            let (p, s) = (offer.get(primary), offer.get(secondary));
            if p.is_some() && s.is_some() {
                return Some(offer);
            }
            if !(req.policy == FamilyPolicy::PreferDualStack && stack == Stack::Dual) {
                continue;
            }
            if p.is_some() && first_primary.is_none() {
                first_primary = Some(offer.clone());
            }
            if s.is_some() && first_secondary.is_none() {
                first_secondary = Some(offer);
            }
        }
        first_primary.or(first_secondary)
    }

    fn allocate_from_pools(
        &mut self,
        pools: &[&PoolConfig],
        req: &Request,
        stack: Stack,
    ) -> Option<Vec<IpAddr>> {
        let offer = self.best_offer(pools, req, stack)?;
        let ips = offer.select(stack, req.policy, req.primary_family()).ok()?;
        self.assign(req, &ips).ok()?;
        Some(ips)
    }

    /// Addresses for `req` from any pool it may use (MetalLB's `Allocate`): the pools whose
    /// `serviceAllocation` selects it, by priority, then every open auto-assign pool. Returns
    /// `None` when none has room; [`crate::explain`] says why.
    pub fn allocate(&mut self, req: &Request, stack: Stack) -> Result<Vec<IpAddr>, String> {
        if let Some(a) = self.allocated.get(&req.key) {
            let ips = a.ips.clone();
            self.assign(req, &ips).map_err(|e| e.to_string())?;
            return Ok(ips);
        }
        let pinned: Vec<PoolConfig> = self.pinned_pools(req).into_iter().cloned().collect();
        let pinned: Vec<&PoolConfig> = pinned.iter().collect();
        if let Some(ips) = self.allocate_from_pools(&pinned, req, stack) {
            return Ok(ips);
        }
        let open: Vec<PoolConfig> = self.open_pools().into_iter().cloned().collect();
        let open: Vec<&PoolConfig> = open.iter().collect();
        if let Some(ips) = self.allocate_from_pools(&open, req, stack) {
            return Ok(ips);
        }
        Err(format!(
            "no available IPs: {}",
            crate::explain::no_pool(self, req, stack)
        ))
    }

    /// Addresses for `req` from the pool it names (MetalLB's `AllocateFromPool`).
    pub fn allocate_from_pool(
        &mut self,
        req: &Request,
        stack: Stack,
        pool: &str,
    ) -> Result<Vec<IpAddr>, String> {
        if let Some(a) = self.allocated.get(&req.key) {
            let ips = a.ips.clone();
            let held = Stack::of(&ips)?;
            if req.policy != FamilyPolicy::PreferDualStack && held != stack {
                return Err(format!(
                    "IP for wrong family assigned alloc {held} service family {stack}"
                ));
            }
            self.assign(req, &ips).map_err(|e| e.to_string())?;
            return Ok(ips);
        }
        let Some(config) = self.pools.get(pool) else {
            return Err(format!(
                "unknown pool {pool:?}{}",
                crate::explain::known_pools(self)
            ));
        };
        let offer = self.offer(config, req);
        if offer.v4.is_none() && offer.v6.is_none() {
            return Err(format!(
                "no available IPs in pool {pool}: {}",
                crate::explain::pool_full(config, req)
            ));
        }
        let ips = offer
            .select(stack, req.policy, req.primary_family())
            .map_err(|e| {
                format!(
                    "{e}: {}",
                    crate::explain::pool_family(config, &offer, stack, req)
                )
            })?;
        self.assign(req, &ips).map_err(|e| e.to_string())?;
        Ok(ips)
    }

    /// For a PreferDualStack Service holding one address: one of the other family from the
    /// same pool, keeping the first (MetalLB's `AllocateFromPoolForAdditionalFamily`).
    pub fn allocate_additional(
        &mut self,
        req: &Request,
        existing: IpAddr,
        pool: &str,
    ) -> Result<IpAddr, String> {
        let family = match Family::of(&existing) {
            Family::Ipv4 => Family::Ipv6,
            Family::Ipv6 => Family::Ipv4,
        };
        let Some(config) = self.pools.get(pool) else {
            return Err(format!("unknown pool {pool:?}"));
        };
        if !config.pool.has_family(family) {
            return Err(format!(
                "pool {pool} has no {family} range; add one to it to give the Service both families"
            ));
        }
        let Some(ip) = self.offer(config, req).get(family) else {
            return Err(format!("no available {family} IPs in pool {pool}"));
        };
        let ips = if Family::of(&existing) == req.primary_family() {
            vec![existing, ip]
        } else {
            vec![ip, existing]
        };
        self.assign(req, &ips).map_err(|e| e.to_string())?;
        Ok(ip)
    }
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from pool {}", quoted(&self.ips), self.pool)
    }
}
