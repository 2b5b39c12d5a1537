//! Neighbor Solicitation and Neighbor Advertisement messages (RFC 4861 §4.3, §4.4) and the
//! options they carry (§4.6): Source and Target Link-Layer Address, in their Ethernet form
//! (RFC 2464 §6). Options of other types are stepped over.

use std::fmt;
use std::net::Ipv6Addr;

use super::{Error, EthernetAddress, Icmpv6Type, Layer, Result};

/// The R, S and O flags of a Neighbor Advertisement.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(u8);

impl NeighborFlags {
    pub const NONE: NeighborFlags = NeighborFlags(0);
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a Neighbor Solicitation from a unicast source.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: replace a cached link-layer address.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    const ALL: u8 = 0xe0;

    /// Keeps the three flag bits of the first reserved octet and drops the rest.
    pub const fn from_bits_truncate(bits: u8) -> NeighborFlags {
        NeighborFlags(bits & Self::ALL)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | other.0)
    }
}

impl std::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for NeighborFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::ROUTER, "R"),
            (Self::SOLICITED, "S"),
            (Self::OVERRIDE, "O"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&set.join("|"))
        }
    }
}

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 4;
    pub const RESERVED: Range<usize> = 4..8;
    pub const TARGET: Range<usize> = 8..24;
    pub const OPTIONS: usize = 24;
}

/// Length of a Neighbor Solicitation or Advertisement without options; RFC 4861 §7.1.1 and
/// §7.1.2 require at least this much.
pub(crate) const MESSAGE_LEN: usize = 24;

/// A read/write view of a Neighbor Solicitation or Advertisement: the whole ICMPv6 message,
/// which these two lay out alike.
#[derive(Debug, Clone)]
pub struct NeighborMessage<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborMessage<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        NeighborMessage { buffer }
    }

    /// Wraps a buffer, checking that it holds the fields up to the target address.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let message = Self::new_unchecked(buffer);
        message.check_len()?;
        Ok(message)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < MESSAGE_LEN {
            Err(Error::Truncated(Layer::NeighborDiscovery))
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type(self.buffer.as_ref()[0])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The R/S/O flags (meaningful in an advertisement; a solicitation's field is reserved).
    pub fn flags(&self) -> NeighborFlags {
        NeighborFlags::from_bits_truncate(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn target_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        Ipv6Addr::from(octets)
    }

    /// The raw options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }

    /// The options, one by one; iteration stops after the first malformed one.
    pub fn option_iter(&self) -> NdOptions<'_> {
        NdOptions::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NeighborMessage<T> {
    pub fn set_msg_type(&mut self, msg_type: Icmpv6Type) {
        self.buffer.as_mut()[0] = msg_type.0;
    }

    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[1] = code;
    }

    /// Writes the flags and zeroes the rest of the reserved field.
    pub fn set_flags(&mut self, flags: NeighborFlags) {
        let data = self.buffer.as_mut();
        data[field::RESERVED].fill(0);
        data[field::FLAGS] = flags.bits();
    }

    pub fn set_target_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&addr.octets());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::OPTIONS..]
    }
}

/// The neighbor discovery option Type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NdOptionType(pub u8);

impl NdOptionType {
    pub const SOURCE_LINK_LAYER_ADDR: NdOptionType = NdOptionType(1);
    pub const TARGET_LINK_LAYER_ADDR: NdOptionType = NdOptionType(2);
}

