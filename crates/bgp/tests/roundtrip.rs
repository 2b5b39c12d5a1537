//! Property tests: every message survives encode → decode unchanged, on 2- and 4-octet AS
//! sessions; decoding arbitrary or damaged bytes never panics; the UPDATE packer fills
//! messages and loses nothing.

use bgp::wire::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn prefix_v4() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap())
}

fn prefix_v6() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).unwrap())
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(a, s)),
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    let known = [1u8, 2, 5, 6, 64, 65];
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        prop::collection::vec(
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| {
                ExtendedNextHopEntry {
                    nlri_afi: a,
                    nlri_safi: s,
                    next_hop_afi: n,
                }
            }),
            0..8
        )
        .prop_map(Capability::ExtendedNextHop),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            prop::collection::vec(
                (family(), any::<bool>()).prop_map(|(family, f)| GracefulRestartFamily {
                    family,
                    forwarding_preserved: f,
                }),
                0..4
            )
        )
            .prop_map(|(restarting, notification, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restarting,
                    notification,
                    restart_time,
                    families,
                })
            }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<u8>().prop_filter("unknown code", move |c| !known.contains(c)),
            prop::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = OpenRepr> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        // Up to 40 capabilities: often over 255 octets, so the RFC 9072 format is covered.
        prop::collection::vec(capability(), 0..40),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| OpenRepr {
            my_as,
            hold_time,
            bgp_identifier: Ipv4Addr::from(id),
            capabilities,
        })
}

/// AS paths; 2-octet sessions round-trip sets and sequences (confederation segments are
/// never carried in AS4_PATH, RFC 6793 §3).
fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let asns = || prop::collection::vec(any::<u32>(), 1..10);
    let segment = if four_octet {
        prop_oneof![
            asns().prop_map(AsPathSegment::Set),
            asns().prop_map(AsPathSegment::Sequence),
            asns().prop_map(AsPathSegment::ConfedSequence),
            asns().prop_map(AsPathSegment::ConfedSet),
        ]
        .boxed()
    } else {
        prop_oneof![
            asns().prop_map(AsPathSegment::Set),
            asns().prop_map(AsPathSegment::Sequence),
        ]
        .boxed()
    };
    prop::collection::vec(segment, 0..4).prop_map(|segments| AsPath { segments })
}

fn next_hop(ipv6_family: bool) -> BoxedStrategy<NextHop> {
    let v6 = (any::<u128>(), prop::option::of(any::<u128>())).prop_map(|(g, ll)| NextHop::V6 {
        global: Ipv6Addr::from(g),
        link_local: ll.map(Ipv6Addr::from),
    });
    if ipv6_family {
        v6.boxed()
    } else {
        prop_oneof![
            any::<u32>().prop_map(|a| NextHop::V4(Ipv4Addr::from(a))),
            v6
        ]
        .boxed()
    }
}

fn mp_reach() -> impl Strategy<Value = MpReachNlri> {
    any::<bool>().prop_flat_map(|ipv6| {
        let nlri = if ipv6 {
            prop::collection::vec(prefix_v6(), 0..40).boxed()
        } else {
            prop::collection::vec(prefix_v4(), 0..40).boxed()
        };
        (next_hop(ipv6), nlri).prop_map(move |(next_hop, nlri)| MpReachNlri {
            family: if ipv6 {
                Family::IPV6_UNICAST
            } else {
                Family::IPV4_UNICAST
            },
            next_hop,
            nlri,
        })
    })
}

fn mp_unreach() -> impl Strategy<Value = MpUnreachNlri> {
    prop_oneof![
        prop::collection::vec(prefix_v4(), 0..40).prop_map(|withdrawn| MpUnreachNlri {
            family: Family::IPV4_UNICAST,
            withdrawn
        }),
        prop::collection::vec(prefix_v6(), 0..40).prop_map(|withdrawn| MpUnreachNlri {
            family: Family::IPV6_UNICAST,
            withdrawn
        }),
    ]
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

/// Optional transitive attributes herald does not interpret, with distinct type codes.
fn raw_attributes() -> impl Strategy<Value = Vec<PathAttribute>> {
    prop::collection::btree_map(
        prop_oneof![Just(7u8), Just(16), Just(18), Just(35), 100u8..=255],
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(type_code, (partial, value))| {
                PathAttribute::Other(RawAttribute {
                    flags: attribute_flags::OPTIONAL_TRANSITIVE
                        | if partial { attribute_flags::PARTIAL } else { 0 },
                    type_code,
                    value,
                })
            })
            .collect()
    })
}

