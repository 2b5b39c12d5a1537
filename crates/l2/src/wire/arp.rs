//! ARP (RFC 826) packets, with the Ethernet/IPv4 representation and RFC 5227's probe and
//! announcement forms.
//!
//! The view reads any hardware/protocol combination by its declared address lengths; the
//! representation is Ethernet/IPv4 only, the one herald answers.

use std::net::Ipv4Addr;

use super::{Error, EtherType, EthernetAddress, Layer, Result};

/// ar$hrd for Ethernet (RFC 826; IANA ARP hardware type 1).
pub(crate) const HARDWARE_ETHERNET: u16 = 1;

/// ar$op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

mod field {
    pub const HARDWARE_TYPE: usize = 0;
    pub const PROTOCOL_TYPE: usize = 2;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: usize = 6;
    pub const ADDRESSES: usize = 8;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub(crate) const ETHERNET_IPV4_LEN: usize = 28;

/// A read/write view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer, checking that it holds the fixed fields and all four addresses at the
    /// lengths the packet declares.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRESSES || len < self.packet_len() {
            Err(Error::Truncated(Layer::Arp))
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HARDWARE_TYPE)
    }

    pub fn protocol_type(&self) -> EtherType {
        EtherType(self.u16_at(field::PROTOCOL_TYPE))
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HARDWARE_LEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL_LEN]
    }

    pub fn operation(&self) -> ArpOperation {
        self.u16_at(field::OPERATION).into()
    }

    /// The length the packet declares: fixed fields plus two hardware and two protocol
    /// addresses. Anything after it (Ethernet padding) is not part of the packet.
    pub fn packet_len(&self) -> usize {
        match self
            .buffer
            .as_ref()
            .get(field::HARDWARE_LEN..=field::PROTOCOL_LEN)
        {
            Some(&[hln, pln]) => field::ADDRESSES + 2 * (usize::from(hln) + usize::from(pln)),
            _ => field::ADDRESSES,
        }
    }

    fn address(&self, index: usize) -> &[u8] {
        let hln = usize::from(self.hardware_len());
        let pln = usize::from(self.protocol_len());
        // sha, spa, tha, tpa in that order.
        let lens = [hln, pln, hln, pln];
        let start = field::ADDRESSES + lens[..index].iter().sum::<usize>();
        &self.buffer.as_ref()[start..start + lens[index]]
    }

    /// ar$sha
    pub fn sender_hardware_addr(&self) -> &[u8] {
        self.address(0)
    }

    /// ar$spa
    pub fn sender_protocol_addr(&self) -> &[u8] {
        self.address(1)
    }

    /// ar$tha
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.address(2)
    }

    /// ar$tpa
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.address(3)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed fields of an Ethernet/IPv4 packet and the four addresses.
    fn set_ethernet_ipv4(&mut self, repr: &ArpRepr) {
        let data = self.buffer.as_mut();
        data[field::HARDWARE_TYPE..field::HARDWARE_TYPE + 2]
            .copy_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        data[field::PROTOCOL_TYPE..field::PROTOCOL_TYPE + 2]
            .copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        data[field::HARDWARE_LEN] = 6;
        data[field::PROTOCOL_LEN] = 4;
        data[field::OPERATION..field::OPERATION + 2]
            .copy_from_slice(&u16::from(repr.operation).to_be_bytes());
        data[8..14].copy_from_slice(&repr.sender_hardware_addr.0);
        data[14..18].copy_from_slice(&repr.sender_protocol_addr.octets());
        data[18..24].copy_from_slice(&repr.target_hardware_addr.0);
        data[24..28].copy_from_slice(&repr.target_protocol_addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet, in RFC 826's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_hardware_addr: EthernetAddress,
    pub sender_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<ArpRepr> {
        packet.check_len()?;
        let unsupported = || Error::ArpNotEthernetIpv4 {
            hardware_type: packet.hardware_type(),
            protocol_type: packet.protocol_type().0,
            hardware_len: packet.hardware_len(),
            protocol_len: packet.protocol_len(),
        };
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(unsupported());
        }
        let mac = |bytes: &[u8]| EthernetAddress::from_bytes(bytes).ok_or_else(unsupported);
        let ip = |bytes: &[u8]| {
            <[u8; 4]>::try_from(bytes)
                .map(Ipv4Addr::from)
                .map_err(|_| unsupported())
        };
        Ok(ArpRepr {
            operation: packet.operation(),
            sender_hardware_addr: mac(packet.sender_hardware_addr())?,
            sender_protocol_addr: ip(packet.sender_protocol_addr())?,
            target_hardware_addr: mac(packet.target_hardware_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet; the buffer must hold at least [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_ethernet_ipv4(self);
    }

    /// An RFC 5227 §2.1.1 ARP Probe: a request whose sender protocol address is all zeros, so
    /// that no cache learns from it. A host that owns the target must still answer it.
    pub fn is_probe(&self) -> bool {
        self.operation == ArpOperation::Request && self.sender_protocol_addr.is_unspecified()
    }

    /// An RFC 5227 §2.3 ARP Announcement (or a gratuitous reply): sender and target protocol
    /// addresses are the same, the sender's own.
    pub fn is_announcement(&self) -> bool {
        self.sender_protocol_addr == self.target_protocol_addr
            && !self.sender_protocol_addr.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request as Linux sends it: "who has 192.0.2.10? tell 192.0.2.1", with the 18 bytes
    /// of zero padding a NIC adds to reach the 60-byte Ethernet minimum.
    #[rustfmt::skip]
    const REQUEST: [u8; 46] = [
        0x00, 0x01,                         // hardware type: Ethernet
        0x08, 0x00,                         // protocol type: IPv4
        0x06,                               // hardware address length
        0x04,                               // protocol address length
        0x00, 0x01,                         // operation: request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender hardware address
        192, 0, 2, 1,                       // sender protocol address
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target hardware address: unknown
        192, 0, 2, 10,                      // target protocol address
        0, 0, 0, 0, 0, 0, 0, 0, 0,          // padding
        0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn request_known_answer() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.packet_len(), 28);
        let repr = ArpRepr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            ArpRepr {
                operation: ArpOperation::Request,
                sender_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                sender_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
                target_hardware_addr: EthernetAddress::UNSPECIFIED,
                target_protocol_addr: Ipv4Addr::new(192, 0, 2, 10),
            }
        );
        assert!(!repr.is_probe());
        assert!(!repr.is_announcement());

        let mut out = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST[..28]);
    }

    #[test]
    fn probe_and_announcement() {
        let mut repr = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap()).unwrap();
        repr.sender_protocol_addr = Ipv4Addr::UNSPECIFIED;
        assert!(repr.is_probe());
        assert!(!repr.is_announcement());
        repr.sender_protocol_addr = repr.target_protocol_addr;
        assert!(!repr.is_probe());
        assert!(repr.is_announcement());
    }

    #[test]
    fn declared_lengths_beyond_the_buffer_are_truncated() {
        let mut bytes = REQUEST;
        bytes[4] = 16; // a hardware length that needs 60 bytes
        assert_eq!(
            ArpPacket::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated(Layer::Arp)
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated(Layer::Arp)
        );
        assert!(ArpPacket::new_checked(&REQUEST[..5]).is_err());
    }

    #[test]
    fn other_hardware_is_unsupported() {
        let mut bytes = REQUEST;
        bytes[1] = 6; // IEEE 802 networks
        let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert!(matches!(
            ArpRepr::parse(&packet),
            Err(Error::ArpNotEthernetIpv4 {
                hardware_type: 6,
                ..
            })
        ));
        let mut bytes = REQUEST;
        bytes[5] = 3;
        let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.packet_len(), 26);
        assert!(ArpRepr::parse(&packet).is_err());
    }
}
