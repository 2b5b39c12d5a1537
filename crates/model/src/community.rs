//! BGP communities as MetalLB writes them: `A:B`, `large:A:B:C`, and well-known names.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A standard community (RFC 1997), 32 bits written `A:B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

/// A large community (RFC 8092), written `large:A:B:C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

/// Either kind, as one entry of `BGPAdvertisement.communities` resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnyCommunity {
    Standard(Community),
    Large(LargeCommunity),
}

/// Well-known communities by the names routers and MetalLB use (IANA registry).
pub const WELL_KNOWN: &[(&str, u32)] = &[
    ("graceful-shutdown", 0xFFFF_0000),
    ("accept-own", 0xFFFF_0001),
    ("llgr-stale", 0xFFFF_0006),
    ("no-llgr", 0xFFFF_0007),
    ("blackhole", 0xFFFF_029A),
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("local-as", 0xFFFF_FF03),
    ("no-peer", 0xFFFF_FF04),
];

impl Community {
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);

    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF)
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "large:{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}

impl fmt::Display for AnyCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyCommunity::Standard(c) => c.fmt(f),
            AnyCommunity::Large(c) => c.fmt(f),
        }
    }
}

impl Serialize for Community {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for LargeCommunity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a community string was not understood; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error(
        "{part:?} is not a number from 0 to 65535 (a standard community is two 16-bit halves, A:B)"
    )]
    StandardPart { part: String },
    #[error(
        "{part:?} is not a number from 0 to 4294967295 (a large community is large:A:B:C of 32-bit numbers)"
    )]
    LargePart { part: String },
    #[error("a large community has three numbers after \"large:\", A:B:C; found {found}")]
    LargeArity { found: usize },
    #[error(
        "not a community: write A:B (0-65535 each), large:A:B:C (32-bit each), or a well-known name such as no-export"
    )]
    Unrecognized,
}

impl FromStr for AnyCommunity {
    type Err = CommunityError;

    /// Parses the literal forms only; aliases from Community objects are resolved by the caller.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some((_, v)) = WELL_KNOWN.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(AnyCommunity::Standard(Community(*v)));
        }
        if let Some(rest) = s.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 3 {
                return Err(CommunityError::LargeArity { found: parts.len() });
            }
            let n = |p: &str| {
                p.parse::<u32>()
                    .map_err(|_| CommunityError::LargePart { part: p.to_owned() })
            };
            return Ok(AnyCommunity::Large(LargeCommunity {
                global_admin: n(parts[0])?,
                local_data_1: n(parts[1])?,
                local_data_2: n(parts[2])?,
            }));
        }
        let Some((a, b)) = s.split_once(':') else {
            return Err(CommunityError::Unrecognized);
        };
        let n = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| CommunityError::StandardPart { part: p.to_owned() })
        };
        Ok(AnyCommunity::Standard(Community::new(n(a)?, n(b)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "64500:100".parse(),
            Ok(AnyCommunity::Standard(Community::new(64500, 100)))
        );
        assert_eq!(
            "no-export".parse(),
            Ok(AnyCommunity::Standard(Community::NO_EXPORT))
        );
        assert_eq!(
            "large:4200000001:1:2".parse(),
            Ok(AnyCommunity::Large(LargeCommunity {
                global_admin: 4_200_000_001,
                local_data_1: 1,
                local_data_2: 2
            }))
        );
    }

    #[test]
    fn rejects_with_the_part_named() {
        assert_eq!(
            "65536:1".parse::<AnyCommunity>(),
            Err(CommunityError::StandardPart {
                part: "65536".into()
            })
        );
        assert_eq!(
            "large:1:2".parse::<AnyCommunity>(),
            Err(CommunityError::LargeArity { found: 2 })
        );
        assert_eq!(
            "nonsense".parse::<AnyCommunity>(),
            Err(CommunityError::Unrecognized)
        );
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(Community::new(65535, 65281).to_string(), "65535:65281");
    }
}
