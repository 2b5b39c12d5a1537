//! Sets of addresses of one family as disjoint inclusive intervals, so the first free address
//! of a range is found in O(log n) however many addresses are taken.

use model::world::Family;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as (family, number); IPv4 numbers fit in 32 bits.
pub(crate) fn bits(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::Ipv4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::Ipv6, u128::from(v6)),
    }
}

pub(crate) fn from_bits(family: Family, n: u128) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

pub(crate) fn index(family: Family) -> usize {
    match family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    }
}

/// An IPv4 address ending in .0 or .255, which confuses the smurf protection of some
/// customer routers (MetalLB's `avoidBuggyIPs`).
pub fn is_buggy(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// Addresses of one family; intervals never overlap nor touch.
#[derive(Clone, Debug, Default)]
pub(crate) struct IntervalSet(BTreeMap<u128, u128>);

impl IntervalSet {
    fn containing(&self, a: u128) -> Option<(u128, u128)> {
        self.0
            .range(..=a)
            .next_back()
            .filter(|(_, end)| **end >= a)
            .map(|(s, e)| (*s, *e))
    }

    pub fn contains(&self, a: u128) -> bool {
        self.containing(a).is_some()
    }

    pub fn insert(&mut self, a: u128) {
        if self.contains(a) {
            return;
        }
        let left = a.checked_sub(1).and_then(|p| self.containing(p));
        let right = a
            .checked_add(1)
            .and_then(|n| self.0.get(&n).map(|e| (n, *e)));
        match (left, right) {
            (Some((ls, _)), Some((rs, re))) => {
                self.0.remove(&rs);
                self.0.insert(ls, re);
            }
            (Some((ls, _)), None) => {
                self.0.insert(ls, a);
            }
            (None, Some((rs, re))) => {
                self.0.remove(&rs);
                self.0.insert(a, re);
            }
            (None, None) => {
                self.0.insert(a, a);
            }
        }
    }

    pub fn remove(&mut self, a: u128) {
        let Some((s, e)) = self.containing(a) else {
            return;
        };
        self.0.remove(&s);
        if s < a {
            self.0.insert(s, a - 1);
        }
        if a < e {
            self.0.insert(a + 1, e);
        }
    }

    /// The first address at or after `from` that is not in the set.
    pub fn first_absent(&self, from: u128) -> Option<u128> {
        match self.containing(from) {
            Some((_, end)) => end.checked_add(1),
            None => Some(from),
        }
    }

    #[cfg(test)]
    pub fn intervals(&self) -> Vec<(u128, u128)> {
        self.0.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The interval set holds exactly what a plain set would, stays merged, and finds the
        /// same first free address.
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200), probe in 0u128..70) {
            let mut set = IntervalSet::default();
            let mut model = BTreeSet::new();
            for (add, a) in ops {
                if add { set.insert(a); model.insert(a); } else { set.remove(a); model.remove(&a); }
            }
            for a in 0..70 {
                prop_assert_eq!(set.contains(a), model.contains(&a));
            }
            let ivs = set.intervals();
            for w in ivs.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "intervals touch: {:?}", ivs);
            }
            let expected = (probe..).find(|a| !model.contains(a));
            prop_assert_eq!(set.first_absent(probe), expected);
        }
    }

    #[test]
    fn the_top_of_the_space_is_handled() {
        let mut set = IntervalSet::default();
        set.insert(u128::MAX);
        set.insert(u128::MAX - 1);
        assert_eq!(set.first_absent(u128::MAX - 1), None);
        set.remove(u128::MAX);
        assert_eq!(set.first_absent(u128::MAX - 1), Some(u128::MAX));
        set.insert(0);
        set.remove(0);
        assert_eq!(set.first_absent(0), Some(0));
    }

    #[test]
    fn buggy_addresses_are_ipv4_dot_0_and_dot_255() {
        assert!(is_buggy(&"192.0.2.0".parse().unwrap()));
        assert!(is_buggy(&"192.0.2.255".parse().unwrap()));
        assert!(!is_buggy(&"192.0.2.1".parse().unwrap()));
        assert!(!is_buggy(&"2001:db8::ff".parse().unwrap()));
        assert!(!is_buggy(&"2001:db8::".parse().unwrap()));
    }
}
