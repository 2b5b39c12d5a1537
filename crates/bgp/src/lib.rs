//! herald's announce-only BGP speaker.
//!
//! This crate owns the BGP protocol and nothing else: [`wire`] encodes and decodes messages
//! (RFC 4271 and the extensions herald speaks), [`fsm`] is the per-peer session state machine
//! as a pure type that turns events into actions, [`adj_rib_out`] turns wanted routes into
//! the UPDATEs that bring a peer up to date, [`socket`] makes connections with the options
//! BGP needs (source address, TTL, TCP MD5), and [`speaker`] runs one tokio task per peer
//! around them. It knows nothing of Kubernetes Services or MetalLB: it is given prefixes
//! with their attributes and peers to talk to.
//!
//! The speaker, as the binary drives it (inside a tokio runtime):
//!
//! ```no_run
//! # async fn example() {
//! use bgp::fsm::PeerAs;
//! use bgp::wire::{Community, Prefix};
//! use bgp::{PeerConfig, RouteAttrs, Routes, Speaker, SpeakerConfig, StopKind};
//! use std::time::Duration;
//!
//! let mut speaker = Speaker::new(SpeakerConfig {
//!     router_id: "192.0.2.1".parse().unwrap(),
//!     restarting: true, // just started: graceful restart R bit in each peer's first OPEN
//! });
//! // Routes first, so a restarted speaker's first table is complete before End-of-RIB.
//! let routes: Routes = [(
//!     Prefix::host("198.51.100.7".parse().unwrap()),
//!     RouteAttrs { communities: vec![Community::new(64512, 100)], ..Default::default() },
//! )]
//! .into_iter()
//! .collect();
//! speaker.set_routes("router-a", routes);
//! let mut peer = PeerConfig::new("router-a", "192.0.2.2".parse().unwrap(), 64512, PeerAs::Fixed(65000));
//! peer.graceful_restart = Some(120);
//! speaker.set_peers(vec![peer]).unwrap(); // level-based: only changed peers are reset
//! for status in speaker.status() {
//!     // metallb_bgp_session_up{peer}            = status.state == State::Established
//!     // metallb_bgp_updates_total{peer}         = status.updates_sent
//!     // metallb_bgp_announced_prefixes_total{peer} = status.advertised
//!     // metallb_bgp_pending_prefixes_total{peer}   = status.pending
//!     // herald_bgp_notifications_total{peer,direction,code,subcode}
//!     //     = status.notifications_sent / notifications_received, keyed by (code, subcode)
//!     let _ = status;
//! }
//! // For good: drain for 10 s with GRACEFUL_SHUTDOWN, then Hard Reset where negotiated.
//! // StopKind::Restart would keep the routes with the peer instead (graceful restart).
//! speaker.shutdown(Some(Duration::from_secs(10)), StopKind::Shutdown, "node-a is going away").await;
//! # }
//! ```
//!
//! Parsing never panics and never trusts a length field: every decoder checks the buffer
//! before reading and returns a typed error that says what was malformed and which
//! NOTIFICATION (or RFC 7606 handling) the error calls for.
//!
//! ```
//! use bgp::fsm::{Action, Config, Event, PeerAs, Session};
//! use bgp::wire::{self, AsPath, Message, NextHop, Origin, PathAttribute, Prefix};
//! use std::net::Ipv4Addr;
//!
//! // The session: events in, actions out; the caller owns sockets and timers.
//! let config = Config::new(64512, PeerAs::External, Ipv4Addr::new(10, 0, 0, 1));
//! let mut session = Session::new(config, || 0u32).unwrap();
//! assert_eq!(session.handle(Event::Start)[0], Action::Connect);
//! let actions = session.handle(Event::TcpConnected);
//! let Action::Send(open) = &actions[1] else { unreachable!() };
//! let bytes = open.to_bytes(&session.options()).unwrap();
//! assert_eq!(Message::from_bytes(&bytes, &session.options()).as_ref(), Ok(open));
//!
//! // Routes sharing attributes, packed into as few UPDATEs as fit.
//! let prefixes: Vec<Prefix> = (1..=3)
//!     .map(|i| Prefix::host(Ipv4Addr::new(192, 0, 2, i).into()))
//!     .collect();
//! let attributes = [
//!     PathAttribute::Origin(Origin::Igp),
//!     PathAttribute::AsPath(AsPath::origin(64512)),
//! ];
//! let next_hop = NextHop::V4(Ipv4Addr::new(10, 0, 0, 1));
//! let updates = wire::announce(&prefixes, &attributes, &next_hop, &session.options()).unwrap();
//! assert_eq!(updates.len(), 1);
//! ```

pub mod adj_rib_out;
pub mod fsm;
pub mod socket;
pub mod speaker;
pub mod unnumbered;
pub mod wire;

pub use adj_rib_out::{RouteAttrs, Withheld};
pub use fsm::StopKind;
pub use speaker::{
    PeerConfig, PeerConfigError, PeerStatus, Routes, SEND_QUEUE_LIMIT, SessionEvent, Speaker,
    SpeakerConfig, Transition,
};
