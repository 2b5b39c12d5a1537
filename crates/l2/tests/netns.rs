//! End-to-end tests in network namespaces, with the Linux kernel, `arping` and `ndisc6` as the
//! clients: two node namespaces and a client joined by a bridge in a namespace of its own, a
//! [`Responder`] running inside a node namespace (on a thread that entered it), and assertions
//! on what the client holds (its neighbor cache, its addresses) or got back.
//!
//! They need root and fail, never skip, when they cannot set up namespaces. Every wait is for a
//! condition with a generous timeout; nothing measures time.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use l2::link::LinkMonitor;
use l2::responder::{AddressStats, Config, Health, Responder, Stats};
use l2::socket::PacketSocket;
use l2::wire::{
    ArpOperation, EtherType, EthernetAddress, NdiscRepr, NeighborFlags, NeighborMessage, VlanTag,
    VlanTags, solicited_node_multicast_ethernet_addr,
};
use l2::{Claim, DropReason, Frame};
use testkit::lan::{
    CLIENT_V4, CLIENT_V6, Capture, Lan, NODE1_V4, arping, ndisc6, neigh, quiet, resolve_to,
};
use testkit::netns::{Netns, output, poll_until, veth};

const WAIT: Duration = Duration::from_secs(30);

const SERVICE_V4: &str = "192.0.2.10";
const UNOWNED_V4: &str = "192.0.2.11";
const SERVICE_V6: &str = "2001:db8::10";
const UNOWNED_V6: &str = "2001:db8::11";

/// A current-thread tokio runtime, for a thread that has entered a namespace.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn owned(entries: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<IpAddr>> {
    entries
        .iter()
        .map(|(ifname, ips)| {
            let ips = ips.iter().map(|ip| ip.parse().expect("an IP")).collect();
            (ifname.to_string(), ips)
        })
        .collect()
}

enum Request {
    SetOwned(BTreeMap<String, BTreeSet<IpAddr>>, mpsc::Sender<()>),
    SetPeers(BTreeSet<EthernetAddress>, mpsc::Sender<()>),
    Stats(mpsc::Sender<Stats>),
    Health(mpsc::Sender<Health>),
    FailInterface(String),
}

/// A [`Responder`] running in a namespace, on its own thread and current-thread runtime.
struct Speaker {
    commands: Option<tokio::sync::mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Every claim the responder reported, in order.
    claims: std::sync::Arc<std::sync::Mutex<Vec<Claim>>>,
}

impl Speaker {
    fn start(ns: &Netns, config: Config) -> Speaker {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let claims = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = claims.clone();
        let thread = ns.spawn(move || {
            runtime().block_on(async move {
                let responder = Responder::start(config).await.expect("start the responder");
                let mut claims_rx = responder.claims();
                tokio::spawn(async move {
                    while let Ok(claim) = claims_rx.recv().await {
                        seen.lock().unwrap().push(claim);
                    }
                });
                ready_tx.send(()).expect("test waits");
                while let Some(command) = rx.recv().await {
                    match command {
                        Request::SetOwned(owned, done) => {
                            responder.set_owned(&owned);
                            let _ = done.send(());
                        }
                        Request::SetPeers(peers, done) => {
                            responder.set_peers(peers);
                            let _ = done.send(());
                        }
                        Request::Stats(reply) => {
                            let _ = reply.send(responder.stats());
                        }
                        Request::Health(reply) => {
                            let _ = reply.send(responder.health());
                        }
                        Request::FailInterface(name) => {
                            assert!(
                                responder.inject_interface_failure(&name),
                                "no task on {name} to fail"
                            );
                        }
                    }
                }
            })
        });
        let mut speaker = Speaker {
            commands: Some(tx),
            thread: Some(thread),
            claims,
        };
        if ready_rx.recv_timeout(WAIT).is_err() {
            speaker.join();
            panic!("the responder did not start");
        }
        speaker
    }

    fn tx(&self) -> &tokio::sync::mpsc::UnboundedSender<Request> {
        self.commands.as_ref().expect("running")
    }

    /// Returns once the responder has the new state.
    fn set_owned(&self, entries: &[(&str, &[&str])]) {
        let (done_tx, done_rx) = mpsc::channel();
        self.tx()
            .send(Request::SetOwned(owned(entries), done_tx))
            .expect("responder thread alive");
        done_rx.recv_timeout(WAIT).expect("set_owned applied");
    }

    fn set_peers(&self, peers: &[EthernetAddress]) {
        let (done_tx, done_rx) = mpsc::channel();
        self.tx()
            .send(Request::SetPeers(peers.iter().copied().collect(), done_tx))
            .expect("responder thread alive");
        done_rx.recv_timeout(WAIT).expect("set_peers applied");
    }

    fn health(&self) -> Health {
        let (tx, rx) = mpsc::channel();
        self.tx()
            .send(Request::Health(tx))
            .expect("responder thread alive");
        rx.recv_timeout(WAIT).expect("health")
    }

    fn claims(&self) -> Vec<Claim> {
        self.claims.lock().unwrap().clone()
    }

    fn stats(&self) -> Stats {
        let (tx, rx) = mpsc::channel();
        self.tx()
            .send(Request::Stats(tx))
            .expect("responder thread alive");
        rx.recv_timeout(WAIT).expect("stats")
    }

    fn frames_read(&self, ifname: &str) -> u64 {
        self.stats()
            .interfaces
            .get(ifname)
            .map_or(0, |i| i.frames_read)
    }

    /// The counters of `ip` (all zero before anything happened to it).
    fn address(&self, ip: &str) -> AddressStats {
        let ip: IpAddr = ip.parse().expect("an IP");
        self.stats().addresses.get(&ip).copied().unwrap_or_default()
    }

    fn dropped(&self, ifname: &str, reason: &str) -> u64 {
        self.stats()
            .interfaces
            .get(ifname)
            .and_then(|i| i.dropped.get(reason).copied())
            .unwrap_or(0)
    }

    fn join(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.join();
    }
}

fn test_config() -> Config {
    Config {
        refresh_interval: None,
        ..Config::default()
    }
}

fn has_maddr(ns: &Netns, ifname: &str, mac: &str) -> bool {
    ns.ip(&["maddr", "show", "dev", ifname])
        .lines()
        .any(|l| l.trim().starts_with("link") && l.contains(mac))
}

/// Runs `f` with a packet socket on `ifname` inside `ns`, on a thread of its own.
fn with_socket<R, Fut>(
    ns: &Netns,
    ifname: &str,
    f: impl FnOnce(PacketSocket) -> Fut + Send + 'static,
) -> JoinHandle<R>
where
    R: Send + 'static,
    Fut: Future<Output = R>,
{
    let ifindex = ns.ifindex(ifname);
    ns.spawn(move || {
        runtime().block_on(async move {
            let socket = PacketSocket::open(ifindex).expect("open a packet socket");
            f(socket).await
        })
    })
}

fn mac_of(ns: &Netns, ifname: &str) -> EthernetAddress {
    ns.mac(ifname).parse().expect("a MAC")
}

fn neighbor_solicitation(
    src_mac: EthernetAddress,
    src: Ipv6Addr,
    target: Ipv6Addr,
    hop_limit: u8,
) -> Vec<u8> {
    l2::neighbor_solicitation(src_mac, src, target, hop_limit)
        .as_bytes()
        .to_vec()
}

/// A broadcast ARP request built with the crate's own codecs.
fn arp_request(src_mac: EthernetAddress, src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    tagged_arp_request(VlanTags::Untagged, src_mac, src, target)
}

