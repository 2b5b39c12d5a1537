//! The socket filter, run in a small classic BPF interpreter (only the instructions it uses),
//! must pass exactly the frames the Rust parser reads as ARP, NS or NA, and drop the rest.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use l2::bpf::{
    MAX_PROGRAM_LEN, NEIGHBOR_FILTER, SOCKET_FILTER, SockFilter, TooLarge, op, owned_target_filter,
};
use l2::frame::Frame;
use proptest::prelude::*;

/// Runs `program` over `packet` as the kernel would: a load past the end drops the packet.
fn run(program: &[SockFilter], packet: &[u8]) -> u32 {
    let mut accumulator: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = program.get(pc).expect("program counter ran off the end");
        pc += 1;
        let k = insn.k as usize;
        match insn.code {
            c if c == op::LD | op::H | op::ABS => match packet.get(k..k + 2) {
                Some(&[hi, lo]) => accumulator = u32::from(u16::from_be_bytes([hi, lo])),
                _ => return 0,
            },
            c if c == op::LD | op::B | op::ABS => match packet.get(k) {
                Some(&byte) => accumulator = u32::from(byte),
                None => return 0,
            },
            // SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT: these frames carry no offloaded tag.
            c if c == op::LD | op::W | op::ABS && insn.k == 0xffff_f030 => accumulator = 0,
            c if c == op::LD | op::W | op::ABS => match packet.get(k..k + 4) {
                Some(&[a, b, c, d]) => accumulator = u32::from_be_bytes([a, b, c, d]),
                _ => return 0,
            },
            c if c == op::JMP | op::JGT | op::K => {
                pc += usize::from(if accumulator > insn.k {
                    insn.jt
                } else {
                    insn.jf
                });
            }
            c if c == op::JMP | op::JA => pc += k,
            c if c == op::JMP | op::JEQ | op::K => {
                pc += usize::from(if accumulator == insn.k {
                    insn.jt
                } else {
                    insn.jf
                });
            }
            c if c == op::RET | op::K => return insn.k,
            other => panic!("instruction {other:#06x} not supported by this interpreter"),
        }
    }
}

fn accepts(packet: &[u8]) -> bool {
    run(&NEIGHBOR_FILTER, packet) != 0
}

/// What the parser makes of a frame, for comparison with the filter.
#[derive(Debug, PartialEq)]
enum Class {
    /// ARP, NS or NA.
    Neighbor {
        tags: usize,
    },
    /// A frame that claims ARP/IPv6 but is malformed: the filter may pass it (then it is counted
    /// as a drop) or not.
    Malformed,
    Other,
}

fn classify(packet: &[u8]) -> Class {
    match Frame::parse(packet) {
        Ok(Frame::Other { .. }) => Class::Other,
        Ok(frame) => Class::Neighbor {
            tags: frame.ethernet().vlan_tags.count(),
        },
        Err(_) => Class::Malformed,
    }
}

fn check(packet: &[u8]) -> Result<(), TestCaseError> {
    let accepted = accepts(packet);
    match classify(packet) {
        Class::Neighbor { tags } if tags <= 1 => {
            prop_assert!(accepted, "filter drops a neighbor frame: {:02x?}", packet)
        }
        Class::Neighbor { .. } | Class::Malformed => {}
        Class::Other => prop_assert!(!accepted, "filter passes another frame: {:02x?}", packet),
    }
    Ok(())
}

#[test]
fn program_is_well_formed() {
    // The kernel's own checks (sk_chk_filter): at most BPF_MAXINSNS, jumps in range, ending in
    // a return.
    assert!(NEIGHBOR_FILTER.len() <= 4096);
    for (at, insn) in NEIGHBOR_FILTER.iter().enumerate() {
        if insn.code == op::JMP | op::JEQ | op::K {
            assert!(at + 1 + usize::from(insn.jt) < NEIGHBOR_FILTER.len());
            assert!(at + 1 + usize::from(insn.jf) < NEIGHBOR_FILTER.len());
        }
    }
    assert_eq!(NEIGHBOR_FILTER.last().unwrap().code, op::RET | op::K);
    // The layout the kernel expects of struct sock_filter.
    assert_eq!(std::mem::size_of::<SockFilter>(), 8);
}

