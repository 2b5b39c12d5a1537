//! Cluster checks: the configuration as `herald check` judges it, what it leaves unannounced,
//! and (with the API) whether the cluster can give Services the families the pools offer.
//! Facts are gathered once ([`ClusterFacts::gather`]); the checks are pure.

use super::check::Check;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::Api;
use kube::api::ListParams;
use model::plan::selects_pool;
use model::world::{Family, Pool};
use model::{Diagnostic, Severity, World};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What herald check reports, one line per diagnostic.
pub fn configuration(world: Option<&World>, diagnostics: &[Diagnostic]) -> Vec<Check> {
    let mut out: Vec<Check> = diagnostics
        .iter()
        .filter(|d| d.severity != Severity::Note)
        .map(|d| {
            let subject = if d.resource.kind.is_empty() {
                String::new()
            } else {
                d.resource.to_string()
            };
            let mut problem = d.problem.clone();
            if !d.field.is_empty() {
                problem = format!("{}: {problem}", d.field);
                if let Some(v) = &d.value {
                    problem = format!("{} = {v:?}: {}", d.field, d.problem);
                }
            }
            let fix = d
                .fix
                .clone()
                .unwrap_or_else(|| "see `herald check`".to_owned());
            match d.severity {
                Severity::Error => Check::fail("configuration", subject, problem, fix),
                _ => Check::warn("configuration", subject, problem, fix),
            }
        })
        .collect();
    match world {
        Some(w) if out.is_empty() => out.push(Check::pass(
            "configuration",
            "",
            format!(
                "valid: {} pools, {} L2Advertisements, {} BGPAdvertisements, {} BGPPeers",
                w.pools.len(),
                w.l2_advertisements.len(),
                w.bgp_advertisements.len(),
                w.peers.len()
            ),
        )),
        Some(_) => {}
        None if out.is_empty() => out.push(Check::fail(
            "configuration",
            "",
            "the configuration was rejected",
            "run `herald check` on it",
        )),
        None => {}
    }
    out
}

fn advertised(world: &World, pool: &Pool) -> bool {
    world
        .l2_advertisements
        .values()
        .any(|a| selects_pool(&a.pools, pool))
        || world
            .bgp_advertisements
            .values()
            .any(|a| selects_pool(&a.pools, pool))
}

fn pool_families(pool: &Pool) -> BTreeSet<Family> {
    pool.ranges.iter().map(|r| r.family()).collect()
}

