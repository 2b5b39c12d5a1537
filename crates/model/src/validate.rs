//! `validate()`: [`Resources`] in, a [`World`] and every diagnostic out.
//!
//! Owns every rule about what a configuration may say: names, addresses, references between
//! objects, ranges of numbers and timers, and the combinations MetalLB forbids. It reports all
//! problems in one pass, each naming the resource, the field as the user spelled it, the bad
//! value and a fix, so a file is fixed once rather than once per error. An object that is
//! wrong in one field is still entered under its name, so one mistake does not cascade into
//! "unknown pool" errors elsewhere. It must not decide what is announced where: that is
//! [`crate::plan()`]'s.
//!
//! The rules are MetalLB's (its `internal/config` parser and CRD schema), rule by rule: what
//! MetalLB rejects is an error, what it accepts never is (herald's own checks beyond it are
//! warnings); `docs/metallb-differences.md` lists every deliberate difference. Only the
//! `metallb.io` objects and the Secrets they name can be errors: a Service, EndpointSlice or
//! Node herald cannot use is a warning and a `problems` entry of that object, which the plan
//! skips alone. Services that are not LoadBalancers of the class herald serves never enter
//! the World.

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Resource;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::community::{AnyCommunity, CommunityError};
use crate::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, DynamicAsn, IPAddressPool, L2Advertisement,
};
use crate::diag::{Diagnostic, Origin, Severity, has_errors, isolated_kind};
use crate::net::{minimal_cidrs, parse_duration, parse_ip, parse_ipv4, parse_pool_entry};
use crate::resources::{EndpointsMode, Resources, Sourced};
use crate::selector::{Selector, any_matches};
use crate::world::{
    self, AddressRange, BfdProfile, BgpAdvertisement, Endpoints, Family, Password, Peer, PeerAsn,
    PeerEndpoint, Pool, PoolSelection, ServiceAllocation, ServiceRef, TrafficPolicy, World,
};

/// The outcome of checking: `world` is `Some` exactly when no diagnostic is an error.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub world: Option<World>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        !has_errors(&self.diagnostics)
    }
}

/// The node label that keeps a node out of every load balancer, whatever its value.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Annotations by which a Service asks for a pool, the current spelling first.
pub const ADDRESS_POOL_ANNOTATIONS: [&str; 2] = [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// The only Secret type MetalLB reads a BGP password from.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
/// AS_TRANS (RFC 6793) stands in for a 4-octet AS on 2-octet sessions; it is never a real AS.
const AS_TRANS: u32 = 23456;
/// Where an object without a namespace lives, as the API server would put it.
const DEFAULT_NAMESPACE: &str = "default";
const COMMUNITY_FORMS: &str =
    "A:B (0-65535 each), large:A:B:C (0-4294967295 each) or a well-known name such as no-export";

/// Checks `resources` and, when nothing is wrong, builds the [`World`]. Diagnostics come back
/// sorted (errors first, then by file, line and resource), so the output does not depend on
/// the order the inputs arrived in.
pub fn validate(resources: &Resources) -> Checked {
    let mut out = Sink::default();
    let world = build(&mut out, resources);
    let mut diagnostics = out.0;
    diagnostics.sort();
    diagnostics.dedup();
    Checked {
        world: (!has_errors(&diagnostics)).then_some(world),
        diagnostics,
    }
}

type Res<T> = Sourced<T>;

/// Where diagnostics are collected.
#[derive(Default)]
struct Sink(Vec<Diagnostic>);

impl Sink {
    /// Reports `problem` at field `field` of `r`, with the value as written (empty: none) and
    /// what to write instead; located at the field's line when it is known.
    fn push<T: Resource<DynamicType = ()>>(
        &mut self,
        severity: Severity,
        r: &Res<T>,
        field: &str,
        value: impl Display,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let mut d = Diagnostic::error(r.resource_ref(), field, problem)
            .fix(fix)
            .at(r.origin_at(field));
        d.severity = severity;
        let value = value.to_string();
        if !value.is_empty() {
            d = d.value(value);
        }
        self.0.push(d);
    }

    fn error<T: Resource<DynamicType = ()>>(
        &mut self,
        r: &Res<T>,
        field: &str,
        value: impl Display,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, r, field, value, problem, fix);
    }

    fn warning<T: Resource<DynamicType = ()>>(
        &mut self,
        r: &Res<T>,
        field: &str,
        value: impl Display,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Warning, r, field, value, problem, fix);
    }

    fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Parses `selectors` found at `path`; a bad one is reported and left out. As MetalLB,
    /// a list may not hold the same selector twice (values compared as a set), nor a
    /// selector the same requirement twice or a requirement the same value twice.
    fn selectors<T: Resource<DynamicType = ()>>(
        &mut self,
        r: &Res<T>,
        path: &str,
        selectors: &[LabelSelector],
    ) -> Vec<Selector> {
        let normal = |s: &LabelSelector| {
            let mut s = s.clone();
            for e in s.match_expressions.iter_mut().flatten() {
                if let Some(v) = e.values.as_mut() {
                    v.sort();
                }
            }
            s
        };
        let normalized: Vec<LabelSelector> = selectors.iter().map(normal).collect();
        for (i, s) in normalized.iter().enumerate() {
            let expressions = s.match_expressions.as_deref().unwrap_or_default();
            for (k, e) in expressions.iter().enumerate() {
                let field = format!("{path}[{i}].matchExpressions[{k}]");
                let values = e.values.as_deref().unwrap_or_default();
                if let Some(v) = values.windows(2).find(|w| w[0] == w[1]).map(|w| &w[0]) {
                    let problem = format!("the value {v:?} is listed twice");
                    self.error(
                        r,
                        &format!("{field}.values"),
                        v,
                        problem,
                        "list each value once",
                    );
                }
                if let Some(j) = expressions[..k].iter().position(|x| x == e) {
                    let problem = format!("repeats matchExpressions[{j}]");
                    self.error(r, &field, &e.key, problem, "remove one of the two");
                }
            }
            if let Some(j) = normalized[..i].iter().position(|x| x == s) {
                let field = format!("{path}[{i}]");
                let problem = format!("repeats {path}[{j}]");
                self.error(r, &field, "", problem, "remove one of the two");
            }
        }
        let mut out = Vec::new();
        for (i, s) in selectors.iter().enumerate() {
            match Selector::parse(s) {
                Ok(s) => out.push(s),
                Err(errors) => {
                    for e in errors {
                        let field = format!("{path}[{i}].{}", e.field);
                        self.error(r, &field, e.value, e.problem, e.fix);
                    }
                }
            }
        }
        out
    }

    /// A number that must lie in `range`, or `default` when unset.
    fn ranged<T: Resource<DynamicType = ()>>(
        &mut self,
        r: &Res<T>,
        field: &str,
        value: Option<u32>,
        range: RangeInclusive<u32>,
        default: u32,
    ) -> u32 {
        let (lo, hi) = (range.start(), range.end());
        match value {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                let fix = format!("use {lo} to {hi}, or remove it for the default {default}");
                self.error(r, field, v, format!("must be from {lo} to {hi}"), fix);
                default
            }
        }
    }

    /// A text field parsed by `parse`, its error reported with the error's own fix.
    fn parsed<T: Resource<DynamicType = ()>, V, E: Display>(
        &mut self,
        r: &Res<T>,
        field: &str,
        text: Option<&str>,
        parse: impl Fn(&str) -> Result<V, E>,
        fix: impl Fn(&E) -> String,
    ) -> Option<V> {
        let text = text?;
        parse(text)
            .map_err(|e| self.error(r, field, text, e.to_string(), fix(&e)))
            .ok()
    }
}

fn namespace_of<T: Resource<DynamicType = ()>>(r: &Res<T>) -> &str {
    r.object
        .meta()
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// " in pools.yaml:4", for pointing at another object.
fn place(origin: &Origin) -> String {
    match (&origin.file, origin.line, origin.document) {
        (Some(f), Some(l), _) => format!(" in {}:{l}", f.display()),
        (Some(f), None, Some(d)) => format!(" in {} (document {d})", f.display()),
        (Some(f), None, None) => format!(" in {}", f.display()),
        _ => String::new(),
    }
}

fn join<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    items.join(", ")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Points from an unknown name to the known ones: a near miss, else the list.
fn known_names<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> String {
    let known: Vec<&String> = known.into_iter().collect();
    let close = known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2 && *d < name.len())
        .min();
    match close {
        Some((_, k)) => format!("did you mean {k:?}?"),
        None if known.is_empty() => "none is defined".into(),
        None => format!("defined: {}", join(known)),
    }
}

