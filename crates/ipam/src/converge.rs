//! [`converge()`]: one Service's addresses decided the way MetalLB's controller decides them
//! (its `convergeBalancer`), and [`register()`], which enters what a Service's status already
//! says before anything new is handed out.

use crate::allocator::{Allocator, quoted};
use crate::request::{FamilyPolicy, Request, Stack};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// An Event to raise on the Service, with MetalLB's reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    fn normal(reason: &'static str, message: String) -> Self {
        Event {
            kind: EventType::Normal,
            reason,
            message,
        }
    }

    fn warning(reason: &'static str, message: String) -> Self {
        Event {
            kind: EventType::Warning,
            reason,
            message,
        }
    }
}

/// What the Service should carry after converging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `status.loadBalancer.ingress[].ip`, in order; empty clears it.
    pub ingress: Vec<IpAddr>,
    /// The `metallb.io/ip-allocated-from-pool` annotation; `None` removes it.
    pub pool: Option<String>,
    /// Whether `ingress` or `pool` differ from what the Service carries: the write to make.
    pub changed: bool,
    pub events: Vec<Event>,
    /// No address could be given; converge again when addresses are released or the
    /// configuration changes.
    pub failed: bool,
    /// Addresses the Service held are free again, so Services waiting may now fit.
    pub released: bool,
}

fn parse_ingress(req: &Request) -> Result<Vec<IpAddr>, String> {
    req.ingress
        .iter()
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an address"))
        })
        .collect()
}

/// MetalLB's `serviceFamilyChanged`: the addresses held no longer fit the cluster IPs' family.
fn family_changed(held: Result<Stack, String>, cluster: Stack, policy: FamilyPolicy) -> bool {
    match held {
        Err(_) => true,
        Ok(held) if held == cluster => false,
        Ok(_) => !(cluster == Stack::Dual && policy == FamilyPolicy::PreferDualStack),
    }
}

/// Enters the addresses `req`'s status already lists, if the rules allow them, without
/// changing anything else: on start and on becoming the active controller, every Service is
/// registered before any is converged, so no address already given out is handed to another
/// Service. Returns whether the addresses were entered.
pub fn register(alloc: &mut Allocator, req: &Request) -> bool {
    if !req.is_load_balancer || req.ingress.is_empty() {
        return false;
    }
    let Ok(ips) = parse_ingress(req) else {
        return false;
    };
    let Ok(cluster) = req.cluster_stack() else {
        return false;
    };
    if family_changed(Stack::of(&ips), cluster, req.policy) {
        return false;
    }
    alloc.assign(req, &ips).is_ok()
}

/// Decides `req`'s addresses (MetalLB's `convergeBalancer`): keeps what it holds while the
/// configuration allows it, frees it when the Service stops being a LoadBalancer, and
/// otherwise allocates, with Events saying what happened and, on failure, what to change.
/// The caller converges only Services of its load-balancer class, and only once the pools
/// have been read.
pub fn converge(alloc: &mut Allocator, req: &Request) -> Outcome {
    let before: BTreeSet<IpAddr> = alloc
        .allocation(&req.key)
        .map(|a| a.ips.iter().copied().collect())
        .unwrap_or_default();
    let mut out = Outcome::default();
    let mut quiet = Vec::new();
    let result = decide(alloc, req, &mut out, &mut quiet);
    match result {
        Ok(ips) => {
            out.pool = (!ips.is_empty())
                .then(|| alloc.pool_of(&req.key).map(str::to_owned))
                .flatten();
            out.ingress = ips;
        }
        Err(Keep::Cleared) => {
            out.failed = true;
        }
        Err(Keep::Untouched) => {
            // MetalLB leaves the Service as it is when it cannot read what it asks for.
            out.failed = true;
            out.ingress = parse_ingress(req).unwrap_or_default();
            out.pool = req.allocated_from_pool.clone();
        }
    }
    let after: BTreeSet<IpAddr> = alloc
        .allocation(&req.key)
        .map(|a| a.ips.iter().copied().collect())
        .unwrap_or_default();
    out.released = before.difference(&after).next().is_some();
    let written: Vec<String> = out.ingress.iter().map(IpAddr::to_string).collect();
    out.changed = written != req.ingress || out.pool != req.allocated_from_pool.clone();
    if out.changed {
        // Like MetalLB, only when something is written, so a Service is not flooded with the
        // same Event each time it is looked at.
        out.events.extend(quiet);
        for key in &req.deprecated_annotations {
            out.events.push(Event::warning(
                "deprecatedAnnotation",
                format!("Service uses deprecated annotation {key}"),
            ));
        }
    }
    out
}

enum Keep {
    /// Status and annotation cleared.
    Cleared,
    /// Left as they are.
    Untouched,
}

