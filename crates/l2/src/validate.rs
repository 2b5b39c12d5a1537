//! Validation of a received Neighbor Solicitation (RFC 4861 §7.1.1) and Advertisement (§7.1.2),
//! and the reasons a frame is dropped without an answer, named for use as a metric label
//! (`herald_l2_dropped_total{reason}`).
//!
//! Owns the rules only: whether the target is owned, and what to reply, is
//! [`crate::answer`](mod@crate::answer)'s business.

use std::fmt;
use std::net::Ipv6Addr;

use crate::frame::NdFrame;
use crate::wire::Error;
use crate::wire::{
    EthernetAddress, EthernetRepr, NdiscRepr, NeighborFlags, NeighborMessage,
    is_solicited_node_multicast,
};

/// Why a frame that reached user space got no answer although it asked a question (or claimed
/// to). Each has a stable snake_case label, [`DropReason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// A header, or a length a header announces, runs past the end of the frame; or an NS is
    /// shorter than 24 octets.
    Short,
    /// A header field has a value its layout forbids (an IPv6 version other than 6).
    Malformed,
    /// ARP for other hardware or protocol than Ethernet/IPv4.
    ArpNotEthernetIpv4,
    /// The reply would go to a group or all-zero MAC: an ARP sender hardware address, or the
    /// NS source link-layer address (option or frame source), that is not unicast.
    SenderNotUnicast,
    /// IP Hop Limit is not 255, so the NS may come from off-link.
    HopLimit,
    /// The ICMPv6 checksum is wrong.
    BadChecksum,
    /// The ICMP Code is not 0.
    IcmpCode,
    /// The Target Address is a multicast address.
    MulticastTarget,
    /// The IP source is a multicast address, which no packet may carry (RFC 4291 §2.7).
    MulticastSource,
    /// An option has length 0.
    OptionLengthZero,
    /// A link-layer address option is not the size of an Ethernet address.
    BadLinkLayerOption,
    /// The IP source is unspecified (a DAD probe) but a Source Link-Layer Address option is
    /// present.
    UnspecifiedSourceWithSllao,
    /// The IP source is unspecified (a DAD probe) but the destination is not a solicited-node
    /// multicast address.
    DadNotToSolicitedNode,
}

impl DropReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [DropReason; 13] = [
        DropReason::Short,
        DropReason::Malformed,
        DropReason::ArpNotEthernetIpv4,
        DropReason::SenderNotUnicast,
        DropReason::HopLimit,
        DropReason::BadChecksum,
        DropReason::IcmpCode,
        DropReason::MulticastTarget,
        DropReason::MulticastSource,
        DropReason::OptionLengthZero,
        DropReason::BadLinkLayerOption,
        DropReason::UnspecifiedSourceWithSllao,
        DropReason::DadNotToSolicitedNode,
    ];

    /// The metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::Malformed => "malformed",
            DropReason::ArpNotEthernetIpv4 => "arp_not_ethernet_ipv4",
            DropReason::SenderNotUnicast => "sender_not_unicast",
            DropReason::HopLimit => "hop_limit",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::IcmpCode => "icmp_code",
            DropReason::MulticastTarget => "multicast_target",
            DropReason::MulticastSource => "multicast_source",
            DropReason::OptionLengthZero => "option_length_zero",
            DropReason::BadLinkLayerOption => "bad_link_layer_option",
            DropReason::UnspecifiedSourceWithSllao => "unspecified_source_with_sllao",
            DropReason::DadNotToSolicitedNode => "dad_not_to_solicited_node",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Error> for DropReason {
    fn from(err: Error) -> Self {
        match err {
            Error::Truncated(_) => DropReason::Short,
            Error::Ipv6Version(_) | Error::NotNeighborDiscovery(_) => DropReason::Malformed,
            Error::ArpNotEthernetIpv4 { .. } => DropReason::ArpNotEthernetIpv4,
            Error::OptionLengthZero(_) => DropReason::OptionLengthZero,
            Error::LinkLayerOptionLength { .. } => DropReason::BadLinkLayerOption,
        }
    }
}