/// A pool entry that parsed, kept with where it was written for later messages.
struct Entry<'a> {
    pool: &'a Res<IPAddressPool>,
    index: usize,
    text: &'a str,
    range: AddressRange,
}

/// What references are checked against, gathered before the objects that refer.
struct Known<'a> {
    pools: BTreeMap<String, Pool>,
    entries: Vec<Entry<'a>>,
    /// Every BGPPeer name, valid or not, so a bad peer is not also "unknown".
    peer_names: BTreeSet<String>,
    /// The peers that passed every check.
    peers: BTreeMap<String, Peer>,
    /// `None` for an alias whose value is wrong (already reported), so uses stay quiet.
    aliases: BTreeMap<String, Option<AnyCommunity>>,
    bfd_profiles: BTreeMap<String, BfdProfile>,
    secrets: Vec<&'a Res<Secret>>,
    /// `(kind, name)` of objects the source could not read.
    unreadable: BTreeSet<(String, String)>,
    /// The Node objects that could be read, for the rules that depend on which nodes a
    /// selector picks.
    nodes: BTreeMap<String, world::Node>,
}

impl Known<'_> {
    /// Whether an object of `kind` named `name` exists but could not be read: references to
    /// it are not reported again.
    fn unreadable(&self, kind: &str, name: &str) -> bool {
        self.unreadable
            .contains(&(kind.to_owned(), name.to_owned()))
    }

    fn any_unreadable(&self, kind: &str) -> bool {
        self.unreadable.iter().any(|(k, _)| k == kind)
    }
}

fn build(out: &mut Sink, res: &Resources) -> World {
    let pools = unique(out, &res.pools, false);
    let l2s = unique(out, &res.l2_advertisements, false);
    let bgp_ads = unique(out, &res.bgp_advertisements, false);
    let peers = unique(out, &res.bgp_peers, false);
    let communities = unique(out, &res.communities, false);
    let bfds = unique(out, &res.bfd_profiles, false);
    let services = unique(out, &res.services, true);
    let slices = unique(out, &res.endpoint_slices, true);
    let nodes = unique(out, &res.nodes, false);
    let secrets = unique(out, &res.secrets, true);

    let mut entries = Vec::new();
    let pools = pools
        .iter()
        .map(|r| (r.name().to_owned(), pool(out, r, &mut entries)))
        .collect();
    overlaps(out, &mut entries);
    let mut nodes: BTreeMap<String, world::Node> = nodes
        .iter()
        .map(|r| (r.name().to_owned(), node(r)))
        .collect();
    let readable_nodes = nodes.clone();
    for u in res.unreadable.iter().filter(|u| u.resource.kind == "Node") {
        let name = u.resource.name.clone();
        nodes.entry(name.clone()).or_insert_with(|| world::Node {
            name,
            labels: Default::default(),
            excluded_from_load_balancers: false,
            network_unavailable: false,
            unschedulable: false,
            deleting: false,
            problems: vec![format!("the Node object cannot be read: {}", u.problem)],
        });
    }
    let mut known = Known {
        pools,
        entries,
        peer_names: peers.iter().map(|r| r.name().to_owned()).collect(),
        peers: BTreeMap::new(),
        aliases: aliases(out, &communities),
        bfd_profiles: bfds
            .iter()
            .map(|r| (r.name().to_owned(), bfd_profile(out, r)))
            .collect(),
        secrets,
        unreadable: res
            .unreadable
            .iter()
            .map(|u| (u.resource.kind.clone(), u.resource.name.clone()))
            .collect(),
        nodes: readable_nodes,
    };
    known.peers = peers
        .iter()
        .filter_map(|r| peer(out, &known, r))
        .map(|p| (p.name.clone(), p))
        .collect();

    let l2_advertisements = l2s
        .iter()
        .map(|r| (r.name().to_owned(), l2_advertisement(out, &known, r)))
        .collect();
    let bgp_advertisements: BTreeMap<String, BgpAdvertisement> = bgp_ads
        .iter()
        .map(|r| (r.name().to_owned(), bgp_advertisement(out, &known, r)))
        .collect();
    local_pref_conflicts(out, &known, &bgp_ads, &bgp_advertisements);
    bfd_echo_over_ipv6(out, &known, &bgp_ads, &bgp_advertisements);

    // Services that are not LoadBalancers of our class are not ours: they never reach the
    // World, and neither do their EndpointSlices.
    let class = res.load_balancer_class.as_deref();
    let (ours, others): (Vec<&Res<Service>>, Vec<&Res<Service>>) =
        services.iter().copied().partition(|r| is_ours(r, class));
    for r in others {
        not_ours_in_file(out, r);
    }
    let mut keys: BTreeSet<ServiceRef> = ours.iter().map(|r| service_ref(r)).collect();
    // Services that could not be read stay in the World, as problems of their own.
    let unreadable_services: Vec<(ServiceRef, &str)> = res
        .unreadable
        .iter()
        .filter(|u| u.resource.kind == "Service")
        .map(|u| {
            let namespace = u.resource.namespace.clone();
            let key = ServiceRef {
                namespace: namespace.unwrap_or(DEFAULT_NAMESPACE.into()),
                name: u.resource.name.clone(),
            };
            (key, u.problem.as_str())
        })
        .collect();
    keys.extend(unreadable_services.iter().map(|(key, _)| key.clone()));
    let mut endpoints = endpoints(out, &slices, &keys);
    let mut services: BTreeMap<ServiceRef, world::Service> = ours
        .iter()
        .map(|r| service(out, &known, r, &mut endpoints, res.endpoints_mode))
        .map(|s| (s.key.clone(), s))
        .collect();
    for (key, problem) in unreadable_services {
        services
            .entry(key.clone())
            .or_insert_with(|| world::Service {
                key,
                labels: Default::default(),
                is_load_balancer: true,
                load_balancer_class: res.load_balancer_class.clone(),
                external_traffic_policy: TrafficPolicy::Cluster,
                ips: Vec::new(),
                requested_pool: None,
                endpoints: Endpoints::default(),
                problems: vec![format!("the Service cannot be read: {problem}")],
            });
    }

    World {
        pools: known.pools,
        l2_advertisements,
        bgp_advertisements,
        peers: known.peers,
        bfd_profiles: known.bfd_profiles,
        services,
        nodes,
        endpoints_mode: res.endpoints_mode.into(),
        load_balancer_class: res.load_balancer_class.clone(),
    }
}

/// The named objects of one kind, one per name: the first by origin, so the choice does not
/// depend on input order. Unnamed objects and later duplicates are errors. `namespaced`: the
/// kind's names are unique per namespace. Compares what the objects hold, copying nothing
/// (it runs on every object of every snapshot).
fn unique<'a, T: Resource<DynamicType = ()> + Serialize>(
    out: &mut Sink,
    list: &'a [Res<T>],
    namespaced: bool,
) -> Vec<&'a Res<T>> {
    let kind = T::kind(&());
    // A Service, EndpointSlice or Node that cannot be told apart from another harms only
    // itself: it is left out with a warning.
    let severity = if isolated_kind(&kind) {
        Severity::Warning
    } else {
        Severity::Error
    };
    // By origin, then name as a ResourceRef orders them (the kind is the same for all).
    let order = |r: &'a Res<T>| (&r.origin, r.object.meta().namespace.as_deref(), r.name());
    let mut sorted: Vec<&'a Res<T>> = list.iter().collect();
    sorted.sort_by(|a, b| order(a).cmp(&order(b)));
    // Objects from nowhere in particular (the API, tests) can tie on origin and name only
    // when the same name comes twice; their content decides, so the input order does not.
    for run in sorted.chunk_by_mut(|a, b| order(a) == order(b)) {
        if run.len() > 1 {
            run.sort_by_cached_key(|r| serde_json::to_string(&*r.object).unwrap_or_default());
        }
    }
    let scope = |r: &'a Res<T>| if namespaced { namespace_of(r) } else { "" };
    let mut seen: BTreeMap<(&'a str, &'a str), &'a Res<T>> = BTreeMap::new();
    let mut unique = Vec::new();
    for r in sorted {
        let field = "metadata.name";
        if r.name().trim().is_empty() {
            let fix = format!("set metadata.name; every {kind} needs a unique name");
            out.push(severity, r, field, "", "the object has no name", fix);
        } else if let Some(first) = seen.get(&(scope(r), r.name())) {
            let there = place(&first.origin_at(field));
            let problem = format!("another {kind} is named {:?}{there}", r.name());
            let fix = "rename one of them, or merge them into one object";
            out.push(severity, r, field, r.name(), problem, fix);
        } else {
            seen.insert((scope(r), r.name()), r);
            unique.push(r);
        }
    }
    unique
}

