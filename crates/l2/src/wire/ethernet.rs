//! Ethernet II frames (IEEE 802.3 with an EtherType), optionally carrying one or two VLAN tags
//! (IEEE 802.1Q C-tag, 802.1ad S-tag) between the source address and the EtherType.
//!
//! The frame check sequence is not part of the buffer: packet sockets neither deliver nor
//! expect it. Padding after the payload is left in [`EthernetFrame::payload`]; each upper layer
//! knows its own length.

use std::fmt;
use std::str::FromStr;

use super::{Error, Layer, Result};

/// A 48-bit IEEE MAC address, as carried in Ethernet headers and in ARP and ND options.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// Reads an address from exactly six bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<EthernetAddress> {
        bytes.try_into().ok().map(EthernetAddress)
    }

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The I/G bit: group (multicast or broadcast) rather than individual.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// An individual address that is not all zeros: one a reply can be sent to.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::UNSPECIFIED
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address string that is not six colon- or hyphen-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex octets separated by ':' or '-')")]
pub struct ParseEthernetAddressError(String);

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let err = || ParseEthernetAddressError(s.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(EthernetAddress(octets))
    }
}

/// The 16-bit EtherType (or tag protocol identifier) naming what follows in a frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q customer VLAN tag (C-tag).
    pub const CUSTOMER_VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// IEEE 802.1ad service VLAN tag (S-tag), the outer tag of "Q-in-Q".
    pub const SERVICE_VLAN: EtherType = EtherType(0x88a8);

    /// Whether this value introduces a VLAN tag rather than the payload.
    pub const fn is_vlan_tpid(self) -> bool {
        self.0 == Self::CUSTOMER_VLAN.0 || self.0 == Self::SERVICE_VLAN.0
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::CUSTOMER_VLAN => f.write_str("802.1Q"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::SERVICE_VLAN => f.write_str("802.1ad"),
            EtherType(other) => write!(f, "{other:#06x}"),
        }
    }
}

/// One VLAN tag: its tag protocol identifier and tag control information (PCP, DEI, VID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    pub tpid: EtherType,
    pub tci: u16,
}

impl VlanTag {
    /// The 12-bit VLAN identifier.
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// The 3-bit priority code point.
    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// The drop eligible indicator.
    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// The VLAN tags a frame carries, outermost first. A reply copies them so it leaves on the VLAN
/// the question came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VlanTags {
    #[default]
    Untagged,
    Single(VlanTag),
    Double {
        outer: VlanTag,
        inner: VlanTag,
    },
}

impl VlanTags {
    /// How many tags there are (0, 1 or 2).
    pub const fn count(&self) -> usize {
        match self {
            VlanTags::Untagged => 0,
            VlanTags::Single(_) => 1,
            VlanTags::Double { .. } => 2,
        }
    }

    fn tags(&self) -> impl Iterator<Item = VlanTag> {
        let (a, b) = match *self {
            VlanTags::Untagged => (None, None),
            VlanTags::Single(tag) => (Some(tag), None),
            VlanTags::Double { outer, inner } => (Some(outer), Some(inner)),
        };
        a.into_iter().chain(b)
    }
}

mod field {
    use std::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// Where the EtherType of an untagged frame, or the first tag's TPID, sits.
    pub const TYPE_OR_TPID: usize = 12;
    pub const TAG_LEN: usize = 4;
    pub const UNTAGGED_HEADER_LEN: usize = 14;
}

