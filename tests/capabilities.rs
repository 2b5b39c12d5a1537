//! Least privilege, proven (issue 12): herald runs its Layer 2 and BGP end-to-end checks
//! holding exactly the capabilities its deployments grant it, and nothing else, through
//! `setpriv` (util-linux) inside the node's namespace. The capabilities are read from the
//! deployments themselves, so the test follows them:
//!
//! - the DaemonSet (`deploy/base/speaker.yaml`): user 0 (Kubernetes gives added capabilities
//!   to a non-root container only through file capabilities, which no_new_privs turns off),
//!   `capabilities: {drop: [ALL], add: [...]}`, `allowPrivilegeEscalation: false`; as a
//!   container runtime starts it: bounding, permitted and effective sets are the added
//!   capabilities, the inheritable set empty, no_new_privs on;
//! - the systemd unit (`systemd/herald.service`): a dynamic (non-root) user with
//!   `AmbientCapabilities`, `CapabilityBoundingSet`, `NoNewPrivileges=yes`; here as nobody.
//!
//! Each run checks what the peers hold: BIRD's table holds the routes (over a session with a
//! TCP MD5 password, which needs no capability), the client's kernel resolves the addresses
//! by ARP and NDP behind a switch that snoops MLD (so the IPv6 multicast joins work too), and
//! `/proc/PID/status` shows herald holding exactly that set.
//!
//! Then each capability is taken away in turn, to show what it is for: without NET_RAW,
//! Layer 2 cannot open its packet socket and says so (`/status`, an error line naming
//! CAP_NET_RAW) while BGP goes on; without NET_ADMIN everything works, and only the
//! receive buffer of the packet socket is held to `net.core.rmem_max` (SO_RCVBUF rather
//! than SO_RCVBUFFORCE), as the manifest says.
//!
//! Needs root, bird2, arping, ndisc6 and setpriv; fails, never skips, without them.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use testkit::lan::{Lan, arping, ndisc6, resolve_to};
use testkit::netns::Netns;
use testkit::routers::{ROUTER_AS, ROUTER_V4, Router};
use testkit::{PATIENCE, Signal, Speaker};

const NODE: &str = "node-1";
const HERALD_AS: u32 = 64512;
const PASSWORD: &str = "md5-needs-no-capability";
const WEB_V4: &str = "192.0.2.201";
const WEB_V6: &str = "2001:db8::201";
/// The solicited-node multicast MAC of WEB_V6, which herald programs on the interface.
const WEB_V6_GROUP_MAC: &str = "33:33:ff:00:02:01";
/// What herald asks for its packet sockets' receive buffers (l2's responder).
const PACKET_RECEIVE_BUFFER: u64 = 4 << 20;
/// The user the systemd unit's DynamicUser stands for here.
const NOBODY: u32 = 65534;

/// A capability's bit in `/proc/PID/status` masks.
fn bit(capability: &str) -> u64 {
    match capability {
        "NET_ADMIN" => 1 << 12,
        "NET_RAW" => 1 << 13,
        other => panic!("a capability this test does not know: {other}; add its number"),
    }
}

fn mask(capabilities: &BTreeSet<String>) -> u64 {
    capabilities.iter().map(|c| bit(c)).fold(0, |a, b| a | b)
}