fn aliases(
    out: &mut Sink,
    communities: &[&Res<Community>],
) -> BTreeMap<String, Option<AnyCommunity>> {
    let mut aliases = BTreeMap::new();
    let mut defined_at: BTreeMap<&str, String> = BTreeMap::new();
    for r in communities {
        for (i, alias) in r.object.spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}].value");
            let parse = |t: &str| t.parse::<AnyCommunity>();
            let fix = |_: &CommunityError| format!("write {COMMUNITY_FORMS}");
            let value = out.parsed(r, &field, Some(&alias.value), parse, fix);
            let field = format!("spec.communities[{i}].name");
            let name = alias.name.as_str();
            if name.trim().is_empty() {
                // MetalLB accepts it; only a community written as the same blank refers to it.
                let fix = "name the alias, so BGPAdvertisement communities can refer to it";
                out.warning(r, &field, "", "the alias has no name", fix);
            }
            if let Some(other) = defined_at.get(name) {
                let problem = format!("alias {name:?} is already defined by {other}");
                let fix = "rename one of them; an alias must stand for one value";
                out.error(r, &field, name, problem, fix);
            } else {
                defined_at.insert(name, format!("Community {} ({field})", r.name()));
                aliases.insert(name.to_owned(), value);
            }
        }
    }
    aliases
}

fn bfd_profile(out: &mut Sink, r: &Res<BFDProfile>) -> BfdProfile {
    let s = &r.object.spec;
    let ms = || 10..=60000;
    BfdProfile {
        name: r.name().to_owned(),
        receive_interval_ms: out.ranged(r, "spec.receiveInterval", s.receive_interval, ms(), 300),
        transmit_interval_ms: out.ranged(
            r,
            "spec.transmitInterval",
            s.transmit_interval,
            ms(),
            300,
        ),
        detect_multiplier: out.ranged(r, "spec.detectMultiplier", s.detect_multiplier, 2..=255, 3),
        echo_interval_ms: out.ranged(r, "spec.echoInterval", s.echo_interval, ms(), 50),
        echo_mode: s.echo_mode.unwrap_or(false),
        passive_mode: s.passive_mode.unwrap_or(false),
        minimum_ttl: out.ranged(r, "spec.minimumTtl", s.minimum_ttl, 1..=254, 254),
    }
}

fn pool<'a>(out: &mut Sink, r: &'a Res<IPAddressPool>, entries: &mut Vec<Entry<'a>>) -> Pool {
    let s = &r.object.spec;
    if s.addresses.is_empty() {
        let fix = "list at least one prefix (192.0.2.0/24, 2001:db8::/64) \
                   or range (192.0.2.10-192.0.2.20)";
        out.error(r, "spec.addresses", "", "the pool has no addresses", fix);
    }
    let mut ranges = Vec::new();
    for (index, text) in s.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{index}]");
        let Some(entry) = out.parsed(r, &field, Some(text), parse_pool_entry, |e| e.fix()) else {
            continue;
        };
        if !text.contains(['/', '-']) {
            // MetalLB parses an entry with Go's ParseCIDR unless it is a range.
            let family = entry.range.family();
            let len = if family == Family::Ipv4 { 32 } else { 128 };
            let problem = "a pool entry is a CIDR prefix or a first-last range, not a bare address";
            let fix = format!("write {}/{len} for the one address", text.trim());
            out.error(r, &field, text, problem, fix);
            continue;
        }
        if let Some(net) = entry.masked_from_host_bits {
            let written = text.split('/').next().and_then(|a| parse_ip(a).ok());
            let host = IpNet::from(written.unwrap_or(net.addr()));
            let problem = format!("host bits are set, so the entry is read as {net}");
            let fix = format!("write {net} for the whole prefix, or {host} for the one address");
            out.warning(r, &field, text, problem, fix);
        }
        let range = entry.range;
        ranges.push(range);
        entries.push(Entry {
            pool: r,
            index,
            text,
            range,
        });
    }
    let service_allocation = s.service_allocation.as_ref().map(|a| {
        let path = "spec.serviceAllocation";
        duplicates(out, r, &format!("{path}.namespaces"), &a.namespaces);
        ServiceAllocation {
            priority: a.priority,
            namespaces: a.namespaces.iter().cloned().collect(),
            namespace_selectors: out.selectors(
                r,
                &format!("{path}.namespaceSelectors"),
                &a.namespace_selectors,
            ),
            service_selectors: out.selectors(
                r,
                &format!("{path}.serviceSelectors"),
                &a.service_selectors,
            ),
        }
    });
    Pool {
        name: r.name().to_owned(),
        labels: r.object.metadata.labels.clone().unwrap_or_default(),
        cidrs: minimal_cidrs(&ranges),
        ranges,
        auto_assign: s.auto_assign.unwrap_or(true),
        avoid_buggy_ips: s.avoid_buggy_ips.unwrap_or(false),
        service_allocation,
    }
}

/// An address may be in one pool entry only. Sorted by start, each entry is compared with the
/// one reaching furthest before it, which finds every overlapping entry in one sweep.
fn overlaps(out: &mut Sink, entries: &mut [Entry<'_>]) {
    // Wider entries first among those starting together, so the narrower one, usually the
    // later addition, is the one reported.
    let key = |e: &Entry<'_>| {
        let name = e.pool.name().to_owned();
        (
            e.range.first,
            std::cmp::Reverse(e.range.last),
            name,
            e.index,
        )
    };
    entries.sort_by_cached_key(key);
    let mut reach: Option<&Entry> = None;
    for e in entries.iter() {
        if let Some(p) = reach.filter(|p| p.range.overlaps(&e.range)) {
            let shared = AddressRange {
                first: e.range.first,
                last: p.range.last.min(e.range.last),
            };
            let whose = if p.pool.name() == e.pool.name() {
                "this pool".to_owned()
            } else {
                format!("IPAddressPool {}", p.pool.name())
            };
            let problem = format!(
                "overlaps spec.addresses[{}] {:?} of {whose}; both hold {shared}",
                p.index, p.text
            );
            let fix = "an address may belong to one pool entry only: \
                       remove the shared addresses from one of the two entries";
            let field = format!("spec.addresses[{}]", e.index);
            out.error(e.pool, &field, e.text, problem, fix);
        }
        let reaches_further =
            |p: &Entry| p.range.family() != e.range.family() || e.range.last > p.range.last;
        if reach.is_none_or(reaches_further) {
            reach = Some(e);
        }
    }
}

/// `ipAddressPools` and `ipAddressPoolSelectors`, checked; and the names of the pools they
/// select (all pools when both are empty).
fn pool_selection<T: Resource<DynamicType = ()>>(
    out: &mut Sink,
    known: &Known,
    r: &Res<T>,
    names: &[String],
    selectors: &[LabelSelector],
) -> (PoolSelection, BTreeSet<String>) {
    duplicates(out, r, "spec.ipAddressPools", names);
    for (i, n) in names.iter().enumerate() {
        if !known.pools.contains_key(n) && !known.unreadable("IPAddressPool", n) {
            // MetalLB ignores the name, and the pool may simply not have arrived yet.
            let problem = format!("no IPAddressPool is named {n:?}, so this entry selects nothing");
            let fix = format!(
                "name an existing pool ({}), or create an IPAddressPool named {n:?}",
                known_names(n, known.pools.keys())
            );
            out.warning(r, &format!("spec.ipAddressPools[{i}]"), n, problem, fix);
        }
    }
    let selection = PoolSelection {
        names: names.iter().cloned().collect(),
        selectors: out.selectors(r, "spec.ipAddressPoolSelectors", selectors),
    };
    let everything = names.is_empty() && selectors.is_empty();
    let selected = known
        .pools
        .values()
        .filter(|p| {
            everything
                || selection.names.contains(&p.name)
                || selection.selectors.iter().any(|s| s.matches(&p.labels))
        })
        .map(|p| p.name.clone())
        .collect();
    (selection, selected)
}

