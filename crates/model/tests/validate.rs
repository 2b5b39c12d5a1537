//! One test per validation rule. Each starts from a configuration that is valid, makes one
//! mistake, and checks that exactly that mistake is reported: its field path, its value, the
//! problem and a fix, with no knock-on errors.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use model::community::{Community, LargeCommunity};
use model::crd::{
    BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, DynamicAsn, IPAddressPoolSpec,
};
use model::resources::FieldLines;
use model::world::{PeerAsn, PeerEndpoint, TrafficPolicy};
use model::{Checked, Diagnostic, EndpointsMode, Resources, Sourced, validate};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "metallb-system";

fn object<T: DeserializeOwned>(
    api_version: &str,
    kind: &str,
    name: &str,
    rest: Value,
) -> Sourced<T> {
    let mut v = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
    });
    merge(&mut v, rest);
    Sourced::new(serde_json::from_value(v).expect("a test object that deserializes"))
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

fn metallb<T: DeserializeOwned>(kind: &str, name: &str, spec: Value) -> Sourced<T> {
    let version = if kind == "BGPPeer" {
        "metallb.io/v1beta2"
    } else {
        "metallb.io/v1beta1"
    };
    object(version, kind, name, json!({ "spec": spec }))
}

fn service(name: &str, ns: &str, rest: Value) -> Sourced<Service> {
    let mut s: Sourced<Service> = object("v1", "Service", name, rest);
    s.object.metadata.namespace = Some(ns.to_owned());
    s
}

/// A configuration using most rules, with nothing wrong.
fn valid() -> Resources {
    Resources {
        pools: vec![
            object(
                "metallb.io/v1beta1",
                "IPAddressPool",
                "prod",
                json!({
                    "metadata": {"labels": {"tier": "front"}},
                    "spec": {"addresses": ["192.0.2.0/24", "2001:db8:1::/64"]},
                }),
            ),
            metallb(
                "IPAddressPool",
                "lab",
                json!({"addresses": ["198.51.100.10 - 198.51.100.20"]}),
            ),
        ],
        l2_advertisements: vec![metallb(
            "L2Advertisement",
            "l2",
            json!({"ipAddressPools": ["lab"], "interfaces": ["eth0"]}),
        )],
        bgp_advertisements: vec![metallb(
            "BGPAdvertisement",
            "bgp",
            json!({
                "ipAddressPools": ["prod"],
                "aggregationLength": 24,
                "aggregationLengthV6": 64,
                "localPref": 150,
                "communities": ["no-export", "tag", "64500:1"],
            }),
        )],
        bgp_peers: vec![
            metallb(
                "BGPPeer",
                "ibgp",
                json!({"myASN": 64500, "peerASN": 64500, "peerAddress": "10.0.0.1"}),
            ),
            metallb(
                "BGPPeer",
                "ebgp",
                json!({
                    "myASN": 64500, "peerASN": 64501, "peerAddress": "2001:db8::fe",
                    "holdTime": "30s", "bfdProfile": "fast", "passwordSecret": {"name": "bgp-auth"},
                    "routerID": "10.0.0.2",
                }),
            ),
        ],
        communities: vec![metallb(
            "Community",
            "aliases",
            json!({"communities": [{"name": "tag", "value": "large:64500:1:2"}]}),
        )],
        bfd_profiles: vec![metallb(
            "BFDProfile",
            "fast",
            json!({"receiveInterval": 100}),
        )],
        secrets: vec![object(
            "v1",
            "Secret",
            "bgp-auth",
            json!({"type": "kubernetes.io/basic-auth", "data": {"password": "czNjcmV0LXZhbHVl"}}),
        )],
        services: vec![service(
            "web",
            "default",
            json!({
                "metadata": {"annotations": {"metallb.io/address-pool": "prod"}},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "192.0.2.10"}, {"ip": "2001:db8:1::10"}, {"ip": "192.0.2.10"},
                ]}},
            }),
        )],
        endpoint_slices: vec![{
            let mut s: Sourced<EndpointSlice> = object(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                "web-abc",
                json!({
                    "metadata": {"labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4",
                    "endpoints": [
                        {"addresses": ["10.1.0.1"], "nodeName": "n1"},
                        {"addresses": ["10.1.0.2"], "nodeName": "n2",
                         "conditions": {"ready": false, "serving": true}},
                        {"addresses": ["10.1.0.3"], "nodeName": "n3",
                         "conditions": {"ready": false}},
                    ],
                }),
            );
            s.object.metadata.namespace = Some("default".into());
            s
        }],
        nodes: vec![
            object(
                "v1",
                "Node",
                "n1",
                json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}}),
            ),
            object(
                "v1",
                "Node",
                "n2",
                json!({"spec": {"unschedulable": true},
                       "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True"}]}}),
            ),
            object(
                "v1",
                "Node",
                "n3",
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
                       "status": {"conditions": [{"type": "NetworkUnavailable", "status": "False"}]}}),
            ),
        ],
        ..Resources::default()
    }
}

