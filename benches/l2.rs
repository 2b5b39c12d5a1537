//! The Layer 2 benchmark: herald's responder against the answerers a user would otherwise run,
//! measured in the same run on the same bridge, so the figures are read as ratios:
//! - **ndppd** (NDP proxy, a `static` rule) for NS → NA, and **farpd** (ARP reply daemon) for
//!   ARP request → reply: the user-space targets (herald's median and p99 latency ≤ 1.0× each,
//!   its loss-free rate ≥ 1.0× each);
//! - the Linux kernel answering for an address on its own interface: the physical limit.
//!
//! For each answerer and question it measures, from a client namespace:
//! - latency: one question at a time, time from send to the answer (median, p99);
//! - rate: the highest rate the client really offered (questions per second, paced in 1 ms
//!   batches for 0.5 s) at which every question is answered;
//! - CPU time per answer, at 20,000 questions per second: the CPU time of the answerer's
//!   thread or process (`schedstat`) over the answers; for the kernel, which answers inside the
//!   client's own `sendto`, the client sender's CPU time beyond what the same questions cost it
//!   for an address nobody answers;
//! - and, for herald, the frames it reads for 100,000 broadcast ARP requests about addresses it
//!   does not own (its kernel filter should pass none).
//!
//! Two things make the kernel differ from the user-space answerers here, and the client is
//! written so that all are measured alike despite them:
//! - The kernel answers inside the client's own `sendto`: on veth, a frame is switched and
//!   received, and the kernel's reply sent back, before the call returns. So the client's
//!   sending slows down to the kernel's pace, and asking for a rate is not offering it: the rate
//!   reported is the one the client reached, and a figure that never lost a question is a
//!   lower bound (the client, not the answerer, was the limit), marked "client-limited".
//! - For the same reason the kernel's answer is already queued when `sendto` returns, while
//!   a user-space answer comes later. A client that slept until an answer arrived would be
//!   woken (a context switch, on this small machine often onto another CPU) for those only; so
//!   the latency client polls its socket, for all.
//! - Every node reads every question (ARP requests are broadcast, and the bridge floods
//!   multicast). A user-space answerer would be woken for the others' questions and compete
//!   for this machine's two CPUs with the client, which a node of its own would not; so each
//!   user-space answerer runs (herald: listens) only while it is measured.
//!
//! Needs root: `cargo xtask bench l2`, i.e. `cargo bench -p herald-e2e --bench l2` (release
//! profile). Sends only inside the namespaces it creates.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use l2::responder::{Config, Responder};
use l2::socket::PacketSocket;
use l2::wire::{ArpOperation, EthernetAddress, NdiscRepr, NeighborMessage, VlanTags};
use l2::{Frame, NdFrame};
use testkit::lan::quiet;
use testkit::netns::{Bridge, Netns};

/// Nanoseconds a thread or process has run, from `/proc/PID[/task/TID]/schedstat`.
fn cpu_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {path}"))
}

/// This thread's schedstat path.
fn this_thread() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    format!("/proc/{}/schedstat", link.display())
}

/// A daemon run in a namespace for as long as it is measured; killed (by its PID) on drop.
struct Daemon {
    child: std::process::Child,
}

