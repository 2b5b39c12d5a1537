//! `herald doctor` on the failures the seed documents went through, each built for real: node
//! checks in a network namespace whose interface is broken on purpose (IPv6 disabled, no
//! link-local address, no IPv4 address, strict rp_filter, a named interface that is absent),
//! cluster checks against the testkit API server (an IPv4-only cluster asked for IPv6, a
//! RequireDualStack Service with single-family pools, a pool no advertisement selects); and a
//! healthy setup passing everything. Needs root.

use serde_json::{Value, json};
use std::process::Stdio;
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::Netns;

const NODE: &str = "node-a";
const NAMESPACE: &str = "metallb-system";

/// A namespace with eth0 (and its veth peer eth1), dual-stack addresses on eth0, forwarding on
/// and loose rp_filter: a healthy node. `before_up` runs before the links come up, for what
/// must be set then (such as addr_gen_mode).
fn node_namespace(before_up: impl FnOnce(&Netns)) -> Netns {
    let ns = Netns::new("doc");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    before_up(&ns);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth1", "up"]);
    ns.sysctl("net.ipv4.ip_forward", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    ns.sysctl("net.ipv4.conf.all.rp_filter", "0");
    ns.sysctl("net.ipv4.conf.eth0.rp_filter", "2");
    ns.sysctl("net.ipv4.conf.eth0.forwarding", "1");
    ns
}

fn add_v4(ns: &Netns) {
    ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "eth0"]);
}

fn add_v6(ns: &Netns) {
    ns.ip(&["addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad"]);
}

fn healthy_node() -> Netns {
    let ns = node_namespace(|_| {});
    add_v4(&ns);
    add_v6(&ns);
    ns
}

/// Runs `herald doctor ARGS --node node-a --output json` in `ns`: exit code and report.
fn doctor(ns: &Netns, args: &[&str]) -> (i32, Value) {
    let bin = testkit::herald_bin();
    let out = ns
        .command(bin.to_str().expect("a UTF-8 path"))
        .arg("doctor")
        .args(args)
        .args(["--node", NODE, "--output", "json"])
        .env_remove("NODE_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("running herald doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), report)
}

/// The status of `check` about `subject`, as printed.
fn status<'a>(report: &'a Value, check: &str, subject: &str) -> &'a str {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check && c["subject"] == subject)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no {check} check about {subject:?} in {report:#}"))
}

fn fix<'a>(report: &'a Value, check: &str, subject: &str) -> &'a str {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check && c["subject"] == subject)
        .and_then(|c| c["fix"].as_str())
        .unwrap_or_else(|| panic!("no fix for {check} {subject:?} in {report:#}"))
}

fn all_pass(report: &Value) {
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
}

/// A dual-stack pool announced by Layer 2 on `interfaces` (all usable ones when empty).
fn config(interfaces: &[&str]) -> tempfile::NamedTempFile {
    let yaml = format!(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: public, namespace: metallb-system}}
spec: {{addresses: [192.0.2.100-192.0.2.110, '2001:db8:1::100-2001:db8:1::110']}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: metallb-system}}
spec: {{interfaces: {interfaces:?}}}
"
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("writing the config");
    file
}

fn with_config(ns: &Netns, interfaces: &[&str]) -> (i32, Value) {
    let file = config(interfaces);
    doctor(ns, &["--config", file.path().to_str().expect("UTF-8")])
}

#[test]
fn a_healthy_node_passes() {
    let ns = healthy_node();
    let (code, report) = with_config(&ns, &["eth0"]);
    all_pass(&report);
    assert_eq!(code, 0, "{report:#}");
    for check in [
        "ipv6-enabled",
        "ipv6-link-local",
        "ipv6-global",
        "ipv4-address",
        "rp-filter",
    ] {
        assert_eq!(status(&report, check, "eth0"), "pass");
    }
    assert_eq!(status(&report, "forwarding", "IPv6"), "pass");
}

#[test]
fn ipv6_disabled_on_the_interface_fails_and_names_the_sysctl() {
    let ns = healthy_node();
    ns.sysctl("net.ipv6.conf.eth0.disable_ipv6", "1");
    let (code, report) = with_config(&ns, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "ipv6-enabled", "eth0"), "fail");
    assert!(
        fix(&report, "ipv6-enabled", "eth0").contains("net.ipv6.conf.eth0.disable_ipv6=0"),
        "{report:#}"
    );
    // IPv4 on the same interface is still fine.
    assert_eq!(status(&report, "ipv4-address", "eth0"), "pass");
}

#[test]
fn no_link_local_address_fails() {
    // addr_gen_mode 1: the kernel makes no link-local address when the link comes up.
    let ns = node_namespace(|ns| ns.sysctl("net.ipv6.conf.eth0.addr_gen_mode", "1"));
    add_v4(&ns);
    add_v6(&ns);
    let (code, report) = with_config(&ns, &["eth0"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "ipv6-link-local", "eth0"), "fail");
    assert_eq!(status(&report, "ipv6-global", "eth0"), "pass");
}

