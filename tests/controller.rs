//! `herald controller` end to end: the testkit API server defaults Services as a real one
//! does (cluster IPs from its service CIDRs), kubectl creates the seed documents' pools and
//! Services, and the controller, through its production client code, writes the addresses
//! MetalLB's controller would, with MetalLB's Events, annotation and pool status. Also: a
//! controller killed in the middle of a burst of creations, and its standby replica taking
//! over through the election, give no address twice. Runs unprivileged (the API server and the controller share loopback);
//! nothing is timed.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use testkit::apiserver::ApiServer;
use testkit::{PATIENCE, Speaker};

const DUAL_STACK: &str = "10.96.0.0/12,fd00:10:96::/112";

struct Cluster {
    server: ApiServer,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(cidrs: &str) -> Cluster {
        let server = ApiServer::builder()
            .service_cidrs(cidrs)
            .start()
            .expect("the API server starts");
        let dir = tempfile::tempdir().expect("a scratch directory");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "herald-controller")
            .expect("writing the kubeconfig");
        server
            .write_kubeconfig(dir.path().join("kubectl"), "kubectl")
            .expect("writing kubectl's kubeconfig");
        Cluster {
            server,
            kubeconfig,
            _dir: dir,
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self._dir.path().join("kubectl"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("kubectl must be installed (Debian package kubectl)");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("writing to kubectl");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn apply(&self, yaml: &str) {
        let (ok, out, err) = self.kubectl(&["create", "-f", "-"], Some(yaml));
        assert!(ok, "kubectl create failed: {out}{err}");
    }

    fn controller(&self) -> Speaker {
        Speaker::controller(&self.kubeconfig, &["--namespace", "metallb-system"])
    }

    /// A controller replica that the API server counts as client `name`.
    fn replica(&self, name: &str) -> Speaker {
        let kubeconfig = self._dir.path().join(name);
        self.server
            .write_kubeconfig(&kubeconfig, name)
            .expect("writing the kubeconfig");
        Speaker::controller(
            &kubeconfig,
            &["--namespace", "metallb-system", "--identity", name],
        )
    }

    fn service(&self, ns: &str, name: &str) -> Value {
        self.server
            .objects("v1", "Service")
            .into_iter()
            .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Service {ns}/{name}"))
    }

    fn ingress(&self, ns: &str, name: &str) -> Vec<String> {
        ingress_of(&self.service(ns, name))
    }

    /// Waits until `probe` holds, or fails saying what was awaited.
    fn eventually<T>(&self, what: &str, mut probe: impl FnMut(&Cluster) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The Events about a Service: (type, reason, note).
    fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        self.server
            .objects("events.k8s.io/v1", "Event")
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name && e["regarding"]["namespace"] == ns)
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    e["note"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn ingress_of(svc: &Value) -> Vec<String> {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().map(str::to_owned))
        .collect()
}

fn pool_yaml(name: &str, addresses: &[&str], extra: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("  - {a}\n")).collect();
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n{extra}  addresses:\n{}---\n",
        list.concat()
    )
}

fn service_yaml(name: &str, spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n{spec}---\n"
    )
}

