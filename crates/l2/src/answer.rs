//! What to send, as pure functions: the reply to a received frame, given the interface's MAC
//! and which addresses are owned on it, and the announcements sent on takeover.
//!
//! The rules (RFC 826, RFC 5227, RFC 4861 §7.2.4):
//! - An ARP request for an owned IPv4 address, probes (sender 0.0.0.0) included, gets an ARP
//!   reply from our MAC to the requester's MAC; a prober learns of the conflict that way.
//! - A valid Neighbor Solicitation for an owned IPv6 address gets a Neighbor Advertisement with
//!   O=1, R=0 and a Target Link-Layer Address option, hop limit 255: unicast to the solicitation's
//!   source with S=1 (address resolution and NUD alike), or, for a DAD probe (source ::), to
//!   ff02::1 with S=0 so no other host takes the address.
//! - Nothing for frames from our own MAC, for addresses not owned, or for invalid solicitations.
//!
//! Replies keep the VLAN tags of the question. This module does no I/O and keeps no state.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frame::Frame;
use crate::validate::{DropReason, ValidNs, validate_neighbor_solicitation};
use crate::wire::{
    ALL_NODES, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv6Packet, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscRepr, NeighborFlags,
    NeighborMessage, VlanTags, multicast_ethernet_addr, solicited_node_multicast,
    solicited_node_multicast_ethernet_addr,
};

/// Room for the largest frame built here: a Neighbor Advertisement with a Target Link-Layer
/// Address option behind two VLAN tags is 94 bytes.
pub const MAX_FRAME_LEN: usize = 128;

/// Hop Limit of every neighbor discovery message sent, so receivers know it is on-link.
const ND_HOP_LIMIT: u8 = 255;

/// A frame ready to send (no FCS; the NIC pads it to the Ethernet minimum), held inline so
/// answering does not allocate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameBuf {
    bytes: [u8; MAX_FRAME_LEN],
    len: usize,
}

impl FrameBuf {
    fn zeroed(len: usize) -> FrameBuf {
        debug_assert!(len <= MAX_FRAME_LEN);
        FrameBuf {
            bytes: [0; MAX_FRAME_LEN],
            len: len.min(MAX_FRAME_LEN),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

impl AsRef<[u8]> for FrameBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::ops::Deref for FrameBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameBuf[")?;
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "]")
    }
}

/// Which rule produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerKind {
    /// An ARP reply to a request or an RFC 5227 probe.
    ArpReply,
    /// A solicited Neighbor Advertisement (S=1) to the solicitation's source.
    NeighborAdvertisement,
    /// A Neighbor Advertisement to all nodes (S=0) defending the address against a DAD probe.
    DadDefense,
}

/// A reply to send, and the owned address it is for (the `ip` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub address: IpAddr,
    pub kind: AnswerKind,
    pub frame: FrameBuf,
}

/// Why a frame gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NoAnswer {
    /// The frame came from our own MAC: one of ours, looped back.
    #[error("sent from this interface's own MAC")]
    OwnFrame,
    /// An ARP reply, a Neighbor Advertisement, or unrelated traffic.
    #[error("not a request or solicitation")]
    NotAQuestion,
    /// The question is about an address not owned on this interface.
    #[error("{0} is not owned on this interface")]
    NotOwned(IpAddr),
    /// The frame is malformed or breaks a validation rule.
    #[error("dropped: {0}")]
    Dropped(DropReason),
}

impl From<DropReason> for NoAnswer {
    fn from(reason: DropReason) -> Self {
        NoAnswer::Dropped(reason)
    }
}

/// The reply to `frame` received on an interface whose MAC is `our_mac`, where `owns` says
/// whether an address is owned on that interface.
pub fn answer(
    frame: &Frame<'_>,
    our_mac: EthernetAddress,
    owns: impl Fn(IpAddr) -> bool,
) -> Result<Answer, NoAnswer> {
    if frame.ethernet().src_addr == our_mac {
        return Err(NoAnswer::OwnFrame);
    }
    match frame {
        Frame::Arp { ethernet, arp } => answer_arp(ethernet, arp, our_mac, owns),
        Frame::NeighborSolicitation(nd) => {
            let ns = validate_neighbor_solicitation(nd)?;
            if ns.source_link_layer_addr == Some(our_mac) {
                // Ours, relayed back from elsewhere: the reply would be addressed to us.
                return Err(NoAnswer::OwnFrame);
            }
            answer_neighbor_solicitation(&ns, our_mac, owns)
        }
        Frame::NeighborAdvertisement(_) | Frame::Other { .. } => Err(NoAnswer::NotAQuestion),
    }
}

