//! One object from the API, read into herald's type for its kind, or reported.
//!
//! The watches receive untyped objects and type each one here, so an object that does not fit
//! (a field of the wrong type, from a CRD that differs from herald's) is one diagnostic that
//! names it, while the rest of its kind keeps working. A typed watch would fail the whole list
//! on that one object, and keep failing.
//!
//! Only what herald reads of an object is kept: its name, namespace, uid, labels and
//! `metallb.*` annotations, and of a Service, EndpointSlice or Node only the fields the model
//! reads (a Service's type, class, traffic policy and ingress; an endpoint's node and
//! conditions; a Node's NetworkUnavailable condition, `spec.unschedulable` and deletion
//! timestamp, which say it is going away). So a store holds a small part of each
//! object, an update that changes nothing herald reads (a status heartbeat, an endpoint's
//! address) changes nothing in the store, and Services that are not LoadBalancers of herald's
//! class are dropped here, never held.

use crate::kinds::Kind;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DynamicObject;
use model::diag::{SECRET_VALUE_PROBLEM, isolated_kind, may_hold_secret};
use model::{Diagnostic, ResourceRef, Severity, Sourced};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What was made of one object.
#[derive(Clone)]
pub(crate) struct Read<K> {
    /// `None` when the object could not be read; `diagnostics` says why.
    pub object: Option<Sourced<K>>,
    /// How Events point at the object, whether it could be read or not.
    pub reference: ObjectReference,
    /// Why it could not be read (an error, or a warning for a Service, EndpointSlice or Node,
    /// which harm only themselves), and fields herald ignores (warnings).
    pub diagnostics: Vec<Diagnostic>,
}

/// Never shows the object: a Secret's data must not reach a log through it.
impl<K> std::fmt::Debug for Read<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("reference", &self.reference)
            .field("readable", &self.object.is_some())
            .field("diagnostics", &self.diagnostics)
            .finish()
    }
}

impl<K> Read<K> {
    pub fn resource_ref(&self) -> ResourceRef {
        ResourceRef {
            kind: self.reference.kind.clone().unwrap_or_default(),
            namespace: self.reference.namespace.clone(),
            name: self.reference.name.clone().unwrap_or_default(),
        }
    }

    /// Why it could not be read, in a few words (the error's field and problem).
    pub fn problem(&self) -> String {
        self.diagnostics
            .iter()
            .find(|d| d.severity != Severity::Note && self.object.is_none())
            .map(|d| {
                if d.field.is_empty() {
                    d.problem.clone()
                } else {
                    format!("{}: {}", d.field, d.problem)
                }
            })
            .unwrap_or_default()
    }
}

/// What the reader knows beyond the object: which Services are herald's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    /// The `loadBalancerClass` herald announces (`None`: Services without one).
    pub load_balancer_class: Option<String>,
}

impl Scope {
    /// Whether a Service, as the API server sent it, is a LoadBalancer of herald's class.
    /// Read from the untyped object, so an unreadable Service of another kind or class is
    /// dropped as quietly as a readable one.
    fn ours(&self, data: &Value) -> bool {
        let spec = &data["spec"];
        spec["type"].as_str() == Some("LoadBalancer")
            && spec["loadBalancerClass"].as_str() == self.load_balancer_class.as_deref()
    }
}

