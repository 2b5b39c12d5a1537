//! MetalLB's allocation rules, one at a time, each with the Service and pools that show it.

mod support;

use ipam::{FamilyPolicy, converge, register};
use support::*;

#[test]
fn the_first_address_of_the_first_range_written_is_taken_first() {
    let mut a = allocator(&pool("p", &["192.0.2.10-192.0.2.12", "192.0.2.0/30"]));
    let mut s = Vec::new();
    for i in 0..5 {
        let mut r = v4(&format!("s{i}"));
        let out = apply(&mut a, &mut r);
        assert_eq!(out.pool.as_deref(), Some("p"));
        assert!(out.changed && !out.failed);
        s.push(ingress(&out)[0].clone());
    }
    assert_eq!(
        s,
        [
            "192.0.2.10",
            "192.0.2.11",
            "192.0.2.12",
            "192.0.2.0",
            "192.0.2.1"
        ]
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_0_and_dot_255_and_refuses_them_when_asked() {
    let yaml =
        pool("p", &["192.0.2.254-192.0.3.1"]).replace("spec:\n", "spec:\n  avoidBuggyIPs: true\n");
    let mut a = allocator(&yaml);
    let got: Vec<String> = (0..2)
        .map(|i| ingress(&apply(&mut a, &mut v4(&format!("s{i}"))))[0].clone())
        .collect();
    assert_eq!(got, ["192.0.2.254", "192.0.3.1"]);
    let out = apply(&mut a, &mut v4("full"));
    assert!(out.failed, "{out:?}");
    let mut asks = v4("asks");
    asks.load_balancer_ip = Some("192.0.3.0".into());
    let out = apply(&mut a, &mut asks);
    assert!(out.failed);
    assert!(
        message(&out, "AllocationFailed").contains("avoidBuggyIPs"),
        "{:?}",
        out.events
    );
    let c = a.counters("p").unwrap();
    assert_eq!((c.total_ipv4, c.assigned_ipv4, c.available_ipv4), (2, 2, 0));
}

#[test]
fn a_deleted_or_retyped_service_frees_its_address_for_the_next() {
    let mut a = allocator(&pool("p", &["192.0.2.1-192.0.2.3"]));
    let mut s1 = v4("s1");
    let mut s2 = v4("s2");
    apply(&mut a, &mut s1);
    apply(&mut a, &mut s2);
    s1.is_load_balancer = false;
    let out = apply(&mut a, &mut s1);
    assert!(out.changed && out.released && out.ingress.is_empty() && out.pool.is_none());
    assert!(out.events.is_empty(), "{:?}", out.events);
    let out = apply(&mut a, &mut v4("s3"));
    assert_eq!(ingress(&out), ["192.0.2.1"]);
    assert!(a.unassign(&s2.key).is_some());
    assert_eq!(ingress(&apply(&mut a, &mut v4("s4"))), ["192.0.2.2"]);
}

#[test]
fn converging_again_changes_nothing_and_raises_nothing() {
    let mut a = allocator(&pool("p", &["192.0.2.0/29", "2001:db8::/120"]));
    let mut r = dual("d", FamilyPolicy::PreferDualStack, false);
    let first = apply(&mut a, &mut r);
    assert_eq!(reasons(&first), ["IPAllocated"]);
    assert_eq!(
        message(&first, "IPAllocated"),
        r#"Assigned IP ["192.0.2.0" "2001:db8::"]"#
    );
    let again = converge(&mut a, &r);
    assert!(
        !again.changed && again.events.is_empty() && !again.released,
        "{again:?}"
    );
    assert_eq!(again.ingress, first.ingress);
}

#[test]
fn ipv6_only_service_with_load_balancer_ip() {
    // The seed's Service: SingleStack IPv6 asking for one address by spec.loadBalancerIP.
    let yaml = [
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8:1::/64"]),
    ]
    .join("---\n");
    let mut a = allocator(&yaml);
    let mut r = v6("web");
    r.load_balancer_ip = Some("2001:db8:1::80".into());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["2001:db8:1::80"]);
    assert_eq!(out.pool.as_deref(), Some("v6"));
    // An IPv4 address asked of an IPv6 Service is refused, saying why.
    let mut wrong = v6("wrong");
    wrong.load_balancer_ip = Some("192.0.2.80".into());
    let out = apply(&mut a, &mut wrong);
    assert!(out.failed && out.ingress.is_empty());
    let m = message(&out, "AllocationFailed");
    assert!(m.starts_with("Failed to allocate IP for \"default/wrong\": requested loadBalancer IP(s) [\"192.0.2.80\"] does not match the ipFamily of the service"), "{m}");
}

#[test]
fn prefer_dual_stack_gets_both_in_ip_families_order() {
    let yaml = pool("dual", &["192.0.2.0/24", "2001:db8::/64"]);
    let mut a = allocator(&yaml);
    let out = apply(
        &mut a,
        &mut dual("v4first", FamilyPolicy::PreferDualStack, false),
    );
    assert_eq!(ingress(&out), ["192.0.2.0", "2001:db8::"]);
    let out = apply(
        &mut a,
        &mut dual("v6first", FamilyPolicy::PreferDualStack, true),
    );
    assert_eq!(ingress(&out), ["2001:db8::1", "192.0.2.1"]);
    let out = apply(
        &mut a,
        &mut dual("req", FamilyPolicy::RequireDualStack, true),
    );
    assert_eq!(ingress(&out), ["2001:db8::2", "192.0.2.2"]);
}

#[test]
fn prefer_dual_stack_takes_one_family_when_no_pool_has_both() {
    let yaml = [
        pool("a-v6", &["2001:db8::/64"]),
        pool("b-v4", &["192.0.2.0/24"]),
    ]
    .join("---\n");
    let mut a = allocator(&yaml);
    // The primary family wins: the first pool with an IPv4 address for an IPv4-first Service.
    let mut r = dual("p", FamilyPolicy::PreferDualStack, false);
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["192.0.2.0"]);
    assert_eq!(out.pool.as_deref(), Some("b-v4"));
    // The additional family is tried in the same pool, quietly once nothing changes.
    let again = converge(&mut a, &r);
    assert!(!again.changed && again.events.is_empty(), "{again:?}");
    let mut r6 = dual("p6", FamilyPolicy::PreferDualStack, true);
    let out = apply(&mut a, &mut r6);
    assert_eq!(ingress(&out), ["2001:db8::"]);
}

