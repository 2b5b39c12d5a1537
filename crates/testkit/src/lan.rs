//! A test LAN for Layer 2: two node namespaces and a client joined by a [`Bridge`],
//! dual-stack, each on its `eth0`; and the client-side tools that read what the client holds
//! (the kernel's neighbor cache) or gets back (`arping`, `ndisc6`).

use crate::PATIENCE;
use crate::netns::{Bridge, Netns, output, poll_until};
use crate::routers::{Kind, Neighbor, ROUTER_V4, Router};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

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
        Lan::build(false)
    }

    /// BIRD on the second node (the routers' address), peering with herald on the first
    /// node as AS `herald_as`, with a TCP MD5 `password` when given; herald's end is passive.
    pub fn bird_for_node1(&self, herald_as: u32, password: Option<&str>) -> Router {
        assert_eq!(NODE2_V4, ROUTER_V4);
        Router::start(
            Kind::Bird,
            &self.node2,
            &[Neighbor {
                name: "herald".into(),
                address: NODE1_V4.into(),
                asn: herald_as,
                password: password.map(str::to_owned),
                ..Neighbor::default()
            }],
        )
    }

    /// The same LAN behind a switch that snoops MLD and has a querier (`mcast_snooping 1`,
    /// `mcast_querier 1`), as most managed switches: multicast for a solicited-node group goes
    /// only to the ports that reported the group (and to multicast routers' ports), so a
    /// Neighbor Solicitation reaches only a node that joined the group at the IPv6 layer.
    ///
    /// The bridge floods all multicast until its querier counts as present, one query
    /// response interval (here 1 s) after it is enabled; the querier is enabled before the
    /// namespaces are made, which takes about that long.
    pub fn with_mld_snooping() -> Lan {
        Lan::build(true)
    }

    fn build(mld_snooping: bool) -> Lan {
        let bridge = Bridge::new();
        if mld_snooping {
            let switch = bridge.netns();
            // The querier sends MLD queries from the bridge's link-local address, and without
            // one the bridge does not count its querier as present (and floods).
            for (key, value) in [("accept_dad", "0"), ("disable_ipv6", "0")] {
                switch.sysctl(&format!("net.ipv6.conf.{}.{key}", Bridge::NAME), value);
            }
            switch.ip(&[
                "link",
                "set",
                Bridge::NAME,
                "type",
                "bridge",
                "mcast_snooping",
                "1",
                "mcast_query_response_interval",
                "100",
                // Queries every second (the kernel's minimum), so one follows soon after the
                // bridge has its address.
                "mcast_startup_query_interval",
                "100",
                "mcast_query_interval",
                "100",
                // MLDv2 queries, so hosts keep sending MLDv2 reports (to ff02::16).
                "mcast_mld_version",
                "2",
            ]);
            // Enabled once the response interval is set: it is the querier's start-up delay.
            switch.ip(&[
                "link",
                "set",
                Bridge::NAME,
                "type",
                "bridge",
                "mcast_querier",
                "1",
            ]);
        }
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

/// A `tcpdump -l` running in a namespace, its output lines collected as they come; killed
/// on drop.
pub struct Capture {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Starts `tcpdump -i IFNAME -n -l -v FILTER...` in `ns` and returns once it listens.
    pub fn start(ns: &Netns, ifname: &str, filter: &[&str]) -> Capture {
        let mut child = ns
            .command("tcpdump")
            .args(["-i", ifname, "-n", "-l", "-v"])
            .args(filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run tcpdump ({err}); apt-get install tcpdump"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        if let Some(stderr) = stderr {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening on") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        if let Some(stdout) = stdout {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        if ready_rx.recv_timeout(PATIENCE).is_err() {
            let _ = child.kill();
            panic!("tcpdump did not start listening on {ifname}");
        }
        Capture { child, lines }
    }

    /// Every line so far (with -v, a packet may take more than one).
    pub fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