impl Daemon {
    fn start(ns: &Netns, program: &str, args: &[&str]) -> Daemon {
        let child = ns
            .command(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run {program} ({err}); apt-get install {program}")
            });
        Daemon { child }
    }

    /// The schedstat of the daemon's process: `ip netns exec` execs the program, so the PID
    /// is the program's.
    fn schedstat(&self) -> String {
        format!("/proc/{}/schedstat", self.child.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LATENCY_SAMPLES: usize = 2000;
const WARMUP: usize = 200;
/// An answerer slower than this per question (farpd probes before it answers) gets fewer
/// latency samples: the phase ends after this long, with at least `MIN_SAMPLES`.
const LATENCY_PHASE: Duration = Duration::from_secs(20);
const MIN_SAMPLES: usize = 50;
const RATES: &[u64] = &[
    5_000, 10_000, 20_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000,
];
const RATE_WINDOW: Duration = Duration::from_millis(500);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One kind of question, to one answerer.
#[derive(Clone)]
struct Case {
    name: &'static str,
    request: Vec<u8>,
    target: IpAddr,
}

fn arp_request(src_mac: EthernetAddress, src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    l2::arp_request(VlanTags::Untagged, src_mac, src, target)
        .as_bytes()
        .to_vec()
}

fn neighbor_solicitation(src_mac: EthernetAddress, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    l2::neighbor_solicitation(src_mac, src, target, 255)
        .as_bytes()
        .to_vec()
}

/// Whether `bytes` answers a question about `target`.
fn answers(bytes: &[u8], target: IpAddr) -> bool {
    match (Frame::parse(bytes), target) {
        (Ok(Frame::Arp { arp, .. }), IpAddr::V4(t)) => {
            arp.operation == ArpOperation::Reply && arp.sender_protocol_addr == t
        }
        (Ok(Frame::NeighborAdvertisement(NdFrame { icmpv6, .. })), IpAddr::V6(t)) => {
            NeighborMessage::new_checked(icmpv6.message())
                .ok()
                .and_then(|m| NdiscRepr::parse(&m).ok())
                .is_some_and(|r| r.target_addr() == t)
        }
        _ => false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Median and p99 of send → answer, one question at a time. The client polls for the answer
/// rather than sleeping (see the module documentation).
fn latency(client: &Netns, case: &Case) -> (Duration, Duration) {
    let ifindex = client.ifindex("eth0");
    let case = case.clone();
    client
        .spawn(move || {
            runtime().block_on(async move {
                let socket = PacketSocket::open(ifindex).expect("client socket");
                let mut buf = [0u8; 2048];
                let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                let phase = Instant::now();
                for i in 0..WARMUP + LATENCY_SAMPLES {
                    if samples.len() >= MIN_SAMPLES && phase.elapsed() > LATENCY_PHASE {
                        eprintln!(
                            "  {}: {} latency samples in {LATENCY_PHASE:?}",
                            case.name,
                            samples.len()
                        );
                        break;
                    }
                    let start = Instant::now();
                    socket.send(&case.request).await.expect("send");
                    loop {
                        if let Some(n) = socket.try_recv(&mut buf).expect("recv")
                            && answers(&buf[..n], case.target)
                        {
                            break;
                        }
                        assert!(
                            start.elapsed() < Duration::from_secs(2),
                            "{}: no answer",
                            case.name
                        );
                        std::hint::spin_loop();
                    }
                    if i >= WARMUP {
                        samples.push(start.elapsed());
                    }
                }
                samples.sort();
                (percentile(&samples, 0.5), percentile(&samples, 0.99))
            })
        })
        .join()
        .expect("latency thread")
}

/// What one step of the rate search saw.
struct Step {
    sent: u64,
    answered: u64,
    /// From the first send to the end of the last.
    sending: Duration,
    /// CPU time of the sending thread.
    sender_cpu_ns: u64,
}

impl Step {
    /// The rate the client really offered, which is below the asked rate when sending itself
    /// could not keep up.
    fn offered_rate(&self) -> f64 {
        self.sent as f64 / self.sending.as_secs_f64().max(1e-9)
    }
}

/// Answers received for `count` questions offered at `rate` per second.
fn answered_at(client: &Netns, case: &Case, rate: u64) -> Step {
    let ifindex = client.ifindex("eth0");
    let count = rate * RATE_WINDOW.as_millis() as u64 / 1000;
    let received = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicBool::new(false));
    let sending_done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (received, ready, sending_done) =
            (received.clone(), ready.clone(), sending_done.clone());
        let target = case.target;
        client.spawn(move || {
            runtime().block_on(async move {
                let socket = PacketSocket::open(ifindex).expect("client socket");
                socket.set_receive_buffer(64 << 20).expect("receive buffer");
                ready.store(true, Ordering::Release);
                let mut buf = [0u8; 2048];
                // Once sending is over, the answers still in flight get half a second (from
                // the later of the end of sending and the last answer). The short timeout
                // only lets the end of sending be noticed while nothing arrives.
                let grace = Duration::from_millis(500);
                let mut quiet_since: Option<Instant> = None;
                loop {
                    match tokio::time::timeout(Duration::from_millis(20), socket.recv(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) => {
                            if answers(&buf[..n], target) {
                                let got = received.fetch_add(1, Ordering::Relaxed) + 1;
                                if got >= count {
                                    return;
                                }
                            }
                            quiet_since = None;
                        }
                        Ok(Err(err)) => panic!("recv: {err}"),
                        Err(_) if sending_done.load(Ordering::Acquire) => {
                            let since = *quiet_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= grace {
                                return;
                            }
                        }
                        Err(_) => {}
                    }
                }
            })
        })
    };
    while !ready.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let request = case.request.clone();
    let sending = client
        .spawn(move || {
            runtime().block_on(async move {
                let socket = PacketSocket::open(ifindex).expect("client socket");
                let per_ms = (rate / 1000).max(1);
                let me = this_thread();
                let cpu_before = cpu_ns(&me);
                let start = Instant::now();
                let mut sent = 0;
                let mut tick = 0u32;
                while sent < count {
                    let due = start + Duration::from_millis(u64::from(tick));
                    // Sleep, not spin: on a small machine the sender would take the CPU the
                    // answerer needs.
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    for _ in 0..per_ms.min(count - sent) {
                        socket.send(&request).await.expect("send");
                        sent += 1;
                    }
                    tick += 1;
                }
                (start.elapsed(), cpu_ns(&me) - cpu_before)
            })
        })
        .join()
        .expect("sender thread");
    let (sending, sender_cpu_ns) = sending;
    sending_done.store(true, Ordering::Release);
    receiver.join().expect("receiver thread");
    Step {
        sent: count,
        answered: received.load(Ordering::Relaxed),
        sending,
        sender_cpu_ns,
    }
}

/// The outcome of a rate search.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// The highest rate the client offered at which every question was answered.
    without_loss: f64,
    /// No step lost a question: what limited the figure was the client's sending, so the
    /// answerer's own limit is higher.
    client_limited: bool,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.client_limited {
            write!(f, "≥ {:.0}/s (client-limited)", self.without_loss)
        } else {
            write!(f, "{:.0}/s", self.without_loss)
        }
    }
}