/// The capabilities the DaemonSet adds (after dropping ALL), with its user and whether it
/// allows privilege escalation.
fn daemonset() -> (BTreeSet<String>, u64, bool) {
    let path = testkit::workspace_root().join("deploy/base/speaker.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/base/speaker.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("the manifest parses");
    let daemonset = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let security = &daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added = security["capabilities"]["add"]
        .as_array()
        .expect("added capabilities")
        .iter()
        .map(|c| c.as_str().expect("a name").to_owned())
        .collect();
    let user = security["runAsUser"].as_u64().expect("runAsUser");
    let escalation = security["allowPrivilegeEscalation"]
        .as_bool()
        .expect("allowPrivilegeEscalation");
    (added, user, escalation)
}

/// The capabilities of the systemd unit's `KEY=` line, without the `CAP_` prefix.
fn systemd_capabilities(key: &str) -> BTreeSet<String> {
    let path = testkit::workspace_root().join("systemd/herald.service");
    let text = std::fs::read_to_string(&path).expect("systemd/herald.service");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect()
}

/// `setpriv` arguments that start herald as the DaemonSet's container runtime would: as
/// `user`, bounding, permitted and effective sets `capabilities` (root gets its bounding set
/// on exec), nothing inheritable, no_new_privs on.
fn as_daemonset(user: u64, capabilities: &BTreeSet<String>) -> Vec<String> {
    let set = setpriv_list(capabilities);
    vec![
        "setpriv".into(),
        format!("--reuid={user}"),
        format!("--regid={user}"),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        "--inh-caps=-all".into(),
        format!("--bounding-set=-all{set}"),
    ]
}

/// `setpriv` arguments that start herald as the systemd unit does: a non-root user with
/// `capabilities` ambient (so they survive the exec), nothing else, no_new_privs on.
fn as_systemd(capabilities: &BTreeSet<String>) -> Vec<String> {
    let set = setpriv_list(capabilities);
    vec![
        "setpriv".into(),
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        format!("--inh-caps=-all{set}"),
        format!("--ambient-caps=-all{set}"),
        format!("--bounding-set=-all{set}"),
    ]
}

/// ",+net_raw,+net_admin"
fn setpriv_list(capabilities: &BTreeSet<String>) -> String {
    capabilities
        .iter()
        .map(|c| format!(",+{}", c.to_lowercase()))
        .collect()
}

/// What `/proc/PID/status` says of a process's identity and capabilities.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    uid: u32,
    inheritable: u64,
    permitted: u64,
    effective: u64,
    bounding: u64,
    ambient: u64,
    no_new_privs: bool,
}

fn held(pid: u32) -> Held {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| -> &str {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
            .trim()
    };
    let hex = |name: &str| {
        u64::from_str_radix(field(name), 16)
            .unwrap_or_else(|e| panic!("{name} in /proc/{pid}/status: {e}"))
    };
    Held {
        uid: field("Uid")
            .split_whitespace()
            .next()
            .and_then(|u| u.parse().ok())
            .expect("a uid"),
        inheritable: hex("CapInh"),
        permitted: hex("CapPrm"),
        effective: hex("CapEff"),
        bounding: hex("CapBnd"),
        ambient: hex("CapAmb"),
        no_new_privs: field("NoNewPrivs") == "1",
    }
}

/// The configuration: the web Service announced by Layer 2 and by BGP to BIRD, over a
/// session with a TCP MD5 password.
fn config() -> String {
    format!(
        "
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan, namespace: metallb-system}}
spec:
  addresses: [192.0.2.200-192.0.2.220, 2001:db8::200-2001:db8::220]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: metallb-system}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: metallb-system}}
---
apiVersion: v1
kind: Secret
metadata: {{name: router-password, namespace: metallb-system}}
type: kubernetes.io/basic-auth
stringData: {{password: {PASSWORD}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: metallb-system}}
spec:
  myASN: {HERALD_AS}
  peerASN: {ROUTER_AS}
  peerAddress: '{ROUTER_V4}'
  dualStackAddressFamily: true
  passwordSecret: {{name: router-password}}
{web}",
        web = testkit::service_yaml("web", &[WEB_V4, WEB_V6]),
    )
}

