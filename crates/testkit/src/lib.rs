//! Test support for herald. Dev-only: nothing in a shipped binary depends on it.
//!
//! Owns finding (or building) the `herald` binary and driving a running `herald speaker`:
//! its logs, its HTTP endpoints and its signals; the in-process Kubernetes API server
//! ([`apiserver`]); network-namespace topologies ([`netns`]) and the Layer 2 test LAN
//! ([`lan`]); real routing daemons in them ([`routers`]); and MRT table dumps ([`mrt`]). Helpers here panic with a message that says
//! what was expected, since they only ever run inside tests and benchmarks.

pub mod apiserver;
mod cargo_env;
pub mod cluster;
pub mod lan;
pub mod manifests;
pub mod mrt;
pub mod netns;
pub mod routers;

use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long helpers wait for something that should happen "soon". Generous, because CI
/// machines are slow and busy; a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The workspace root (where the root `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit sits at crates/testkit in the workspace")
        .to_path_buf()
}

/// The `herald` binary: `$HERALD_BIN` when set, else built once per process with
/// `cargo build --bin herald` (the caller's own cargo and target directory) in the profile
/// testkit itself was built in: debug for tests, with the `fault-injection` feature (the
/// route tests make tasks panic with, see [`Speaker::panic_task`]); release for benchmarks,
/// without it, so a benchmark measures the herald users run.
pub fn herald_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("HERALD_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let (profile, flags): (&str, &[&str]) = if cfg!(debug_assertions) {
            ("debug", &["--features", "fault-injection"])
        } else {
            ("release", &["--release"])
        };
        let mut build = Command::new(&cargo);
        build
            .args(["build", "--quiet", "-p", "herald", "--bin", "herald"])
            .args(flags)
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target);
        cargo_env::without_package_vars(&mut build);
        let output = build
            .output()
            .unwrap_or_else(|e| panic!("running {cargo:?} build: {e}"));
        assert!(
            output.status.success(),
            "cargo build --bin herald failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let bin = target.join(profile).join("herald");
        assert!(
            bin.exists(),
            "cargo built herald but {} is missing",
            bin.display()
        );
        bin
    })
    .clone()
}

/// `tests/fixtures/NAME` in the workspace.
pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests").join("fixtures").join(name)
}

/// Writes `text` to `file` as an editor saves: a new file renamed over the old one, so a
/// reader never sees half of it.
pub fn replace_file(file: &Path, text: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, file).unwrap_or_else(|e| panic!("renaming over {}: {e}", file.display()));
}

/// A YAML document of a dual-stack LoadBalancer Service `default/NAME` holding `ips`.
pub fn service_yaml(name: &str, ips: &[&str]) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  ports: [{{port: 80}}]
status:
  loadBalancer:
    ingress: [{}]
",
        ingress.join(", ")
    )
}

/// What a finished `herald` command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `herald ARGS...` to completion (in this process's network namespace: only for
/// commands that use no network, such as `herald check`).
pub fn herald<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(herald_bin());
    cmd.args(args);
    run_herald(cmd)
}

pub(crate) fn run_herald(mut cmd: Command) -> Output {
    let output = cmd
        .env_remove("NODE_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("running herald");
    Output {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A signal to send to the speaker.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Hup,
    Term,
    Int,
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "HUP",
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
        }
    }
}

/// An HTTP response, as the tiny client below reads it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct Logs {
    lines: Vec<Value>,
    closed: bool,
}

/// Where a herald process serves `/status`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serves {
    /// On `--status-addr`, apart from `/metrics` (the speaker).
    StatusApart,
    /// Beside `/metrics` on `--metrics-addr` (the controller).
    StatusWithMetrics,
}

