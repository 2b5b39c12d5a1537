//! A test LAN for Layer 2: two node namespaces and a client joined by a [`Bridge`],
//! dual-stack, each on its `eth0`; and the client-side tools that read what the client holds
//! (the kernel's neighbor cache) or gets back (`arping`, `ndisc6`).

use crate::PATIENCE;
use crate::netns::{Bridge, Netns, output, poll_until};

pub const NODE1_V4: &str = "192.0.2.1";
pub const NODE2_V4: &str = "192.0.2.2";
pub const CLIENT_V4: &str = "192.0.2.100";
pub const NODE1_V6: &str = "2001:db8::1";
pub const NODE2_V6: &str = "2001:db8::2";
pub const CLIENT_V6: &str = "2001:db8::100";

/// Settings applied to a namespace before its links exist: no DAD, so addresses are usable at
/// once and no DAD probes cross the LAN.
pub fn quiet(ns: &Netns) {
    for key in [
        "net.ipv6.conf.all.accept_dad",
        "net.ipv6.conf.default.accept_dad",
        "net.ipv6.conf.default.router_solicitations",
    ] {
        ns.sysctl(key, "0");
    }
}

/// The kernel probes a stale entry after 1 s rather than 5 (there is no per-namespace default
/// for neighbor parameters, so this is per link).
pub fn probe_soon(ns: &Netns, ifname: &str) {
    for family in ["ipv4", "ipv6"] {
        ns.sysctl(
            &format!("net.{family}.neigh.{ifname}.delay_first_probe_time"),
            "1",
        );
    }
}

/// Two nodes and a client on one bridge, dual-stack (192.0.2.0/24, 2001:db8::/64), each on
/// its `eth0`.
pub struct Lan {
    pub client: Netns,
    pub node1: Netns,
    pub node2: Netns,
    // Dropped last: the namespaces above hold the other ends of its ports.
    _bridge: Bridge,
}

impl Lan {
    pub fn new() -> Lan {
        let bridge = Bridge::new();
        let node1 = Netns::new("n1");
        let node2 = Netns::new("n2");
        let client = Netns::new("cl");
        for (ns, v4, v6) in [
            (&node1, NODE1_V4, NODE1_V6),
            (&node2, NODE2_V4, NODE2_V6),
            (&client, CLIENT_V4, CLIENT_V6),
        ] {
            quiet(ns);
            bridge.attach(ns, "eth0");
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            probe_soon(ns, "eth0");
        }
        Lan {
            client,
            node1,
            node2,
            _bridge: bridge,
        }
    }
}

impl Default for Lan {
    fn default() -> Self {
        Lan::new()
    }
}

/// The neighbor entry for `ip` on `dev` in `ns`, as `ip neigh` prints it.
pub fn neigh(ns: &Netns, ip: &str, dev: &str) -> String {
    ns.ip(&["neigh", "show", "to", ip, "dev", dev])
}

/// Makes the client's kernel resolve `ip` (a ping nobody answers starts it) until its cache
/// holds `mac` in a usable state.
pub fn resolve_to(client: &Netns, ip: &str, dev: &str, mac: &str) {
    poll_until(
        &format!("the client to resolve {ip} to {mac}"),
        PATIENCE,
        |last| {
            let entry = neigh(client, ip, dev);
            let usable = ["REACHABLE", "STALE", "DELAY", "PROBE"]
                .iter()
                .any(|state| entry.contains(state));
            if usable && entry.contains(&format!("lladdr {mac} ")) {
                return Some(());
            }
            *last = entry;
            if !last.contains("INCOMPLETE") {
                let _ = output(client.command("ping").args(["-c1", "-W1", "-I", dev, ip]));
            }
            None
        },
    );
}

/// `arping ARGS` in `ns`: whether it got an answer, and its output in lower case.
pub fn arping(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = output(ns.command("arping").args(args));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_lowercase(),
    )
}

/// One `ndisc6` resolution of `ip` on `dev` (3 tries, 1 s apart): whether it got an answer,
/// and its output in lower case.
pub fn ndisc6(ns: &Netns, ip: &str, dev: &str) -> (bool, String) {
    let out = output(
        ns.command("ndisc6")
            .args(["-q", "-1", "-r", "3", "-w", "1000", ip, dev]),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_lowercase(),
    )
}
