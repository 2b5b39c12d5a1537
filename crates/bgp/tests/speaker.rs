//! The speaker against a scripted peer on the loopback interface, speaking through this
//! crate's codec: what exactly goes on the wire (packing, End-of-RIB, diffs, route refresh,
//! resets on configuration change, the shutdown message). Needs no privileges; the real
//! routers are in `routers.rs`.

use bgp::fsm::PeerAs;
use bgp::wire::{
    Capability, Community, Family, Message, NotificationRepr, OpenRepr, Options, Prefix,
    RouteRefreshRepr, UpdateRepr, message_len,
};
use bgp::{PeerConfig, RouteAttrs, Routes, Speaker, SpeakerConfig, StopKind};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds a failing test; nothing is asserted about time.
const LIMIT: Duration = Duration::from_secs(20);

struct TestPeer {
    stream: TcpStream,
    buf: Vec<u8>,
    options: Options,
}

impl TestPeer {
    async fn accept(listener: &TcpListener) -> TestPeer {
        let (stream, _) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .expect("speaker connects")
            .expect("accept");
        TestPeer {
            stream,
            buf: Vec::new(),
            options: Options::default(),
        }
    }

    async fn recv(&mut self) -> Message {
        loop {
            if let Some(len) = message_len(&self.buf, &self.options).expect("valid header")
                && self.buf.len() >= len
            {
                let m =
                    Message::from_bytes(&self.buf[..len], &self.options).expect("valid message");
                self.buf.drain(..len);
                return m;
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout(LIMIT, self.stream.read(&mut chunk))
                .await
                .expect("speaker sends")
                .expect("read");
            assert!(n > 0, "speaker closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message that is not a KEEPALIVE.
    async fn recv_non_keepalive(&mut self) -> Message {
        loop {
            let m = self.recv().await;
            if m != Message::Keepalive {
                return m;
            }
        }
    }

    async fn send(&mut self, m: Message) {
        let bytes = m.to_bytes(&self.options).expect("encodes");
        self.stream.write_all(&bytes).await.expect("write");
    }

    /// OPEN both ways and KEEPALIVE both ways; returns the speaker's OPEN.
    async fn establish(&mut self) -> OpenRepr {
        let Message::Open(theirs) = self.recv().await else {
            panic!("expected OPEN")
        };
        let caps = vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65000),
        ];
        self.send(Message::Open(OpenRepr::new(
            65000,
            90,
            Ipv4Addr::new(10, 0, 0, 2),
            caps,
        )))
        .await;
        self.send(Message::Keepalive).await;
        assert_eq!(self.recv().await, Message::Keepalive);
        self.options = Options::FOUR_OCTET_AS;
        theirs
    }

    /// UPDATEs up to the End-of-RIB of both families, with the raw sizes.
    async fn table(&mut self) -> (Vec<UpdateRepr>, usize) {
        let mut updates = Vec::new();
        let mut eors = 0;
        while eors < 2 {
            match self.recv_non_keepalive().await {
                Message::Update(u) if u.as_end_of_rib().is_some() => eors += 1,
                Message::Update(u) => updates.push(u),
                other => panic!("unexpected {other:?}"),
            }
        }
        let bytes = updates
            .iter()
            .map(|u| Message::Update(u.clone()).buffer_len(&self.options))
            .sum();
        (updates, bytes)
    }
}

fn host(i: u32) -> Prefix {
    Prefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

fn peer(port: u16) -> PeerConfig {
    let mut p = PeerConfig::new(
        "p",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        64512,
        PeerAs::Fixed(65000),
    );
    p.port = port;
    p
}

fn cease(m: Message) -> NotificationRepr {
    match m {
        Message::Notification(n) => {
            assert_eq!((n.code, n.subcode), (6, 2), "{n:?}");
            n
        }
        other => panic!("expected NOTIFICATION, got {other:?}"),
    }
}

#[tokio::test]
async fn speaks_the_table_diffs_and_resets_as_configured() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut speaker = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        restarting: false,
    });
    // 10,000 /32s in two attribute sets.
    let attrs = |c: u16| RouteAttrs {
        communities: vec![Community::new(64512, c)],
        ..RouteAttrs::default()
    };
    let mut routes: Routes = (0..10_000)
        .map(|i| (host(i), attrs((i % 2) as u16)))
        .collect();
    speaker.set_routes("p", routes.clone());
    speaker.set_peers(vec![peer(port)]).expect("valid");

    let mut p = TestPeer::accept(&listener).await;
    let open = p.establish().await;
    assert_eq!(open.asn(), 64512);

