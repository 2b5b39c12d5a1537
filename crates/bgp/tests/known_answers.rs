//! Known-answer tests: messages written out octet by octet, decoded and encoded again.

use bgp::wire::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const M: [u8; 16] = [0xff; 16];

/// A message from its header fields and body, for the tests that are about the body.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = M.to_vec();
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn decode(bytes: &[u8], options: &Options) -> Result<Message, Error> {
    Message::from_bytes(bytes, options)
}

fn update(bytes: &[u8], options: &Options) -> UpdateRepr {
    match decode(bytes, options) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

#[test]
fn keepalive() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x13, // length 19
        0x04,       // type KEEPALIVE
    ];
    let options = Options::default();
    assert_eq!(decode(&bytes, &options), Ok(Message::Keepalive));
    assert_eq!(Message::Keepalive.to_bytes(&options).unwrap(), bytes);
}

#[test]
fn open_with_capabilities() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x50,             // length 80
        0x01,                   // type OPEN
        0x04,                   // version 4
        0x5b, 0xa0,             // my AS 23456 (AS_TRANS)
        0x00, 0x5a,             // hold time 90
        0xc0, 0x00, 0x02, 0x01, // BGP identifier 192.0.2.1
        0x33,                   // optional parameters length 51
        0x02, 0x31,             // parameter: capabilities, 49 octets
        0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
        0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // multiprotocol IPv6 unicast
        0x02, 0x00,                         // route refresh
        0x05, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, // extended next hop: IPv4 unicast over IPv6
        0x06, 0x00,                         // extended message
        0x40, 0x0a,                         // graceful restart, 10 octets
        0x80, 0x78,                         //   R bit, restart time 120
        0x00, 0x01, 0x01, 0x80,             //   IPv4 unicast, forwarding preserved
        0x00, 0x02, 0x01, 0x00,             //   IPv6 unicast
        0x41, 0x04, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
        0x49, 0x05, b'n', b'o', b'd', b'e', b'1', // unknown capability 73 (FQDN), kept raw
    ];
    let expected = OpenRepr {
        my_as: AS_TRANS,
        hold_time: 90,
        bgp_identifier: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6]),
            Capability::ExtendedMessage,
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: false,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        family: Family::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GracefulRestartFamily {
                        family: Family::IPV6_UNICAST,
                        forwarding_preserved: false,
                    },
                ],
            }),
            Capability::FourOctetAs(4_200_000_001),
            Capability::Unknown {
                code: 73,
                value: b"node1".to_vec(),
            },
        ],
    };
    let options = Options::default();
    let Ok(Message::Open(open)) = decode(&bytes, &options) else {
        panic!("not an OPEN")
    };
    assert_eq!(open, expected);
    assert_eq!(open.asn(), 4_200_000_001);
    assert_eq!(Message::Open(expected).to_bytes(&options).unwrap(), bytes);
}

#[test]
fn open_with_capabilities_in_separate_parameters() {
    // Many speakers put each capability in its own parameter; both forms are one list.
    #[rustfmt::skip]
    let body = [
        0x04, 0xfd, 0xe9, 0x00, 0xb4, 0x0a, 0x00, 0x00, 0x01, // v4, AS 65001, hold 180, 10.0.0.1
        0x0e,                                           // optional parameters length 14
        0x02, 0x06, 0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // capabilities: multiprotocol IPv4 unicast
        0x02, 0x02, 0x02, 0x00,                         // capabilities: route refresh
        0x02, 0x00,                                     // an empty capabilities parameter
    ];
    let Ok(Message::Open(open)) = decode(&msg(1, &body), &Options::default()) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 180);
    assert_eq!(
        open.capabilities,
        [
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh
        ]
    );
}

