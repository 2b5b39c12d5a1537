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

pub mod fsm;
pub mod wire;
