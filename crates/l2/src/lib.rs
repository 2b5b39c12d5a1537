//! herald's Layer 2 half: reading ARP and IPv6 neighbor discovery frames and deciding, as pure
//! functions, what to answer for the addresses this node owns.
//!
//! - [`wire`]: zero-copy views and plain representations of Ethernet II (with VLAN tags), ARP,
//!   IPv6, ICMPv6 and Neighbor Solicitation/Advertisement.
//! - [`frame`]: one received frame read as far as herald cares (ARP, NS, NA or other).
//! - [`validate`]: RFC 4861 §7.1.1 validation of a Neighbor Solicitation, and the
//!   [`DropReason`]s that label dropped frames in metrics.
//! - [`answer`](mod@answer): the reply to a frame, given the interface MAC and which addresses are owned;
//!   the gratuitous ARP and unsolicited advertisement builders for takeovers.
//! - [`bpf`]: the classic BPF program that lets only ARP and NS/NA frames reach user space.
//!
//! This crate knows nothing of Services, MetalLB or leases; it is told which addresses are
//! owned. Everything here is pure: no sockets, no clock.

pub mod answer;
pub mod bpf;
pub mod frame;
pub mod link;
pub mod responder;

pub mod socket;
pub mod validate;
pub mod wire;

pub use answer::{
    Answer, AnswerKind, FrameBuf, NoAnswer, answer, answer_bytes, gratuitous_arp_reply,
    gratuitous_arp_request, unsolicited_neighbor_advertisement,
};
pub use frame::{Frame, NdFrame};
pub use validate::{DropReason, ValidNs, validate_neighbor_solicitation};
pub use wire::EthernetAddress;
