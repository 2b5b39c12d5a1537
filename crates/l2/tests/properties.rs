//! Property tests: every Repr round-trips through its view, no input makes a parser or the
//! answering logic panic, and answers to random valid questions keep the rules.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use l2::frame::Frame;
use l2::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv6Packet, IpProtocol, Ipv6Packet, Ipv6Repr, NdOption, NdOptionRepr, NdOptionType,
    NdOptions, NdiscRepr, NeighborFlags, NeighborMessage, VlanTag, VlanTags,
    is_solicited_node_multicast, solicited_node_multicast, solicited_node_multicast_ethernet_addr,
};
use l2::{AnswerKind, NoAnswer, answer_bytes, validate_neighbor_solicitation};
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn unicast_mac() -> impl Strategy<Value = EthernetAddress> {
    mac().prop_filter("unicast", |m| m.is_unicast())
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    ipv6().prop_filter("unicast", |a| !a.is_multicast() && !a.is_unspecified())
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn vlan_tag() -> impl Strategy<Value = VlanTag> {
    (
        prop_oneof![
            Just(EtherType::CUSTOMER_VLAN),
            Just(EtherType::SERVICE_VLAN)
        ],
        any::<u16>(),
    )
        .prop_map(|(tpid, tci)| VlanTag { tpid, tci })
}

fn vlan_tags() -> impl Strategy<Value = VlanTags> {
    prop_oneof![
        Just(VlanTags::Untagged),
        vlan_tag().prop_map(VlanTags::Single),
        (vlan_tag(), vlan_tag()).prop_map(|(outer, inner)| VlanTags::Double { outer, inner }),
    ]
}

fn ethernet_repr() -> impl Strategy<Value = EthernetRepr> {
    (mac(), mac(), vlan_tags(), any::<u16>())
        // Only after two tags can the EtherType be a TPID; otherwise it reads as another tag.
        .prop_filter("EtherType that reads back", |(_, _, tags, ethertype)| {
            tags.count() == 2 || !EtherType(*ethertype).is_vlan_tpid()
        })
        .prop_map(|(dst_addr, src_addr, vlan_tags, ethertype)| EthernetRepr {
            dst_addr,
            src_addr,
            vlan_tags,
            ethertype: EtherType(ethertype),
        })
}

fn arp_repr() -> impl Strategy<Value = ArpRepr> {
    (any::<u16>(), mac(), ipv4(), mac(), ipv4()).prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
        operation: ArpOperation::from(op),
        sender_hardware_addr: sha,
        sender_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    })
}

fn ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    (ipv6(), ipv6(), any::<u8>(), 0u16..200, any::<u8>()).prop_map(
        |(src_addr, dst_addr, next_header, payload_len, hop_limit)| Ipv6Repr {
            src_addr,
            dst_addr,
            next_header: IpProtocol(next_header),
            payload_len,
            hop_limit,
        },
    )
}

fn ndisc_repr() -> impl Strategy<Value = NdiscRepr> {
    prop_oneof![
        (ipv6(), proptest::option::of(mac())).prop_map(|(target_addr, source)| {
            NdiscRepr::NeighborSolicitation {
                target_addr,
                source_link_layer_addr: source,
            }
        }),
        (0u8..8, ipv6(), proptest::option::of(mac())).prop_map(|(bits, target_addr, target)| {
            NdiscRepr::NeighborAdvertisement {
                flags: NeighborFlags::from_bits_truncate(bits << 5),
                target_addr,
                target_link_layer_addr: target,
            }
        }),
    ]
}

