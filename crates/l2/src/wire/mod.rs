//! Byte layouts of the frames herald answers: Ethernet II with up to two VLAN tags, ARP for
//! Ethernet/IPv4, the IPv6 fixed header, ICMPv6 and the Neighbor Solicitation/Advertisement
//! messages with their link-layer address options.
//!
//! Each layer has a zero-copy view (`…Frame`/`…Packet`/`…Message<T: AsRef<[u8]>>`) whose
//! `new_checked` constructor guarantees that every accessor stays inside the buffer, and a plain
//! `…Repr` that `parse`s from the view and `emit`s into it. Parsing never panics and never trusts
//! a length field it has not checked against the buffer.
//!
//! This module owns layouts only: it does not decide what is valid to answer (see
//! [`crate::validate`]) or what to answer (see [`crate::answer`](mod@crate::answer)), and it knows nothing of
//! sockets.

mod arp;
mod checksum;
mod ethernet;
mod icmpv6;
mod ipv6;
mod ndisc;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::{internet_checksum, pseudo_header_sum};
pub use ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, ParseEthernetAddressError, VlanTag,
    VlanTags,
};
pub use icmpv6::{Icmpv6Packet, Icmpv6Type};
pub use ipv6::{
    ALL_NODES, IpProtocol, Ipv6Packet, Ipv6Repr, is_solicited_node_multicast,
    multicast_ethernet_addr, solicited_node_multicast, solicited_node_multicast_ethernet_addr,
};
pub use ndisc::{
    NdOption, NdOptionRepr, NdOptionType, NdOptions, NdiscRepr, NeighborFlags, NeighborMessage,
};

/// The layer whose header or body a buffer was too short for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Ethernet,
    Arp,
    Ipv6,
    Icmpv6,
    NeighborDiscovery,
    NdOption,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet header",
            Layer::Arp => "ARP packet",
            Layer::Ipv6 => "IPv6 packet",
            Layer::Icmpv6 => "ICMPv6 header",
            Layer::NeighborDiscovery => "neighbor discovery message",
            Layer::NdOption => "neighbor discovery option",
        })
    }
}

/// Why bytes could not be read as the layout they claim to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer ends before a header, or before the length one of its fields announces.
    #[error("truncated {0}")]
    Truncated(Layer),
    /// The IPv6 header's version field is not 6.
    #[error("IP version {0} in an IPv6 header")]
    Ipv6Version(u8),
    /// ARP for another hardware or protocol than Ethernet/IPv4, which is all herald answers.
    #[error(
        "ARP for hardware type {hardware_type} / protocol type {protocol_type:#06x} with address \
         lengths {hardware_len}/{protocol_len}; only Ethernet/IPv4 (1 / 0x0800, 6/4) is handled"
    )]
    ArpNotEthernetIpv4 {
        hardware_type: u16,
        protocol_type: u16,
        hardware_len: u8,
        protocol_len: u8,
    },
    /// An ICMPv6 message that is not a Neighbor Solicitation or Advertisement.
    #[error("ICMPv6 type {0} is not a Neighbor Solicitation or Advertisement")]
    NotNeighborDiscovery(u8),
    /// A neighbor discovery option whose length is 0, which RFC 4861 §4.6 makes invalid
    /// (and which would otherwise loop forever).
    #[error("neighbor discovery option of type {0} has length 0")]
    OptionLengthZero(u8),
    /// A link-layer address option whose length is not one 8-octet unit, the only size an
    /// Ethernet address has in it (RFC 2464 §6).
    #[error("link-layer address option of type {option_type} has length {length}; Ethernet's is 1")]
    LinkLayerOptionLength { option_type: u8, length: u8 },
}

pub type Result<T> = std::result::Result<T, Error>;