#[test]
fn prefer_dual_stack_holding_one_address_gains_the_other_when_its_pool_gets_it() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24"]));
    let mut r = dual("p", FamilyPolicy::PreferDualStack, false);
    assert_eq!(ingress(&apply(&mut a, &mut r)), ["192.0.2.0"]);
    let released = a.set_pools(
        &pools(&pool("p", &["192.0.2.0/24", "2001:db8::/64"])),
        &Default::default(),
    );
    assert!(released.is_empty());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["192.0.2.0", "2001:db8::"]);
    assert_eq!(
        message(&out, "IPAllocated"),
        "Assigned additional IP \"2001:db8::\""
    );
}

#[test]
fn require_dual_stack_without_a_dual_stack_pool_fails_saying_what_to_change() {
    let yaml = [
        pool("ipv4-pool", &["192.0.2.0/24"]),
        pool("ipv6-pool", &["2001:db8::/64"]),
    ]
    .join("---\n");
    let mut a = allocator(&yaml);
    let out = apply(
        &mut a,
        &mut dual("svc", FamilyPolicy::RequireDualStack, false),
    );
    assert!(out.failed && out.ingress.is_empty() && out.pool.is_none());
    assert_eq!(
        message(&out, "AllocationFailed"),
        "Failed to allocate IP for \"default/svc\": no available IPs: RequireDualStack, but no auto-assign pool has both IPv4 and IPv6 ranges: pools ipv4-pool and ipv6-pool each hold one family; put both families in one pool, or name a dual-stack pool with metallb.io/address-pool"
    );
    assert_eq!(out.events[0].kind, ipam::EventType::Warning);
}

#[test]
fn require_dual_stack_with_one_cluster_ip_is_refused_as_metallb_does() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24", "2001:db8::/64"]));
    let mut r = v4("s");
    r.policy = FamilyPolicy::RequireDualStack;
    let out = apply(&mut a, &mut r);
    assert!(out.failed);
    assert_eq!(reasons(&out), ["not enough clusterips"]);
}

#[test]
fn an_ipv6_service_gets_nothing_from_ipv4_pools_and_is_told_so() {
    let mut a = allocator(&pool("only-v4", &["192.0.2.0/24"]));
    let out = apply(&mut a, &mut v6("s"));
    let m = message(&out, "AllocationFailed");
    assert!(m.contains("the Service is IPv6"), "{m}");
    assert!(m.contains("only-v4 holds IPv4 only"), "{m}");
}

