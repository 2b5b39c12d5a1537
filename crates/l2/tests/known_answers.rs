//! Known-answer tests: frames written out byte by byte from the RFC layouts, as a Linux host
//! sends them, and the exact replies herald must produce. Checksums were computed separately
//! and are verified here, not recomputed with the code under test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use l2::frame::Frame;
use l2::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, Icmpv6Type, IpProtocol, NdiscRepr,
    NeighborFlags, NeighborMessage, VlanTag, VlanTags,
};
use l2::{AnswerKind, NoAnswer, answer, answer_bytes, validate_neighbor_solicitation};

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const SERVICE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa);
const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const SERVICE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn owns_service(ip: IpAddr) -> bool {
    ip == IpAddr::V6(SERVICE_V6) || ip == IpAddr::V4(SERVICE_V4)
}

/// Address resolution from 2001:db8::1 for 2001:db8::a, as Linux sends it: to the target's
/// solicited-node group, with a Source Link-Layer Address option.
#[rustfmt::skip]
const NS_ADDRESS_RESOLUTION: [u8; 86] = [
    // Ethernet
    0x33, 0x33, 0xff, 0x00, 0x00, 0x0a,             // destination: 33:33 + ff00:000a
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // source: the client
    0x86, 0xdd,                                     // EtherType: IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00,                         // version 6, traffic class 0, flow label 0
    0x00, 0x20,                                     // payload length: 32
    0x3a,                                           // next header: ICMPv6 (58)
    0xff,                                           // hop limit: 255
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // source: 2001:db8::1
    0, 0, 0, 0, 0, 0, 0, 0x01,
    0xff, 0x02, 0, 0, 0, 0, 0, 0,                   // destination: ff02::1:ff00:a
    0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x0a,
    // ICMPv6 Neighbor Solicitation
    0x87,                                           // type: 135
    0x00,                                           // code: 0
    0x1c, 0x17,                                     // checksum
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // target: 2001:db8::a
    0, 0, 0, 0, 0, 0, 0, 0x0a,
    0x01,                                           // option type: source link-layer address
    0x01,                                           // option length: 1 (8 octets)
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // the client's MAC
];

/// The answer: a solicited advertisement to the client, S=1, O=1, with our MAC.
#[rustfmt::skip]
const NA_SOLICITED: [u8; 86] = [
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // destination: the client (from its option)
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // source: our interface
    0x86, 0xdd,                                     // EtherType: IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00,                         // version 6
    0x00, 0x20,                                     // payload length: 32
    0x3a,                                           // next header: ICMPv6
    0xff,                                           // hop limit: 255
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // source: 2001:db8::a, the target
    0, 0, 0, 0, 0, 0, 0, 0x0a,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // destination: 2001:db8::1, the solicitor
    0, 0, 0, 0, 0, 0, 0, 0x01,
    // ICMPv6 Neighbor Advertisement
    0x88,                                           // type: 136
    0x00,                                           // code: 0
    0x89, 0xca,                                     // checksum
    0x60, 0x00, 0x00, 0x00,                         // R=0 S=1 O=1, reserved
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // target: 2001:db8::a
    0, 0, 0, 0, 0, 0, 0, 0x0a,
    0x02,                                           // option type: target link-layer address
    0x01,                                           // option length: 1
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // our MAC
];

/// Duplicate Address Detection for 2001:db8::a: source ::, no options.
#[rustfmt::skip]
const NS_DAD: [u8; 78] = [
    // Ethernet
    0x33, 0x33, 0xff, 0x00, 0x00, 0x0a,             // destination: solicited-node MAC
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // source: the prober
    0x86, 0xdd,                                     // EtherType: IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00,                         // version 6
    0x00, 0x18,                                     // payload length: 24
    0x3a,                                           // next header: ICMPv6
    0xff,                                           // hop limit: 255
    0, 0, 0, 0, 0, 0, 0, 0,                         // source: ::
    0, 0, 0, 0, 0, 0, 0, 0,
    0xff, 0x02, 0, 0, 0, 0, 0, 0,                   // destination: ff02::1:ff00:a
    0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x0a,
    // ICMPv6 Neighbor Solicitation
    0x87, 0x00,                                     // type 135, code 0
    0x4c, 0xdb,                                     // checksum
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // target: 2001:db8::a
    0, 0, 0, 0, 0, 0, 0, 0x0a,
];

