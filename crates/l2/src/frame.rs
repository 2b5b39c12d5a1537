//! A received frame read as far as herald needs it: ARP, a Neighbor Solicitation or
//! Advertisement carried directly in IPv6 (no extension headers, as RFC 4861 requires for
//! messages it accepts in practice and as the BPF filter passes), or anything else.
//!
//! Reading stops at the ICMPv6 header for neighbor discovery: whether a solicitation is valid
//! is [`crate::validate`]'s question, so that each reason to drop it can be counted.

use crate::wire::{
    ArpPacket, ArpRepr, Error, EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet, Icmpv6Type,
    IpProtocol, Ipv6Packet, Ipv6Repr,
};

/// A Neighbor Solicitation or Advertisement frame: its Ethernet and IPv6 headers and the
/// ICMPv6 message (exactly the IPv6 payload), not yet validated.
#[derive(Debug, Clone)]
pub struct NdFrame<'a> {
    pub ethernet: EthernetRepr,
    pub ipv6: Ipv6Repr,
    pub icmpv6: Icmpv6Packet<&'a [u8]>,
}

/// What a received frame carries.
#[derive(Debug, Clone)]
pub enum Frame<'a> {
    Arp {
        ethernet: EthernetRepr,
        arp: ArpRepr,
    },
    NeighborSolicitation(NdFrame<'a>),
    NeighborAdvertisement(NdFrame<'a>),
    /// Any other EtherType, IPv6 not directly carrying ICMPv6, or another ICMPv6 type.
    Other {
        ethernet: EthernetRepr,
    },
}

impl<'a> Frame<'a> {
    /// Reads a frame as a packet socket delivers it (no FCS). An error means the frame claims
    /// to be ARP or IPv6 but its bytes do not hold what it claims.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, Error> {
        let frame = EthernetFrame::new_checked(bytes)?;
        let ethernet = EthernetRepr::parse(&frame)?;
        let payload: &'a [u8] = &bytes[frame.header_len()..];
        match ethernet.ethertype {
            EtherType::ARP => {
                let arp = ArpRepr::parse(&ArpPacket::new_checked(payload)?)?;
                Ok(Frame::Arp { ethernet, arp })
            }
            EtherType::IPV6 => {
                let packet = Ipv6Packet::new_checked(payload)?;
                let ipv6 = Ipv6Repr::parse(&packet)?;
                if ipv6.next_header != IpProtocol::ICMPV6 {
                    return Ok(Frame::Other { ethernet });
                }
                let message: &'a [u8] =
                    &payload[ipv6.header_len()..ipv6.header_len() + usize::from(ipv6.payload_len)];
                let icmpv6 = Icmpv6Packet::new_checked(message)?;
                let nd = |icmpv6| NdFrame {
                    ethernet,
                    ipv6,
                    icmpv6,
                };
                Ok(match icmpv6.msg_type() {
                    Icmpv6Type::NEIGHBOR_SOLICITATION => Frame::NeighborSolicitation(nd(icmpv6)),
                    Icmpv6Type::NEIGHBOR_ADVERTISEMENT => Frame::NeighborAdvertisement(nd(icmpv6)),
                    _ => Frame::Other { ethernet },
                })
            }
            _ => Ok(Frame::Other { ethernet }),
        }
    }

    pub fn ethernet(&self) -> &EthernetRepr {
        match self {
            Frame::Arp { ethernet, .. } | Frame::Other { ethernet } => ethernet,
            Frame::NeighborSolicitation(nd) | Frame::NeighborAdvertisement(nd) => &nd.ethernet,
        }
    }
}