/// Bytes that are mostly a plausible frame: a valid question with some bytes overwritten, or
/// a prefix of one.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(common::NdBuilder::address_resolution("2001:db8::a".parse().unwrap()).build()),
        Just(common::NdBuilder::dad("2001:db8::a".parse().unwrap()).build()),
        Just(common::NdBuilder::nud("2001:db8::a".parse().unwrap()).build()),
        Just(common::ArpBuilder::request(Ipv4Addr::new(192, 0, 2, 10)).build()),
    ];
    (
        base,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, edits, cut, truncate)| {
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

/// Reads everything every view offers, to reach any accessor that could index out of bounds.
fn read_all_views(bytes: &[u8]) {
    if let Ok(frame) = EthernetFrame::new_checked(bytes) {
        let _ = (
            frame.dst_addr(),
            frame.src_addr(),
            frame.vlan_tags(),
            frame.ethertype(),
        );
        let _ = frame.payload().len();
        let _ = EthernetRepr::parse(&frame);
    }
    if let Ok(packet) = ArpPacket::new_checked(bytes) {
        let _ = (
            packet.hardware_type(),
            packet.protocol_type(),
            packet.operation(),
        );
        let _ = (packet.sender_hardware_addr(), packet.sender_protocol_addr());
        let _ = (packet.target_hardware_addr(), packet.target_protocol_addr());
        let _ = ArpRepr::parse(&packet);
    }
    if let Ok(packet) = Ipv6Packet::new_checked(bytes) {
        let _ = (
            packet.version(),
            packet.traffic_class(),
            packet.flow_label(),
        );
        let _ = (
            packet.next_header(),
            packet.hop_limit(),
            packet.src_addr(),
            packet.dst_addr(),
        );
        let _ = packet.payload().len();
        let _ = Ipv6Repr::parse(&packet);
    }
    if let Ok(packet) = Icmpv6Packet::new_checked(bytes) {
        let _ = (packet.msg_type(), packet.msg_code(), packet.checksum());
        let _ = packet.verify_checksum(Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
    }
    if let Ok(message) = NeighborMessage::new_checked(bytes) {
        let _ = (
            message.flags(),
            message.target_addr(),
            message.options().len(),
        );
        let _ = message.option_iter().count();
        let _ = NdiscRepr::parse(&message);
    }
    if let Ok(option) = NdOption::new_checked(bytes) {
        let _ = (option.option_type(), option.data().len());
        let _ = NdOptionRepr::parse(&option);
    }
    // Options iteration ends, and after an error yields nothing more.
    let mut options = NdOptions::new(bytes);
    let mut steps = 0;
    while let Some(item) = options.next() {
        steps += 1;
        assert!(
            steps <= bytes.len() / 8 + 1,
            "option iteration does not advance"
        );
        if item.is_err() {
            assert!(options.next().is_none());
            break;
        }
    }
}

fn check_frame(bytes: &[u8]) {
    read_all_views(bytes);
    let mac = EthernetAddress([2, 0, 0, 0, 0, 0x99]);
    for owns in [true, false] {
        match answer_bytes(bytes, mac, |_| owns) {
            // Whatever we send must itself read back as what we meant to send.
            Ok(answer) => {
                assert!(owns);
                let reply = Frame::parse(&answer.frame).expect("answer reads back");
                assert_eq!(reply.ethernet().src_addr, mac);
                match (answer.kind, reply) {
                    (AnswerKind::ArpReply, Frame::Arp { arp, .. }) => {
                        assert_eq!(arp.operation, ArpOperation::Reply);
                        assert_eq!(IpAddr::V4(arp.sender_protocol_addr), answer.address);
                    }
                    (
                        AnswerKind::NeighborAdvertisement | AnswerKind::DadDefense,
                        Frame::NeighborAdvertisement(nd),
                    ) => {
                        assert_eq!(nd.ipv6.hop_limit, 255);
                        assert!(
                            nd.icmpv6
                                .verify_checksum(nd.ipv6.src_addr, nd.ipv6.dst_addr)
                        );
                    }
                    (kind, reply) => panic!("{kind:?} answered with {reply:?}"),
                }
            }
            Err(NoAnswer::NotOwned(_)) => assert!(!owns),
            Err(_) => {}
        }
    }
    if let Ok(Frame::NeighborSolicitation(nd)) = Frame::parse(bytes) {
        let _ = validate_neighbor_solicitation(&nd);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        check_frame(&bytes);
    }

    #[test]
    fn mutated_questions_never_panic(bytes in mutated_frame()) {
        check_frame(&bytes);
    }

    #[test]
    fn ethernet_round_trip(repr in ethernet_repr(), payload in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = vec![0; repr.header_len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        bytes.extend_from_slice(&payload);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
        prop_assert_eq!(frame.payload(), &payload[..]);
    }

    #[test]
    fn arp_round_trip(repr in arp_repr()) {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()).unwrap(), repr);
    }

    #[test]
    fn ipv6_round_trip(repr in ipv6_repr()) {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]));
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&packet).unwrap(), repr);
        prop_assert_eq!(packet.payload().len(), usize::from(repr.payload_len));
    }

    #[test]
    fn ndisc_round_trip(repr in ndisc_repr(), src in ipv6(), dst in ipv6()) {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut NeighborMessage::new_unchecked(&mut bytes[..]));
        Icmpv6Packet::new_unchecked(&mut bytes[..]).fill_checksum(src, dst);
        prop_assert!(Icmpv6Packet::new_checked(&bytes[..]).unwrap().verify_checksum(src, dst));
        let message = NeighborMessage::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(NdiscRepr::parse(&message).unwrap(), repr);
    }

    #[test]
    fn nd_option_round_trip(
        option_type in 3u8..=255,
        units in 1usize..4,
        data in proptest::collection::vec(any::<u8>(), 30),
        lladdr in mac(),
        kind in 0..3,
    ) {
        let data = &data[..units * 8 - 2];
        let repr = match kind {
            0 => NdOptionRepr::SourceLinkLayerAddr(lladdr),
            1 => NdOptionRepr::TargetLinkLayerAddr(lladdr),
            _ => NdOptionRepr::Unknown { option_type: NdOptionType(option_type), data },
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut bytes);
        prop_assert_eq!(bytes.len() % 8, 0);
        let option = NdOption::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(NdOptionRepr::parse(&option).unwrap(), repr);
    }

    #[test]
    fn valid_solicitations_for_owned_addresses_are_answered(
        target in unicast_ipv6(),
        solicitor in unicast_ipv6(),
        client_mac in unicast_mac(),
        our_mac in unicast_mac(),
        with_option in any::<bool>(),
        dad in any::<bool>(),
        tag in proptest::option::of(any::<u16>()),
    ) {
        prop_assume!(client_mac != our_mac);
        let mut ns = common::NdBuilder::address_resolution(target);
        ns.eth_src = client_mac.0;
        ns.ip_src = if dad { Ipv6Addr::UNSPECIFIED } else { solicitor };
        ns.options = if with_option && !dad { common::sllao(client_mac.0) } else { vec![] };
        ns.tags = tag.map(|tci| vec![(0x8100, tci)]).unwrap_or_default();
        let answer = answer_bytes(&ns.build(), our_mac, |ip| ip == IpAddr::V6(target)).unwrap();
        let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(&answer.frame) else {
            panic!("not an advertisement");
        };
        prop_assert_eq!(nd.ethernet.vlan_tags.count(), usize::from(tag.is_some()));
        prop_assert_eq!(nd.ipv6.src_addr, target);
        prop_assert!(nd.icmpv6.verify_checksum(nd.ipv6.src_addr, nd.ipv6.dst_addr));
        let message = NeighborMessage::new_checked(nd.icmpv6.message()).unwrap();
        let NdiscRepr::NeighborAdvertisement { flags, target_addr, target_link_layer_addr } =
            NdiscRepr::parse(&message).unwrap() else { panic!("not an advertisement") };
        prop_assert_eq!(target_addr, target);
        prop_assert_eq!(target_link_layer_addr, Some(our_mac));
        prop_assert!(flags.contains(NeighborFlags::OVERRIDE));
        prop_assert!(!flags.contains(NeighborFlags::ROUTER));
        prop_assert_eq!(flags.contains(NeighborFlags::SOLICITED), !dad);
        if dad {
            prop_assert_eq!(nd.ipv6.dst_addr, l2::wire::ALL_NODES);
        } else {
            prop_assert_eq!(nd.ipv6.dst_addr, solicitor);
            prop_assert_eq!(nd.ethernet.dst_addr, client_mac);
        }
    }

    #[test]
    fn arp_requests_for_owned_addresses_are_answered(
        tpa in ipv4(),
        spa in ipv4(),
        client_mac in unicast_mac(),
        our_mac in unicast_mac(),
    ) {
        prop_assume!(client_mac != our_mac);
        let request = common::ArpBuilder {
            eth_src: client_mac.0,
            sha: client_mac.0,
            spa,
            ..common::ArpBuilder::request(tpa)
        };
        let answer = answer_bytes(&request.build(), our_mac, |ip| ip == IpAddr::V4(tpa)).unwrap();
        let Ok(Frame::Arp { ethernet, arp }) = Frame::parse(&answer.frame) else {
            panic!("not ARP");
        };
        prop_assert_eq!(ethernet.dst_addr, client_mac);
        prop_assert_eq!(arp, ArpRepr {
            operation: ArpOperation::Reply,
            sender_hardware_addr: our_mac,
            sender_protocol_addr: tpa,
            target_hardware_addr: client_mac,
            target_protocol_addr: spa,
        });
    }

    #[test]
    fn announcements_read_back(mac in unicast_mac(), v4 in ipv4(), v6 in unicast_ipv6()) {
        for frame in [l2::gratuitous_arp_request(mac, v4), l2::gratuitous_arp_reply(mac, v4)] {
            let Ok(Frame::Arp { ethernet, arp }) = Frame::parse(&frame) else { panic!("not ARP") };
            prop_assert!(ethernet.dst_addr.is_broadcast());
            prop_assert_eq!((arp.sender_hardware_addr, arp.sender_protocol_addr, arp.target_protocol_addr), (mac, v4, v4));
        }
        let frame = l2::unsolicited_neighbor_advertisement(mac, v6);
        let Ok(Frame::NeighborAdvertisement(nd)) = Frame::parse(&frame) else { panic!("not NA") };
        prop_assert!(nd.icmpv6.verify_checksum(v6, l2::wire::ALL_NODES));
    }

    #[test]
    fn solicited_node_mapping(addr in ipv6()) {
        let group = solicited_node_multicast(addr);
        prop_assert!(is_solicited_node_multicast(group));
        prop_assert!(group.is_multicast());
        prop_assert_eq!(&group.octets()[13..], &addr.octets()[13..]);
        let mac = solicited_node_multicast_ethernet_addr(addr);
        prop_assert_eq!(&mac.0[..3], &[0x33, 0x33, 0xff]);
        prop_assert_eq!(&mac.0[3..], &addr.octets()[13..]);
        prop_assert!(mac.is_multicast());
    }
}