#[test]
fn open_with_extended_optional_parameters() {
    // RFC 9072: 300 octets of capabilities do not fit the one-octet length.
    let capabilities: Vec<Capability> = (0..30)
        .map(|i| Capability::Unknown {
            code: 200,
            value: vec![i; 8],
        })
        .collect();
    let open = OpenRepr {
        my_as: 65001,
        hold_time: 90,
        bgp_identifier: Ipv4Addr::new(10, 0, 0, 1),
        capabilities,
    };
    let bytes = Message::Open(open.clone())
        .to_bytes(&Options::default())
        .unwrap();
    #[rustfmt::skip]
    let head = [
        0x04, 0xfd, 0xe9, 0x00, 0x5a, 0x0a, 0x00, 0x00, 0x01, // v4, AS 65001, hold 90, 10.0.0.1
        0xff,       // non-extended length: 255 announces the extended format
        0xff,       // non-extended type: 255 likewise
        0x01, 0x2f, // extended optional parameters length 303
        0x02,       // parameter type: capabilities
        0x01, 0x2c, // two-octet parameter length 300
        0xc8, 0x08, // first capability: code 200, 8 octets
    ];
    assert_eq!(&bytes[19..19 + head.len()], head);
    assert_eq!(bytes.len(), 19 + 10 + 3 + 3 + 300);
    assert_eq!(decode(&bytes, &Options::default()), Ok(Message::Open(open)));
}

#[test]
fn open_errors() {
    let options = Options::default();
    // Version 3.
    let e = decode(&msg(1, &[3, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 0]), &options).unwrap_err();
    assert_eq!(e, Error::UnsupportedVersionNumber(3));
    assert_eq!(
        e.notification(),
        NotificationRepr {
            code: 2,
            subcode: 1,
            data: vec![0, 4]
        }
    );
    // Optional parameters length 5 with 2 octets present.
    let e = decode(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 5, 2, 0]),
        &options,
    );
    assert!(matches!(e, Err(Error::MalformedOptionalParameters(_))));
    // Optional parameter type 1 (authentication, deprecated).
    let e = decode(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 2, 1, 0]),
        &options,
    );
    assert_eq!(e, Err(Error::UnsupportedOptionalParameter(1)));
    // 4-octet AS capability of three octets.
    let e = decode(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 5, 2, 3, 65, 1, 0]),
        &options,
    );
    assert!(matches!(
        e,
        Err(Error::MalformedCapability { code: 65, .. })
    ));
    // A capability whose length overruns its parameter.
    let e = decode(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 4, 2, 2, 65, 4]),
        &options,
    );
    assert!(matches!(e, Err(Error::MalformedOptionalParameters(_))));
}

