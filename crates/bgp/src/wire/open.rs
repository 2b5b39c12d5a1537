//! OPEN (RFC 4271 §4.2) with optional parameters in the classic or the RFC 9072 extended
//! format, and the capabilities (RFC 5492) herald negotiates. Capabilities it does not know
//! are kept as raw octets, never refused.

use super::error::{EmitError, Error};
use super::reader::Reader;
use super::{BGP_VERSION, Family};
use std::net::Ipv4Addr;

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// The only optional parameter type still defined: capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: this value in both the length and the first parameter type octet announces
/// the extended format.
const EXTENDED_PARAMS: u8 = 255;

/// A zero-copy view of an OPEN body (the octets after the message header).
#[derive(Debug, Clone)]
pub struct OpenPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> OpenPacket<T> {
    /// Version, My AS, Hold Time, BGP Identifier, Opt Parm Len.
    pub const FIXED_LEN: usize = 10;

    /// Wraps a buffer without checking it: the accessors panic if it is too short. For
    /// octets from the network use `new_checked`.
    pub fn new_unchecked(buffer: T) -> Self {
        OpenPacket { buffer }
    }

    /// Wraps an OPEN body, checking the fixed fields are there and that the optional
    /// parameters length (classic or RFC 9072) matches the rest of the body exactly.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = OpenPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::FIXED_LEN {
            return Err(Error::BadMessageLength {
                length: u16::try_from(len + super::HEADER_LEN).unwrap_or(u16::MAX),
                message: "OPEN",
            });
        }
        p.optional_parameters_area()?;
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn my_as(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[1], b[2]])
    }

    pub fn hold_time(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[3], b[4]])
    }

    pub fn bgp_identifier(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[5], b[6], b[7], b[8])
    }

    /// Whether the optional parameters use the RFC 9072 extended format.
    pub fn extended_parameters(&self) -> bool {
        let b = self.buffer.as_ref();
        b[9] == EXTENDED_PARAMS && b.get(10) == Some(&EXTENDED_PARAMS)
    }

    /// The optional parameters, without their overall length field.
    pub fn optional_parameters_area(&self) -> Result<&[u8], Error> {
        let b = self.buffer.as_ref();
        let (len, start) = if self.extended_parameters() {
            let len = b.get(11..13).ok_or(Error::MalformedOptionalParameters(
                "extended length field truncated",
            ))?;
            (usize::from(u16::from_be_bytes([len[0], len[1]])), 13)
        } else {
            (usize::from(b[9]), 10)
        };
        let area = &b[start.min(b.len())..];
        if area.len() != len {
            return Err(Error::MalformedOptionalParameters(
                "length does not match the message",
            ));
        }
        Ok(area)
    }

    /// The optional parameters as (type, value) pairs.
    pub fn optional_parameters(&self) -> Result<Vec<(u8, &[u8])>, Error> {
        let extended = self.extended_parameters();
        let mut r = Reader::new(self.optional_parameters_area()?);
        let mut out = Vec::new();
        while !r.is_empty() {
            let truncated = Error::MalformedOptionalParameters("parameter overruns the area");
            let kind = r.u8().ok_or(truncated.clone())?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or(truncated.clone())?;
            out.push((kind, r.take(len).ok_or(truncated)?));
        }
        Ok(out)
    }
}

/// One family and the next-hop family it may use (RFC 8950 §3). The NLRI SAFI is two octets
/// here, unlike everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopEntry {
    pub nlri_afi: u16,
    pub nlri_safi: u16,
    pub next_hop_afi: u16,
}

impl ExtendedNextHopEntry {
    /// IPv4 unicast routes with IPv6 next hops, the case herald uses.
    pub const IPV4_UNICAST_OVER_IPV6: ExtendedNextHopEntry = ExtendedNextHopEntry {
        nlri_afi: super::afi::IPV4,
        nlri_safi: super::safi::UNICAST as u16,
        next_hop_afi: super::afi::IPV6,
    };
}

/// Per-family part of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// The F bit: forwarding state was kept across the restart.
    pub forwarding_preserved: bool,
}

