//! One object from the API, read into herald's type for its kind, or reported.
//!
//! The watches receive untyped objects and type each one here, so an object that does not fit
//! (a field of the wrong type, from a CRD that differs from herald's) is one diagnostic that
//! names it, while the rest of its kind keeps working. A typed watch would fail the whole list
//! on that one object, and keep failing.

use crate::kinds::Kind;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DynamicObject;
use model::{Diagnostic, ResourceRef, Sourced};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What was made of one object.
#[derive(Clone, Debug)]
pub(crate) struct Read<K> {
    /// `None` when the object could not be read; `diagnostics` says why.
    pub object: Option<Sourced<K>>,
    /// How Events point at the object, whether it could be read or not.
    pub reference: ObjectReference,
    /// Why it could not be read (an error), and fields herald ignores (warnings).
    pub diagnostics: Vec<Diagnostic>,
}

impl<K> Read<K> {
    pub fn resource_ref(&self) -> ResourceRef {
        ResourceRef {
            kind: self.reference.kind.clone().unwrap_or_default(),
            namespace: self.reference.namespace.clone(),
            name: self.reference.name.clone().unwrap_or_default(),
        }
    }
}

/// Reads one object of `kind` as `K`. Never panics, whatever the object holds.
pub(crate) fn read<K: DeserializeOwned>(kind: &Kind, object: DynamicObject) -> Read<K> {
    let DynamicObject {
        mut metadata, data, ..
    } = object;
    // Written by the server for its own bookkeeping, often the larger part of an object,
    // and read by nobody here.
    metadata.managed_fields = None;
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

    let mut fields = match data {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    // The type is the watch's, not the object's to choose; k8s-openapi types would reject
    // a served version they were not generated for.
    fields.remove("apiVersion");
    fields.remove("kind");
    if !kind.has_status {
        fields.remove("status");
    }
    if kind.spec_optional && fields.get("spec").is_none_or(Value::is_null) {
        fields.insert("spec".into(), Value::Object(Map::new()));
    }
    let metadata = match serde_json::to_value(&metadata) {
        Ok(m) => m,
        Err(e) => {
            let problem = format!("the object's metadata cannot be read: {e}");
            return unreadable(reference, Diagnostic::error(resource, "metadata", problem));
        }
    };
    fields.insert("metadata".into(), metadata);

    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(model::file::ignored_path(&path));
    let ignoring = serde_ignored::Deserializer::new(Value::Object(fields), &mut record);
    match serde_path_to_error::deserialize::<_, K>(ignoring) {
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
            let problem = format!("cannot be read: {}", e.into_inner());
            let fix = format!(
                "correct the field (kubectl edit {} {}{}); until then the configuration is \
                 rejected and the last valid one stays in force",
                kind.resource.plural,
                resource.name,
                resource
                    .namespace
                    .as_deref()
                    .map(|ns| format!(" -n {ns}"))
                    .unwrap_or_default(),
            );
            let diagnostic = Diagnostic::error(resource, field, problem).fix(fix);
            unreadable(reference, diagnostic)
        }
    }
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
            let _: Read<Service> = read(&SERVICES, dynamic(data));
        }
    }
}
