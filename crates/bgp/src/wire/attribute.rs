//! Path attributes (RFC 4271 §4.3 and §5, RFC 4760, RFC 6793, RFC 1997, RFC 8092): their
//! values, how each is decoded from and encoded to its octets, and the flags each must
//! carry.

use super::error::{AttributeErrorKind, Error, Handling};
use super::prefix::{Prefix, parse_prefixes};
use super::reader::Reader;
use super::{Family, afi};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The 2-octet AS number that stands in for a 4-octet one (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attribute_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod attribute_flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
    pub const WELL_KNOWN: u8 = TRANSITIVE;
    pub const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
    pub const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
}

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment (RFC 4271 §4.3, confederation segments from RFC 5065).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsPathSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
    ConfedSequence(Vec<u32>),
    ConfedSet(Vec<u32>),
}

impl AsPathSegment {
    fn type_code(&self) -> u8 {
        match self {
            AsPathSegment::Set(_) => 1,
            AsPathSegment::Sequence(_) => 2,
            AsPathSegment::ConfedSequence(_) => 3,
            AsPathSegment::ConfedSet(_) => 4,
        }
    }

    pub fn asns(&self) -> &[u32] {
        match self {
            AsPathSegment::Set(a)
            | AsPathSegment::Sequence(a)
            | AsPathSegment::ConfedSequence(a)
            | AsPathSegment::ConfedSet(a) => a,
        }
    }

    fn with_asns(&self, asns: Vec<u32>) -> AsPathSegment {
        match self {
            AsPathSegment::Set(_) => AsPathSegment::Set(asns),
            AsPathSegment::Sequence(_) => AsPathSegment::Sequence(asns),
            AsPathSegment::ConfedSequence(_) => AsPathSegment::ConfedSequence(asns),
            AsPathSegment::ConfedSet(_) => AsPathSegment::ConfedSet(asns),
        }
    }

    fn is_confed(&self) -> bool {
        matches!(
            self,
            AsPathSegment::ConfedSequence(_) | AsPathSegment::ConfedSet(_)
        )
    }

    /// What the segment adds to the path length for route selection (RFC 4271 §9.1.2.2):
    /// a set counts as one, confederation segments as nothing.
    fn path_len(&self) -> usize {
        match self {
            AsPathSegment::Sequence(a) => a.len(),
            AsPathSegment::Set(_) => 1,
            _ => 0,
        }
    }
}

/// An AS path: AS_PATH on the wire, and for 2-octet sessions AS_PATH plus AS4_PATH.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<AsPathSegment>,
}

