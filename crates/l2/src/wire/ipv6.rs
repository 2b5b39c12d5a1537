//! The IPv6 fixed header (RFC 8200 §3) and the multicast addresses neighbor discovery uses:
//! all-nodes, solicited-node (RFC 4291 §2.7.1) and their Ethernet mapping (RFC 2464 §7).
//!
//! Extension headers are not walked: neighbor discovery messages that herald answers follow
//! the fixed header directly.

use std::fmt;
use std::net::Ipv6Addr;

use super::{Error, EthernetAddress, Layer, Result};

/// The link-local all-nodes multicast address, where DAD defences and unsolicited
/// advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `addr`: ff02::1:ff00:0/104 with the low 24 bits of
/// `addr` (RFC 4291 §2.7.1). Address resolution and DAD send their solicitations here.
pub fn solicited_node_multicast(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `addr` is in ff02::1:ff00:0/104.
pub fn is_solicited_node_multicast(addr: Ipv6Addr) -> bool {
    addr.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The Ethernet destination of an IPv6 multicast packet: 33:33 and the last four octets of the
/// group address (RFC 2464 §7).
pub fn multicast_ethernet_addr(group: Ipv6Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The MAC an interface must accept for solicitations about `addr` to reach it:
/// 33:33:ff:xx:xx:xx.
pub fn solicited_node_multicast_ethernet_addr(addr: Ipv6Addr) -> EthernetAddress {
    multicast_ethernet_addr(solicited_node_multicast(addr))
}

/// The Next Header / protocol number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HOP_BY_HOP => f.write_str("HopByHop"),
            Self::ICMPV6 => f.write_str("ICMPv6"),
            IpProtocol(other) => write!(f, "{other}"),
        }
    }
}

mod field {
    use std::ops::Range;
    pub const VERSION_CLASS_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Range<usize> = 8..24;
    pub const DESTINATION: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub(crate) const HEADER_LEN: usize = 40;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer, checking that it holds the fixed header and the whole payload its
    /// Payload Length announces. Bytes beyond that (Ethernet padding) are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            Err(Error::Truncated(Layer::Ipv6))
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn version_class_flow(&self) -> u32 {
        let data = self.buffer.as_ref();
        let mut word = [0; 4];
        word.copy_from_slice(&data[field::VERSION_CLASS_FLOW]);
        u32::from_be_bytes(word)
    }

    pub fn version(&self) -> u8 {
        (self.version_class_flow() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.version_class_flow() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.version_class_flow() & 0x000f_ffff
    }

    /// Payload Length. Reads 0 if the buffer is too short to hold it.
    pub fn payload_len(&self) -> u16 {
        match self.buffer.as_ref().get(field::PAYLOAD_LEN) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        }
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        Ipv6Addr::from(octets)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        Ipv6Addr::from(octets)
    }

    /// The payload, exactly Payload Length bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, with traffic class and flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VERSION_CLASS_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header.0;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of an IPv6 fixed header that neighbor discovery cares about. Traffic class and
/// flow label are emitted as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: u16,
    pub hop_limit: u8,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Ipv6Version(packet.version()));
        }
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Writes the header; the buffer must hold at least [`Self::header_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_version_class_flow(0, 0);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_known_answers() {
        let addr: Ipv6Addr = "2001:db8::aa:bbcc:ddee".parse().unwrap();
        let group = solicited_node_multicast(addr);
        assert_eq!(group, "ff02::1:ffcc:ddee".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node_multicast(group));
        assert!(!is_solicited_node_multicast(ALL_NODES));
        assert!(!is_solicited_node_multicast(addr));
        assert_eq!(
            solicited_node_multicast_ethernet_addr(addr),
            EthernetAddress([0x33, 0x33, 0xff, 0xcc, 0xdd, 0xee])
        );
        assert_eq!(
            multicast_ethernet_addr(ALL_NODES),
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1])
        );
    }

    #[rustfmt::skip]
    const HEADER: [u8; 44] = [
        0x60, 0x00, 0x00, 0x00,                   // version 6, traffic class 0, flow label 0
        0x00, 0x04,                               // payload length: 4
        0x3a,                                     // next header: ICMPv6
        0xff,                                     // hop limit: 255
        0xfe, 0x80, 0, 0, 0, 0, 0, 0,             // source: fe80::1
        0, 0, 0, 0, 0, 0, 0, 0x01,
        0xff, 0x02, 0, 0, 0, 0, 0, 0,             // destination: ff02::1:ff00:a
        0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x0a,
        0x87, 0x00, 0x12, 0x34,                   // payload
    ];

    #[test]
    fn header_known_answer() {
        let packet = Ipv6Packet::new_checked(&HEADER[..]).unwrap();
        let repr = Ipv6Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Ipv6Repr {
                src_addr: "fe80::1".parse().unwrap(),
                dst_addr: "ff02::1:ff00:a".parse().unwrap(),
                next_header: IpProtocol::ICMPV6,
                payload_len: 4,
                hop_limit: 255,
            }
        );
        assert_eq!(packet.payload(), &[0x87, 0x00, 0x12, 0x34]);
        let mut out = [0u8; 40];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER[..40]);
    }

    #[test]
    fn payload_length_is_checked_against_the_buffer() {
        assert_eq!(
            Ipv6Packet::new_checked(&HEADER[..43]).unwrap_err(),
            Error::Truncated(Layer::Ipv6)
        );
        assert!(Ipv6Packet::new_checked(&HEADER[..39]).is_err());
        // Trailing bytes (Ethernet padding) are not payload.
        let mut padded = HEADER.to_vec();
        padded.extend_from_slice(&[0; 8]);
        let packet = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 4);
    }

    #[test]
    fn version_must_be_6() {
        let mut bytes = HEADER;
        bytes[0] = 0x45;
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&packet), Err(Error::Ipv6Version(4)));
    }
}