#[test]
fn header_errors() {
    let options = Options::default();
    let mut bad_marker = Message::Keepalive.to_bytes(&options).unwrap();
    bad_marker[3] = 0;
    assert_eq!(
        decode(&bad_marker, &options),
        Err(Error::ConnectionNotSynchronized)
    );
    // KEEPALIVE with a body.
    let e = decode(&msg(4, &[0]), &options).unwrap_err();
    assert_eq!(
        e.notification(),
        NotificationRepr {
            code: 1,
            subcode: 2,
            data: vec![0, 20]
        }
    );
    // Unknown type 9.
    let e = decode(&msg(9, &[]), &options).unwrap_err();
    assert_eq!(e, Error::BadMessageType(9));
    assert_eq!(e.notification().data, [9]);
    // Length below the header.
    let mut short = M.to_vec();
    short.extend_from_slice(&[0x00, 0x12, 0x04]);
    assert!(matches!(
        message_len(&short, &options),
        Err(Error::BadMessageLength { length: 18, .. })
    ));
    // An UPDATE longer than 4096 is refused unless extended messages are negotiated.
    let mut big = M.to_vec();
    big.extend_from_slice(&[0x10, 0x01, 0x02]);
    assert!(message_len(&big, &options).is_err());
    let extended = Options {
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
        ..options
    };
    assert_eq!(message_len(&big, &extended), Ok(Some(4097)));
    // But never an OPEN.
    big[18] = 1;
    assert!(message_len(&big, &extended).is_err());
    // Framing: not enough yet.
    assert_eq!(message_len(&M, &options), Ok(None));
    // The buffer must hold exactly the message.
    let ka = Message::Keepalive.to_bytes(&options).unwrap();
    assert!(matches!(
        decode(&ka[..18], &options),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn update_ipv4_classic() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x67,             // length 103
        0x02,                   // type UPDATE
        0x00, 0x04,             // withdrawn routes length 4
        0x18, 0xc6, 0x33, 0x64, //   198.51.100.0/24
        0x00, 0x41,             // total path attribute length 65
        0x40, 0x01, 0x01, 0x00, //   ORIGIN IGP
        0x40, 0x02, 0x0a,       //   AS_PATH, 10 octets
        0x02, 0x02,             //     AS_SEQUENCE of 2
        0x00, 0x00, 0xfd, 0xe9, //     65001
        0xfa, 0x56, 0xea, 0x01, //     4200000001
        0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
        0x80, 0x04, 0x04, 0x00, 0x00, 0x00, 0x64, // MULTI_EXIT_DISC 100
        0x40, 0x05, 0x04, 0x00, 0x00, 0x00, 0xc8, // LOCAL_PREF 200
        0xd0, 0x08, 0x00, 0x08, //   COMMUNITIES, extended length bit set, 8 octets
        0xfd, 0xe9, 0x00, 0x01, //     65001:1
        0xff, 0xff, 0x00, 0x00, //     GRACEFUL_SHUTDOWN
        0xc0, 0x20, 0x0c,       //   LARGE_COMMUNITIES, 12 octets
        0xfa, 0x56, 0xea, 0x01, //     4200000001:
        0x00, 0x00, 0x00, 0x07, //       7:
        0x00, 0x00, 0x00, 0x09, //       9
        0x08, 0x0a,             // NLRI 10.0.0.0/8
        0x17, 0xc0, 0xa8, 0x02, //      192.168.2.0/23
        0x20, 0xcb, 0x00, 0x71, 0x07, // 203.0.113.7/32
    ];
    let expected = UpdateRepr {
        withdrawn_routes: vec![p("198.51.100.0/24")],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsPathSegment::Sequence(vec![65001, 4_200_000_001])],
            }),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::MultiExitDisc(100),
            PathAttribute::LocalPref(200),
            PathAttribute::Communities(vec![
                Community::new(65001, 1),
                Community::GRACEFUL_SHUTDOWN,
            ]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_administrator: 4_200_000_001,
                local_data_1: 7,
                local_data_2: 9,
            }]),
        ],
        nlri: vec![p("10.0.0.0/8"), p("192.168.2.0/23"), p("203.0.113.7/32")],
        errors: vec![],
    };
    let options = Options::FOUR_OCTET_AS;
    let u = update(&bytes, &options);
    assert_eq!(u, expected);
    assert_eq!(u.handling(), None);
    // Encoded again, COMMUNITIES drops the extended length it does not need.
    let mut again = bytes.to_vec();
    again.splice(65..69, [0xc0, 0x08, 0x08]);
    again[17] -= 1;
    again[26] -= 1;
    assert_eq!(Message::Update(expected).to_bytes(&options).unwrap(), again);
}

#[test]
fn update_two_octet_session_with_as4_path() {
    #[rustfmt::skip]
    let body = [
        0x00, 0x00,             // no withdrawn routes
        0x00, 0x1d,             // total path attribute length 29
        0x40, 0x01, 0x01, 0x00, //   ORIGIN IGP
        0x40, 0x02, 0x06,       //   AS_PATH, 6 octets
        0x02, 0x02,             //     AS_SEQUENCE of 2
        0xfd, 0xe9,             //     65001
        0x5b, 0xa0,             //     AS_TRANS
        0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
        0xc0, 0x11, 0x06,       //   AS4_PATH, 6 octets
        0x02, 0x01,             //     AS_SEQUENCE of 1
        0xfa, 0x56, 0xea, 0x01, //     4200000001
        0x20, 0xcb, 0x00, 0x71, 0x07, // NLRI 203.0.113.7/32
    ];
    let options = Options::default();
    let u = update(&msg(2, &body), &options);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    let path = AsPath {
        segments: vec![AsPathSegment::Sequence(vec![65001, 4_200_000_001])],
    };
    assert_eq!(u.attributes[1], PathAttribute::AsPath(path.clone()));
    assert_eq!(u.attributes.len(), 3);
    // Emitting the merged path gives the same AS_PATH and an AS4_PATH of the whole path.
    let out = Message::Update(u).to_bytes(&options).unwrap();
    let back = update(&out, &options);
    assert_eq!(back.attributes[1], PathAttribute::AsPath(path));

    // On a 4-octet session AS4_PATH must not appear; it is discarded.
    #[rustfmt::skip]
    let body = [
        0x00, 0x00, 0x00, 0x17,
        0x40, 0x01, 0x01, 0x00,
        0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd, 0xe9,
        0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01,
        0xc0, 0x11, 0x00,
        0x20, 0xcb, 0x00, 0x71, 0x07,
    ];
    let u = update(&msg(2, &body), &Options::FOUR_OCTET_AS);
    assert_eq!(u.handling(), Some(Handling::AttributeDiscard));
    assert_eq!(u.announced(), vec![p("203.0.113.7/32")]);
}