prop_compose! {
    fn update(four_octet: bool)(
        withdrawn_routes in prop::collection::vec(prefix_v4(), 0..40),
        nlri in prop::collection::vec(prefix_v4(), 0..40),
        origin in prop::option::of(origin()),
        path in prop::option::of(as_path(four_octet)),
        next_hop in prop::option::of(any::<u32>()),
        med in prop::option::of(any::<u32>()),
        local_pref in prop::option::of(any::<u32>()),
        atomic in any::<bool>(),
        communities in prop::option::of(prop::collection::vec(any::<u32>().prop_map(Community), 0..80)),
        large in prop::option::of(prop::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, a, b)| LargeCommunity {
                global_administrator: g, local_data_1: a, local_data_2: b,
            }),
            0..10,
        )),
        reach in prop::option::of(mp_reach()),
        unreach in prop::option::of(mp_unreach()),
        raw in raw_attributes(),
    ) -> UpdateRepr {
        // Routes that are announced need ORIGIN and AS_PATH, and NEXT_HOP in the NLRI
        // field, or decoding rightly reports them missing.
        let reaches = !nlri.is_empty() || reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
        let origin = origin.or(reaches.then_some(Origin::Igp));
        let path = path.or(reaches.then(AsPath::default));
        let next_hop = next_hop.or((!nlri.is_empty()).then_some(0x0a00_0001));
        let mut attributes = Vec::new();
        attributes.extend(origin.map(PathAttribute::Origin));
        attributes.extend(path.map(PathAttribute::AsPath));
        attributes.extend(next_hop.map(|a| PathAttribute::NextHop(Ipv4Addr::from(a))));
        attributes.extend(med.map(PathAttribute::MultiExitDisc));
        attributes.extend(local_pref.map(PathAttribute::LocalPref));
        if atomic {
            attributes.push(PathAttribute::AtomicAggregate);
        }
        attributes.extend(communities.map(PathAttribute::Communities));
        attributes.extend(reach.map(PathAttribute::MpReachNlri));
        attributes.extend(unreach.map(PathAttribute::MpUnreachNlri));
        attributes.extend(large.map(PathAttribute::LargeCommunities));
        attributes.extend(raw);
        UpdateRepr { withdrawn_routes, attributes, nlri, errors: vec![] }
    }
}

fn notification() -> impl Strategy<Value = NotificationRepr> {
    (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..100),
    )
        .prop_map(|(code, subcode, data)| NotificationRepr {
            code,
            subcode,
            data,
        })
}

fn route_refresh() -> impl Strategy<Value = RouteRefreshRepr> {
    (family(), any::<u8>()).prop_map(|(family, subtype)| RouteRefreshRepr { family, subtype })
}

fn message(four_octet: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(four_octet).prop_map(Message::Update),
        notification().prop_map(Message::Notification),
        Just(Message::Keepalive),
        route_refresh().prop_map(Message::RouteRefresh),
    ]
}

fn options(four_octet: bool, extended: bool) -> Options {
    Options {
        four_octet_as: four_octet,
        max_message_len: if extended {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        },
    }
}