/// Asks for each rate in [`RATES`] until a question goes unanswered. A step counts at the rate
/// the client really offered, which falls short of the one asked when sending is the limit.
fn max_rate(client: &Netns, case: &Case) -> Rate {
    let mut best = 0.0f64;
    for &rate in RATES {
        let step = answered_at(client, case, rate);
        let (sent, got) = (step.sent, step.answered);
        eprintln!(
            "  {}: {rate}/s asked, {:.0}/s offered, {got} of {sent} answered",
            case.name,
            step.offered_rate()
        );
        if got < sent {
            return Rate {
                without_loss: best,
                client_limited: false,
            };
        }
        best = best.max(step.offered_rate());
    }
    Rate {
        without_loss: best,
        client_limited: true,
    }
}

/// The rate at which CPU time per answer is measured, the same for every answerer.
const CPU_RATE: u64 = 20_000;

/// What one answerer did for one kind of question.
struct Measured {
    median: Duration,
    p99: Duration,
    rate: Rate,
    /// CPU time per answer, in microseconds.
    cpu_per_answer_us: f64,
}

/// Where an answerer's CPU time is read.
enum Cpu<'a> {
    /// A thread or process of its own: its schedstat.
    Own(&'a str),
    /// The kernel: the client sender's time beyond `baseline_ns` per question.
    InSender { baseline_ns: f64 },
}

/// Sends the question until the first answer comes (farpd probes before it claims an
/// address, so its first answer is slow).
fn prime(client: &Netns, case: &Case) {
    let ifindex = client.ifindex("eth0");
    let case = case.clone();
    client
        .spawn(move || {
            runtime().block_on(async move {
                let socket = PacketSocket::open(ifindex).expect("client socket");
                let mut buf = [0u8; 2048];
                for _ in 0..10 {
                    socket.send(&case.request).await.expect("send");
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < deadline {
                        match tokio::time::timeout(
                            Duration::from_millis(100),
                            socket.recv(&mut buf),
                        )
                        .await
                        {
                            Ok(Ok(n)) if answers(&buf[..n], case.target) => return,
                            _ => {}
                        }
                    }
                }
                panic!("{}: never answered", case.name);
            })
        })
        .join()
        .expect("prime thread")
}

fn measure(client: &Netns, case: &Case, cpu: Cpu<'_>) -> Measured {
    prime(client, case);
    let (median, p99) = latency(client, case);
    let rate = max_rate(client, case);
    let before = match cpu {
        Cpu::Own(path) => cpu_ns(path),
        Cpu::InSender { .. } => 0,
    };
    let step = answered_at(client, case, CPU_RATE);
    let answered = step.answered.max(1) as f64;
    let cpu_ns_total = match cpu {
        Cpu::Own(path) => (cpu_ns(path) - before) as f64,
        Cpu::InSender { baseline_ns } => {
            (step.sender_cpu_ns as f64 - baseline_ns * step.sent as f64).max(0.0)
        }
    };
    eprintln!(
        "  {}: CPU step {} of {} answered",
        case.name, step.answered, step.sent
    );
    Measured {
        median,
        p99,
        rate,
        cpu_per_answer_us: cpu_ns_total / answered / 1000.0,
    }
}