fn l2_advertisement(
    out: &mut Sink,
    known: &Known,
    r: &Res<L2Advertisement>,
) -> world::L2Advertisement {
    let s = &r.object.spec;
    for (i, name) in s.interfaces.iter().enumerate() {
        if name.trim().is_empty() {
            let fix = "name an interface such as eth0, or remove the entry \
                       (no interfaces at all means every usable one)";
            let field = format!("spec.interfaces[{i}]");
            let problem = "the interface name is empty, so this entry matches no interface";
            out.warning(r, &field, name, problem, fix);
        }
    }
    let pools = s.ip_address_pools.as_slice();
    let (pools, _) = pool_selection(out, known, r, pools, &s.ip_address_pool_selectors);
    world::L2Advertisement {
        name: r.name().to_owned(),
        pools,
        node_selectors: out.selectors(r, "spec.nodeSelectors", &s.node_selectors),
        // An empty name is kept: it matches nothing, as in MetalLB, rather than widening the
        // list to every interface.
        interfaces: s.interfaces.iter().cloned().collect(),
        service_selectors: out.selectors(r, "spec.serviceSelectors", &s.service_selectors),
        preferred_nodes: s
            .preferred_node_selectors
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let path = format!("spec.preferredNodeSelectors[{i}]");
                let weight = match u32::try_from(p.weight) {
                    Ok(w @ 1..=100) => w,
                    _ => {
                        let fix = "give a weight from 1 to 100 (higher is preferred)";
                        out.error(
                            r,
                            &format!("{path}.weight"),
                            p.weight,
                            "must be from 1 to 100",
                            fix,
                        );
                        return None;
                    }
                };
                let selector = out
                    .selectors(
                        r,
                        &format!("{path}.preference"),
                        std::slice::from_ref(&p.preference),
                    )
                    .pop()?;
                Some((weight, selector))
            })
            .collect(),
    }
}

fn bgp_advertisement(out: &mut Sink, known: &Known, r: &Res<BGPAdvertisement>) -> BgpAdvertisement {
    let s = &r.object.spec;
    duplicates(out, r, "spec.communities", &s.communities);
    duplicates(out, r, "spec.peers", &s.peers);
    if !s.service_selectors.is_empty() {
        // MetalLB: with service selectors, which addresses share an aggregate is unknown.
        let lengths = [
            ("spec.aggregationLength", s.aggregation_length, 32),
            ("spec.aggregationLengthV6", s.aggregation_length_v6, 128),
        ];
        for (field, value, host) in lengths {
            if let Some(v) = value.filter(|v| *v != host) {
                let problem = format!(
                    "serviceSelectors and an aggregation length other than {host} are exclusive: \
                     an aggregate would carry the addresses of services the selectors leave out"
                );
                let fix = format!(
                    "remove {} (or set it to {host}), or move the service selection to an \
                     advertisement of its own",
                    field.trim_start_matches("spec.")
                );
                out.error(r, field, v, problem, fix);
            }
        }
    }
    let pools = s.ip_address_pools.as_slice();
    let (selection, selected) = pool_selection(out, known, r, pools, &s.ip_address_pool_selectors);
    let aggregate = |out: &mut Sink, field, value, family| {
        aggregation(out, known, r, field, value, family, &selected)
    };
    let v4 = aggregate(
        out,
        "spec.aggregationLength",
        s.aggregation_length,
        Family::Ipv4,
    );
    let v6 = aggregate(
        out,
        "spec.aggregationLengthV6",
        s.aggregation_length_v6,
        Family::Ipv6,
    );

    let mut communities = BTreeSet::new();
    let mut large_communities = BTreeSet::new();
    for (i, text) in s.communities.iter().enumerate() {
        // An alias wins over a literal of the same spelling, as in MetalLB.
        let parsed = match known.aliases.get(text) {
            Some(Some(alias)) => Ok(*alias),
            Some(None) => continue,
            None => text.parse::<AnyCommunity>(),
        };
        match parsed {
            Ok(AnyCommunity::Standard(c)) => {
                communities.insert(c);
            }
            Ok(AnyCommunity::Large(c)) => {
                large_communities.insert(c);
            }
            // It may be an alias of a Community object that could not be read.
            Err(_) if !text.contains(':') && known.any_unreadable("Community") => {}
            Err(e) => {
                // Text with a ':' was meant as a literal; anything else as an alias name.
                let (problem, fix) = if text.contains(':') {
                    (e.to_string(), format!("write {COMMUNITY_FORMS}"))
                } else if known.aliases.is_empty() {
                    let problem = format!(
                        "no Community alias is named {text:?} (no Community object defines any)"
                    );
                    let fix = format!(
                        "define {text:?} in a Community object, or write {COMMUNITY_FORMS}"
                    );
                    (problem, fix)
                } else {
                    let aliases = join(known.aliases.keys());
                    let problem =
                        format!("no Community alias is named {text:?} (known aliases: {aliases})");
                    let fix = format!(
                        "use a defined alias ({}), define {text:?} in a Community object, \
                         or write {COMMUNITY_FORMS}",
                        known_names(text, known.aliases.keys())
                    );
                    (problem, fix)
                };
                out.error(r, &format!("spec.communities[{i}]"), text, problem, fix);
            }
        }
    }

    for (i, p) in s.peers.iter().enumerate() {
        if !known.peer_names.contains(p) && !known.unreadable("BGPPeer", p) {
            // MetalLB ignores the name, and the peer may simply not have arrived yet.
            let problem = format!("no BGPPeer is named {p:?}, so nothing is announced to it");
            let fix = format!(
                "name an existing peer ({}), or remove the entry",
                known_names(p, &known.peer_names)
            );
            out.warning(r, &format!("spec.peers[{i}]"), p, problem, fix);
        }
    }
    if let Some(pref) = s.local_pref {
        // Judged only when every peer it goes to passed its own checks; a broken peer has
        // already been reported, and its kind of session may be what is wrong with it.
        let unreadable = known.unreadable.iter().filter(|(k, _)| k == "BGPPeer");
        let goes_to: Option<Vec<&Peer>> = (known.peer_names.iter())
            .chain(unreadable.map(|(_, n)| n))
            .filter(|n| s.peers.is_empty() || s.peers.contains(n))
            .map(|n| known.peers.get(n))
            .collect();
        let goes_to = goes_to.unwrap_or_default();
        if !goes_to.is_empty() && goes_to.iter().all(|p| !p.is_ibgp()) {
            let problem = format!(
                "LOCAL_PREF is sent to iBGP peers only, and every peer this advertisement \
                 goes to ({}) is eBGP, so it is never sent",
                join(goes_to.iter().map(|p| &p.name))
            );
            let fix = "remove localPref, or use communities to steer eBGP routers";
            out.warning(r, "spec.localPref", pref, problem, fix);
        }
    }

    BgpAdvertisement {
        name: r.name().to_owned(),
        aggregation_length: v4,
        aggregation_length_v6: v6,
        local_pref: s.local_pref,
        communities,
        large_communities,
        pools: selection,
        node_selectors: out.selectors(r, "spec.nodeSelectors", &s.node_selectors),
        peers: s.peers.iter().cloned().collect(),
        service_selectors: out.selectors(r, "spec.serviceSelectors", &s.service_selectors),
    }
}