#[test]
fn no_ipv4_address_strict_rp_filter_and_an_absent_interface_are_each_reported() {
    let ns = node_namespace(|_| {});
    add_v6(&ns);
    // The kernel takes the larger of `all` and the interface's value: 1 (strict) on both.
    ns.sysctl("net.ipv4.conf.all.rp_filter", "1");
    ns.sysctl("net.ipv4.conf.eth0.rp_filter", "1");
    ns.sysctl("net.ipv4.ip_forward", "0");
    let (code, report) = with_config(&ns, &["eth0", "bond7"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "ipv4-address", "eth0"), "fail");
    assert_eq!(status(&report, "rp-filter", "eth0"), "warn");
    assert_eq!(status(&report, "l2-interface", "bond7"), "fail");
    // File mode is a host beside the routers: forwarding off is only a warning there.
    assert_eq!(status(&report, "forwarding", "IPv4"), "warn");
}

// ---- cluster checks, through the testkit API server ----

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    })
}

/// The `kubernetes` Service every cluster has: its cluster IPs tell the service CIDRs when
/// the API serves no ServiceCIDR objects (as the testkit server does not).
fn kubernetes_service(cluster_ips: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ips[0], "clusterIPs": cluster_ips,
                 "ports": [{"port": 443}]},
    })
}

fn node(pod_cidrs: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        "spec": {"podCIDR": pod_cidrs[0], "podCIDRs": pod_cidrs},
    })
}

fn lb_service(name: &str, policy: &str, families: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": policy, "ipFamilies": families,
                 "ports": [{"port": 80}]},
    })
}

/// herald doctor against an API server holding `objects`, in a healthy node's namespace.
fn doctor_cluster(objects: Vec<Value>) -> (i32, Value) {
    let ns = healthy_node();
    let server = ApiServer::builder()
        .start_in(ns.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(ns.name()));
    for object in objects {
        api.create(object);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, "doctor")
        .expect("writing the kubeconfig");
    doctor(
        &ns,
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("UTF-8"),
            "--namespace",
            NAMESPACE,
        ],
    )
}

#[test]
fn a_healthy_dual_stack_cluster_passes() {
    let (code, report) = doctor_cluster(vec![
        kubernetes_service(&["10.96.0.1", "fd00:10:96::1"]),
        node(&["10.244.0.0/24", "fd00:10:244::/64"]),
        object(
            "IPAddressPool",
            "public",
            json!({"addresses": ["192.0.2.100-192.0.2.110", "2001:db8:1::100-2001:db8:1::110"]}),
        ),
        object("L2Advertisement", "l2", json!({"interfaces": ["eth0"]})),
        lb_service("web", "RequireDualStack", &["IPv4", "IPv6"]),
    ]);
    all_pass(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status(&report, "service-cidr", "IPv6"), "pass");
    assert_eq!(status(&report, "pod-cidr", NODE), "pass");
    assert_eq!(status(&report, "service-family", "default/web"), "pass");
    // The node checks ran too, in the node's namespace.
    assert_eq!(status(&report, "ipv6-link-local", "eth0"), "pass");
    assert_eq!(status(&report, "forwarding", "IPv4"), "pass");
}

#[test]
fn an_ipv4_only_cluster_asked_for_ipv6_services_fails() {
    let (code, report) = doctor_cluster(vec![
        kubernetes_service(&["10.96.0.1"]),
        node(&["10.244.0.0/24"]),
        object(
            "IPAddressPool",
            "public",
            json!({"addresses": ["192.0.2.100-192.0.2.110", "2001:db8:1::100-2001:db8:1::110"]}),
        ),
        object("L2Advertisement", "l2", json!({})),
        lb_service("web", "PreferDualStack", &["IPv4"]),
        lb_service("web6", "SingleStack", &["IPv6"]),
    ]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "service-cidr", "IPv4"), "pass");
    assert_eq!(status(&report, "service-cidr", "IPv6"), "fail");
    assert!(
        fix(&report, "service-cidr", "IPv6").contains("--service-cluster-ip-range"),
        "{report:#}"
    );
    assert_eq!(status(&report, "pod-cidr", NODE), "fail");
}

#[test]
fn require_dual_stack_with_single_family_pools_and_an_unselected_pool_fail() {
    let (code, report) = doctor_cluster(vec![
        kubernetes_service(&["10.96.0.1", "fd00:10:96::1"]),
        node(&["10.244.0.0/24", "fd00:10:244::/64"]),
        object(
            "IPAddressPool",
            "v4",
            json!({"addresses": ["192.0.2.100-192.0.2.110"]}),
        ),
        object(
            "IPAddressPool",
            "v6",
            json!({"addresses": ["2001:db8:1::100-2001:db8:1::110"]}),
        ),
        object("L2Advertisement", "l2", json!({"ipAddressPools": ["v4"]})),
        lb_service("web", "RequireDualStack", &["IPv4", "IPv6"]),
    ]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "dual-stack", "default/web"), "fail");
    assert_eq!(status(&report, "pool-advertised", "v4"), "pass");
    assert_eq!(status(&report, "pool-advertised", "v6"), "fail");
    assert!(fix(&report, "pool-advertised", "v6").contains("ipAddressPools: [v6]"));
}
