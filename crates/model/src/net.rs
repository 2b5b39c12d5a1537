//! Addresses and durations as users write them in pools and peers, with errors that say which
//! part is wrong.
//!
//! Owns the text forms only: pool entries (`192.0.2.0/24`, `2001:db8::/64`,
//! `192.0.2.10-192.0.2.20`), single addresses, CIDR decomposition of ranges, and Go /
//! `metav1.Duration` strings. Acceptance is decided by the standard library's parsers, so
//! herald accepts exactly the addresses everyone else does; when they refuse, an explainer
//! walks the text to name the octet or group at fault. Nothing here panics on any input.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::world::{AddressRange, Family};

/// Why a single address was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("the address is empty")]
    Empty,
    #[error(
        "not an IP address (an IPv4 address is four dotted numbers, an IPv6 address hex groups separated by ':')"
    )]
    NotAnAddress,
    #[error("an IPv4 address has 4 octets separated by '.'; found {found}")]
    OctetCount { found: usize },
    #[error("octet {index} is empty")]
    EmptyOctet { index: usize },
    #[error("octet {index} {octet:?} is not a decimal number (an IPv4 octet is 0 to 255)")]
    OctetNotNumber { index: usize, octet: String },
    #[error("octet {index} {octet:?} is greater than 255")]
    OctetTooLarge { index: usize, octet: String },
    #[error("octet {index} {octet:?} has a leading zero, which some tools read as octal")]
    OctetLeadingZero { index: usize, octet: String },
    #[error("group {index} {group:?} is not hexadecimal (an IPv6 group is 1 to 4 hex digits)")]
    GroupNotHex { index: usize, group: String },
    #[error("group {index} {group:?} has more than 4 hex digits")]
    GroupTooLong { index: usize, group: String },
    #[error("group {index} is empty: a single ':' may not start or end an address")]
    EmptyGroup { index: usize },
    #[error(
        "too many groups: found {found}, but an IPv6 address has 8 in all (\"::\" stands for at least one)"
    )]
    TooManyGroups { found: usize },
    #[error("too few groups: found {found} and no \"::\", but an IPv6 address has 8")]
    TooFewGroups { found: usize },
    #[error("\"::\" appears more than once; it may stand for only one run of zero groups")]
    MultipleDoubleColons,
    #[error("\":::\" is not valid; \"::\" alone stands for a run of zero groups")]
    TripleColon,
    #[error("embedded IPv4 address {part:?}: {source}")]
    EmbeddedIpv4 {
        part: String,
        #[source]
        source: Box<IpError>,
    },
    #[error("an embedded IPv4 address {part:?} may only be the last part of an IPv6 address")]
    EmbeddedIpv4NotLast { part: String },
    #[error("a zone index ({zone:?}) is not allowed here")]
    Zone { zone: String },
    #[error("brackets are not part of an address")]
    Brackets,
    #[error("not a valid {0} address")]
    Invalid(Family),
}

impl IpError {
    /// What to write instead, for the user who wrote the address.
    pub fn fix(&self) -> String {
        match self {
            IpError::Empty | IpError::NotAnAddress | IpError::Invalid(_) => {
                "write an address such as 192.0.2.1 or 2001:db8::1".into()
            }
            IpError::OctetCount { .. } | IpError::EmptyOctet { .. } => {
                "write four numbers 0-255 separated by dots, such as 192.0.2.1".into()
            }
            IpError::OctetNotNumber { octet, .. } => {
                format!("replace {octet:?} with a number from 0 to 255")
            }
            IpError::OctetTooLarge { octet, .. } => {
                format!("replace {octet:?} with a number from 0 to 255")
            }
            IpError::OctetLeadingZero { octet, .. } => {
                let trimmed = octet.trim_start_matches('0');
                let plain = if trimmed.is_empty() { "0" } else { trimmed };
                format!("write {plain} instead of {octet}")
            }
            IpError::GroupNotHex { group, .. } => format!(
                "IPv6 groups are numbers, not names: replace {group:?} with 1 to 4 hex digits (0-9, a-f)"
            ),
            IpError::GroupTooLong { group, .. } => {
                format!("split {group:?} into groups of at most 4 hex digits, or drop leading zeros")
            }
            IpError::EmptyGroup { .. } => {
                "remove the lone ':' or write \"::\" for a run of zero groups".into()
            }
            IpError::TooManyGroups { .. } | IpError::TooFewGroups { .. } => {
                "write 8 groups, or fewer with one \"::\" standing for the zeros, as in 2001:db8::1"
                    .into()
            }
            IpError::MultipleDoubleColons => {
                "keep one \"::\" and write the other run of zeros as 0 groups".into()
            }
            IpError::TripleColon => "write \"::\" instead of \":::\"".into(),
            IpError::EmbeddedIpv4 { source, .. } => source.fix(),
            IpError::EmbeddedIpv4NotLast { .. } => {
                "put the dotted IPv4 part last, as in ::ffff:192.0.2.1, or write it as two hex groups"
                    .into()
            }
            IpError::Zone { .. } => "remove the '%' and what follows it".into(),
            IpError::Brackets => "remove the '[' and ']'".into(),
        }
    }
}