/// The one diagnostic `res` gives, which must read `head` (`severity kind field = "value"`),
/// have `problem` in its problem, be located, carry a fix, and (an error) withhold the World.
#[track_caller]
fn expect(res: &Resources, head: &str, problem: &str) -> Diagnostic {
    let checked = validate(res);
    let [d] = checked.diagnostics.as_slice() else {
        panic!("want exactly one diagnostic, got:\n{}", shown(&checked));
    };
    let severity = format!("{:?}", d.severity).to_lowercase();
    let mut got = format!("{severity} {} {}", d.resource.kind, d.field);
    if let Some(v) = &d.value {
        got += &format!(" = {v:?}");
    }
    assert_eq!(got, head, "{d}");
    assert!(
        d.problem.contains(problem),
        "problem lacks {problem:?}: {d}"
    );
    assert!(
        d.fix.as_deref().is_some_and(|f| !f.is_empty()),
        "no fix: {d}"
    );
    assert_eq!(checked.world.is_some(), !d.is_error(), "{d}");
    d.clone()
}

fn shown(c: &Checked) -> String {
    c.diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

fn pool_spec(res: &mut Resources, i: usize) -> &mut IPAddressPoolSpec {
    &mut res.pools[i].object.spec
}

fn bgp_ad(res: &mut Resources) -> &mut BGPAdvertisementSpec {
    &mut res.bgp_advertisements[0].object.spec
}

/// 0: the iBGP peer, 1: the eBGP peer.
fn peer(res: &mut Resources, i: usize) -> &mut BGPPeerSpec {
    &mut res.bgp_peers[i].object.spec
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_valid_configuration_builds_the_world() {
    let checked = validate(&valid());
    assert!(checked.diagnostics.is_empty(), "{}", shown(&checked));
    let w = checked.world.expect("a world");

    let prod = &w.pools["prod"];
    assert_eq!(
        prod.cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["192.0.2.0/24", "2001:db8:1::/64"]
    );
    assert!(prod.auto_assign && !prod.avoid_buggy_ips);
    assert_eq!(
        w.pools["lab"].ranges[0].to_string(),
        "198.51.100.10-198.51.100.20"
    );

    let ibgp = &w.peers["ibgp"];
    assert_eq!(
        (ibgp.hold_time, ibgp.keepalive_time, ibgp.port),
        (Duration::from_secs(90), Duration::from_secs(30), 179)
    );
    assert_eq!(ibgp.peer_asn, PeerAsn::Fixed(64500));
    assert!(ibgp.is_ibgp());
    let ebgp = &w.peers["ebgp"];
    assert_eq!(
        (ebgp.hold_time, ebgp.keepalive_time),
        (Duration::from_secs(30), Duration::from_secs(10))
    );
    assert_eq!(ebgp.endpoint, PeerEndpoint::Address(ip("2001:db8::fe")));
    assert_eq!(
        ebgp.password.as_ref().map(|p| p.value()),
        Some("s3cret-value")
    );
    assert_eq!(ebgp.router_id, Some("10.0.0.2".parse().unwrap()));

    let fast = &w.bfd_profiles["fast"];
    assert_eq!(
        (
            fast.receive_interval_ms,
            fast.transmit_interval_ms,
            fast.detect_multiplier,
            fast.echo_interval_ms,
            fast.minimum_ttl
        ),
        (100, 300, 3, 50, 254)
    );

    let bgp = &w.bgp_advertisements["bgp"];
    assert_eq!(
        (bgp.aggregation_length, bgp.aggregation_length_v6),
        (24, 64)
    );
    assert_eq!(
        bgp.communities.iter().copied().collect::<Vec<_>>(),
        [Community::new(64500, 1), Community::NO_EXPORT]
    );
    assert_eq!(
        bgp.large_communities.iter().copied().collect::<Vec<_>>(),
        [LargeCommunity {
            global_admin: 64500,
            local_data_1: 1,
            local_data_2: 2
        }]
    );
    assert_eq!(w.l2_advertisements["l2"].interfaces.len(), 1);

    let web = w.services.values().next().expect("the service");
    assert_eq!(web.key.to_string(), "default/web");
    assert!(web.is_load_balancer);
    assert_eq!(web.external_traffic_policy, TrafficPolicy::Local);
    assert_eq!(
        web.ips,
        [ip("192.0.2.10"), ip("2001:db8:1::10")],
        "in order, without duplicates"
    );
    assert_eq!(web.requested_pool.as_deref(), Some("prod"));
    // n1: no conditions (ready, and so serving); n2: terminating but serving; n3: neither.
    assert_eq!(web.endpoints.ready.iter().collect::<Vec<_>>(), ["n1"]);
    assert_eq!(
        web.endpoints.serving.iter().collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    assert!(!web.endpoints.assumed_everywhere);

    assert!(w.nodes["n1"].excluded_from_load_balancers && !w.nodes["n1"].network_unavailable);
    assert!(w.nodes["n2"].network_unavailable && !w.nodes["n2"].excluded_from_load_balancers);
    assert!(!w.nodes["n3"].network_unavailable);
    // Going away: cordoned (n2), being deleted (n3).
    let away = |n: &str| (w.nodes[n].unschedulable, w.nodes[n].deleting);
    assert_eq!(
        [away("n1"), away("n2"), away("n3")],
        [(false, false), (true, false), (false, true)]
    );
}

#[test]
fn every_object_needs_a_name() {
    let mut res = valid();
    res.bfd_profiles[0].object.metadata.name = None;
    res.bgp_peers[1].object.spec.bfd_profile = None;
    expect(&res, "error BFDProfile metadata.name", "no name");
}

#[test]
fn names_are_unique_per_kind() {
    let mut res = valid();
    res.pools.push(metallb(
        "IPAddressPool",
        "prod",
        json!({"addresses": ["203.0.113.0/24"]}),
    ));
    expect(
        &res,
        r#"error IPAddressPool metadata.name = "prod""#,
        "another IPAddressPool",
    );
}

#[test]
fn a_bad_ipv6_group_is_named() {
    let mut res = valid();
    pool_spec(&mut res, 0).addresses[1] = "2001:db8:prod::/64".into();
    res.bgp_advertisements[0].object.spec.aggregation_length_v6 = None;
    let d = expect(
        &res,
        r#"error IPAddressPool spec.addresses[1] = "2001:db8:prod::/64""#,
        r#"group 3 "prod" is not hexadecimal (an IPv6 group is 1 to 4 hex digits)"#,
    );
    assert!(d.fix.unwrap().contains("\"prod\""));
}

#[test]
fn a_pool_needs_addresses() {
    let mut res = valid();
    pool_spec(&mut res, 1).addresses.clear();
    expect(&res, "error IPAddressPool spec.addresses", "no addresses");
}

#[test]
fn entries_of_one_pool_must_not_overlap() {
    let mut res = valid();
    pool_spec(&mut res, 1)
        .addresses
        .push("198.51.100.16/30".into());
    expect(
        &res,
        r#"error IPAddressPool spec.addresses[1] = "198.51.100.16/30""#,
        r#"overlaps spec.addresses[0] "198.51.100.10 - 198.51.100.20" of this pool; both hold 198.51.100.16-198.51.100.19"#,
    );
}

#[test]
fn pools_must_not_overlap_and_both_are_named() {
    let mut res = valid();
    res.pools.push(metallb(
        "IPAddressPool",
        "more",
        json!({"addresses": ["2001:db8:1:0:8000::/65"]}),
    ));
    let d = expect(
        &res,
        r#"error IPAddressPool spec.addresses[0] = "2001:db8:1:0:8000::/65""#,
        r#"overlaps spec.addresses[1] "2001:db8:1::/64" of IPAddressPool prod"#,
    );
    assert_eq!(d.resource.name, "more");
}

#[test]
fn host_bits_are_a_warning_and_the_network_is_used() {
    let mut res = valid();
    pool_spec(&mut res, 0).addresses[0] = "192.0.2.5/24".into();
    let d = expect(
        &res,
        r#"warning IPAddressPool spec.addresses[0] = "192.0.2.5/24""#,
        "read as 192.0.2.0/24",
    );
    assert!(d.fix.unwrap().contains("192.0.2.5/32"));
    let w = validate(&res).world.unwrap();
    assert_eq!(w.pools["prod"].cidrs[0].to_string(), "192.0.2.0/24");
}

#[test]
fn service_allocation_selectors_are_checked() {
    let mut res = valid();
    pool_spec(&mut res, 1).service_allocation = Some(
        serde_json::from_value(json!({"serviceSelectors": [{"matchExpressions": [{"key": "app", "operator": "Equals"}]}]}))
            .unwrap(),
    );
    expect(
        &res,
        r#"error IPAddressPool spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator = "Equals""#,
        "unknown operator",
    );
}

#[test]
fn advertisements_name_existing_pools() {
    let mut res = valid();
    res.l2_advertisements[0].object.spec.ip_address_pools = vec!["lba".into()];
    let d = expect(
        &res,
        r#"error L2Advertisement spec.ipAddressPools[0] = "lba""#,
        r#"no IPAddressPool is named "lba""#,
    );
    assert!(d.fix.unwrap().contains("did you mean \"lab\"?"));
}

#[test]
fn interface_names_are_not_empty() {
    let mut res = valid();
    res.l2_advertisements[0]
        .object
        .spec
        .interfaces
        .push(" ".into());
    expect(
        &res,
        r#"error L2Advertisement spec.interfaces[1] = " ""#,
        "empty",
    );
}

#[test]
fn advertisement_selectors_are_checked() {
    let mut res = valid();
    res.l2_advertisements[0].object.spec.node_selectors = vec![
        serde_json::from_value(json!({"matchExpressions": [{"key": "k", "operator": "In"}]}))
            .unwrap(),
    ];
    expect(
        &res,
        "error L2Advertisement spec.nodeSelectors[0].matchExpressions[0].values",
        "at least one value",
    );
}

#[test]
fn aggregation_lengths_have_ranges() {
    let mut res = valid();
    bgp_ad(&mut res).aggregation_length = Some(33);
    expect(
        &res,
        r#"error BGPAdvertisement spec.aggregationLength = "33""#,
        "1 to 32",
    );
    let mut res = valid();
    bgp_ad(&mut res).aggregation_length_v6 = Some(0);
    expect(
        &res,
        r#"error BGPAdvertisement spec.aggregationLengthV6 = "0""#,
        "1 to 128",
    );
}

#[test]
fn an_aggregate_must_stay_inside_the_pool() {
    let mut res = valid();
    bgp_ad(&mut res).aggregation_length = Some(16);
    let d = expect(
        &res,
        r#"error BGPAdvertisement spec.aggregationLength = "16""#,
        r#"IPAddressPool prod holds 192.0.2.0/24 (from spec.addresses[0] "192.0.2.0/24"), narrower than /16"#,
    );
    assert!(d.fix.unwrap().contains("aggregationLength to 24 or more"));

    // A range is judged by its own CIDRs: 198.51.100.10-20 ends in a /32.
    let mut res = valid();
    let ad = bgp_ad(&mut res);
    ad.ip_address_pools = vec!["lab".into()];
    ad.aggregation_length = Some(28);
    ad.aggregation_length_v6 = None;
    let head = r#"error BGPAdvertisement spec.aggregationLength = "28""#;
    expect(&res, head, "holds 198.51.100.20/32");
}

#[test]
fn an_aggregation_length_for_a_family_no_pool_has_is_a_warning() {
    let mut res = valid();
    bgp_ad(&mut res).ip_address_pools = vec!["lab".into()];
    bgp_ad(&mut res).aggregation_length = None;
    expect(
        &res,
        r#"warning BGPAdvertisement spec.aggregationLengthV6 = "64""#,
        "has IPv6 addresses",
    );
}

#[test]
fn community_literals_are_checked() {
    let mut res = valid();
    bgp_ad(&mut res).communities.push("64500:70000".into());
    expect(
        &res,
        r#"error BGPAdvertisement spec.communities[3] = "64500:70000""#,
        r#""70000" is not a number from 0 to 65535"#,
    );
}

#[test]
fn unknown_community_aliases_list_the_known_ones() {
    let mut res = valid();
    bgp_ad(&mut res).communities.push("tga".into());
    let d = expect(
        &res,
        r#"error BGPAdvertisement spec.communities[3] = "tga""#,
        r#"no Community alias is named "tga" (known aliases: tag)"#,
    );
    assert!(d.fix.unwrap().contains("did you mean \"tag\"?"));
}

#[test]
fn advertisements_name_existing_peers() {
    let mut res = valid();
    bgp_ad(&mut res).peers = vec!["ibgp".into(), "router9".into()];
    expect(
        &res,
        r#"error BGPAdvertisement spec.peers[1] = "router9""#,
        r#"no BGPPeer is named "router9""#,
    );
}

#[test]
fn local_pref_towards_ebgp_only_is_a_warning() {
    let mut res = valid();
    bgp_ad(&mut res).peers = vec!["ebgp".into()];
    expect(
        &res,
        r#"warning BGPAdvertisement spec.localPref = "150""#,
        "every peer this advertisement goes to (ebgp) is eBGP",
    );
    // With the iBGP peer among them, it is sent there: no warning.
    bgp_ad(&mut res).peers = vec![];
    assert!(validate(&res).diagnostics.is_empty());
}

#[test]
fn community_values_parse_and_aliases_are_unique() {
    let mut res = valid();
    res.communities[0].object.spec.communities[0].value = "large:1:2".into();
    expect(
        &res,
        r#"error Community spec.communities[0].value = "large:1:2""#,
        "three numbers",
    );

    let mut res = valid();
    res.communities.push(metallb(
        "Community",
        "more",
        json!({"communities": [{"name": "tag", "value": "64500:9"}]}),
    ));
    expect(
        &res,
        r#"error Community spec.communities[0].name = "tag""#,
        "already defined by Community aliases",
    );
}

#[test]
fn as_numbers_are_real() {
    for (field, value, set) in [
        (
            "spec.myASN",
            "0",
            (|p: &mut BGPPeerSpec| p.my_asn = 0) as fn(&mut _),
        ),
        ("spec.peerASN", "23456", |p| p.peer_asn = Some(23456)),
        ("spec.localASN", "23456", |p| p.local_asn = Some(23456)),
    ] {
        let mut res = valid();
        set(peer(&mut res, 1));
        expect(&res, &format!("error BGPPeer {field} = \"{value}\""), "AS ");
    }
}

#[test]
fn exactly_one_of_peer_asn_and_dynamic_asn() {
    let mut res = valid();
    peer(&mut res, 1).dynamic_asn = Some(DynamicAsn::External);
    expect(&res, "error BGPPeer spec.dynamicASN", "exclusive");
    let mut res = valid();
    peer(&mut res, 1).peer_asn = None;
    expect(
        &res,
        "error BGPPeer spec.peerASN",
        "neither peerASN nor dynamicASN",
    );
}

#[test]
fn exactly_one_of_peer_address_and_interface() {
    let mut res = valid();
    peer(&mut res, 0).interface = Some("eth1".into());
    expect(
        &res,
        r#"error BGPPeer spec.interface = "eth1""#,
        "exclusive",
    );
    let mut res = valid();
    peer(&mut res, 0).peer_address = None;
    expect(
        &res,
        "error BGPPeer spec.peerAddress",
        "neither peerAddress nor interface",
    );
    let mut res = valid();
    let p = peer(&mut res, 0);
    (p.peer_address, p.interface) = (None, Some("eth1".into()));
    let w = validate(&res).world.expect("unnumbered is fine");
    assert_eq!(
        w.peers["ibgp"].endpoint,
        PeerEndpoint::Interface("eth1".into())
    );
}

#[test]
fn peer_addresses_parse_and_agree_in_family() {
    let mut res = valid();
    peer(&mut res, 0).peer_address = Some("10.0.0.300".into());
    expect(
        &res,
        r#"error BGPPeer spec.peerAddress = "10.0.0.300""#,
        r#"octet 4 "300" is greater than 255"#,
    );
    let mut res = valid();
    peer(&mut res, 0).source_address = Some("2001:db8::1".into());
    expect(
        &res,
        r#"error BGPPeer spec.sourceAddress = "2001:db8::1""#,
        "the source is IPv6 but peerAddress 10.0.0.1 is IPv4",
    );
}

#[test]
fn peer_port_is_metallbs_range() {
    let mut res = valid();
    peer(&mut res, 0).peer_port = Some(20000);
    expect(
        &res,
        r#"error BGPPeer spec.peerPort = "20000""#,
        "1 to 16384",
    );
}

#[test]
fn hold_time_is_zero_or_at_least_three_seconds() {
    let mut res = valid();
    peer(&mut res, 0).hold_time = Some("2s".into());
    expect(&res, r#"error BGPPeer spec.holdTime = "2s""#, "RFC 4271");
    let mut res = valid();
    peer(&mut res, 0).hold_time = Some("90".into());
    let d = expect(&res, r#"error BGPPeer spec.holdTime = "90""#, "no unit");
    assert!(d.fix.unwrap().contains("90s"));
    let mut res = valid();
    peer(&mut res, 0).hold_time = Some("0".into());
    let w = validate(&res).world.expect("hold 0 is allowed");
    assert_eq!(w.peers["ibgp"].keepalive_time, Duration::ZERO);
}

#[test]
fn keepalive_is_at_most_the_hold_time() {
    let mut res = valid();
    peer(&mut res, 1).keepalive_time = Some("1m".into());
    expect(
        &res,
        r#"error BGPPeer spec.keepaliveTime = "1m""#,
        "longer than the hold time (30s)",
    );
    let mut res = valid();
    let p = peer(&mut res, 1);
    (p.hold_time, p.keepalive_time) = (Some("0s".into()), Some("10s".into()));
    expect(
        &res,
        r#"error BGPPeer spec.keepaliveTime = "10s""#,
        "holdTime is 0",
    );
}

#[test]
fn connect_time_is_whole_seconds() {
    let mut res = valid();
    peer(&mut res, 0).connect_time = Some("1500ms".into());
    expect(
        &res,
        r#"error BGPPeer spec.connectTime = "1500ms""#,
        "whole seconds from 1 to 65535",
    );
    peer(&mut res, 0).connect_time = Some("10s".into());
    assert_eq!(
        validate(&res).world.unwrap().peers["ibgp"].connect_time,
        Some(Duration::from_secs(10))
    );
}

#[test]
fn router_id_is_ipv4() {
    let mut res = valid();
    peer(&mut res, 1).router_id = Some("2001:db8::2".into());
    expect(
        &res,
        r#"error BGPPeer spec.routerID = "2001:db8::2""#,
        "written as an IPv4 address",
    );
}

#[test]
fn password_and_password_secret_are_exclusive() {
    let mut res = valid();
    peer(&mut res, 1).password = Some("inline".into());
    expect(&res, "error BGPPeer spec.passwordSecret", "exclusive");
}

#[test]
fn password_secret_must_exist_be_basic_auth_and_hold_a_password() {
    let mut res = valid();
    peer(&mut res, 1).password_secret.as_mut().unwrap().name = Some("bgp-auht".into());
    expect(
        &res,
        r#"error BGPPeer spec.passwordSecret = "metallb-system/bgp-auht""#,
        "no Secret metallb-system/bgp-auht",
    );

    let mut res = valid();
    res.secrets[0].object.type_ = None;
    expect(
        &res,
        r#"error BGPPeer spec.passwordSecret = "metallb-system/bgp-auth""#,
        "type Opaque",
    );

    let mut res = valid();
    res.secrets[0].object.data = None;
    expect(
        &res,
        r#"error BGPPeer spec.passwordSecret = "metallb-system/bgp-auth""#,
        "is missing",
    );

    // stringData, as written in files, counts too; and the password is never shown.
    let mut res = valid();
    res.secrets[0].object.data = None;
    res.secrets[0].object.string_data =
        Some([("password".to_owned(), "from-string".to_owned())].into());
    peer(&mut res, 1).hold_time = Some("1s".into());
    let checked = validate(&res);
    assert!(
        !shown(&checked).contains("from-string")
            && !format!("{:?}", checked).contains("from-string")
    );
    peer(&mut res, 1).hold_time = None;
    let w = validate(&res).world.unwrap();
    assert_eq!(
        w.peers["ebgp"].password.as_ref().unwrap().value(),
        "from-string"
    );
    assert!(!format!("{:?}", w).contains("from-string"));
}

#[test]
fn bfd_profile_must_exist() {
    let mut res = valid();
    peer(&mut res, 1).bfd_profile = Some("fsat".into());
    let d = expect(
        &res,
        r#"error BGPPeer spec.bfdProfile = "fsat""#,
        r#"no BFDProfile is named "fsat""#,
    );
    assert!(d.fix.unwrap().contains("did you mean \"fast\"?"));
}

#[test]
fn ebgp_multihop_on_ibgp_is_an_error() {
    let mut res = valid();
    peer(&mut res, 0).ebgp_multi_hop = Some(true);
    expect(
        &res,
        r#"error BGPPeer spec.ebgpMultiHop = "true""#,
        "peerASN 64500 is our own AS",
    );
    let mut res = valid();
    let p = peer(&mut res, 0);
    (p.peer_asn, p.dynamic_asn, p.ebgp_multi_hop) = (None, Some(DynamicAsn::Internal), Some(true));
    expect(
        &res,
        r#"error BGPPeer spec.ebgpMultiHop = "true""#,
        "dynamicASN is internal",
    );
}

#[test]
fn disable_mp_contradicts_dual_stack() {
    let mut res = valid();
    let p = peer(&mut res, 0);
    (p.disable_mp, p.dual_stack_address_family) = (Some(true), Some(true));
    expect(
        &res,
        r#"error BGPPeer spec.dualStackAddressFamily = "true""#,
        "contradicts disableMP",
    );
}

#[test]
fn bfd_profile_ranges() {
    for (field, value, set) in [
        (
            "spec.receiveInterval",
            "5",
            (|s: &mut BFDProfileSpec| s.receive_interval = Some(5)) as fn(&mut _),
        ),
        ("spec.transmitInterval", "60001", |s| {
            s.transmit_interval = Some(60001)
        }),
        ("spec.echoInterval", "9", |s| s.echo_interval = Some(9)),
        ("spec.detectMultiplier", "1", |s| {
            s.detect_multiplier = Some(1)
        }),
        ("spec.minimumTtl", "255", |s| s.minimum_ttl = Some(255)),
    ] {
        let mut res = valid();
        set(&mut res.bfd_profiles[0].object.spec);
        let head = format!("error BFDProfile {field} = \"{value}\"");
        expect(&res, &head, "must be from");
    }
}

#[test]
fn external_traffic_policy_is_cluster_or_local() {
    let mut res = valid();
    res.services[0]
        .object
        .spec
        .as_mut()
        .unwrap()
        .external_traffic_policy = Some("local".into());
    let d = expect(
        &res,
        r#"error Service spec.externalTrafficPolicy = "local""#,
        "Cluster or Local",
    );
    assert!(d.fix.unwrap().contains("write Local"));
}

#[test]
fn ingress_ips_parse() {
    let mut res = valid();
    res.services[0].object.status = serde_json::from_value(
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8:prod::10"}]}}),
    )
    .unwrap();
    expect(
        &res,
        r#"error Service status.loadBalancer.ingress[1].ip = "2001:db8:prod::10""#,
        r#"group 3 "prod""#,
    );
}

#[test]
fn an_unknown_requested_pool_is_a_warning() {
    let mut res = valid();
    res.services[0].object.metadata.annotations = Some(
        [(
            "metallb.universe.tf/address-pool".to_owned(),
            "staging".to_owned(),
        )]
        .into(),
    );
    expect(
        &res,
        r#"warning Service metadata.annotations["metallb.universe.tf/address-pool"] = "staging""#,
        "no IPAddressPool",
    );
}

#[test]
fn a_non_load_balancer_service_with_addresses_in_a_file_is_a_warning() {
    let mut res = valid();
    res.services[0].object.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    res.services[0].origin.file = Some("svc.yaml".into());
    let d = expect(
        &res,
        r#"warning Service spec.type = "ClusterIP""#,
        "will not be announced",
    );
    assert_eq!(d.fix.as_deref(), Some("set spec.type: LoadBalancer"));
    assert!(
        !validate(&res)
            .world
            .unwrap()
            .services
            .values()
            .next()
            .unwrap()
            .is_load_balancer
    );
}

#[test]
fn services_without_slices_are_assumed_ready_everywhere_in_file_mode() {
    let mut res = valid();
    res.endpoints_mode = EndpointsMode::AssumeReadyEverywhere;
    res.services.push(service(
        "api",
        "default",
        json!({"spec": {"type": "LoadBalancer"}}),
    ));
    let w = validate(&res).world.unwrap();
    let api = w.services.values().find(|s| s.key.name == "api").unwrap();
    let web = w.services.values().find(|s| s.key.name == "web").unwrap();
    assert!(api.endpoints.assumed_everywhere && !web.endpoints.assumed_everywhere);
    res.endpoints_mode = EndpointsMode::Observed;
    assert!(
        !validate(&res)
            .world
            .unwrap()
            .services
            .values()
            .any(|s| s.endpoints.assumed_everywhere)
    );
}

#[test]
fn diagnostics_point_at_the_fields_line() {
    let mut res = valid();
    pool_spec(&mut res, 1).addresses[0] = "198.51.100.20-198.51.100.10".into();
    let pool = &mut res.pools[1];
    pool.origin.file = Some("pools.yaml".into());
    pool.origin.document = Some(2);
    pool.lines = Arc::new(FieldLines(
        [("spec".to_owned(), 9), ("spec.addresses[0]".to_owned(), 11)].into(),
    ));
    let head = r#"error IPAddressPool spec.addresses[0] = "198.51.100.20-198.51.100.10""#;
    let d = expect(&res, head, "reversed");
    assert_eq!(d.origin.line, Some(11));
    assert_eq!(
        d.to_string(),
        "pools.yaml:11: error: IPAddressPool metallb-system/lab (document 2): spec.addresses[0] = \
         \"198.51.100.20-198.51.100.10\": the range is reversed: its start 198.51.100.20 comes after \
         its end 198.51.100.10; fix: write 198.51.100.10-198.51.100.20"
    );
}

#[test]
fn objects_the_source_could_not_read_are_not_unknown_again() {
    let mut res = valid();
    let lab = res.pools.remove(1).resource_ref();
    let ebgp = res.bgp_peers.remove(1).resource_ref();
    res.unreadable = vec![lab, ebgp];
    bgp_ad(&mut res).peers = vec!["ebgp".into()];
    let checked = validate(&res);
    assert!(checked.diagnostics.is_empty(), "{}", shown(&checked));
}

#[test]
fn a_prefix_inside_a_wider_one_is_the_one_reported() {
    let mut res = valid();
    pool_spec(&mut res, 0)
        .addresses
        .insert(0, "192.0.2.5/28".into());
    let checked = validate(&res);
    let overlap = checked
        .diagnostics
        .iter()
        .find(|d| d.resource.kind == "IPAddressPool");
    let overlap = overlap.expect("an overlap");
    assert_eq!(overlap.field, "spec.addresses[0]", "{overlap}");
    assert!(
        overlap
            .problem
            .contains("overlaps spec.addresses[1] \"192.0.2.0/24\""),
        "{overlap}"
    );
}

#[test]
fn five_mistakes_give_exactly_five_errors() {
    let mut res = valid();
    pool_spec(&mut res, 0).addresses[1] = "2001:db8:prod::/64".into();
    bgp_ad(&mut res).aggregation_length_v6 = None;
    bgp_ad(&mut res).communities.push("64512:70000".into());
    peer(&mut res, 0).hold_time = Some("2s".into());
    peer(&mut res, 1).bfd_profile = Some("slow".into());
    res.l2_advertisements[0].object.spec.ip_address_pools = vec!["prd".into()];
    let checked = validate(&res);
    assert!(checked.world.is_none());
    let fields: Vec<(&str, &str)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.resource.kind.as_str(), d.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("BGPAdvertisement", "spec.communities[3]"),
            ("BGPPeer", "spec.bfdProfile"),
            ("BGPPeer", "spec.holdTime"),
            ("IPAddressPool", "spec.addresses[1]"),
            ("L2Advertisement", "spec.ipAddressPools[0]"),
        ],
        "{}",
        shown(&checked)
    );
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| d.is_error() && d.value.is_some() && d.fix.is_some())
    );
}

#[test]
fn output_does_not_depend_on_input_order() {
    let mut res = valid();
    pool_spec(&mut res, 0).addresses.push("192.0.2.0/24".into());
    res.pools.push(metallb(
        "IPAddressPool",
        "lab",
        json!({"addresses": ["bad"]}),
    ));
    peer(&mut res, 0).hold_time = Some("2s".into());
    let forward = validate(&res);
    macro_rules! reverse_all { ($($f:ident),*) => { $(res.$f.reverse();)* } }
    reverse_all!(
        pools,
        l2_advertisements,
        bgp_advertisements,
        bgp_peers,
        communities,
        bfd_profiles,
        services,
        nodes,
        secrets
    );
    pool_spec(&mut res, 2).addresses.reverse();
    let backward = validate(&res);
    assert_eq!(forward.diagnostics.len(), 3, "{}", shown(&forward));
    // The same problems, though an entry's index follows its position in the list.
    let problems = |c: &Checked| {
        c.diagnostics
            .iter()
            .map(|d| (d.resource.clone(), d.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(problems(&forward), problems(&backward));
}

#[test]
fn peers_and_secrets_are_read_from_the_same_namespace() {
    let mut res = valid();
    res.secrets[0].object.metadata.namespace = Some("other".into());
    let head = r#"error BGPPeer spec.passwordSecret = "metallb-system/bgp-auth""#;
    expect(&res, head, "no Secret metallb-system/bgp-auth");
    peer(&mut res, 1)
        .password_secret
        .as_mut()
        .unwrap()
        .namespace = Some("other".into());
    assert!(validate(&res).is_valid());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Pool entries crowded into a small space so that overlaps are common, with some
    /// garbage among them.
    fn entry() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u8..8, 24u8..=33).prop_map(|(x, len)| format!("10.0.0.{}/{len}", x * 32)),
            (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.0.{a} - 10.0.0.{b}")),
            (0u16..64, 120u8..=129).prop_map(|(x, len)| format!("2001:db8::{:x}/{len}", x * 4)),
            "\\PC{0,24}",
        ]
    }

    proptest! {
        #[test]
        fn validate_is_order_independent_and_never_panics(
            pools in prop::collection::vec(prop::collection::vec(entry(), 0..4), 1..5),
            aggregation in (0i32..40, 0i32..140),
            hold in prop_oneof![Just("90s".to_owned()), "\\PC{0,8}"],
            rotate in 0usize..5,
        ) {
            let mut res = Resources::default();
            for (i, addresses) in pools.iter().enumerate() {
                res.pools.push(metallb("IPAddressPool", &format!("p{i}"), json!({"addresses": addresses})));
            }
            res.bgp_advertisements.push(metallb("BGPAdvertisement", "all", json!({
                "aggregationLength": aggregation.0, "aggregationLengthV6": aggregation.1,
            })));
            res.bgp_peers.push(metallb("BGPPeer", "r", json!({
                "myASN": 64500, "peerASN": 64501, "peerAddress": "10.1.0.1", "holdTime": hold,
            })));
            let forward = validate(&res);
            let n = res.pools.len();
            res.pools.rotate_left(rotate % n);
            let rotated = validate(&res);
            prop_assert_eq!(&forward.diagnostics, &rotated.diagnostics);
            prop_assert_eq!(forward.world, rotated.world);
            prop_assert!(forward.diagnostics.iter().all(|d| d.fix.is_some()));
        }
    }
}
