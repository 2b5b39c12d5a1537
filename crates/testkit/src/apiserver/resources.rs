//! The one table of resources the server serves, and the discovery documents built from it.
//! Adding a kind is adding a row here; no handler knows any kind by name.

use serde_json::{Value, json};

/// What the `status` subresource does, which also decides what create keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatusSub {
    None,
    /// A `status` subresource; create keeps the status it is given (Nodes, Namespaces).
    Keep,
    /// A `status` subresource; create drops the status (Services, custom resources).
    Reset,
}

#[derive(Debug)]
pub struct ResourceDef {
    /// "" for the core group.
    pub group: &'static str,
    /// Served versions; the first is the preferred one. Objects are stored once, whatever the
    /// version they were written in.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub status: StatusSub,
    pub categories: &'static [&'static str],
    /// Served as a view of the objects of the same plural in another group, with top-level
    /// fields renamed (stored name, served name): core v1 Events are events.k8s.io Events.
    pub view_of: Option<(&'static str, &'static [(&'static str, &'static str)])>,
}

impl ResourceDef {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// How error messages name the resource: `services`, `ipaddresspools.metallb.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

// A row of the table, positionally, so the table reads as one line per kind.
#[allow(clippy::too_many_arguments)]
const fn def(
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    status: StatusSub,
) -> ResourceDef {
    ResourceDef {
        group,
        versions,
        plural,
        singular,
        kind,
        short_names,
        namespaced,
        status,
        categories: &[],
        view_of: None,
    }
}

const V1: &[&str] = &["v1"];
const MLB: &[&str] = &["v1beta1"];
const NS: bool = true;
const CLUSTER: bool = false;
use StatusSub::{Keep, None as NoStatus, Reset};

pub static RESOURCES: &[ResourceDef] = &[
    def(
        "",
        V1,
        "namespaces",
        "namespace",
        "Namespace",
        &["ns"],
        CLUSTER,
        Keep,
    ),
    def("", V1, "nodes", "node", "Node", &["no"], CLUSTER, Keep),
    ResourceDef {
        categories: &["all"],
        ..def(
            "",
            V1,
            "services",
            "service",
            "Service",
            &["svc"],
            NS,
            Reset,
        )
    },
    def(
        "",
        V1,
        "endpoints",
        "endpoints",
        "Endpoints",
        &["ep"],
        NS,
        NoStatus,
    ),
    def("", V1, "secrets", "secret", "Secret", &[], NS, NoStatus),
    def(
        "",
        V1,
        "configmaps",
        "configmap",
        "ConfigMap",
        &["cm"],
        NS,
        NoStatus,
    ),
    ResourceDef {
        view_of: Some(("events.k8s.io", CORE_EVENT_FIELDS)),
        ..def("", V1, "events", "event", "Event", &["ev"], NS, NoStatus)
    },
    ResourceDef {
        categories: &["all"],
        ..def("", V1, "pods", "pod", "Pod", &["po"], NS, Keep)
    },
    def(
        "coordination.k8s.io",
        V1,
        "leases",
        "lease",
        "Lease",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "discovery.k8s.io",
        V1,
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "events.k8s.io",
        V1,
        "events",
        "event",
        "Event",
        &["ev"],
        NS,
        NoStatus,
    ),
    def(
        "metallb.io",
        MLB,
        "ipaddresspools",
        "ipaddresspool",
        "IPAddressPool",
        &[],
        NS,
        Reset,
    ),
    def(
        "metallb.io",
        MLB,
        "l2advertisements",
        "l2advertisement",
        "L2Advertisement",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "metallb.io",
        MLB,
        "bgpadvertisements",
        "bgpadvertisement",
        "BGPAdvertisement",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "metallb.io",
        &["v1beta2", "v1beta1"],
        "bgppeers",
        "bgppeer",
        "BGPPeer",
        &[],
        NS,
        Reset,
    ),
    def(
        "metallb.io",
        MLB,
        "communities",
        "community",
        "Community",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "metallb.io",
        MLB,
        "bfdprofiles",
        "bfdprofile",
        "BFDProfile",
        &[],
        NS,
        NoStatus,
    ),
    def(
        "metallb.io",
        MLB,
        "servicel2statuses",
        "servicel2status",
        "ServiceL2Status",
        &[],
        NS,
        Reset,
    ),
    def(
        "metallb.io",
        MLB,
        "servicebgpstatuses",
        "servicebgpstatus",
        "ServiceBGPStatus",
        &[],
        NS,
        Reset,
    ),
];

/// events.k8s.io/v1 Event fields and their core v1 names; the rest are the same.
const CORE_EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// The row whose storage holds the objects served by row `res`.
pub fn storage_of(res: usize) -> usize {
    let d = &RESOURCES[res];
    d.view_of
        .and_then(|(group, _)| {
            RESOURCES
                .iter()
                .position(|s| s.group == group && s.plural == d.plural)
        })
        .unwrap_or(res)
}

fn rename(obj: &mut Value, pairs: &[(&str, &str)], to_served: bool) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (stored, served) in pairs {
        let (from, to) = if to_served {
            (stored, served)
        } else {
            (served, stored)
        };
        if let Some(v) = map.remove(*from) {
            map.insert(to.to_string(), v);
        }
    }
}

