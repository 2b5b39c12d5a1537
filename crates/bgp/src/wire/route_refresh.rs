//! ROUTE-REFRESH (RFC 2918, with the RFC 7313 message subtype in the reserved octet).

use super::Family;
use super::error::Error;

/// A zero-copy view of a ROUTE-REFRESH body (the octets after the message header).
#[derive(Debug, Clone)]
pub struct RouteRefreshPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RouteRefreshPacket<T> {
    pub const BODY_LEN: usize = 4;

    /// Wraps a buffer without checking it: the accessors panic if it is too short. For
    /// octets from the network use `new_checked`.
    pub fn new_unchecked(buffer: T) -> Self {
        RouteRefreshPacket { buffer }
    }

    /// Wraps a ROUTE-REFRESH body, which must be exactly four octets (RFC 7313 §5).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len != Self::BODY_LEN {
            return Err(Error::RouteRefreshLength(
                u16::try_from(len + super::HEADER_LEN).unwrap_or(u16::MAX),
            ));
        }
        Ok(RouteRefreshPacket { buffer })
    }

    pub fn afi(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// 0 for a normal request; 1 and 2 mark the beginning and end of an enhanced refresh.
    pub fn subtype(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    pub fn safi(&self) -> u8 {
        self.buffer.as_ref()[3]
    }
}

/// A ROUTE-REFRESH message: the peer asks for the Adj-RIB-Out of one family again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefreshRepr {
    pub family: Family,
    pub subtype: u8,
}

impl RouteRefreshRepr {
    pub fn new(family: Family) -> Self {
        RouteRefreshRepr { family, subtype: 0 }
    }

    pub fn parse<T: AsRef<[u8]>>(packet: &RouteRefreshPacket<T>) -> Self {
        RouteRefreshRepr {
            family: Family::new(packet.afi(), packet.safi()),
            subtype: packet.subtype(),
        }
    }

    pub fn buffer_len(&self) -> usize {
        4
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.family.safi);
    }
}
