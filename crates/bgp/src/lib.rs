//! herald's announce-only BGP speaker.
//!
//! This crate owns the BGP protocol and nothing else: [`wire`] encodes and decodes messages
//! (RFC 4271 and the extensions herald speaks), [`fsm`] is the per-peer session state machine
//! as a pure type that turns events into actions. It knows nothing of Kubernetes Services or
//! MetalLB: it is given prefixes with their attributes and peers to talk to.
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
pub mod wire;

pub use adj_rib_out::{RouteAttrs, Withheld};
pub use speaker::{PeerConfig, PeerConfigError, PeerStatus, Routes, Speaker, SpeakerConfig};
