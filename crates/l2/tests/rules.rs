//! Every answering rule and every drop reason, each from a frame built byte by byte.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{ArpBuilder, CLIENT_MAC, NdBuilder, OUR_MAC, sllao};
use l2::frame::Frame;
use l2::wire::{
    ALL_NODES, ArpOperation, EthernetAddress, NdiscRepr, NeighborFlags, NeighborMessage,
    multicast_ethernet_addr,
};
use l2::{Answer, AnswerKind, DropReason, NoAnswer, answer_bytes};

const OWNED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa);
const OTHER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xb);
const OWNED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const MAC: EthernetAddress = EthernetAddress(OUR_MAC);

fn owns(ip: IpAddr) -> bool {
    ip == IpAddr::V6(OWNED_V6) || ip == IpAddr::V4(OWNED_V4)
}

fn ask(frame: &[u8]) -> Result<Answer, NoAnswer> {
    answer_bytes(frame, MAC, owns)
}

/// The advertisement in an answer: Ethernet destination, IPv6 source/destination/hop limit,
/// and the message.
fn advertisement(answer: &Answer) -> (EthernetAddress, Ipv6Addr, Ipv6Addr, u8, NdiscRepr) {
    let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(&answer.frame) else {
        panic!("answer is not an advertisement: {:?}", answer.frame);
    };
    assert!(
        nd.icmpv6
            .verify_checksum(nd.ipv6.src_addr, nd.ipv6.dst_addr),
        "checksum"
    );
    assert_eq!(nd.icmpv6.msg_code(), 0);
    assert_eq!(nd.ethernet.src_addr, MAC);
    let message = NeighborMessage::new_checked(nd.icmpv6.message()).unwrap();
    (
        nd.ethernet.dst_addr,
        nd.ipv6.src_addr,
        nd.ipv6.dst_addr,
        nd.ipv6.hop_limit,
        NdiscRepr::parse(&message).unwrap(),
    )
}

fn solicited_advert() -> NdiscRepr {
    NdiscRepr::NeighborAdvertisement {
        flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
        target_addr: OWNED_V6,
        target_link_layer_addr: Some(MAC),
    }
}