/// Parses one IPv4 or IPv6 address, as a peer address, source address or router ID.
pub fn parse_ip(text: &str) -> Result<IpAddr, IpError> {
    let s = text.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    Err(explain_ip(s))
}

/// Parses an IPv4 address only, such as a BGP router ID.
pub fn parse_ipv4(text: &str) -> Result<Ipv4Addr, IpError> {
    let s = text.trim();
    s.parse::<Ipv4Addr>()
        .map_err(|_| explain_v4(s).unwrap_or(IpError::Invalid(Family::Ipv4)))
}

fn explain_ip(s: &str) -> IpError {
    if s.is_empty() {
        IpError::Empty
    } else if s.contains(':') || s.starts_with('[') {
        explain_v6(s).unwrap_or(IpError::Invalid(Family::Ipv6))
    } else if s.contains('.') {
        explain_v4(s).unwrap_or(IpError::Invalid(Family::Ipv4))
    } else {
        IpError::NotAnAddress
    }
}

/// The first thing wrong with `s` as an IPv4 address, or `None` when nothing is found.
fn explain_v4(s: &str) -> Option<IpError> {
    let octets: Vec<&str> = s.split('.').collect();
    for (i, octet) in octets.iter().enumerate() {
        let index = i + 1;
        let octet_owned = || octet.to_string();
        if octet.is_empty() {
            return Some(IpError::EmptyOctet { index });
        }
        if !octet.bytes().all(|b| b.is_ascii_digit()) {
            return Some(IpError::OctetNotNumber {
                index,
                octet: octet_owned(),
            });
        }
        if octet.len() > 3 || octet.parse::<u16>().map_or(true, |v| v > 255) {
            return Some(IpError::OctetTooLarge {
                index,
                octet: octet_owned(),
            });
        }
        if octet.len() > 1 && octet.starts_with('0') {
            return Some(IpError::OctetLeadingZero {
                index,
                octet: octet_owned(),
            });
        }
    }
    (octets.len() != 4).then_some(IpError::OctetCount {
        found: octets.len(),
    })
}

/// The first thing wrong with `s` as an IPv6 address, or `None` when nothing is found.
fn explain_v6(s: &str) -> Option<IpError> {
    if s.starts_with('[') || s.ends_with(']') {
        return Some(IpError::Brackets);
    }
    if let Some((_, zone)) = s.split_once('%') {
        return Some(IpError::Zone {
            zone: zone.to_owned(),
        });
    }
    if s.contains(":::") {
        return Some(IpError::TripleColon);
    }
    let (head, tail) = match s.split_once("::") {
        Some((_, tail)) if tail.contains("::") => return Some(IpError::MultipleDoubleColons),
        Some((head, tail)) => (head, Some(tail)),
        None => (s, None),
    };
    let split = |part: &str| -> Vec<String> {
        if part.is_empty() {
            Vec::new()
        } else {
            part.split(':').map(str::to_owned).collect()
        }
    };
    let mut groups = split(head);
    groups.extend(tail.map(split).unwrap_or_default());
    let mut count = 0;
    for (i, group) in groups.iter().enumerate() {
        let index = i + 1;
        if group.contains('.') {
            if index != groups.len() {
                return Some(IpError::EmbeddedIpv4NotLast {
                    part: group.clone(),
                });
            }
            if let Some(source) = explain_v4(group) {
                return Some(IpError::EmbeddedIpv4 {
                    part: group.clone(),
                    source: Box::new(source),
                });
            }
            count += 2;
            continue;
        }
        if group.is_empty() {
            return Some(IpError::EmptyGroup { index });
        }
        if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(IpError::GroupNotHex {
                index,
                group: group.clone(),
            });
        }
        if group.len() > 4 {
            return Some(IpError::GroupTooLong {
                index,
                group: group.clone(),
            });
        }
        count += 1;
    }
    match tail {
        Some(_) if count > 7 => Some(IpError::TooManyGroups { found: count }),
        None if count > 8 => Some(IpError::TooManyGroups { found: count }),
        None if count < 8 => Some(IpError::TooFewGroups { found: count }),
        _ => None,
    }
}