fn tagged_arp_request(
    vlan_tags: VlanTags,
    src_mac: EthernetAddress,
    src: Ipv4Addr,
    target: Ipv4Addr,
) -> Vec<u8> {
    l2::arp_request(vlan_tags, src_mac, src, target)
        .as_bytes()
        .to_vec()
}

/// An IPv4/UDP frame to a port nobody listens on: traffic the responder must never see.
fn udp_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<u8> {
    let payload = b"not for herald";
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac.octets());
    f.extend_from_slice(&src_mac.octets());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes()); // discard
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum
    f.extend_from_slice(payload);
    f
}

/// Whether `bytes` is a solicited Neighbor Advertisement for `target`.
fn is_solicited_na(bytes: &[u8], target: Ipv6Addr) -> bool {
    let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(bytes) else {
        return false;
    };
    let Ok(message) = NeighborMessage::new_checked(nd.icmpv6.message()) else {
        return false;
    };
    matches!(
        NdiscRepr::parse(&message),
        Ok(NdiscRepr::NeighborAdvertisement { flags, target_addr, .. })
            if target_addr == target && flags.contains(NeighborFlags::SOLICITED)
    )
}

/// Whether `bytes` is an ARP reply saying where `address` is.
fn is_arp_reply(bytes: &[u8], address: Ipv4Addr) -> bool {
    matches!(
        Frame::parse(bytes),
        Ok(Frame::Arp { arp, .. })
            if arp.operation == ArpOperation::Reply && arp.sender_protocol_addr == address
    )
}

#[test]
fn socket_reads_only_neighbor_frames_and_counts_multicast_memberships() {
    let a = Netns::new("sa");
    let b = Netns::new("sb");
    veth(&a, "eth0", &b, "eth0");
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    let group: EthernetAddress = "33:33:ff:00:00:0a".parse().unwrap();
    let own: EthernetAddress = "02:00:00:00:00:aa".parse().unwrap();

    let (step_tx, step_rx) = mpsc::channel::<&'static str>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let reader = with_socket(&a, "eth0", move |socket| async move {
        let mut frames = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            tokio::select! {
                n = socket.recv(&mut buf) => frames.push(buf[..n.unwrap()].to_vec()),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    match step_rx.try_recv() {
                        Ok("join") => socket.join_multicast(group).unwrap(),
                        Ok("leave") => socket.leave_multicast(group).unwrap(),
                        Ok("send") => {
                            let frame = arp_request(own, "192.0.2.99".parse().unwrap(), "192.0.2.2".parse().unwrap());
                            socket.send(&frame).await.unwrap();
                        }
                        Ok(_) | Err(mpsc::TryRecvError::Disconnected) => return frames,
                        Err(mpsc::TryRecvError::Empty) => continue,
                    }
                    done_tx.send(()).unwrap();
                }
            }
        }
    });
    let step = |s| {
        step_tx.send(s).unwrap();
        done_rx.recv_timeout(WAIT).expect("step done");
    };

    // Two joins, one leave: the group stays; the second leave removes it.
    step("join");
    step("join");
    assert!(has_maddr(&a, "eth0", "33:33:ff:00:00:0a"));
    step("leave");
    assert!(has_maddr(&a, "eth0", "33:33:ff:00:00:0a"));
    step("leave");
    assert!(!has_maddr(&a, "eth0", "33:33:ff:00:00:0a"));

    // Our own frame must not come back; b's ARP (for the ping) and its answer to ours must.
    step("send");
    b.exec("ping", &["-c", "2", "-i", "0.2", "-W", "1", "192.0.2.1"]);
    step_tx.send("stop").unwrap();
    let frames = reader.join().unwrap();

    assert!(!frames.is_empty(), "b's ARP was read");
    for frame in &frames {
        let parsed = Frame::parse(frame).expect("a frame the filter passed parses");
        assert!(
            matches!(
                parsed,
                Frame::Arp { .. }
                    | Frame::NeighborSolicitation(_)
                    | Frame::NeighborAdvertisement(_)
            ),
            "only ARP and NS/NA pass the filter, got {parsed:?}"
        );
        assert_ne!(
            parsed.ethernet().src_addr,
            own,
            "our own frame was read back"
        );
    }
}

#[test]
fn link_monitor_follows_links_without_polling() {
    let ns = Netns::new("lm");
    let (step_tx, step_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<String>();
    let watcher = ns.spawn(move || {
        runtime().block_on(async move {
            let monitor = LinkMonitor::start().await.expect("link monitor");
            let mut links = monitor.subscribe();
            assert!(monitor.table().by_name("lo").is_some(), "the dump has lo");
            seen_tx.send("started".into()).unwrap();
            // Report each state of "mon0" the table goes through, as "absent", "down" or
            // "up:<generation>".
            let mut last = String::new();
            loop {
                let state = match links.borrow_and_update().by_name("mon0") {
                    None => "absent".to_string(),
                    Some(l) if l.is_operational() => format!("up:{}", l.up_generation),
                    Some(_) => "down".to_string(),
                };
                if state != last {
                    seen_tx.send(state.clone()).unwrap();
                    last = state;
                }
                if step_rx.try_recv().is_ok() {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), links.changed()).await;
            }
        })
    });
    let expect = |want: &str| {
        poll_until(&format!("the link table to say {want}"), WAIT, |last| {
            let got = seen_rx.recv_timeout(WAIT).ok()?;
            *last = got.clone();
            (got == want).then_some(())
        })
    };
    expect("started");
    expect("absent");
    ns.ip(&[
        "link", "add", "mon0", "type", "veth", "peer", "name", "mon1",
    ]);
    expect("down");
    // A veth has carrier once both ends are up. Each time the link becomes operational
    // counts, the first included: a responder waiting on a down link must announce then.
    ns.ip(&["link", "set", "mon1", "up"]);
    ns.ip(&["link", "set", "mon0", "up"]);
    expect("up:1");
    ns.ip(&["link", "set", "mon0", "down"]);
    expect("down");
    ns.ip(&["link", "set", "mon0", "up"]);
    expect("up:2");
    ns.ip(&["link", "del", "mon0"]);
    expect("absent");
    step_tx.send(()).unwrap();
    watcher.join().unwrap();
}