fn family_list(families: &BTreeSet<Family>) -> String {
    if families.is_empty() {
        return "none".to_owned();
    }
    families
        .iter()
        .map(Family::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Pools no advertisement selects, and BGP advertisements whose peers cannot carry a family.
pub fn announcement(world: &World) -> Vec<Check> {
    let mut out = Vec::new();
    for pool in world.pools.values() {
        if advertised(world, pool) {
            out.push(Check::pass(
                "pool-advertised",
                pool.name.clone(),
                "an advertisement selects it",
            ));
        } else {
            out.push(Check::fail(
                "pool-advertised",
                pool.name.clone(),
                format!("no L2Advertisement or BGPAdvertisement selects pool {}, so its addresses are assigned to Services but never announced", pool.name),
                format!("add an L2Advertisement or BGPAdvertisement with ipAddressPools: [{}] (one without ipAddressPools or ipAddressPoolSelectors selects every pool)", pool.name),
            ));
        }
    }
    for adv in world.bgp_advertisements.values() {
        let peers: Vec<_> = world
            .peers
            .values()
            .filter(|p| adv.peers.is_empty() || adv.peers.contains(&p.name))
            .collect();
        for pool in world.pools.values().filter(|p| selects_pool(&adv.pools, p)) {
            for family in pool_families(pool) {
                let carrying: Vec<&str> = peers
                    .iter()
                    .filter(|p| p.families().contains(&family))
                    .map(|p| p.name.as_str())
                    .collect();
                let subject = format!("{}/{}/{family}", adv.name, pool.name);
                if !carrying.is_empty() {
                    out.push(Check::pass(
                        "peer-family",
                        subject,
                        format!("carried by {}", carrying.join(", ")),
                    ));
                } else if peers.is_empty() {
                    out.push(Check::fail(
                        "peer-family",
                        subject,
                        format!(
                            "BGPAdvertisement {} announces pool {} but targets no BGPPeer",
                            adv.name, pool.name
                        ),
                        "add a BGPPeer, or correct spec.peers of the BGPAdvertisement",
                    ));
                } else {
                    let sessions: Vec<String> = peers
                        .iter()
                        .map(|p| format!("{} carries {}", p.name, family_list(&p.families())))
                        .collect();
                    out.push(Check::fail(
                        "peer-family",
                        subject,
                        format!("BGPAdvertisement {} announces pool {}'s {family} addresses, but no peer it targets carries {family} ({})", adv.name, pool.name, sessions.join("; ")),
                        format!("set dualStackAddressFamily: true on the BGPPeer, or add a BGPPeer with an {family} peerAddress"),
                    ));
                }
            }
        }
    }
    out
}

/// What the cluster checks read through the API.
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// `networking.k8s.io/v1` ServiceCIDRs; `None` when the API does not serve them
    /// (before Kubernetes 1.33, or without the feature).
    pub service_cidrs: Option<Vec<IpNet>>,
    pub services: Vec<ServiceFacts>,
    /// Each Node's name and `spec.podCIDRs`.
    pub nodes: Vec<(String, Vec<IpNet>)>,
}

#[derive(Clone, Debug, Default)]
pub struct ServiceFacts {
    /// `namespace/name`.
    pub key: String,
    pub load_balancer: bool,
    pub class: Option<String>,
    /// `spec.ipFamilies`.
    pub families: Vec<Family>,
    /// `spec.ipFamilyPolicy`.
    pub policy: Option<String>,
    pub cluster_ips: Vec<IpAddr>,
    /// MetalLB's pool annotation.
    pub requested_pool: Option<String>,
}

fn family_named(name: &str) -> Option<Family> {
    match name {
        "IPv4" => Some(Family::Ipv4),
        "IPv6" => Some(Family::Ipv6),
        _ => None,
    }
}

impl ServiceFacts {
    fn from_service(s: &Service) -> ServiceFacts {
        let meta = &s.metadata;
        let spec = s.spec.clone().unwrap_or_default();
        let annotations = meta.annotations.clone().unwrap_or_default();
        ServiceFacts {
            key: format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or(""),
                meta.name.as_deref().unwrap_or("")
            ),
            load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            class: spec.load_balancer_class.clone(),
            families: spec
                .ip_families
                .iter()
                .flatten()
                .filter_map(|f| family_named(f))
                .collect(),
            policy: spec.ip_family_policy.clone(),
            cluster_ips: spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .collect(),
            requested_pool: annotations
                .get("metallb.io/address-pool")
                .or_else(|| annotations.get("metallb.universe.tf/address-pool"))
                .cloned(),
        }
    }
}

impl ClusterFacts {
    pub async fn gather(client: &kube::Client) -> Result<ClusterFacts, kube::Error> {
        let service_cidrs = match Api::<ServiceCIDR>::all(client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => Some(
                list.items
                    .iter()
                    .flat_map(|c| c.spec.iter().flat_map(|s| s.cidrs.iter().flatten()))
                    .filter_map(|c| c.parse().ok())
                    .collect(),
            ),
            // Not served here: fall back to the Services' cluster IPs.
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(e) => return Err(e),
        };
        let services = Api::<Service>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(ServiceFacts::from_service)
            .collect();
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| {
                let cidrs = n
                    .spec
                    .iter()
                    .flat_map(|s| s.pod_cidrs.iter().flatten().chain(s.pod_cidr.iter()))
                    .filter_map(|c| c.parse().ok())
                    .collect::<BTreeSet<IpNet>>();
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    cidrs.into_iter().collect(),
                )
            })
            .collect();
        Ok(ClusterFacts {
            service_cidrs,
            services,
            nodes,
        })
    }
}

