//! End-to-end tests of `herald speaker` in file mode: its HTTP endpoints, reloads (file
//! changes of every kind, SIGHUP), rejection of bad files, and clean shutdown.
//!
//! Nothing here is timed: every wait polls for a condition with a generous limit.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use testkit::{PATIENCE, Signal, Speaker, fixture, metric};

/// A service added to valid.yaml to make a visibly different valid configuration.
const EXTRA_SERVICE: &str = "
---
apiVersion: v1
kind: Service
metadata:
  name: ldap
  namespace: infra
spec:
  type: LoadBalancer
  ports:
  - port: 636
    protocol: TCP
status:
  loadBalancer:
    ingress:
    - ip: 198.51.100.21
";

/// A configuration with a typo that strict loading rejects.
const BROKEN: &str = "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: internal
  namespace: metallb-system
spec:
  adresses: [198.51.100.10-198.51.100.40]
";

fn valid() -> String {
    std::fs::read_to_string(fixture("valid.yaml")).expect("reading valid.yaml")
}

fn valid_with_extra_service() -> String {
    valid() + EXTRA_SERVICE
}

/// A temporary directory holding `config.yaml` with `text`.
fn config_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, text).expect("writing config.yaml");
    (dir, file)
}

fn status(s: &Speaker) -> Value {
    s.get_json("/status")
}

fn generation(s: &Speaker) -> u64 {
    status(s)["config"]["generation"].as_u64().unwrap_or(0)
}

fn wait_ready(s: &Speaker) {
    s.eventually("/readyz to answer 200", |s| {
        (s.get("/readyz").0 == 200).then_some(())
    });
}

/// Waits until the configuration has been accepted `n` times in all.
fn wait_generation(s: &Speaker, n: u64) -> Value {
    s.eventually(&format!("configuration generation {n}"), |s| {
        let st = status(s);
        (st["config"]["generation"].as_u64() >= Some(n)).then_some(st)
    })
}