/// The most VLAN tags a frame is read through.
pub(crate) const MAX_VLAN_TAGS: usize = 2;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short. Use for
    /// buffers this crate sizes itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer, checking that it holds the whole header, tags included.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < self.header_len() {
            Err(Error::Truncated(Layer::Ethernet))
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// How many VLAN tags precede the EtherType, reading at most two; a frame
    /// with more has a TPID as its EtherType.
    pub fn vlan_tag_count(&self) -> usize {
        let data = self.buffer.as_ref();
        let mut count = 0;
        while count < MAX_VLAN_TAGS {
            let at = field::TYPE_OR_TPID + count * field::TAG_LEN;
            match data.get(at..at + 2) {
                Some(&[hi, lo]) if EtherType(u16::from_be_bytes([hi, lo])).is_vlan_tpid() => {
                    count += 1
                }
                _ => break,
            }
        }
        count
    }

    /// The header length: addresses, tags and EtherType.
    pub fn header_len(&self) -> usize {
        field::UNTAGGED_HEADER_LEN + self.vlan_tag_count() * field::TAG_LEN
    }

    fn u16_at(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    pub fn dst_addr(&self) -> EthernetAddress {
        let mut octets = [0; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        EthernetAddress(octets)
    }

    pub fn src_addr(&self) -> EthernetAddress {
        let mut octets = [0; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        EthernetAddress(octets)
    }

    fn vlan_tag(&self, index: usize) -> VlanTag {
        let at = field::TYPE_OR_TPID + index * field::TAG_LEN;
        VlanTag {
            tpid: EtherType(self.u16_at(at)),
            tci: self.u16_at(at + 2),
        }
    }

    pub fn vlan_tags(&self) -> VlanTags {
        match self.vlan_tag_count() {
            0 => VlanTags::Untagged,
            1 => VlanTags::Single(self.vlan_tag(0)),
            _ => VlanTags::Double {
                outer: self.vlan_tag(0),
                inner: self.vlan_tag(1),
            },
        }
    }

    /// The EtherType after the tags: what the payload is.
    pub fn ethertype(&self) -> EtherType {
        EtherType(self.u16_at(self.header_len() - 2))
    }

    /// Everything after the header, including any padding up to the 60-byte minimum.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Writes the tags and the EtherType; together they decide where the payload starts.
    pub fn set_vlan_tags_and_ethertype(&mut self, tags: VlanTags, ethertype: EtherType) {
        let data = self.buffer.as_mut();
        let mut at = field::TYPE_OR_TPID;
        for tag in tags.tags() {
            data[at..at + 2].copy_from_slice(&tag.tpid.0.to_be_bytes());
            data[at + 2..at + 4].copy_from_slice(&tag.tci.to_be_bytes());
            at += field::TAG_LEN;
        }
        data[at..at + 2].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// The fields of an Ethernet II header.
///
/// `ethertype` is only a VLAN TPID when two tags precede it (a third tag is not read through);
/// with fewer tags such a value would be read back as another tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub dst_addr: EthernetAddress,
    pub src_addr: EthernetAddress,
    pub vlan_tags: VlanTags,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            dst_addr: frame.dst_addr(),
            src_addr: frame.src_addr(),
            vlan_tags: frame.vlan_tags(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        field::UNTAGGED_HEADER_LEN + self.vlan_tags.count() * field::TAG_LEN
    }

    /// Writes the header; the buffer must hold at least [`Self::header_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_vlan_tags_and_ethertype(self.vlan_tags, self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);

    #[rustfmt::skip]
    const UNTAGGED_ARP: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source
        0x08, 0x06,                         // EtherType: ARP
        0xaa, 0xbb,                         // payload (two bytes of it)
    ];

    #[rustfmt::skip]
    const QINQ_IPV6: [u8; 22] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x01, // destination: solicited-node multicast MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source
        0x88, 0xa8, 0x00, 0x64,             // S-tag: TPID 802.1ad, PCP 0, DEI 0, VID 100
        0x81, 0x00, 0xa0, 0xc8,             // C-tag: TPID 802.1Q, PCP 5, DEI 0, VID 200
        0x86, 0xdd,                         // EtherType: IPv6
    ];

    #[test]
    fn untagged_known_answer() {
        let frame = EthernetFrame::new_checked(&UNTAGGED_ARP[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.dst_addr, EthernetAddress::BROADCAST);
        assert_eq!(repr.src_addr, MAC_A);
        assert_eq!(repr.vlan_tags, VlanTags::Untagged);
        assert_eq!(repr.ethertype, EtherType::ARP);
        assert_eq!(frame.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn double_tagged_known_answer() {
        let frame = EthernetFrame::new_checked(&QINQ_IPV6[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        let VlanTags::Double { outer, inner } = repr.vlan_tags else {
            panic!("expected two tags, got {:?}", repr.vlan_tags);
        };
        assert_eq!(
            (outer.tpid, outer.vid(), outer.pcp()),
            (EtherType::SERVICE_VLAN, 100, 0)
        );
        assert_eq!(
            (inner.tpid, inner.vid(), inner.pcp(), inner.dei()),
            (EtherType::CUSTOMER_VLAN, 200, 5, false)
        );
        assert_eq!(repr.ethertype, EtherType::IPV6);
        assert!(frame.payload().is_empty());

        let mut out = [0u8; 22];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out, QINQ_IPV6);
    }

    #[test]
    fn tag_without_room_for_ethertype_is_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&QINQ_IPV6[..14]).unwrap_err(),
            Error::Truncated(Layer::Ethernet)
        );
        assert_eq!(
            EthernetFrame::new_checked(&QINQ_IPV6[..19]).unwrap_err(),
            Error::Truncated(Layer::Ethernet)
        );
        assert!(EthernetFrame::new_checked(&UNTAGGED_ARP[..13]).is_err());
    }

    #[test]
    fn third_tag_is_the_ethertype() {
        let mut bytes = QINQ_IPV6.to_vec();
        bytes[20..22].copy_from_slice(&[0x81, 0x00]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::CUSTOMER_VLAN);
    }

    #[test]
    fn mac_address_text() {
        assert_eq!("02:00:00:00:00:0a".parse(), Ok(MAC_A));
        assert_eq!("02-00-00-00-00-0A".parse(), Ok(MAC_A));
        assert_eq!(MAC_A.to_string(), "02:00:00:00:00:0a");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0a:0b",
            "02:00:00:00:00:0g",
            "002:00:00:00:00:0a",
            "02::00:00:00:0a",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(EthernetAddress([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(MAC_A.is_unicast());
        assert!(!EthernetAddress::UNSPECIFIED.is_unicast());
    }
}