#[test]
fn specific_addresses_by_annotation_one_per_family() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24", "2001:db8::/64"]));
    let mut r = dual("s", FamilyPolicy::RequireDualStack, false);
    r.load_balancer_ips = Some("2001:db8::7, 192.0.2.7".into());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["2001:db8::7", "192.0.2.7"]);
    // Both the annotation and spec.loadBalancerIP: MetalLB refuses, and keeps what is there.
    r.load_balancer_ip = Some("192.0.2.8".into());
    let out = converge(&mut a, &r);
    assert_eq!(reasons(&out), ["LoadBalancerFailed"]);
    assert!(!out.changed);
    // Two of one family are refused.
    let mut two = dual("two", FamilyPolicy::RequireDualStack, false);
    two.load_balancer_ips = Some("192.0.2.9,192.0.2.10".into());
    let out = apply(&mut a, &mut two);
    assert!(out.failed);
    // Changing the request moves the Service.
    r.load_balancer_ip = None;
    r.load_balancer_ips = Some("192.0.2.20,2001:db8::20".into());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["192.0.2.20", "2001:db8::20"]);
    assert!(out.released);
}

#[test]
fn a_requested_address_outside_every_pool_or_taken_fails_with_the_reason() {
    let mut a = allocator(&pool("p", &["192.0.2.10-192.0.2.20"]));
    let mut outside = v4("outside");
    outside.load_balancer_ips = Some("192.0.2.99".into());
    let out = apply(&mut a, &mut outside);
    let m = message(&out, "AllocationFailed");
    assert!(
        m.contains("[\"192.0.2.99\"] is not allowed in config"),
        "{m}"
    );
    assert!(m.contains("p 192.0.2.10-192.0.2.20"), "{m}");

    let mut first = v4("first");
    first.load_balancer_ip = Some("192.0.2.15".into());
    apply(&mut a, &mut first);
    let mut second = v4("second");
    second.load_balancer_ip = Some("192.0.2.15".into());
    let out = apply(&mut a, &mut second);
    let m = message(&out, "AllocationFailed");
    assert!(
        m.contains("192.0.2.15 is already used by default/first, which does not allow sharing"),
        "{m}"
    );
    assert!(m.contains("metallb.io/allow-shared-ip"), "{m}");
}

#[test]
fn address_pool_annotation_takes_from_that_pool_even_without_auto_assign() {
    let manual =
        pool("manual", &["198.51.100.0/24"]).replace("spec:\n", "spec:\n  autoAssign: false\n");
    let yaml = [pool("auto", &["192.0.2.0/24"]), manual].join("---\n");
    let mut a = allocator(&yaml);
    assert_eq!(ingress(&apply(&mut a, &mut v4("plain"))), ["192.0.2.0"]);
    let mut r = v4("pinned");
    r.address_pool = Some("manual".into());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["198.51.100.0"]);
    assert_eq!(out.pool.as_deref(), Some("manual"));
    // Naming another pool moves the Service there.
    r.address_pool = Some("auto".into());
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["192.0.2.1"]);
    assert!(out.released);
    let mut unknown = v4("unknown");
    unknown.address_pool = Some("autp".into());
    let m = message(&apply(&mut a, &mut unknown), "AllocationFailed");
    assert!(
        m.contains("unknown pool \"autp\"; the pools are auto and manual"),
        "{m}"
    );
    // A requested address must lie in the requested pool.
    let mut both = v4("both");
    both.address_pool = Some("manual".into());
    both.load_balancer_ip = Some("192.0.2.50".into());
    let m = message(&apply(&mut a, &mut both), "AllocationFailed");
    assert!(
        m.contains("is not compatible with requested address pool manual"),
        "{m}"
    );
    assert!(a.allocation(&both.key).is_none());
}

