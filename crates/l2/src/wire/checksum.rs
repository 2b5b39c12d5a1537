//! The Internet checksum (RFC 1071) and the IPv6 pseudo-header that ICMPv6 covers
//! (RFC 8200 §8.1, RFC 4443 §2.3).

use std::net::Ipv6Addr;

/// Adds `data` as big-endian 16-bit words (a trailing odd byte padded with zero) to `sum`,
/// without folding. A `u64` cannot overflow for any buffer that fits in memory.
fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    sum as u16
}

/// The unfolded sum of the IPv6 pseudo-header: source, destination, upper-layer packet length
/// and next header.
pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum = accumulate(sum, &length.to_be_bytes());
    sum + u64::from(next_header)
}

/// The ones' complement of the ones' complement sum of `data`, starting from `initial` (for a
/// pseudo-header). Over a message whose checksum field is already filled in, the result is 0
/// when the checksum is right.
pub fn internet_checksum(initial: u64, data: &[u8]) -> u16 {
    !fold(accumulate(initial, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(internet_checksum(0, &data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            internet_checksum(0, &[0xab]),
            internet_checksum(0, &[0xab, 0x00])
        );
    }
}