#[test]
fn the_seed_services_get_exactly_what_metallb_assigns() {
    let cluster = Cluster::start(DUAL_STACK);
    let mut yaml = String::new();
    yaml += &pool_yaml("dual", &["192.0.2.0/28", "2001:db8:1::/124"], "");
    yaml += &pool_yaml("v6-only", &["2001:db8:6::/124"], "  autoAssign: false\n");
    yaml += &pool_yaml(
        "reserved",
        &["198.51.100.0/28"],
        "  autoAssign: false\n  avoidBuggyIPs: true\n",
    );
    cluster.apply(&yaml);
    let mut services = String::new();
    // IPv6-only Service with spec.loadBalancerIP.
    services += &service_yaml(
        "v6-lbip",
        "  ipFamilies: [IPv6]\n  ipFamilyPolicy: SingleStack\n  loadBalancerIP: 2001:db8:6::5\n",
        "",
    );
    services += &service_yaml("prefer", "  ipFamilyPolicy: PreferDualStack\n", "");
    services += &service_yaml("require", "  ipFamilyPolicy: RequireDualStack\n", "");
    services += &service_yaml(
        "v6-primary",
        "  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv6, IPv4]\n",
        "",
    );
    services += &service_yaml(
        "by-annotation",
        "  ipFamilyPolicy: RequireDualStack\n",
        "metallb.io/loadBalancerIPs: '192.0.2.10,2001:db8:1::a'",
    );
    services += &service_yaml("from-pool", "", "metallb.io/address-pool: reserved");
    services += &service_yaml(
        "shared-http",
        "",
        "metallb.io/allow-shared-ip: web, metallb.io/address-pool: reserved",
    );
    services += &service_yaml(
        "shared-https",
        "  ports:\n  - port: 443\n",
        "metallb.io/allow-shared-ip: web, metallb.io/address-pool: reserved",
    )
    .replace(
        "  ports:\n  - port: 80\n  ports:\n  - port: 443\n",
        "  ports:\n  - port: 443\n",
    );
    services += &service_yaml("plain", "", "");
    cluster.apply(&services);
    let controller = cluster.controller();

    let want: BTreeMap<&str, (Vec<&str>, &str)> = [
        ("v6-lbip", (vec!["2001:db8:6::5"], "v6-only")),
        ("from-pool", (vec!["198.51.100.1"], "reserved")),
        ("shared-http", (vec!["198.51.100.2"], "reserved")),
        ("shared-https", (vec!["198.51.100.2"], "reserved")),
        (
            "by-annotation",
            (vec!["192.0.2.10", "2001:db8:1::a"], "dual"),
        ),
    ]
    .into_iter()
    .collect();
    for (name, (ips, pool)) in &want {
        let got = cluster.eventually(&format!("{name}'s addresses"), |c| {
            let ips = c.ingress("default", name);
            (!ips.is_empty()).then_some(ips)
        });
        assert_eq!(&got, ips, "{name}");
        let svc = cluster.service("default", name);
        assert_eq!(
            svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"], *pool,
            "{name}"
        );
    }
    // The auto-assigned ones come from "dual", lowest first, each in its ipFamilies order;
    // which one is processed first is the controller's business, so compare as sets.
    let mut auto = BTreeMap::new();
    for name in ["prefer", "require", "v6-primary", "plain"] {
        let ips = cluster.eventually(&format!("{name}'s addresses"), |c| {
            let ips = c.ingress("default", name);
            (!ips.is_empty()).then_some(ips)
        });
        auto.insert(name, ips);
    }
    assert_eq!(
        auto["plain"].len(),
        1,
        "a SingleStack Service gets one address"
    );
    assert!(auto["plain"][0].starts_with("192.0.2."));
    for name in ["prefer", "require"] {
        assert!(
            auto[name][0].starts_with("192.0.2.") && auto[name][1].starts_with("2001:db8:1::"),
            "{name}: {:?}",
            auto[name]
        );
    }
    let v6p = &auto["v6-primary"];
    assert!(
        v6p[0].starts_with("2001:db8:1::") && v6p[1].starts_with("192.0.2."),
        "{v6p:?}"
    );
    let all: Vec<&String> = auto.values().flatten().collect();
    let distinct: BTreeSet<&&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "no address given twice: {auto:?}"
    );
    let v4: BTreeSet<&str> = all
        .iter()
        .filter(|ip| ip.contains('.'))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        v4,
        ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .into_iter()
            .collect(),
        "the lowest addresses, the requested .10 left alone"
    );

    // Events with MetalLB's reasons and words.
    let events = cluster.eventually("the IPAllocated Event", |c| {
        let e = c.events("default", "by-annotation");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        events[0],
        (
            "Normal".into(),
            "IPAllocated".into(),
            r#"Assigned IP ["192.0.2.10" "2001:db8:1::a"]"#.into()
        )
    );
    // One status write per Service: nine Services, nine writes.
    let writes = cluster
        .server
        .requests_from("herald-controller", "patch", "services/status");
    assert_eq!(writes, 9, "{:?}", cluster.server.request_counts());
    // Pool status and MetalLB's metrics.
    let status = cluster.eventually("the dual pool's status", |c| {
        c.server
            .objects("metallb.io/v1beta1", "IPAddressPool")
            .into_iter()
            .find(|p| p["metadata"]["name"] == "dual" && p["status"]["assignedIPv4"] == 5)
            .map(|p| p["status"].clone())
    });
    assert_eq!(
        status,
        json!({"assignedIPv4": 5, "assignedIPv6": 4, "availableIPv4": 11, "availableIPv6": 12})
    );
    // MetalLB's allocator metrics, with MetalLB's names and labels.
    let metrics = cluster.eventually("the allocator metrics", |_| {
        let text = testkit::http_get(controller.addr(), "/metrics")
            .expect("GET /metrics")
            .body;
        text.contains("metallb_allocator_ipv4_addresses_in_use_total{pool=\"dual\"} 5")
            .then_some(text)
    });
    for line in [
        "metallb_allocator_ipv6_addresses_in_use_total{pool=\"dual\"} 4",
        "metallb_allocator_addresses_in_use_total{pool=\"dual\"} 9",
        "metallb_allocator_ipv4_addresses_total{pool=\"dual\"} 16",
        "metallb_allocator_ipv6_addresses_total{pool=\"dual\"} 16",
        "metallb_allocator_addresses_in_use_total{pool=\"reserved\"} 2",
        "herald_controller_active 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let state = cluster.eventually("the ConfigurationState", |c| {
        c.server
            .objects("metallb.io/v1beta1", "ConfigurationState")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "controller")
    });
    assert_eq!(state["status"]["result"], "Valid");
    assert_eq!(
        state["metadata"]["labels"]["metallb.io/component-type"],
        "controller"
    );
}