fn l2_ips(status: &Value) -> Vec<String> {
    status["plan"]["l2"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["ip"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_metric(s: &Speaker, name: &str, labels: &[(&str, &str)], want: f64) {
    s.eventually(&format!("{name}{labels:?} == {want}"), |s| {
        (metric(&s.scrape(), name, labels) == Some(want)).then_some(())
    });
}

#[test]
fn serves_health_readiness_status_and_metrics() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start(&[&file], "node-a", &[]);

    assert_eq!(s.get("/healthz").0, 200);
    wait_ready(&s);

    let st = status(&s);
    assert_eq!(st["node"], "node-a");
    assert_eq!(st["ready"], true);
    assert_eq!(st["config"]["state"], "loaded");
    assert_eq!(st["config"]["generation"], 1);
    assert!(
        st["config"]["last_reload"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{st:#}"
    );
    assert_eq!(st["config"]["last_errors"], Value::Array(vec![]));
    assert_eq!(st["config"]["files"][0], file.display().to_string());
    assert_eq!(st["plan"]["node"], "node-a");
    assert_eq!(l2_ips(&st), ["198.51.100.20"], "{st:#}");
    let peers: Vec<&str> = st["plan"]["bgp"]
        .as_array()
        .expect("bgp is an array")
        .iter()
        .filter_map(|p| p["peer"]["name"].as_str())
        .collect();
    assert_eq!(peers, ["router-v4", "router-v6"], "{st:#}");

    let r = s.request("/metrics");
    let content_type = r.headers.get("content-type").cloned().unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text")
            || content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let m = s.scrape();
    let build = m
        .samples
        .iter()
        .find(|x| x.metric == "herald_build_info")
        .expect("herald_build_info");
    assert!(build.labels.get("version").is_some_and(|v| !v.is_empty()));
    assert_eq!(metric(&m, "herald_config_loaded_bool", &[]), Some(1.0));
    assert_eq!(metric(&m, "herald_config_stale_bool", &[]), Some(0.0));
    assert_eq!(
        metric(&m, "herald_config_reloads_total", &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "herald_config_reloads_total", &[("result", "failure")]),
        Some(0.0)
    );
    assert_eq!(metric(&m, "herald_plan_l2_addresses", &[]), Some(1.0));
    assert_eq!(metric(&m, "herald_plan_bgp_peers", &[]), Some(2.0));
    // web's two addresses, each to the peer of its family.
    assert_eq!(metric(&m, "herald_plan_bgp_routes", &[]), Some(2.0));
    // The plan's sessions run, under MetalLB's metric names; no router is reachable from
    // this namespace, so they are down and their routes pending.
    for peer in ["10.0.0.1:179", "[2001:db8:ffff::1]:179"] {
        wait_metric(&s, "metallb_bgp_session_up", &[("peer", peer)], 0.0);
        wait_metric(
            &s,
            "metallb_bgp_pending_prefixes_total",
            &[("peer", peer)],
            1.0,
        );
        wait_metric(&s, "metallb_bgp_updates_total", &[("peer", peer)], 0.0);
    }
    // dns's address is planned for eth0, which this namespace lacks: not answered.
    let st = status(&s);
    let l2 = &st["announcing"]["layer2"]["addresses"][0];
    assert_eq!(l2["ip"], "198.51.100.20", "{st:#}");
    assert_eq!(l2["interfaces"], serde_json::json!([]), "{st:#}");
    assert_eq!(l2["unmatched"], serde_json::json!(["eth0"]), "{st:#}");

    let (code, body) = s.get("/nope");
    assert_eq!(code, 404);
    assert!(body.contains("/status"), "{body}");
}

#[test]
fn status_is_served_apart_on_loopback_and_herald_status_prints_it() {
    let (_dir, file) = config_dir(&valid());
    // The address `herald status` reads by default.
    let s = Speaker::start(&[&file], "node-a", &["--status-addr", "127.0.0.1:7473"]);
    wait_ready(&s);
    assert_eq!(s.status_addr(), "127.0.0.1:7473".parse().expect("addr"));
    // Not on --metrics-addr, the listener the node network (and Prometheus) reaches.
    let metrics = s.addr();
    let r = testkit::netns::spawn_in(s.netns(), move || testkit::http_get(metrics, "/status"))
        .join()
        .expect("the client thread")
        .expect("an answer");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("--status-addr"), "{}", r.body);

    let out = s.herald(["status"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(
        out.stdout
            .contains("node node-a: configuration loaded (generation 1), ready"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("198.51.100.20"), "{}", out.stdout);
    assert!(out.stdout.contains("router-v4"), "{}", out.stdout);

    let out = s.herald(["status", "--output", "json"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["node"], "node-a", "{doc:#}");
    assert_eq!(doc["config"]["generation"], 1, "{doc:#}");

    let out = s.herald(["status", "--status-addr", "127.0.0.1:1"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("is herald speaker running here"),
        "{out:#?}"
    );
}

#[test]
fn reloads_when_the_file_is_rewritten_in_place() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);
    assert_eq!(generation(&s), 1);

    std::fs::write(&file, valid_with_extra_service()).expect("rewriting config");
    let st = s.eventually("the new service in the plan", |s| {
        let st = status(s);
        l2_ips(&st)
            .contains(&"198.51.100.21".to_owned())
            .then_some(st)
    });
    assert_eq!(st["config"]["state"], "loaded");
    assert!(st["config"]["generation"].as_u64() >= Some(2), "{st:#}");
    wait_metric(&s, "herald_plan_l2_addresses", &[], 2.0);
}

#[test]
fn reloads_when_an_editor_renames_a_new_file_over_it() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);

    testkit::replace_file(&file, &valid_with_extra_service());
    s.eventually("the new service in the plan", |s| {
        l2_ips(&status(s))
            .contains(&"198.51.100.21".to_owned())
            .then_some(())
    });
}

/// A ConfigMap volume: `config.yaml -> ..data/config.yaml`, `..data -> ..<timestamp>`;
/// an update writes a new timestamped directory and swaps `..data` by rename.
#[test]
fn reloads_on_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_01_01_00_00_00.1")).expect("mkdir");
    std::fs::write(root.join("..2026_01_01_00_00_00.1/config.yaml"), valid()).expect("write");
    symlink("..2026_01_01_00_00_00.1", root.join("..data")).expect("symlink ..data");
    symlink("..data/config.yaml", root.join("config.yaml")).expect("symlink config.yaml");

    let file = root.join("config.yaml");
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);

    std::fs::create_dir(root.join("..2026_01_01_00_01_00.2")).expect("mkdir");
    std::fs::write(
        root.join("..2026_01_01_00_01_00.2/config.yaml"),
        valid_with_extra_service(),
    )
    .expect("write");
    symlink("..2026_01_01_00_01_00.2", root.join("..data_tmp")).expect("symlink ..data_tmp");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(root.join("..2026_01_01_00_00_00.1")).expect("remove old");

    s.eventually("the new service in the plan", |s| {
        l2_ips(&status(s))
            .contains(&"198.51.100.21".to_owned())
            .then_some(())
    });
}

#[test]
fn invalid_new_file_is_rejected_and_the_last_good_plan_kept() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);
    let before = status(&s);

    testkit::replace_file(&file, BROKEN);
    wait_metric(&s, "herald_config_stale_bool", &[], 1.0);
    let m = s.scrape();
    assert_eq!(metric(&m, "herald_config_loaded_bool", &[]), Some(0.0));
    assert_eq!(
        metric(&m, "herald_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );
    // The plan still in force is the old one, and still counted.
    assert_eq!(metric(&m, "herald_plan_l2_addresses", &[]), Some(1.0));

    let st = status(&s);
    assert_eq!(st["config"]["state"], "stale");
    assert_eq!(st["plan"], before["plan"], "the last good plan is kept");
    assert_eq!(st["config"]["generation"], before["config"]["generation"]);
    let errors = st["config"]["last_errors"].as_array().expect("last_errors");
    assert!(
        // The misspelt field is only a warning (MetalLB ignores unknown fields); the pool
        // without `addresses` is the error.
        errors
            .iter()
            .any(|e| e.to_string().contains("missing field `addresses`")),
        "{st:#}"
    );
    assert_eq!(s.get("/readyz").0, 200, "still serving the last good plan");
    // Every error was logged, with the file it is in.
    assert!(
        s.wait_for_log(
            |l| l["level"] == "ERROR"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`addresses`") && m.contains("config.yaml")),
            PATIENCE
        )
        .is_some()
    );
    assert!(
        s.wait_for_log(
            |l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("configuration rejected; keeping the last good plan")),
            PATIENCE
        )
        .is_some()
    );

    // Fixing the file clears the stale state.
    testkit::replace_file(&file, &valid_with_extra_service());
    wait_metric(&s, "herald_config_stale_bool", &[], 0.0);
    let st = status(&s);
    assert_eq!(st["config"]["state"], "loaded");
    assert_eq!(st["config"]["last_errors"], Value::Array(vec![]));
}

#[test]
fn starts_unready_on_an_invalid_file_and_recovers() {
    let (_dir, file) = config_dir(BROKEN);
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_metric(
        &s,
        "herald_config_reloads_total",
        &[("result", "failure")],
        1.0,
    );
    assert_eq!(
        s.get("/healthz").0,
        200,
        "alive even without a valid configuration"
    );
    assert_eq!(s.get("/readyz").0, 503);
    let st = status(&s);
    assert_eq!(st["config"]["state"], "invalid");
    assert_eq!(st["plan"], Value::Null);
    assert_eq!(st["ready"], false);
    let m = s.scrape();
    assert_eq!(metric(&m, "herald_config_loaded_bool", &[]), Some(0.0));
    assert_eq!(
        metric(&m, "herald_config_stale_bool", &[]),
        Some(0.0),
        "no plan is running, so none is stale"
    );

    testkit::replace_file(&file, &valid());
    wait_ready(&s);
    assert_eq!(status(&s)["config"]["state"], "loaded");
}

#[test]
fn sighup_rereads_the_configuration() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);
    assert_eq!(generation(&s), 1);

    s.signal(Signal::Hup);
    let st = wait_generation(&s, 2);
    assert_eq!(st["config"]["state"], "loaded");
    assert!(
        s.wait_for_log(|l| l["trigger"] == "SIGHUP", PATIENCE)
            .is_some(),
        "the reload says SIGHUP caused it"
    );
    wait_metric(
        &s,
        "herald_config_reloads_total",
        &[("result", "success")],
        2.0,
    );
    assert_eq!(s.get("/healthz").0, 200, "SIGHUP does not stop the speaker");
}