/// The LAN (behind a switch that snoops MLD), BIRD on its second node, and herald's
/// configuration in a directory any user may read (tempdirs are private to root).
struct Setup {
    lan: Lan,
    router: Router,
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let lan = Lan::with_mld_snooping();
        let router = lan.bird_for_node1(HERALD_AS, Some(PASSWORD));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("herald.yaml");
        testkit::replace_file(&file, &config());
        readable_by_all(dir.path());
        readable_by_all(&file);
        Setup {
            lan,
            router,
            _dir: dir,
            file,
        }
    }

    fn start(&self, wrapper: &[String]) -> Speaker {
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        Speaker::start_wrapped_in(&self.lan.node1, &wrapper, &[&self.file], NODE, &[])
    }

    /// BIRD holds both routes, and the client resolves both addresses to the node, asks
    /// again with arping and ndisc6, and the node's interface has the IPv6 address's
    /// solicited-node group programmed.
    fn announced_both_ways(&self) {
        self.router.wait_holds(&format!("{WEB_V4}/32"), true);
        self.router.wait_holds(&format!("{WEB_V6}/128"), true);
        let mac = self.lan.node1.mac("eth0");
        resolve_to(&self.lan.client, WEB_V4, "eth0", &mac);
        resolve_to(&self.lan.client, WEB_V6, "eth0", &mac);
        let (ok, out) = arping(
            &self.lan.client,
            &["-c", "1", "-w", "5", "-i", "eth0", WEB_V4],
        );
        assert!(ok && out.contains(&mac), "arping: {out}");
        let (ok, out) = ndisc6(&self.lan.client, WEB_V6, "eth0");
        assert!(ok && out.contains(&mac), "ndisc6: {out}");
        let groups = self.lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
        assert!(
            groups.contains(WEB_V6_GROUP_MAC),
            "the solicited-node MAC is programmed: {groups}"
        );
    }

    /// Stops herald (SIGTERM: a clean exit) and waits until BIRD and the client have
    /// forgotten what it announced, for the next run.
    fn stop(&self, mut herald: Speaker) {
        herald.signal(Signal::Term);
        let status = herald.wait_exit(PATIENCE).expect("herald exits on SIGTERM");
        assert!(status.success(), "{status:?}\n{}", herald.logs_text());
        self.router.wait_holds(&format!("{WEB_V4}/32"), false);
        self.router.wait_holds(&format!("{WEB_V6}/128"), false);
        self.lan.client.ip(&["neigh", "flush", "dev", "eth0"]);
    }
}

fn readable_by_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The receive buffer (`rb`, as `ss -m` shows: twice what was set) of each packet socket
/// herald has open in `ns`.
fn packet_receive_buffers(ns: &Netns, pid: u32) -> Vec<u64> {
    let out = ns.exec("ss", &["-0", "-m", "-p", "-n"]);
    out.lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| {
            let skmem = l.split("skmem:(").nth(1)?;
            skmem
                .split(',')
                .find_map(|f| f.strip_prefix("rb"))?
                .parse()
                .ok()
        })
        .collect()
}