/// A stored object as row `res` serves it, in `version`.
pub fn to_served(res: usize, version: &str, mut obj: Value) -> Value {
    let d = &RESOURCES[res];
    if let Some((_, pairs)) = d.view_of {
        rename(&mut obj, pairs, true);
    }
    obj["apiVersion"] = json!(d.api_version(version));
    obj["kind"] = json!(d.kind);
    obj
}

/// An object written through row `res`, as its storage row keeps it.
pub fn to_storage(res: usize, mut obj: Value) -> Value {
    let d = &RESOURCES[res];
    let Some((_, pairs)) = d.view_of else {
        return obj;
    };
    // Type errors are the served type's, so check them before the object changes type.
    let fits = obj["apiVersion"]
        .as_str()
        .is_none_or(|av| d.versions.iter().any(|v| d.api_version(v) == av))
        && obj["kind"].as_str().is_none_or(|k| k == d.kind);
    if !fits {
        return obj;
    }
    rename(&mut obj, pairs, false);
    let s = &RESOURCES[storage_of(res)];
    if let Some(map) = obj.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        map.insert("apiVersion".into(), json!(s.api_version(s.versions[0])));
        map.insert("kind".into(), json!(s.kind));
    }
    obj
}

/// Groups in discovery order (the core group is served under `/api`), each with its versions,
/// preferred first.
pub static GROUPS: &[(&str, &[&str])] = &[
    ("", V1),
    ("coordination.k8s.io", V1),
    ("discovery.k8s.io", V1),
    ("events.k8s.io", V1),
    ("metallb.io", &["v1beta2", "v1beta1"]),
];

/// The table row serving `plural` in `group/version`, with the version as a static str.
pub fn find(group: &str, version: &str, plural: &str) -> Option<(usize, &'static str)> {
    RESOURCES.iter().enumerate().find_map(|(i, d)| {
        let v = d.versions.iter().find(|v| **v == version)?;
        (d.group == group && d.plural == plural).then_some((i, *v))
    })
}

pub fn group_served(group: &str, version: &str) -> bool {
    GROUPS
        .iter()
        .any(|(g, vs)| *g == group && vs.contains(&version))
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for d in RESOURCES
        .iter()
        .filter(|d| d.group == group && d.versions.contains(&version))
    {
        resources.push(json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": VERBS,
            "shortNames": d.short_names,
            "categories": d.categories,
        }));
        if d.status != StatusSub::None {
            resources.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
        "resources": resources,
    })
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

pub fn api_group(group: &str) -> Option<Value> {
    let (_, versions) = GROUPS.iter().find(|(g, _)| *g == group && !g.is_empty())?;
    let mut doc = group_doc(group, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-herald-testkit",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 index. kubectl reads it only to learn that PATCH takes `fieldValidation`;
/// without it, `kubectl create -f` fails with "failed to download openapi".
pub fn openapi_v3_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, vs) in GROUPS {
        for v in *vs {
            let p = gv_path(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=0")}),
            );
        }
    }
    json!({ "paths": paths })
}

/// A skeletal OpenAPI v3 document for one group/version: each object's path with a PATCH
/// operation that names its kind and accepts `fieldValidation`. No schemas: objects are
/// stored as given, so kubectl's strict validation is not enforced.
pub fn openapi_v3(group: &str, version: &str) -> Option<Value> {
    if !group_served(group, version) {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for d in RESOURCES
        .iter()
        .filter(|d| d.group == group && d.versions.contains(&version))
    {
        let ns = if d.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let op = json!({
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": d.kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(
            format!("/{}/{ns}{}/{{name}}", gv_path(group, version), d.plural),
            json!({"patch": op}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