/// A read/write view of one option: type, length in units of 8 octets, and data.
#[derive(Debug, Clone)]
pub struct NdOption<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdOption<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        NdOption { buffer }
    }

    /// Wraps a buffer that starts with an option, checking that the option's length is not 0
    /// and that the buffer holds all of it.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let option = Self::new_unchecked(buffer);
        option.check_len()?;
        Ok(option)
    }

    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        match data {
            [_, 0, ..] => Err(Error::OptionLengthZero(data[0])),
            [_, units, ..] if data.len() >= usize::from(*units) * 8 => Ok(()),
            _ => Err(Error::Truncated(Layer::NdOption)),
        }
    }

    pub fn option_type(&self) -> NdOptionType {
        NdOptionType(self.buffer.as_ref()[0])
    }

    /// The Length field: the option's size in units of 8 octets, type and length included.
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The option's size in bytes.
    pub fn option_len(&self) -> usize {
        usize::from(self.length()) * 8
    }

    /// What follows the type and length fields, up to the option's end.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.option_len()]
    }
}

/// One option, as far as herald understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdOptionRepr<'a> {
    SourceLinkLayerAddr(EthernetAddress),
    TargetLinkLayerAddr(EthernetAddress),
    /// Any other type, which receivers step over (RFC 4861 §4.6). `data` is what follows
    /// the type and length fields; its length is 6 more than a multiple of 8.
    Unknown {
        option_type: NdOptionType,
        data: &'a [u8],
    },
}

impl<'a> NdOptionRepr<'a> {
    pub fn parse(option: &NdOption<&'a [u8]>) -> Result<NdOptionRepr<'a>> {
        option.check_len()?;
        let option_type = option.option_type();
        let data: &'a [u8] = &option.buffer[2..option.option_len()];
        let link_layer_addr = || match EthernetAddress::from_bytes(data) {
            Some(addr) => Ok(addr),
            None => Err(Error::LinkLayerOptionLength {
                option_type: option_type.0,
                length: option.length(),
            }),
        };
        Ok(match option_type {
            NdOptionType::SOURCE_LINK_LAYER_ADDR => {
                NdOptionRepr::SourceLinkLayerAddr(link_layer_addr()?)
            }
            NdOptionType::TARGET_LINK_LAYER_ADDR => {
                NdOptionRepr::TargetLinkLayerAddr(link_layer_addr()?)
            }
            _ => NdOptionRepr::Unknown { option_type, data },
        })
    }

    /// The option's size in bytes, a multiple of 8.
    pub fn buffer_len(&self) -> usize {
        match self {
            NdOptionRepr::SourceLinkLayerAddr(_) | NdOptionRepr::TargetLinkLayerAddr(_) => 8,
            NdOptionRepr::Unknown { data, .. } => (2 + data.len()).div_ceil(8) * 8,
        }
    }

    /// Writes the option, zero-padding an unknown option's data to a multiple of 8; the buffer
    /// must hold at least [`Self::buffer_len`] bytes, and the option must be at most 255 units.
    pub fn emit(&self, buffer: &mut [u8]) {
        let len = self.buffer_len();
        let (option_type, data): (NdOptionType, &[u8]) = match self {
            NdOptionRepr::SourceLinkLayerAddr(addr) => {
                (NdOptionType::SOURCE_LINK_LAYER_ADDR, &addr.0)
            }
            NdOptionRepr::TargetLinkLayerAddr(addr) => {
                (NdOptionType::TARGET_LINK_LAYER_ADDR, &addr.0)
            }
            NdOptionRepr::Unknown { option_type, data } => (*option_type, data),
        };
        buffer[0] = option_type.0;
        buffer[1] = u8::try_from(len / 8).unwrap_or(u8::MAX);
        buffer[2..2 + data.len()].copy_from_slice(data);
        buffer[2 + data.len()..len].fill(0);
    }
}

/// The options of a message in order. After a malformed option (length 0, running past the
/// end, a link-layer address of the wrong size) it yields that error once and stops: nothing
/// after it can be found reliably.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdOptions<'a> {
    pub fn new(options: &'a [u8]) -> NdOptions<'a> {
        NdOptions { rest: options }
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOptionRepr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = NdOption::new_checked(self.rest).and_then(|option| {
            let len = option.option_len();
            NdOptionRepr::parse(&option).map(|repr| (repr, len))
        });
        match parsed {
            Ok((repr, len)) => {
                self.rest = &self.rest[len..];
                Some(Ok(repr))
            }
            Err(err) => {
                self.rest = &[];
                Some(Err(err))
            }
        }
    }
}

/// A Neighbor Solicitation or Advertisement with the options herald uses. Other options are
/// skipped; of repeated link-layer address options the first counts.
///
/// Parsing checks the layout only; the rules of RFC 4861 §7.1.1 (hop limit, code, checksum,
/// the unspecified-source cases) are [`crate::validate`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    NeighborSolicitation {
        target_addr: Ipv6Addr,
        source_link_layer_addr: Option<EthernetAddress>,
    },
    NeighborAdvertisement {
        flags: NeighborFlags,
        target_addr: Ipv6Addr,
        target_link_layer_addr: Option<EthernetAddress>,
    },
}