/// The DAD defence, which is also the unsolicited advertisement sent on takeover: to all
/// nodes, S=0, O=1.
#[rustfmt::skip]
const NA_TO_ALL_NODES: [u8; 86] = [
    // Ethernet
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01,             // destination: 33:33 + ff02::1's last 32 bits
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // source: our interface
    0x86, 0xdd,                                     // EtherType: IPv6
    // IPv6
    0x60, 0x00, 0x00, 0x00,                         // version 6
    0x00, 0x20,                                     // payload length: 32
    0x3a,                                           // next header: ICMPv6
    0xff,                                           // hop limit: 255
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // source: 2001:db8::a
    0, 0, 0, 0, 0, 0, 0, 0x0a,
    0xff, 0x02, 0, 0, 0, 0, 0, 0,                   // destination: ff02::1
    0, 0, 0, 0, 0, 0, 0, 0x01,
    // ICMPv6 Neighbor Advertisement
    0x88, 0x00,                                     // type 136, code 0
    0xf8, 0x80,                                     // checksum
    0x20, 0x00, 0x00, 0x00,                         // R=0 S=0 O=1, reserved
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,             // target: 2001:db8::a
    0, 0, 0, 0, 0, 0, 0, 0x0a,
    0x02, 0x01,                                     // target link-layer address, length 1
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // our MAC
];

/// "Who has 192.0.2.10? Tell 192.0.2.1", padded by the NIC to 60 bytes.
#[rustfmt::skip]
const ARP_REQUEST: [u8; 60] = [
    // Ethernet
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,             // destination: broadcast
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // source: the client
    0x08, 0x06,                                     // EtherType: ARP
    // ARP
    0x00, 0x01,                                     // hardware type: Ethernet
    0x08, 0x00,                                     // protocol type: IPv4
    0x06, 0x04,                                     // address lengths: 6, 4
    0x00, 0x01,                                     // operation: request
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // sender hardware address
    192, 0, 2, 1,                                   // sender protocol address
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // target hardware address: unknown
    192, 0, 2, 10,                                  // target protocol address
    // padding
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// "192.0.2.10 is at 02:00:00:00:00:99", to the client.
#[rustfmt::skip]
const ARP_REPLY: [u8; 42] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // destination: the requester
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // source: our interface
    0x08, 0x06,                                     // EtherType: ARP
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04,             // Ethernet/IPv4
    0x00, 0x02,                                     // operation: reply
    0x02, 0x00, 0x00, 0x00, 0x00, 0x99,             // sender hardware address: ours
    192, 0, 2, 10,                                  // sender protocol address: the service
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // target hardware address: the requester
    192, 0, 2, 1,                                   // target protocol address: the requester
];

#[test]
fn linux_neighbor_solicitation_parses_and_validates() {
    let Ok(Frame::NeighborSolicitation(nd)) = Frame::parse(&NS_ADDRESS_RESOLUTION) else {
        panic!("not read as a neighbor solicitation");
    };
    assert_eq!(nd.ethernet.src_addr, CLIENT_MAC);
    assert_eq!(nd.ethernet.ethertype, EtherType::IPV6);
    assert_eq!(nd.ipv6.next_header, IpProtocol::ICMPV6);
    assert_eq!(nd.ipv6.hop_limit, 255);
    assert_eq!(nd.ipv6.payload_len, 32);
    assert_eq!(nd.icmpv6.msg_type(), Icmpv6Type::NEIGHBOR_SOLICITATION);
    assert_eq!(nd.icmpv6.checksum(), 0x1c17);
    assert!(
        nd.icmpv6
            .verify_checksum(CLIENT_V6, "ff02::1:ff00:a".parse().unwrap())
    );
    let message = NeighborMessage::new_checked(nd.icmpv6.message()).unwrap();
    assert_eq!(
        NdiscRepr::parse(&message).unwrap(),
        NdiscRepr::NeighborSolicitation {
            target_addr: SERVICE_V6,
            source_link_layer_addr: Some(CLIENT_MAC),
        }
    );
    let ns = validate_neighbor_solicitation(&nd).unwrap();
    assert!(!ns.is_dad());
    assert_eq!(ns.target_addr, SERVICE_V6);
}