/// Reads one object of `kind` as `K`; `None` for a Service that is not herald's (not a
/// LoadBalancer, or of another class). Never panics, whatever the object holds.
pub(crate) fn read<K: DeserializeOwned>(
    kind: &Kind,
    scope: &Scope,
    object: DynamicObject,
) -> Option<Read<K>> {
    let DynamicObject { metadata, data, .. } = object;
    let kind_name = kind.resource.kind.as_str();
    if kind_name == "Service" && !scope.ours(&data) {
        return None;
    }
    let reference = ObjectReference {
        api_version: Some(kind.resource.api_version.clone()),
        kind: Some(kind.resource.kind.clone()),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone(),
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        field_path: None,
    };
    let resource = ResourceRef {
        kind: kind.resource.kind.clone(),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone().unwrap_or_default(),
    };
    let isolated = isolated_kind(kind_name);

    let mut fields = match data {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    // The type is the watch's, not the object's to choose; k8s-openapi types would reject
    // a served version they were not generated for.
    fields.remove("apiVersion");
    fields.remove("kind");
    if !kind.has_status || kind_name == "IPAddressPool" {
        // An IPAddressPool's status is MetalLB's controller's bookkeeping, rewritten at each
        // allocation; herald reads none of it.
        fields.remove("status");
    }
    if kind.spec_optional && fields.get("spec").is_none_or(Value::is_null) {
        fields.insert("spec".into(), Value::Object(Map::new()));
    }
    if isolated {
        fields = keep_read_fields(kind_name, fields);
    }
    let metadata = match serde_json::to_value(kept_metadata(kind_name, metadata)) {
        Ok(m) => m,
        Err(e) => {
            let problem = format!("the object's metadata cannot be read: {e}");
            let severity = if isolated {
                Severity::Warning
            } else {
                Severity::Error
            };
            let mut d = Diagnostic::error(resource, "metadata", problem);
            d.severity = severity;
            return Some(unreadable(reference, d));
        }
    };
    fields.insert("metadata".into(), metadata);

    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(model::file::ignored_path(&path));
    let ignoring = serde_ignored::Deserializer::new(Value::Object(fields), &mut record);
    Some(match serde_path_to_error::deserialize::<_, K>(ignoring) {
        Ok(object) => {
            let mut diagnostics = Vec::new();
            if kind.report_unknown_fields {
                unknown.retain(|f| !f.is_empty() && f != "metadata" && !f.starts_with("metadata."));
                unknown.sort();
                for field in unknown {
                    let name = field.rsplit('.').next().unwrap_or(&field).to_owned();
                    diagnostics.push(
                        Diagnostic::warning(
                            resource.clone(),
                            &field,
                            format!("herald does not read the field {name:?}; it is ignored"),
                        )
                        .value(name)
                        .fix("remove it, or check that this herald reads the MetalLB version whose CRD declares it"),
                    );
                }
            }
            Read {
                object: Some(Sourced::new(object)),
                reference,
                diagnostics,
            }
        }
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let problem = if may_hold_secret(kind_name, &field) {
                SECRET_VALUE_PROBLEM.to_owned()
            } else {
                format!("cannot be read: {}", e.into_inner())
            };
            let edit = format!(
                "kubectl edit {} {}{}",
                kind.resource.plural,
                resource.name,
                resource
                    .namespace
                    .as_deref()
                    .map(|ns| format!(" -n {ns}"))
                    .unwrap_or_default(),
            );
            let diagnostic = if isolated {
                Diagnostic::warning(resource, field, problem).fix(format!(
                    "correct the field ({edit}); until then herald skips this {kind_name}, \
                     and only it"
                ))
            } else {
                Diagnostic::error(resource, field, problem).fix(format!(
                    "correct the field ({edit}); until then the configuration is rejected and \
                     the last valid one stays in force"
                ))
            };
            unreadable(reference, diagnostic)
        }
    })
}

/// What herald reads of an object, as the API's JSON: [`read`] of it makes what `read` of the
/// whole object makes. An EndpointSlice of a Service that is not herald's is kept so (a few
/// hundred octets, where the read object takes kilo-octets) in case its Service becomes
/// herald's; most slices of a cluster are such.
pub(crate) fn compact(kind: &Kind, object: DynamicObject) -> Box<[u8]> {
    let DynamicObject { metadata, data, .. } = object;
    let kind_name = kind.resource.kind.as_str();
    let mut fields = match data {
        Value::Object(fields) if isolated_kind(kind_name) => keep_read_fields(kind_name, fields),
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    // Metadata that cannot be written as JSON is unreadable either way: `read` says so.
    if let Ok(m) = serde_json::to_value(kept_metadata(kind_name, metadata)) {
        fields.insert("metadata".into(), m);
    }
    serde_json::to_vec(&fields).unwrap_or_default().into()
}

/// The object [`compact`] kept, to be read.
pub(crate) fn expand(json: &[u8]) -> Option<DynamicObject> {
    serde_json::from_slice(json).ok()
}

/// The metadata herald reads: identity (with the resourceVersion), labels, `metallb.*`
/// annotations, and a Node's deletion timestamp (a Node being deleted is going away). The
/// rest (managed fields, last-applied configurations, owner references, other timestamps)
/// is often most of an object.
fn kept_metadata(kind: &str, metadata: ObjectMeta) -> ObjectMeta {
    let mut labels = metadata.labels;
    if kind == "EndpointSlice"
        && let Some(l) = labels.as_mut()
    {
        l.retain(|k, _| k == model::validate::SERVICE_NAME_LABEL);
    }
    let annotations = metadata.annotations.and_then(|mut a| {
        a.retain(|k, _| k.starts_with("metallb.io/") || k.starts_with("metallb.universe.tf/"));
        (!a.is_empty()).then_some(a)
    });
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        resource_version: metadata.resource_version,
        labels,
        annotations,
        deletion_timestamp: if kind == "Node" {
            metadata.deletion_timestamp
        } else {
            None
        },
        ..ObjectMeta::default()
    }
}