/// Why a pool entry was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the entry is empty")]
    Empty,
    #[error("{0}")]
    Address(IpError),
    #[error("the {end} of the range, {text:?}: {source}")]
    RangeEnd {
        end: RangeEnd,
        text: String,
        #[source]
        source: IpError,
    },
    #[error("the {end} of the range, {text:?}, is a prefix; a range runs between two addresses")]
    PrefixInRange { end: RangeEnd, text: String },
    #[error("prefix length {text:?} is not a number (it is 0 to {max} for {family})")]
    PrefixNotNumber {
        text: String,
        family: Family,
        max: u8,
    },
    #[error("prefix length /{text} is out of range: an {family} prefix is /0 to /{max}")]
    PrefixOutOfRange {
        text: String,
        family: Family,
        max: u8,
    },
    #[error("the range mixes address families: {first} is IPv4 and {last} is IPv6, or the reverse")]
    MixedFamilies { first: IpAddr, last: IpAddr },
    #[error("the range is reversed: its start {first} comes after its end {last}")]
    Reversed { first: IpAddr, last: IpAddr },
}

/// Which end of an `a-b` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    Start,
    End,
}

impl std::fmt::Display for RangeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RangeEnd::Start => "start",
            RangeEnd::End => "end",
        })
    }
}

impl EntryError {
    /// What to write instead.
    pub fn fix(&self) -> String {
        match self {
            EntryError::Empty => {
                "write a prefix (192.0.2.0/24, 2001:db8::/64) or a range (192.0.2.10-192.0.2.20), or remove the entry"
                    .into()
            }
            EntryError::Address(e) | EntryError::RangeEnd { source: e, .. } => e.fix(),
            EntryError::PrefixInRange { .. } => {
                "write either a prefix (192.0.2.0/24) or a range of two addresses (192.0.2.10-192.0.2.20)"
                    .into()
            }
            EntryError::PrefixNotNumber { max, .. } | EntryError::PrefixOutOfRange { max, .. } => {
                format!("write a prefix length from 0 to {max} after the '/'")
            }
            EntryError::MixedFamilies { .. } => {
                "write one range per family; a pool may hold IPv4 and IPv6 entries side by side".into()
            }
            EntryError::Reversed { first, last } => format!("write {last}-{first}"),
        }
    }
}

/// One pool entry, understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolEntry {
    pub range: AddressRange,
    /// Set when a prefix was written with host bits (`192.0.2.5/24`): the network it is taken as.
    pub masked_from_host_bits: Option<IpNet>,
}