/// The addresses of `ifname` in the table, as strings.
fn addresses_of(monitor: &LinkMonitor, ifname: &str) -> BTreeSet<String> {
    monitor
        .table()
        .by_name(ifname)
        .map(|l| l.addresses.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default()
}

/// Runs `f` with a link monitor started in `ns`, on the monitor's own thread; `f` gets the
/// monitor and a way to freeze that thread (no event is read meanwhile).
fn with_monitor<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce(&LinkMonitor, &dyn Fn(mpsc::Receiver<()>)) -> T + Send + 'static,
) -> T {
    type Freeze = (mpsc::Receiver<()>, mpsc::Sender<()>);
    ns.spawn(move || {
        runtime().block_on(async move {
            let monitor = LinkMonitor::start().await.expect("link monitor");
            // The checks run on a blocking thread, so the runtime's one thread keeps reading
            // events unless frozen on purpose.
            let monitor = std::sync::Arc::new(monitor);
            let (freeze_tx, mut freeze_rx) = tokio::sync::mpsc::unbounded_channel::<Freeze>();
            let freezer = tokio::spawn(async move {
                while let Some((thaw, frozen)) = freeze_rx.recv().await {
                    // Blocks the runtime's only thread until thawed.
                    let _ = frozen.send(());
                    let _ = thaw.recv_timeout(4 * WAIT);
                }
            });
            let checked = monitor.clone();
            let result = tokio::task::spawn_blocking(move || {
                let freeze = |thaw| {
                    let (frozen_tx, frozen_rx) = mpsc::channel();
                    freeze_tx.send((thaw, frozen_tx)).expect("freezer alive");
                    frozen_rx.recv_timeout(WAIT).expect("frozen");
                };
                f(&checked, &freeze)
            })
            .await
            .expect("checks");
            freezer.abort();
            result
        })
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn link_monitor_knows_each_links_addresses_link_local_included() {
    let ns = Netns::new("la");
    quiet(&ns);
    let ns_name = ns.name().to_owned();
    with_monitor(&ns, move |monitor, _| {
        let ip = |args: &[&str]| {
            testkit::netns::run(
                std::process::Command::new("ip")
                    .arg("-n")
                    .arg(&ns_name)
                    .args(args),
            )
        };
        let expect = |what: &str, want: &dyn Fn(&BTreeSet<String>) -> bool| {
            poll_until(what, WAIT, |last| {
                let now = addresses_of(monitor, "adr0");
                *last = format!("{now:?}");
                want(&now).then_some(())
            })
        };
        ip(&[
            "link", "add", "adr0", "type", "veth", "peer", "name", "adr1",
        ]);
        ip(&["link", "set", "adr1", "up"]);
        ip(&["link", "set", "adr0", "up"]);
        ip(&["addr", "add", "192.0.2.5/24", "dev", "adr0"]);
        ip(&["addr", "add", "2001:db8::5/64", "dev", "adr0", "nodad"]);
        expect("v4, v6 and link-local addresses", &|a| {
            a.contains("192.0.2.5/24")
                && a.contains("2001:db8::5/64")
                && a.iter().any(|a| a.starts_with("fe80::"))
        });
        assert!(
            monitor
                .table()
                .by_name("adr0")
                .unwrap()
                .has_ipv6_link_local()
        );
        ip(&["addr", "del", "192.0.2.5/24", "dev", "adr0"]);
        expect("the IPv4 address gone", &|a| {
            !a.contains("192.0.2.5/24") && a.contains("2001:db8::5/64")
        });
        // A link update (down) keeps what is still there; flushing removes it all.
        ip(&["addr", "flush", "dev", "adr0"]);
        expect("every address gone", &|a| a.is_empty());
        assert_eq!(monitor.health().resyncs, 0, "{:?}", monitor.health());
    });
}

#[test]
fn link_monitor_reads_everything_again_after_an_overrun_and_replaces_a_failed_socket() {
    let ns = Netns::new("lo");
    quiet(&ns);
    let ns_name = ns.name().to_owned();
    with_monitor(&ns, move |monitor, freeze| {
        let ip = |args: &[&str]| {
            testkit::netns::run(
                std::process::Command::new("ip")
                    .arg("-n")
                    .arg(&ns_name)
                    .args(args),
            )
        };
        ip(&[
            "link", "add", "ovr0", "type", "veth", "peer", "name", "ovr1",
        ]);
        ip(&["link", "set", "ovr1", "up"]);
        ip(&["link", "set", "ovr0", "up"]);
        // Far more address events than the socket's buffer holds, while the monitor reads
        // nothing: the kernel drops events (ENOBUFS), and the monitor must dump again.
        let (thaw_tx, thaw_rx) = mpsc::channel();
        freeze(thaw_rx);
        let batch: String = (0..3000u32)
            .map(|i| format!("addr add 2001:db8:1::{:x}/128 dev ovr0 nodad\n", i + 1))
            .collect();
        let file = std::env::temp_dir().join(format!("{}-batch", ns_name));
        std::fs::write(&file, batch).expect("batch file");
        ip(&["-batch", file.to_str().expect("path")]);
        let _ = std::fs::remove_file(&file);
        thaw_tx.send(()).expect("thawed only now");
        poll_until("every address after the overrun", WAIT, |last| {
            let n = addresses_of(monitor, "ovr0")
                .iter()
                .filter(|a| a.starts_with("2001:db8:1::"))
                .count();
            *last = format!("{n} addresses, {:?}", monitor.health());
            (n == 3000).then_some(())
        });
        let health = monitor.health();
        assert!(health.resyncs >= 1, "the overrun was seen: {health:?}");
        assert!(health.task.up && health.task.restarts == 0, "{health:?}");

        // The socket fails: the monitor says so, gets a new one, and follows changes made
        // after.
        monitor.inject_socket_failure();
        poll_until("the monitor to replace its socket", WAIT, |last| {
            let health = monitor.health();
            *last = format!("{health:?}");
            (health.task.restarts >= 1 && health.task.up).then_some(())
        });
        assert!(monitor.health().task.last_error.is_some());
        ip(&[
            "link", "add", "new0", "type", "veth", "peer", "name", "new1",
        ]);
        poll_until("a link made after the failure", WAIT, |_| {
            monitor.table().by_name("new0").map(|_| ())
        });
    });
}

#[test]
fn client_kernel_arping_and_ndisc6_resolve_owned_addresses_to_the_node() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let mac = lan.node1.mac("eth0");

    // The solicited-node group of the IPv6 address is programmed on the interface.
    let group = solicited_node_multicast_ethernet_addr(SERVICE_V6.parse().unwrap()).to_string();
    poll_until("the solicited-node group on node1's eth0", WAIT, |last| {
        *last = lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
        has_maddr(&lan.node1, "eth0", &group).then_some(())
    });

    resolve_to(&lan.client, SERVICE_V4, "eth0", &mac);
    resolve_to(&lan.client, SERVICE_V6, "eth0", &mac);

    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac), "arping got {out:?}, want {mac}");
    // An RFC 5227 probe (sender 0.0.0.0) is answered too, so a prober sees the conflict.
    let (ok, out) = arping(
        &lan.client,
        &["-0", "-r", "-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac), "probe got {out:?}, want {mac}");
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    assert!(ok && out.contains(&mac), "ndisc6 got {out:?}, want {mac}");

    for ip in [SERVICE_V4, SERVICE_V6] {
        let s = speaker.address(ip);
        assert!(s.requests_received >= 2, "{ip}: {s:?}");
        assert!(s.responses_sent >= 2, "{ip}: {s:?}");
    }
    // The announcement burst: 3 rounds, two frames each for IPv4, one for IPv6.
    poll_until("the whole announcement burst", WAIT, |last| {
        let v4 = speaker.address(SERVICE_V4).gratuitous_sent;
        let v6 = speaker.address(SERVICE_V6).gratuitous_sent;
        *last = format!("v4 {v4}, v6 {v6}");
        (v4 == 6 && v6 == 3).then_some(())
    });

    // Link-up announces again.
    lan.node1.ip(&["link", "set", "eth0", "down"]);
    lan.node1.ip(&["link", "set", "eth0", "up"]);
    poll_until("a second burst after link-up", WAIT, |last| {
        let v4 = speaker.address(SERVICE_V4).gratuitous_sent;
        let v6 = speaker.address(SERVICE_V6).gratuitous_sent;
        *last = format!("v4 {v4}, v6 {v6}");
        (v4 == 12 && v6 == 6).then_some(())
    });
    // The kernel re-programs our groups on the way up; they are still there.
    assert!(has_maddr(&lan.node1, "eth0", &group));

    // Released: the group leaves the interface.
    speaker.set_owned(&[("eth0", &[SERVICE_V4])]);
    poll_until("the solicited-node group to leave", WAIT, |last| {
        *last = lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
        (!has_maddr(&lan.node1, "eth0", &group)).then_some(())
    });
}

#[test]
fn stale_entries_are_confirmed_by_answering_unicast_probes() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let mac = lan.node1.mac("eth0");

    for ip in [SERVICE_V4, SERVICE_V6] {
        resolve_to(&lan.client, ip, "eth0", &mac);
        let before = speaker.address(ip).responses_sent;
        lan.client.ip(&[
            "neigh", "change", ip, "lladdr", &mac, "nud", "stale", "dev", "eth0",
        ]);
        assert!(neigh(&lan.client, ip, "eth0").contains("STALE"));
        // Traffic moves the entry to DELAY, then PROBE: unicast probes to the cached MAC,
        // which only a solicited answer turns back into REACHABLE (announcements leave it
        // STALE).
        poll_until(
            &format!("the client's entry for {ip} to be REACHABLE again"),
            WAIT,
            |last| {
                *last = neigh(&lan.client, ip, "eth0");
                if last.contains("REACHABLE") && last.contains(&mac) {
                    return Some(());
                }
                if last.contains("STALE") {
                    let _ = output(lan.client.command("ping").args(["-c1", "-W1", ip]));
                }
                None
            },
        );
        assert!(
            speaker.address(ip).responses_sent > before,
            "the probe was answered"
        );
    }
}

#[test]
fn client_dad_for_the_service_address_fails() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    let group = solicited_node_multicast_ethernet_addr(SERVICE_V6.parse().unwrap()).to_string();
    poll_until("the solicited-node group on node1's eth0", WAIT, |last| {
        *last = lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
        has_maddr(&lan.node1, "eth0", &group).then_some(())
    });

    lan.client.sysctl("net.ipv6.conf.eth0.accept_dad", "1");
    lan.client.sysctl("net.ipv6.conf.eth0.dad_transmits", "1");
    lan.client
        .ip(&["addr", "add", &format!("{SERVICE_V6}/64"), "dev", "eth0"]);
    poll_until("the client to mark the address dadfailed", WAIT, |last| {
        *last = lan.client.ip(&["-6", "addr", "show", "dev", "eth0"]);
        last.lines()
            .any(|l| l.contains(SERVICE_V6) && l.contains("dadfailed"))
            .then_some(())
    });
    let s = speaker.address(SERVICE_V6);
    assert!(s.responses_sent >= 1, "{s:?}");
}