fn rmem_max() -> u64 {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("net.core.rmem_max")
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn herald_announces_both_ways_with_exactly_the_capabilities_its_deployments_grant() {
    let (capabilities, user, escalation) = daemonset();
    assert!(!escalation, "the DaemonSet forbids privilege escalation");
    assert_eq!(
        systemd_capabilities("AmbientCapabilities"),
        capabilities,
        "the systemd unit grants what the DaemonSet does"
    );
    assert_eq!(systemd_capabilities("CapabilityBoundingSet"), capabilities);
    let wanted = mask(&capabilities);
    let setup = Setup::new();

    // As the DaemonSet runs it.
    let herald = setup.start(&as_daemonset(user, &capabilities));
    assert_eq!(
        held(herald.pid()),
        Held {
            uid: user as u32,
            inheritable: 0,
            permitted: wanted,
            effective: wanted,
            bounding: wanted,
            ambient: 0,
            no_new_privs: true,
        },
        "herald as the DaemonSet runs it"
    );
    setup.announced_both_ways();
    // With NET_ADMIN, the packet socket's receive buffer is what herald asks for, whatever
    // net.core.rmem_max says.
    let buffers = packet_receive_buffers(&setup.lan.node1, herald.pid());
    assert!(
        !buffers.is_empty() && buffers.iter().all(|&b| b == 2 * PACKET_RECEIVE_BUFFER),
        "receive buffers with NET_ADMIN: {buffers:?}"
    );
    setup.stop(herald);

    // As the systemd unit runs it: not root at all.
    let herald = setup.start(&as_systemd(&capabilities));
    assert_eq!(
        held(herald.pid()),
        Held {
            uid: NOBODY,
            inheritable: wanted,
            permitted: wanted,
            effective: wanted,
            bounding: wanted,
            ambient: wanted,
            no_new_privs: true,
        },
        "herald as the systemd unit runs it"
    );
    setup.announced_both_ways();
    setup.stop(herald);
}

#[test]
fn without_net_raw_layer2_says_why_it_is_off_and_without_net_admin_only_buffers_shrink() {
    let (capabilities, user, _) = daemonset();
    let setup = Setup::new();

    // Without NET_RAW: no packet socket, so nothing answers ARP/NDP, and herald says why,
    // in its log and in /status; BGP needs no capability and goes on.
    let fewer: BTreeSet<String> = capabilities
        .iter()
        .filter(|c| *c != "NET_RAW")
        .cloned()
        .collect();
    assert_eq!(fewer.len() + 1, capabilities.len(), "NET_RAW is granted");
    let herald = setup.start(&as_daemonset(user, &fewer));
    assert_eq!(held(herald.pid()).effective, mask(&fewer));
    setup.router.wait_holds(&format!("{WEB_V4}/32"), true);
    setup.router.wait_holds(&format!("{WEB_V6}/128"), true);
    let line = herald
        .wait_for_log(
            |l| l["level"] == "ERROR" && l["interface"] == "eth0" && l["error"].is_string(),
            PATIENCE,
        )
        .unwrap_or_else(|| panic!("no error about eth0:\n{}", herald.logs_text()));
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("needs CAP_NET_RAW") && error.contains("not permitted"),
        "{line}"
    );
    assert!(
        line["hint"]
            .as_str()
            .is_some_and(|h| h.contains("CAP_NET_RAW")),
        "{line}"
    );
    let st = herald.get_json("/status");
    let eth0 = &st["announcing"]["layer2"]["interfaces"]["eth0"];
    assert_eq!(eth0["listening"], false, "{st:#}");
    assert!(
        eth0["error"]
            .as_str()
            .is_some_and(|e| e.contains("needs CAP_NET_RAW")),
        "{st:#}"
    );
    let (ok, out) = arping(
        &setup.lan.client,
        &["-c", "2", "-w", "3", "-i", "eth0", WEB_V4],
    );
    assert!(!ok, "nothing may answer without NET_RAW: {out}");
    setup.stop(herald);

    // Without NET_ADMIN: everything works (nothing but the receive buffers needs it), and
    // the packet socket's buffer is held to net.core.rmem_max.
    let fewer: BTreeSet<String> = capabilities
        .iter()
        .filter(|c| *c != "NET_ADMIN")
        .cloned()
        .collect();
    assert_eq!(fewer.len() + 1, capabilities.len(), "NET_ADMIN is granted");
    let herald = setup.start(&as_daemonset(user, &fewer));
    assert_eq!(held(herald.pid()).effective, mask(&fewer));
    setup.announced_both_ways();
    let buffers = packet_receive_buffers(&setup.lan.node1, herald.pid());
    let capped = 2 * PACKET_RECEIVE_BUFFER.min(rmem_max());
    assert!(
        !buffers.is_empty() && buffers.iter().all(|&b| b == capped),
        "receive buffers without NET_ADMIN (net.core.rmem_max {}): {buffers:?}",
        rmem_max()
    );
    setup.stop(herald);
}
