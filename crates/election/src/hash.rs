//! The rendezvous (highest random weight) hash that orders a key's candidates.
//!
//! It must give every member the same order for the same key on every node and every release,
//! so it is written out here rather than taken from `std`, whose hashers may change between
//! Rust versions: FNV-1a over the member, a 0xff byte (never part of UTF-8, so no two pairs
//! run together into the same bytes) and the key, then the SplitMix64 finaliser so that keys
//! that differ only in their last bytes still spread evenly.

/// The weight of `member` for `key`; the candidate with the highest weight ranks first.
pub fn weight(member: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in member
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(key.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // SplitMix64's finaliser.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_releases() {
        // Changing these values moves addresses between nodes in a mixed-version cluster.
        assert_eq!(
            weight("node-a", "ip-192.0.2.10"),
            weight("node-a", "ip-192.0.2.10")
        );
        assert_eq!(weight("", ""), 0x4f2d_b50f_1240_40cd);
        assert_ne!(weight("a", "bc"), weight("ab", "c"));
    }

    #[test]
    fn spreads_keys_evenly_over_members() {
        let members = ["node-a", "node-b", "node-c"];
        let mut wins = [0u32; 3];
        for i in 0..3000 {
            let key = format!("ip-10.0.{}.{}", i / 256, i % 256);
            let best = (0..3)
                .max_by_key(|&m| weight(members[m], &key))
                .expect("three members");
            wins[best] += 1;
        }
        for w in wins {
            assert!((900..=1100).contains(&w), "{wins:?}");
        }
    }
}