#[test]
fn owner_change_moves_the_client_cache_to_the_new_node() {
    let lan = Lan::new();
    let speaker1 = Speaker::start(&lan.node1, test_config());
    let speaker2 = Speaker::start(&lan.node2, test_config());
    speaker1.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    speaker2.set_owned(&[("eth0", &[])]);
    let mac1 = lan.node1.mac("eth0");
    let mac2 = lan.node2.mac("eth0");
    resolve_to(&lan.client, SERVICE_V4, "eth0", &mac1);
    resolve_to(&lan.client, SERVICE_V6, "eth0", &mac1);

    // Move both addresses; no traffic from the client: only announcements can update it.
    let moved = Instant::now();
    speaker1.set_owned(&[("eth0", &[])]);
    speaker2.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    for ip in [SERVICE_V4, SERVICE_V6] {
        poll_until(
            &format!("the client's entry for {ip} to point at node2"),
            WAIT,
            |last| {
                *last = neigh(&lan.client, ip, "eth0");
                last.contains(&format!("lladdr {mac2} ")).then_some(())
            },
        );
        // Reported, not asserted: timing is for benchmarks.
        eprintln!(
            "{ip} moved to node2 in the client's cache after {:?}",
            moved.elapsed()
        );
    }
    // And node2 answers from now on.
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(
        ok && out.contains(&mac2) && !out.contains(&mac1),
        "arping got {out:?}"
    );
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    assert!(ok && out.contains(&mac2), "ndisc6 got {out:?}");
}

#[test]
fn unowned_addresses_and_other_interfaces_get_no_answer() {
    let lan = Lan::new();
    // A second link between node1 and the client, where only another address is owned.
    quiet(&lan.node1);
    veth(&lan.node1, "eth1", &lan.client, "eth1");
    lan.node1
        .ip(&["addr", "add", "198.51.100.1/24", "dev", "eth1"]);
    lan.client
        .ip(&["addr", "add", "198.51.100.100/24", "dev", "eth1"]);
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[
        ("eth0", &[SERVICE_V4, SERVICE_V6]),
        ("eth1", &["198.51.100.10"]),
    ]);
    let mac1 = lan.node1.mac("eth1");
    let mac0 = lan.node1.mac("eth0");
    // The socket filter drops questions about addresses not owned on the interface in the
    // kernel: they are never read. A question about an owned address, asked after them, is
    // read (and answered) after them, so the count is settled once it is answered.
    let read_only_the_fence = |ifname: &str, before: u64, fence: &str, mac: &str| {
        let (ok, out) = arping(
            &lan.client,
            &["-r", "-c", "1", "-w", "5", "-i", ifname, fence],
        );
        assert!(
            ok && out.contains(mac),
            "arping {fence} on {ifname}: {out:?}"
        );
        let read = speaker.frames_read(ifname) - before;
        assert_eq!(
            read,
            1,
            "frames read on {ifname} besides the fence: {:?}",
            speaker.stats()
        );
    };

    // Unowned addresses on the right interface.
    let before = speaker.frames_read("eth0");
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "2", "-i", "eth0", UNOWNED_V4],
    );
    assert!(
        !ok && out.trim().is_empty(),
        "arping for an unowned address got {out:?}"
    );
    let (ok, out) = ndisc6(&lan.client, UNOWNED_V6, "eth0");
    assert!(
        !ok && out.trim().is_empty(),
        "ndisc6 for an unowned address got {out:?}"
    );
    read_only_the_fence("eth0", before, SERVICE_V4, &mac0);

    // Owned addresses asked on an interface they are not announced on.
    let before = speaker.frames_read("eth1");
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "2", "-i", "eth1", SERVICE_V4],
    );
    assert!(!ok && out.trim().is_empty(), "arping on eth1 got {out:?}");
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth1");
    assert!(!ok && out.trim().is_empty(), "ndisc6 on eth1 got {out:?}");
    read_only_the_fence("eth1", before, "198.51.100.10", &mac1);

    // eth1 does answer for its own address (so the silence above is the rule, not a dead link)
    // until it is no longer selected.
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "5", "-i", "eth1", "198.51.100.10"],
    );
    assert!(
        ok && out.contains(&mac1),
        "arping on eth1 got {out:?}, want {mac1}"
    );
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "2", "-i", "eth1", "198.51.100.10"],
    );
    assert!(
        !ok && out.trim().is_empty(),
        "an unselected interface answered: {out:?}"
    );
    assert!(!speaker.stats().interfaces["eth1"].listening);
}

#[test]
fn solicitation_with_hop_limit_64_is_dropped_and_counted() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    let client_mac = mac_of(&lan.client, "eth0");
    let client_ip: Ipv6Addr = CLIENT_V6.parse().unwrap();
    let target: Ipv6Addr = SERVICE_V6.parse().unwrap();

    let (go_tx, go_rx) = mpsc::channel::<()>();
    let prober = with_socket(&lan.client, "eth0", move |socket| async move {
        let bad = neighbor_solicitation(client_mac, client_ip, target, 64);
        socket.send(&bad).await.expect("send");
        go_rx.recv_timeout(WAIT).expect("go");
        // A valid one behind it: its answer comes after any answer to the first.
        let good = neighbor_solicitation(client_mac, client_ip, target, 255);
        socket.send(&good).await.expect("send");
        let mut solicited = 0;
        let mut buf = [0u8; 2048];
        while solicited == 0 {
            let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
                .await
                .expect("an answer to the valid solicitation")
                .expect("recv");
            if is_solicited_na(&buf[..n], target) {
                solicited += 1;
            }
        }
        // Anything else already queued.
        while let Some(n) = socket.try_recv(&mut buf).expect("recv") {
            if is_solicited_na(&buf[..n], target) {
                solicited += 1;
            }
        }
        solicited
    });
    poll_until("the hop-limit drop to be counted", WAIT, |last| {
        let n = speaker.dropped("eth0", DropReason::HopLimit.as_str());
        *last = format!("{:?}", speaker.stats().interfaces.get("eth0"));
        (n == 1).then_some(())
    });
    go_tx.send(()).unwrap();
    assert_eq!(
        prober.join().unwrap(),
        1,
        "only the valid solicitation is answered"
    );
    let s = speaker.address(SERVICE_V6);
    assert_eq!(s.responses_sent, 1, "{s:?}");
}