/// A running `herald speaker` with `--metrics-addr 127.0.0.1:0 --status-addr 127.0.0.1:0
/// --log-format json` (unless the test gives its own `--status-addr`), inside
/// a network namespace: one of its own, or the one a test gives it (a node of a test LAN).
/// Its answers, announcements and BGP connections never reach the host's network. Killed
/// when dropped, if still running.
pub struct Speaker {
    child: Child,
    addr: SocketAddr,
    /// Where it serves `/status`.
    status_addr: SocketAddr,
    logs: Arc<(Mutex<Logs>, Condvar)>,
    netns: String,
    /// The namespace made for this speaker alone, deleted after it.
    _own_netns: Option<netns::Netns>,
    /// Files it was started with that go with it (its kubeconfig).
    _files: Option<tempfile::TempDir>,
}

impl Speaker {
    /// Starts `herald speaker --config FILE... --node NODE EXTRA...` in a namespace of its
    /// own (with only a loopback) and waits until it logs the address it serves on.
    pub fn start<P: AsRef<Path>>(configs: &[P], node: &str, extra: &[&str]) -> Speaker {
        let mut args: Vec<&str> = vec!["--node", node];
        args.extend_from_slice(extra);
        Speaker::start_with(configs, &args, |_| {})
    }

    /// Like [`Speaker::start`], in the namespace `ns` (which must outlive the speaker).
    pub fn start_in<P: AsRef<Path>>(
        ns: &netns::Netns,
        configs: &[P],
        node: &str,
        extra: &[&str],
    ) -> Speaker {
        Speaker::start_wrapped_in(ns, &[], configs, node, extra)
    }

