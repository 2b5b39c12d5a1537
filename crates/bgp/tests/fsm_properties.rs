//! Property tests for the session FSM: any sequence of events keeps its invariants.

use bgp::fsm::*;
use bgp::wire::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const LOCAL_AS: u32 = 64512;
const PEER_AS: u32 = 65001;

fn open(asn: u32, hold_time: u16, id: u32) -> Message {
    Message::Open(OpenRepr::new(
        asn,
        hold_time,
        Ipv4Addr::from(id),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
        ],
    ))
}

fn event() -> impl Strategy<Value = Event> {
    let timer = prop_oneof![
        Just(Timer::ConnectRetry),
        Just(Timer::Hold),
        Just(Timer::Keepalive),
        Just(Timer::Stable),
    ];
    let message = prop_oneof![
        4 => Just(Message::Keepalive),
        // Mostly acceptable OPENs, sometimes wrong AS, hold time or identifier.
        4 => (prop_oneof![Just(PEER_AS), any::<u32>()], prop_oneof![Just(90u16), any::<u16>()],
              prop_oneof![Just(0x0a00_0002u32), any::<u32>()])
            .prop_map(|(a, h, id)| open(a, h, id)),
        1 => Just(Message::Update(UpdateRepr::default())),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(c, s)| Message::Notification(NotificationRepr::new(c, s))),
        1 => Just(Message::RouteRefresh(RouteRefreshRepr::new(Family::IPV4_UNICAST))),
    ];
    prop_oneof![
        2 => Just(Event::Start),
        1 => prop_oneof![
            Just(StopKind::Shutdown),
            Just(StopKind::Deconfigured),
            Just(StopKind::Restart),
            Just(StopKind::Reconfigure),
            Just(StopKind::BfdDown),
        ].prop_map(|kind| Event::Stop { reason: "test".into(), kind }),
        3 => Just(Event::TcpConnected),
        2 => Just(Event::IncomingConnection),
        1 => Just(Event::TcpFailed),
        1 => Just(Event::TcpClosed),
        6 => message.prop_map(Event::MessageReceived),
        1 => Just(Event::MalformedMessage(Error::BadMessageType(9))),
        1 => Just(Event::UpdateSent),
        3 => timer.prop_map(Event::TimerFired),
    ]
}

fn connected(state: State) -> bool {
    matches!(
        state,
        State::OpenSent | State::OpenConfirm | State::Established
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_event_sequence(
        events in prop::collection::vec(event(), 0..60),
        passive in any::<bool>(),
        hold_time in prop_oneof![Just(0u16), 3u16..300],
        seed in any::<u32>(),
    ) {
        let mut config = Config::new(LOCAL_AS, PeerAs::Fixed(PEER_AS), Ipv4Addr::new(10, 0, 0, 1));
        config.passive = passive;
        config.hold_time = hold_time;
        let max_wait = config.backoff.max.max(config.connect_timeout);
        let mut x = seed;
        let mut s = Session::new(config, move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }).unwrap();
        for event in events {
            let before = s.state();
            let received_notification =
                matches!(event, Event::MessageReceived(Message::Notification(_)));
            let tcp_up = matches!(event, Event::TcpConnected | Event::IncomingConnection);
            let incoming = matches!(event, Event::IncomingConnection);
            let actions = s.handle(event);
            let after = s.state();

            prop_assert_eq!(
                s.negotiated().is_some(),
                matches!(after, State::OpenConfirm | State::Established)
            );
            for a in &actions {
                match a {
                    Action::Connect => prop_assert!(!passive),
                    Action::Established(n) => {
                        prop_assert_eq!(before, State::OpenConfirm);
                        prop_assert_eq!(after, State::Established);
                        prop_assert!(n.hold_time == 0 || n.hold_time >= 3);
                        prop_assert!(n.hold_time <= hold_time);
                        prop_assert!(n.keepalive_time <= n.hold_time / 3 || n.hold_time == 0);
                    }
                    Action::Down { .. } => prop_assert!(connected(before)),
                    Action::Accept | Action::Reject(_) => prop_assert!(incoming),
                    Action::Send(Message::Notification(_)) => {
                        prop_assert!(!received_notification);
                        prop_assert!(connected(before));
                    }
                    // Something is only sent on a connection.
                    Action::Send(_) => prop_assert!(connected(before) || tcp_up),
                    Action::ArmTimer(Timer::ConnectRetry, d) => {
                        prop_assert!(*d <= max_wait);
                        prop_assert!(*d > Duration::ZERO);
                    }
                    _ => {}
                }
            }
            // An incoming connection is always answered, once.
            if incoming {
                let answers = actions
                    .iter()
                    .filter(|a| matches!(a, Action::Accept | Action::Reject(_)))
                    .count();
                prop_assert_eq!(answers, 1);
            }
            // Leaving a connected state always closes the connection.
            if connected(before) && !connected(after) {
                prop_assert!(actions.contains(&Action::Close));
            }
        }
    }
}
