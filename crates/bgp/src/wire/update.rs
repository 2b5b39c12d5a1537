//! UPDATE (RFC 4271 §4.3) and the RFC 7606 rules for what a malformed one calls for.

use super::attribute::{
    AsPath, Fault, MpReachNlri, NextHop, PathAttribute, RawAttribute, attribute_flags,
    attribute_type, expected_flags, parse_value,
};
use super::error::{AttributeError, AttributeErrorKind, EmitError, Error, Handling};
use super::prefix::{Prefix, parse_prefixes};
use super::reader::Reader;
use super::{Family, Options};

/// A zero-copy view of an UPDATE body (the octets after the message header).
#[derive(Debug, Clone)]
pub struct UpdatePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UpdatePacket<T> {
    /// Withdrawn Routes Length and Total Path Attribute Length.
    pub const MIN_LEN: usize = 4;

    /// Wraps a buffer without checking it: the accessors panic if it is too short. For
    /// octets from the network use `new_checked`.
    pub fn new_unchecked(buffer: T) -> Self {
        UpdatePacket { buffer }
    }

    /// Wraps an UPDATE body, checking that both length fields fit inside it (RFC 4271
    /// §6.3: otherwise the attribute list is malformed).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = UpdatePacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::MIN_LEN {
            return Err(Error::BadMessageLength {
                length: u16::try_from(len + super::HEADER_LEN).unwrap_or(u16::MAX),
                message: "UPDATE",
            });
        }
        let attrs_at = 2 + p.withdrawn_routes_len();
        if attrs_at + 2 > len {
            return Err(Error::MalformedAttributeList(
                "withdrawn routes length overruns the message",
            ));
        }
        if attrs_at + 2 + p.total_path_attribute_len() > len {
            return Err(Error::MalformedAttributeList(
                "total path attribute length overruns the message",
            ));
        }
        Ok(p)
    }

    fn u16_at(&self, at: usize) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    pub fn withdrawn_routes_len(&self) -> usize {
        self.u16_at(0)
    }

    pub fn withdrawn_routes(&self) -> &[u8] {
        &self.buffer.as_ref()[2..2 + self.withdrawn_routes_len()]
    }

    pub fn total_path_attribute_len(&self) -> usize {
        self.u16_at(2 + self.withdrawn_routes_len())
    }

    pub fn path_attributes(&self) -> &[u8] {
        let start = 4 + self.withdrawn_routes_len();
        &self.buffer.as_ref()[start..start + self.total_path_attribute_len()]
    }

    pub fn nlri(&self) -> &[u8] {
        let start = 4 + self.withdrawn_routes_len() + self.total_path_attribute_len();
        &self.buffer.as_ref()[start..]
    }
}

/// An UPDATE message.
///
/// Prefixes in [`UpdateRepr::withdrawn_routes`] and [`UpdateRepr::nlri`] are IPv4 (the
/// classic fields); other families travel in [`PathAttribute::MpReachNlri`] and
/// [`PathAttribute::MpUnreachNlri`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateRepr {
    pub withdrawn_routes: Vec<Prefix>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Prefix>,
    /// Attributes found malformed on receipt (RFC 7606), each with its handling. Filled by
    /// [`UpdateRepr::parse`]; ignored by [`UpdateRepr::emit`]. Discarded attributes are not
    /// in [`UpdateRepr::attributes`].
    pub errors: Vec<AttributeError>,
}