    /// `herald speaker` in Kubernetes mode in the namespace `ns`, as node `node`, reading
    /// `server` as user `herald` (a kubeconfig written for it) with its Leases and
    /// configuration in `namespace`.
    pub fn start_kubernetes_in(
        ns: &netns::Netns,
        server: &apiserver::ApiServer,
        node: &str,
        namespace: &str,
    ) -> Speaker {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "herald")
            .expect("writing the kubeconfig");
        let kubeconfig = kubeconfig.display().to_string();
        let mut speaker = Speaker::start_in(
            ns,
            &Vec::<PathBuf>::new(),
            node,
            &["--kubeconfig", &kubeconfig, "--namespace", namespace],
        );
        speaker._files = Some(dir);
        speaker
    }

    /// Like [`Speaker::start_in`], with herald started by `wrapper` (a program and its
    /// arguments that then run herald, such as `setpriv --inh-caps=...`), so it runs with
    /// what the wrapper leaves it. The wrapper must exec herald: the pid is then herald's.
    pub fn start_wrapped_in<P: AsRef<Path>>(
        ns: &netns::Netns,
        wrapper: &[&str],
        configs: &[P],
        node: &str,
        extra: &[&str],
    ) -> Speaker {
        let mut args: Vec<&str> = vec!["--node", node];
        args.extend_from_slice(extra);
        Speaker::launch(ns.name(), None, wrapper, configs, &args, |_| {})
    }

    /// Like [`Speaker::start`] without `--node`; `customize` may set the environment
    /// (`NODE_NAME` is removed unless it sets it again).
    pub fn start_with<P: AsRef<Path>>(
        configs: &[P],
        extra: &[&str],
        customize: impl FnOnce(&mut Command),
    ) -> Speaker {
        let ns = netns::Netns::new("hs");
        let name = ns.name().to_owned();
        Speaker::launch(&name, Some(ns), &[], configs, extra, customize)
    }

    fn launch<P: AsRef<Path>>(
        netns: &str,
        own_netns: Option<netns::Netns>,
        wrapper: &[&str],
        configs: &[P],
        extra: &[&str],
        customize: impl FnOnce(&mut Command),
    ) -> Speaker {
        // `ip netns exec` execs herald (or the wrapper, which execs herald), so the child's
        // pid is herald's (for signals).
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .args(wrapper)
            .arg(herald_bin());
        cmd.arg("speaker");
        for c in configs {
            cmd.arg("--config").arg(c.as_ref());
        }
        cmd.args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"])
            .args(["--log-level", "debug"]);
        if !extra.iter().any(|a| a.starts_with("--status-addr")) {
            cmd.args(["--status-addr", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .env_remove("RUST_LOG")
            .env_remove("NODE_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        customize(&mut cmd);
        Speaker::spawn(cmd, netns, own_netns, Serves::StatusApart)
    }

    /// Starts `herald controller --kubeconfig KUBECONFIG EXTRA...` in this network namespace
    /// (it talks only to the API server), serving on 127.0.0.1, and waits until it logs the
    /// address it serves on. The same handle as a speaker's: logs, `/status`, signals.
    pub fn controller(kubeconfig: &Path, extra: &[&str]) -> Speaker {
        Speaker::controller_in(None, kubeconfig, extra)
    }

    /// Like [`Speaker::controller`], in the network namespace `ns` when given (which must
    /// outlive the controller), to reach an API server listening there.
    pub fn controller_in(ns: Option<&netns::Netns>, kubeconfig: &Path, extra: &[&str]) -> Speaker {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name()]).arg(herald_bin());
                c
            }
            None => Command::new(herald_bin()),
        };
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"])
            .args(["--log-level", "debug"])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Speaker::spawn(
            cmd,
            ns.map_or("", |n| n.name()),
            None,
            Serves::StatusWithMetrics,
        )
    }

    fn spawn(
        mut cmd: Command,
        netns: &str,
        own_netns: Option<netns::Netns>,
        serves: Serves,
    ) -> Speaker {
        let mut child = cmd.spawn().expect("spawning herald");
        let logs: Arc<(Mutex<Logs>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let logs = logs.clone();
            let readers = readers.clone();
            std::thread::spawn(move || collect(stream, &logs, &readers));
        }
        let mut speaker = Speaker {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            status_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
            netns: netns.to_owned(),
            _own_netns: own_netns,
            _files: None,
        };
        let line = speaker
            .wait_for_log(
                |l| l["message"] == "serving metrics" && l["addr"].is_string(),
                PATIENCE,
            )
            .unwrap_or_else(|| {
                panic!(
                    "herald never said where it serves; its output:\n{}",
                    speaker.logs_text()
                )
            });
        let addr = line["addr"].as_str().unwrap_or_default();
        speaker.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad addr {addr:?} in log: {e}"));
        if serves == Serves::StatusWithMetrics {
            speaker.status_addr = speaker.addr;
            return speaker;
        }
        let line = speaker
            .wait_for_log(
                |l| l["message"] == "serving status" && l["addr"].is_string(),
                PATIENCE,
            )
            .unwrap_or_else(|| {
                panic!(
                    "herald speaker never said where it serves /status; its output:\n{}",
                    speaker.logs_text()
                )
            });
        let addr = line["addr"].as_str().unwrap_or_default();
        speaker.status_addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad addr {addr:?} in log: {e}"));
        speaker
    }

    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it serves `/status` (a controller: the same as [`Speaker::addr`]).
    pub fn status_addr(&self) -> SocketAddr {
        self.status_addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name of the network namespace herald runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Runs another `herald ARGS...` to completion in this speaker's namespace.
    pub fn herald<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(herald_bin())
            .args(args);
        run_herald(cmd)
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        lock(&self.logs.0).lines.clone()
    }

    /// Every log line so far, one per line, for failure messages.
    pub fn logs_text(&self) -> String {
        self.logs()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for a log line (from the start of the run) that satisfies `predicate`.
    /// `None` when the time is up or the speaker's output ended without one.
    pub fn wait_for_log(
        &self,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let (logs, cond) = &*self.logs;
        let mut guard = lock(logs);
        loop {
            if let Some(line) = guard.lines.iter().find(|l| predicate(l)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if guard.closed || now >= deadline {
                return None;
            }
            guard = cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How many log lines satisfy `predicate` so far.
    pub fn count_logs(&self, predicate: impl Fn(&Value) -> bool) -> usize {
        lock(&self.logs.0)
            .lines
            .iter()
            .filter(|l| predicate(l))
            .count()
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let r = self.request(path);
        (r.status, r.body)
    }

    /// `GET path` with headers, from inside herald's namespace (`/status` from
    /// `--status-addr`, the rest from `--metrics-addr`).
    pub fn request(&self, path: &str) -> Response {
        let addr = if path.starts_with("/status") {
            self.status_addr
        } else {
            self.addr
        };
        self.call(addr, "GET", path)
    }

    /// `METHOD path` to `addr`, from inside herald's namespace.
    fn call(&self, addr: SocketAddr, method: &'static str, path: &str) -> Response {
        let response = if self.netns.is_empty() {
            // A controller started in the test's own namespace.
            http_request(addr, method, path)
        } else {
            let owned_path = path.to_owned();
            netns::spawn_in(&self.netns, move || http_request(addr, method, &owned_path))
                .join()
                .unwrap_or_else(|_| panic!("{method} {path} to herald: the client thread panicked"))
        };
        response.unwrap_or_else(|e| panic!("{method} {path} to herald: {e}"))
    }

    /// Makes herald's task `task` panic once, as a bug would: `bgp_peer:NAME` (a BGPPeer's
    /// session task), `interface:NAME` (a Layer 2 interface's task) or `kubernetes_watches`.
    /// Through the route that only herald built with its `fault-injection` feature has (as
    /// [`herald_bin`] builds it for tests); panics unless herald says the task panics.
    pub fn panic_task(&self, task: &str) {
        let path = format!("/faults/panic/{task}");
        let r = self.call(self.status_addr, "POST", &path);
        assert_eq!(
            r.status, 200,
            "POST {path}: {}(herald answers 404 when it has no such task, or when it was built \
             without its fault-injection feature, e.g. in release or from $HERALD_BIN)",
            r.body
        );
    }

    /// `GET path` parsed as JSON; panics unless the status is 200.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// `GET /metrics`, checked to parse as Prometheus exposition line by line.
    pub fn scrape(&self) -> prometheus_parse::Scrape {
        let r = self.request("/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        let lines: Vec<String> = r.body.lines().map(str::to_owned).collect();
        let sample_lines = lines
            .iter()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        let scrape =
            prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("metrics parse");
        // prometheus-parse skips lines it cannot read; every line must have become a sample.
        assert_eq!(
            scrape.samples.len(),
            sample_lines,
            "unparsed lines in:\n{}",
            r.body
        );
        scrape
    }

    /// Polls `probe` until it returns `Some`, or panics saying `what` never happened.
    pub fn eventually<T>(&self, what: &str, mut probe: impl FnMut(&Speaker) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for: {what}\nspeaker logs:\n{}",
                    self.logs_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: Signal) {
        let status = Command::new("kill")
            .arg(format!("-{}", signal.name()))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{} failed", signal.name());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static ECHO_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether speakers' log lines are copied to standard error (on by default, so a failing
/// test shows them).
pub fn echo_speaker_logs(on: bool) {
    ECHO_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Reads one output stream line by line; JSON lines are kept, anything else (a panic
/// message, say) is kept as a string so waiting tests can still show it.
fn collect(
    stream: Box<dyn Read + Send>,
    logs: &(Mutex<Logs>, Condvar),
    readers: &std::sync::atomic::AtomicUsize,
) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        // Shown by the test harness when the test fails.
        if ECHO_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("herald: {line}");
        }
        let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
        lock(&logs.0).lines.push(value);
        logs.1.notify_all();
    }
    if readers.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
        lock(&logs.0).closed = true;
        logs.1.notify_all();
    }
}

/// The value of the sample `name` whose labels include `labels`.
pub fn metric(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// A minimal HTTP/1.1 GET: enough for herald's own endpoints, nothing more.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    http_request(addr, "GET", path)
}

/// A minimal HTTP/1.1 request without a body (GET, or a POST that needs none).
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "malformed HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nno\n")
            .expect("parses");
        assert_eq!(r.status, 503);
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(r.body, "no\n");

        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(r.body, "hello world");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_response(b"nonsense").is_none());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_none());
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").exists());
        assert!(workspace_root().join("crates/testkit").exists());
    }
}