/// Parses a pool entry: a CIDR prefix, or an inclusive `first-last` range (spaces around the
/// `-` allowed). A prefix with host bits set is taken as its network, as Go's `ParseCIDR`
/// (and so MetalLB) does; the caller warns about it.
pub fn parse_pool_entry(text: &str) -> Result<PoolEntry, EntryError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(EntryError::Empty);
    }
    if let Some((a, b)) = s.split_once('-') {
        let end = |which: RangeEnd, t: &str| -> Result<IpAddr, EntryError> {
            let t = t.trim();
            if t.contains('/') {
                return Err(EntryError::PrefixInRange {
                    end: which,
                    text: t.to_owned(),
                });
            }
            parse_ip(t).map_err(|source| EntryError::RangeEnd {
                end: which,
                text: t.to_owned(),
                source,
            })
        };
        let (first, last) = (end(RangeEnd::Start, a)?, end(RangeEnd::End, b)?);
        if first.is_ipv4() != last.is_ipv4() {
            return Err(EntryError::MixedFamilies { first, last });
        }
        if first > last {
            return Err(EntryError::Reversed { first, last });
        }
        return Ok(PoolEntry {
            range: AddressRange { first, last },
            masked_from_host_bits: None,
        });
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s, None),
    };
    let ip = parse_ip(addr).map_err(EntryError::Address)?;
    let family = Family::of(&ip);
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(EntryError::PrefixNotNumber {
                text: p.to_owned(),
                family,
                max,
            });
        }
        Some(p) => match p.parse::<u8>() {
            Ok(len) if len <= max => len,
            _ => {
                return Err(EntryError::PrefixOutOfRange {
                    text: p.to_owned(),
                    family,
                    max,
                });
            }
        },
    };
    let written = IpNet::new(ip, len).map_err(|_| EntryError::PrefixOutOfRange {
        text: len.to_string(),
        family,
        max,
    })?;
    let net = written.trunc();
    Ok(PoolEntry {
        range: AddressRange {
            first: net.network(),
            last: net.broadcast(),
        },
        masked_from_host_bits: (net.addr() != ip).then_some(net),
    })
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(family: Family, bits: u128) -> IpAddr {
    match family {
        // Only values taken from IPv4 addresses reach here, so they fit.
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(bits).unwrap_or(u32::MAX))),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The smallest list of CIDR prefixes that covers exactly `range`, in address order.
pub fn range_cidrs(range: &AddressRange) -> Vec<IpNet> {
    let family = range.family();
    let width: u32 = if family == Family::Ipv4 { 32 } else { 128 };
    let (mut first, last) = (to_bits(range.first), to_bits(range.last));
    let mut out = Vec::new();
    if first > last || range.last.is_ipv4() != range.first.is_ipv4() {
        return out;
    }
    let span_mask = |k: u32| {
        if k >= 128 {
            u128::MAX
        } else {
            (1u128 << k) - 1
        }
    };
    loop {
        // The largest aligned block starting at `first` that does not run past `last`.
        let mut k = first.trailing_zeros().min(width);
        while k > 0 && span_mask(k) > last - first {
            k -= 1;
        }
        let len = u8::try_from(width - k).unwrap_or(0);
        if let Ok(net) = IpNet::new(from_bits(family, first), len) {
            out.push(net);
        }
        match first.checked_add(span_mask(k)) {
            Some(end) if end < last => first = end + 1,
            _ => break,
        }
    }
    out
}

/// The smallest list of CIDR prefixes covering every address of `ranges` (which may touch or
/// overlap, and be of both families): IPv4 first, then IPv6, each in address order.
pub fn minimal_cidrs(ranges: &[AddressRange]) -> Vec<IpNet> {
    let mut sorted: Vec<AddressRange> = ranges.to_vec();
    sorted.sort_by_key(|r| (r.family(), to_bits(r.first), to_bits(r.last)));
    let mut merged: Vec<AddressRange> = Vec::new();
    for r in sorted {
        match merged.last_mut() {
            Some(m)
                if m.family() == r.family()
                    && to_bits(r.first) <= to_bits(m.last).saturating_add(1) =>
            {
                if r.last > m.last {
                    m.last = r.last;
                }
            }
            _ => merged.push(r),
        }
    }
    merged.iter().flat_map(range_cidrs).collect()
}

/// Why a duration was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("the duration is empty")]
    Empty,
    #[error("a negative duration is not allowed here")]
    Negative,
    #[error("{number:?} has no unit")]
    MissingUnit { number: String },
    #[error("unknown unit {unit:?}")]
    UnknownUnit { unit: String },
    #[error("expected a number at {rest:?}")]
    ExpectedNumber { rest: String },
    #[error("spaces are not allowed inside a duration")]
    Space,
    #[error("the duration is too large")]
    TooLarge,
}

