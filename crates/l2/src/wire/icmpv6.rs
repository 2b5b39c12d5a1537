//! The ICMPv6 header (RFC 4443 §2.1) and its checksum over the IPv6 pseudo-header
//! (RFC 4443 §2.3). Message bodies are read by the views that know them, such as
//! [`super::NeighborMessage`].

use std::fmt;
use std::net::Ipv6Addr;

use super::{Error, IpProtocol, Layer, Result, internet_checksum, pseudo_header_sum};

/// The ICMPv6 Type field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    pub const ROUTER_SOLICITATION: Icmpv6Type = Icmpv6Type(133);
    pub const ROUTER_ADVERTISEMENT: Icmpv6Type = Icmpv6Type(134);
    pub const NEIGHBOR_SOLICITATION: Icmpv6Type = Icmpv6Type(135);
    pub const NEIGHBOR_ADVERTISEMENT: Icmpv6Type = Icmpv6Type(136);
}

impl fmt::Debug for Icmpv6Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NEIGHBOR_SOLICITATION => f.write_str("NeighborSolicitation"),
            Self::NEIGHBOR_ADVERTISEMENT => f.write_str("NeighborAdvertisement"),
            Icmpv6Type(other) => write!(f, "{other}"),
        }
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: std::ops::Range<usize> = 2..4;
}

/// Length of the type, code and checksum fields.
pub(crate) const HEADER_LEN: usize = 4;

/// A read/write view of one ICMPv6 message: the whole upper-layer payload of its IPv6 packet.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer, checking that it holds type, code and checksum.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated(Layer::Icmpv6))
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::CHECKSUM.start], data[field::CHECKSUM.start + 1]])
    }

    /// The whole message, header included: the ICMPv6 length is its length.
    pub fn message(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the checksum covers the pseudo-header built from `src` and `dst` and the whole
    /// message.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        // A message longer than u32::MAX cannot come from an IPv6 packet without jumbograms.
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let pseudo = pseudo_header_sum(src, dst, IpProtocol::ICMPV6.0, len);
        internet_checksum(pseudo, data) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, msg_type: Icmpv6Type) {
        self.buffer.as_mut()[field::TYPE] = msg_type.0;
    }

    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Computes and writes the checksum over the pseudo-header and the whole buffer, which must
    /// be exactly the message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let pseudo = pseudo_header_sum(src, dst, IpProtocol::ICMPV6.0, len);
        let checksum = internet_checksum(pseudo, data);
        self.set_checksum(checksum);
    }
}