impl AsPath {
    /// The path a speaker in `asn` puts on its own routes to an external peer.
    pub fn origin(asn: u32) -> AsPath {
        AsPath {
            segments: vec![AsPathSegment::Sequence(vec![asn])],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn path_len(&self) -> usize {
        self.segments.iter().map(AsPathSegment::path_len).sum()
    }

    /// Whether a 2-octet encoding loses information, so AS4_PATH must go along.
    pub fn needs_as4_path(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| s.asns())
            .any(|&a| a > u32::from(u16::MAX))
    }

    /// Decodes AS_PATH or AS4_PATH with 2- or 4-octet AS numbers (RFC 7606 §7.2 says what
    /// counts as malformed).
    pub fn parse(value: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let (Some(kind), Some(count)) = (r.u8(), r.u8()) else {
                return Err("a single octet after the last segment");
            };
            if count == 0 {
                return Err("segment of length zero");
            }
            let width = if four_octet { 4 } else { 2 };
            let bytes = r
                .take(usize::from(count) * width)
                .ok_or("segment overruns the attribute")?;
            let asns = bytes
                .chunks_exact(width)
                .map(|c| match *c {
                    [a, b] => u32::from(u16::from_be_bytes([a, b])),
                    [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
                    _ => 0,
                })
                .collect();
            segments.push(match kind {
                1 => AsPathSegment::Set(asns),
                2 => AsPathSegment::Sequence(asns),
                3 => AsPathSegment::ConfedSequence(asns),
                4 => AsPathSegment::ConfedSet(asns),
                _ => return Err("unknown segment type"),
            });
        }
        Ok(AsPath { segments })
    }

    /// Segments as they go on the wire: no empty ones, none longer than 255 AS numbers.
    fn wire_segments(&self) -> impl Iterator<Item = (u8, &[u32])> {
        self.segments
            .iter()
            .flat_map(|s| s.asns().chunks(255).map(move |c| (s.type_code(), c)))
    }

    pub(crate) fn encoded_len(&self, four_octet: bool) -> usize {
        let width = if four_octet { 4 } else { 2 };
        self.wire_segments()
            .map(|(_, asns)| 2 + width * asns.len())
            .sum()
    }

    /// Encodes the path; with 2-octet numbers, those that do not fit become AS_TRANS.
    pub(crate) fn emit(&self, out: &mut Vec<u8>, four_octet: bool) {
        for (kind, asns) in self.wire_segments() {
            out.push(kind);
            out.push(u8::try_from(asns.len()).unwrap_or(u8::MAX));
            for &asn in asns {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }

    /// AS4_PATH for a 2-octet session: the path without confederation segments, which RFC
    /// 6793 §3 keeps out of AS4_PATH.
    pub(crate) fn as4_path(&self) -> AsPath {
        AsPath {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.is_confed())
                .cloned()
                .collect(),
        }
    }

    /// Rebuilds the real path from a 2-octet AS_PATH and an AS4_PATH (RFC 6793 §4.2.3):
    /// AS4_PATH is ignored when longer than AS_PATH; otherwise the leading part of AS_PATH
    /// that AS4_PATH does not cover is kept in front of AS4_PATH.
    pub fn merge_as4_path(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
        let (n, m) = (as_path.path_len(), as4_path.path_len());
        if n < m {
            return as_path.clone();
        }
        let mut keep = n - m;
        let mut segments = Vec::new();
        for s in &as_path.segments {
            if keep == 0 && !s.is_confed() {
                break;
            }
            let len = s.path_len();
            if len <= keep {
                segments.push(s.clone());
                keep -= len;
            } else {
                // Only a sequence can be cut: a set counts as one.
                segments.push(s.with_asns(s.asns()[..keep].to_vec()));
                keep = 0;
            }
        }
        let mut rest = as4_path.segments.iter().cloned();
        // A sequence cut above continues in AS4_PATH's first sequence: keep it one segment.
        if n > m
            && let (Some(AsPathSegment::Sequence(head)), Some(AsPathSegment::Sequence(_))) =
                (segments.last_mut(), as4_path.segments.first())
            && let Some(AsPathSegment::Sequence(tail)) = rest.next()
        {
            head.extend(tail);
        }
        segments.extend(rest);
        AsPath { segments }
    }
}

/// A standard community (RFC 1997): two 16-bit halves, usually AS:value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xffff_ff01);
    pub const NO_ADVERTISE: Community = Community(0xffff_ff02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xffff_ff03);
    /// RFC 8326: the route is about to go away; peers should prefer others.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xffff_0000);

    pub const fn new(high: u16, low: u16) -> Community {
        Community(((high as u32) << 16) | low as u32)
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global_administrator: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

impl std::fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_administrator, self.local_data_1, self.local_data_2
        )
    }
}

/// The next hop of MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    V4(Ipv4Addr),
    /// A global IPv6 address, and the link-local one when the peer is on the same link
    /// (RFC 2545 §3). Also used for IPv4 NLRI under RFC 8950.
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// A next hop whose length fits no encoding for the family. Kept only so the NLRI after
    /// it can still be treated as withdrawn (RFC 7606 §7.11); never sent by herald.
    Malformed(Vec<u8>),
}

impl NextHop {
    fn encoded_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 {
                link_local: Some(_),
                ..
            } => 32,
            NextHop::Malformed(b) => b.len(),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            NextHop::V4(a) => out.extend_from_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.extend_from_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
            }
            NextHop::Malformed(b) => out.extend_from_slice(b),
        }
    }

    fn parse(family: Family, bytes: &[u8]) -> NextHop {
        let v6 = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
        match (family.afi, bytes.len()) {
            (afi::IPV4, 4) => {
                NextHop::V4(<[u8; 4]>::try_from(bytes).map_or(Ipv4Addr::UNSPECIFIED, Into::into))
            }
            (afi::IPV4 | afi::IPV6, 16) => match v6(bytes) {
                Some(global) => NextHop::V6 {
                    global,
                    link_local: None,
                },
                None => NextHop::Malformed(bytes.to_vec()),
            },
            (afi::IPV4 | afi::IPV6, 32) => match (v6(&bytes[..16]), v6(&bytes[16..])) {
                (Some(global), Some(ll)) => NextHop::V6 {
                    global,
                    link_local: Some(ll),
                },
                _ => NextHop::Malformed(bytes.to_vec()),
            },
            _ => NextHop::Malformed(bytes.to_vec()),
        }
    }
}