impl DurationError {
    /// What to write instead.
    pub fn fix(&self) -> String {
        match self {
            DurationError::MissingUnit { number } => {
                format!("write {number}s for seconds (units: h, m, s, ms, us, ns; e.g. 90s, 1m30s)")
            }
            _ => {
                "write a duration such as 90s, 1m30s, 3m, 1h or 500ms (units: h, m, s, ms, us, ns)"
                    .into()
            }
        }
    }
}

/// Parses a duration as Go's `time.ParseDuration` (and so `metav1.Duration`) does:
/// `90s`, `1m30s`, `1.5h`, `500ms`, and a bare `0`. Negative durations are refused, since no
/// field herald reads means anything by them.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    let s = match s.strip_prefix('-') {
        Some(_) => return Err(DurationError::Negative),
        None => s.strip_prefix('+').unwrap_or(s),
    };
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.contains(char::is_whitespace) {
        return Err(DurationError::Space);
    }
    const MAX_NANOS: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(DurationError::ExpectedNumber {
                rest: rest.to_owned(),
            });
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per: u128 = match unit {
            "" => {
                return Err(DurationError::MissingUnit {
                    number: number.to_owned(),
                });
            }
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                });
            }
        };
        let whole: u128 = if int.is_empty() {
            0
        } else if int.len() > 20 {
            return Err(DurationError::TooLarge);
        } else {
            int.parse().map_err(|_| DurationError::TooLarge)?
        };
        // Fractions beyond nanosecond precision cannot matter; Go drops them too.
        let mut frac_nanos: u128 = 0;
        let mut scale: u128 = 1;
        for d in frac.bytes().take(20) {
            frac_nanos = frac_nanos * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total = whole
            .checked_mul(nanos_per)
            .and_then(|w| w.checked_add(frac_nanos * nanos_per / scale))
            .and_then(|v| total.checked_add(v))
            .filter(|t| *t <= MAX_NANOS)
            .ok_or(DurationError::TooLarge)?;
        rest = next;
    }
    let total = u64::try_from(total).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::from_nanos(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn entry(s: &str) -> Result<AddressRange, EntryError> {
        parse_pool_entry(s).map(|e| e.range)
    }

    fn range(a: &str, b: &str) -> AddressRange {
        AddressRange {
            first: ip(a),
            last: ip(b),
        }
    }

    #[test]
    fn pool_entries_of_every_form() {
        assert_eq!(entry("192.0.2.0/24"), Ok(range("192.0.2.0", "192.0.2.255")));
        assert_eq!(
            entry("2001:db8::/64"),
            Ok(range("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"))
        );
        assert_eq!(
            entry("192.0.2.10-192.0.2.20"),
            Ok(range("192.0.2.10", "192.0.2.20"))
        );
        assert_eq!(
            entry(" 2001:db8::1 - 2001:db8::ff "),
            Ok(range("2001:db8::1", "2001:db8::ff"))
        );
        assert_eq!(entry("192.0.2.7"), Ok(range("192.0.2.7", "192.0.2.7")));
        assert_eq!(
            entry("::/0"),
            Ok(range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
    }

    #[test]
    fn names_the_group_that_is_not_hex() {
        let err = parse_pool_entry("2001:db8:prod::/64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "group 3 \"prod\" is not hexadecimal (an IPv6 group is 1 to 4 hex digits)"
        );
        assert!(err.fix().contains("\"prod\""));
        assert_eq!(
            parse_ip("2001:db8:prod::100").unwrap_err(),
            IpError::GroupNotHex {
                index: 3,
                group: "prod".into()
            }
        );
    }

    #[test]
    fn names_every_ipv6_mistake() {
        let e = |s: &str| parse_ip(s).unwrap_err();
        assert_eq!(e("1:2:3:4:5:6:7:8:9"), IpError::TooManyGroups { found: 9 });
        assert_eq!(e("1:2:3:4:5:6:7::8"), IpError::TooManyGroups { found: 8 });
        assert_eq!(e("1:2:3:4:5:6:7"), IpError::TooFewGroups { found: 7 });
        assert_eq!(e("2001:db8::1::2"), IpError::MultipleDoubleColons);
        assert_eq!(e("2001:db8:::1"), IpError::TripleColon);
        assert_eq!(
            e("2001:db8:12345::"),
            IpError::GroupTooLong {
                index: 3,
                group: "12345".into()
            }
        );
        assert_eq!(e(":1::2"), IpError::EmptyGroup { index: 1 });
        assert_eq!(
            e("::ffff:192.0.2.300"),
            IpError::EmbeddedIpv4 {
                part: "192.0.2.300".into(),
                source: Box::new(IpError::OctetTooLarge {
                    index: 4,
                    octet: "300".into()
                })
            }
        );
        assert!(
            e("::ffff:192.0.2.300")
                .to_string()
                .contains("octet 4 \"300\" is greater than 255")
        );
        assert_eq!(
            e("::1.2.3.4:1"),
            IpError::EmbeddedIpv4NotLast {
                part: "1.2.3.4".into()
            }
        );
        assert_eq!(
            e("fe80::1%eth0"),
            IpError::Zone {
                zone: "eth0".into()
            }
        );
        assert_eq!(e("[2001:db8::1]"), IpError::Brackets);
    }

    #[test]
    fn names_every_ipv4_mistake() {
        let e = |s: &str| parse_ip(s).unwrap_err();
        assert_eq!(
            e("192.0.2.256"),
            IpError::OctetTooLarge {
                index: 4,
                octet: "256".into()
            }
        );
        assert_eq!(e("192.0.2"), IpError::OctetCount { found: 3 });
        assert_eq!(e("192.0..1"), IpError::EmptyOctet { index: 3 });
        assert_eq!(
            e("192.0.x.1"),
            IpError::OctetNotNumber {
                index: 3,
                octet: "x".into()
            }
        );
        assert_eq!(
            e("192.0.02.1"),
            IpError::OctetLeadingZero {
                index: 3,
                octet: "02".into()
            }
        );
        assert_eq!(e("prod"), IpError::NotAnAddress);
        assert_eq!(e(""), IpError::Empty);
        assert!(parse_ipv4("2001:db8::1").is_err());
        assert_eq!(parse_ipv4("10.0.0.1"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn prefix_lengths_are_checked_per_family() {
        assert_eq!(
            parse_pool_entry("2001:db8::/129").unwrap_err().to_string(),
            "prefix length /129 is out of range: an IPv6 prefix is /0 to /128"
        );
        assert!(matches!(
            parse_pool_entry("192.0.2.0/33"),
            Err(EntryError::PrefixOutOfRange { max: 32, .. })
        ));
        assert!(matches!(
            parse_pool_entry("192.0.2.0/"),
            Err(EntryError::PrefixNotNumber { .. })
        ));
        assert!(matches!(
            parse_pool_entry("192.0.2.0/+8"),
            Err(EntryError::PrefixNotNumber { .. })
        ));
        assert!(matches!(
            parse_pool_entry("192.0.2.0/99999999999"),
            Err(EntryError::PrefixOutOfRange { .. })
        ));
    }

    #[test]
    fn ranges_must_be_one_family_and_in_order() {
        assert!(matches!(
            parse_pool_entry("192.0.2.1-2001:db8::1"),
            Err(EntryError::MixedFamilies { .. })
        ));
        let reversed = parse_pool_entry("192.0.2.20-192.0.2.10").unwrap_err();
        assert!(matches!(reversed, EntryError::Reversed { .. }));
        assert_eq!(reversed.fix(), "write 192.0.2.10-192.0.2.20");
        assert_eq!(
            parse_pool_entry("192.0.2.1-192.0.2.300")
                .unwrap_err()
                .to_string(),
            "the end of the range, \"192.0.2.300\": octet 4 \"300\" is greater than 255"
        );
        assert!(matches!(
            parse_pool_entry("192.0.2.0/24-192.0.3.0"),
            Err(EntryError::PrefixInRange {
                end: RangeEnd::Start,
                ..
            })
        ));
    }

    #[test]
    fn host_bits_are_masked_and_reported() {
        let e = parse_pool_entry("192.0.2.5/24").unwrap();
        assert_eq!(e.range, range("192.0.2.0", "192.0.2.255"));
        assert_eq!(
            e.masked_from_host_bits,
            Some("192.0.2.0/24".parse().unwrap())
        );
        assert_eq!(
            parse_pool_entry("192.0.2.0/24")
                .unwrap()
                .masked_from_host_bits,
            None
        );
    }

    #[test]
    fn ranges_decompose_into_minimal_cidrs() {
        let cidrs = |a: &str, b: &str| -> Vec<String> {
            range_cidrs(&range(a, b))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            cidrs("192.0.2.10", "192.0.2.20"),
            [
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32"
            ]
        );
        assert_eq!(cidrs("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            cidrs("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
        assert_eq!(
            cidrs("255.255.255.254", "255.255.255.255"),
            ["255.255.255.254/31"]
        );
        assert_eq!(cidrs("2001:db8::1", "2001:db8::1"), ["2001:db8::1/128"]);
        let merged: Vec<String> = minimal_cidrs(&[
            range("192.0.2.128", "192.0.2.255"),
            range("2001:db8::", "2001:db8::ff"),
            range("192.0.2.0", "192.0.2.127"),
        ])
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(merged, ["192.0.2.0/24", "2001:db8::/120"]);
    }

    #[test]
    fn durations_as_go_writes_them() {
        let d = |s: &str| parse_duration(s);
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(d("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(
            d("90"),
            Err(DurationError::MissingUnit {
                number: "90".into()
            })
        );
        assert!(d("90").unwrap_err().fix().contains("90s"));
        assert_eq!(
            d("90sec"),
            Err(DurationError::UnknownUnit { unit: "sec".into() })
        );
        assert_eq!(d("-5s"), Err(DurationError::Negative));
        assert_eq!(d(""), Err(DurationError::Empty));
        assert_eq!(d("1 m"), Err(DurationError::Space));
        assert!(matches!(d("s"), Err(DurationError::ExpectedNumber { .. })));
        assert!(matches!(
            d("1.2.3s"),
            Err(DurationError::ExpectedNumber { .. })
        ));
        assert_eq!(d("9999999999h"), Err(DurationError::TooLarge));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,60}") {
            let _ = parse_ip(&s);
            let _ = parse_ipv4(&s);
            let _ = parse_pool_entry(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn address_like_text_never_panics_and_agrees_with_std(s in "[0-9a-fA-F:./%\\- ]{0,45}") {
            let _ = parse_pool_entry(&s);
            let _ = parse_duration(&s);
            // The explainer must never fault an address the standard parser accepts.
            if let Ok(ip) = s.parse::<IpAddr>() {
                prop_assert_eq!(parse_ip(&s), Ok(ip));
                prop_assert_eq!(explain_v6(&s).filter(|_| ip.is_ipv6()), None);
                prop_assert_eq!(explain_v4(&s).filter(|_| ip.is_ipv4()), None);
            }
        }

        #[test]
        fn explainers_accept_every_valid_address(bits in any::<u128>(), v4 in any::<u32>()) {
            let v6 = Ipv6Addr::from(bits);
            prop_assert_eq!(explain_v6(&v6.to_string()), None);
            let mapped = format!("::ffff:{}", Ipv4Addr::from(v4));
            prop_assert_eq!(explain_v6(&mapped), None);
            prop_assert_eq!(explain_v4(&Ipv4Addr::from(v4).to_string()), None);
        }

        #[test]
        fn cidrs_cover_the_range_exactly(a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let r = AddressRange {
                first: IpAddr::V4(Ipv4Addr::from(lo)),
                last: IpAddr::V4(Ipv4Addr::from(hi)),
            };
            let cidrs = range_cidrs(&r);
            prop_assert!(cidrs.len() <= 62);
            let mut next = u64::from(lo);
            for c in &cidrs {
                prop_assert_eq!(u64::from(u32::from(match c.network() { IpAddr::V4(v) => v, _ => unreachable!() })), next);
                next = u64::from(u32::from(match c.broadcast() { IpAddr::V4(v) => v, _ => unreachable!() })) + 1;
            }
            prop_assert_eq!(next, u64::from(hi) + 1);
        }
    }
}
