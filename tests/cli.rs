//! End-to-end tests of `herald check`: exit codes, diagnostics and plans as a user sees them.

use serde_json::Value;
use testkit::{fixture, herald};

fn path(name: &str) -> String {
    fixture(name).display().to_string()
}

#[test]
fn valid_file_exits_zero_and_shows_every_described_node() {
    let out = herald(["check", &path("valid.yaml")]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(
        out.stdout.starts_with("Configuration valid (1 file"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("Node node-a\n"), "{out:#?}");
    assert!(out.stdout.contains("Node node-b\n"), "{out:#?}");
    assert!(!out.stderr.contains("error"), "{out:#?}");
}

#[test]
fn node_plan_is_printed_as_tables() {
    let out = herald(["check", &path("valid.yaml"), "--node", "node-a"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let text = &out.stdout;
    // Only the named node.
    assert!(text.contains("Node node-a\n"), "{text}");
    assert!(!text.contains("Node node-b"), "{text}");
    // L2: the internal address on eth0 (node-a is in rack a).
    assert!(text.contains("Layer 2 (1 address):"), "{text}");
    let l2 = line_with(text, "198.51.100.20");
    for cell in ["infra/dns", "internal", "eth0"] {
        assert!(l2.contains(cell), "{cell} missing from {l2:?}\n{text}");
    }
    // BGP: both peers, each with the routes of its own family.
    let v4 = line_with(text, "router-v4");
    for cell in ["10.0.0.1", "64512", "iBGP", "IPv4"] {
        assert!(v4.contains(cell), "{cell} missing from {v4:?}\n{text}");
    }
    let v6 = line_with(text, "2001:db8:ffff::1");
    for cell in ["router-v6", "64513", "eBGP", "IPv6"] {
        assert!(v6.contains(cell), "{cell} missing from {v6:?}\n{text}");
    }
    let route = line_with(text, "192.0.2.10/32");
    for cell in [
        "default/web",
        "64512:100",
        "no-export",
        "large:64512:1:2",
        "200",
    ] {
        assert!(
            route.contains(cell),
            "{cell} missing from {route:?}\n{text}"
        );
    }
    let route6 = line_with(text, "2001:db8:100::10/128");
    assert!(route6.contains("router-v6"), "{route6:?}\n{text}");
    // LOCAL_PREF is not sent to eBGP peers.
    assert!(route6.trim_end().ends_with('-'), "{route6:?}\n{text}");
    // The address outside every pool is listed with its reason.
    let stray = line_with(text, "203.0.113.5");
    assert!(stray.contains("default/stray"), "{stray:?}");
    assert!(stray.contains("in no IPAddressPool"), "{stray:?}");
}

#[test]
fn node_outside_the_advertisement_sees_why() {
    let out = herald(["check", &path("valid.yaml"), "--node", "node-b"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let skipped = out
        .stdout
        .lines()
        .find(|l| l.contains("198.51.100.20") && l.contains("L2"))
        .unwrap_or_else(|| {
            panic!(
                "198.51.100.20 not listed as skipped for L2:\n{}",
                out.stdout
            )
        });
    assert!(skipped.contains("not this node"), "{skipped:?}");
}

#[test]
fn json_output_is_one_document() {
    let out = herald([
        "check",
        &path("valid.yaml"),
        "--node",
        "node-a",
        "--output",
        "json",
    ]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["valid"], true);
    assert!(doc["diagnostics"].is_array());
    let plans = doc["plans"].as_array().expect("plans is an array");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["node"], "node-a");
    let l2 = plans[0]["l2"].as_array().expect("l2 is an array");
    assert!(l2.iter().any(|a| a["ip"] == "198.51.100.20"), "{doc:#}");
    let bgp = plans[0]["bgp"].as_array().expect("bgp is an array");
    assert_eq!(bgp.len(), 2, "{doc:#}");
}

#[test]
fn invalid_file_reports_every_error_and_exits_one() {
    let out = herald(["check", &path("invalid.yaml"), "--node", "node-a"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_eq!(out.stdout, "", "no plan for an invalid configuration");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    for line in &errors {
        assert!(
            line.contains("invalid.yaml:"),
            "error without file:line: {line:?}"
        );
    }
    for needle in [
        "2001:db8:prod::/64",
        "nosuch",
        "aggregationLenght",
        "64512:70000",
        "2s",
    ] {
        assert!(
            errors.iter().any(|l| l.contains(needle)),
            "no error mentions {needle:?}:\n{}",
            out.stderr
        );
    }
    assert!(errors.len() >= 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("configuration rejected:"),
        "{}",
        out.stderr
    );
}

#[test]
fn invalid_file_as_json() {
    let out = herald(["check", &path("invalid.yaml"), "--output", "json"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["plans"], Value::Array(vec![]));
    let errors: Vec<&Value> = doc["diagnostics"]
        .as_array()
        .expect("diagnostics is an array")
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert!(!errors.is_empty(), "{doc:#}");
    for e in &errors {
        assert!(
            e["origin"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("invalid.yaml")),
            "{e:#}"
        );
    }
}

#[test]
fn bundled_example_is_valid() {
    let example = testkit::workspace_root().join("systemd/herald.example.yaml");
    let out = herald(["check".as_ref(), example.as_os_str()]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("Node edge-1"), "{out:#?}");
}

#[test]
fn unreadable_file_is_an_error_not_a_crash() {
    let out = herald(["check", "/nonexistent/herald.yaml"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("/nonexistent/herald.yaml"), "{out:#?}");
    assert!(out.stderr.contains("cannot read"), "{out:#?}");
}

#[test]
fn without_nodes_it_says_how_to_see_a_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pool.yaml");
    std::fs::write(
        &file,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  namespace: metallb-system\nspec:\n  addresses: [192.0.2.0/28]\n",
    )
    .expect("write");
    let out = herald(["check".as_ref(), file.as_os_str()]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(out.stdout.contains("Configuration valid"), "{out:#?}");
    assert!(out.stdout.contains("--node NAME"), "{out:#?}");
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(herald(["check"]).code(), Some(2));
    assert_eq!(
        herald(["check", &path("valid.yaml"), "--output", "xml"]).code(),
        Some(2)
    );
    assert_eq!(herald(["frobnicate"]).code(), Some(2));
    assert_eq!(
        herald(["speaker", "--config", "a.yaml", "--kubeconfig", "kc"]).code(),
        Some(2),
        "one source at a time"
    );
}

#[test]
fn speaker_without_a_source_says_how_to_give_one() {
    // Outside a pod and with no kubeconfig anywhere, Kubernetes mode has nothing to read.
    let home = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(testkit::herald_bin())
        .args(["speaker", "--node", "n1"])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("running herald");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--kubeconfig") && stderr.contains("--config"),
        "{stderr}"
    );
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn check_prints_what_the_controller_would_assign_and_what_blocks_it() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let file = dir.path().join("pools.yaml");
    let pool = |name: &str, range: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n  addresses: [\"{range}\"]\n"
        )
    };
    let service = |name: &str, policy: &str, families: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: {policy}\n  ipFamilies: [{families}]\n  ports: [{{port: 80}}]\n"
        )
    };
    let yaml = [
        pool("ipv4-pool", "192.0.2.10-192.0.2.20"),
        pool("ipv6-pool", "2001:db8::10-2001:db8::20"),
        service("single", "SingleStack", "IPv6"),
        service("dual", "RequireDualStack", "IPv4, IPv6"),
    ]
    .join("---\n");
    std::fs::write(&file, yaml).expect("writing the file");
    let file = file.display().to_string();

    let out = herald(["check", &file]);
    let text = &out.stdout;
    assert!(
        text.contains("Allocation (2 LoadBalancer Services without addresses"),
        "{out:#?}"
    );
    let row = text
        .lines()
        .find(|l| l.contains("default/single"))
        .unwrap_or_else(|| panic!("no row for default/single: {text}"));
    assert!(
        row.contains("2001:db8::10") && row.contains("ipv6-pool"),
        "{row}"
    );
    assert!(
        text.contains(
            "cannot allocate default/dual: Failed to allocate IP for \"default/dual\": no available IPs: RequireDualStack, but no auto-assign pool has both IPv4 and IPv6 ranges: pools ipv4-pool and ipv6-pool each hold one family; put both families in one pool, or name a dual-stack pool with metallb.io/address-pool"
        ),
        "{text}"
    );

    let out = herald(["check", &file, "--output", "json"]);
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    let allocations = doc["allocations"].as_array().expect("allocations");
    let dual = allocations
        .iter()
        .find(|a| a["service"] == "default/dual")
        .expect("default/dual is listed");
    assert_eq!(dual["addresses"], serde_json::json!([]), "{doc:#}");
    assert!(
        dual["error"]
            .as_str()
            .is_some_and(|e| e.contains("RequireDualStack")),
        "{doc:#}"
    );
}