#[test]
fn unrelated_frames_never_reach_the_responder() {
    const FRAMES: usize = 100_000;
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4])]);
    let client_mac = mac_of(&lan.client, "eth0");
    let node_mac = mac_of(&lan.node1, "eth0");
    // node1's kernel answers the UDP with ICMP errors; it must not need ARP to do so.
    lan.node1.ip(&[
        "neigh",
        "replace",
        CLIENT_V4,
        "lladdr",
        &client_mac.to_string(),
        "nud",
        "permanent",
        "dev",
        "eth0",
    ]);
    let client_ip: Ipv4Addr = CLIENT_V4.parse().unwrap();
    let service: Ipv4Addr = SERVICE_V4.parse().unwrap();
    let node_ip: Ipv4Addr = NODE1_V4.parse().unwrap();

    // An ARP request answered: every frame sent before it has been through node1's socket.
    let barrier = |lan: &Lan| {
        with_socket(&lan.client, "eth0", move |socket| async move {
            socket
                .send(&arp_request(client_mac, client_ip, service))
                .await
                .expect("send");
            let mut buf = [0u8; 2048];
            loop {
                let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
                    .await
                    .expect("an ARP reply")
                    .expect("recv");
                if is_arp_reply(&buf[..n], service) {
                    return;
                }
            }
        })
        .join()
        .unwrap();
    };

    barrier(&lan);
    let before = speaker.frames_read("eth0");
    with_socket(&lan.client, "eth0", move |socket| async move {
        let frame = udp_frame(client_mac, node_mac, client_ip, node_ip);
        for _ in 0..FRAMES {
            socket.send(&frame).await.expect("send");
        }
    })
    .join()
    .unwrap();
    barrier(&lan);
    let after = speaker.frames_read("eth0");
    assert_eq!(
        after - before,
        1,
        "only the barrier's ARP request is read, none of the {FRAMES} UDP frames"
    );
    // The frames did arrive: node1's kernel saw them at the closed port.
    let snmp = lan.node1.exec("cat", &["/proc/net/snmp"]);
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let no_ports = udp[0]
        .split_whitespace()
        .position(|h| h == "NoPorts")
        .and_then(|i| udp[1].split_whitespace().nth(i))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("Udp NoPorts");
    assert!(no_ports > 0, "the UDP frames reached node1: {snmp}");
}

#[test]
fn a_burst_of_questions_is_answered_whole_and_counted_once_each() {
    // Sent back to back, the questions queue up and are read and answered many to a system
    // call; none may be lost, answered twice or miscounted on the way.
    const EACH: usize = 300;
    let lan = Lan::new();
    // No announcements: gratuitous ARP replies would be counted with the answers.
    let config = Config {
        announce_count: 0,
        ..test_config()
    };
    let speaker = Speaker::start(&lan.node1, config);
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let group = solicited_node_multicast_ethernet_addr(SERVICE_V6.parse().unwrap()).to_string();
    poll_until("the solicited-node group on node1's eth0", WAIT, |last| {
        *last = lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
        has_maddr(&lan.node1, "eth0", &group).then_some(())
    });
    let before = speaker.frames_read("eth0");
    let mac = mac_of(&lan.client, "eth0");
    let (v4, v6): (Ipv4Addr, Ipv6Addr) = (SERVICE_V4.parse().unwrap(), SERVICE_V6.parse().unwrap());
    let arp = arp_request(mac, CLIENT_V4.parse().unwrap(), v4);
    let ns = neighbor_solicitation(mac, CLIENT_V6.parse().unwrap(), v6, 255);
    let answers = with_socket(&lan.client, "eth0", move |socket| async move {
        socket.set_receive_buffer(8 << 20).expect("receive buffer");
        for _ in 0..EACH {
            socket.send(&arp).await.expect("send");
            socket.send(&ns).await.expect("send");
        }
        let (mut arp_replies, mut advertisements) = (0, 0);
        let mut buf = [0u8; 2048];
        while let Ok(read) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await
        {
            let frame = &buf[..read.expect("recv")];
            if is_arp_reply(frame, v4) {
                arp_replies += 1;
            } else if is_solicited_na(frame, v6) {
                advertisements += 1;
            }
        }
        (arp_replies, advertisements)
    })
    .join()
    .expect("client");
    assert_eq!(
        answers,
        (EACH, EACH),
        "(ARP replies, advertisements) for {EACH} each"
    );
    for ip in [SERVICE_V4, SERVICE_V6] {
        let s = speaker.address(ip);
        assert_eq!(
            (s.requests_received, s.responses_sent),
            (EACH as u64, EACH as u64),
            "{ip}: {s:?}"
        );
    }
    assert_eq!(speaker.frames_read("eth0") - before, 2 * EACH as u64);
}

#[test]
fn an_address_removed_is_not_answered_at_once() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let mac = lan.node1.mac("eth0");
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac), "arping got {out:?}");
    speaker.set_owned(&[("eth0", &[])]);
    let (ok, out) = arping(
        &lan.client,
        &["-r", "-c", "1", "-w", "2", "-i", "eth0", SERVICE_V4],
    );
    assert!(
        !ok && out.trim().is_empty(),
        "a released address was answered: {out:?}"
    );
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    assert!(
        !ok && out.trim().is_empty(),
        "a released address was answered: {out:?}"
    );
}

#[test]
fn addresses_sharing_a_solicited_node_group_keep_it_until_both_are_released() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    // Same last 24 bits: the same solicited-node group, ff02::1:ff00:10.
    let other = "2001:db8:1::10";
    let group = solicited_node_multicast_ethernet_addr(SERVICE_V6.parse().unwrap());
    assert_eq!(
        group,
        solicited_node_multicast_ethernet_addr(other.parse().unwrap())
    );
    let group = group.to_string();
    let joined = |want: bool| {
        poll_until(
            &format!("the group to be {}", if want { "joined" } else { "left" }),
            WAIT,
            |last| {
                *last = lan.node1.ip(&["maddr", "show", "dev", "eth0"]);
                (has_maddr(&lan.node1, "eth0", &group) == want).then_some(())
            },
        )
    };
    speaker.set_owned(&[("eth0", &[SERVICE_V6, other])]);
    joined(true);
    speaker.set_owned(&[("eth0", &[other])]);
    // Still answered, so the group is still needed: an NS for it is still answered.
    let (ok, out) = ndisc6(&lan.client, other, "eth0");
    assert!(ok, "ndisc6 for the remaining address got {out:?}");
    assert!(has_maddr(&lan.node1, "eth0", &group));
    speaker.set_owned(&[("eth0", &[])]);
    joined(false);
}

