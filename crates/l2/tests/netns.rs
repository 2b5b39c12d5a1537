//! End-to-end tests in network namespaces, with the Linux kernel, `arping` and `ndisc6` as the
//! clients. They need root and fail (never skip) when they cannot set up namespaces.
//!
//! Every assertion waits for a condition with a generous timeout; none measures time.

use std::time::Duration;

use l2::socket::PacketSocket;
use l2::wire::EthernetAddress;
use testkit::netns::{Netns, poll_until, veth};

const WAIT: Duration = Duration::from_secs(20);

/// A current-thread tokio runtime, for a thread that has entered a namespace.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn has_maddr(ns: &Netns, ifname: &str, mac: &str) -> bool {
    ns.ip(&["maddr", "show", "dev", ifname])
        .lines()
        .any(|l| l.trim().starts_with("link") && l.contains(mac))
}

#[test]
fn socket_reads_only_neighbor_frames_and_counts_multicast_memberships() {
    let a = Netns::new("sa");
    let b = Netns::new("sb");
    veth(&a, "eth0", &b, "eth0");
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    let ifindex = a.ifindex("eth0");
    let group: EthernetAddress = "33:33:ff:00:00:0a".parse().unwrap();

    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (step_tx, step_rx) = std::sync::mpsc::channel::<&'static str>();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = a.spawn(move || {
        runtime().block_on(async move {
            let socket = PacketSocket::open(ifindex).expect("open packet socket");
            socket.join_multicast(group).unwrap();
            socket.join_multicast(group).unwrap();
            opened_tx.send(()).unwrap();
            // Wait for the test to say what to do next, reading frames meanwhile.
            let mut buf = [0u8; 2048];
            loop {
                tokio::select! {
                    n = socket.recv(&mut buf) => {
                        seen_tx.send(buf[..n.unwrap()].to_vec()).unwrap();
                    }
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        match step_rx.try_recv() {
                            Ok("leave") => socket.leave_multicast(group).unwrap(),
                            Ok("send") => {
                                let frame = l2::gratuitous_arp_request(
                                    "02:00:00:00:00:aa".parse().unwrap(),
                                    "192.0.2.99".parse().unwrap(),
                                );
                                socket.send(&frame).await.unwrap();
                            }
                            Ok(_) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                            Err(std::sync::mpsc::TryRecvError::Empty) => {}
                        }
                    }
                }
            }
        })
    });
    opened_rx.recv_timeout(WAIT).expect("socket opened");

    // Two joins, one leave: the group stays; the second leave removes it.
    assert!(has_maddr(&a, "eth0", "33:33:ff:00:00:0a"));
    step_tx.send("leave").unwrap();
    step_tx.send("send").unwrap();
    // Our own frame must not come back.
    b.exec("ping", &["-c", "3", "-i", "0.2", "-W", "1", "192.0.2.1"]);
    assert!(has_maddr(&a, "eth0", "33:33:ff:00:00:0a"));
    step_tx.send("leave").unwrap();
    poll_until("the group to leave the interface", WAIT, |last| {
        *last = a.ip(&["maddr", "show", "dev", "eth0"]);
        (!has_maddr(&a, "eth0", "33:33:ff:00:00:0a")).then_some(())
    });
    step_tx.send("stop").unwrap();
    reader.join().unwrap();

    let frames: Vec<Vec<u8>> = seen_rx.try_iter().collect();
    assert!(!frames.is_empty(), "the ARP request of b's ping was read");
    for frame in &frames {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let parsed = l2::Frame::parse(frame).expect("a frame the filter passed parses");
        assert!(
            matches!(
                parsed,
                l2::Frame::Arp { .. }
                    | l2::Frame::NeighborSolicitation(_)
                    | l2::Frame::NeighborAdvertisement(_)
            ),
            "only ARP and NS/NA pass the filter, got ethertype {ethertype:#06x}: {parsed:?}"
        );
        assert_ne!(
            parsed.ethernet().src_addr,
            "02:00:00:00:00:aa".parse().unwrap(),
            "our own frame was read back"
        );
    }
}
