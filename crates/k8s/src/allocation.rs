//! The controller's side of the API: Services read into [`ipam::Request`]s, and what
//! allocation decides written back: Service status and the `metallb.io/ip-allocated-from-pool`
//! annotation in one conditional write, IPAddressPool status, the controller's
//! ConfigurationState, and Events with MetalLB's reasons.

use ipam::{Outcome, PoolCounters, Request, annotations as ann};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use model::crd::IPAddressPool;
use model::world::{Family, ServiceRef};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What allocation needs of a Service, from its spec, annotations and status.
pub fn request_of(svc: &Service) -> Request {
    let meta = &svc.metadata;
    let annotations = meta.annotations.clone().unwrap_or_default();
    let annotation = |stable: &str, deprecated: &str| {
        annotations
            .get(stable)
            .or_else(|| annotations.get(deprecated))
            .cloned()
    };
    let spec = svc.spec.clone().unwrap_or_default();
    let mut cluster_ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if cluster_ips.is_empty()
        && let Some(ip) = spec.cluster_ip.as_ref().filter(|s| !s.is_empty())
    {
        cluster_ips.push(ip.clone());
    }
    let ip_families = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::Ipv4),
            "IPv6" => Some(Family::Ipv6),
            _ => None,
        })
        .collect();
    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        let selector = spec.selector.clone().unwrap_or_default();
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| ipam::Port {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.port,
        })
        .collect();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().filter(|ip| !ip.is_empty()))
        .collect();
    Request {
        key: ServiceRef {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
        },
        labels: meta.labels.clone().unwrap_or_default(),
        is_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
        cluster_ips,
        ip_families,
        policy: ipam::FamilyPolicy::parse(spec.ip_family_policy.as_deref()),
        load_balancer_ips: annotation(ann::LOAD_BALANCER_IPS, ann::DEPRECATED_LOAD_BALANCER_IPS),
        load_balancer_ip: spec.load_balancer_ip.clone().filter(|s| !s.is_empty()),
        address_pool: annotation(ann::ADDRESS_POOL, ann::DEPRECATED_ADDRESS_POOL),
        sharing_key: annotation(ann::ALLOW_SHARED_IP, ann::DEPRECATED_ALLOW_SHARED_IP)
            .unwrap_or_default(),
        backend_key,
        ports,
        ingress,
        deprecated_annotations: annotations
            .keys()
            .filter(|k| k.starts_with(ann::DEPRECATED_PREFIX))
            .cloned()
            .collect(),
        allocated_from_pool: annotations.get(ann::ALLOCATED_FROM_POOL).cloned(),
    }
}

/// Whether the controller serves `svc`: MetalLB's `loadBalancerClass` rule (no class unless
/// `--lb-class` names one, then exactly that class).
pub fn is_our_class(svc: &Service, class: Option<&str>) -> bool {
    let theirs = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref());
    theirs == class
}

/// The merge patch of the status subresource that makes the Service carry `outcome`,
/// conditional on `resource_version` (a lost race is a 409, and the Service is converged
/// again from what changed it). The annotation goes in the same write, as MetalLB's status
/// update carries it.
pub fn status_patch(outcome: &Outcome, resource_version: Option<&str>) -> Value {
    let ingress: Vec<Value> = outcome
        .ingress
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    let mut meta = json!({"annotations": {ann::ALLOCATED_FROM_POOL: outcome.pool}});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    json!({
        "metadata": meta,
        "status": {"loadBalancer": {"ingress": if ingress.is_empty() { Value::Null } else { Value::Array(ingress) }}},
    })
}

/// Writes a Service's status (and the pool annotation): one request.
pub async fn write_service_status(
    client: &Client,
    key: &ServiceRef,
    patch: &Value,
) -> Result<Service, kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &key.namespace);
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// MetalLB's IPAddressPool status from the allocator's counters.
pub fn pool_status(c: &PoolCounters) -> Value {
    json!({"status": {
        "assignedIPv4": c.assigned_ipv4,
        "assignedIPv6": c.assigned_ipv6,
        "availableIPv4": c.available_ipv4,
        "availableIPv6": c.available_ipv6,
    }})
}

pub async fn write_pool_status(
    client: &Client,
    namespace: &str,
    pool: &str,
    counters: &PoolCounters,
) -> Result<(), kube::Error> {
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        pool,
        &PatchParams::default(),
        &Patch::Merge(pool_status(counters)),
    )
    .await
    .map(|_| ())
}