#[test]
fn several_config_files_make_one_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("main.yaml");
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&main, valid()).expect("write");
    std::fs::write(&extra, "# nothing yet\n").expect("write");
    let s = Speaker::start(&[&main, &extra], "node-a", &[]);
    wait_ready(&s);

    std::fs::write(&extra, EXTRA_SERVICE).expect("write");
    s.eventually("the service from the second file in the plan", |s| {
        l2_ips(&status(s))
            .contains(&"198.51.100.21".to_owned())
            .then_some(())
    });
}

#[test]
fn sigterm_exits_cleanly() {
    stops_cleanly_on(Signal::Term, "SIGTERM");
}

#[test]
fn sigint_exits_cleanly() {
    stops_cleanly_on(Signal::Int, "SIGINT");
}

fn stops_cleanly_on(signal: Signal, name: &str) {
    let (_dir, file) = config_dir(&valid());
    let mut s = Speaker::start(&[&file], "node-a", &[]);
    wait_ready(&s);
    s.signal(signal);
    let status = s
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("herald did not exit on {name}"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        s.wait_for_log(
            |l| l["message"] == "shutting down" && l["signal"] == name,
            Duration::from_secs(5)
        )
        .is_some(),
        "the log says why it stopped"
    );
}

#[test]
fn a_taken_metrics_address_is_a_clear_startup_error() {
    let (_dir, file) = config_dir(&valid());
    let first = Speaker::start(&[&file], "node-a", &[]);
    let taken = first.addr().to_string();
    let out = first.herald([
        "speaker".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
        "--node".as_ref(),
        "node-a".as_ref(),
        "--metrics-addr".as_ref(),
        taken.as_ref(),
    ]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot listen"), "{out:#?}");
    assert!(out.stderr.contains(&taken), "{out:#?}");
}

#[test]
fn node_name_comes_from_node_name_env_then_hostname() {
    let (_dir, file) = config_dir(&valid());
    let s = Speaker::start_with(&[&file], &[], |cmd| {
        cmd.env("NODE_NAME", "node-b");
    });
    assert_eq!(status(&s)["node"], "node-b");
    drop(s);

    let s = Speaker::start_with(&[&file], &[], |_| {});
    let host = s
        .wait_for_log(
            |l| l["message"] == "starting herald speaker in file mode",
            PATIENCE,
        )
        .expect("start line");
    let node = host["node"].as_str().expect("node field").to_owned();
    assert!(!node.is_empty());
    assert_eq!(status(&s)["node"], node.as_str());
    assert!(
        s.wait_for_log(
            |l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("using the hostname")),
            PATIENCE
        )
        .is_some()
    );
}