/// MP_REACH_NLRI (RFC 4760 §3): routes of one family with their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReachNlri {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4): withdrawn routes of one family. Empty, it is the
/// End-of-RIB marker for that family (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreachNlri {
    pub family: Family,
    pub withdrawn: Vec<Prefix>,
}

/// An attribute herald does not interpret, kept as received (flags without the extended
/// length bit, which is chosen again when it is sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// A path attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathAttribute {
    Origin(Origin),
    /// The AS path with real (4-octet) AS numbers whatever the session: on 2-octet sessions
    /// it is sent as AS_PATH plus AS4_PATH and merged back when received.
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Communities(Vec<Community>),
    LargeCommunities(Vec<LargeCommunity>),
    MpReachNlri(MpReachNlri),
    MpUnreachNlri(MpUnreachNlri),
    /// An optional transitive attribute herald does not interpret.
    Other(RawAttribute),
}

impl PathAttribute {
    pub fn type_code(&self) -> u8 {
        use attribute_type::*;
        match self {
            PathAttribute::Origin(_) => ORIGIN,
            PathAttribute::AsPath(_) => AS_PATH,
            PathAttribute::NextHop(_) => NEXT_HOP,
            PathAttribute::MultiExitDisc(_) => MULTI_EXIT_DISC,
            PathAttribute::LocalPref(_) => LOCAL_PREF,
            PathAttribute::AtomicAggregate => ATOMIC_AGGREGATE,
            PathAttribute::Communities(_) => COMMUNITIES,
            PathAttribute::LargeCommunities(_) => LARGE_COMMUNITIES,
            PathAttribute::MpReachNlri(_) => MP_REACH_NLRI,
            PathAttribute::MpUnreachNlri(_) => MP_UNREACH_NLRI,
            PathAttribute::Other(raw) => raw.type_code,
        }
    }

    /// The flags this attribute is sent with, before the extended length bit.
    pub fn flags(&self) -> u8 {
        match self {
            PathAttribute::Other(raw) => raw.flags & !attribute_flags::EXTENDED_LENGTH,
            other => expected_flags(other.type_code()).unwrap_or(attribute_flags::OPTIONAL),
        }
    }

    fn value_len(&self, four_octet: bool) -> usize {
        match self {
            PathAttribute::Origin(_) => 1,
            PathAttribute::AsPath(p) => p.encoded_len(four_octet),
            PathAttribute::NextHop(_)
            | PathAttribute::MultiExitDisc(_)
            | PathAttribute::LocalPref(_) => 4,
            PathAttribute::AtomicAggregate => 0,
            PathAttribute::Communities(c) => 4 * c.len(),
            PathAttribute::LargeCommunities(c) => 12 * c.len(),
            PathAttribute::MpReachNlri(m) => {
                5 + m.next_hop.encoded_len() + m.nlri.iter().map(Prefix::encoded_len).sum::<usize>()
            }
            PathAttribute::MpUnreachNlri(m) => {
                3 + m.withdrawn.iter().map(Prefix::encoded_len).sum::<usize>()
            }
            PathAttribute::Other(raw) => raw.value.len(),
        }
    }

