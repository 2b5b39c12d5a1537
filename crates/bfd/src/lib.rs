//! herald's BFD: Bidirectional Forwarding Detection (RFC 5880) in asynchronous mode, over
//! UDP single-hop (RFC 5881) and multihop (RFC 5883), for the BGP sessions whose BGPPeer
//! names a BFDProfile.
//!
//! This crate owns BFD and nothing else: [`packet`] is the Control packet codec,
//! [`session`] the per-session state machine as a pure type (events in, actions out, time
//! and randomness injected), [`runner`] the sockets and one tokio task per session around
//! it. It knows nothing of BGP or MetalLB: the binary starts a session per BGP peer with
//! its profile's values and takes a session going down as its BGP session's end.
//!
//! How MetalLB's BFDProfile maps here (the binary does the mapping):
//!
//! | BFDProfile | here |
//! |---|---|
//! | `receiveInterval` | Required Min RX Interval ([`session::Config::required_min_rx`]) |
//! | `transmitInterval` | Desired Min TX Interval, once Up; at least 1 s before (RFC 5880 §6.8.3) |
//! | `detectMultiplier` | Detect Mult |
//! | `passiveMode` | the passive role (RFC 5880 §6.1): silent until the peer speaks |
//! | `minimumTtl` | multihop sessions: the lowest TTL accepted; single-hop always needs 255 (RFC 5881 §5) |
//! | `echoMode`, `echoInterval` | not run: Required Min Echo RX is sent as 0, so no echo packets are looped through the node or sent (the binary warns when a profile asks for echo) |
//!
//! ```
//! use bfd::packet::{ControlRepr, State};
//! use bfd::session::{Action, Config, Event, Session, Timer};
//! use std::time::Duration;
//!
//! let config = Config {
//!     local_discriminator: 1,
//!     desired_min_tx: Duration::from_millis(300),
//!     required_min_rx: Duration::from_millis(300),
//!     detect_multiplier: 3,
//!     passive: false,
//! };
//! let mut session = Session::new(config, || 0u32).unwrap();
//! let actions = session.handle(Event::Start);
//! let Action::Send(first) = actions[1] else { unreachable!() };
//! assert_eq!((first.state, first.desired_min_tx), (State::Down, 1_000_000));
//! let bytes = first.to_bytes();
//! assert_eq!(ControlRepr::from_bytes(&bytes), Ok(first));
//! // The peer answers Down: we go Init, and the detection timer runs.
//! let mut answer = first;
//! answer.my_discriminator = 9;
//! session.handle(Event::Received(answer));
//! assert_eq!(session.state(), State::Init);
//! assert_eq!(session.handle(Event::TimerFired(Timer::Detect))[0], Action::StateChanged {
//!     from: State::Init,
//!     to: State::Down,
//!     diagnostic: bfd::packet::Diagnostic::CONTROL_DETECTION_TIME_EXPIRED,
//! });
//! ```
//!
//! Parsing never panics and never trusts a length field.

pub mod packet;
pub mod runner;
pub mod session;

pub use packet::{Diagnostic, State};
pub use runner::{Bfd, BfdEvent, Error, SessionConfig, SessionStatus};