#[test]
fn shared_ip_same_key_other_ports_share_and_nothing_else_does() {
    let mut a = allocator(&pool("p", &["192.0.2.0/29"]));
    let share = |name: &str, key: &str, port: i32| {
        let mut r = v4(name);
        r.sharing_key = key.into();
        r.ports = vec![tcp(port)];
        r
    };
    assert_eq!(
        ingress(&apply(&mut a, &mut share("http", "k", 80))),
        ["192.0.2.0"]
    );
    assert_eq!(
        ingress(&apply(&mut a, &mut share("https", "k", 443))),
        ["192.0.2.0"]
    );
    // Same port: the next address.
    assert_eq!(
        ingress(&apply(&mut a, &mut share("http2", "k", 80))),
        ["192.0.2.1"]
    );
    // Another key, or none: not shared.
    assert_eq!(
        ingress(&apply(&mut a, &mut share("other", "j", 22))),
        ["192.0.2.2"]
    );
    assert_eq!(ingress(&apply(&mut a, &mut v4("none"))), ["192.0.2.3"]);
    // The lowest compatible address wins, shared or free.
    assert_eq!(
        ingress(&apply(&mut a, &mut share("dns", "k", 53))),
        ["192.0.2.0"]
    );
    // Under Local policy the selectors must match too.
    let mut l1 = share("l1", "loc", 80);
    l1.backend_key = "app=a".into();
    let mut l2 = share("l2", "loc", 443);
    l2.backend_key = "app=b".into();
    let ip1 = ingress(&apply(&mut a, &mut l1));
    let ip2 = ingress(&apply(&mut a, &mut l2));
    assert_ne!(ip1, ip2);
    let mut l3 = share("l3", "loc", 443);
    l3.backend_key = "app=a".into();
    assert_eq!(ingress(&apply(&mut a, &mut l3)), ip1);
    // Asking for a shared address with a port in use fails, naming the holder.
    let mut clash = share("clash", "k", 443);
    clash.load_balancer_ip = Some("192.0.2.0".into());
    let m = message(&apply(&mut a, &mut clash), "AllocationFailed");
    assert!(
        m.contains("port TCP/443 is already in use on \"192.0.2.0\" by default/https"),
        "{m}"
    );
    // One address counts once however many Services share it.
    assert_eq!(a.counters("p").unwrap().assigned_ipv4, 6);
}

#[test]
fn service_allocation_pins_pools_by_namespace_selector_and_priority() {
    let yaml = [
        pool("open", &["192.0.2.0/24"]),
        pool("team-low", &["198.51.100.0/24"]).replace(
            "spec:\n",
            "spec:\n  serviceAllocation:\n    priority: 20\n    namespaces: [team]\n",
        ),
        pool("team-high", &["203.0.113.0/24"]).replace(
            "spec:\n",
            "spec:\n  serviceAllocation:\n    priority: 10\n    namespaceSelectors:\n    - matchLabels: {tier: gold}\n",
        ),
        pool("labelled", &["100.64.0.0/24"]).replace(
            "spec:\n",
            "spec:\n  serviceAllocation:\n    serviceSelectors:\n    - matchLabels: {want: labelled}\n",
        ),
    ]
    .join("---\n");
    let mut a = allocator_ns(&yaml, &[("team", &[("tier", "gold")]), ("default", &[])]);
    let mut in_team = v4("x");
    in_team.key.namespace = "team".into();
    // Both team pools match; priority 10 beats 20.
    assert_eq!(
        apply(&mut a, &mut in_team).pool.as_deref(),
        Some("team-high")
    );
    // Outside the team namespace only the open pool serves.
    assert_eq!(apply(&mut a, &mut v4("y")).pool.as_deref(), Some("open"));
    let mut labelled = v4("z");
    labelled.labels.insert("want".into(), "labelled".into());
    assert_eq!(
        apply(&mut a, &mut labelled).pool.as_deref(),
        Some("labelled")
    );
    // A pinned pool refuses a Service it does not select, even when asked by name.
    let mut asks = v4("asks");
    asks.load_balancer_ip = Some("198.51.100.5".into());
    let m = message(&apply(&mut a, &mut asks), "AllocationFailed");
    assert!(
        m.contains("pool team-low not compatible for ip assignment"),
        "{m}"
    );
}

#[test]
fn a_full_pinned_pool_falls_back_to_the_open_pools() {
    let yaml = [
        pool("open", &["192.0.2.0/24"]),
        pool("pinned", &["198.51.100.1/32"]).replace(
            "spec:\n",
            "spec:\n  serviceAllocation:\n    namespaces: [default]\n",
        ),
    ]
    .join("---\n");
    let mut a = allocator(&yaml);
    assert_eq!(apply(&mut a, &mut v4("a")).pool.as_deref(), Some("pinned"));
    assert_eq!(apply(&mut a, &mut v4("b")).pool.as_deref(), Some("open"));
}