#[test]
fn held_addresses_are_refreshed_periodically() {
    let lan = Lan::new();
    let speaker = Speaker::start(
        &lan.node1,
        Config {
            announce_count: 1,
            announce_interval: Duration::from_millis(100),
            refresh_interval: Some(Duration::from_millis(200)),
        },
    );
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    poll_until("several refreshes", WAIT, |last| {
        let s = speaker.address(SERVICE_V6);
        *last = format!("{s:?}");
        (s.gratuitous_sent >= 4).then_some(())
    });
    // Released: refreshing stops (the count stays where it is once the task has seen it).
    speaker.set_owned(&[("eth0", &[])]);
    let settled = speaker.address(SERVICE_V6);
    // A refresh could have been in flight when set_owned returned; after one more
    // successful round trip through the task's channel it is not.
    let (ok, _) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    assert!(!ok, "a released address was answered");
    let after = speaker.address(SERVICE_V6);
    assert!(
        after.gratuitous_sent <= settled.gratuitous_sent + 1,
        "refreshes went on after release: {settled:?} then {after:?}"
    );
}

#[test]
fn an_interface_named_before_it_exists_is_served_once_it_appears() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4]), ("eth1", &["198.51.100.10"])]);
    assert!(!speaker.stats().interfaces["eth1"].listening);

    quiet(&lan.node1);
    veth(&lan.node1, "eth1", &lan.client, "eth1");
    lan.client
        .ip(&["addr", "add", "198.51.100.100/24", "dev", "eth1"]);
    let mac = lan.node1.mac("eth1");
    poll_until("node1 to answer on its new eth1", WAIT, |last| {
        let (ok, out) = arping(
            &lan.client,
            &["-r", "-c", "1", "-w", "2", "-i", "eth1", "198.51.100.10"],
        );
        *last = format!("{out:?} {:?}", speaker.stats().interfaces.get("eth1"));
        (ok && out.contains(&mac)).then_some(())
    });

    // Deleted and created again (a new index): served again.
    lan.node1.ip(&["link", "del", "eth1"]);
    veth(&lan.node1, "eth1", &lan.client, "eth1");
    lan.client
        .ip(&["addr", "add", "198.51.100.100/24", "dev", "eth1"]);
    let mac = lan.node1.mac("eth1");
    poll_until("node1 to answer on the recreated eth1", WAIT, |last| {
        let (ok, out) = arping(
            &lan.client,
            &["-r", "-c", "1", "-w", "2", "-i", "eth1", "198.51.100.10"],
        );
        *last = format!("{out:?} {:?}", speaker.stats().interfaces.get("eth1"));
        (ok && out.contains(&mac)).then_some(())
    });
}

#[test]
fn responder_handle_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Responder>();
}

#[test]
fn questions_tagged_for_a_vlan_are_left_to_that_vlan() {
    // Linux moves an 802.1Q tag into packet metadata before packet sockets see the frame, so
    // a question asked on VLAN 100 reaches eth0's socket looking untagged. An answer would go
    // out untagged, onto another broadcast domain; the VLAN's own interface answers instead.
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4])]);
    let client_mac = mac_of(&lan.client, "eth0");
    let client_ip: Ipv4Addr = CLIENT_V4.parse().unwrap();
    let service: Ipv4Addr = SERVICE_V4.parse().unwrap();
    let tag = VlanTags::Single(VlanTag {
        tpid: EtherType::CUSTOMER_VLAN,
        tci: 100,
    });
    let replies = with_socket(&lan.client, "eth0", move |socket| async move {
        socket
            .send(&tagged_arp_request(tag, client_mac, client_ip, service))
            .await
            .expect("send");
        // An untagged question behind it: its answer comes after any answer to the first.
        socket
            .send(&arp_request(client_mac, client_ip, service))
            .await
            .expect("send");
        let mut replies = 0;
        let mut buf = [0u8; 2048];
        while replies == 0 {
            let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
                .await
                .expect("an answer to the untagged request")
                .expect("recv");
            if is_arp_reply(&buf[..n], service) {
                replies += 1;
            }
        }
        while let Some(n) = socket.try_recv(&mut buf).expect("recv") {
            if is_arp_reply(&buf[..n], service) {
                replies += 1;
            }
        }
        replies
    })
    .join()
    .unwrap();
    assert_eq!(replies, 1, "only the untagged request is answered");
    assert_eq!(speaker.address(SERVICE_V4).responses_sent, 1);
}

/// Sends `frames` from `ns`'s `ifname`, as a foreign host would.
fn send_from(ns: &Netns, ifname: &str, frames: Vec<Vec<u8>>) {
    with_socket(ns, ifname, move |socket| async move {
        for frame in frames {
            socket.send(&frame).await.expect("send");
        }
    })
    .join()
    .expect("sender thread");
}

#[test]
fn claims_are_reported_and_conflicts_answered_with_a_reannouncement_but_peers_only_reported() {
    let lan = Lan::new();
    let speaker = Speaker::start(
        &lan.node1,
        Config {
            announce_count: 1,
            refresh_interval: None,
            ..Config::default()
        },
    );
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let peer = mac_of(&lan.node2, "eth0");
    let stranger = mac_of(&lan.client, "eth0");
    speaker.set_peers(&[peer]);
    // The takeover round: a gratuitous request and reply for IPv4, one NA for IPv6.
    let gratuitous = |ip: &str| speaker.address(ip).gratuitous_sent;
    poll_until("the takeover announcements", WAIT, |last| {
        *last = format!("{:?}", speaker.stats().addresses);
        (gratuitous(SERVICE_V4) == 2 && gratuitous(SERVICE_V6) == 1).then_some(())
    });
    let v4: Ipv4Addr = SERVICE_V4.parse().unwrap();
    let v6: Ipv6Addr = SERVICE_V6.parse().unwrap();
    let claims_from = |mac: EthernetAddress| {
        vec![
            l2::gratuitous_arp_request(mac, v4).as_bytes().to_vec(),
            l2::gratuitous_arp_reply(mac, v4).as_bytes().to_vec(),
            l2::unsolicited_neighbor_advertisement(mac, v6)
                .as_bytes()
                .to_vec(),
        ]
    };
    let claim = |address: &str, mac| Claim {
        interface: "eth0".into(),
        address: address.parse().unwrap(),
        mac,
    };

    // Another herald node claims both: reported, not a conflict, not answered.
    send_from(&lan.node2, "eth0", claims_from(peer));
    poll_until("the peer's claims reported", WAIT, |last| {
        *last = format!("{:?}", speaker.claims());
        (speaker.claims().len() == 3).then_some(())
    });
    assert_eq!(
        speaker.claims(),
        [
            claim(SERVICE_V4, peer),
            claim(SERVICE_V4, peer),
            claim(SERVICE_V6, peer)
        ]
    );
    assert_eq!(speaker.address(SERVICE_V4).claims, 2);
    assert_eq!(speaker.address(SERVICE_V4).conflicts, 0);
    assert_eq!(speaker.address(SERVICE_V6).conflicts, 0);

    // A stranger, with a real tool for ARP: conflicts, each answered by one re-announcement.
    let (_, out) = arping(
        &lan.client,
        &["-U", "-S", SERVICE_V4, "-i", "eth0", "-c", "1", SERVICE_V4],
    );
    send_from(
        &lan.client,
        "eth0",
        vec![
            l2::unsolicited_neighbor_advertisement(stranger, v6)
                .as_bytes()
                .to_vec(),
        ],
    );
    poll_until("the stranger's claims answered", WAIT, |last| {
        *last = format!("arping: {out}; {:?}", speaker.stats().addresses);
        (gratuitous(SERVICE_V4) == 4 && gratuitous(SERVICE_V6) == 2).then_some(())
    });
    assert_eq!(speaker.address(SERVICE_V4).conflicts, 1);
    assert_eq!(speaker.address(SERVICE_V6).conflicts, 1);
    assert!(speaker.claims().contains(&claim(SERVICE_V4, stranger)));
    assert!(speaker.claims().contains(&claim(SERVICE_V6, stranger)));
    // The peer's claims caused none of the re-announcements: the counts above are exact.
    assert_eq!(speaker.stats().claims_lost, 0);
}