fn round_trip(m: &Message, options: &Options) -> Result<(), TestCaseError> {
    let bytes = m
        .to_bytes(options)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(bytes.len(), m.buffer_len(options));
    prop_assert_eq!(message_len(&bytes, options), Ok(Some(bytes.len())));
    prop_assert_eq!(&Message::from_bytes(&bytes, options), &Ok(m.clone()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_four_octet_as(m in message(true)) {
        round_trip(&m, &options(true, true))?;
    }

    #[test]
    fn round_trip_two_octet_as(m in message(false)) {
        round_trip(&m, &options(false, true))?;
    }

    #[test]
    fn two_octet_sessions_never_send_large_as_numbers_in_as_path(path in as_path(false)) {
        let u = UpdateRepr {
            attributes: vec![PathAttribute::AsPath(path.clone())],
            ..UpdateRepr::default()
        };
        let bytes = Message::Update(u).to_bytes(&Options::default()).unwrap();
        // Decoded as a 4-octet speaker would never be asked to, the AS_PATH alone holds
        // only 2-octet values: AS_TRANS where the real number is larger.
        let attrs = UpdatePacket::new_checked(&bytes[19..]).unwrap();
        let area = attrs.path_attributes();
        prop_assert_eq!(area[1], attribute_type::AS_PATH);
        let value = &area[3..3 + usize::from(area[2])];
        let plain = AsPath::parse(value, false).unwrap();
        let expected: Vec<u32> = path.segments.iter().flat_map(|s| s.asns().iter().map(|&a| {
            if a > 0xffff { u32::from(AS_TRANS) } else { a }
        })).collect();
        let got: Vec<u32> = plain.segments.iter().flat_map(|s| s.asns().to_vec()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(area.len() > 3 + value.len(), path.needs_as4_path());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600),
                                   four in any::<bool>(), ext in any::<bool>()) {
        let o = options(four, ext);
        let _ = message_len(&bytes, &o);
        let _ = Message::from_bytes(&bytes, &o);
    }

    /// A valid header in front of random bodies, so decoding goes past the header checks.
    #[test]
    fn random_bodies_never_panic(kind in 1u8..=5, body in prop::collection::vec(any::<u8>(), 0..600),
                                 four in any::<bool>()) {
        let o = options(four, true);
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        if let Ok(Message::Notification(n)) = Message::from_bytes(&bytes, &o) {
            let _ = n.shutdown_communication();
        }
    }

    /// Valid messages with a few octets changed: lengths that lie, flags that conflict.
    #[test]
    fn damaged_messages_never_panic(m in message(true), hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                                    four in any::<bool>()) {
        let o = options(four, true);
        let mut bytes = m.to_bytes(&o).unwrap();
        for (i, v) in hits {
            let i = i.index(bytes.len());
            // Keep the header intact most of the time, so the body is what is damaged.
            if i >= 19 { bytes[i] = v; }
        }
        if let Ok(Message::Update(u)) = Message::from_bytes(&bytes, &o) {
            let _ = (u.announced(), u.withdrawn(), u.handling(), u.as_end_of_rib());
            // Whatever was decoded can be sent again.
            let _ = Message::Update(u).to_bytes(&o);
        }
    }

    #[test]
    fn packer_fills_messages_and_loses_nothing(
        v4 in prop::collection::vec(prefix_v4(), 0..3000),
        v6 in prop::collection::vec(prefix_v6(), 0..1000),
        communities in prop::collection::vec(any::<u32>().prop_map(Community), 0..100),
        link_local in any::<bool>(),
        four in any::<bool>(),
    ) {
        let o = options(four, false);
        let attributes = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(4_200_000_001)),
            PathAttribute::Communities(communities),
        ];
        let v6_hop = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: link_local.then(|| "fe80::1".parse().unwrap()),
        };
        let mut updates = announce(&v4, &attributes, &NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)), &o).unwrap();
        updates.extend(announce(&v6, &attributes, &v6_hop, &o).unwrap());
        let mut announced = Vec::new();
        let mut lens = Vec::new();
        for u in &updates {
            let bytes = Message::Update(u.clone()).to_bytes(&o).unwrap();
            prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
            lens.push(bytes.len());
            let Ok(Message::Update(back)) = Message::from_bytes(&bytes, &o) else {
                return Err(TestCaseError::fail("not an UPDATE"));
            };
            prop_assert!(back.errors.is_empty());
            announced.extend(back.announced());
        }
        let mut expected = v4.clone();
        expected.extend(&v6);
        prop_assert_eq!(announced, expected);
        // Every message that is followed by one of the same family is full: the next
        // prefix would not have fitted.
        for (i, pair) in updates.windows(2).enumerate() {
            let next = pair[1].nlri.first().copied().or_else(|| pair[1].announced().first().copied());
            let same_family = pair[0].announced().first().map(Prefix::is_ipv4) == next.map(|p| p.is_ipv4());
            if let (true, Some(next)) = (same_family, next) {
                prop_assert!(lens[i] + next.encoded_len() > MAX_MESSAGE_LEN);
            }
        }

        let mut all = v4.clone();
        all.extend(&v6);
        let mut withdrawn = Vec::new();
        for u in withdraw(&all, &o) {
            let bytes = Message::Update(u).to_bytes(&o).unwrap();
            let Ok(Message::Update(back)) = Message::from_bytes(&bytes, &o) else {
                return Err(TestCaseError::fail("not an UPDATE"));
            };
            withdrawn.extend(back.withdrawn());
        }
        prop_assert_eq!(withdrawn, all);
    }
}
