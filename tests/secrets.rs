//! Secrets never leave herald (issue 12): a BGP password, inline or in a Secret, appears in
//! no log line (at debug level, the most herald logs), no `/status`, no `/metrics`, and no
//! diagnostic or Event, also when the object holding it is wrong. Both ways herald reads
//! configuration: files, and the Kubernetes API (where the Secret crosses the client and
//! herald's stores).
//!
//! Needs root (namespaces); fails, never skips, without it. Nothing is timed.

use serde_json::{Value, json};
use testkit::Speaker;
use testkit::apiserver::{ApiServer, BlockingClient};
use testkit::netns::Netns;

const INLINE: &str = "inline-pw-4f1c9b";
const IN_SECRET: &str = "secret-pw-8d27e3";
/// Written where a string belongs, so the object holding it cannot be read.
const MISTYPED: u64 = 907_745_113;

/// Everything herald shows: every log line so far, `/status` and `/metrics`.
fn everything(s: &Speaker) -> String {
    let (_, status) = s.get("/status");
    let (_, metrics) = s.get("/metrics");
    format!("{}\n{status}\n{metrics}", s.logs_text())
}

#[track_caller]
fn assert_hidden(shown: &str) {
    for secret in [
        INLINE.to_owned(),
        IN_SECRET.to_owned(),
        MISTYPED.to_string(),
        // base64 of IN_SECRET, as Secret data carries it.
        "c2VjcmV0LXB3LThkMjdlMw".to_owned(),
    ] {
        assert!(!shown.contains(&secret), "{secret} is shown:\n{shown}");
    }
}

/// Waits until the speaker has rejected the configuration for its mistyped password field.
fn wait_rejected_for_the_password(s: &Speaker) {
    let st = s.eventually("the configuration rejected", |s| {
        let st = s.get_json("/status");
        (st["config"]["state"] == "stale").then_some(st)
    });
    assert!(
        st["config"]["last_errors"]
            .to_string()
            .contains("spec.password"),
        "{st:#}"
    );
}

fn files(extra: &str) -> String {
    format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: p, namespace: metallb-system}}
spec: {{addresses: [192.0.2.0/28]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: a, namespace: metallb-system}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: inline, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.254, password: {INLINE}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: secret, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.253, passwordSecret: {{name: auth}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: auth, namespace: metallb-system}}
type: kubernetes.io/basic-auth
stringData: {{password: {IN_SECRET}}}
{}{extra}",
        testkit::service_yaml("web", &["192.0.2.1"])
    )
}

#[test]
fn file_mode_shows_no_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.yaml");
    testkit::replace_file(&file, &files(""));
    let s = Speaker::start(&[&file], "node-a", &[]);
    let st = s.eventually("the plan with both peers", |s| {
        let st = s.get_json("/status");
        (st["plan"]["bgp"].as_array().map(Vec::len) == Some(2)).then_some(st)
    });
    assert_eq!(st["config"]["state"], "loaded", "{st:#}");
    assert_hidden(&everything(&s));

    // A peer whose password is not a string cannot be read: the error names the field,
    // never the value.
    let broken = format!(
        "---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: mistyped, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.252, password: {MISTYPED}}}
"
    );
    testkit::replace_file(&file, &files(&broken));
    wait_rejected_for_the_password(&s);
    assert_hidden(&everything(&s));
}

#[test]
fn kubernetes_mode_shows_no_password() {
    let ns = Netns::new("sk");
    ns.ip(&["link", "set", "lo", "up"]);
    let server = ApiServer::builder()
        .start_in(ns.name())
        .expect("the API server starts");
    let api = BlockingClient::new(&server, "writer", Some(ns.name()));
    let objects: Vec<Value> = vec![
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "p", "namespace": "metallb-system"},
               "spec": {"addresses": ["192.0.2.0/28"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "a", "namespace": "metallb-system"}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "inline", "namespace": "metallb-system"},
               "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.254",
                        "password": INLINE}}),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "secret", "namespace": "metallb-system"},
               "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.253",
                        "passwordSecret": {"name": "auth"}}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "auth", "namespace": "metallb-system"},
               "type": "kubernetes.io/basic-auth", "stringData": {"password": IN_SECRET}}),
    ];
    for o in objects {
        api.create(o);
    }
    let s = Speaker::start_kubernetes_in(&ns, &server, "node-a", "metallb-system");
    s.eventually("the plan with both peers", |s| {
        let st = s.get_json("/status");
        (st["plan"]["bgp"].as_array().map(Vec::len) == Some(2)).then_some(())
    });
    assert_hidden(&everything(&s));

    // A peer whose password is not a string: unreadable, reported without the value.
    api.create(
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "mistyped", "namespace": "metallb-system"},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.252",
                 "password": MISTYPED}}),
    );
    wait_rejected_for_the_password(&s);
    // The Events herald wrote say as little.
    let events = api.list(&json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                                  "metadata": {"namespace": "metallb-system"}}));
    assert!(
        !events.is_empty(),
        "herald wrote an Event about the bad peer"
    );
    let events: String = events.iter().map(Value::to_string).collect();
    assert_hidden(&format!("{}\n{events}", everything(&s)));
}