#[test]
fn a_flood_of_conflicting_claims_is_answered_at_most_once_a_second() {
    let lan = Lan::new();
    let speaker = Speaker::start(
        &lan.node1,
        Config {
            announce_count: 1,
            refresh_interval: None,
            ..Config::default()
        },
    );
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    let gratuitous = || speaker.address(SERVICE_V6).gratuitous_sent;
    poll_until("the takeover announcement", WAIT, |_| {
        (gratuitous() == 1).then_some(())
    });
    let stranger = mac_of(&lan.client, "eth0");
    let v6: Ipv6Addr = SERVICE_V6.parse().unwrap();
    let claim = l2::unsolicited_neighbor_advertisement(stranger, v6)
        .as_bytes()
        .to_vec();
    let started = Instant::now();
    send_from(&lan.client, "eth0", vec![claim; 2000]);
    poll_until("every claim counted", WAIT, |last| {
        *last = format!("{:?}", speaker.address(SERVICE_V6));
        (speaker.address(SERVICE_V6).conflicts == 2000).then_some(())
    });
    // Let a second pass after the flood, so a re-announcement held back by the limit is sent.
    std::thread::sleep(Duration::from_millis(1500));
    let seconds = started.elapsed().as_secs_f64().ceil() as u64;
    let reannounced = gratuitous() - 1;
    assert!(
        (1..=seconds + 1).contains(&reannounced),
        "{reannounced} re-announcements over {seconds} s for 2000 claims"
    );
}