/// An aggregation length, as MetalLB checks it: at most the family's length (IPv4 at least 1,
/// as its CRD says), and for each entry of a selected pool, no shorter than the widest of the
/// prefixes the entry is made of (a range is split into its CIDRs): shorter, every aggregate
/// of the entry's addresses would reach outside the pool. When only the entry's narrower
/// prefixes are narrower than the aggregate, MetalLB accepts it, and so does herald, with a
/// warning that some aggregates reach outside the pool.
fn aggregation(
    out: &mut Sink,
    known: &Known,
    r: &Res<BGPAdvertisement>,
    field: &str,
    value: Option<i32>,
    family: Family,
    selected: &BTreeSet<String>,
) -> u8 {
    let max: u8 = if family == Family::Ipv4 { 32 } else { 128 };
    let Some(written) = value else { return max };
    let of_family: Vec<&Entry> = known
        .entries
        .iter()
        .filter(|e| selected.contains(e.pool.name()) && e.range.family() == family)
        .collect();
    let least = if family == Family::Ipv4 { 1 } else { 0 };
    // MetalLB's IPv6 length has no lower bound; it matters only once a pool has IPv6.
    if written < 1 && family == Family::Ipv6 && of_family.is_empty() {
        let problem = "not a prefix length, but no pool this advertisement selects has IPv6 \
                       addresses, so it is not used";
        out.warning(r, field, written, problem, "use 1 to 128, or remove it");
        return max;
    }
    let len = match u8::try_from(written) {
        Ok(len) if (least..=max).contains(&len) => len,
        _ => {
            let problem = format!("an {family} aggregation length is {least} to {max}");
            let fix =
                format!("use {least} to {max}, or remove it to announce each address as a /{max}");
            out.error(r, field, written, problem, fix);
            return max;
        }
    };
    let short = field.trim_start_matches("spec.");
    for e in &of_family {
        let cidrs = crate::net::range_cidrs(&e.range);
        let widest = cidrs.iter().map(IpNet::prefix_len).min().unwrap_or(max);
        let narrowest = cidrs
            .iter()
            .max_by_key(|c| (c.prefix_len(), std::cmp::Reverse(c.addr())));
        if len < widest {
            let problem = format!(
                "IPAddressPool {} holds {:?} (spec.addresses[{}]), whose widest prefix is a \
                 /{widest}: every /{len} aggregate of its addresses would announce addresses \
                 outside the pool",
                e.pool.name(),
                e.text,
                e.index
            );
            let fix = format!(
                "set {short} to {widest} or more, or make the pool's entries whole /{len} prefixes"
            );
            out.error(r, field, written, problem, fix);
        } else if let Some(cidr) = narrowest.filter(|c| c.prefix_len() > len) {
            let problem = format!(
                "IPAddressPool {} holds {:?} (spec.addresses[{}]), which includes {cidr}, \
                 narrower than /{len}: aggregates of the addresses there announce addresses \
                 outside the pool (MetalLB accepts this, as long as part of the entry fits)",
                e.pool.name(),
                e.text,
                e.index
            );
            let fix = format!(
                "set {short} to {} to stay inside the pool, or make the entry whole /{len} \
                 prefixes",
                cidr.prefix_len()
            );
            out.warning(r, field, written, problem, fix);
        }
    }
    if of_family.is_empty() && !selected.is_empty() {
        let problem = format!("no pool this advertisement selects has {family} addresses");
        let fix = format!("remove it, or select a pool with {family} addresses");
        out.warning(r, field, written, problem, fix);
    }
    len
}

/// MetalLB's rule that a list field names each item once.
fn duplicates<T: Resource<DynamicType = ()>>(
    out: &mut Sink,
    r: &Res<T>,
    path: &str,
    items: &[String],
) {
    for (i, item) in items.iter().enumerate() {
        if let Some(j) = items[..i].iter().position(|x| x == item) {
            let problem = format!("{item:?} is already listed as {path}[{j}]");
            out.error(r, &format!("{path}[{i}]"), item, problem, "list it once");
        }
    }
}

/// The pools a selection picks (all of them when it names none).
fn selected_pools<'a>(known: &'a Known, selection: &PoolSelection) -> Vec<&'a Pool> {
    known
        .pools
        .values()
        .filter(|p| crate::plan::selects_pool(selection, p))
        .collect()
}

/// MetalLB's rule on LOCAL_PREF: two BGPAdvertisements without service selectors that
/// announce a pool's addresses as the same prefixes (the same aggregation length for each
/// family the pool has), to a peer both target (an empty `peers` targets all), from a node
/// both select, must set the same localPref (unset counts as 0, as in MetalLB), since one
/// route carries one LOCAL_PREF. Which nodes both select is judged among the Node objects
/// known (in Kubernetes mode, this node's), as MetalLB's speaker judges its own node.
fn local_pref_conflicts(
    out: &mut Sink,
    known: &Known,
    raw: &[&Res<BGPAdvertisement>],
    ads: &BTreeMap<String, BgpAdvertisement>,
) {
    let res_of = |name: &str| raw.iter().find(|r| r.name() == name).copied();
    let mut reported = BTreeSet::new();
    for pool in known.pools.values() {
        let has = |f| pool.has_family(f);
        let on_pool: Vec<&BgpAdvertisement> = ads
            .values()
            .filter(|a| a.service_selectors.is_empty())
            .filter(|a| crate::plan::selects_pool(&a.pools, pool))
            .collect();
        for (j, b) in on_pool.iter().enumerate() {
            for a in &on_pool[..j] {
                let (pa, pb) = (a.local_pref.unwrap_or(0), b.local_pref.unwrap_or(0));
                if pa == pb {
                    continue;
                }
                let v4_differs = a.aggregation_length != b.aggregation_length;
                let v6_differs = a.aggregation_length_v6 != b.aggregation_length_v6;
                let lengths_differ = (!has(Family::Ipv4) && !has(Family::Ipv6))
                    || (v4_differs && !has(Family::Ipv6))
                    || (v6_differs && !has(Family::Ipv4))
                    || (v4_differs && v6_differs);
                let peers_apart =
                    !a.peers.is_empty() && !b.peers.is_empty() && a.peers.is_disjoint(&b.peers);
                let node = known.nodes.values().find(|n| {
                    any_matches(&a.node_selectors, &n.labels)
                        && any_matches(&b.node_selectors, &n.labels)
                });
                let Some(node) = node.filter(|_| !lengths_differ && !peers_apart) else {
                    continue;
                };
                if !reported.insert((a.name.clone(), b.name.clone())) {
                    continue;
                }
                let Some(r) = res_of(&b.name) else { continue };
                let problem = format!(
                    "localPref {pb} differs from BGPAdvertisement {}'s localPref {pa}, yet both \
                     announce IPAddressPool {}'s addresses as the same prefixes to the same \
                     peers from node {} (among others): one route carries one LOCAL_PREF",
                    a.name, pool.name, node.name
                );
                let fix = "give both the same localPref, or make them differ in the pools, nodes \
                           or peers they select, or in their aggregation lengths (unset counts \
                           as 0)";
                out.error(r, "spec.localPref", pb, problem, fix);
            }
        }
    }
}

/// MetalLB's rule that a BGP session announcing IPv6 addresses does not use BFD echo mode.
fn bfd_echo_over_ipv6(
    out: &mut Sink,
    known: &Known,
    raw: &[&Res<BGPAdvertisement>],
    ads: &BTreeMap<String, BgpAdvertisement>,
) {
    for r in raw {
        let Some(ad) = ads.get(r.name()) else {
            continue;
        };
        let Some(pool) = selected_pools(known, &ad.pools)
            .into_iter()
            .find(|p| p.has_family(Family::Ipv6))
        else {
            continue;
        };
        let echo = known
            .peers
            .values()
            .filter(|p| ad.peers.is_empty() || ad.peers.contains(&p.name))
            .find_map(|p| {
                let profile = known.bfd_profiles.get(p.bfd_profile.as_deref()?)?;
                profile.echo_mode.then_some((p, profile))
            });
        if let Some((peer, profile)) = echo {
            let problem = format!(
                "announces IPv6 addresses of IPAddressPool {} to BGPPeer {}, whose BFDProfile \
                 {} has echoMode on, which BFD cannot do over IPv6",
                pool.name, peer.name, profile.name
            );
            let fix = format!(
                "turn echoMode off in BFDProfile {}, or keep this advertisement from that peer \
                 (spec.peers)",
                profile.name
            );
            let field = if ad.peers.is_empty() {
                ""
            } else {
                "spec.peers"
            };
            out.error(r, field, "", problem, fix);
        }
    }
}