#[test]
fn update_ipv6_mp_reach_with_link_local() {
    #[rustfmt::skip]
    let body = [
        0x00, 0x00,             // no withdrawn routes
        0x00, 0x47,             // total path attribute length 71
        0x40, 0x01, 0x01, 0x00, //   ORIGIN IGP
        0x40, 0x02, 0x00,       //   AS_PATH empty (iBGP)
        0x80, 0x0e, 0x3d,       //   MP_REACH_NLRI, 61 octets
        0x00, 0x02, 0x01,       //     AFI IPv6, SAFI unicast
        0x20,                   //     next hop length 32
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,       // fe80::1
        0x00,                   //     reserved
        0x80, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, // 2001:db8::5/128
        0x30, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x07, // 2001:db8:7::/48
    ];
    let options = Options::FOUR_OCTET_AS;
    let bytes = msg(2, &body);
    let u = update(&bytes, &options);
    let expected = UpdateRepr {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::MpReachNlri(MpReachNlri {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![p("2001:db8::5/128"), p("2001:db8:7::/48")],
            }),
        ],
        ..UpdateRepr::default()
    };
    assert_eq!(u, expected);
    assert_eq!(Message::Update(expected).to_bytes(&options).unwrap(), bytes);
}

#[test]
fn update_ipv4_over_ipv6_next_hop() {
    #[rustfmt::skip]
    let body = [
        0x00, 0x00, 0x00, 0x24,
        0x40, 0x01, 0x01, 0x02, //   ORIGIN INCOMPLETE
        0x40, 0x02, 0x00,       //   AS_PATH empty
        0x80, 0x0e, 0x1a,       //   MP_REACH_NLRI, 26 octets
        0x00, 0x01, 0x01,       //     AFI IPv4, SAFI unicast (RFC 8950)
        0x10,                   //     next hop length 16
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
        0x00,                   //     reserved
        0x20, 0x0a, 0x00, 0x00, 0x01, // 10.0.0.1/32
    ];
    let u = update(&msg(2, &body), &Options::FOUR_OCTET_AS);
    assert!(u.errors.is_empty());
    assert_eq!(u.announced(), vec![p("10.0.0.1/32")]);
    assert!(matches!(
        &u.attributes[2],
        PathAttribute::MpReachNlri(MpReachNlri {
            family: Family::IPV4_UNICAST,
            next_hop: NextHop::V6 {
                link_local: None,
                ..
            },
            ..
        })
    ));
}

#[test]
fn update_mp_unreach() {
    // A /64 needs 8 octets but only 6 follow: an NLRI that cannot be decoded inside
    // MP_UNREACH_NLRI leaves only a session reset (RFC 7606 §5.3).
    #[rustfmt::skip]
    let body = [
        0x00, 0x00, 0x00, 0x0d,
        0x80, 0x0f, 0x0a,       // MP_UNREACH_NLRI, 10 octets
        0x00, 0x02, 0x01,       //   AFI IPv6, SAFI unicast
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, // /64 with 6 octets
    ];
    let e = decode(&msg(2, &body), &Options::FOUR_OCTET_AS);
    assert!(matches!(
        e,
        Err(Error::MalformedMpAttribute { type_code: 15, .. })
    ));
    #[rustfmt::skip]
    let body = [
        0x00, 0x00, 0x00, 0x0f,
        0x80, 0x0f, 0x0c,       // MP_UNREACH_NLRI, 12 octets
        0x00, 0x02, 0x01,       //   AFI IPv6, SAFI unicast
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // 2001:db8:1::/64
    ];
    let u = update(&msg(2, &body), &Options::FOUR_OCTET_AS);
    assert_eq!(u.withdrawn(), vec![p("2001:db8:1::/64")]);
    assert_eq!(u.as_end_of_rib(), None);
}