/// [`Frame::parse`] then [`answer`]; a frame that cannot be read is dropped for its reason.
pub fn answer_bytes(
    bytes: &[u8],
    our_mac: EthernetAddress,
    owns: impl Fn(IpAddr) -> bool,
) -> Result<Answer, NoAnswer> {
    let frame = Frame::parse(bytes).map_err(|err| NoAnswer::Dropped(err.into()))?;
    answer(&frame, our_mac, owns)
}

fn answer_arp(
    ethernet: &EthernetRepr,
    request: &ArpRepr,
    our_mac: EthernetAddress,
    owns: impl Fn(IpAddr) -> bool,
) -> Result<Answer, NoAnswer> {
    if request.operation != ArpOperation::Request {
        return Err(NoAnswer::NotAQuestion);
    }
    if request.sender_hardware_addr == our_mac {
        return Err(NoAnswer::OwnFrame);
    }
    let address = request.target_protocol_addr;
    if !owns(IpAddr::V4(address)) {
        return Err(NoAnswer::NotOwned(IpAddr::V4(address)));
    }
    if !request.sender_hardware_addr.is_unicast() {
        return Err(DropReason::SenderNotUnicast.into());
    }
    // RFC 826: swap sender and target, fill in our hardware address, turn it into a reply.
    // For a probe the target protocol address becomes 0.0.0.0, as RFC 5227 expects.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hardware_addr: our_mac,
        sender_protocol_addr: address,
        target_hardware_addr: request.sender_hardware_addr,
        target_protocol_addr: request.sender_protocol_addr,
    };
    let ethernet = EthernetRepr {
        dst_addr: request.sender_hardware_addr,
        src_addr: our_mac,
        vlan_tags: ethernet.vlan_tags,
        ethertype: EtherType::ARP,
    };
    Ok(Answer {
        address: IpAddr::V4(address),
        kind: AnswerKind::ArpReply,
        frame: build_arp(&ethernet, &reply),
    })
}

fn answer_neighbor_solicitation(
    ns: &ValidNs,
    our_mac: EthernetAddress,
    owns: impl Fn(IpAddr) -> bool,
) -> Result<Answer, NoAnswer> {
    let address = ns.target_addr;
    if !owns(IpAddr::V6(address)) {
        return Err(NoAnswer::NotOwned(IpAddr::V6(address)));
    }
    let (kind, flags, dst_addr, dst_mac) = if ns.is_dad() {
        (
            AnswerKind::DadDefense,
            NeighborFlags::OVERRIDE,
            ALL_NODES,
            multicast_ethernet_addr(ALL_NODES),
        )
    } else {
        // A NUD probe may leave out the option; its frame source is then the only address.
        let dst_mac = ns.source_link_layer_addr.unwrap_or(ns.ethernet.src_addr);
        if !dst_mac.is_unicast() {
            return Err(DropReason::SenderNotUnicast.into());
        }
        (
            AnswerKind::NeighborAdvertisement,
            NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            ns.src_addr,
            dst_mac,
        )
    };
    let ethernet = EthernetRepr {
        dst_addr: dst_mac,
        src_addr: our_mac,
        vlan_tags: ns.ethernet.vlan_tags,
        ethertype: EtherType::IPV6,
    };
    let advert = NdiscRepr::NeighborAdvertisement {
        flags,
        target_addr: address,
        target_link_layer_addr: Some(our_mac),
    };
    Ok(Answer {
        address: IpAddr::V6(address),
        kind,
        frame: build_ndisc(&ethernet, address, dst_addr, &advert, ND_HOP_LIMIT),
    })
}

/// An RFC 5227 §2.3 ARP Announcement: a broadcast request with sender and target protocol
/// address both `address` and a zero target hardware address. Caches that hold `address`
/// update to `our_mac`.
pub fn gratuitous_arp_request(our_mac: EthernetAddress, address: Ipv4Addr) -> FrameBuf {
    gratuitous_arp(
        our_mac,
        address,
        ArpOperation::Request,
        EthernetAddress::UNSPECIFIED,
    )
}

/// A gratuitous ARP reply, broadcast, with sender and target protocol address both `address`
/// and the target hardware address our own (the form RFC 5944 §4.6 describes); some devices
/// only update from replies.
pub fn gratuitous_arp_reply(our_mac: EthernetAddress, address: Ipv4Addr) -> FrameBuf {
    gratuitous_arp(our_mac, address, ArpOperation::Reply, our_mac)
}