/// The checks that need the cluster: its service CIDRs, its Nodes' pod CIDRs, and whether the
/// LoadBalancer Services of `lb_class` can get what they ask for.
pub fn api(facts: &ClusterFacts, world: &World, lb_class: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    let ours: Vec<&ServiceFacts> = facts
        .services
        .iter()
        .filter(|s| s.load_balancer && s.class.as_deref() == lb_class)
        .collect();

    // Which families the cluster gives Services.
    let (cluster, source) = match &facts.service_cidrs {
        Some(cidrs) if !cidrs.is_empty() => (
            cidrs
                .iter()
                .map(|c| Family::of(&c.addr()))
                .collect::<BTreeSet<_>>(),
            format!(
                "ServiceCIDRs {}",
                cidrs
                    .iter()
                    .map(IpNet::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        _ => (
            facts
                .services
                .iter()
                .flat_map(|s| s.cluster_ips.iter().map(Family::of))
                .collect(),
            "the cluster IPs of existing Services".to_owned(),
        ),
    };
    // Which families are wanted: by pools, and by Services.
    let mut wanted: BTreeSet<Family> = world.pools.values().flat_map(pool_families).collect();
    wanted.extend(ours.iter().flat_map(|s| s.families.iter().copied()));
    if cluster.is_empty() {
        out.push(Check::skip(
            "service-cidr",
            "",
            "no ServiceCIDR and no Service with a cluster IP: cannot tell the cluster's families",
        ));
    }
    for family in &wanted {
        if cluster.is_empty() {
            break;
        }
        if cluster.contains(family) {
            out.push(Check::pass(
                "service-cidr",
                family.to_string(),
                format!("the cluster has an {family} service CIDR ({source})"),
            ));
        } else {
            let example = match family {
                Family::Ipv6 => "10.96.0.0/16,fd00:10:96::/112",
                Family::Ipv4 => "fd00:10:96::/112,10.96.0.0/16",
            };
            out.push(Check::fail(
                "service-cidr",
                family.to_string(),
                format!("the cluster has no {family} service CIDR (judged from {source}), so no Service can have an {family} address and the pools' {family} addresses are never assigned"),
                format!("add an {family} range to --service-cluster-ip-range of the API server and the controller manager (e.g. {example}) or create a ServiceCIDR; then recreate the Services, as spec.ipFamilies cannot be changed on an existing one"),
            ));
        }
    }

    // Pods of each family: Nodes' podCIDRs.
    if wanted.contains(&Family::Ipv6) && !facts.nodes.is_empty() {
        if facts.nodes.iter().all(|(_, c)| c.is_empty()) {
            out.push(Check::skip(
                "pod-cidr",
                "",
                "no Node has spec.podCIDRs (the CNI assigns pod addresses itself): cannot tell whether pods get IPv6 addresses",
            ));
        } else {
            for (node, cidrs) in &facts.nodes {
                if cidrs.iter().any(|c| matches!(c, IpNet::V6(_))) {
                    out.push(Check::pass(
                        "pod-cidr",
                        node.clone(),
                        "has an IPv6 pod CIDR",
                    ));
                } else {
                    out.push(Check::fail(
                        "pod-cidr",
                        node.clone(),
                        format!("Node {node} has no IPv6 podCIDR ({}), so its pods get no IPv6 address and IPv6 Services have no endpoints there", cidrs.iter().map(IpNet::to_string).collect::<Vec<_>>().join(", ")),
                        "add an IPv6 range to --cluster-cidr of the controller manager (with --node-cidr-mask-size-ipv6) and re-create the Node object, or configure the CNI for dual-stack",
                    ));
                }
            }
        }
    }

    // Each LoadBalancer Service: a pool and an advertisement for every family it asks for.
    for svc in ours {
        let candidates: Vec<&Pool> = match &svc.requested_pool {
            Some(name) => world.pools.get(name).into_iter().collect(),
            None => world.pools.values().filter(|p| p.auto_assign).collect(),
        };
        let from = match &svc.requested_pool {
            Some(name) => format!("pool {name} (its metallb.io/address-pool annotation)"),
            None => "any auto-assigning pool".to_owned(),
        };
        let mut ok = true;
        for family in &svc.families {
            let providing: Vec<&&Pool> = candidates
                .iter()
                .filter(|p| p.has_family(*family))
                .collect();
            if providing.is_empty() {
                ok = false;
                out.push(Check::fail(
                    "service-family",
                    svc.key.clone(),
                    format!("asks for {family} (spec.ipFamilies), but {from} has no {family} addresses"),
                    format!("add an {family} range to a pool the Service can use, or create the Service without {family}"),
                ));
            } else if !providing.iter().any(|p| advertised(world, p)) {
                ok = false;
                out.push(Check::fail(
                    "service-family",
                    svc.key.clone(),
                    format!(
                        "its {family} address would come from {}, which no advertisement announces",
                        providing
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "add an L2Advertisement or BGPAdvertisement selecting that pool",
                ));
            }
        }
        if svc.policy.as_deref() == Some("RequireDualStack") {
            let both: Vec<&str> = candidates
                .iter()
                .filter(|p| p.has_family(Family::Ipv4) && p.has_family(Family::Ipv6))
                .map(|p| p.name.as_str())
                .collect();
            if both.is_empty() {
                ok = false;
                out.push(Check::fail(
                    "dual-stack",
                    svc.key.clone(),
                    format!("is RequireDualStack, but no single pool has both IPv4 and IPv6 addresses ({from}); both addresses of a Service come from one pool"),
                    "put an IPv4 and an IPv6 range in the same IPAddressPool",
                ));
            }
        }
        if ok {
            out.push(Check::pass(
                "service-family",
                svc.key.clone(),
                format!(
                    "a pool and an advertisement for {}",
                    family_list(&svc.families.iter().copied().collect())
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::Status;

    fn world(yaml: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, yaml).expect("write");
        crate::config::evaluate(&[file], None, model::file::UnknownFields::Error)
            .world
            .expect("valid")
    }

    const POOLS: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v4, namespace: metallb-system}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v6, namespace: metallb-system}
spec: {addresses: ['2001:db8::/124']}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [v4]}
";

    fn has(checks: &[Check], check: &str, subject: &str, status: Status) -> bool {
        checks
            .iter()
            .any(|c| c.check == check && c.subject == subject && c.status == status)
    }

    #[test]
    fn an_unselected_pool_fails() {
        let checks = announcement(&world(POOLS));
        assert!(
            has(&checks, "pool-advertised", "v4", Status::Pass),
            "{checks:#?}"
        );
        assert!(
            has(&checks, "pool-advertised", "v6", Status::Fail),
            "{checks:#?}"
        );
    }

    #[test]
    fn services_asking_for_what_no_pool_gives_fail() {
        let w = world(POOLS);
        let svc = |name: &str, families: &[Family], policy: &str| ServiceFacts {
            key: format!("default/{name}"),
            load_balancer: true,
            families: families.to_vec(),
            policy: Some(policy.into()),
            cluster_ips: vec!["10.96.0.10".parse().expect("ip")],
            ..Default::default()
        };
        let facts = ClusterFacts {
            service_cidrs: None,
            services: vec![
                svc("v4", &[Family::Ipv4], "SingleStack"),
                svc("both", &[Family::Ipv4, Family::Ipv6], "RequireDualStack"),
            ],
            nodes: vec![("n1".into(), vec!["10.244.0.0/24".parse().expect("net")])],
        };
        let checks = api(&facts, &w, None);
        assert!(
            has(&checks, "service-cidr", "IPv4", Status::Pass),
            "{checks:#?}"
        );
        assert!(
            has(&checks, "service-cidr", "IPv6", Status::Fail),
            "{checks:#?}"
        );
        assert!(has(&checks, "pod-cidr", "n1", Status::Fail), "{checks:#?}");
        assert!(
            has(&checks, "service-family", "default/v4", Status::Pass),
            "{checks:#?}"
        );
        assert!(
            has(&checks, "service-family", "default/both", Status::Fail),
            "{checks:#?}"
        );
        assert!(
            has(&checks, "dual-stack", "default/both", Status::Fail),
            "{checks:#?}"
        );
    }
}