fn asn(out: &mut Sink, r: &Res<BGPPeer>, field: &str, asn: u32) {
    let fix = "use a real AS number from 1 to 4294967295 \
               (private: 64512-65534, 4200000000-4294967294)";
    match asn {
        0 => {
            let problem = "AS 0 is reserved and cannot be used in a session (RFC 7607)";
            out.error(r, field, asn, problem, fix);
        }
        // MetalLB accepts it; a router may not.
        AS_TRANS => {
            let problem = "AS 23456 is AS_TRANS, which only stands in for 4-octet AS numbers \
                           (RFC 6793); routers may refuse a session with it";
            out.warning(r, field, asn, problem, fix);
        }
        _ => {}
    }
}

fn peer(out: &mut Sink, known: &Known, r: &Res<BGPPeer>) -> Option<Peer> {
    let errors_before = out.errors();
    let s = &r.object.spec;
    // MetalLB's fields are plain Go values: an empty string, or a peerASN of 0, is unset.
    let set = |v: &Option<String>| v.clone().filter(|t| !t.is_empty());
    let (peer_address, interface) = (set(&s.peer_address), set(&s.interface));
    let (source_text, router_id_text) = (set(&s.source_address), set(&s.router_id));
    let bfd_profile = set(&s.bfd_profile);

    asn(out, r, "spec.myASN", s.my_asn);
    if let Some(local) = s.local_asn {
        asn(out, r, "spec.localASN", local);
    }
    let local_as = s.local_asn.unwrap_or(s.my_asn);
    let peer_asn = match (s.peer_asn.filter(|a| *a != 0), s.dynamic_asn) {
        (Some(fixed), None) => {
            asn(out, r, "spec.peerASN", fixed);
            PeerAsn::Fixed(fixed)
        }
        (None, Some(DynamicAsn::Internal)) => PeerAsn::Internal,
        (None, Some(DynamicAsn::External)) => PeerAsn::External,
        (Some(fixed), Some(_)) => {
            let fix = "keep peerASN for a router of a known AS, \
                       or dynamicASN (internal | external) to accept any";
            out.error(
                r,
                "spec.dynamicASN",
                "",
                "peerASN and dynamicASN are exclusive",
                fix,
            );
            PeerAsn::Fixed(fixed)
        }
        (None, None) => {
            let fix = "set peerASN to the router's AS number, or dynamicASN: internal | external";
            let value = s.peer_asn.map(|a| a.to_string()).unwrap_or_default();
            let problem = "neither peerASN (0 counts as unset) nor dynamicASN is set";
            out.error(r, "spec.peerASN", value, problem, fix);
            PeerAsn::External
        }
    };

    let endpoint = match (&peer_address, &interface) {
        (Some(_), Some(i)) => {
            let fix = "keep peerAddress for a numbered session, \
                       or interface for unnumbered peering over that link";
            out.error(
                r,
                "spec.interface",
                i,
                "peerAddress and interface are exclusive",
                fix,
            );
            None
        }
        (None, None) => {
            let fix =
                "set peerAddress to the router's address, or interface for unnumbered peering";
            out.error(
                r,
                "spec.peerAddress",
                "",
                "neither peerAddress nor interface is set",
                fix,
            );
            None
        }
        (Some(text), None) => out
            .parsed(r, "spec.peerAddress", Some(text), parse_ip, |e| e.fix())
            .map(PeerEndpoint::Address),
        (None, Some(i)) => Some(PeerEndpoint::Interface(i.clone())),
    };
    let source = source_text.as_deref();
    let source_address = out.parsed(r, "spec.sourceAddress", source, parse_ip, |e| e.fix());
    if let (Some(src), Some(PeerEndpoint::Address(dst))) = (source_address, &endpoint)
        && src.is_ipv4() != dst.is_ipv4()
    {
        // MetalLB accepts it; the session cannot come up.
        let (sf, df) = (Family::of(&src), Family::of(dst));
        let problem =
            format!("the source is {sf} but peerAddress {dst} is {df}: no session can be made");
        let fix = format!("use an {df} source address, or remove sourceAddress");
        out.warning(r, "spec.sourceAddress", src, problem, fix);
    }

    let port = match s.peer_port {
        None => 179,
        Some(p) if (1..=16384).contains(&p) => p,
        Some(p) => {
            let fix = "use the router's BGP port, normally 179 (the default)";
            out.error(r, "spec.peerPort", p, "must be from 1 to 16384", fix);
            179
        }
    };

    let (hold_time, keepalive_time) = timers(out, r);
    let connect_time = {
        let text = s.connect_time.as_deref();
        let field = "spec.connectTime";
        let parsed = out.parsed(r, field, text, parse_duration, |e| e.fix());
        if let Some(c) = parsed
            && (c.subsec_nanos() != 0 || !(1..=65535).contains(&c.as_secs()))
        {
            let problem = "a connect time is whole seconds from 1 to 65535";
            out.error(
                r,
                field,
                text.unwrap_or_default(),
                problem,
                "write whole seconds, such as 10s",
            );
        }
        parsed
    };

    let router_id = router_id_text.as_deref().and_then(|text| {
        let e = match parse_ipv4(text) {
            Ok(id) => return Some(id),
            Err(e) => e,
        };
        match parse_ip(text) {
            // MetalLB accepts any address; a BGP identifier is 32 bits, so it cannot be used.
            Ok(_) => {
                let problem = "a router ID is a 32-bit number written as an IPv4 address, even \
                               on IPv6-only nodes; this one is ignored and the default is used";
                let fix = "write an IPv4 address such as 10.0.0.1, or remove routerID";
                out.warning(r, "spec.routerID", text, problem, fix);
            }
            Err(_) => out.error(r, "spec.routerID", text, e.to_string(), e.fix()),
        }
        None
    });

    let password = password(out, known, r);
    if let Some(name) = &bfd_profile
        && !known.bfd_profiles.contains_key(name)
        && !known.unreadable("BFDProfile", name)
    {
        let problem = format!("no BFDProfile is named {name:?}");
        let fix = format!(
            "name an existing profile ({}), create a BFDProfile named {name:?}, \
             or remove bfdProfile",
            known_names(name, known.bfd_profiles.keys())
        );
        out.error(r, "spec.bfdProfile", name, problem, fix);
    }
    let ebgp_multihop = s.ebgp_multi_hop.unwrap_or(false);
    let ibgp_because = match peer_asn {
        PeerAsn::Fixed(asn) if asn == s.my_asn => Some(format!("peerASN {asn} is myASN")),
        PeerAsn::Fixed(asn) if asn == local_as => Some(format!("peerASN {asn} is localASN")),
        PeerAsn::Internal => Some("dynamicASN is internal".to_owned()),
        _ => None,
    };
    if let Some(why) = ibgp_because.filter(|_| ebgp_multihop) {
        let problem = format!("ebgpMultiHop is for eBGP sessions, and this one is iBGP ({why})");
        let fix = "remove ebgpMultiHop; iBGP sessions may already span several hops";
        // MetalLB rejects exactly peerASN == myASN; the other iBGP cases it accepts.
        let severity = match peer_asn {
            PeerAsn::Fixed(asn) if asn == s.my_asn => Severity::Error,
            _ => Severity::Warning,
        };
        out.push(severity, r, "spec.ebgpMultiHop", true, problem, fix);
    }
    let disable_mp = s.disable_mp.unwrap_or(false);
    let dual_stack = s.dual_stack_address_family.unwrap_or(false);
    if disable_mp && dual_stack {
        // MetalLB accepts both; herald follows the newer field.
        let problem = "contradicts disableMP: true, which keeps each family on its own \
                       session; herald follows dualStackAddressFamily";
        let fix = "remove disableMP (MetalLB deprecates it) and keep dualStackAddressFamily, \
                   or set dualStackAddressFamily to false";
        out.warning(r, "spec.dualStackAddressFamily", true, problem, fix);
    }
    let node_selectors = out.selectors(r, "spec.nodeSelectors", &s.node_selectors);

    if out.errors() > errors_before {
        return None;
    }
    Some(Peer {
        name: r.name().to_owned(),
        my_asn: s.my_asn,
        peer_asn,
        local_asn: s.local_asn,
        endpoint: endpoint?,
        source_address,
        port,
        hold_time: hold_time?,
        keepalive_time: keepalive_time?,
        connect_time,
        router_id,
        node_selectors,
        password,
        bfd_profile,
        graceful_restart: s.enable_graceful_restart.unwrap_or(false),
        ebgp_multihop,
        vrf: s.vrf.clone().filter(|v| !v.is_empty()),
        disable_mp,
        dual_stack_address_family: dual_stack,
    })
}

