//! The one table of resources the server serves, and the discovery documents built from it.
//! Adding a kind is adding a row here; no handler knows any kind by name.

use serde_json::{Value, json};
use std::sync::LazyLock;

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

#[rustfmt::skip]
pub static RESOURCES: &[ResourceDef] = &[
    def("", V1, "namespaces", "namespace", "Namespace", &["ns"], CLUSTER, Keep),
    def("", V1, "nodes", "node", "Node", &["no"], CLUSTER, Keep),
    ResourceDef { categories: &["all"], ..def("", V1, "services", "service", "Service", &["svc"], NS, Reset) },
    def("", V1, "endpoints", "endpoints", "Endpoints", &["ep"], NS, NoStatus),
    def("", V1, "secrets", "secret", "Secret", &[], NS, NoStatus),
    def("", V1, "configmaps", "configmap", "ConfigMap", &["cm"], NS, NoStatus),
    ResourceDef {
        view_of: Some(("events.k8s.io", CORE_EVENT_FIELDS)),
        ..def("", V1, "events", "event", "Event", &["ev"], NS, NoStatus)
    },
    ResourceDef { categories: &["all"], ..def("", V1, "pods", "pod", "Pod", &["po"], NS, Keep) },
    def("coordination.k8s.io", V1, "leases", "lease", "Lease", &[], NS, NoStatus),
    def("discovery.k8s.io", V1, "endpointslices", "endpointslice", "EndpointSlice", &[], NS, NoStatus),
    def("events.k8s.io", V1, "events", "event", "Event", &["ev"], NS, NoStatus),
    // What herald's deploy/ manifests hold, so tests can `kubectl apply` them (no controller
    // acts on them here: a DaemonSet runs no pods).
    def("", V1, "serviceaccounts", "serviceaccount", "ServiceAccount", &["sa"], NS, NoStatus),
    def("apps", V1, "daemonsets", "daemonset", "DaemonSet", &["ds"], NS, Reset),
    def("apps", V1, "deployments", "deployment", "Deployment", &["deploy"], NS, Reset),
    def("rbac.authorization.k8s.io", V1, "clusterroles", "clusterrole", "ClusterRole", &[], CLUSTER, NoStatus),
    def("rbac.authorization.k8s.io", V1, "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", &[], CLUSTER, NoStatus),
    def("rbac.authorization.k8s.io", V1, "roles", "role", "Role", &[], NS, NoStatus),
    def("rbac.authorization.k8s.io", V1, "rolebindings", "rolebinding", "RoleBinding", &[], NS, NoStatus),
    def("apiextensions.k8s.io", V1, "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", &["crd", "crds"], CLUSTER, Reset),
    def("monitoring.coreos.com", V1, "servicemonitors", "servicemonitor", "ServiceMonitor", &["smon"], NS, NoStatus),
    def("monitoring.coreos.com", V1, "prometheusrules", "prometheusrule", "PrometheusRule", &["promrule"], NS, NoStatus),
    def("metallb.io", MLB, "ipaddresspools", "ipaddresspool", "IPAddressPool", &[], NS, Reset),
    def("metallb.io", MLB, "l2advertisements", "l2advertisement", "L2Advertisement", &[], NS, NoStatus),
    def("metallb.io", MLB, "bgpadvertisements", "bgpadvertisement", "BGPAdvertisement", &[], NS, NoStatus),
    def("metallb.io", &["v1beta2", "v1beta1"], "bgppeers", "bgppeer", "BGPPeer", &[], NS, Reset),
    def("metallb.io", MLB, "communities", "community", "Community", &[], NS, NoStatus),
    def("metallb.io", MLB, "bfdprofiles", "bfdprofile", "BFDProfile", &[], NS, NoStatus),
    def("metallb.io", MLB, "servicel2statuses", "servicel2status", "ServiceL2Status", &[], NS, Reset),
    def("metallb.io", MLB, "servicebgpstatuses", "servicebgpstatus", "ServiceBGPStatus", &[], NS, Reset),
    def("metallb.io", MLB, "configurationstates", "configurationstate", "ConfigurationState", &[], NS, Reset),
];

/// Extra columns of `kubectl get` (between NAME and AGE): a header and a dotted path, which
/// maps over arrays (`status.loadBalancer.ingress.ip`). Kinds not listed show NAME and AGE.
/// (header, dotted path)
type Column = (&'static str, &'static str);

#[rustfmt::skip]
static COLUMNS: &[(&str, &str, &[Column])] = &[
    ("", "namespaces", &[("Status", "status.phase")]),
    ("", "services", &[("Type", "spec.type"), ("Cluster-IP", "spec.clusterIP"),
        ("External-IP", "status.loadBalancer.ingress.ip"), ("Port(s)", "spec.ports.port")]),
    ("", "secrets", &[("Type", "type")]),
    ("", "events", &[("Type", "type"), ("Reason", "reason"), ("Object", "involvedObject.name"), ("Message", "message")]),
    ("events.k8s.io", "events", &[("Type", "type"), ("Reason", "reason"), ("Object", "regarding.name"), ("Note", "note")]),
    ("coordination.k8s.io", "leases", &[("Holder", "spec.holderIdentity")]),
    ("discovery.k8s.io", "endpointslices", &[("AddressType", "addressType"), ("Ports", "ports.port"),
        ("Endpoints", "endpoints.addresses")]),
    ("metallb.io", "ipaddresspools", &[("Auto Assign", "spec.autoAssign"), ("Avoid Buggy IPs", "spec.avoidBuggyIPs"),
        ("Addresses", "spec.addresses")]),
    ("metallb.io", "l2advertisements", &[("IPAddressPools", "spec.ipAddressPools"), ("Interfaces", "spec.interfaces")]),
    ("metallb.io", "bgpadvertisements", &[("IPAddressPools", "spec.ipAddressPools"), ("Peers", "spec.peers")]),
    ("metallb.io", "bgppeers", &[("Address", "spec.peerAddress"), ("ASN", "spec.peerASN"),
        ("BFD Profile", "spec.bfdProfile"), ("Multi Hops", "spec.ebgpMultiHop")]),
    ("metallb.io", "servicel2statuses", &[("Allocated Node", "status.node"), ("Service Name", "status.serviceName"),
        ("Service Namespace", "status.serviceNamespace")]),
    ("metallb.io", "servicebgpstatuses", &[("Node", "status.node"), ("Service Name", "status.serviceName"),
        ("Service Namespace", "status.serviceNamespace")]),
    ("metallb.io", "configurationstates", &[("Result", "status.result"), ("ErrorSummary", "status.errorSummary")]),
    ("metallb.io", "bfdprofiles", &[("Passive Mode", "spec.passiveMode"), ("Transmit Interval", "spec.transmitInterval"),
        ("Receive Interval", "spec.receiveInterval"), ("Multiplier", "spec.detectMultiplier")]),
];