/// The client sender's CPU time per question about an address nobody answers.
fn sender_baseline(client: &Netns, case: &Case) -> f64 {
    let step = answered_at(client, case, CPU_RATE);
    assert_eq!(step.answered, 0, "{}: nobody should answer", case.name);
    step.sender_cpu_ns as f64 / step.sent as f64
}

fn line(name: &str, m: &Measured) -> String {
    format!(
        "{name}: median {:?}, p99 {:?}, rate without loss {}, CPU {:.2} µs per answer",
        m.median, m.p99, m.rate, m.cpu_per_answer_us
    )
}

fn ratios(ours: &Measured, theirs: &Measured, name: &str, targets: bool) -> String {
    // Against a client-limited figure (a lower bound) the rate ratio is an upper bound.
    let bound = if theirs.rate.client_limited {
        "≤ "
    } else {
        ""
    };
    let (lat, rate) = if targets {
        (" (target ≤ 1.00x)", " (target ≥ 1.00x)")
    } else {
        ("", "")
    };
    format!(
        "herald / {name}: median {:.2}x{lat}, p99 {:.2}x{lat}, rate {bound}{:.2}x{rate}, CPU per answer {:.2}x",
        ours.median.as_secs_f64() / theirs.median.as_secs_f64(),
        ours.p99.as_secs_f64() / theirs.p99.as_secs_f64(),
        ours.rate.without_loss / theirs.rate.without_loss.max(1.0),
        ours.cpu_per_answer_us / theirs.cpu_per_answer_us.max(1e-9),
    )
}