#[test]
fn allocation_failures_say_what_to_change_and_heal_when_it_is_changed() {
    let cluster = Cluster::start(DUAL_STACK);
    cluster.apply(
        &(pool_yaml("ipv4-pool", &["192.0.2.0/24"], "")
            + &pool_yaml("ipv6-pool", &["2001:db8::/64"], "")),
    );
    cluster.apply(&service_yaml(
        "svc",
        "  ipFamilyPolicy: RequireDualStack\n",
        "",
    ));
    let controller = cluster.controller();
    let failure = cluster.eventually("the AllocationFailed Event", |c| {
        c.events("default", "svc")
            .into_iter()
            .find(|e| e.1 == "AllocationFailed")
    });
    assert_eq!(failure.0, "Warning");
    assert_eq!(
        failure.2,
        "Failed to allocate IP for \"default/svc\": no available IPs: RequireDualStack, but no auto-assign pool has both IPv4 and IPv6 ranges: pools ipv4-pool and ipv6-pool each hold one family; put both families in one pool, or name a dual-stack pool with metallb.io/address-pool"
    );
    assert!(cluster.ingress("default", "svc").is_empty());
    let status: Value = serde_json::from_str(
        &testkit::http_get(controller.addr(), "/status")
            .expect("GET /status")
            .body,
    )
    .expect("/status is JSON");
    assert_eq!(status["pending"], json!(["default/svc"]));
    // Adding the other family to one pool is the fix.
    let (ok, out, err) = cluster.kubectl(
        &[
            "patch",
            "ipaddresspool",
            "ipv4-pool",
            "-n",
            "metallb-system",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"addresses":["192.0.2.0/24","2001:db8:4::/64"]}}"#,
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let ips = cluster.eventually("svc's addresses", |c| {
        let ips = c.ingress("default", "svc");
        (!ips.is_empty()).then_some(ips)
    });
    assert_eq!(ips, ["192.0.2.0", "2001:db8:4::"]);
    // Deleting a Service frees its addresses for the next one.
    let (ok, out, err) = cluster.kubectl(&["delete", "service", "svc", "-n", "default"], None);
    assert!(ok, "{out}{err}");
    cluster.apply(&service_yaml(
        "next",
        "  ipFamilyPolicy: RequireDualStack\n",
        "",
    ));
    let ips = cluster.eventually("next's addresses", |c| {
        let ips = c.ingress("default", "next");
        (!ips.is_empty()).then_some(ips)
    });
    assert_eq!(ips, ["192.0.2.0", "2001:db8:4::"]);
}