    // The full table, packed: each attribute set fills messages to the limit, and the
    // octets are the minimal encoding's (43 octets of headers and attributes a message,
    // 7 more for COMMUNITIES, then 5 a /32).
    let (updates, bytes) = p.table().await;
    let announced: usize = updates.iter().map(|u| u.nlri.len()).sum();
    assert_eq!(announced, 10_000);
    let per_message = (4096 - 50) / 5;
    assert_eq!(updates.len(), 2 * 5000usize.div_ceil(per_message));
    assert_eq!(bytes, updates.len() * 50 + 10_000 * 5);

    let status = &speaker.status()[0];
    assert_eq!((status.advertised, status.pending), (10_000, 0));
    assert_eq!(
        status.families,
        [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );

    // Route refresh: the IPv4 table again.
    p.send(Message::RouteRefresh(RouteRefreshRepr::new(
        Family::IPV4_UNICAST,
    )))
    .await;
    let mut again = 0;
    while again < 10_000 {
        match p.recv_non_keepalive().await {
            Message::Update(u) => again += u.nlri.len(),
            other => panic!("unexpected {other:?}"),
        }
    }

    // The same configuration again leaves the session alone: the diff below arrives on
    // this very connection, with no Cease before it.
    speaker.set_peers(vec![peer(port)]).expect("valid");

    // Level-based diff: half go away, one changes attributes.
    routes.retain(|p, _| *p < host(5000));
    routes.insert(host(0), attrs(7));
    speaker.set_routes("p", routes.clone());
    let mut withdrawn = 0;
    let mut changed = Vec::new();
    while withdrawn < 5000 || changed.is_empty() {
        match p.recv_non_keepalive().await {
            Message::Update(u) => {
                withdrawn += u.withdrawn_routes.len();
                changed.extend(u.nlri);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(withdrawn, 5000);
    assert_eq!(changed, [host(0)]);

    // A changed one: reset with a Cease that says why, then a new connection.
    let mut changed_peer = peer(port);
    changed_peer.hold_time = 30;
    speaker.set_peers(vec![changed_peer]).expect("valid");
    // Without graceful restart: Cease / Other Configuration Change.
    match p.recv_non_keepalive().await {
        Message::Notification(n) => assert_eq!((n.code, n.subcode), (6, 6), "{n:?}"),
        other => panic!("expected NOTIFICATION, got {other:?}"),
    }
    let mut p = TestPeer::accept(&listener).await;
    assert_eq!(p.establish().await.hold_time, 30);
    let (updates, _) = p.table().await;
    assert_eq!(updates.iter().map(|u| u.nlri.len()).sum::<usize>(), 5000);
    assert_eq!(speaker.status()[0].sessions_established, 1);

    // Graceful shutdown: everything again with 65535:0, then Cease with our message.
    let shutdown = speaker.shutdown(
        Some(Duration::from_millis(300)),
        StopKind::Shutdown,
        "node-a is going away",
    );
    let peer_side = async {
        let mut gshut = 0;
        loop {
            match p.recv_non_keepalive().await {
                Message::Update(u) => {
                    if u.attributes.iter().any(|a| matches!(
                        a,
                        bgp::wire::PathAttribute::Communities(c) if c.contains(&Community::GRACEFUL_SHUTDOWN)
                    )) {
                        gshut += u.nlri.len();
                    }
                }
                m => return (gshut, cease(m)),
            }
        }
    };
    let ((gshut, n), ()) = tokio::join!(peer_side, shutdown);
    assert_eq!(gshut, 5000);
    assert_eq!(n.shutdown_communication(), Some(Ok("node-a is going away")));
}

#[tokio::test]
async fn invalid_peers_are_reported_and_not_run() {
    let mut speaker = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        restarting: false,
    });
    let mut bad = peer(1);
    bad.hold_time = 2;
    let mut long = peer(2);
    long.id = "long".into();
    long.password = Some("x".repeat(81));
    let errors = speaker.set_peers(vec![bad, long]).expect_err("invalid");
    assert_eq!(errors.len(), 2);
    assert!(speaker.status().is_empty());
}

fn restart_bit(open: &OpenRepr) -> Option<(bool, u16)> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some((gr.restarting, gr.restart_time)),
        _ => None,
    })
}