/// A Neighbor Solicitation that passed RFC 4861 §7.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidNs {
    pub ethernet: EthernetRepr,
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub target_addr: Ipv6Addr,
    pub source_link_layer_addr: Option<EthernetAddress>,
}

impl ValidNs {
    /// A Duplicate Address Detection probe: the source is the unspecified address.
    pub fn is_dad(&self) -> bool {
        self.src_addr.is_unspecified()
    }
}

/// Checks a received Neighbor Solicitation against RFC 4861 §7.1.1, in the RFC's order, and
/// returns the first rule it breaks. Also drops a multicast IP source, which no packet may
/// carry.
pub fn validate_neighbor_solicitation(frame: &NdFrame<'_>) -> Result<ValidNs, DropReason> {
    let ipv6 = &frame.ipv6;
    if ipv6.hop_limit != 255 {
        return Err(DropReason::HopLimit);
    }
    if !frame.icmpv6.verify_checksum(ipv6.src_addr, ipv6.dst_addr) {
        return Err(DropReason::BadChecksum);
    }
    if frame.icmpv6.msg_code() != 0 {
        return Err(DropReason::IcmpCode);
    }
    let message = NeighborMessage::new_checked(frame.icmpv6.message()).map_err(|_| {
        // ICMP length (derived from the IP length) is less than 24 octets.
        DropReason::Short
    })?;
    if message.target_addr().is_multicast() {
        return Err(DropReason::MulticastTarget);
    }
    let NdiscRepr::NeighborSolicitation {
        target_addr,
        source_link_layer_addr,
    } = NdiscRepr::parse(&message)?
    else {
        // An advertisement handed in as a solicitation: not one to validate.
        return Err(DropReason::Malformed);
    };
    if ipv6.src_addr.is_multicast() {
        return Err(DropReason::MulticastSource);
    }
    if ipv6.src_addr.is_unspecified() {
        if !is_solicited_node_multicast(ipv6.dst_addr) {
            return Err(DropReason::DadNotToSolicitedNode);
        }
        if source_link_layer_addr.is_some() {
            return Err(DropReason::UnspecifiedSourceWithSllao);
        }
    }
    Ok(ValidNs {
        ethernet: frame.ethernet,
        src_addr: ipv6.src_addr,
        dst_addr: ipv6.dst_addr,
        target_addr,
        source_link_layer_addr,
    })
}

/// Checks a received Neighbor Advertisement against RFC 4861 §7.1.2 and returns what it says:
/// Hop Limit 255, a correct checksum, Code 0, at least 24 octets, a target that is not
/// multicast, S=0 when sent to a multicast address, and options of non-zero length.
pub fn validate_neighbor_advertisement(frame: &NdFrame<'_>) -> Result<NdiscRepr, DropReason> {
    let ipv6 = &frame.ipv6;
    if ipv6.hop_limit != 255 {
        return Err(DropReason::HopLimit);
    }
    if !frame.icmpv6.verify_checksum(ipv6.src_addr, ipv6.dst_addr) {
        return Err(DropReason::BadChecksum);
    }
    if frame.icmpv6.msg_code() != 0 {
        return Err(DropReason::IcmpCode);
    }
    let message =
        NeighborMessage::new_checked(frame.icmpv6.message()).map_err(|_| DropReason::Short)?;
    if message.target_addr().is_multicast() {
        return Err(DropReason::MulticastTarget);
    }
    let repr = NdiscRepr::parse(&message)?;
    match repr {
        NdiscRepr::NeighborAdvertisement { flags, .. }
            if ipv6.dst_addr.is_multicast() && flags.contains(NeighborFlags::SOLICITED) =>
        {
            Err(DropReason::Malformed)
        }
        NdiscRepr::NeighborAdvertisement { .. } => Ok(repr),
        // A solicitation handed in as an advertisement.
        NdiscRepr::NeighborSolicitation { .. } => Err(DropReason::Malformed),
    }
}