#[test]
fn a_pool_that_no_longer_holds_the_address_moves_the_service_with_an_event() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24"]));
    let mut r = v4("s");
    assert_eq!(ingress(&apply(&mut a, &mut r)), ["192.0.2.0"]);
    let released = a.set_pools(&pools(&pool("p", &["192.0.2.128/25"])), &Default::default());
    assert_eq!(released, [r.key.clone()]);
    let out = apply(&mut a, &mut r);
    assert_eq!(ingress(&out), ["192.0.2.128"]);
    assert_eq!(reasons(&out), ["ClearAssignment", "IPAllocated"]);
    // Every pool gone: the address is withdrawn.
    a.set_pools(&Default::default(), &Default::default());
    let out = apply(&mut a, &mut r);
    assert!(out.changed && out.ingress.is_empty() && out.failed);
}

#[test]
fn registering_existing_statuses_first_keeps_every_address_with_its_holder() {
    let mut a = allocator(&pool("p", &["192.0.2.0/30"]));
    // Addresses given out earlier, by another controller or an earlier run.
    let mut old = v4("old");
    old.ingress = vec!["192.0.2.0".into()];
    old.allocated_from_pool = Some("p".into());
    let mut new = v4("new");
    // A new Service converged before the old one is registered would take .0:
    let mut unsafe_a = a.clone();
    assert_eq!(ingress(&converge(&mut unsafe_a, &new)), ["192.0.2.0"]);
    // Registered first, it cannot.
    assert!(register(&mut a, &old));
    assert_eq!(ingress(&apply(&mut a, &mut new)), ["192.0.2.1"]);
    let out = converge(&mut a, &old);
    assert!(!out.changed && out.events.is_empty());
    // A MetalLB-written order is kept as it is.
    let mut metallb = dual("m", FamilyPolicy::RequireDualStack, true);
    let mut b = allocator(&pool("p", &["192.0.2.0/24", "2001:db8::/64"]));
    metallb.ingress = vec!["192.0.2.9".into(), "2001:db8::9".into()];
    metallb.allocated_from_pool = Some("p".into());
    assert!(register(&mut b, &metallb));
    assert!(!converge(&mut b, &metallb).changed);
}

#[test]
fn deprecated_annotations_raise_an_event_when_the_service_is_written() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24"]));
    let mut r = v4("s");
    r.address_pool = Some("p".into());
    r.deprecated_annotations = vec!["metallb.universe.tf/address-pool".into()];
    let out = apply(&mut a, &mut r);
    assert_eq!(reasons(&out), ["IPAllocated", "deprecatedAnnotation"]);
    assert_eq!(
        message(&out, "deprecatedAnnotation"),
        "Service uses deprecated annotation metallb.universe.tf/address-pool"
    );
    assert!(converge(&mut a, &r).events.is_empty());
}

#[test]
fn a_service_without_cluster_ips_or_pools_gets_nothing_and_is_told_why() {
    let mut a = allocator(&pool("p", &["192.0.2.0/24"]));
    let mut r = v4("s");
    r.cluster_ips.clear();
    let out = apply(&mut a, &mut r);
    assert!(message(&out, "AllocationFailed").contains("no clusterIPs"));
    let mut empty = ipam::Allocator::new();
    let out = converge(&mut empty, &v4("t"));
    assert!(message(&out, "AllocationFailed").contains("no IPAddressPool exists"));
}

#[test]
fn counters_follow_metallb_for_a_slash_16_and_a_slash_112() {
    let yaml = pool("big", &["10.20.0.0/16", "fd00:20::/112"])
        .replace("spec:\n", "spec:\n  avoidBuggyIPs: true\n");
    let mut a = allocator(&yaml);
    let c = a.counters("big").unwrap();
    assert_eq!(c.total_ipv4, 65536 - 512);
    assert_eq!(c.total_ipv6, 65536);
    for i in 0..300 {
        let out = apply(
            &mut a,
            &mut dual(&format!("s{i}"), FamilyPolicy::RequireDualStack, false),
        );
        assert!(!out.failed);
        assert!(!ipam::is_buggy(&out.ingress[0]), "{:?}", out.ingress);
    }
    let c = a.counters("big").unwrap();
    assert_eq!((c.assigned_ipv4, c.assigned_ipv6), (300, 300));
    assert_eq!(c.available_ipv4, 65536 - 512 - 300);
    // A /64 counts as MetalLB counts it: without limit.
    let a = allocator(&pool("huge", &["2001:db8::/64"]));
    assert_eq!(a.counters("huge").unwrap().total_ipv6, i64::MAX);
}