#[test]
fn known_frames() {
    let v6 = "2001:db8::a".parse().unwrap();
    let v4 = std::net::Ipv4Addr::new(192, 0, 2, 10);
    let ns = common::NdBuilder::address_resolution(v6);
    let na = common::NdBuilder {
        msg_type: 136,
        ..common::NdBuilder::nud(v6)
    };
    let arp = common::ArpBuilder::request(v4);
    for tags in [vec![], vec![(0x8100, 5)], vec![(0x88a8, 5)]] {
        assert!(accepts(
            &common::NdBuilder {
                tags: tags.clone(),
                ..ns.clone()
            }
            .build()
        ));
        assert!(accepts(
            &common::NdBuilder {
                tags: tags.clone(),
                ..na.clone()
            }
            .build()
        ));
        assert!(accepts(
            &common::ArpBuilder {
                tags: tags.clone(),
                ..arp.clone()
            }
            .build()
        ));
        // Echo request, MLD report behind hop-by-hop, and IPv4 are dropped.
        assert!(!accepts(
            &common::NdBuilder {
                tags: tags.clone(),
                msg_type: 128,
                ..ns.clone()
            }
            .build()
        ));
        assert!(!accepts(
            &common::NdBuilder {
                tags: tags.clone(),
                next_header: 0,
                ..ns.clone()
            }
            .build()
        ));
        let mut ipv4 = common::ethernet_header([0xff; 6], common::CLIENT_MAC, &tags, 0x0800);
        ipv4.extend_from_slice(&[0; 46]);
        assert!(!accepts(&ipv4));
    }
    // Router solicitations and advertisements are not neighbor discovery's NS/NA.
    assert!(!accepts(
        &common::NdBuilder {
            msg_type: 133,
            ..ns.clone()
        }
        .build()
    ));
    assert!(!accepts(
        &common::NdBuilder {
            msg_type: 134,
            ..ns.clone()
        }
        .build()
    ));
    // A frame too short to hold the loaded field is dropped, not read past its end.
    assert!(!accepts(&ns.build()[..54]));
    assert!(!accepts(&[0xff; 13]));
    assert!(accepts(&ns.build()[..55]));
}

/// Frames shaped like the ones the filter looks at, with the deciding fields drawn from the
/// interesting values and everything else random.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let tags = proptest::collection::vec(
        (
            prop_oneof![Just(0x8100u16), Just(0x88a8), any::<u16>()],
            any::<u16>(),
        ),
        0..=2,
    );
    let ethertype = prop_oneof![
        Just(0x0806u16),
        Just(0x86dd),
        Just(0x0800),
        Just(0x8100),
        any::<u16>()
    ];
    let version = prop_oneof![3 => Just(0x60u8), 1 => any::<u8>()];
    let next_header = prop_oneof![Just(58u8), Just(0), any::<u8>()];
    let icmp_type = prop_oneof![Just(135u8), Just(136), Just(128), Just(134), any::<u8>()];
    let arp_shaped = any::<bool>();
    let rest = proptest::collection::vec(any::<u8>(), 0..70);
    let payload_len = proptest::option::weighted(0.2, any::<u16>());
    let cut = proptest::option::weighted(0.2, any::<prop::sample::Index>());
    (
        tags,
        ethertype,
        version,
        next_header,
        icmp_type,
        arp_shaped,
        rest,
        payload_len,
        cut,
    )
        .prop_map(
            |(
                tags,
                ethertype,
                version,
                next_header,
                icmp_type,
                arp_shaped,
                rest,
                payload_len,
                cut,
            )| {
                let mut bytes =
                    common::ethernet_header([0x33; 6], common::CLIENT_MAC, &tags, ethertype);
                if arp_shaped {
                    bytes.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                    bytes.extend_from_slice(&rest);
                } else {
                    let len = payload_len.unwrap_or(1 + rest.len() as u16);
                    bytes.extend_from_slice(&[version, 0, 0, 0]);
                    bytes.extend_from_slice(&len.to_be_bytes());
                    bytes.extend_from_slice(&[next_header, 255]);
                    bytes.extend_from_slice(&[0x20; 32]);
                    bytes.push(icmp_type);
                    bytes.extend_from_slice(&rest);
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn filter_agrees_with_parser_on_shaped_frames(bytes in frame()) {
        check(&bytes)?;
    }

    #[test]
    fn filter_agrees_with_parser_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        check(&bytes)?;
    }
}

#[test]
fn shaped_frames_cover_every_class() {
    // Guard against a generator that never produces the frames the property is about.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut neighbor, mut other, mut malformed) = (0, 0, 0);
    for _ in 0..2000 {
        let bytes = frame().new_tree(&mut runner).unwrap().current();
        match classify(&bytes) {
            Class::Neighbor { .. } => neighbor += 1,
            Class::Other => other += 1,
            Class::Malformed => malformed += 1,
        }
    }
    assert!(
        neighbor > 100 && other > 100 && malformed > 100,
        "{neighbor} {other} {malformed}"
    );
}

/// The kernel's checks on a program (`bpf_check_classic`): within the size limit, every jump
/// inside it, ending in a return.
fn assert_well_formed(program: &[SockFilter]) {
    assert!(
        program.len() <= MAX_PROGRAM_LEN,
        "{} instructions",
        program.len()
    );
    for (at, insn) in program.iter().enumerate() {
        if insn.code == op::JMP | op::JA {
            assert!(at + 1 + (insn.k as usize) < program.len(), "ja at {at}");
        } else if insn.code & 0x07 == op::JMP {
            assert!(at + 1 + usize::from(insn.jt) < program.len(), "jt at {at}");
            assert!(at + 1 + usize::from(insn.jf) < program.len(), "jf at {at}");
        }
    }
    assert_eq!(program.last().unwrap().code, op::RET | op::K);
}

fn v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc000_0200 + i)
}