impl NdiscRepr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(message: &NeighborMessage<&T>) -> Result<NdiscRepr> {
        message.check_len()?;
        let mut source = None;
        let mut target = None;
        for option in message.option_iter() {
            match option? {
                NdOptionRepr::SourceLinkLayerAddr(addr) => {
                    source.get_or_insert(addr);
                }
                NdOptionRepr::TargetLinkLayerAddr(addr) => {
                    target.get_or_insert(addr);
                }
                NdOptionRepr::Unknown { .. } => {}
            }
        }
        match message.msg_type() {
            Icmpv6Type::NEIGHBOR_SOLICITATION => Ok(NdiscRepr::NeighborSolicitation {
                target_addr: message.target_addr(),
                source_link_layer_addr: source,
            }),
            Icmpv6Type::NEIGHBOR_ADVERTISEMENT => Ok(NdiscRepr::NeighborAdvertisement {
                flags: message.flags(),
                target_addr: message.target_addr(),
                target_link_layer_addr: target,
            }),
            Icmpv6Type(other) => Err(Error::NotNeighborDiscovery(other)),
        }
    }

    fn link_layer_option(&self) -> Option<NdOptionRepr<'static>> {
        match *self {
            NdiscRepr::NeighborSolicitation {
                source_link_layer_addr,
                ..
            } => source_link_layer_addr.map(NdOptionRepr::SourceLinkLayerAddr),
            NdiscRepr::NeighborAdvertisement {
                target_link_layer_addr,
                ..
            } => target_link_layer_addr.map(NdOptionRepr::TargetLinkLayerAddr),
        }
    }

    /// The ICMPv6 message length.
    pub fn buffer_len(&self) -> usize {
        MESSAGE_LEN
            + self
                .link_layer_option()
                .map_or(0, |option| option.buffer_len())
    }

    /// Writes the message with code 0 and a zero checksum, which the caller fills in once the
    /// IPv6 addresses are known ([`super::Icmpv6Packet::fill_checksum`]). The buffer must be
    /// exactly [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, message: &mut NeighborMessage<T>) {
        let (msg_type, flags, target_addr) = match *self {
            NdiscRepr::NeighborSolicitation { target_addr, .. } => (
                Icmpv6Type::NEIGHBOR_SOLICITATION,
                NeighborFlags::NONE,
                target_addr,
            ),
            NdiscRepr::NeighborAdvertisement {
                flags, target_addr, ..
            } => (Icmpv6Type::NEIGHBOR_ADVERTISEMENT, flags, target_addr),
        };
        message.set_msg_type(msg_type);
        message.set_msg_code(0);
        message.buffer.as_mut()[2..4].fill(0);
        message.set_flags(flags);
        message.set_target_addr(target_addr);
        if let Some(option) = self.link_layer_option() {
            option.emit(message.options_mut());
        }
    }

    pub fn target_addr(&self) -> Ipv6Addr {
        match *self {
            NdiscRepr::NeighborSolicitation { target_addr, .. }
            | NdiscRepr::NeighborAdvertisement { target_addr, .. } => target_addr,
        }
    }
}