#[test]
fn address_resolution_is_answered_with_solicited_override_advertisement() {
    let answer = answer_bytes(&NS_ADDRESS_RESOLUTION, OUR_MAC, owns_service).unwrap();
    assert_eq!(answer.kind, AnswerKind::NeighborAdvertisement);
    assert_eq!(answer.address, IpAddr::V6(SERVICE_V6));
    assert_eq!(answer.frame.as_bytes(), &NA_SOLICITED[..]);

    // And the answer reads back as what it claims to be.
    let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(&answer.frame) else {
        panic!("answer is not an advertisement");
    };
    assert!(nd.icmpv6.verify_checksum(SERVICE_V6, CLIENT_V6));
    let message = NeighborMessage::new_checked(nd.icmpv6.message()).unwrap();
    assert_eq!(
        NdiscRepr::parse(&message).unwrap(),
        NdiscRepr::NeighborAdvertisement {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: SERVICE_V6,
            target_link_layer_addr: Some(OUR_MAC),
        }
    );
}

#[test]
fn dad_probe_is_answered_to_all_nodes() {
    let Ok(Frame::NeighborSolicitation(nd)) = Frame::parse(&NS_DAD) else {
        panic!("not read as a neighbor solicitation");
    };
    assert!(
        nd.icmpv6
            .verify_checksum(Ipv6Addr::UNSPECIFIED, "ff02::1:ff00:a".parse().unwrap())
    );
    assert!(validate_neighbor_solicitation(&nd).unwrap().is_dad());

    let answer = answer_bytes(&NS_DAD, OUR_MAC, owns_service).unwrap();
    assert_eq!(answer.kind, AnswerKind::DadDefense);
    assert_eq!(answer.frame.as_bytes(), &NA_TO_ALL_NODES[..]);
}

#[test]
fn unsolicited_advertisement_known_answer() {
    let frame = l2::unsolicited_neighbor_advertisement(OUR_MAC, SERVICE_V6);
    assert_eq!(frame.as_bytes(), &NA_TO_ALL_NODES[..]);
}

#[test]
fn arp_request_known_answer() {
    let Ok(Frame::Arp { ethernet, arp }) = Frame::parse(&ARP_REQUEST) else {
        panic!("not read as ARP");
    };
    assert_eq!(ethernet.dst_addr, EthernetAddress::BROADCAST);
    assert_eq!(arp.operation, ArpOperation::Request);
    assert_eq!(arp.target_protocol_addr, SERVICE_V4);

    let answer = answer_bytes(&ARP_REQUEST, OUR_MAC, owns_service).unwrap();
    assert_eq!(answer.kind, AnswerKind::ArpReply);
    assert_eq!(answer.address, IpAddr::V4(SERVICE_V4));
    assert_eq!(answer.frame.as_bytes(), &ARP_REPLY[..]);
}

#[test]
fn arp_probe_known_answer() {
    // RFC 5227 probe: sender protocol address 0.0.0.0.
    let mut probe = ARP_REQUEST;
    probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
    let answer = answer_bytes(&probe, OUR_MAC, owns_service).unwrap();
    // The reply goes to the prober's MAC with target protocol address 0.0.0.0.
    let mut expected = ARP_REPLY;
    expected[38..42].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(answer.frame.as_bytes(), &expected[..]);
}

#[test]
fn gratuitous_arp_known_answers() {
    #[rustfmt::skip]
    let request: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,         // destination: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x99,         // source: our interface
        0x08, 0x06,                                 // EtherType: ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04,         // Ethernet/IPv4
        0x00, 0x01,                                 // operation: request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x99,         // sender hardware address: ours
        192, 0, 2, 10,                              // sender protocol address: the service
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,         // target hardware address: zero (RFC 5227)
        192, 0, 2, 10,                              // target protocol address: the service
    ];
    assert_eq!(
        l2::gratuitous_arp_request(OUR_MAC, SERVICE_V4).as_bytes(),
        &request[..]
    );

    let mut reply = request;
    reply[21] = 0x02; // operation: reply
    reply[32..38].copy_from_slice(&OUR_MAC.0); // target hardware address: ours (RFC 5944)
    assert_eq!(
        l2::gratuitous_arp_reply(OUR_MAC, SERVICE_V4).as_bytes(),
        &reply[..]
    );

    for frame in [request.as_slice(), reply.as_slice()] {
        let Ok(Frame::Arp { arp, .. }) = Frame::parse(frame) else {
            panic!("not ARP");
        };
        assert!(arp.is_announcement());
        assert!(!arp.is_probe());
    }
}

