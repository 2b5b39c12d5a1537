//! Network namespaces for tests that need real peers: named namespaces made with `ip netns`,
//! joined by veth pairs to a bridge that lives in a namespace of its own, and threads that run
//! inside a namespace (namespaces are per thread, so code under test can run in-process).
//!
//! Every name is unique per process and call (pid + counter), so tests run in parallel, and
//! everything is deleted on drop. Nothing here touches the host's own namespace beyond
//! creating and deleting the named ones.
//!
//! These need root. When they cannot run they panic with the reason: a privileged test must
//! fail, never skip silently.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call, `prefix` kept for reading `ip netns`.
/// Interface names are limited to 15 bytes; namespace names are not, but stay short too.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Panics with a clear message unless this process can create network namespaces.
pub fn require_privileges() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "this test needs root (it creates network namespaces, veth pairs and a bridge); \
             run it as root, e.g. in the CI container or with sudo"
        );
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`ip netns list` failed ({}): {}; this test needs iproute2 and network namespaces",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => {
            panic!("cannot run `ip` ({err}); this test needs iproute2 (apt-get install iproute2)")
        }
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    if !out.status.success() {
        panic!(
            "`{}` failed ({}):\n{}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` and returns what it did, panicking only when it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run `{}`: {err}", describe(cmd)))
}

/// A named network namespace, deleted on drop (with every interface in it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named after `prefix`, with its loopback up.
    pub fn new(prefix: &str) -> Netns {
        require_privileges();
        let name = unique_name(prefix);
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`, which must succeed; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command run inside the namespace (`ip netns exec NAME PROGRAM`), to add arguments to.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// `PROGRAM ARGS` inside the namespace, which must succeed; returns stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        run(self.command(program).args(args))
    }

    /// Sets a sysctl inside the namespace (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")]);
    }

    /// The MAC address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> String {
        let out = self.ip(&["-br", "link", "show", "dev", ifname]);
        out.split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC in `ip -br link show dev {ifname}`: {out}"))
            .to_owned()
    }

    /// The interface index of `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let out = self.ip(&["-o", "link", "show", "dev", ifname]);
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no index in `ip -o link show dev {ifname}`: {out}"))
    }

    /// Runs `f` on a new thread that has entered this namespace. Sockets it opens, and
    /// threads it starts, live in the namespace.
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_in(&self.name, f)
    }
}

/// [`Netns::spawn`] for a namespace known by name (`ip netns` names it under /run/netns).
pub fn spawn_in<F, R>(name: &str, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).unwrap_or_else(|err| panic!("cannot open {path}: {err}"));
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            // SAFETY: `file` is an open namespace file; setns only affects this thread.
            let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if ret != 0 {
                panic!(
                    "setns into {path} failed: {}",
                    std::io::Error::last_os_error()
                );
            }
            drop(file);
            f()
        })
        .expect("spawn a thread")
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A learning bridge in a namespace of its own: the switch of a test LAN. Multicast snooping
/// is off, so multicast is flooded as on a plain switch.
#[derive(Debug)]
pub struct Bridge {
    ns: Netns,
}

impl Bridge {
    pub const NAME: &'static str = "br0";

    pub fn new() -> Bridge {
        let ns = Netns::new("sw");
        // A switch has no addresses: no IPv6 on its ports, so it sends nothing of its own.
        for key in [
            "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6",
        ] {
            ns.sysctl(key, "1");
        }
        ns.ip(&[
            "link",
            "add",
            Self::NAME,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ns.ip(&["link", "set", Self::NAME, "up"]);
        Bridge { ns }
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Plugs `ns` into the bridge: a veth pair with `ifname` (up) in `ns` and a bridge port on
    /// this side. The pair is created from `ns`, so `ifname` gets `ns`'s default settings
    /// (`net.ipv6.conf.default.*`) rather than the bridge namespace's.
    pub fn attach(&self, ns: &Netns, ifname: &str) {
        let port = unique_name("p");
        ns.ip(&[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.ns.name(),
        ]);
        self.ns.ip(&["link", "set", &port, "master", Self::NAME]);
        self.ns.ip(&["link", "set", &port, "up"]);
        ns.ip(&["link", "set", ifname, "up"]);
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge::new()
    }
}

/// Connects `a`'s `a_if` and `b`'s `b_if` with a veth pair, both ends up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Calls `check` until it returns `Some`, or panics after `timeout` saying what was awaited
/// and what `check` last saw (`last` gets a description of the last state).
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(value) = check(&mut last) {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ip -ts monitor route` in a namespace: every change of its kernel routing table with the
/// time the kernel reported it. A router's forwarding table read this way says when routes
/// left it, however slowly the router's CLI answers.
pub struct RouteMonitor {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RouteMonitor {
    pub fn start(ns: &Netns) -> RouteMonitor {
        let mut child = ns
            .command("ip")
            .args(["-ts", "monitor", "route"])
            // `-ts` prints local time: make it UTC, as `epoch_ms` reads it.
            .env("TZ", "UTC")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ip monitor route");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        RouteMonitor { child, lines }
    }

    /// When (milliseconds since the epoch) the kernel first reported a route to `dest` (an
    /// address, for its host route) deleted, if it has.
    pub fn deleted_at(&self, dest: &str) -> Option<u128> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().find_map(|line| {
            // "[2026-12-02T15:10:01.123456] Deleted 198.51.100.1 via 192.0.2.2 dev eth0 ..."
            let (stamp, rest) = line.strip_prefix('[')?.split_once("] ")?;
            let route = rest.strip_prefix("Deleted ")?;
            let first = route.split_whitespace().next()?;
            (first == dest || first.split('/').next() == Some(dest)).then(|| epoch_ms(stamp))
        })
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the epoch of a UTC time written `YYYY-MM-DDTHH:MM:SS.fff...` (RFC 3339,
/// as herald writes it, and as `ip -ts` does under TZ=UTC).
pub fn epoch_ms(time: &str) -> u128 {
    let p = |r: std::ops::Range<usize>| -> i64 {
        time.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad time {time:?}"))
    };
    let (y, m, d) = (p(0..4), p(5..7), p(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + p(11..13) * 3600 + p(14..16) * 60 + p(17..19);
    (secs * 1000 + p(20..23)) as u128
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}