/// Addresses in two /96 prefixes, so grouping by prefix is exercised.
fn v6(i: u32) -> Ipv6Addr {
    let prefix = if i.is_multiple_of(2) {
        0x2001_0db8
    } else {
        0x2001_0db9
    };
    let [a, b] = [(prefix >> 16) as u16, prefix as u16];
    Ipv6Addr::new(a, b, 0, 0, 0, 0, (i >> 16) as u16, i as u16)
}

/// What the owned-target filter must pass, for the untagged frames built here.
fn about_owned(packet: &[u8], owned: &BTreeSet<IpAddr>) -> bool {
    match Frame::parse(packet) {
        Ok(Frame::Arp { arp, .. }) => {
            owned.contains(&IpAddr::V4(arp.target_protocol_addr))
                || owned.contains(&IpAddr::V4(arp.sender_protocol_addr))
        }
        Ok(Frame::NeighborSolicitation(nd)) | Ok(Frame::NeighborAdvertisement(nd)) => {
            let message = nd.icmpv6.message();
            match message.get(8..24) {
                Some(target) => {
                    let target: [u8; 16] = target.try_into().unwrap();
                    owned.contains(&IpAddr::V6(Ipv6Addr::from(target)))
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// An owned set drawn from a small pool, and frames about addresses of the same pool.
fn owned_and_frames() -> impl Strategy<Value = (BTreeSet<IpAddr>, Vec<Vec<u8>>)> {
    let owned = proptest::collection::btree_set(
        prop_oneof![
            (0u32..64).prop_map(|i| IpAddr::V4(v4(i))),
            (0u32..64).prop_map(|i| IpAddr::V6(v6(i)))
        ],
        0..40,
    );
    let frame = prop_oneof![
        (0u32..64, 0u32..64, 1u16..=2).prop_map(|(t, s, op)| common::ArpBuilder {
            operation: op,
            spa: v4(s),
            ..common::ArpBuilder::request(v4(t))
        }
        .build()),
        (0u32..64, prop_oneof![Just(135u8), Just(136)], any::<bool>()).prop_map(|(t, ty, dad)| {
            let base = if dad {
                common::NdBuilder::dad(v6(t))
            } else {
                common::NdBuilder::address_resolution(v6(t))
            };
            common::NdBuilder {
                msg_type: ty,
                ..base
            }
            .build()
        }),
    ];
    (owned, proptest::collection::vec(frame, 1..20))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn owned_target_filter_passes_exactly_frames_about_owned_addresses(
        (owned, frames) in owned_and_frames()
    ) {
        let program = owned_target_filter(&owned).expect("fits");
        assert_well_formed(&program);
        for frame in frames {
            let passed = run(&program, &frame) != 0;
            prop_assert_eq!(passed, about_owned(&frame, &owned), "{:02x?}", frame);
        }
    }

    #[test]
    fn owned_target_filter_never_passes_what_the_family_filter_drops(
        bytes in frame(),
        owned in proptest::collection::btree_set((0u32..64).prop_map(|i| IpAddr::V6(v6(i))), 0..8),
    ) {
        let program = owned_target_filter(&owned).expect("fits");
        if run(&program, &bytes) != 0 {
            prop_assert!(run(&SOCKET_FILTER, &bytes) != 0, "{:02x?}", bytes);
        }
    }
}

#[test]
fn owned_target_filter_holds_the_documented_numbers_and_refuses_beyond_the_limit() {
    // Documented in owned_target_filter: about 1,600 IPv4 addresses, or about 3,200 IPv6
    // addresses sharing their first 96 bits, per interface.
    let many_v4: BTreeSet<IpAddr> = (0..1600).map(|i| IpAddr::V4(v4(i))).collect();
    let program = owned_target_filter(&many_v4).expect("1,600 IPv4 addresses fit");
    assert_well_formed(&program);
    let one_prefix: BTreeSet<IpAddr> = (0..3200)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i)))
        .collect();
    let program = owned_target_filter(&one_prefix).expect("3,200 IPv6 addresses fit");
    assert_well_formed(&program);
    // Every one of them is passed.
    for ip in [0u16, 1599, 3199] {
        let target = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, ip);
        let ns = common::NdBuilder::address_resolution(target).build();
        assert!(run(&program, &ns) != 0);
    }
    let too_many: BTreeSet<IpAddr> = (0..4000).map(|i| IpAddr::V4(v4(i))).collect();
    match owned_target_filter(&too_many) {
        Err(TooLarge { needed }) => assert!(needed > MAX_PROGRAM_LEN),
        Ok(program) => panic!("4,000 IPv4 addresses took {} instructions", program.len()),
    }
}

#[test]
fn owned_target_filter_with_nothing_owned_passes_nothing_untagged() {
    let program = owned_target_filter(&BTreeSet::new()).expect("fits");
    assert_well_formed(&program);
    let arp = common::ArpBuilder::request(v4(1)).build();
    let ns = common::NdBuilder::address_resolution(v6(1)).build();
    assert_eq!(run(&program, &arp), 0);
    assert_eq!(run(&program, &ns), 0);
}
