#![allow(dead_code)]

use ipam::{Allocator, FamilyPolicy, Outcome, Port, Request};
use model::world::{Family, Labels, Pool};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Pools from IPAddressPool YAML, checked as herald checks them.
pub fn pools(yaml: &str) -> BTreeMap<String, Pool> {
    let loaded = model::file::load_str(yaml, None);
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    let checked = model::validate(&loaded.resources);
    checked
        .world
        .unwrap_or_else(|| panic!("invalid pools: {:?}", checked.diagnostics))
        .pools
}

pub fn pool(name: &str, addresses: &[&str]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("  - {a}\n")).collect();
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n  addresses:\n{}",
        list.concat()
    )
}

pub fn allocator(yaml: &str) -> Allocator {
    allocator_ns(yaml, &[])
}

pub fn allocator_ns(yaml: &str, namespaces: &[(&str, &[(&str, &str)])]) -> Allocator {
    let mut a = Allocator::new();
    let ns: BTreeMap<String, Labels> = namespaces
        .iter()
        .map(|(n, l)| {
            (
                n.to_string(),
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect();
    a.set_pools(&pools(yaml), &ns);
    a
}

/// An IPv4 single-stack LoadBalancer Service with one TCP port 80.
pub fn v4(name: &str) -> Request {
    let mut r = Request::new("default", name);
    r.cluster_ips = vec!["10.96.0.10".into()];
    r.ip_families = vec![Family::Ipv4];
    r.ports = vec![tcp(80)];
    r
}

pub fn v6(name: &str) -> Request {
    let mut r = Request::new("default", name);
    r.cluster_ips = vec!["fd00:10:96::10".into()];
    r.ip_families = vec![Family::Ipv6];
    r.ports = vec![tcp(80)];
    r
}

/// Dual-stack cluster IPs, IPv4 first unless `v6_first`.
pub fn dual(name: &str, policy: FamilyPolicy, v6_first: bool) -> Request {
    let mut r = Request::new("default", name);
    r.cluster_ips = vec!["10.96.0.10".into(), "fd00:10:96::10".into()];
    r.ip_families = vec![Family::Ipv4, Family::Ipv6];
    if v6_first {
        r.cluster_ips.reverse();
        r.ip_families.reverse();
    }
    r.policy = policy;
    r.ports = vec![tcp(80)];
    r
}

pub fn tcp(port: i32) -> Port {
    Port {
        protocol: "TCP".into(),
        port,
    }
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().expect("address")).collect()
}

/// Converges and then applies the outcome to the request, as the API server would hold it.
pub fn apply(a: &mut Allocator, r: &mut Request) -> Outcome {
    let out = ipam::converge(a, r);
    r.ingress = out.ingress.iter().map(|i| i.to_string()).collect();
    r.allocated_from_pool = out.pool.clone();
    out
}

pub fn ingress(out: &Outcome) -> Vec<String> {
    out.ingress.iter().map(|i| i.to_string()).collect()
}

pub fn reasons(out: &Outcome) -> Vec<&'static str> {
    out.events.iter().map(|e| e.reason).collect()
}

pub fn message(out: &Outcome, reason: &str) -> String {
    out.events
        .iter()
        .find(|e| e.reason == reason)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no {reason} event in {:?}", out.events))
}