/// The graceful restart capability (RFC 4724 §3, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restarting: bool,
    /// The N bit: graceful restart also covers NOTIFICATIONs (RFC 8538).
    pub notification: bool,
    /// Seconds the peer should keep our routes after the session goes down; 12 bits on the
    /// wire, larger values are clamped to 4095.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// A capability advertised in an OPEN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760: the sender can exchange routes of this family.
    Multiprotocol(Family),
    /// RFC 2918.
    RouteRefresh,
    /// RFC 8950.
    ExtendedNextHop(Vec<ExtendedNextHopEntry>),
    /// RFC 8654: messages up to 65535 octets.
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    /// RFC 6793: the sender's real AS number.
    FourOctetAs(u32),
    /// Any other capability, kept as it was received.
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

impl Capability {
    pub fn code(&self) -> u8 {
        use capability_code::*;
        match self {
            Capability::Multiprotocol(_) => MULTIPROTOCOL,
            Capability::RouteRefresh => ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol(_) | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh | Capability::ExtendedMessage => 0,
            Capability::ExtendedNextHop(e) => 6 * e.len(),
            Capability::GracefulRestart(g) => 2 + 4 * g.families.len(),
            Capability::Unknown { value, .. } => value.len(),
        }
    }

    /// Decodes one capability value. Known capabilities with a wrong length are errors;
    /// unknown codes are kept whatever they hold.
    pub fn parse(code: u8, value: &[u8]) -> Result<Capability, Error> {
        use capability_code::*;
        let bad = |reason| Error::MalformedCapability { code, reason };
        let mut r = Reader::new(value);
        let cap = match code {
            MULTIPROTOCOL => {
                let [a0, a1, _reserved, safi] = r.array().ok_or(bad("length is not 4"))?;
                Capability::Multiprotocol(Family::new(u16::from_be_bytes([a0, a1]), safi))
            }
            ROUTE_REFRESH => Capability::RouteRefresh,
            EXTENDED_NEXT_HOP => {
                if !value.len().is_multiple_of(6) {
                    return Err(bad("length is not a multiple of 6"));
                }
                let mut entries = Vec::with_capacity(value.len() / 6);
                while let (Some(nlri_afi), Some(nlri_safi), Some(next_hop_afi)) =
                    (r.u16(), r.u16(), r.u16())
                {
                    entries.push(ExtendedNextHopEntry {
                        nlri_afi,
                        nlri_safi,
                        next_hop_afi,
                    });
                }
                Capability::ExtendedNextHop(entries)
            }
            EXTENDED_MESSAGE => Capability::ExtendedMessage,
            GRACEFUL_RESTART => {
                let head = r.u16().ok_or(bad("shorter than 2 octets"))?;
                if !r.remaining().is_multiple_of(4) {
                    return Err(bad("family list is not a multiple of 4 octets"));
                }
                let mut families = Vec::with_capacity(r.remaining() / 4);
                while let Some([a0, a1, safi, flags]) = r.array() {
                    families.push(GracefulRestartFamily {
                        family: Family::new(u16::from_be_bytes([a0, a1]), safi),
                        forwarding_preserved: flags & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restarting: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            FOUR_OCTET_AS => Capability::FourOctetAs(r.u32().ok_or(bad("length is not 4"))?),
            _ => {
                return Ok(Capability::Unknown {
                    code,
                    value: value.to_vec(),
                });
            }
        };
        if cap.value_len() != value.len() {
            return Err(bad("unexpected length"));
        }
        Ok(cap)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.code());
        // Capabilities longer than 255 octets cannot be encoded; emit_value checks first.
        out.push(u8::try_from(self.value_len()).unwrap_or(u8::MAX));
        match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.push(0);
                out.push(f.safi);
            }
            Capability::RouteRefresh | Capability::ExtendedMessage => {}
            Capability::ExtendedNextHop(entries) => {
                for e in entries {
                    out.extend_from_slice(&e.nlri_afi.to_be_bytes());
                    out.extend_from_slice(&e.nlri_safi.to_be_bytes());
                    out.extend_from_slice(&e.next_hop_afi.to_be_bytes());
                }
            }
            Capability::GracefulRestart(g) => {
                let head = (u16::from(g.restarting) << 15)
                    | (u16::from(g.notification) << 14)
                    | g.restart_time.min(0x0fff);
                out.extend_from_slice(&head.to_be_bytes());
                for f in &g.families {
                    out.extend_from_slice(&f.family.afi.to_be_bytes());
                    out.push(f.family.safi);
                    out.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::Unknown { value, .. } => out.extend_from_slice(value),
        }
    }
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenRepr {
    /// The sender's AS, or AS_TRANS when it needs four octets (see [`OpenRepr::asn`]).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_identifier: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl OpenRepr {
    /// An OPEN for `asn`: My AS is AS_TRANS when `asn` does not fit two octets, and a
    /// 4-octet AS capability is added when `capabilities` lacks one.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_identifier: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Self {
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        OpenRepr {
            my_as: u16::try_from(asn).unwrap_or(super::AS_TRANS),
            hold_time,
            bgp_identifier,
            capabilities,
        }
    }

    /// The sender's AS number: the 4-octet AS capability when present, else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub fn parse<T: AsRef<[u8]>>(packet: &OpenPacket<T>) -> Result<Self, Error> {
        if packet.version() != BGP_VERSION {
            return Err(Error::UnsupportedVersionNumber(packet.version()));
        }
        let mut capabilities = Vec::new();
        for (kind, value) in packet.optional_parameters()? {
            if kind != PARAM_CAPABILITIES {
                return Err(Error::UnsupportedOptionalParameter(kind));
            }
            let mut r = Reader::new(value);
            while !r.is_empty() {
                let truncated =
                    Error::MalformedOptionalParameters("capability overruns its parameter");
                let code = r.u8().ok_or(truncated.clone())?;
                let len = r.u8().ok_or(truncated.clone())?;
                let value = r.take(usize::from(len)).ok_or(truncated)?;
                capabilities.push(Capability::parse(code, value)?);
            }
        }
        Ok(OpenRepr {
            my_as: packet.my_as(),
            hold_time: packet.hold_time(),
            bgp_identifier: packet.bgp_identifier(),
            capabilities,
        })
    }

    fn capabilities_len(&self) -> usize {
        self.capabilities.iter().map(|c| 2 + c.value_len()).sum()
    }

    /// Whether the parameters need the RFC 9072 format: one capabilities parameter in the
    /// classic format holds at most 255 octets.
    fn extended(&self) -> bool {
        self.capabilities_len() > 255 - 2
    }

    pub fn buffer_len(&self) -> usize {
        let caps = self.capabilities_len();
        match (caps, self.extended()) {
            (0, _) => 10,
            (_, false) => 10 + 2 + caps,
            (_, true) => 10 + 3 + 3 + caps,
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        for c in &self.capabilities {
            if c.value_len() > 255 {
                return Err(EmitError::FieldTooLong {
                    field: "capability",
                    length: c.value_len(),
                });
            }
        }
        let caps = self.capabilities_len();
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_identifier.octets());
        if caps == 0 {
            out.push(0);
        } else if !self.extended() {
            out.push(u8::try_from(caps + 2).unwrap_or(u8::MAX));
            out.push(PARAM_CAPABILITIES);
            out.push(u8::try_from(caps).unwrap_or(u8::MAX));
        } else {
            let param = u16::try_from(caps).map_err(|_| EmitError::FieldTooLong {
                field: "optional parameters",
                length: caps,
            })?;
            let area = u16::try_from(caps + 3).map_err(|_| EmitError::FieldTooLong {
                field: "optional parameters",
                length: caps,
            })?;
            out.extend_from_slice(&[EXTENDED_PARAMS, EXTENDED_PARAMS]);
            out.extend_from_slice(&area.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&param.to_be_bytes());
        }
        for c in &self.capabilities {
            c.emit(out);
        }
        Ok(())
    }
}