#[test]
fn notification_with_shutdown_communication() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x1c,             // length 28
        0x03,                   // type NOTIFICATION
        0x06,                   // Cease
        0x02,                   // Administrative Shutdown
        0x06, b'n', b'o', b'd', b'e', b'-', b'a', // shutdown communication "node-a"
    ];
    let options = Options::default();
    let Ok(Message::Notification(n)) = decode(&bytes, &options) else {
        panic!("not a NOTIFICATION")
    };
    assert_eq!(n.shutdown_communication(), Some(Ok("node-a")));
    assert_eq!(
        Message::Notification(NotificationRepr::cease(
            cease::ADMINISTRATIVE_SHUTDOWN,
            "node-a"
        ))
        .to_bytes(&options)
        .unwrap(),
        bytes
    );
    // Too short for code and subcode.
    assert!(matches!(
        decode(&msg(3, &[6]), &options),
        Err(Error::BadMessageLength { length: 20, .. })
    ));
}

#[test]
fn route_refresh() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x17,             // length 23
        0x05,                   // type ROUTE-REFRESH
        0x00, 0x02,             // AFI IPv6
        0x00,                   // subtype: normal request
        0x01,                   // SAFI unicast
    ];
    let options = Options::default();
    let rr = RouteRefreshRepr::new(Family::IPV6_UNICAST);
    assert_eq!(decode(&bytes, &options), Ok(Message::RouteRefresh(rr)));
    assert_eq!(Message::RouteRefresh(rr).to_bytes(&options).unwrap(), bytes);
    let e = decode(&msg(5, &[0, 2, 0, 1, 0]), &options).unwrap_err();
    assert_eq!(e, Error::RouteRefreshLength(24));
    assert_eq!((e.notification().code, e.notification().subcode), (7, 1));
}

/// An UPDATE announcing 203.0.113.7/32 with the given attribute octets after ORIGIN,
/// AS_PATH and NEXT_HOP.
fn update_with(extra: &[u8], origin: &[u8]) -> Vec<u8> {
    let mut attrs = origin.to_vec();
    attrs.extend_from_slice(&[0x40, 0x02, 0x00]); // AS_PATH empty
    attrs.extend_from_slice(&[0x40, 0x03, 0x04, 192, 0, 2, 1]); // NEXT_HOP
    attrs.extend_from_slice(extra);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[32, 203, 0, 113, 7]);
    msg(2, &body)
}

const ORIGIN_IGP: [u8; 4] = [0x40, 0x01, 0x01, 0x00];

fn first_error(u: &UpdateRepr) -> (u8, AttributeErrorKind, Handling) {
    let e = &u.errors[0];
    (e.type_code, e.kind.clone(), e.handling)
}