/// Hold and keepalive times, as MetalLB derives them: 90 s and 30 s when neither is set, a
/// third of the hold time when only it is set, three keepalives when only the keepalive is.
/// The keepalive may not be longer than the hold time. BGP carries whole seconds: the hold
/// time is rounded down (as MetalLB does), and must then be 0 or at least 3 s (RFC 4271) and
/// fit the OPEN message's 16 bits; a hold time of 0 turns keepalives off.
fn timers(out: &mut Sink, r: &Res<BGPPeer>) -> (Option<Duration>, Option<Duration>) {
    let s = &r.object.spec;
    let (hold_text, keepalive_text) = (s.hold_time.as_deref(), s.keepalive_time.as_deref());
    let (hold_field, keepalive_field) = ("spec.holdTime", "spec.keepaliveTime");
    let given_hold = out.parsed(r, hold_field, hold_text, parse_duration, |e| e.fix());
    let given_keepalive = out.parsed(r, keepalive_field, keepalive_text, parse_duration, |e| {
        e.fix()
    });
    if (hold_text.is_some() && given_hold.is_none())
        || (keepalive_text.is_some() && given_keepalive.is_none())
    {
        return (None, None);
    }
    let (hold, keepalive) = match (given_hold, given_keepalive) {
        (None, None) => (Duration::from_secs(90), Duration::from_secs(30)),
        (Some(h), None) => (h, h / 3),
        (None, Some(k)) => (k.saturating_mul(3), k),
        (Some(h), Some(k)) => (h, k),
    };
    // Where the hold time came from, for messages about it.
    let (field, text, derived) = match hold_text {
        Some(t) => (hold_field, t.to_owned(), String::new()),
        None => (
            keepalive_field,
            keepalive_text.unwrap_or_default().to_owned(),
            format!(
                " (the hold time is 3 × keepaliveTime = {}s)",
                hold.as_secs_f64()
            ),
        ),
    };
    if keepalive > hold {
        let problem = if hold.is_zero() {
            "holdTime is 0, which turns keepalives off".to_owned()
        } else {
            format!(
                "longer than the hold time ({}s): the peer would drop the session between \
                 keepalives",
                hold.as_secs_f64()
            )
        };
        let fix = "use at most the hold time, usually a third of it; or remove keepaliveTime";
        out.error(
            r,
            keepalive_field,
            keepalive_text.unwrap_or_default(),
            problem,
            fix,
        );
        return (None, None);
    }
    let whole = Duration::from_secs(hold.as_secs());
    let problem = if !whole.is_zero() && whole < Duration::from_secs(3) {
        Some("a hold time is 0 (no keepalives) or at least 3 seconds (RFC 4271)")
    } else if whole > Duration::from_secs(65535) {
        Some("a hold time is at most 65535 seconds (it is sent in a 16-bit field)")
    } else {
        None
    };
    if let Some(problem) = problem {
        let fix = "use 0, or whole seconds from 3s up to 65535s; 90s is the default";
        out.error(r, field, &text, format!("{problem}{derived}"), fix);
        return (None, None);
    }
    if whole != hold {
        let problem = format!(
            "BGP carries the hold time in whole seconds, so it is sent as {}s{derived}",
            whole.as_secs()
        );
        out.warning(r, field, &text, problem, "write whole seconds");
    }
    if whole.is_zero() && !keepalive.is_zero() {
        let problem = format!(
            "the hold time rounds down to 0, which turns keepalives off{derived}; \
             keepaliveTime is not used"
        );
        let fix = "write a hold time of 3s or more, or 0 and no keepaliveTime";
        out.warning(r, field, &text, problem, fix);
        return (Some(whole), Some(Duration::ZERO));
    }
    (Some(whole), Some(keepalive))
}

/// The TCP MD5 password, inline or from a basic-auth Secret. Its value never appears in a
/// diagnostic.
fn password(out: &mut Sink, known: &Known, r: &Res<BGPPeer>) -> Option<Password> {
    let s = &r.object.spec;
    let inline = s.password.clone().filter(|p| !p.is_empty());
    let Some(reference) = &s.password_secret else {
        return inline.map(Password::Inline);
    };
    let field = "spec.passwordSecret";
    // MetalLB reads a passwordSecret only when it names a Secret.
    let unnamed = reference.name.as_deref().is_none_or(str::is_empty);
    if unnamed {
        let problem = "names no Secret, so it is ignored";
        let fix = format!("set passwordSecret.name to a {BASIC_AUTH} Secret, or remove it");
        out.warning(r, "spec.passwordSecret.name", "", problem, fix);
        return inline.map(Password::Inline);
    }
    if inline.is_some() {
        let fix = "keep passwordSecret (the password stays out of the configuration), \
                   or password, not both";
        out.error(
            r,
            field,
            "",
            "password and passwordSecret are exclusive",
            fix,
        );
        return None;
    }
    let name = reference.name.as_deref().filter(|n| !n.is_empty())?;
    let namespace = reference.namespace.as_deref().unwrap_or(namespace_of(r));
    let shown = format!("{namespace}/{name}");
    let Some(secret) = known
        .secrets
        .iter()
        .find(|x| x.name() == name && namespace_of(x) == namespace)
    else {
        if known.unreadable("Secret", name) {
            return None;
        }
        let problem = format!("no Secret {shown} exists");
        let fix = format!(
            "create a Secret {name:?} of type {BASIC_AUTH} in namespace {namespace:?} \
             with a password key, or correct the reference"
        );
        out.error(r, field, &shown, problem, fix);
        return None;
    };
    let kind = secret.object.type_.as_deref().unwrap_or("Opaque");
    if kind != BASIC_AUTH {
        let problem = format!(
            "Secret {shown} has type {kind}, but a BGP password is read only from \
             a {BASIC_AUTH} Secret"
        );
        out.error(
            r,
            field,
            &shown,
            problem,
            format!("give the Secret type: {BASIC_AUTH}"),
        );
        return None;
    }
    // The API server merges stringData over data when it stores a Secret; do the same.
    let object = &secret.object;
    let from_string = || {
        object
            .string_data
            .as_ref()?
            .get("password")
            .map(|v| Ok(v.clone()))
    };
    let from_data = || {
        let bytes = object.data.as_ref()?.get("password")?;
        Some(String::from_utf8(bytes.0.clone()))
    };
    let problem = match from_string().or_else(from_data) {
        Some(Ok(value)) if !value.is_empty() => {
            let (namespace, name) = (Some(namespace.to_owned()), name.to_owned());
            return Some(Password::Secret {
                namespace,
                name,
                value,
            });
        }
        Some(Ok(_)) => {
            // MetalLB reads it as no password.
            let problem = format!(
                "the password key of Secret {shown} is empty, so the session has no password"
            );
            let fix = "put the password under the key password, or remove passwordSecret";
            out.warning(r, field, &shown, problem, fix);
            return None;
        }
        Some(Err(_)) => "is not valid UTF-8",
        None => "is missing",
    };
    let problem = format!("the password key of Secret {shown} {problem}");
    let fix = "put the password under the key password \
               (data.password base64-encoded, or stringData.password)";
    out.error(r, field, &shown, problem, fix);
    None
}

/// Whether the Service is one herald announces: a LoadBalancer of its `loadBalancerClass`.
pub fn is_ours(r: &Res<Service>, class: Option<&str>) -> bool {
    let spec = r.object.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_deref()) == class
}

