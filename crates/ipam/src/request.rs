//! What the allocator needs to know of a Service, read from its fields and annotations by the
//! caller (the Kubernetes crate or the file loader), so this crate stays free of API types.

use model::world::{Family, Labels, ServiceRef};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// The annotations MetalLB reads and writes on Services, stable spelling first.
pub mod annotations {
    pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
    pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
    pub const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
    pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
    pub const DEPRECATED_PREFIX: &str = "metallb.universe.tf/";
    pub const DEPRECATED_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
    pub const DEPRECATED_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
    pub const DEPRECATED_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
}

/// `spec.ipFamilyPolicy`; unset means SingleStack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum FamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl FamilyPolicy {
    /// The API's spelling; anything else reads as SingleStack, as MetalLB reads it.
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("PreferDualStack") => Self::PreferDualStack,
            Some("RequireDualStack") => Self::RequireDualStack,
            _ => Self::SingleStack,
        }
    }
}

impl fmt::Display for FamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SingleStack => "SingleStack",
            Self::PreferDualStack => "PreferDualStack",
            Self::RequireDualStack => "RequireDualStack",
        })
    }
}

/// The family of a set of addresses, as MetalLB's `ipfamily` package decides it: one address
/// is its family, two of different families are dual-stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stack {
    Single(Family),
    Dual,
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stack::Single(family) => write!(f, "{family}"),
            Stack::Dual => f.write_str("dual-stack"),
        }
    }
}

impl Stack {
    /// The stack of `ips`: one address, or two of different families.
    pub fn of(ips: &[IpAddr]) -> Result<Stack, String> {
        match ips {
            [one] => Ok(Stack::Single(Family::of(one))),
            [a, b] if Family::of(a) != Family::of(b) => Ok(Stack::Dual),
            [a, b] => Err(format!(
                "{a} and {b} are both {}: two addresses must be one IPv4 and one IPv6",
                Family::of(a)
            )),
            [] => Err("no address".into()),
            more => Err(format!(
                "{} addresses: a Service has one, or one of each family",
                more.len()
            )),
        }
    }

    pub fn has(&self, family: Family) -> bool {
        match self {
            Stack::Single(f) => *f == family,
            Stack::Dual => true,
        }
    }
}

/// One port of a Service, as sharing compares them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Port {
    pub protocol: String,
    pub port: i32,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// A Service as allocation sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub key: ServiceRef,
    pub labels: Labels,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.clusterIPs`, else `[spec.clusterIP]`; empty when the API server set neither.
    pub cluster_ips: Vec<String>,
    /// `spec.ipFamilies`, in order.
    pub ip_families: Vec<Family>,
    pub policy: FamilyPolicy,
    /// The `metallb.io/loadBalancerIPs` annotation (else the deprecated spelling), as written.
    pub load_balancer_ips: Option<String>,
    /// `spec.loadBalancerIP` (deprecated by Kubernetes), when not empty.
    pub load_balancer_ip: Option<String>,
    /// The `metallb.io/address-pool` annotation (else the deprecated spelling).
    pub address_pool: Option<String>,
    /// The `metallb.io/allow-shared-ip` annotation (else the deprecated one); empty: no sharing.
    pub sharing_key: String,
    /// Under `externalTrafficPolicy: Local`, the selector as `k=v,...`; empty otherwise:
    /// Services sharing an address under Local must select the same pods.
    pub backend_key: String,
    pub ports: Vec<Port>,
    /// The addresses in `status.loadBalancer.ingress[].ip`, as written, empty ones left out.
    pub ingress: Vec<String>,
    /// Annotations the Service carries in the deprecated `metallb.universe.tf/` spelling.
    pub deprecated_annotations: Vec<String>,
    /// The `metallb.io/ip-allocated-from-pool` annotation it carries now.
    pub allocated_from_pool: Option<String>,
}

impl Request {
    /// A LoadBalancer Service with defaults a test can adjust.
    pub fn new(namespace: &str, name: &str) -> Self {
        Request {
            key: ServiceRef {
                namespace: namespace.into(),
                name: name.into(),
            },
            labels: Labels::new(),
            is_load_balancer: true,
            cluster_ips: Vec::new(),
            ip_families: Vec::new(),
            policy: FamilyPolicy::SingleStack,
            load_balancer_ips: None,
            load_balancer_ip: None,
            address_pool: None,
            sharing_key: String::new(),
            backend_key: String::new(),
            ports: Vec::new(),
            ingress: Vec::new(),
            deprecated_annotations: Vec::new(),
            allocated_from_pool: None,
        }
    }

    /// The stack of the Service's cluster IPs (MetalLB's `ipfamily.ForService`).
    pub fn cluster_stack(&self) -> Result<Stack, String> {
        let ips: Result<Vec<IpAddr>, String> = self
            .cluster_ips
            .iter()
            .map(|s| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("cluster IP {s:?} is not an address"))
            })
            .collect();
        Stack::of(&ips?).map_err(|e| format!("clusterIPs {:?}: {e}", self.cluster_ips))
    }

    /// The family the Service prefers: `ipFamilies[0]`, IPv4 when unset (MetalLB's rule).
    pub fn primary_family(&self) -> Family {
        self.ip_families.first().copied().unwrap_or(Family::Ipv4)
    }

    /// The addresses the Service asks for, from the annotation or `spec.loadBalancerIP`, in
    /// the order written; `Ok(None)` when it asks for none.
    pub fn requested_ips(&self) -> Result<Option<(Vec<IpAddr>, Stack)>, String> {
        match (&self.load_balancer_ips, &self.load_balancer_ip) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(format!(
                "service can not have both {} and svc.Spec.LoadBalancerIP",
                annotations::LOAD_BALANCER_IPS
            )),
            (Some(list), None) => {
                let mut ips = Vec::new();
                for part in list.split(',') {
                    match part.trim().parse::<IpAddr>() {
                        Ok(ip) => ips.push(ip),
                        Err(_) => {
                            return Err(format!(
                                "invalid {}: {list:?} ({:?} is not an address)",
                                annotations::LOAD_BALANCER_IPS,
                                part.trim()
                            ));
                        }
                    }
                }
                let stack = Stack::of(&ips)
                    .map_err(|e| format!("{} {list:?}: {e}", annotations::LOAD_BALANCER_IPS))?;
                Ok(Some((ips, stack)))
            }
            (None, Some(one)) => match one.trim().parse::<IpAddr>() {
                Ok(ip) => Ok(Some((vec![ip], Stack::Single(Family::of(&ip))))),
                Err(_) => Err(format!("invalid spec.loadBalancerIP {one:?}")),
            },
        }
    }
}