#[test]
fn the_api_server_defaults_and_refuses_services_as_a_real_one() {
    let cluster = Cluster::start("10.96.0.0/12");
    let (ok, _, err) = cluster.kubectl(&["create", "namespace", "team"], None);
    assert!(ok, "{err}");
    let (ok, out, _) = cluster.kubectl(
        &["get", "namespace", "team", "-o", "jsonpath={.status.phase}"],
        None,
    );
    assert!(ok);
    assert_eq!(out, "Active");
    let v6 = service_yaml("v6", "  ipFamilies: [IPv6]\n", "")
        .replace("namespace: default", "namespace: team");
    let (ok, _, err) = cluster.kubectl(&["create", "-f", "-"], Some(&v6));
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Service \"v6\" is invalid: spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
    );
    let dual = service_yaml("dual", "  ipFamilyPolicy: RequireDualStack\n", "");
    let (ok, _, err) = cluster.kubectl(&["create", "-f", "-"], Some(&dual));
    assert!(!ok);
    assert!(err.contains("spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"), "{err}");
    cluster.apply(&service_yaml(
        "prefer",
        "  ipFamilyPolicy: PreferDualStack\n",
        "",
    ));
    let svc = cluster.service("default", "prefer");
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "PreferDualStack");
    assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
}

/// Waits until `n` Services named `burst-*` all have addresses; returns them.
fn all_assigned(cluster: &Cluster, n: usize) -> BTreeMap<String, Vec<String>> {
    cluster.eventually(&format!("{n} Services with addresses"), |c| {
        let got: BTreeMap<String, Vec<String>> = c
            .server
            .objects("v1", "Service")
            .into_iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("burst-"))
            })
            .map(|s| {
                (
                    s["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ingress_of(&s),
                )
            })
            .collect();
        (got.len() == n && got.values().all(|ips| !ips.is_empty())).then_some(got)
    })
}

#[test]
fn a_controller_killed_in_a_burst_and_its_standby_give_no_address_twice() {
    const N: usize = 1000;
    let cluster = Cluster::start(DUAL_STACK);
    cluster.apply(&pool_yaml("burst", &["10.20.0.0/16", "fd00:20::/112"], ""));
    // Two replicas, as deploy/controller.yaml runs them: the election makes one active.
    let mut replicas = [
        cluster.replica("controller-a"),
        cluster.replica("controller-b"),
    ];
    let active = cluster.eventually("one replica to become active", |_| {
        let active: Vec<usize> = (0..2)
            .filter(|&i| replicas[i].get_json("/status")["active"] == true)
            .collect();
        (active.len() == 1).then(|| active[0])
    });
    let names = ["controller-a", "controller-b"];
    let standby = 1 - active;
    let server = cluster.server.controls();
    let creator = std::thread::spawn(move || {
        for i in 0..N {
            let policy = ["SingleStack", "PreferDualStack", "RequireDualStack"][i % 3];
            server
                .create(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("burst-{i}"), "namespace": "default"},
                    "spec": {"type": "LoadBalancer", "ipFamilyPolicy": policy, "ports": [{"port": 80}]},
                }))
                .expect("creating a Service");
        }
    });
    // Kill the active replica once it has written some, while creations go on.
    cluster.eventually("the active replica's first writes", |c| {
        (c.server
            .requests_from(names[active], "patch", "services/status")
            >= 100)
            .then_some(())
    });
    assert_eq!(
        cluster
            .server
            .requests_from(names[standby], "patch", "services/status"),
        0,
        "the standby wrote a Service while the active replica was alive"
    );
    let killed = Command::new("kill")
        .args(["-KILL", &replicas[active].pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let _ = replicas[active].wait_exit(PATIENCE);
    let before_takeover: BTreeMap<String, Vec<String>> = cluster
        .server
        .objects("v1", "Service")
        .into_iter()
        .filter(|s| !ingress_of(s).is_empty())
        .map(|s| {
            (
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ingress_of(&s),
            )
        })
        .collect();
    assert!(!before_takeover.is_empty());
    creator.join().expect("the creations finish");
    let all = all_assigned(&cluster, N);
    assert!(
        replicas[standby].get_json("/status")["active"] == true,
        "the standby took over"
    );
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, ips) in &all {
        for ip in ips {
            if let Some(other) = owner.insert(ip, name) {
                panic!("{ip} given to {other} and {name}");
            }
        }
    }
    for (name, ips) in &before_takeover {
        assert_eq!(
            &all[name], ips,
            "{name} kept what the first controller gave it"
        );
    }
}