#[test]
fn address_resolution_gets_solicited_advertisement_to_the_option_address() {
    // The option names a different MAC than the frame source: the option wins.
    let requester = [0x02, 0, 0, 0, 0, 0x42];
    let ns = NdBuilder {
        options: sllao(requester),
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    let answer = ask(&ns.build()).unwrap();
    assert_eq!(answer.kind, AnswerKind::NeighborAdvertisement);
    assert_eq!(answer.address, IpAddr::V6(OWNED_V6));
    let (eth_dst, src, dst, hop_limit, message) = advertisement(&answer);
    assert_eq!(eth_dst, EthernetAddress(requester));
    assert_eq!((src, dst, hop_limit), (OWNED_V6, ns.ip_src, 255));
    assert_eq!(message, solicited_advert());
}

#[test]
fn nud_without_option_is_answered_to_the_frame_source() {
    let ns = NdBuilder::nud(OWNED_V6);
    let answer = ask(&ns.build()).unwrap();
    assert_eq!(answer.kind, AnswerKind::NeighborAdvertisement);
    let (eth_dst, src, dst, hop_limit, message) = advertisement(&answer);
    assert_eq!(eth_dst, EthernetAddress(CLIENT_MAC));
    assert_eq!((src, dst, hop_limit), (OWNED_V6, ns.ip_src, 255));
    assert_eq!(message, solicited_advert());
}

#[test]
fn nud_with_option_is_answered() {
    let ns = NdBuilder {
        options: sllao(CLIENT_MAC),
        ..NdBuilder::nud(OWNED_V6)
    };
    let (eth_dst, .., message) = advertisement(&ask(&ns.build()).unwrap());
    assert_eq!(eth_dst, EthernetAddress(CLIENT_MAC));
    assert_eq!(message, solicited_advert());
}

#[test]
fn link_local_solicitor_is_answered() {
    let ns = NdBuilder {
        ip_src: "fe80::1".parse().unwrap(),
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    let (_, _, dst, ..) = advertisement(&ask(&ns.build()).unwrap());
    assert_eq!(dst, "fe80::1".parse::<Ipv6Addr>().unwrap());
}

#[test]
fn dad_probe_gets_override_advertisement_to_all_nodes() {
    let answer = ask(&NdBuilder::dad(OWNED_V6).build()).unwrap();
    assert_eq!(answer.kind, AnswerKind::DadDefense);
    let (eth_dst, src, dst, hop_limit, message) = advertisement(&answer);
    assert_eq!(eth_dst, multicast_ethernet_addr(ALL_NODES));
    assert_eq!(eth_dst, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!((src, dst, hop_limit), (OWNED_V6, ALL_NODES, 255));
    assert_eq!(
        message,
        NdiscRepr::NeighborAdvertisement {
            flags: NeighborFlags::OVERRIDE,
            target_addr: OWNED_V6,
            target_link_layer_addr: Some(MAC),
        }
    );
}

#[test]
fn unknown_options_are_skipped_and_the_first_link_layer_option_counts() {
    let mut options = vec![14, 1, 1, 2, 3, 4, 5, 6]; // a nonce option (RFC 3971), one unit
    options.extend_from_slice(&[200, 2]); // an unknown option of two units
    options.extend_from_slice(&[0; 14]);
    options.extend(sllao([0x02, 0, 0, 0, 0, 0x42]));
    options.extend(sllao([0x02, 0, 0, 0, 0, 0x43])); // a repeat, ignored
    let ns = NdBuilder {
        options,
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    let (eth_dst, ..) = advertisement(&ask(&ns.build()).unwrap());
    assert_eq!(eth_dst, EthernetAddress([0x02, 0, 0, 0, 0, 0x42]));
}

#[test]
fn ethernet_padding_after_the_packet_is_ignored() {
    let ns = NdBuilder {
        trailer: vec![0; 10],
        ..NdBuilder::dad(OWNED_V6)
    };
    assert!(ask(&ns.build()).is_ok());
}

#[test]
fn solicitations_for_addresses_not_owned_are_not_answered() {
    for ns in [
        NdBuilder::address_resolution(OTHER_V6),
        NdBuilder::nud(OTHER_V6),
        NdBuilder::dad(OTHER_V6),
    ] {
        assert_eq!(
            ask(&ns.build()),
            Err(NoAnswer::NotOwned(IpAddr::V6(OTHER_V6)))
        );
    }
}

#[test]
fn frames_from_our_own_mac_are_not_answered() {
    let ns = NdBuilder {
        eth_src: OUR_MAC,
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    assert_eq!(ask(&ns.build()), Err(NoAnswer::OwnFrame));
    let arp = ArpBuilder {
        eth_src: OUR_MAC,
        ..ArpBuilder::request(OWNED_V4)
    };
    assert_eq!(ask(&arp.build()), Err(NoAnswer::OwnFrame));
    // Solicitations and ARP requests naming our MAC as the sender, relayed from elsewhere.
    let ns = NdBuilder {
        options: sllao(OUR_MAC),
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    assert_eq!(ask(&ns.build()), Err(NoAnswer::OwnFrame));
    let arp = ArpBuilder {
        sha: OUR_MAC,
        ..ArpBuilder::request(OWNED_V4)
    };
    assert_eq!(ask(&arp.build()), Err(NoAnswer::OwnFrame));
}

#[test]
fn advertisements_and_other_icmpv6_are_not_questions() {
    let na = NdBuilder {
        msg_type: 136,
        reserved: [0x20, 0, 0, 0],
        options: common::tllao(CLIENT_MAC),
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    assert_eq!(ask(&na.build()), Err(NoAnswer::NotAQuestion));
    let echo = NdBuilder {
        msg_type: 128,
        ..NdBuilder::nud(OWNED_V6)
    };
    assert_eq!(ask(&echo.build()), Err(NoAnswer::NotAQuestion));
    // An NS behind a hop-by-hop header is not read as one (RFC 4861 accepts none such).
    let hop_by_hop = NdBuilder {
        next_header: 0,
        ..NdBuilder::address_resolution(OWNED_V6)
    };
    assert_eq!(ask(&hop_by_hop.build()), Err(NoAnswer::NotAQuestion));
    // IPv4 and anything else.
    let mut ipv4 = common::ethernet_header(OUR_MAC, CLIENT_MAC, &vec![], 0x0800);
    ipv4.extend_from_slice(&[0x45; 20]);
    assert_eq!(ask(&ipv4), Err(NoAnswer::NotAQuestion));
}

#[test]
fn arp_request_and_probe_get_replies() {
    for spa in [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::UNSPECIFIED] {
        let request = ArpBuilder {
            spa,
            ..ArpBuilder::request(OWNED_V4)
        };
        let answer = ask(&request.build()).unwrap();
        assert_eq!(answer.kind, AnswerKind::ArpReply);
        assert_eq!(answer.address, IpAddr::V4(OWNED_V4));
        let Ok(Frame::Arp { ethernet, arp }) = Frame::parse(&answer.frame) else {
            panic!("not ARP");
        };
        assert_eq!(
            (ethernet.dst_addr, ethernet.src_addr),
            (EthernetAddress(CLIENT_MAC), MAC)
        );
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!(
            (arp.sender_hardware_addr, arp.sender_protocol_addr),
            (MAC, OWNED_V4)
        );
        assert_eq!(
            (arp.target_hardware_addr, arp.target_protocol_addr),
            (EthernetAddress(CLIENT_MAC), spa)
        );
    }
}

#[test]
fn arp_reply_goes_to_the_sender_hardware_address() {
    let request = ArpBuilder {
        sha: [0x02, 0, 0, 0, 0, 0x42],
        ..ArpBuilder::request(OWNED_V4)
    };
    let Ok(Frame::Arp { ethernet, .. }) = Frame::parse(&ask(&request.build()).unwrap().frame)
    else {
        panic!("not ARP");
    };
    assert_eq!(ethernet.dst_addr, EthernetAddress([0x02, 0, 0, 0, 0, 0x42]));
}

#[test]
fn arp_for_addresses_not_owned_and_arp_replies_are_not_answered() {
    assert_eq!(
        ask(&ArpBuilder::request(OTHER_V4).build()),
        Err(NoAnswer::NotOwned(IpAddr::V4(OTHER_V4)))
    );
    for operation in [2, 3, 0] {
        let frame = ArpBuilder {
            operation,
            ..ArpBuilder::request(OWNED_V4)
        };
        assert_eq!(
            ask(&frame.build()),
            Err(NoAnswer::NotAQuestion),
            "op {operation}"
        );
    }
}

/// One frame for every drop reason, each breaking exactly one rule of an otherwise valid
/// question for an owned address.
fn drop_cases() -> Vec<(&'static str, Vec<u8>, DropReason)> {
    let ns = || NdBuilder::address_resolution(OWNED_V6);
    let mut cases = vec![
        (
            "hop limit 64",
            NdBuilder {
                hop_limit: 64,
                ..ns()
            }
            .build(),
            DropReason::HopLimit,
        ),
        (
            "hop limit 254",
            NdBuilder {
                hop_limit: 254,
                ..NdBuilder::dad(OWNED_V6)
            }
            .build(),
            DropReason::HopLimit,
        ),
        (
            "checksum off by one",
            NdBuilder {
                checksum_error: 1,
                ..ns()
            }
            .build(),
            DropReason::BadChecksum,
        ),
        (
            "code 1",
            NdBuilder { code: 1, ..ns() }.build(),
            DropReason::IcmpCode,
        ),
        (
            "ICMP length 23",
            NdBuilder {
                icmp_len: Some(23),
                options: vec![],
                ..ns()
            }
            .build(),
            DropReason::Short,
        ),
        (
            "ICMP length 3",
            NdBuilder {
                icmp_len: Some(3),
                ..ns()
            }
            .build(),
            DropReason::Short,
        ),
        (
            "IPv6 payload length past the frame",
            NdBuilder {
                payload_len: Some(33),
                ..ns()
            }
            .build(),
            DropReason::Short,
        ),
        (
            "IPv6 header cut",
            ns().build()[..40].to_vec(),
            DropReason::Short,
        ),
        (
            "option past the end",
            NdBuilder {
                options: vec![1, 2, 0, 0, 0, 0, 0, 0],
                ..ns()
            }
            .build(),
            DropReason::Short,
        ),
        (
            "IP version 4 under IPv6 EtherType",
            NdBuilder {
                ip_version: 4,
                ..ns()
            }
            .build(),
            DropReason::Malformed,
        ),
        (
            "multicast target",
            NdBuilder {
                target: "ff02::1".parse().unwrap(),
                ..ns()
            }
            .build(),
            DropReason::MulticastTarget,
        ),
        (
            "multicast source",
            NdBuilder {
                ip_src: "ff02::2".parse().unwrap(),
                ..ns()
            }
            .build(),
            DropReason::MulticastSource,
        ),
        (
            "option length 0",
            NdBuilder {
                options: vec![1, 0, 0, 0, 0, 0, 0, 0],
                ..ns()
            }
            .build(),
            DropReason::OptionLengthZero,
        ),
        (
            "unknown option length 0 after a good one",
            NdBuilder {
                options: [sllao(CLIENT_MAC), vec![99, 0, 0, 0, 0, 0, 0, 0]].concat(),
                ..ns()
            }
            .build(),
            DropReason::OptionLengthZero,
        ),
        (
            "SLLA option of 2 units",
            NdBuilder {
                options: vec![1, 2, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                ..ns()
            }
            .build(),
            DropReason::BadLinkLayerOption,
        ),
        (
            "DAD with SLLA option",
            NdBuilder {
                options: sllao(CLIENT_MAC),
                ..NdBuilder::dad(OWNED_V6)
            }
            .build(),
            DropReason::UnspecifiedSourceWithSllao,
        ),
        (
            "DAD to the target itself",
            NdBuilder {
                ip_dst: OWNED_V6,
                ..NdBuilder::dad(OWNED_V6)
            }
            .build(),
            DropReason::DadNotToSolicitedNode,
        ),
        (
            "DAD to all nodes",
            NdBuilder {
                ip_dst: ALL_NODES,
                ..NdBuilder::dad(OWNED_V6)
            }
            .build(),
            DropReason::DadNotToSolicitedNode,
        ),
        (
            "NUD from a multicast MAC without option",
            NdBuilder {
                eth_src: [0x33, 0x33, 0, 0, 0, 1],
                ..NdBuilder::nud(OWNED_V6)
            }
            .build(),
            DropReason::SenderNotUnicast,
        ),
        (
            "SLLA option with a group MAC",
            NdBuilder {
                options: sllao([0xff; 6]),
                ..ns()
            }
            .build(),
            DropReason::SenderNotUnicast,
        ),
        (
            "ARP with a broadcast sender",
            ArpBuilder {
                sha: [0xff; 6],
                ..ArpBuilder::request(OWNED_V4)
            }
            .build(),
            DropReason::SenderNotUnicast,
        ),
        (
            "ARP with a zero sender",
            ArpBuilder {
                sha: [0; 6],
                ..ArpBuilder::request(OWNED_V4)
            }
            .build(),
            DropReason::SenderNotUnicast,
        ),
        (
            "ARP for IEEE 802 hardware",
            ArpBuilder {
                hardware_type: 6,
                ..ArpBuilder::request(OWNED_V4)
            }
            .build(),
            DropReason::ArpNotEthernetIpv4,
        ),
        (
            "ARP for another protocol",
            ArpBuilder {
                protocol_type: 0x86dd,
                ..ArpBuilder::request(OWNED_V4)
            }
            .build(),
            DropReason::ArpNotEthernetIpv4,
        ),
        (
            "ARP cut short",
            ArpBuilder::request(OWNED_V4).build()[..40].to_vec(),
            DropReason::Short,
        ),
        ("Ethernet header cut", vec![0xff; 13], DropReason::Short),
        (
            "VLAN tag without EtherType",
            common::ethernet_header([0xff; 6], CLIENT_MAC, &vec![], 0x8100),
            DropReason::Short,
        ),
    ];
    // The same breakages arrive behind a VLAN tag.
    let tagged = NdBuilder {
        hop_limit: 1,
        tags: vec![(0x8100, 7)],
        ..ns()
    }
    .build();
    cases.push(("tagged, hop limit 1", tagged, DropReason::HopLimit));
    cases
}

#[test]
fn every_drop_reason() {
    let mut seen = BTreeSet::new();
    for (name, frame, reason) in drop_cases() {
        assert_eq!(ask(&frame), Err(NoAnswer::Dropped(reason)), "{name}");
        seen.insert(reason);
    }
    let all: BTreeSet<_> = DropReason::ALL.into_iter().collect();
    assert_eq!(seen, all, "a drop reason without a test");
}

#[test]
fn drop_reason_labels_are_distinct_snake_case() {
    let labels: BTreeSet<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), DropReason::ALL.len());
    for label in labels {
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{label}"
        );
    }
    assert_eq!(DropReason::HopLimit.to_string(), "hop_limit");
}

#[test]
fn validation_comes_before_ownership() {
    // An invalid solicitation is dropped for its reason whoever the target is, so the drop
    // counters see every invalid one that reaches us.
    let ns = NdBuilder {
        hop_limit: 64,
        ..NdBuilder::address_resolution(OTHER_V6)
    };
    assert_eq!(
        ask(&ns.build()),
        Err(NoAnswer::Dropped(DropReason::HopLimit))
    );
}

#[test]
fn announcements_read_back() {
    let na = l2::unsolicited_neighbor_advertisement(MAC, OWNED_V6);
    let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(&na) else {
        panic!("not an advertisement");
    };
    assert_eq!(nd.ipv6.hop_limit, 255);
    assert_eq!(nd.ipv6.dst_addr, ALL_NODES);
    assert!(nd.icmpv6.verify_checksum(OWNED_V6, ALL_NODES));
    let message = NeighborMessage::new_checked(nd.icmpv6.message()).unwrap();
    let NdiscRepr::NeighborAdvertisement { flags, .. } = NdiscRepr::parse(&message).unwrap() else {
        panic!("not an advertisement");
    };
    assert!(flags.contains(NeighborFlags::OVERRIDE));
    assert!(!flags.contains(NeighborFlags::SOLICITED));
    assert!(!flags.contains(NeighborFlags::ROUTER));
}