fn gratuitous_arp(
    our_mac: EthernetAddress,
    address: Ipv4Addr,
    operation: ArpOperation,
    target_hardware_addr: EthernetAddress,
) -> FrameBuf {
    let ethernet = EthernetRepr {
        dst_addr: EthernetAddress::BROADCAST,
        src_addr: our_mac,
        vlan_tags: VlanTags::Untagged,
        ethertype: EtherType::ARP,
    };
    let arp = ArpRepr {
        operation,
        sender_hardware_addr: our_mac,
        sender_protocol_addr: address,
        target_hardware_addr,
        target_protocol_addr: address,
    };
    build_arp(&ethernet, &arp)
}

/// An unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) to ff02::1 with O=1, S=0, so every
/// node's cache entry for `address` moves to `our_mac`.
pub fn unsolicited_neighbor_advertisement(our_mac: EthernetAddress, address: Ipv6Addr) -> FrameBuf {
    let ethernet = EthernetRepr {
        dst_addr: multicast_ethernet_addr(ALL_NODES),
        src_addr: our_mac,
        vlan_tags: VlanTags::Untagged,
        ethertype: EtherType::IPV6,
    };
    let advert = NdiscRepr::NeighborAdvertisement {
        flags: NeighborFlags::OVERRIDE,
        target_addr: address,
        target_link_layer_addr: Some(our_mac),
    };
    build_ndisc(&ethernet, address, ALL_NODES, &advert, ND_HOP_LIMIT)
}

/// A broadcast ARP request from `sender` asking who has `target`: what a client sends (for
/// tests and benchmarks; herald only answers).
pub fn arp_request(
    vlan_tags: VlanTags,
    sender_mac: EthernetAddress,
    sender: Ipv4Addr,
    target: Ipv4Addr,
) -> FrameBuf {
    let ethernet = EthernetRepr {
        dst_addr: EthernetAddress::BROADCAST,
        src_addr: sender_mac,
        vlan_tags,
        ethertype: EtherType::ARP,
    };
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        sender_hardware_addr: sender_mac,
        sender_protocol_addr: sender,
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: target,
    };
    build_arp(&ethernet, &arp)
}

/// A Neighbor Solicitation for `target` from `src` to its solicited-node group, with a
/// source link-layer address option: what a client resolving `target` sends (for tests and
/// benchmarks; `hop_limit` other than 255 makes one RFC 4861 says to drop).
pub fn neighbor_solicitation(
    src_mac: EthernetAddress,
    src: Ipv6Addr,
    target: Ipv6Addr,
    hop_limit: u8,
) -> FrameBuf {
    let ethernet = EthernetRepr {
        dst_addr: solicited_node_multicast_ethernet_addr(target),
        src_addr: src_mac,
        vlan_tags: VlanTags::Untagged,
        ethertype: EtherType::IPV6,
    };
    let message = NdiscRepr::NeighborSolicitation {
        target_addr: target,
        source_link_layer_addr: Some(src_mac),
    };
    let dst = solicited_node_multicast(target);
    build_ndisc(&ethernet, src, dst, &message, hop_limit)
}

fn build_arp(ethernet: &EthernetRepr, arp: &ArpRepr) -> FrameBuf {
    let header_len = ethernet.header_len();
    let mut buf = FrameBuf::zeroed(header_len + arp.buffer_len());
    let bytes = buf.as_mut_bytes();
    ethernet.emit(&mut EthernetFrame::new_unchecked(&mut *bytes));
    arp.emit(&mut ArpPacket::new_unchecked(&mut bytes[header_len..]));
    buf
}

/// A neighbor discovery frame from `src_addr` to `dst_addr`, checksum filled.
fn build_ndisc(
    ethernet: &EthernetRepr,
    src_addr: Ipv6Addr,
    dst_addr: Ipv6Addr,
    message: &NdiscRepr,
    hop_limit: u8,
) -> FrameBuf {
    let message_len = message.buffer_len();
    let ipv6 = Ipv6Repr {
        src_addr,
        dst_addr,
        next_header: IpProtocol::ICMPV6,
        // At most 32 bytes; see MAX_FRAME_LEN.
        payload_len: message_len as u16,
        hop_limit,
    };
    let eth_len = ethernet.header_len();
    let ip_len = ipv6.header_len();
    let mut buf = FrameBuf::zeroed(eth_len + ipv6.buffer_len());
    let bytes = buf.as_mut_bytes();
    ethernet.emit(&mut EthernetFrame::new_unchecked(&mut *bytes));
    ipv6.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[eth_len..]));
    let icmp = &mut bytes[eth_len + ip_len..];
    message.emit(&mut NeighborMessage::new_unchecked(&mut *icmp));
    Icmpv6Packet::new_unchecked(icmp).fill_checksum(src_addr, dst_addr);
    buf
}
