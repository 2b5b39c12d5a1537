//! The Kubernetes manifests in `deploy/`, used unchanged: every overlay builds with
//! `kubectl kustomize`, validates against the Kubernetes schemas (`kubernetes-validate`, from
//! PyPI), and is accepted by the testkit API server through `kubectl apply`; the RBAC gives
//! herald every permission its watches, Leases, Events and `herald doctor` need (a missing verb
//! shows only in a real cluster, as a watch failing forever); the DaemonSet starts herald with
//! arguments it accepts; and the alerts and dashboard parse as PromQL and name only metrics a
//! running herald exports.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::Netns;
use testkit::{Speaker, workspace_root};

const OVERLAYS: &[&str] = &[
    "overlays/standalone",
    "overlays/replace-metallb-speaker",
    "monitoring",
];

fn deploy() -> PathBuf {
    workspace_root().join("deploy")
}

/// `kubectl kustomize deploy/DIR`: the YAML text.
fn build(dir: &str) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy().join(dir))
        .output()
        .expect("kubectl must be installed for this test");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/{dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn documents(dir: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&build(dir)).expect("kustomize prints YAML")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_overlay_validates_against_the_kubernetes_schemas() {
    for dir in OVERLAYS {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), build(dir)).expect("writing the build");
        let out = Command::new("kubernetes-validate")
            .args(["--kubernetes-version", "1.33.0", "--strict"])
            .arg(file.path())
            .output()
            .expect("kubernetes-validate must be installed (pip install kubernetes-validate)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "deploy/{dir}:\n{text}");
        for line in text.lines() {
            // The Prometheus Operator's kinds have no schema in Kubernetes' own; the testkit
            // server below still has to accept them.
            let operator_kind = line.contains("api version monitoring.coreos.com/v1");
            assert!(
                (line.starts_with("INFO") && line.contains(" passed for resource "))
                    || (line.starts_with("WARN") && operator_kind),
                "deploy/{dir}: {line}"
            );
        }
        let passed = text.matches(" passed for resource ").count();
        assert!(passed >= 1, "deploy/{dir}: nothing validated:\n{text}");
    }
}

#[test]
fn the_overlays_hold_what_they_say() {
    let crd_files: BTreeSet<String> = std::fs::read_dir(deploy().join("crds"))
        .expect("deploy/crds")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    let standalone = documents("overlays/standalone");
    let crds = standalone
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .count();
    assert_eq!(
        crds,
        crd_files.len(),
        "deploy/crds/kustomization.yaml must list every CRD file: {crd_files:?}"
    );
    let ns = of_kind(&standalone, "Namespace", "metallb-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    of_kind(&standalone, "DaemonSet", "herald");
    of_kind(&standalone, "Deployment", "herald-controller");
    of_kind(&standalone, "Service", "herald-metrics");

    // Next to MetalLB: its Namespace, CRDs and controller stay MetalLB's.
    let beside = documents("overlays/replace-metallb-speaker");
    let k = kinds(&beside);
    for absent in ["Namespace", "CustomResourceDefinition", "Deployment"] {
        assert!(
            !k.contains(absent),
            "replace-metallb-speaker has a {absent}"
        );
    }
    of_kind(&beside, "DaemonSet", "herald");
    of_kind(&beside, "Service", "herald-metrics");

    // The metrics Service finds the speakers and the controller by a label both carry.
    let selector = &of_kind(&standalone, "Service", "herald-metrics")["spec"]["selector"];
    for (kind, name) in [("DaemonSet", "herald"), ("Deployment", "herald-controller")] {
        let labels = &of_kind(&standalone, kind, name)["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector.as_object().expect("a selector") {
            assert_eq!(&labels[k], v, "{kind} {name} pods lack {k}");
        }
    }
}

/// Whether `role` lets its holder do `verb` on `resource` of `group`.
fn allows(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Value, item: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|x| x == item || x == "*"))
    };
    role["rules"].as_array().into_iter().flatten().any(|rule| {
        has(&rule["apiGroups"], group)
            && has(&rule["resources"], resource)
            && has(&rule["verbs"], verb)
    })
}