fn decide(
    alloc: &mut Allocator,
    req: &Request,
    out: &mut Outcome,
    quiet: &mut Vec<crate::Event>,
) -> Result<Vec<IpAddr>, Keep> {
    let key = &req.key;
    let failed = |out: &mut Outcome, why: String| {
        out.events.push(Event::warning(
            "AllocationFailed",
            format!("Failed to allocate IP for \"{key}\": {why}"),
        ));
    };
    if !req.is_load_balancer {
        alloc.unassign(key);
        return Ok(Vec::new());
    }
    if !alloc.has_pools() {
        alloc.unassign(key);
        failed(out, "no IPAddressPool exists; create one".into());
        return Err(Keep::Cleared);
    }
    if req.cluster_ips.is_empty() {
        alloc.unassign(key);
        failed(
            out,
            "the Service has no clusterIPs, so its address family is unknown".into(),
        );
        return Err(Keep::Cleared);
    }
    let mut held = match parse_ingress(req) {
        Ok(ips) => ips,
        Err(e) => {
            out.events.push(Event::normal(
                "ClearAssignment",
                format!("current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {e}"),
            ));
            Vec::new()
        }
    };
    if req.policy == FamilyPolicy::RequireDualStack && req.cluster_ips.len() < 2 {
        out.events.push(Event::warning(
            "not enough clusterips",
            format!(
                "Service requires dual stack but not enough clusterips {:?}",
                req.cluster_ips
            ),
        ));
        alloc.unassign(key);
        return Err(Keep::Cleared);
    }
    let cluster = if held.is_empty() {
        alloc.unassign(key);
        None
    } else {
        let cluster = match req.cluster_stack() {
            Ok(s) => s,
            Err(e) => {
                out.events.push(Event::warning(
                    "noclusterIPsIPFamily",
                    format!(
                        "Failed to retrieve ClusterIPs IPFamily for {:?}: {e}",
                        req.cluster_ips
                    ),
                ));
                return Err(Keep::Untouched);
            }
        };
        if family_changed(Stack::of(&held), cluster, req.policy) {
            alloc.unassign(key);
            held.clear();
        }
        Some(cluster)
    };

    if !held.is_empty() {
        if let Err(e) = alloc.assign(req, &held) {
            out.events.push(Event::normal(
                "ClearAssignment",
                format!("current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {e}"),
            ));
            alloc.unassign(key);
            held.clear();
        }
        if let Some(want) = &req.address_pool
            && !held.is_empty()
            && alloc.pool_of(key) != Some(want.as_str())
        {
            alloc.unassign(key);
            held.clear();
        }
        match req.requested_ips() {
            Err(e) => {
                out.events.push(Event::warning(
                    "LoadBalancerFailed",
                    format!("invalid requested loadbalancer IPs: {e}"),
                ));
                return Err(Keep::Untouched);
            }
            Ok(Some((want, _))) => {
                let want: BTreeSet<IpAddr> = want.into_iter().collect();
                let have: BTreeSet<IpAddr> = held.iter().copied().collect();
                if !held.is_empty() && want != have {
                    alloc.unassign(key);
                    held.clear();
                }
            }
            Ok(None) => {}
        }
    }

    // MetalLB tries this whatever the cluster IPs; herald only when they are dual-stack, since
    // a single-stack Service holding two addresses is cleared again by the family check above
    // (MetalLB flaps between one address and two there).
    if held.len() == 1
        && req.policy == FamilyPolicy::PreferDualStack
        && cluster == Some(Stack::Dual)
        && let Some(pool) = alloc.pool_of(key).map(str::to_owned)
    {
        match alloc.allocate_additional(req, held[0], &pool) {
            Ok(ip) => {
                out.events.push(Event::normal(
                    "IPAllocated",
                    format!("Assigned additional IP \"{ip}\""),
                ));
                if let Some(a) = alloc.allocation(key) {
                    held = a.ips.clone();
                }
            }
            Err(e) => quiet.push(Event::normal(
                "AdditionalAssignFailed",
                format!("cannot assign additional IP in PreferDualStack: {e}"),
            )),
        }
    }

    if held.is_empty() {
        match allocate_ips(alloc, req) {
            Ok(ips) => {
                out.events.push(Event::normal(
                    "IPAllocated",
                    format!("Assigned IP {}", quoted(&ips)),
                ));
                held = ips;
            }
            Err(e) => {
                failed(out, e);
                return Err(Keep::Cleared);
            }
        }
    }
    Ok(held)
}

/// MetalLB's `allocateIPs`: the requested addresses, else from the requested pool, else from
/// any pool the Service may use.
fn allocate_ips(alloc: &mut Allocator, req: &Request) -> Result<Vec<IpAddr>, String> {
    let stack = req.cluster_stack()?;
    let requested = req.requested_ips()?;
    if let Some((ips, asked)) = requested {
        if asked != stack {
            return Err(format!(
                "requested loadBalancer IP(s) {} does not match the ipFamily of the service (the Service's clusterIPs {:?} are {stack}, the request is {asked}); request one address of each of the Service's families",
                quoted(&ips),
                req.cluster_ips
            ));
        }
        alloc.assign(req, &ips).map_err(|e| e.to_string())?;
        if let Some(pool) = &req.address_pool
            && alloc.pool_of(&req.key) != Some(pool.as_str())
        {
            let actual = alloc.pool_of(&req.key).unwrap_or_default().to_owned();
            alloc.unassign(&req.key);
            return Err(format!(
                "requested loadBalancer IP(s) {} is not compatible with requested address pool {pool} (they are in pool {actual}); drop one of the two requests, or make them agree",
                quoted(&ips)
            ));
        }
        return Ok(ips);
    }
    if let Some(pool) = &req.address_pool {
        return alloc.allocate_from_pool(req, stack, pool);
    }
    alloc.allocate(req, stack)
}
