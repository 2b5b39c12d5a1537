//! Why a Service got no address, in words that say what to change. MetalLB answers "no
//! available IPs"; herald keeps those words first and adds the reason.

use crate::allocator::{Allocator, Offer, PoolConfig, names};
use crate::request::{FamilyPolicy, Request, Stack};
use model::world::Family;

fn families(p: &PoolConfig) -> &'static str {
    match (
        p.pool.has_family(Family::Ipv4),
        p.pool.has_family(Family::Ipv6),
    ) {
        (true, true) => "both families",
        (true, false) => "IPv4 only",
        (false, true) => "IPv6 only",
        (false, false) => "no address",
    }
}

fn pool_list(pools: &[&PoolConfig]) -> String {
    let names: Vec<String> = pools.iter().map(|p| p.pool.name.clone()).collect();
    let word = if names.len() == 1 { "pool" } else { "pools" };
    format!("{word} {}", self::names(names.iter()))
}

pub(crate) fn known_pools(alloc: &Allocator) -> String {
    let names: Vec<&String> = alloc.pool_names().collect();
    if names.is_empty() {
        "; no IPAddressPool exists".into()
    } else {
        format!("; the pools are {}", self::names(names))
    }
}

/// Why no pool the Service may use gave it addresses.
pub(crate) fn no_pool(alloc: &Allocator, req: &Request, stack: Stack) -> String {
    let mut candidates = alloc.pinned_pools(req);
    candidates.extend(alloc.open_pools());
    candidates.sort_by(|a, b| a.pool.name.cmp(&b.pool.name));
    candidates.dedup_by(|a, b| a.pool.name == b.pool.name);
    if candidates.is_empty() {
        let mut why: Vec<String> = Vec::new();
        for p in alloc.pools.values() {
            if !p.pool.auto_assign {
                why.push(format!("{} has autoAssign: false", p.pool.name));
            } else if let Err(e) = p.compatible(req) {
                why.push(format!("{}: {e}", p.pool.name));
            } else {
                why.push(format!(
                    "{}'s serviceAllocation selects the Service by nothing it has",
                    p.pool.name
                ));
            }
        }
        if why.is_empty() {
            return "no IPAddressPool exists; create one".into();
        }
        return format!(
            "no auto-assign pool may serve this Service ({}); name one with metallb.io/address-pool, or change the pools' autoAssign or serviceAllocation",
            why.join("; ")
        );
    }
    let any_both = candidates
        .iter()
        .any(|p| p.pool.has_family(Family::Ipv4) && p.pool.has_family(Family::Ipv6));
    match (stack, req.policy) {
        (Stack::Dual, FamilyPolicy::RequireDualStack) if !any_both => {
            let v4 = candidates.iter().any(|p| p.pool.has_family(Family::Ipv4));
            let v6 = candidates.iter().any(|p| p.pool.has_family(Family::Ipv6));
            let each = match (v4, v6) {
                (true, true) if candidates.len() == 2 => {
                    format!("{} each hold one family", pool_list(&candidates))
                }
                (true, true) => format!("{} hold one family each", pool_list(&candidates)),
                (true, false) => format!("{} hold IPv4 only", pool_list(&candidates)),
                _ => format!("{} hold IPv6 only", pool_list(&candidates)),
            };
            return format!(
                "RequireDualStack, but no auto-assign pool has both IPv4 and IPv6 ranges: {each}; put both families in one pool, or name a dual-stack pool with metallb.io/address-pool"
            );
        }
        (Stack::Single(family), _) if !candidates.iter().any(|p| p.pool.has_family(family)) => {
            let held: Vec<String> = candidates
                .iter()
                .map(|p| format!("{} holds {}", p.pool.name, families(p)))
                .collect();
            return format!(
                "the Service is {family} (clusterIPs {:?}), but no auto-assign pool it may use has an {family} range ({}); add an {family} range to a pool, or name one that has it with metallb.io/address-pool",
                req.cluster_ips,
                held.join(", ")
            );
        }
        _ => {}
    }
    let sharing = if req.sharing_key.is_empty() {
        String::new()
    } else {
        format!(
            " (no address is shared under key {:?} without a port in common)",
            req.sharing_key
        )
    };
    format!(
        "every usable address of {} is taken{sharing}; add addresses to a pool, or delete Services that hold them",
        pool_list(&candidates)
    )
}

pub(crate) fn pool_full(pool: &PoolConfig, req: &Request) -> String {
    let sharing = if req.sharing_key.is_empty() {
        String::new()
    } else {
        format!(
            " (no address is shared under key {:?} without a port in common)",
            req.sharing_key
        )
    };
    format!(
        "every usable address of the pool is taken{sharing}; add addresses to pool {}, or delete Services that hold them",
        pool.pool.name
    )
}

pub(crate) fn pool_family(pool: &PoolConfig, offer: &Offer, stack: Stack, req: &Request) -> String {
    let missing: Vec<Family> = [Family::Ipv4, Family::Ipv6]
        .into_iter()
        .filter(|f| stack.has(*f) && offer.get(*f).is_none())
        .collect();
    let mut why = Vec::new();
    for f in &missing {
        if pool.pool.has_family(*f) {
            why.push(format!("its {f} addresses are all taken"));
        } else {
            why.push(format!("it has no {f} range"));
        }
    }
    let what = match (stack, req.policy) {
        (Stack::Dual, FamilyPolicy::RequireDualStack) => "the Service is RequireDualStack",
        (Stack::Dual, _) => "the Service is dual-stack",
        (Stack::Single(Family::Ipv4), _) => "the Service is IPv4",
        (Stack::Single(Family::Ipv6), _) => "the Service is IPv6",
    };
    format!(
        "{what}, but in pool {} {}",
        pool.pool.name,
        why.join(" and ")
    )
}