#[tokio::test]
async fn restart_bit_only_in_the_first_open_after_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut speaker = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        restarting: true,
    });
    let mut config = peer(port);
    config.graceful_restart = Some(120);
    speaker.set_peers(vec![config.clone()]).expect("valid");
    let mut p = TestPeer::accept(&listener).await;
    assert_eq!(restart_bit(&p.establish().await), Some((true, 120)));
    // Nothing to announce: the End-of-RIB markers say the (empty) table is complete.
    let (updates, _) = p.table().await;
    assert_eq!(updates, []);

    // A reset by a configuration change is no restart of the speaker.
    config.hold_time = 30;
    speaker.set_peers(vec![config]).expect("valid");
    match p.recv_non_keepalive().await {
        Message::Notification(n) => assert_eq!((n.code, n.subcode), (6, 6), "{n:?}"),
        other => panic!("expected NOTIFICATION, got {other:?}"),
    }
    let mut p = TestPeer::accept(&listener).await;
    assert_eq!(restart_bit(&p.establish().await), Some((false, 120)));
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A peer that keeps the session up but stops reading: route changes stop being queued
/// once the send queue is full (the octets waiting stay within the limit, whatever the
/// number of changes), and when it reads again the session converges to the last table.
/// On loopback the kernel's send buffer takes megabytes first (its size follows the 64 KiB
/// MSS); `routers.rs` runs the same against BIRD with small buffers, where the changes
/// are shown to coalesce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_bounded_memory_and_converges() {
    const ROUTES: u32 = 200;
    const CHANGES: u32 = 100_000;
    // A small receive buffer (inherited by the accepted connection), so the backlog is
    // in the speaker's queue and not in the kernel's buffers.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(8).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let mut speaker = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        restarting: false,
    });
    let attrs = |c: u32| RouteAttrs {
        communities: vec![Community(c)],
        ..RouteAttrs::default()
    };
    let mut routes: Routes = (0..ROUTES).map(|i| (host(i), attrs(i))).collect();
    speaker.set_routes("p", routes.clone());
    let mut config = peer(port);
    // No KEEPALIVEs from a peer that does not read: no hold timer either.
    config.hold_time = 0;
    speaker.set_peers(vec![config]).expect("valid");
    let mut p = TestPeer::accept(&listener).await;
    let Message::Open(_) = p.recv().await else {
        panic!("expected OPEN")
    };
    p.send(Message::Open(OpenRepr::new(
        65000,
        0,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65000),
        ],
    )))
    .await;
    p.send(Message::Keepalive).await;
    assert_eq!(p.recv().await, Message::Keepalive);
    p.options = Options::FOUR_OCTET_AS;
    // The first table, up to End-of-RIB.
    let mut held: std::collections::BTreeMap<Prefix, Vec<Community>> = Default::default();
    loop {
        match p.recv_non_keepalive().await {
            Message::Update(u) if u.as_end_of_rib().is_some() => break,
            Message::Update(u) => apply(&mut held, &u),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(held.len(), ROUTES as usize);

    // The peer stops reading; 100,000 changes are made, each one route's community.
    let rss_before = rss_kib();
    let mut peak = 0;
    for k in 0..CHANGES {
        routes.insert(host(k % ROUTES), attrs(ROUTES + k));
        speaker.set_routes("p", routes.clone());
        if k % 64 == 0 {
            // Let the peer task run, as a busy process would.
            tokio::time::sleep(Duration::from_micros(200)).await;
            peak = peak.max(speaker.status()[0].send_queue_bytes);
        }
    }
    let s = speaker.status()[0].clone();
    let rss_after = rss_kib();
    eprintln!(
        "{CHANGES} changes to a peer that does not read: send queue peak {} octets (limit {}), \
         held back {} times, RSS {rss_before} -> {rss_after} KiB",
        s.send_queue_peak,
        bgp::SEND_QUEUE_LIMIT,
        s.send_queue_full
    );
    assert!(s.send_queue_full > 0, "the queue never filled: {s:?}");
    // One sync's UPDATEs may go in above the limit (at most the whole table, 57 octets a
    // route here); nothing more.
    assert!(
        s.send_queue_peak <= bgp::SEND_QUEUE_LIMIT + 64 * ROUTES as usize
            && peak <= s.send_queue_peak,
        "{s:?}"
    );
    assert_eq!(s.state, bgp::fsm::State::Established);

    // It reads again: everything queued, then what changed since, until the table is the
    // last one set.
    let wanted: std::collections::BTreeMap<Prefix, Vec<Community>> = routes
        .iter()
        .map(|(p, a)| (*p, a.communities.clone()))
        .collect();
    let mut messages = 0u64;
    while held != wanted {
        match p.recv_non_keepalive().await {
            Message::Update(u) => {
                messages += 1;
                apply(&mut held, &u);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("converged after {messages} UPDATEs");
    assert_eq!(speaker.status()[0].sessions_established, 1);
}

fn apply(held: &mut std::collections::BTreeMap<Prefix, Vec<Community>>, u: &UpdateRepr) {
    for w in &u.withdrawn_routes {
        held.remove(w);
    }
    let communities = u
        .attributes
        .iter()
        .find_map(|a| match a {
            bgp::wire::PathAttribute::Communities(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_default();
    for n in &u.nlri {
        held.insert(*n, communities.clone());
    }
}