#[test]
fn an_interface_task_that_fails_is_restarted_and_answers_again() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4])]);
    let mac = lan.node1.mac("eth0");
    resolve_to(&lan.client, SERVICE_V4, "eth0", &mac);
    assert!(
        speaker.health().problems().is_empty(),
        "{:?}",
        speaker.health()
    );
    speaker
        .tx()
        .send(Request::FailInterface("eth0".into()))
        .expect("alive");
    poll_until("the task restarted", WAIT, |last| {
        let health = speaker.health();
        *last = format!("{health:?}");
        let eth0 = health.interfaces.get("eth0")?;
        (eth0.restarts == 1 && eth0.up).then_some(())
    });
    let eth0 = speaker.health().interfaces["eth0"].clone();
    assert!(
        eth0.last_error
            .as_deref()
            .is_some_and(|e| e.contains("injected")),
        "{eth0:?}"
    );
    let (ok, out) = arping(
        &lan.client,
        &["-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac), "arping after the restart: {out}");
}

#[test]
fn behind_an_mld_snooping_switch_solicitations_reach_only_who_joined_the_group() {
    let lan = Lan::with_mld_snooping();
    // MLDv2 reports go to ff02::16; MLDv1 reports to the group, and dones to ff02::2. The
    // switch's queries go to ff02::1.
    let group = "ff02::1:ff00:10";
    let reports = Capture::start(
        &lan.node1,
        "eth0",
        &[
            "ip6", "dst", "ff02::16", "or", "ip6", "dst", "ff02::2", "or", "ip6", "dst", group,
        ],
    );
    let queries = Capture::start(&lan.node1, "eth0", &["ip6", "dst", "ff02::1"]);
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    let mld = |joined: bool| {
        let text = reports.text();
        let v2 = if joined {
            [
                format!("gaddr {group} to_ex"),
                format!("gaddr {group} is_ex"),
            ]
        } else {
            [
                format!("gaddr {group} to_in"),
                format!("gaddr {group} is_in"),
            ]
        };
        let v1 = if joined {
            "listener report"
        } else {
            "listener done"
        };
        let v1 = text
            .lines()
            .any(|l| l.contains(v1) && l.contains(&format!("addr: {group}")));
        (v1 || v2.iter().any(|r| text.contains(r.as_str()))).then_some(())
    };
    poll_until("an MLD report for the solicited-node group", WAIT, |last| {
        *last = reports.text();
        mld(true)
    });
    // Only herald answers for the address, and the client's kernel resolves it.
    let mac1 = lan.node1.mac("eth0");
    resolve_to(&lan.client, SERVICE_V6, "eth0", &mac1);

    // The switch filters once its querier is present (see Lan::with_mld_snooping).
    poll_until("a query from the switch's querier", WAIT, |last| {
        *last = queries.text();
        last.contains("multicast listener query").then_some(())
    });
    // A control on node2 that programs only the MAC filter for another address's group, as
    // herald did before: the switch never forwards it the solicitation.
    let control_target: Ipv6Addr = "2001:db8::20".parse().unwrap();
    let group_mac = solicited_node_multicast_ethernet_addr(control_target);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let control = {
        let (seen, stop) = (seen.clone(), stop.clone());
        with_socket(&lan.node2, "eth0", move |socket| async move {
            socket
                .join_multicast(group_mac)
                .expect("program the MAC filter");
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await
                else {
                    continue;
                };
                if let Ok(Frame::NeighborSolicitation(nd)) = Frame::parse(&buf[..n])
                    && nd.icmpv6.message().get(8..24) == Some(&control_target.octets()[..])
                {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    };
    let (ok, out) = ndisc6(&lan.client, "2001:db8::20", "eth0");
    assert!(!ok, "nobody owns 2001:db8::20 yet: {out}");
    // Herald's own address still resolves after those three solicitations were sent, so they
    // went through the switch before this answer came back.
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    assert!(ok && out.contains(&mac1), "{out}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a listener that only programs its MAC filter got solicitations behind the snooping switch"
    );
    // The same listener once node2's kernel joins the group (the address configured): the
    // switch forwards the solicitations, so the control can see them at all.
    lan.node2
        .ip(&["addr", "add", "2001:db8::20/64", "dev", "eth0", "nodad"]);
    poll_until("the control to see a solicitation", WAIT, |last| {
        let _ = ndisc6(&lan.client, "2001:db8::20", "eth0");
        let n = seen.load(std::sync::atomic::Ordering::Relaxed);
        *last = format!("{n}");
        (n > 0).then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    control.join().expect("control thread");

    // Released: the kernel reports leaving the group.
    speaker.set_owned(&[("eth0", &[])]);
    poll_until("an MLD report leaving the group", WAIT, |last| {
        *last = reports.text();
        mld(false)
    });
}

#[test]
fn on_a_promiscuous_interface_questions_for_another_station_are_dropped_and_counted() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    lan.node1.ip(&["link", "set", "eth0", "promisc", "on"]);
    let client_mac = mac_of(&lan.client, "eth0");
    // No station has this MAC, so the switch floods frames to it to every port.
    let elsewhere: EthernetAddress = "02:00:00:00:00:77".parse().unwrap();
    let v4: Ipv4Addr = SERVICE_V4.parse().unwrap();
    let v6: Ipv6Addr = SERVICE_V6.parse().unwrap();
    let mut arp = arp_request(client_mac, CLIENT_V4.parse().unwrap(), v4);
    arp[..6].copy_from_slice(&elsewhere.octets());
    let mut ns = neighbor_solicitation(client_mac, CLIENT_V6.parse().unwrap(), v6, 255);
    ns[..6].copy_from_slice(&elsewhere.octets());
    // Then the same questions as they should be, whose answers come after any to the others.
    let fence = arp_request(client_mac, CLIENT_V4.parse().unwrap(), v4);
    let answers = with_socket(&lan.client, "eth0", move |socket| async move {
        for frame in [&arp, &ns, &fence] {
            socket.send(frame).await.expect("send");
        }
        let mut buf = [0u8; 2048];
        let mut answers = Vec::new();
        loop {
            let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
                .await
                .expect("the fence's answer")
                .expect("recv");
            if is_solicited_na(&buf[..n], v6) {
                answers.push("na");
            } else if is_arp_reply(&buf[..n], v4) {
                answers.push("arp");
                return answers;
            }
        }
    })
    .join()
    .expect("client thread");
    assert_eq!(answers, ["arp"], "only the fence was answered");
    poll_until("both drops counted", WAIT, |last| {
        let n = speaker.dropped("eth0", l2::responder::OTHER_HOST);
        *last = format!("{:?}", speaker.stats().interfaces.get("eth0"));
        (n == 2).then_some(())
    });
}

#[test]
fn spoofed_dad_probes_get_a_bounded_number_of_multicast_answers() {
    let lan = Lan::new();
    let speaker = Speaker::start(
        &lan.node1,
        Config {
            announce_count: 0,
            refresh_interval: None,
            ..Config::default()
        },
    );
    speaker.set_owned(&[("eth0", &[SERVICE_V6])]);
    let mac1 = lan.node1.mac("eth0");
    let v6: Ipv6Addr = SERVICE_V6.parse().unwrap();
    // DAD probes (source ::) from 100 made-up MACs, 10,000 a second for a second.
    let probes: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| dad_probe(v6, EthernetAddress([0x02, 0xdd, 0, 0, 0, (i % 100) as u8])))
        .collect();
    // An honest client resolves the address meanwhile.
    let flood = with_socket(&lan.client, "eth0", move |socket| async move {
        let start = Instant::now();
        for (i, probe) in probes.iter().enumerate() {
            // 10 per millisecond.
            if i % 10 == 0 {
                let due = start + Duration::from_millis(i as u64 / 10);
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            }
            socket.send(probe).await.expect("send");
        }
        start.elapsed()
    });
    let (ok, out) = ndisc6(&lan.client, SERVICE_V6, "eth0");
    let flooded_for = flood.join().expect("flood");
    assert!(
        ok && out.contains(&mac1),
        "the honest client meanwhile: {out}"
    );
    poll_until("every probe read", WAIT, |last| {
        let s = speaker.address(SERVICE_V6);
        let limited = speaker.stats().interfaces["eth0"]
            .rate_limited
            .get(l2::responder::LIMITED_MULTICAST_ANSWER)
            .copied()
            .unwrap_or(0);
        *last = format!("{s:?}, {limited} limited");
        (s.requests_received + limited >= 10_000).then_some(())
    });
    // Documented in l2::ratelimit: 10 a second per interface, after a burst of 10.
    let seconds = flooded_for.as_secs_f64().ceil();
    let sent = speaker.address(SERVICE_V6).responses_sent;
    let bound = 10.0 + 10.0 * seconds;
    eprintln!("{sent} multicast NAs for 10,000 DAD probes over {flooded_for:?} (bound {bound})");
    // The honest client's solicitation is answered too (1 or more unicast NAs).
    assert!(
        (sent as f64) <= bound + 3.0,
        "{sent} answers over {seconds} s"
    );
}

/// A DAD probe for `target` from `mac`: source ::, no source link-layer address option.
fn dad_probe(target: Ipv6Addr, mac: EthernetAddress) -> Vec<u8> {
    use l2::wire::{
        EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet, IpProtocol, Ipv6Packet, Ipv6Repr,
        NdiscRepr, NeighborMessage, solicited_node_multicast,
    };
    let dst = solicited_node_multicast(target);
    let message = NdiscRepr::NeighborSolicitation {
        target_addr: target,
        source_link_layer_addr: None,
    };
    let ethernet = EthernetRepr {
        dst_addr: solicited_node_multicast_ethernet_addr(target),
        src_addr: mac,
        vlan_tags: VlanTags::Untagged,
        ethertype: EtherType::IPV6,
    };
    let ipv6 = Ipv6Repr {
        src_addr: Ipv6Addr::UNSPECIFIED,
        dst_addr: dst,
        next_header: IpProtocol::ICMPV6,
        payload_len: message.buffer_len() as u16,
        hop_limit: 255,
    };
    let mut bytes = vec![0u8; ethernet.header_len() + ipv6.buffer_len()];
    let eth_len = ethernet.header_len();
    ethernet.emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
    ipv6.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[eth_len..]));
    let icmp = &mut bytes[eth_len + ipv6.header_len()..];
    message.emit(&mut NeighborMessage::new_unchecked(&mut *icmp));
    Icmpv6Packet::new_unchecked(icmp).fill_checksum(Ipv6Addr::UNSPECIFIED, dst);
    bytes
}

#[test]
fn an_arp_storm_for_other_addresses_never_wakes_the_responder() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    speaker.set_owned(&[("eth0", &[SERVICE_V4, SERVICE_V6])]);
    let mac1 = lan.node1.mac("eth0");
    resolve_to(&lan.client, SERVICE_V4, "eth0", &mac1);
    poll_until("the owned-target filter attached", WAIT, |_| {
        (speaker.stats().interfaces["eth0"].filter == Some(l2::bpf::FilterKind::OwnedTargets))
            .then_some(())
    });
    let before = speaker.frames_read("eth0");
    let client_mac = mac_of(&lan.client, "eth0");
    let client_v4: Ipv4Addr = CLIENT_V4.parse().unwrap();
    // 100,000 broadcast ARP requests for addresses nobody here owns, and NS for unowned ones.
    with_socket(&lan.client, "eth0", move |socket| async move {
        for i in 0..100_000u32 {
            let target = Ipv4Addr::from(0xc633_6400 + (i % 250)); // 198.51.100.0/24
            socket
                .send(&arp_request(client_mac, client_v4, target))
                .await
                .expect("send");
        }
        for i in 0..1000u16 {
            let target = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i);
            let ns = neighbor_solicitation(client_mac, CLIENT_V6.parse().unwrap(), target, 255);
            socket.send(&ns).await.expect("send");
        }
    })
    .join()
    .expect("storm");
    // A question about an owned address after the storm is read and answered: everything
    // before it has been through the filter.
    let (ok, out) = arping(
        &lan.client,
        &["-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac1), "{out}");
    let read = speaker.frames_read("eth0") - before;
    assert!(
        read <= 2,
        "{read} frames read for 101,000 unrelated ones and one question"
    );
}

#[test]
fn past_the_kernel_limit_the_family_filter_is_used_and_questions_still_answered() {
    let lan = Lan::new();
    let speaker = Speaker::start(&lan.node1, test_config());
    let many: Vec<String> = (0..4000u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i).to_string())
        .chain([SERVICE_V4.to_string()])
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    speaker.set_owned(&[("eth0", &many)]);
    poll_until("the family filter attached", WAIT, |last| {
        let filter = speaker.stats().interfaces["eth0"].filter;
        *last = format!("{filter:?}");
        (filter == Some(l2::bpf::FilterKind::Family)).then_some(())
    });
    let mac1 = lan.node1.mac("eth0");
    let (ok, out) = arping(
        &lan.client,
        &["-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac1), "{out}");
    // Back under the limit: the owned-target program again.
    speaker.set_owned(&[("eth0", &[SERVICE_V4])]);
    poll_until("the owned-target filter attached", WAIT, |_| {
        (speaker.stats().interfaces["eth0"].filter == Some(l2::bpf::FilterKind::OwnedTargets))
            .then_some(())
    });
    let (ok, out) = arping(
        &lan.client,
        &["-c", "1", "-w", "5", "-i", "eth0", SERVICE_V4],
    );
    assert!(ok && out.contains(&mac1), "{out}");
}