impl UpdateRepr {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
    /// an UPDATE with only an empty MP_UNREACH_NLRI for any other.
    pub fn end_of_rib(family: Family) -> UpdateRepr {
        let mut u = UpdateRepr::default();
        if family != Family::IPV4_UNICAST {
            u.attributes
                .push(PathAttribute::MpUnreachNlri(super::MpUnreachNlri {
                    family,
                    withdrawn: Vec::new(),
                }));
        }
        u
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn as_end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn_routes.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreachNlri(m)] if m.withdrawn.is_empty() => Some(m.family),
            _ => None,
        }
    }

    /// The most severe RFC 7606 handling this UPDATE calls for, if any attribute was bad.
    pub fn handling(&self) -> Option<Handling> {
        self.errors.iter().map(|e| e.handling).max()
    }

    fn mp_reach(&self) -> impl Iterator<Item = &MpReachNlri> {
        self.attributes.iter().filter_map(|a| match a {
            PathAttribute::MpReachNlri(m) => Some(m),
            _ => None,
        })
    }

    /// Routes this UPDATE makes reachable: the NLRI and the MP_REACH_NLRI routes, or none
    /// when RFC 7606 says to treat the UPDATE as a withdrawal.
    pub fn announced(&self) -> Vec<Prefix> {
        if self.handling() == Some(Handling::TreatAsWithdraw) {
            return Vec::new();
        }
        let mut out = self.nlri.clone();
        out.extend(self.mp_reach().flat_map(|m| m.nlri.iter().copied()));
        out
    }

    /// Routes this UPDATE withdraws, including the announced ones when RFC 7606 says to
    /// treat the UPDATE as a withdrawal.
    pub fn withdrawn(&self) -> Vec<Prefix> {
        let mut out = self.withdrawn_routes.clone();
        for a in &self.attributes {
            if let PathAttribute::MpUnreachNlri(m) = a {
                out.extend_from_slice(&m.withdrawn);
            }
        }
        if self.handling() == Some(Handling::TreatAsWithdraw) {
            out.extend_from_slice(&self.nlri);
            out.extend(self.mp_reach().flat_map(|m| m.nlri.iter().copied()));
        }
        out
    }

    /// Decodes a received UPDATE. `Err` means the session must be reset; attribute errors
    /// that RFC 7606 lets the session survive are in [`UpdateRepr::errors`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UpdatePacket<T>,
        options: &Options,
    ) -> Result<UpdateRepr, Error> {
        let withdrawn_routes =
            parse_prefixes(packet.withdrawn_routes(), false).map_err(|error| {
                Error::InvalidNetworkField {
                    field: "withdrawn routes",
                    error,
                }
            })?;
        let nlri =
            parse_prefixes(packet.nlri(), false).map_err(|error| Error::InvalidNetworkField {
                field: "NLRI",
                error,
            })?;

        let mut update = UpdateRepr {
            withdrawn_routes,
            nlri,
            ..UpdateRepr::default()
        };
        let mut seen = [false; 256];
        let mut as4_path = None;
        let mut framing_broken = false;
        let mut r = Reader::new(packet.path_attributes());
        while !r.is_empty() {
            let Some((flags, type_code, value)) = next_attribute(&mut r) else {
                framing_broken = true;
                break;
            };
            update.attribute(flags, type_code, value, options, &mut seen, &mut as4_path)?;
        }

        let reaches = !update.nlri.is_empty() || update.mp_reach().any(|m| !m.nlri.is_empty());
        if framing_broken {
            // RFC 7606 §4: withdraw what the UPDATE announces. That is only safe when the
            // announced routes can be found: in the NLRI field, or in an MP_REACH_NLRI met
            // before the break. Otherwise an MP_REACH_NLRI may be lost in the overrun.
            if !reaches {
                return Err(Error::MalformedAttributeList(
                    "attribute lengths overrun the path attribute area",
                ));
            }
            update.error(0, AttributeErrorKind::Framing, Handling::TreatAsWithdraw);
        }

        if let Some(as4) = as4_path {
            match update
                .attributes
                .iter_mut()
                .find(|a| matches!(a, PathAttribute::AsPath(_)))
            {
                Some(PathAttribute::AsPath(path)) => *path = AsPath::merge_as4_path(path, &as4),
                _ => update.error(
                    attribute_type::AS4_PATH,
                    AttributeErrorKind::Missing,
                    Handling::AttributeDiscard,
                ),
            }
        }

        // RFC 7606 §3(d): missing well-known mandatory attributes. NEXT_HOP is only needed
        // for routes in the NLRI field.
        if reaches {
            let mut mandatory = vec![attribute_type::ORIGIN, attribute_type::AS_PATH];
            if !update.nlri.is_empty() {
                mandatory.push(attribute_type::NEXT_HOP);
            }
            for t in mandatory {
                if !seen[usize::from(t)] {
                    update.error(t, AttributeErrorKind::Missing, Handling::TreatAsWithdraw);
                }
            }
        }
        Ok(update)
    }

    fn error(&mut self, type_code: u8, kind: AttributeErrorKind, handling: Handling) {
        self.errors.push(AttributeError {
            type_code,
            kind,
            handling,
        });
    }

    /// Takes in one received attribute.
    fn attribute(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        options: &Options,
        seen: &mut [bool; 256],
        as4_path: &mut Option<AsPath>,
    ) -> Result<(), Error> {
        use attribute_type::{AS4_PATH, MP_REACH_NLRI, MP_UNREACH_NLRI};
        let is_mp = matches!(type_code, MP_REACH_NLRI | MP_UNREACH_NLRI);
        let slot = &mut seen[usize::from(type_code)];
        if *slot {
            // RFC 7606 §3(g).
            if is_mp {
                return Err(Error::MalformedAttributeList(
                    "MP_REACH_NLRI or MP_UNREACH_NLRI appears twice",
                ));
            }
            self.error(
                type_code,
                AttributeErrorKind::Duplicate,
                Handling::AttributeDiscard,
            );
            return Ok(());
        }
        *slot = true;

        let Some(expected) = expected_flags(type_code) else {
            if flags & attribute_flags::OPTIONAL == 0 {
                return Err(Error::UnrecognizedWellKnownAttribute(type_code));
            }
            // Unrecognized optional non-transitive attributes are quietly ignored
            // (RFC 4271 §5); transitive ones are kept.
            if flags & attribute_flags::TRANSITIVE != 0 {
                self.attributes.push(PathAttribute::Other(RawAttribute {
                    flags: flags & !attribute_flags::EXTENDED_LENGTH,
                    type_code,
                    value: value.to_vec(),
                }));
            }
            return Ok(());
        };

        let as4 = type_code == AS4_PATH;
        let mask = attribute_flags::OPTIONAL | attribute_flags::TRANSITIVE;
        if flags & mask != expected {
            // RFC 7606 §3(c). MP attributes are still decoded so that their routes can be
            // withdrawn.
            let handling = if as4 {
                Handling::AttributeDiscard
            } else {
                Handling::TreatAsWithdraw
            };
            self.error(type_code, AttributeErrorKind::Flags { flags }, handling);
            if !is_mp {
                return Ok(());
            }
        }
        if as4 && options.four_octet_as {
            // RFC 6793 §4.1: a 4-octet speaker never sends AS4_PATH; ignore it.
            self.error(
                type_code,
                AttributeErrorKind::UnexpectedAs4Path,
                Handling::AttributeDiscard,
            );
            return Ok(());
        }
        match parse_value(type_code, value, options.four_octet_as) {
            Ok(PathAttribute::AsPath(path)) if as4 => *as4_path = Some(path),
            Ok(attr) => {
                if let PathAttribute::MpReachNlri(MpReachNlri {
                    next_hop: NextHop::Malformed(nh),
                    ..
                }) = &attr
                {
                    // RFC 7606 §7.11.
                    self.error(
                        type_code,
                        AttributeErrorKind::NextHopLength(nh.len()),
                        Handling::TreatAsWithdraw,
                    );
                }
                self.attributes.push(attr);
            }
            Err(Fault::Session(e)) => return Err(e),
            Err(Fault::Attribute(kind, handling)) => self.error(type_code, kind, handling),
        }
        Ok(())
    }

    fn attributes_len(&self, options: &Options) -> usize {
        self.attributes
            .iter()
            .map(|a| a.encoded_len(options.four_octet_as))
            .sum()
    }

    fn prefixes_len(prefixes: &[Prefix]) -> usize {
        prefixes.iter().map(Prefix::encoded_len).sum()
    }

    pub fn buffer_len(&self, options: &Options) -> usize {
        4 + Self::prefixes_len(&self.withdrawn_routes)
            + self.attributes_len(options)
            + Self::prefixes_len(&self.nlri)
    }

    pub fn emit(&self, out: &mut Vec<u8>, options: &Options) -> Result<(), EmitError> {
        let field_len = |field, length: usize| {
            u16::try_from(length).map_err(|_| EmitError::FieldTooLong { field, length })
        };
        check_family(&self.withdrawn_routes, false, "withdrawn routes")?;
        check_family(&self.nlri, false, "NLRI")?;
        for a in &self.attributes {
            match a {
                PathAttribute::MpReachNlri(m) => {
                    check_family(&m.nlri, m.family.afi != super::afi::IPV4, "MP_REACH_NLRI")?
                }
                PathAttribute::MpUnreachNlri(m) => check_family(
                    &m.withdrawn,
                    m.family.afi != super::afi::IPV4,
                    "MP_UNREACH_NLRI",
                )?,
                _ => {}
            }
        }
        let withdrawn_len = field_len(
            "withdrawn routes",
            Self::prefixes_len(&self.withdrawn_routes),
        )?;
        let attributes_len = field_len("path attributes", self.attributes_len(options))?;
        out.extend_from_slice(&withdrawn_len.to_be_bytes());
        for p in &self.withdrawn_routes {
            p.emit(out);
        }
        out.extend_from_slice(&attributes_len.to_be_bytes());
        let mut as4_path = None;
        for a in &self.attributes {
            if a.type_code() > attribute_type::AS4_PATH
                && let Some(p) = as4_path.take()
            {
                PathAttribute::emit_as4_path(&p, out);
            }
            a.emit(out, options.four_octet_as);
            as4_path = as4_path.or(a.as4_path(options.four_octet_as));
        }
        if let Some(p) = as4_path {
            PathAttribute::emit_as4_path(&p, out);
        }
        for p in &self.nlri {
            p.emit(out);
        }
        Ok(())
    }
}

fn check_family(prefixes: &[Prefix], ipv6: bool, field: &'static str) -> Result<(), EmitError> {
    match prefixes.iter().find(|p| p.is_ipv4() == ipv6) {
        Some(&prefix) => Err(EmitError::FamilyMismatch { prefix, field }),
        None => Ok(()),
    }
}

/// Reads one attribute's flags, type and value; `None` when the lengths overrun the area
/// (RFC 7606 §4 calls both cases an attribute framing error).
fn next_attribute<'a>(r: &mut Reader<'a>) -> Option<(u8, u8, &'a [u8])> {
    let flags = r.u8()?;
    let type_code = r.u8()?;
    let len = if flags & attribute_flags::EXTENDED_LENGTH != 0 {
        usize::from(r.u16()?)
    } else {
        usize::from(r.u8()?)
    };
    Some((flags, type_code, r.take(len)?))
}