    /// Octets this attribute takes in an UPDATE, header included. On a 2-octet session an
    /// AS path may need an AS4_PATH beside it, which is counted too (though it is written
    /// in its own place in type order).
    pub fn encoded_len(&self, four_octet: bool) -> usize {
        let header = |len: usize| if len > 255 { 4 } else { 3 };
        let len = self.value_len(four_octet);
        let mut total = header(len) + len;
        if let PathAttribute::AsPath(p) = self
            && !four_octet
            && p.needs_as4_path()
        {
            let as4 = p.as4_path().encoded_len(true);
            total += header(as4) + as4;
        }
        total
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>, four_octet: bool) {
        let len = self.value_len(four_octet);
        write_header(out, self.flags(), self.type_code(), len);
        match self {
            PathAttribute::Origin(o) => out.push(*o as u8),
            PathAttribute::AsPath(p) => p.emit(out, four_octet),
            PathAttribute::NextHop(a) => out.extend_from_slice(&a.octets()),
            PathAttribute::MultiExitDisc(v) | PathAttribute::LocalPref(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            PathAttribute::AtomicAggregate => {}
            PathAttribute::Communities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.0.to_be_bytes());
                }
            }
            PathAttribute::LargeCommunities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.global_administrator.to_be_bytes());
                    out.extend_from_slice(&c.local_data_1.to_be_bytes());
                    out.extend_from_slice(&c.local_data_2.to_be_bytes());
                }
            }
            PathAttribute::MpReachNlri(m) => {
                out.extend_from_slice(&m.family.afi.to_be_bytes());
                out.push(m.family.safi);
                out.push(u8::try_from(m.next_hop.encoded_len()).unwrap_or(u8::MAX));
                m.next_hop.emit(out);
                out.push(0); // reserved
                for p in &m.nlri {
                    p.emit(out);
                }
            }
            PathAttribute::MpUnreachNlri(m) => {
                out.extend_from_slice(&m.family.afi.to_be_bytes());
                out.push(m.family.safi);
                for p in &m.withdrawn {
                    p.emit(out);
                }
            }
            PathAttribute::Other(raw) => out.extend_from_slice(&raw.value),
        }
    }

    /// The AS4_PATH that must accompany this attribute on a 2-octet session, if any.
    /// [`PathAttribute::emit`] leaves it out so that the UPDATE can keep attributes in
    /// ascending type order (RFC 4271 §5).
    pub(crate) fn as4_path(&self, four_octet: bool) -> Option<AsPath> {
        match self {
            PathAttribute::AsPath(p) if !four_octet && p.needs_as4_path() => Some(p.as4_path()),
            _ => None,
        }
    }

    pub(crate) fn emit_as4_path(path: &AsPath, out: &mut Vec<u8>) {
        write_header(
            out,
            attribute_flags::OPTIONAL_TRANSITIVE,
            attribute_type::AS4_PATH,
            path.encoded_len(true),
        );
        path.emit(out, true);
    }
}

fn write_header(out: &mut Vec<u8>, flags: u8, type_code: u8, len: usize) {
    if len > 255 {
        out.push(flags | attribute_flags::EXTENDED_LENGTH);
        out.push(type_code);
        out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    } else {
        out.push(flags & !attribute_flags::EXTENDED_LENGTH);
        out.push(type_code);
        out.push(u8::try_from(len).unwrap_or(u8::MAX));
    }
}

/// The Optional and Transitive bits each attribute herald interprets must carry.
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    use attribute_flags::*;
    use attribute_type::*;
    match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => Some(WELL_KNOWN),
        MULTI_EXIT_DISC | MP_REACH_NLRI | MP_UNREACH_NLRI => Some(OPTIONAL_NON_TRANSITIVE),
        COMMUNITIES | LARGE_COMMUNITIES | AS4_PATH => Some(OPTIONAL_TRANSITIVE),
        _ => None,
    }
}

/// What decoding one attribute value can go wrong with.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The whole UPDATE is unusable.
    Session(Error),
    /// This attribute is malformed; RFC 7606 says how to carry on.
    Attribute(AttributeErrorKind, Handling),
}

fn exact<const N: usize>(value: &[u8], handling: Handling) -> Result<[u8; N], Fault> {
    <[u8; N]>::try_from(value).map_err(|_| {
        Fault::Attribute(
            AttributeErrorKind::Length {
                length: value.len(),
            },
            handling,
        )
    })
}

fn multiple_of(value: &[u8], n: usize) -> Result<(), Fault> {
    if value.len().is_multiple_of(n) {
        Ok(())
    } else {
        Err(Fault::Attribute(
            AttributeErrorKind::Length {
                length: value.len(),
            },
            Handling::TreatAsWithdraw,
        ))
    }
}