fn cell(v: &Value, path: &[&str], out: &mut Vec<String>) {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|i| cell(i, path, out)),
        (Value::Null, _) => {}
        (_, Some((key, rest))) => cell(&v[*key], rest, out),
        (Value::String(s), None) => out.push(s.clone()),
        (other, None) => out.push(other.to_string()),
    }
}

/// How long ago an RFC 3339 time was, the way kubectl shows ages: 45s, 3m12s, 5h, 2d3h.
fn age(timestamp: &str, now: u64) -> String {
    let Some(then) = parse_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let s = now.saturating_sub(then);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn parse_rfc3339(t: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days-from-civil algorithm.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// A `meta.k8s.io/v1` Table of served objects, for `kubectl get` (which asks with
/// `Accept: application/json;as=Table;...`).
pub fn table(res: usize, objects: &[Value], list_meta: Value, now: u64) -> Value {
    let d = &RESOURCES[res];
    let extra = COLUMNS
        .iter()
        .find(|(g, p, _)| *g == d.group && *p == d.plural)
        .map_or(&[][..], |(_, _, c)| *c);
    let column = |name: &str, format: &str| json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0});
    let mut columns = vec![column("Name", "name")];
    columns.extend(extra.iter().map(|(h, _)| column(h, "")));
    columns.push(column("Age", ""));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for (_, path) in extra {
                let mut out = Vec::new();
                let path: Vec<&str> = path.split('.').collect();
                cell(o, &path, &mut out);
                cells.push(json!(if out.is_empty() { "<none>".to_string() } else { out.join(",") }));
            }
            cells.push(json!(age(o["metadata"]["creationTimestamp"].as_str().unwrap_or(""), now)));
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

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

/// Groups in the order the table first names them (the core group is served under `/api`),
/// each with the versions its kinds are served in, preferred (Kubernetes' version priority:
/// GA, then beta, then alpha, higher numbers first) first. Derived from [`RESOURCES`], so a
/// kind added there is discoverable without a second list to keep in step.
pub static GROUPS: LazyLock<Vec<(&'static str, Vec<&'static str>)>> = LazyLock::new(|| {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for d in RESOURCES {
        let i = match groups.iter().position(|(g, _)| *g == d.group) {
            Some(i) => i,
            None => {
                groups.push((d.group, Vec::new()));
                groups.len() - 1
            }
        };
        for v in d.versions {
            if !groups[i].1.contains(v) {
                groups[i].1.push(v);
            }
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    groups
});

/// Kubernetes' ordering of version names: `v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`.
fn version_priority(version: &str) -> (u32, u32, u32) {
    let rest = version.strip_prefix('v').unwrap_or(version);
    let digits = |s: &str| -> (u32, usize) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (s[..n].parse().unwrap_or(0), n)
    };
    let (major, n) = digits(rest);
    let suffix = &rest[n..];
    let (stage, minor) = if let Some(b) = suffix.strip_prefix("beta") {
        (1, digits(b).0)
    } else if let Some(a) = suffix.strip_prefix("alpha") {
        (0, digits(a).0)
    } else {
        (2, 0)
    };
    (stage, major, minor)
}

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
    for (g, vs) in GROUPS.iter() {
        for v in vs {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable_with_its_preferred_version_first() {
        for d in RESOURCES {
            for v in d.versions {
                assert!(group_served(d.group, v), "{}/{v} {}", d.group, d.kind);
            }
        }
        let metallb = GROUPS.iter().find(|(g, _)| *g == "metallb.io").unwrap();
        assert_eq!(metallb.1, ["v1beta2", "v1beta1"]);
        let mut versions = vec!["v1alpha1", "v1beta1", "v1", "v2beta1", "v1beta2", "v2"];
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1"]
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t = parse_rfc3339("2026-11-21T13:32:20Z").unwrap();
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(parse_rfc3339("2026-11-21T13:32:20.123456Z"), Some(t));
        let ts = "2026-11-21T13:32:20Z";
        let cases = [
            (5, "5s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 3600, "3d1h"),
            (20 * 86_400, "20d"),
        ];
        for (after, want) in cases {
            assert_eq!(age(ts, t + after), want);
        }
        assert_eq!(age("nonsense", t), "<unknown>");
    }

    #[test]
    fn service_table_shows_external_ips() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "1970-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}});
        let (res, _) = find("", "v1", "services").unwrap();
        let t = table(res, &[svc], json!({}), 42);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "LoadBalancer",
                "<none>",
                "192.0.2.1,2001:db8::1",
                "80,443",
                "42s"
            ])
        );
    }
}