#[test]
fn tagged_solicitation_is_answered_on_the_same_vlan() {
    // Insert an 802.1Q tag (PCP 3, VID 42) after the source MAC.
    let mut tagged = NS_ADDRESS_RESOLUTION[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x60, 0x2a]);
    tagged.extend_from_slice(&NS_ADDRESS_RESOLUTION[12..]);
    let answer = answer_bytes(&tagged, OUR_MAC, owns_service).unwrap();

    let mut expected = NA_SOLICITED[..12].to_vec();
    expected.extend_from_slice(&[0x81, 0x00, 0x60, 0x2a]);
    expected.extend_from_slice(&NA_SOLICITED[12..]);
    assert_eq!(answer.frame.as_bytes(), &expected[..]);

    let frame = Frame::parse(&answer.frame).unwrap();
    assert_eq!(
        frame.ethernet().vlan_tags,
        VlanTags::Single(VlanTag {
            tpid: EtherType::CUSTOMER_VLAN,
            tci: 0x602a
        })
    );
}

#[test]
fn double_tagged_arp_is_answered_with_both_tags() {
    let mut tagged = ARP_REQUEST[..12].to_vec();
    tagged.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14]);
    tagged.extend_from_slice(&ARP_REQUEST[12..]);
    let answer = answer_bytes(&tagged, OUR_MAC, owns_service).unwrap();
    let mut expected = ARP_REPLY[..12].to_vec();
    expected.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14]);
    expected.extend_from_slice(&ARP_REPLY[12..]);
    assert_eq!(answer.frame.as_bytes(), &expected[..]);
}

#[test]
fn nothing_for_an_address_not_owned() {
    let owns_nothing = |_| false;
    assert_eq!(
        answer_bytes(&NS_ADDRESS_RESOLUTION, OUR_MAC, owns_nothing),
        Err(NoAnswer::NotOwned(IpAddr::V6(SERVICE_V6)))
    );
    assert_eq!(
        answer_bytes(&ARP_REQUEST, OUR_MAC, owns_nothing),
        Err(NoAnswer::NotOwned(IpAddr::V4(SERVICE_V4)))
    );
    assert_eq!(
        answer_bytes(&NS_DAD, OUR_MAC, owns_nothing),
        Err(NoAnswer::NotOwned(IpAddr::V6(SERVICE_V6)))
    );
}

#[test]
fn our_own_answers_are_not_answered() {
    for frame in [&NA_SOLICITED[..], &NA_TO_ALL_NODES[..], &ARP_REPLY[..]] {
        assert_eq!(
            answer_bytes(frame, OUR_MAC, owns_service),
            Err(NoAnswer::OwnFrame)
        );
    }
    // Nor are other hosts' advertisements and replies.
    let other_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x55]);
    for frame in [&NA_SOLICITED[..], &NA_TO_ALL_NODES[..], &ARP_REPLY[..]] {
        assert_eq!(
            answer_bytes(frame, other_mac, owns_service),
            Err(NoAnswer::NotAQuestion)
        );
    }
}

#[test]
fn parsed_frame_and_bytes_agree() {
    let frame = Frame::parse(&ARP_REQUEST).unwrap();
    assert_eq!(
        answer(&frame, OUR_MAC, owns_service),
        answer_bytes(&ARP_REQUEST, OUR_MAC, owns_service)
    );
    let Frame::Arp { arp, .. } = frame else {
        unreachable!()
    };
    assert_eq!(
        arp,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_hardware_addr: CLIENT_MAC,
            sender_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: SERVICE_V4,
        }
    );
}

#[test]
fn the_question_builders_write_what_clients_send() {
    let ns = l2::neighbor_solicitation(CLIENT_MAC, CLIENT_V6, SERVICE_V6, 255);
    assert_eq!(ns.as_bytes(), &NS_ADDRESS_RESOLUTION[..]);
    let arp = l2::arp_request(
        l2::wire::VlanTags::Untagged,
        CLIENT_MAC,
        Ipv4Addr::new(192, 0, 2, 1),
        SERVICE_V4,
    );
    // The captured request carries the padding a NIC adds to reach 60 octets.
    assert_eq!(arp.as_bytes(), &ARP_REQUEST[..42]);
    // A hop limit other than 255 makes a solicitation RFC 4861 §7.1.1 says to drop.
    let bad = l2::neighbor_solicitation(CLIENT_MAC, CLIENT_V6, SERVICE_V6, 64);
    assert!(answer_bytes(bad.as_bytes(), OUR_MAC, owns_service).is_err());
}