/// Decodes the value of an attribute herald interprets (`type_code` has
/// [`expected_flags`]); AS4_PATH is returned as an [`PathAttribute::AsPath`] for the caller
/// to merge.
pub(crate) fn parse_value(
    type_code: u8,
    value: &[u8],
    four_octet: bool,
) -> Result<PathAttribute, Fault> {
    use Handling::*;
    use attribute_type::*;
    let withdraw = |kind| Fault::Attribute(kind, TreatAsWithdraw);
    Ok(match type_code {
        ORIGIN => match exact::<1>(value, TreatAsWithdraw)? {
            [0] => PathAttribute::Origin(Origin::Igp),
            [1] => PathAttribute::Origin(Origin::Egp),
            [2] => PathAttribute::Origin(Origin::Incomplete),
            [v] => return Err(withdraw(AttributeErrorKind::InvalidOrigin(v))),
        },
        AS_PATH => PathAttribute::AsPath(
            AsPath::parse(value, four_octet)
                .map_err(|e| withdraw(AttributeErrorKind::MalformedAsPath(e)))?,
        ),
        // RFC 6793 §6 (as revised by RFC 7606 §7.3): a malformed AS4_PATH is discarded.
        AS4_PATH => PathAttribute::AsPath(AsPath::parse(value, true).map_err(|e| {
            Fault::Attribute(AttributeErrorKind::MalformedAsPath(e), AttributeDiscard)
        })?),
        NEXT_HOP => PathAttribute::NextHop(Ipv4Addr::from(exact::<4>(value, TreatAsWithdraw)?)),
        MULTI_EXIT_DISC => {
            PathAttribute::MultiExitDisc(u32::from_be_bytes(exact(value, TreatAsWithdraw)?))
        }
        LOCAL_PREF => PathAttribute::LocalPref(u32::from_be_bytes(exact(value, TreatAsWithdraw)?)),
        ATOMIC_AGGREGATE => {
            exact::<0>(value, AttributeDiscard)?;
            PathAttribute::AtomicAggregate
        }
        COMMUNITIES => {
            multiple_of(value, 4)?;
            PathAttribute::Communities(
                value
                    .chunks_exact(4)
                    .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            )
        }
        LARGE_COMMUNITIES => {
            multiple_of(value, 12)?;
            PathAttribute::LargeCommunities(
                value
                    .chunks_exact(12)
                    .map(|c| {
                        let word =
                            |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        LargeCommunity {
                            global_administrator: word(0),
                            local_data_1: word(4),
                            local_data_2: word(8),
                        }
                    })
                    .collect(),
            )
        }
        MP_REACH_NLRI => parse_mp_reach(value)?,
        MP_UNREACH_NLRI => parse_mp_unreach(value)?,
        other => {
            return Err(Fault::Session(Error::UnrecognizedWellKnownAttribute(other)));
        }
    })
}

fn mp_fault(type_code: u8, reason: impl Into<String>) -> Fault {
    Fault::Session(Error::MalformedMpAttribute {
        type_code,
        reason: reason.into(),
    })
}

fn read_family(r: &mut Reader<'_>, type_code: u8) -> Result<Family, Fault> {
    match (r.u16(), r.u8()) {
        (Some(afi), Some(safi)) => Ok(Family::new(afi, safi)),
        _ => Err(mp_fault(type_code, "shorter than AFI and SAFI")),
    }
}

fn unsupported(family: Family) -> Fault {
    Fault::Attribute(
        AttributeErrorKind::UnsupportedFamily {
            afi: family.afi,
            safi: family.safi,
        },
        Handling::AttributeDiscard,
    )
}

fn parse_mp_reach(value: &[u8]) -> Result<PathAttribute, Fault> {
    const T: u8 = attribute_type::MP_REACH_NLRI;
    let mut r = Reader::new(value);
    let family = read_family(&mut r, T)?;
    let nh_len = r
        .u8()
        .ok_or_else(|| mp_fault(T, "next hop length missing"))?;
    let nh = r
        .take(usize::from(nh_len))
        .ok_or_else(|| mp_fault(T, "next hop overruns the attribute"))?;
    r.u8()
        .ok_or_else(|| mp_fault(T, "reserved octet missing"))?;
    if !family.is_supported() {
        return Err(unsupported(family));
    }
    let nlri = parse_prefixes(r.rest(), family.afi == afi::IPV6)
        .map_err(|e| mp_fault(T, format!("NLRI: {e}")))?;
    Ok(PathAttribute::MpReachNlri(MpReachNlri {
        family,
        next_hop: NextHop::parse(family, nh),
        nlri,
    }))
}

fn parse_mp_unreach(value: &[u8]) -> Result<PathAttribute, Fault> {
    const T: u8 = attribute_type::MP_UNREACH_NLRI;
    let mut r = Reader::new(value);
    let family = read_family(&mut r, T)?;
    if !family.is_supported() {
        return Err(unsupported(family));
    }
    let withdrawn = parse_prefixes(r.rest(), family.afi == afi::IPV6)
        .map_err(|e| mp_fault(T, format!("withdrawn routes: {e}")))?;
    Ok(PathAttribute::MpUnreachNlri(MpUnreachNlri {
        family,
        withdrawn,
    }))
}