#[test]
fn rfc7606_treat_as_withdraw() {
    let options = Options::FOUR_OCTET_AS;
    let target = vec![p("203.0.113.7/32")];

    // ORIGIN 3 is undefined.
    let u = update(&update_with(&[], &[0x40, 0x01, 0x01, 0x03]), &options);
    assert_eq!(
        first_error(&u),
        (
            1,
            AttributeErrorKind::InvalidOrigin(3),
            Handling::TreatAsWithdraw
        )
    );
    assert_eq!(u.announced(), vec![]);
    assert_eq!(u.withdrawn(), target);

    // ORIGIN of two octets.
    let u = update(&update_with(&[], &[0x40, 0x01, 0x02, 0x00, 0x00]), &options);
    assert_eq!(u.handling(), Some(Handling::TreatAsWithdraw));

    // COMMUNITIES of 5 octets.
    let u = update(
        &update_with(&[0xc0, 0x08, 0x05, 1, 2, 3, 4, 5], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(
        first_error(&u),
        (
            8,
            AttributeErrorKind::Length { length: 5 },
            Handling::TreatAsWithdraw
        )
    );
    assert_eq!(u.withdrawn(), target);

    // LARGE_COMMUNITIES of 8 octets.
    let u = update(
        &update_with(&[0xc0, 0x20, 0x08, 0, 0, 0, 1, 0, 0, 0, 2], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(u.handling(), Some(Handling::TreatAsWithdraw));

    // MULTI_EXIT_DISC sent as well-known (flags 0x40 instead of 0x80).
    let u = update(
        &update_with(&[0x40, 0x04, 0x04, 0, 0, 0, 1], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(
        first_error(&u),
        (
            4,
            AttributeErrorKind::Flags { flags: 0x40 },
            Handling::TreatAsWithdraw
        )
    );

    // AS_PATH with a segment of length zero.
    let mut bytes = update_with(&[], &ORIGIN_IGP);
    bytes.splice(27..30, [0x40, 0x02, 0x02, 0x02, 0x00]);
    bytes[22] += 2;
    bytes[17] += 2;
    let u = update(&bytes, &options);
    assert_eq!(u.errors[0].type_code, 2);
    assert_eq!(u.handling(), Some(Handling::TreatAsWithdraw));

    // ORIGIN missing.
    let u = update(&update_with(&[], &[]), &options);
    assert_eq!(
        first_error(&u),
        (1, AttributeErrorKind::Missing, Handling::TreatAsWithdraw)
    );

    // The last attribute's length overruns the area: the NLRI field can still be found.
    let u = update(
        &update_with(&[0xc0, 0x08, 0x08, 1, 2, 3, 4], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(
        first_error(&u),
        (0, AttributeErrorKind::Framing, Handling::TreatAsWithdraw)
    );
    assert_eq!(u.withdrawn(), target);
}

#[test]
fn rfc7606_attribute_discard_and_tolerance() {
    let options = Options::FOUR_OCTET_AS;
    // ATOMIC_AGGREGATE with a value.
    let u = update(
        &update_with(&[0x40, 0x06, 0x01, 0x00], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(u.handling(), Some(Handling::AttributeDiscard));
    assert_eq!(u.announced(), vec![p("203.0.113.7/32")]);
    // A second NEXT_HOP is dropped, the first kept.
    let u = update(
        &update_with(&[0x40, 0x03, 0x04, 9, 9, 9, 9], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(
        first_error(&u),
        (3, AttributeErrorKind::Duplicate, Handling::AttributeDiscard)
    );
    assert!(
        u.attributes
            .contains(&PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)))
    );
    // Unknown optional transitive attributes are kept; optional non-transitive ones dropped.
    let u = update(
        &update_with(
            &[0xe0, 0x63, 0x02, 0xab, 0xcd, 0x80, 0x64, 0x01, 0x01],
            &ORIGIN_IGP,
        ),
        &options,
    );
    assert!(u.errors.is_empty());
    assert_eq!(
        u.attributes.last(),
        Some(&PathAttribute::Other(RawAttribute {
            flags: 0xe0,
            type_code: 0x63,
            value: vec![0xab, 0xcd]
        }))
    );
    // An MP_REACH_NLRI with a next hop of 5 octets: its routes are still located, and
    // withdrawn.
    #[rustfmt::skip]
    let mp = [
        0x80, 0x0e, 0x0f, 0x00, 0x02, 0x01, 0x05, 1, 2, 3, 4, 5, 0x00,
        0x20, 0x20, 0x01, 0x0d, 0xb8, // 2001:db8::/32
    ];
    let u = update(&update_with(&mp, &ORIGIN_IGP), &options);
    assert_eq!(
        first_error(&u),
        (
            14,
            AttributeErrorKind::NextHopLength(5),
            Handling::TreatAsWithdraw
        )
    );
    assert_eq!(u.withdrawn(), vec![p("203.0.113.7/32"), p("2001:db8::/32")]);
    // A family herald does not speak (IPv4 multicast) is discarded.
    let u = update(
        &update_with(&[0x80, 0x0f, 0x03, 0x00, 0x01, 0x02], &ORIGIN_IGP),
        &options,
    );
    assert_eq!(
        first_error(&u),
        (
            15,
            AttributeErrorKind::UnsupportedFamily { afi: 1, safi: 2 },
            Handling::AttributeDiscard
        )
    );
}

#[test]
fn rfc7606_session_reset() {
    let options = Options::FOUR_OCTET_AS;
    // NLRI prefix length 33.
    let mut bytes = update_with(&[], &ORIGIN_IGP);
    let at = bytes.len() - 5;
    bytes[at] = 33;
    let e = decode(&bytes, &options).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidNetworkField {
            field: "NLRI",
            error: PrefixError::LengthTooLong { len: 33, max: 32 }
        }
    ));
    assert_eq!((e.notification().code, e.notification().subcode), (3, 10));
    // A trailing partial prefix in the NLRI.
    let mut bytes = update_with(&[], &ORIGIN_IGP);
    bytes.push(24);
    bytes[17] += 1;
    assert!(matches!(
        decode(&bytes, &options),
        Err(Error::InvalidNetworkField { .. })
    ));
    // Withdrawn routes length past the end.
    let e = decode(&msg(2, &[0x00, 0x09, 0x00, 0x00]), &options).unwrap_err();
    assert!(matches!(e, Error::MalformedAttributeList(_)));
    assert_eq!((e.notification().code, e.notification().subcode), (3, 1));
    // Total path attribute length past the end.
    let e = decode(&msg(2, &[0x00, 0x00, 0x00, 0x01]), &options).unwrap_err();
    assert!(matches!(e, Error::MalformedAttributeList(_)));
    // Two MP_UNREACH_NLRI.
    let two = [
        0x80, 0x0f, 0x03, 0x00, 0x02, 0x01, 0x80, 0x0f, 0x03, 0x00, 0x02, 0x01,
    ];
    assert!(matches!(
        decode(&update_with(&two, &ORIGIN_IGP), &options),
        Err(Error::MalformedAttributeList(_))
    ));
    // An unrecognized well-known attribute.
    let e = decode(&update_with(&[0x40, 0x63, 0x00], &ORIGIN_IGP), &options).unwrap_err();
    assert_eq!(e, Error::UnrecognizedWellKnownAttribute(0x63));
    assert_eq!(e.notification().subcode, 2);
    // A framing error with no routes to withdraw: an MP_REACH_NLRI may have been lost.
    let e = decode(&msg(2, &[0, 0, 0, 3, 0x80, 0x0e, 0x09]), &options).unwrap_err();
    assert!(matches!(e, Error::MalformedAttributeList(_)));
}

#[test]
fn extended_next_hop_capability_entries() {
    let open = OpenRepr::new(
        65001,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![Capability::ExtendedNextHop(vec![
            ExtendedNextHopEntry::IPV4_UNICAST_OVER_IPV6,
        ])],
    );
    let bytes = Message::Open(open.clone())
        .to_bytes(&Options::default())
        .unwrap();
    assert_eq!(decode(&bytes, &Options::default()), Ok(Message::Open(open)));
    let _ = Ipv6Addr::LOCALHOST;
}

#[test]
fn as4_path_is_sent_in_type_order() {
    let u = UpdateRepr {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(4_200_000_001)),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::LargeCommunities(vec![]),
        ],
        nlri: vec![p("203.0.113.7/32")],
        ..UpdateRepr::default()
    };
    let bytes = Message::Update(u.clone())
        .to_bytes(&Options::default())
        .unwrap();
    #[rustfmt::skip]
    let expected = msg(2, &[
        0x00, 0x00, 0x00, 0x1e,
        0x40, 0x01, 0x01, 0x00,                   // ORIGIN IGP
        0x40, 0x02, 0x04, 0x02, 0x01, 0x5b, 0xa0, // AS_PATH: AS_SEQUENCE [AS_TRANS]
        0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, // NEXT_HOP 192.0.2.1
        0xc0, 0x11, 0x06, 0x02, 0x01, 0xfa, 0x56, 0xea, 0x01, // AS4_PATH [4200000001]
        0xc0, 0x20, 0x00,                         // LARGE_COMMUNITIES, empty
        0x20, 0xcb, 0x00, 0x71, 0x07,             // NLRI 203.0.113.7/32
    ]);
    assert_eq!(bytes, expected);
    assert_eq!(decode(&bytes, &Options::default()), Ok(Message::Update(u)));
}

#[test]
fn framing_a_stream() {
    // Three messages back to back, as a TCP read may deliver them, cut apart with
    // message_len and decoded one by one.
    let options = Options::FOUR_OCTET_AS;
    let messages = [
        Message::Keepalive,
        Message::Update(UpdateRepr::end_of_rib(Family::IPV6_UNICAST)),
        Message::Notification(NotificationRepr::cease(cease::ADMINISTRATIVE_RESET, "bye")),
    ];
    let mut stream = Vec::new();
    for m in &messages {
        m.emit(&mut stream, &options).unwrap();
    }
    let mut decoded = Vec::new();
    let mut buf: &[u8] = &stream;
    while let Some(len) = message_len(buf, &options).unwrap() {
        if buf.len() < len {
            break;
        }
        decoded.push(Message::from_bytes(&buf[..len], &options).unwrap());
        buf = &buf[len..];
    }
    assert!(buf.is_empty());
    assert_eq!(decoded, messages);
    // A partial header asks for more; a full header says how much more.
    assert_eq!(message_len(&stream[..10], &options), Ok(None));
    assert_eq!(message_len(&stream[19..40], &options), Ok(Some(29)));
}