/// Frames herald reads while the client sends `count` broadcast ARP requests about addresses
/// nobody owns, then one question about an owned address (read and answered after them).
fn unrelated_frames_read(
    client: &Netns,
    responder: &Responder,
    fence: &Case,
    sender: (EthernetAddress, Ipv4Addr),
    count: u32,
) -> u64 {
    let frames_read = || {
        responder
            .stats()
            .interfaces
            .get("eth0")
            .map_or(0, |i| i.frames_read)
    };
    let before = frames_read();
    let ifindex = client.ifindex("eth0");
    client
        .spawn(move || {
            runtime().block_on(async move {
                let socket = PacketSocket::open(ifindex).expect("client socket");
                for i in 0..count {
                    // 198.51.100.0/24: nobody's.
                    let target = Ipv4Addr::from(0xc633_6400 + (i % 250));
                    let frame = arp_request(sender.0, sender.1, target);
                    socket.send(&frame).await.expect("send");
                }
            })
        })
        .join()
        .expect("storm thread");
    prime(client, fence);
    frames_read() - before - 1
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    testkit::netns::require_privileges();
    let bridge = Bridge::new();
    let herald = Netns::new("bh");
    let kernel = Netns::new("bk");
    let ndppd = Netns::new("bn");
    let farpd = Netns::new("bf");
    let client = Netns::new("bc");
    for (ns, v4, v6) in [
        (&herald, "192.0.2.1", "2001:db8::1"),
        (&kernel, "192.0.2.2", "2001:db8::2"),
        (&ndppd, "192.0.2.3", "2001:db8::3"),
        (&farpd, "192.0.2.4", "2001:db8::4"),
        (&client, "192.0.2.100", "2001:db8::100"),
    ] {
        quiet(ns);
        bridge.attach(ns, "eth0");
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
    }
    // The kernel answers for addresses on its interface.
    kernel.ip(&["addr", "add", "192.0.2.20/24", "dev", "eth0"]);
    kernel.ip(&["addr", "add", "2001:db8::20/64", "dev", "eth0", "nodad"]);
    let scratch = tempfile::tempdir().expect("tempdir");
    let ndppd_conf = scratch.path().join("ndppd.conf");
    std::fs::write(
        &ndppd_conf,
        "proxy eth0 {\n    rule 2001:db8::30/128 {\n        static\n    }\n}\n",
    )
    .expect("ndppd.conf");
    let ndppd_conf = ndppd_conf.to_str().expect("path").to_owned();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let speaker = herald.spawn(move || {
        runtime().block_on(async move {
            // No announcements: nothing but the questions and answers crosses the LAN.
            let responder = Arc::new(
                Responder::start(Config {
                    announce_count: 0,
                    refresh_interval: None,
                    ..Config::default()
                })
                .await
                .expect("responder"),
            );
            // The responder's tasks run on this thread (a current-thread runtime).
            ready_tx
                .send((responder.clone(), this_thread()))
                .expect("main waits");
            let _ = stop_rx.await;
            responder.stats()
        })
    });
    let (responder, herald_cpu) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("responder started");
    let owned: BTreeSet<IpAddr> = ["192.0.2.10", "2001:db8::10"]
        .iter()
        .map(|a| a.parse().expect("IP"))
        .collect();
    // herald listens only while it is measured (see the module documentation).
    let listen = |on: bool| {
        let wanted = if on {
            BTreeMap::from([("eth0".to_string(), owned.clone())])
        } else {
            BTreeMap::new()
        };
        responder.set_owned(&wanted);
        let deadline = Instant::now() + Duration::from_secs(30);
        while responder
            .stats()
            .interfaces
            .get("eth0")
            .is_some_and(|i| i.listening && (!on || i.filter.is_some()))
            != on
        {
            assert!(Instant::now() < deadline, "herald listening: {on}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The solicited-node group is joined right after the socket opens.
        std::thread::sleep(Duration::from_millis(50));
    };

    let mac: EthernetAddress = client.mac("eth0").parse().expect("MAC");
    let v4: Ipv4Addr = "192.0.2.100".parse().unwrap();
    let v6: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let case = |name, target: &str| {
        let target: IpAddr = target.parse().unwrap();
        let request = match target {
            IpAddr::V4(t) => arp_request(mac, v4, t),
            IpAddr::V6(t) => neighbor_solicitation(mac, v6, t),
        };
        Case {
            name,
            request,
            target,
        }
    };

    let mut report = Vec::new();
    // ARP: herald, the kernel, farpd.
    {
        let baseline_ns = sender_baseline(&client, &case("nobody ARP", "192.0.2.50"));
        listen(true);
        let ours = measure(
            &client,
            &case("herald ARP", "192.0.2.10"),
            Cpu::Own(&herald_cpu),
        );
        let unrelated = unrelated_frames_read(
            &client,
            &responder,
            &case("herald ARP", "192.0.2.10"),
            (mac, v4),
            100_000,
        );
        listen(false);
        let kernel_m = measure(
            &client,
            &case("kernel ARP", "192.0.2.20"),
            Cpu::InSender { baseline_ns },
        );
        let daemon = Daemon::start(&farpd, "farpd", &["-d", "-i", "eth0", "192.0.2.40"]);
        let farpd_m = measure(
            &client,
            &case("farpd ARP", "192.0.2.40"),
            Cpu::Own(&daemon.schedstat()),
        );
        drop(daemon);
        report.push("ARP request → reply:".to_owned());
        report.push(format!("  {}", line("herald", &ours)));
        report.push(format!("  {}", line("farpd ", &farpd_m)));
        report.push(format!("  {}", line("kernel", &kernel_m)));
        report.push(format!("  {}", ratios(&ours, &farpd_m, "farpd", true)));
        report.push(format!("  {}", ratios(&ours, &kernel_m, "kernel", false)));
        report.push(format!(
            "  herald read {unrelated} frames for 100,000 broadcast ARP requests about addresses it does not own (target 0)"
        ));
    }
    // NS: herald, the kernel, ndppd.
    {
        let baseline_ns = sender_baseline(&client, &case("nobody NS", "2001:db8::50"));
        listen(true);
        let ours = measure(
            &client,
            &case("herald NS", "2001:db8::10"),
            Cpu::Own(&herald_cpu),
        );
        listen(false);
        let kernel_m = measure(
            &client,
            &case("kernel NS", "2001:db8::20"),
            Cpu::InSender { baseline_ns },
        );
        let daemon = Daemon::start(&ndppd, "ndppd", &["-c", &ndppd_conf]);
        let ndppd_m = measure(
            &client,
            &case("ndppd NS", "2001:db8::30"),
            Cpu::Own(&daemon.schedstat()),
        );
        drop(daemon);
        report.push("NS → NA:".to_owned());
        report.push(format!("  {}", line("herald", &ours)));
        report.push(format!("  {}", line("ndppd ", &ndppd_m)));
        report.push(format!("  {}", line("kernel", &kernel_m)));
        report.push(format!("  {}", ratios(&ours, &ndppd_m, "ndppd", true)));
        report.push(format!("  {}", ratios(&ours, &kernel_m, "kernel", false)));
    }
    drop(responder);
    let _ = stop_tx.send(());
    let stats = speaker.join().expect("responder thread");
    println!(
        "l2 benchmark (herald's responder vs ndppd, farpd and the kernel, same bridge, same run):"
    );
    for line in report {
        println!("  {line}");
    }
    println!(
        "  responder counters: {:?}",
        stats
            .interfaces
            .get("eth0")
            .map(|i| (i.frames_read, i.send_errors, &i.rate_limited))
    );
}
