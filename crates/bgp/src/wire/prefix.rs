//! IP prefixes as BGP carries them in NLRI fields (RFC 4271 §4.3, RFC 4760 §5): a length in
//! bits followed by the fewest octets that hold that many bits.

use super::reader::Reader;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an NLRI field could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix length {len} is longer than {max} bits")]
    LengthTooLong { len: u8, max: u8 },
    #[error("prefix of {len} bits needs {needed} octets but only {available} remain in the field")]
    Truncated {
        len: u8,
        needed: usize,
        available: usize,
    },
}

/// An IPv4 or IPv6 prefix. Bits past the length are always zero: RFC 4271 says their value
/// on the wire is irrelevant, so decoding clears them and two encodings of one route compare
/// equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix, with the host bits cleared. Fails when `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let max = max_len(&addr);
        if len > max {
            return Err(PrefixError::LengthTooLong { len, max });
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Prefix { addr, len })
    }

    /// A host route: /32 for IPv4, /128 for IPv6.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            len: max_len(&addr),
            addr,
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Octets this prefix takes in an NLRI field: the length octet plus the prefix octets.
    pub fn encoded_len(&self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }

    /// Appends the NLRI encoding of this prefix.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let n = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// Decodes a whole NLRI field of IPv4 (`ipv6 == false`) or IPv6 prefixes. The field must end
/// exactly after its last prefix: a partial prefix at the end is an error, not ignored.
pub(crate) fn parse_prefixes(field: &[u8], ipv6: bool) -> Result<Vec<Prefix>, PrefixError> {
    let max: u8 = if ipv6 { 128 } else { 32 };
    let mut r = Reader::new(field);
    // Each prefix takes at least one octet, so this never over-allocates by much.
    let mut out = Vec::with_capacity(field.len() / if ipv6 { 9 } else { 4 });
    while let Some(len) = r.u8() {
        if len > max {
            return Err(PrefixError::LengthTooLong { len, max });
        }
        let needed = usize::from(len).div_ceil(8);
        let available = r.remaining();
        let bytes = r.take(needed).ok_or(PrefixError::Truncated {
            len,
            needed,
            available,
        })?;
        let addr = if ipv6 {
            let mut o = [0u8; 16];
            o[..needed].copy_from_slice(bytes);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let mut o = [0u8; 4];
            o[..needed].copy_from_slice(bytes);
            IpAddr::V4(Ipv4Addr::from(o))
        };
        out.push(Prefix::new(addr, len)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_octets() {
        let p = Prefix::new("10.1.2.3".parse().unwrap(), 9).unwrap();
        assert_eq!(p.addr(), "10.0.0.0".parse::<IpAddr>().unwrap());
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out, [9, 10, 0]);
        assert_eq!(p.encoded_len(), 3);
        let d = Prefix::new("0.0.0.0".parse().unwrap(), 0).unwrap();
        let mut out = Vec::new();
        d.emit(&mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn rejects_long_and_truncated() {
        assert_eq!(
            parse_prefixes(&[33, 1, 2, 3, 4, 5], false),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert_eq!(
            parse_prefixes(&[129], true),
            Err(PrefixError::LengthTooLong { len: 129, max: 128 })
        );
        // 10.0.0.0/8 then a /24 with only two of its three octets.
        assert_eq!(
            parse_prefixes(&[8, 10, 24, 192, 168], false),
            Err(PrefixError::Truncated {
                len: 24,
                needed: 3,
                available: 2
            })
        );
    }

    #[test]
    fn clears_host_bits() {
        // 10.255/9: the low 7 bits of the second octet are not part of the prefix.
        let p = parse_prefixes(&[9, 10, 0xff], false).unwrap();
        assert_eq!(p[0].to_string(), "10.128.0.0/9");
    }
}
