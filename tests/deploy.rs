//! The Kubernetes manifest in `deploy/`: it must give herald every permission its watches
//! and Events need (a missing verb shows only in a real cluster, as a watch failing forever),
//! and start it with arguments it accepts.

use serde_json::Value;
use testkit::workspace_root;

fn documents() -> Vec<Value> {
    let path = workspace_root().join("deploy/herald.yaml");
    let text = std::fs::read_to_string(&path).expect("reading deploy/herald.yaml");
    serde_saphyr::from_multiple::<Value>(&text).expect("deploy/herald.yaml is YAML")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/herald.yaml"))
}

/// Whether `role` lets herald do `verb` on `resource` of `group`.
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
fn rbac_covers_every_watch_and_event() {
    let docs = documents();
    let cluster = of_kind(&docs, "ClusterRole");
    let namespaced = of_kind(&docs, "Role");
    for (group, resource) in [
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
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
    let account = of_kind(&docs, "ServiceAccount")["metadata"]["name"].clone();
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        assert_eq!(
            of_kind(&docs, binding)["subjects"][0]["name"],
            account,
            "{binding}"
        );
    }
}

#[test]
fn the_daemonset_starts_herald_with_arguments_it_accepts() {
    let docs = documents();
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let container = &pod["containers"][0];
    let caps = &container["securityContext"]["capabilities"]["add"];
    for cap in ["NET_RAW", "NET_ADMIN"] {
        assert!(
            caps.as_array().is_some_and(|c| c.iter().any(|x| x == cap)),
            "{cap}"
        );
    }
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