/// The controller's ConfigurationState (`controller`, labelled
/// `metallb.io/component-type: controller`) with MetalLB's `poolReconcilerValid` condition:
/// `Valid` with no errors, else `Invalid` with the errors as the summary.
pub async fn write_configuration_state(
    client: &Client,
    namespace: &str,
    errors: &[String],
) -> Result<(), kube::Error> {
    // Untyped: MetalLB's ConfigurationState has no spec, which the typed form requires.
    let resource = kube::core::ApiResource::erase::<model::status::ConfigurationState>(&());
    let api: Api<kube::core::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let valid = errors.is_empty();
    let summary = errors.join("\n");
    let condition = json!({
        "type": "poolReconcilerValid",
        "status": if valid { "True" } else { "False" },
        "reason": if valid { "Reconciled" } else { "ConfigurationError" },
        "message": summary,
        "lastTransitionTime": now,
    });
    let object = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {
            "name": "controller",
            "namespace": namespace,
            "labels": {model::status::LABEL_COMPONENT_TYPE: "controller"},
        },
    });
    let params = PatchParams::apply("herald-controller").force();
    api.patch("controller", &params, &Patch::Apply(&object))
        .await?;
    let status = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": "controller", "namespace": namespace},
        "status": {
            "result": if valid { "Valid" } else { "Invalid" },
            "errorSummary": if valid { Value::Null } else { json!(summary) },
            "conditions": [condition],
        },
    });
    api.patch_status("controller", &params, &Patch::Apply(&status))
        .await
        .map(|_| ())
}

/// The namespaces' labels, for `serviceAllocation.namespaceSelectors`.
pub type NamespaceLabels = BTreeMap<String, model::world::Labels>;

#[cfg(test)]
mod tests {
    use super::*;

    fn service(v: Value) -> Service {
        serde_json::from_value(v).expect("a Service")
    }

    #[test]
    fn a_service_reads_as_metallb_reads_it() {
        let s = service(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                "annotations": {
                    "metallb.universe.tf/address-pool": "old",
                    "metallb.universe.tf/allow-shared-ip": "k",
                    "metallb.io/loadBalancerIPs": "192.0.2.1,2001:db8::1",
                    "metallb.io/ip-allocated-from-pool": "old",
                }},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10", "fd00::a"], "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "RequireDualStack", "externalTrafficPolicy": "Local",
                "selector": {"b": "2", "a": "1"},
                "ports": [{"port": 80, "protocol": "UDP"}, {"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "x"}]}},
        }));
        let r = request_of(&s);
        assert_eq!(r.key.to_string(), "shop/web");
        assert!(r.is_load_balancer);
        assert_eq!(r.cluster_ips, ["10.96.0.10", "fd00::a"]);
        assert_eq!(r.ip_families, [Family::Ipv4, Family::Ipv6]);
        assert_eq!(r.policy, ipam::FamilyPolicy::RequireDualStack);
        assert_eq!(r.address_pool.as_deref(), Some("old"));
        assert_eq!(r.sharing_key, "k");
        assert_eq!(r.backend_key, "a=1,b=2");
        assert_eq!(r.ports.len(), 2);
        assert_eq!(r.ports[0].to_string(), "UDP/80");
        assert_eq!(r.ports[1].to_string(), "TCP/443");
        assert_eq!(r.ingress, ["192.0.2.1"]);
        assert_eq!(
            r.load_balancer_ips.as_deref(),
            Some("192.0.2.1,2001:db8::1")
        );
        assert_eq!(r.allocated_from_pool.as_deref(), Some("old"));
        assert_eq!(
            r.deprecated_annotations,
            [
                "metallb.universe.tf/address-pool",
                "metallb.universe.tf/allow-shared-ip"
            ]
        );
    }

    #[test]
    fn cluster_policy_keeps_no_backend_key_and_class_filters() {
        let s = service(json!({
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "selector": {"a": "1"},
                     "loadBalancerClass": "other"},
        }));
        let r = request_of(&s);
        assert_eq!(r.backend_key, "");
        assert_eq!(r.cluster_ips, ["10.96.0.10"]);
        assert!(!is_our_class(&s, None));
        assert!(is_our_class(&s, Some("other")));
    }

    #[test]
    fn the_status_write_carries_the_annotation_and_a_precondition() {
        let out = Outcome {
            ingress: vec!["192.0.2.1".parse().unwrap()],
            pool: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(
            status_patch(&out, Some("42")),
            json!({"metadata": {"resourceVersion": "42",
                       "annotations": {"metallb.io/ip-allocated-from-pool": "p"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
        );
        let cleared = status_patch(&Outcome::default(), None);
        assert_eq!(
            cleared,
            json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": null}},
                   "status": {"loadBalancer": {"ingress": null}}})
        );
    }
}