/// The fields of a Service, EndpointSlice or Node that the model reads, and nothing else.
fn keep_read_fields(kind: &str, mut fields: Map<String, Value>) -> Map<String, Value> {
    let mut take = |path: &[&str]| -> Option<Value> {
        let (last, parents) = path.split_last()?;
        let mut at = &mut fields;
        for p in parents {
            at = at.get_mut(*p)?.as_object_mut()?;
        }
        at.remove(*last)
    };
    let mut kept = Map::new();
    let put = |kept: &mut Map<String, Value>, path: &[&str], value: Option<Value>| {
        let Some(value) = value else { return };
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut at = kept;
        for p in parents {
            let entry = at
                .entry((*p).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Some(next) = entry.as_object_mut() else {
                return;
            };
            at = next;
        }
        at.insert((*last).to_owned(), value);
    };
    match kind {
        "Service" => {
            for path in [
                &["spec", "type"][..],
                &["spec", "loadBalancerClass"],
                &["spec", "externalTrafficPolicy"],
                &["status", "loadBalancer"],
            ] {
                let value = take(path);
                put(&mut kept, path, value);
            }
        }
        "EndpointSlice" => {
            let value = take(&["addressType"]);
            put(&mut kept, &["addressType"], value);
            let endpoints = match take(&["endpoints"]) {
                Some(Value::Array(list)) => Some(Value::Array(
                    list.into_iter()
                        .map(|mut e| {
                            let mut kept = Map::new();
                            if let Some(e) = e.as_object_mut() {
                                for key in ["nodeName", "conditions"] {
                                    if let Some(v) = e.remove(key) {
                                        kept.insert(key.into(), v);
                                    }
                                }
                            }
                            // Required by the type; herald reads no address.
                            kept.insert("addresses".into(), Value::Array(Vec::new()));
                            Value::Object(kept)
                        })
                        .collect(),
                )),
                // Whatever else it is, it is the type's to accept or refuse.
                other => other,
            };
            put(&mut kept, &["endpoints"], endpoints);
        }
        "Node" => {
            let conditions = match take(&["status", "conditions"]) {
                Some(Value::Array(list)) => Some(Value::Array(
                    list.into_iter()
                        .filter(|c| c["type"] == "NetworkUnavailable")
                        .map(|c| serde_json::json!({"type": c["type"], "status": c["status"]}))
                        .collect(),
                )),
                other => other,
            };
            put(&mut kept, &["status", "conditions"], conditions);
            // Cordoned: the node is going away.
            let unschedulable = take(&["spec", "unschedulable"]);
            put(&mut kept, &["spec", "unschedulable"], unschedulable);
        }
        _ => return fields,
    }
    kept
}

fn unreadable<K>(reference: ObjectReference, diagnostic: Diagnostic) -> Read<K> {
    Read {
        object: None,
        reference,
        diagnostics: vec![diagnostic],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{BGP_PEERS, L2_ADVERTISEMENTS, POOLS, SERVICES};
    use k8s_openapi::api::core::v1::Service;
    use model::Severity;
    use model::crd::{BGPPeer, IPAddressPool, L2Advertisement};
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("a DynamicObject")
    }

    fn read<K: DeserializeOwned>(kind: &Kind, object: DynamicObject) -> Read<K> {
        super::read(kind, &Scope::default(), object).expect("kept")
    }

    #[test]
    fn reads_a_pool_and_keeps_its_reference() {
        let r: Read<IPAddressPool> = read(
            &POOLS,
            dynamic(json!({
                "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                             "managedFields": [{"manager": "kubectl"}]},
                "spec": {"addresses": ["192.0.2.0/24"]},
                "status": {"assignedIPv4": 1},
            })),
        );
        let pool = r.object.expect("readable");
        assert_eq!(pool.object.spec.addresses, ["192.0.2.0/24"]);
        assert!(pool.object.metadata.managed_fields.is_none());
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        assert_eq!(r.reference.uid.as_deref(), Some("u1"));
        assert_eq!(
            r.reference.api_version.as_deref(),
            Some("metallb.io/v1beta1")
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_makes_the_object_unreadable_and_named() {
        let r: Read<IPAddressPool> = read(
            &POOLS,
            dynamic(json!({
                "metadata": {"name": "bad", "namespace": "ns"},
                "spec": {"addresses": "192.0.2.0/24"},
            })),
        );
        assert!(r.object.is_none());
        let d = &r.diagnostics[0];
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(d.resource.to_string(), "IPAddressPool ns/bad");
        assert_eq!(d.field, "spec.addresses");
        assert!(d.problem.contains("expected a sequence"), "{}", d.problem);
    }

    #[test]
    fn unknown_metallb_fields_are_warnings_and_empty_status_is_ignored() {
        let r: Read<L2Advertisement> = read(
            &L2_ADVERTISEMENTS,
            dynamic(json!({
                "metadata": {"name": "l2", "namespace": "ns", "somethingNew": 1},
                "spec": {"interfaces": ["eth0"], "futureField": true},
                "status": {},
            })),
        );
        assert!(r.object.is_some());
        let fields: Vec<(&str, Severity)> = r
            .diagnostics
            .iter()
            .map(|d| (d.field.as_str(), d.severity))
            .collect();
        assert_eq!(fields, [("spec.futureField", Severity::Warning)]);
    }

    #[test]
    fn a_missing_spec_means_defaults_where_metallb_allows_it() {
        let r: Read<L2Advertisement> = read(
            &L2_ADVERTISEMENTS,
            dynamic(json!({"metadata": {"name": "l2", "namespace": "ns"}})),
        );
        assert!(r.object.is_some(), "{:?}", r.diagnostics);
        let r: Read<BGPPeer> = read(
            &BGP_PEERS,
            dynamic(json!({"metadata": {"name": "p", "namespace": "ns"}})),
        );
        assert!(r.object.is_none());
        assert_eq!(r.diagnostics[0].field, "");
    }

    #[test]
    fn built_in_kinds_do_not_report_fields_newer_than_herald() {
        let r: Read<Service> = read(
            &SERVICES,
            dynamic(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "s", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "aFieldFromKubernetes2030": {}},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
            })),
        );
        assert!(r.object.is_some());
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    }

    #[test]
    fn odd_objects_never_panic() {
        for data in [
            json!({"metadata": {}}),
            json!({"metadata": {"name": "x"}, "spec": null}),
            json!({"metadata": {"name": "x"}, "spec": [1, 2]}),
            json!({"metadata": {"name": "x"}, "spec": {"myASN": -1}}),
            json!({"metadata": {"name": "x"}, "spec": {"peerPort": 70000, "nodeSelectors": "all"}}),
        ] {
            let _: Read<BGPPeer> = read(&BGP_PEERS, dynamic(data.clone()));
            let _: Read<IPAddressPool> = read(&POOLS, dynamic(data.clone()));
            let _: Option<Read<Service>> = super::read(&SERVICES, &Scope::default(), dynamic(data));
        }
    }

    #[test]
    fn services_that_are_not_ours_are_dropped_when_read() {
        let svc = |spec: Value| {
            dynamic(json!({"metadata": {"name": "s", "namespace": "d"}, "spec": spec}))
        };
        let ours = Scope::default();
        let gold = Scope {
            load_balancer_class: Some("gold".into()),
        };
        let read = |scope: &Scope, spec: Value| super::read::<Service>(&SERVICES, scope, svc(spec));
        assert!(read(&ours, json!({"type": "ClusterIP"})).is_none());
        assert!(read(&ours, json!({})).is_none());
        assert!(
            read(
                &ours,
                json!({"type": "LoadBalancer", "loadBalancerClass": "gold"})
            )
            .is_none()
        );
        assert!(read(&ours, json!({"type": "LoadBalancer"})).is_some());
        assert!(read(&gold, json!({"type": "LoadBalancer"})).is_none());
        assert!(
            read(
                &gold,
                json!({"type": "LoadBalancer", "loadBalancerClass": "gold"})
            )
            .is_some()
        );
        // Even when it cannot be read: only a LoadBalancer of ours is worth a warning.
        let bad = json!({"type": "ClusterIP", "externalTrafficPolicy": 5});
        assert!(read(&ours, bad).is_none());
        let bad = json!({"type": "LoadBalancer", "externalTrafficPolicy": 5});
        let odd = read(&ours, bad).expect("ours");
        assert!(odd.object.is_none());
        assert_eq!(odd.diagnostics[0].severity, Severity::Warning);
        assert_eq!(odd.diagnostics[0].field, "spec.externalTrafficPolicy");
        assert!(
            odd.problem()
                .starts_with("spec.externalTrafficPolicy: cannot be read"),
            "{}",
            odd.problem()
        );
        // A field herald does not read cannot make it unreadable: it is not kept at all.
        let fine = json!({"type": "LoadBalancer", "ports": "eighty"});
        assert!(read(&ours, fine).is_some_and(|r| r.object.is_some()));
    }

    #[test]
    fn only_what_herald_reads_is_kept() {
        let r: Read<Service> = read(
            &SERVICES,
            dynamic(json!({
                "metadata": {"name": "s", "namespace": "d", "uid": "u", "resourceVersion": "9",
                             "labels": {"app": "web"},
                             "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                             "metallb.io/address-pool": "p"},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "x"}]},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"},
                         "externalTrafficPolicy": "Local", "clusterIP": "10.0.0.1"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]},
                           "conditions": [{"type": "x", "status": "True"}]},
            })),
        );
        let svc = r.object.expect("readable").object;
        let m = &svc.metadata;
        assert_eq!(m.labels.as_ref().map(|l| l.len()), Some(1));
        let annotations: Vec<&String> = m.annotations.iter().flat_map(|a| a.keys()).collect();
        assert_eq!(annotations, ["metallb.io/address-pool"]);
        assert!(m.owner_references.is_none() && m.resource_version.as_deref() == Some("9"));
        let spec = svc.spec.as_ref().expect("a spec");
        assert!(spec.ports.is_none() && spec.selector.is_none() && spec.cluster_ip.is_none());
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        let status = svc.status.as_ref().expect("a status");
        assert!(status.conditions.is_none() && status.load_balancer.is_some());

        let r: Read<k8s_openapi::api::discovery::v1::EndpointSlice> = read(
            &crate::kinds::ENDPOINT_SLICES,
            dynamic(json!({
                "metadata": {"name": "s-1", "namespace": "d",
                             "labels": {"kubernetes.io/service-name": "s", "other": "x"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1", "zone": "a",
                               "conditions": {"ready": true},
                               "targetRef": {"kind": "Pod", "name": "p"}}],
                "ports": [{"port": 80}],
            })),
        );
        let slice = r.object.expect("readable").object;
        assert_eq!(slice.metadata.labels.as_ref().map(|l| l.len()), Some(1));
        let e = &slice.endpoints[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert!(e.addresses.is_empty() && e.zone.is_none() && e.target_ref.is_none());
        assert!(slice.ports.is_none());

        let r: Read<k8s_openapi::api::core::v1::Node> = read(
            &crate::kinds::NODES,
            dynamic(json!({
                "metadata": {"name": "n1", "labels": {"zone": "a"}},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": "2025-01-01T00:00:00Z"},
                    {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"}],
                    "images": [{"names": ["registry/big:1"], "sizeBytes": 1}]},
            })),
        );
        let node = r.object.expect("readable").object;
        let status = node.status.as_ref().expect("a status");
        assert!(status.images.is_none());
        let conditions = status.conditions.as_deref().unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            (
                conditions[0].type_.as_str(),
                conditions[0].reason.as_deref()
            ),
            ("NetworkUnavailable", None)
        );
        assert!(node.spec.is_none() && node.metadata.deletion_timestamp.is_none());

        // A node going away (cordoned, being deleted) keeps what says so.
        let r: Read<k8s_openapi::api::core::v1::Node> = read(
            &crate::kinds::NODES,
            dynamic(json!({
                "metadata": {"name": "n1", "deletionTimestamp": "2025-01-01T00:00:00Z",
                             "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"unschedulable": true, "podCIDR": "10.244.1.0/24"},
            })),
        );
        let node = r.object.expect("readable").object;
        assert!(node.metadata.deletion_timestamp.is_some());
        assert!(node.metadata.creation_timestamp.is_none());
        let spec = node.spec.as_ref().expect("a spec");
        assert_eq!(spec.unschedulable, Some(true));
        assert!(spec.pod_cidr.is_none());
    }

    #[test]
    fn a_secret_value_is_never_quoted_in_a_diagnostic() {
        let r: Read<BGPPeer> = read(
            &BGP_PEERS,
            dynamic(json!({"metadata": {"name": "p", "namespace": "ns"},
                           "spec": {"myASN": 1, "peerAddress": "192.0.2.1", "password": 73314159}})),
        );
        let d = &r.diagnostics[0];
        assert_eq!(d.field, "spec.password");
        assert!(!d.to_string().contains("73314159"), "{d}");
        let r: Read<k8s_openapi::api::core::v1::Secret> = read(
            &crate::kinds::SECRETS,
            dynamic(json!({"metadata": {"name": "s", "namespace": "ns"},
                           "data": {"password": "not base64 !hunter2"}})),
        );
        let shown = format!("{r:?} {}", r.diagnostics[0]);
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
