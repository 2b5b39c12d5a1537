//! herald's Layer 2 half: answering ARP and IPv6 Neighbor Solicitations for the addresses this
//! node owns, on raw packet sockets, and announcing them when they are gained.
//!
//! Pure parts (no sockets, no clock):
//! - [`wire`]: zero-copy views and plain representations of Ethernet II (with VLAN tags), ARP,
//!   IPv6, ICMPv6 and Neighbor Solicitation/Advertisement.
//! - [`frame`]: one received frame read as far as herald cares (ARP, NS, NA or other).
//! - [`validate`]: RFC 4861 §7.1.1 validation of a Neighbor Solicitation, and the
//!   [`DropReason`]s that label dropped frames in metrics.
//! - [`answer`](mod@answer): the reply to a frame, given the interface MAC and which addresses are owned;
//!   the gratuitous ARP and unsolicited advertisement builders for takeovers.
//! - [`claim`]: frames in which another station claims an owned address, and the
//!   rate-limited re-announcement that answers a conflicting claim.
//! - [`ratelimit`]: token buckets per interface and per source, and the documented defaults.
//! - [`bpf`]: the classic BPF program that lets only ARP and NS/NA frames reach user space.
//!
//! I/O, on tokio:
//! - [`socket`]: the AF_PACKET socket per interface, filter attached, and its multicast groups.
//! - [`link`]: this namespace's links and their addresses from rtnetlink events, and interface
//!   selection.
//! - [`mld`]: solicited-node group memberships at the IPv6 layer, so the kernel sends MLD
//!   reports and snooping switches forward solicitations.
//! - [`responder`]: the task per interface that answers and announces, and its counters.
//!
//! This crate knows nothing of Services, MetalLB or leases; it is told which addresses are
//! owned on which interface.

pub mod answer;
pub mod bpf;
pub mod claim;
pub mod frame;
pub mod link;
pub mod mld;
pub mod ratelimit;
pub mod responder;
pub mod socket;
pub mod validate;
pub mod wire;

pub use answer::{
    Answer, AnswerKind, FrameBuf, NoAnswer, answer, answer_bytes, arp_request,
    gratuitous_arp_reply, gratuitous_arp_request, neighbor_solicitation,
    unsolicited_neighbor_advertisement,
};
pub use claim::{Claim, claimed};
pub use frame::{Frame, NdFrame};
pub use link::{
    InterfaceSelection, Link, LinkMonitor, LinkTable, MonitorHealth, Resolved, TaskHealth, resolve,
};
pub use responder::{AddressStats, Config, InterfaceStats, Responder, Stats};
pub use validate::{
    DropReason, ValidNs, validate_neighbor_advertisement, validate_neighbor_solicitation,
};
pub use wire::EthernetAddress;