#[test]
fn rbac_covers_every_watch_event_and_doctor_check() {
    let docs = documents("overlays/standalone");
    let cluster = of_kind(&docs, "ClusterRole", "herald");
    let namespaced = of_kind(&docs, "Role", "herald");
    for (group, resource) in [
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
        // `herald doctor` in the speaker's pod: the cluster's service CIDRs.
        ("networking.k8s.io", "servicecidrs"),
    ] {
        for verb in ["list", "watch"] {
            assert!(
                allows(cluster, group, resource, verb),
                "ClusterRole: {verb} {resource}"
            );
        }
    }
    assert!(allows(cluster, "events.k8s.io", "events", "create"));
    for resource in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
    ] {
        for verb in ["list", "watch"] {
            assert!(
                allows(namespaced, "metallb.io", resource, verb),
                "Role: {verb} {resource}"
            );
        }
    }
    for verb in ["list", "watch"] {
        assert!(
            allows(namespaced, "", "secrets", verb),
            "Role: {verb} secrets"
        );
    }
    for verb in ["get", "list", "watch", "create", "update", "delete"] {
        assert!(
            allows(namespaced, "coordination.k8s.io", "leases", verb),
            "Role: {verb} leases (the election)"
        );
    }
    // Least privilege: the speaker writes nothing but Leases and Events.
    for rule in cluster["rules"].as_array().expect("rules") {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if rule["apiGroups"][0] != "events.k8s.io" {
            assert!(
                verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
                "ClusterRole herald writes: {rule}"
            );
        }
    }
    for (binding, account) in [
        ("ClusterRoleBinding", "herald"),
        ("RoleBinding", "herald"),
        ("ClusterRoleBinding", "herald-controller"),
        ("RoleBinding", "herald-controller"),
    ] {
        let b = of_kind(&docs, binding, account);
        assert_eq!(b["subjects"][0]["name"], account, "{binding} {account}");
        of_kind(&docs, "ServiceAccount", account);
    }
}

#[test]
fn the_daemonset_starts_herald_with_arguments_it_accepts() {
    let docs = documents("overlays/standalone");
    let pod = &of_kind(&docs, "DaemonSet", "herald")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let container = &pod["containers"][0];
    let caps = &container["securityContext"]["capabilities"];
    assert_eq!(caps["drop"], json!(["ALL"]));
    assert_eq!(caps["add"], json!(["NET_RAW", "NET_ADMIN"]));
    let env: Vec<&str> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        env.contains(&"NODE_NAME") && env.contains(&"POD_NAMESPACE"),
        "{env:?}"
    );
    // The arguments parse; herald then fails only for want of a cluster (exit 1, not the
    // usage error's 2).
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string").to_owned())
        .collect();
    args.extend(["--kubeconfig".into(), "/nonexistent/kubeconfig".into()]);
    let out = testkit::herald(&args);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot read --kubeconfig"), "{out:#?}");
}

/// `kubectl --kubeconfig K ARGS`, which must succeed.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_api_server_accepts_every_overlay() {
    for (overlays, expect) in [
        (
            &["overlays/standalone", "monitoring"][..],
            &[
                "daemonset.apps/herald",
                "deployment.apps/herald-controller",
                "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io",
                "servicemonitor.monitoring.coreos.com/herald",
                "prometheusrule.monitoring.coreos.com/herald",
                "configmap/herald-grafana-dashboard",
            ][..],
        ),
        (
            &["overlays/replace-metallb-speaker"][..],
            &["daemonset.apps/herald", "service/herald-metrics"][..],
        ),
    ] {
        let server = ApiServer::start().expect("the API server starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "kubectl")
            .expect("kubeconfig");
        let mut applied = String::new();
        for overlay in overlays {
            let file = dir.path().join("built.yaml");
            std::fs::write(&file, build(overlay)).expect("writing the build");
            applied += &kubectl(
                &kubeconfig,
                &["apply", "-f", file.to_str().expect("UTF-8"), "-o", "name"],
            );
        }
        for name in expect {
            assert!(
                applied.lines().any(|l| l == *name),
                "{overlays:?}: {name} not applied:\n{applied}"
            );
            // And it is there to read back.
            let (kind, object) = name.split_once('/').expect("kind/name");
            let mut args = vec!["get", kind, object, "-o", "name"];
            if !kind.starts_with("customresourcedefinition") {
                args.extend(["-n", "metallb-system"]);
            }
            kubectl(&kubeconfig, &args);
        }
    }
}