fn service_ref(r: &Res<Service>) -> ServiceRef {
    ServiceRef {
        namespace: namespace_of(r).to_owned(),
        name: r.name().to_owned(),
    }
}

/// A Service in a file that gives addresses but is not a LoadBalancer was probably meant
/// to be one; say so. (From the API server, such Services are simply not herald's.)
fn not_ours_in_file(out: &mut Sink, r: &Res<Service>) {
    let spec = r.object.spec.as_ref();
    let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    let status = r.object.status.as_ref();
    let has_ingress = status
        .and_then(|s| s.load_balancer.as_ref()?.ingress.as_ref())
        .is_some_and(|i| !i.is_empty());
    if kind != "LoadBalancer" && has_ingress && r.origin.file.is_some() {
        let problem = format!(
            "the Service is of type {kind}, so its status.loadBalancer.ingress addresses \
             will not be announced"
        );
        out.warning(r, "spec.type", kind, problem, "set spec.type: LoadBalancer");
    }
}

/// Ready and serving nodes per Service of `ours`, from the EndpointSlices that name one.
/// Slices of other Services are not looked at.
fn endpoints(
    out: &mut Sink,
    slices: &[&Res<EndpointSlice>],
    ours: &BTreeSet<ServiceRef>,
) -> BTreeMap<ServiceRef, Endpoints> {
    let mut by_service: BTreeMap<ServiceRef, Endpoints> = BTreeMap::new();
    for r in slices {
        let labels = r.object.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            let problem = format!(
                "has no {SERVICE_NAME_LABEL} label, so it belongs to no Service and is ignored"
            );
            let fix = format!("add the label {SERVICE_NAME_LABEL}: <name of the Service>");
            out.warning(r, "metadata.labels", "", problem, fix);
            continue;
        };
        let key = ServiceRef {
            namespace: namespace_of(r).to_owned(),
            name: service.clone(),
        };
        if !ours.contains(&key) {
            continue;
        }
        let eps = by_service.entry(key).or_default();
        for (i, e) in r.object.endpoints.iter().enumerate() {
            let Some(node) = &e.node_name else {
                let problem = "has no nodeName, so the node it runs on is unknown; it is ignored";
                let fix = "set nodeName to the node the endpoint runs on";
                out.warning(r, &format!("endpoints[{i}]"), "", problem, fix);
                continue;
            };
            let conditions = e.conditions.as_ref();
            // Kubernetes: an absent `ready` means ready; an absent `serving` means as ready.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            if ready {
                eps.ready.insert(node.clone());
            }
            if serving {
                eps.serving.insert(node.clone());
            }
        }
    }
    by_service
}

/// Annotations by which a Service asks for addresses, the current spelling first.
pub const LOAD_BALANCER_IPS_ANNOTATIONS: [&str; 2] = [
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];

/// One of our Services, as the plan needs it. What makes it unusable (an ingress address
/// that does not parse, an externalTrafficPolicy Kubernetes does not have, a malformed
/// `loadBalancerIPs` annotation) is a warning and one of its `problems`: the Service is then
/// skipped, alone, as MetalLB's speaker withdraws a Service with an invalid address.
fn service(
    out: &mut Sink,
    known: &Known,
    r: &Res<Service>,
    endpoints: &mut BTreeMap<ServiceRef, Endpoints>,
    mode: EndpointsMode,
) -> world::Service {
    let key = service_ref(r);
    let mut problems = Vec::new();
    let mut problem = |out: &mut Sink, field: &str, value: &str, problem: String, fix: &str| {
        problems.push(if value.is_empty() {
            format!("{field}: {problem}")
        } else {
            format!("{field} {value:?}: {problem}")
        });
        out.warning(r, field, value, problem, fix);
    };
    let spec = r.object.spec.as_ref();
    let policy = spec.and_then(|s| s.external_traffic_policy.as_deref());
    let external_traffic_policy = match policy {
        None | Some("Cluster") => TrafficPolicy::Cluster,
        Some("Local") => TrafficPolicy::Local,
        Some(other) => {
            let fix = match other.to_ascii_lowercase().as_str() {
                "local" => "write Local (the value is case-sensitive)",
                "cluster" => "write Cluster (the value is case-sensitive)",
                _ => "use Cluster (the default) or Local",
            };
            let field = "spec.externalTrafficPolicy";
            problem(out, field, other, "must be Cluster or Local".into(), fix);
            TrafficPolicy::Cluster
        }
    };

    let status = r.object.status.as_ref();
    let ingress = status
        .and_then(|s| s.load_balancer.as_ref()?.ingress.as_deref())
        .unwrap_or_default();
    let mut ips: Vec<IpAddr> = Vec::new();
    for (i, ing) in ingress.iter().enumerate() {
        let Some(text) = ing.ip.as_deref() else {
            continue;
        };
        match parse_ip(text) {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(e) => {
                let field = format!("status.loadBalancer.ingress[{i}].ip");
                let why = format!("{e}, so herald cannot announce the Service");
                let fix = "have the controller that assigned it write a valid address \
                           (MetalLB's speaker withdraws such a Service too)";
                problem(out, &field, text, why, fix);
            }
        }
    }

    let annotations = r.object.metadata.annotations.as_ref();
    let annotation =
        |names: &[&'static str]| names.iter().find_map(|a| Some((*a, annotations?.get(*a)?)));
    if let Some((name, text)) = annotation(&LOAD_BALANCER_IPS_ANNOTATIONS) {
        let bad = text
            .split(',')
            .map(str::trim)
            .find_map(|t| parse_ip(t).err().map(|e| (t, e)));
        if let Some((part, e)) = bad {
            let field = format!("metadata.annotations[{name:?}]");
            let why = format!(
                "{part:?} is not an address ({e}), so no controller assigns this Service's \
                 addresses from it and herald does not announce the Service"
            );
            let fix = "write the addresses separated by commas, such as 192.0.2.10,2001:db8::10";
            problem(out, &field, text, why, fix);
        }
    }
    let requested = annotation(&ADDRESS_POOL_ANNOTATIONS);
    if let Some((annotation, pool)) = requested
        .filter(|(_, p)| !known.pools.contains_key(*p) && !known.unreadable("IPAddressPool", p))
    {
        let problem = format!("no IPAddressPool is named {pool:?}");
        let fix = format!(
            "name an existing pool ({}), or create an IPAddressPool named {pool:?}",
            known_names(pool, known.pools.keys())
        );
        let field = format!("metadata.annotations[{annotation:?}]");
        out.warning(r, &field, pool, problem, fix);
        // The file loader keys the lines of map entries by their plain dotted path.
        if let Some(d) = out.0.last_mut() {
            d.origin = r.origin_at(&format!("metadata.annotations.{annotation}"));
        }
    }

    // Taken, not copied: each Service's endpoints are its own (a Service that is there twice
    // is reported by `unique`, and only the first is kept).
    let found = endpoints.remove(&key);
    let assumed_everywhere = mode == EndpointsMode::AssumeReadyEverywhere && found.is_none();
    let eps = Endpoints {
        assumed_everywhere,
        ..found.unwrap_or_default()
    };
    world::Service {
        labels: r.object.metadata.labels.clone().unwrap_or_default(),
        is_load_balancer: true,
        load_balancer_class: spec.and_then(|s| s.load_balancer_class.clone()),
        external_traffic_policy,
        ips,
        requested_pool: requested.map(|(_, p)| p.clone()),
        endpoints: eps,
        problems,
        key,
    }
}

fn node(r: &Res<Node>) -> world::Node {
    let labels = r.object.metadata.labels.clone().unwrap_or_default();
    let conditions = r
        .object
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref());
    let unavailable = |c: &&k8s_openapi::api::core::v1::NodeCondition| {
        c.type_ == "NetworkUnavailable" && c.status == "True"
    };
    world::Node {
        name: r.name().to_owned(),
        excluded_from_load_balancers: labels.contains_key(EXCLUDE_LABEL),
        network_unavailable: conditions
            .unwrap_or_default()
            .iter()
            .any(|c| unavailable(&c)),
        unschedulable: r
            .object
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        deleting: r.object.metadata.deletion_timestamp.is_some(),
        labels,
        problems: Vec::new(),
    }
}