/// The metric names in each PromQL expression, through the `promql-parser` package (PyPI):
/// an expression that does not parse fails the test.
fn metric_names(exprs: &[String]) -> Vec<BTreeSet<String>> {
    const SCRIPT: &str = r#"
import json, sys
import promql_parser as p
def names(e, out):
    if isinstance(e, p.VectorSelector):
        if e.name: out.add(e.name)
        for m in e.matchers.matchers if e.matchers else []:
            if m.name == "__name__": out.add(m.value)
    elif isinstance(e, p.MatrixSelector): names(e.vector_selector, out)
    elif isinstance(e, p.BinaryExpr): names(e.lhs, out); names(e.rhs, out)
    elif isinstance(e, p.AggregateExpr):
        names(e.expr, out)
        if e.param is not None: names(e.param, out)
    elif isinstance(e, p.Call):
        for a in e.args: names(a, out)
    elif isinstance(e, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)): names(e.expr, out)
    return out
print(json.dumps([sorted(names(p.parse(x), set())) for x in json.load(sys.stdin)]))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = serde_json::to_vec(exprs).expect("JSON");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&input).expect("writing expressions");
    }
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "an expression does not parse (or promql-parser is not installed: pip install promql-parser): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("names as JSON")
}

/// Every series name a running speaker in Kubernetes mode exports: from each `# TYPE` line,
/// with the suffixes OpenMetrics gives counters and info metrics.
fn exported_metrics() -> BTreeSet<String> {
    let ns = Netns::new("dep");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth1", "up"]);
    let server = ApiServer::builder()
        .start_in(ns.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(ns.name()));
    api.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.0.2.0/28", "2001:db8::/124"]},
    }));
    api.create(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": "metallb-system"},
    }));
    let speaker = Speaker::start_kubernetes_in(&ns, &server, "node-a", "metallb-system");
    let text = testkit::netns::poll_until("a ready speaker's /metrics", testkit::PATIENCE, |why| {
        let (code, _) = speaker.get("/readyz");
        let (_, metrics) = speaker.get("/metrics");
        *why = format!("/readyz {code}");
        (code == 200).then_some(metrics)
    });
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
        match kind {
            "counter" => names.insert(format!("{name}_total")),
            "info" => names.insert(format!("{name}_info")),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
                true
            }
            _ => names.insert(name.to_owned()),
        };
    }
    names
}

#[test]
fn alerts_and_dashboard_name_only_metrics_herald_exports() {
    let rules = documents("monitoring");
    let rule = of_kind(&rules, "PrometheusRule", "herald");
    let mut exprs: Vec<(String, String)> = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            let name = r["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_owned();
            exprs.push((name, r["expr"].as_str().expect("expr").to_owned()));
        }
    }
    let alerts: BTreeSet<&str> = exprs.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "HeraldBGPSessionDown",
        "HeraldLayer2LeaderNotAnswering",
        "HeraldAddressConflict",
        "HeraldConfigurationStale",
        "HeraldTaskRestarts",
        "HeraldNodeChecksFailing",
    ] {
        assert!(alerts.contains(wanted), "no {wanted} alert: {alerts:?}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("monitoring/grafana-dashboard.json"))
            .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push((
                format!("panel {}", panel["title"]),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    let names = metric_names(&exprs.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>());
    let exported = exported_metrics();
    for ((what, expr), used) in exprs.iter().zip(names) {
        assert!(!used.is_empty(), "{what}: {expr} names no metric");
        for name in used {
            assert!(
                exported.contains(&name),
                "{what}: {expr} uses {name}, which herald does not export ({exported:?})"
            );
        }
    }
}
