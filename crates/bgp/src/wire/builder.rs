//! Packing routes into UPDATEs: every prefix that shares one set of attributes goes into
//! as few messages as fit the session's maximum size, announcements and withdrawals alike.
//!
//! IPv4 routes with an IPv4 next hop use the classic NLRI field; IPv4 routes with an IPv6
//! next hop (RFC 8950) and IPv6 routes use MP_REACH_NLRI. Withdrawals use the classic field
//! for IPv4 and MP_UNREACH_NLRI for IPv6. Messages are filled in the order the prefixes are
//! given; as no prefix takes more than 17 octets, each message but the last is full to within
//! one prefix, which is the fewest messages for any order short of reshuffling.

use super::attribute::{MpReachNlri, MpUnreachNlri, NextHop, PathAttribute, attribute_type};
use super::message::HEADER_LEN;
use super::prefix::Prefix;
use super::update::UpdateRepr;
use super::{Family, Options};

/// Why routes could not be packed into UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("next hop {next_hop:?} cannot carry {prefix}")]
    NextHopFamily { prefix: Prefix, next_hop: NextHop },
    #[error("attribute {0} is set by the builder, not the caller")]
    ReservedAttribute(u8),
    #[error("the attributes take {length} octets, leaving no room for a prefix in {max}")]
    AttributesTooLong { length: usize, max: usize },
}

fn header_len(value_len: usize) -> usize {
    if value_len > 255 { 4 } else { 3 }
}

/// UPDATEs that announce `prefixes` with the shared `attributes` and `next_hop`.
///
/// `attributes` must not hold NEXT_HOP, MP_REACH_NLRI or MP_UNREACH_NLRI: those follow from
/// the next hop and the prefixes. An IPv4 prefix with an IPv6 next hop needs the peer to have
/// negotiated RFC 8950 extended next hop; checking that is the caller's job.
pub fn announce(
    prefixes: &[Prefix],
    attributes: &[PathAttribute],
    next_hop: &NextHop,
    options: &Options,
) -> Result<Vec<UpdateRepr>, BuildError> {
    for a in attributes {
        let t = a.type_code();
        if matches!(
            t,
            attribute_type::NEXT_HOP
                | attribute_type::MP_REACH_NLRI
                | attribute_type::MP_UNREACH_NLRI
        ) {
            return Err(BuildError::ReservedAttribute(t));
        }
    }
    let mut shared = attributes.to_vec();
    shared.sort_by_key(PathAttribute::type_code);
    let max = options.max_len();

    let mut out = Vec::new();
    let (v4, v6): (Vec<Prefix>, Vec<Prefix>) = prefixes.iter().partition(|p| p.is_ipv4());
    for (group, family) in [(v4, Family::IPV4_UNICAST), (v6, Family::IPV6_UNICAST)] {
        if group.is_empty() {
            continue;
        }
        let mismatch = |prefix: Prefix| BuildError::NextHopFamily {
            prefix,
            next_hop: next_hop.clone(),
        };
        match (family == Family::IPV4_UNICAST, next_hop) {
            (true, NextHop::V4(addr)) => {
                let mut attrs = shared.clone();
                attrs.push(PathAttribute::NextHop(*addr));
                attrs.sort_by_key(PathAttribute::type_code);
                let base = HEADER_LEN + 4 + attributes_len(&attrs, options);
                for nlri in pack(&group, |used| base + used, max)? {
                    out.push(UpdateRepr {
                        attributes: attrs.clone(),
                        nlri,
                        ..UpdateRepr::default()
                    });
                }
            }
            (_, NextHop::V6 { .. }) => {
                let empty = PathAttribute::MpReachNlri(MpReachNlri {
                    family,
                    next_hop: next_hop.clone(),
                    nlri: Vec::new(),
                });
                let mp_value = empty.encoded_len(true) - 3;
                let base = HEADER_LEN + 4 + attributes_len(&shared, options);
                let total = |used: usize| base + header_len(mp_value + used) + mp_value + used;
                for nlri in pack(&group, total, max)? {
                    let mut attrs = shared.clone();
                    attrs.push(PathAttribute::MpReachNlri(MpReachNlri {
                        family,
                        next_hop: next_hop.clone(),
                        nlri,
                    }));
                    attrs.sort_by_key(PathAttribute::type_code);
                    out.push(UpdateRepr {
                        attributes: attrs,
                        ..UpdateRepr::default()
                    });
                }
            }
            _ => return Err(mismatch(group[0])),
        }
    }
    Ok(out)
}

/// UPDATEs that withdraw `prefixes`.
pub fn withdraw(prefixes: &[Prefix], options: &Options) -> Vec<UpdateRepr> {
    let max = options.max_len();
    let mut out = Vec::new();
    let (v4, v6): (Vec<Prefix>, Vec<Prefix>) = prefixes.iter().partition(|p| p.is_ipv4());
    // An empty attribute list leaves room for any prefix, so packing cannot fail here.
    if !v4.is_empty() {
        for withdrawn_routes in pack(&v4, |used| HEADER_LEN + 4 + used, max).unwrap_or_default() {
            out.push(UpdateRepr {
                withdrawn_routes,
                ..UpdateRepr::default()
            });
        }
    }
    if !v6.is_empty() {
        // AFI and SAFI.
        let total = |used: usize| HEADER_LEN + 4 + header_len(3 + used) + 3 + used;
        for withdrawn in pack(&v6, total, max).unwrap_or_default() {
            out.push(UpdateRepr {
                attributes: vec![PathAttribute::MpUnreachNlri(MpUnreachNlri {
                    family: Family::IPV6_UNICAST,
                    withdrawn,
                })],
                ..UpdateRepr::default()
            });
        }
    }
    out
}

/// The End-of-RIB marker for `family` (RFC 4724 §2).
pub fn end_of_rib(family: Family) -> UpdateRepr {
    UpdateRepr::end_of_rib(family)
}

fn attributes_len(attrs: &[PathAttribute], options: &Options) -> usize {
    attrs
        .iter()
        .map(|a| a.encoded_len(options.four_octet_as))
        .sum()
}

/// Splits `prefixes` into runs whose message length, `total(octets of prefixes)`, stays
/// within `max`.
fn pack(
    prefixes: &[Prefix],
    total: impl Fn(usize) -> usize,
    max: usize,
) -> Result<Vec<Vec<Prefix>>, BuildError> {
    let mut out = Vec::new();
    let mut run: Vec<Prefix> = Vec::new();
    let mut used = 0;
    for &p in prefixes {
        let len = p.encoded_len();
        if total(used + len) > max {
            if run.is_empty() {
                return Err(BuildError::AttributesTooLong {
                    length: total(0),
                    max,
                });
            }
            out.push(std::mem::take(&mut run));
            used = 0;
            if total(len) > max {
                return Err(BuildError::AttributesTooLong {
                    length: total(0),
                    max,
                });
            }
        }
        run.push(p);
        used += len;
    }
    if !run.is_empty() {
        out.push(run);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Message, Origin};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn v4_hosts(n: u32) -> Vec<Prefix> {
        (0..n)
            .map(|i| Prefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect()
    }

    fn v6_hosts(n: u128) -> Vec<Prefix> {
        (0..n)
            .map(|i| Prefix::host(IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) + i))))
            .collect()
    }

    fn attrs() -> Vec<PathAttribute> {
        vec![
            PathAttribute::AsPath(AsPath::origin(4_200_000_001)),
            PathAttribute::Origin(Origin::Igp),
        ]
    }

    fn check(updates: &[UpdateRepr], options: &Options) -> usize {
        let mut count = 0;
        for u in updates {
            let bytes = Message::Update(u.clone()).to_bytes(options).unwrap();
            assert!(bytes.len() <= options.max_len());
            let back = Message::from_bytes(&bytes, options).unwrap();
            let Message::Update(back) = back else {
                panic!("not an update")
            };
            assert!(back.errors.is_empty(), "{:?}", back.errors);
            count += back.announced().len() + back.withdrawn().len();
        }
        count
    }

    #[test]
    fn ipv4_classic_packs_to_the_limit() {
        let options = Options::FOUR_OCTET_AS;
        let prefixes = v4_hosts(3000);
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        let updates = announce(&prefixes, &attrs(), &nh, &options).unwrap();
        assert_eq!(check(&updates, &options), 3000);
        // 19 header + 4 lengths + ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 = 43; 5 octets a /32.
        let per = (4096 - 43) / 5;
        assert_eq!(updates.len(), 3000usize.div_ceil(per));
        assert_eq!(updates[0].nlri.len(), per);
        assert!(updates[0].attributes.iter().all(|a| a.type_code() != 14));
    }

    #[test]
    fn ipv6_uses_mp_reach_with_link_local() {
        let options = Options::FOUR_OCTET_AS;
        let prefixes = v6_hosts(1000);
        let nh = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        let updates = announce(&prefixes, &attrs(), &nh, &options).unwrap();
        assert_eq!(check(&updates, &options), 1000);
        // 19 + 4 + ORIGIN 4 + AS_PATH 9 + MP_REACH header 4 + AFI/SAFI/len 4 + 32 + 1 = 77;
        // 17 octets a /128.
        let per = (4096 - 77) / 17;
        assert_eq!(updates.len(), 1000usize.div_ceil(per));
    }

    #[test]
    fn ipv4_over_ipv6_next_hop_uses_mp_reach() {
        let options = Options::FOUR_OCTET_AS;
        let nh = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None,
        };
        let updates = announce(&v4_hosts(10), &attrs(), &nh, &options).unwrap();
        assert_eq!(updates.len(), 1);
        assert!(updates[0].nlri.is_empty());
        assert!(matches!(
            &updates[0].attributes[2],
            PathAttribute::MpReachNlri(m) if m.family == Family::IPV4_UNICAST && m.nlri.len() == 10
        ));
        check(&updates, &options);
    }

    #[test]
    fn extended_messages_take_more() {
        let options = Options {
            four_octet_as: true,
            max_message_len: 65535,
        };
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        let updates = announce(&v4_hosts(10_000), &attrs(), &nh, &options).unwrap();
        assert_eq!(updates.len(), 1);
        check(&updates, &options);
    }

    #[test]
    fn withdrawals_pack_both_families() {
        let options = Options::default();
        let mut prefixes = v4_hosts(2000);
        prefixes.extend(v6_hosts(500));
        let updates = withdraw(&prefixes, &options);
        assert_eq!(check(&updates, &options), 2500);
        assert_eq!(updates.len(), 2000usize.div_ceil((4096 - 23) / 5) + 3);
    }

    #[test]
    fn rejects_mismatched_next_hop_and_reserved_attributes() {
        let options = Options::default();
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(matches!(
            announce(&v6_hosts(1), &attrs(), &nh, &options),
            Err(BuildError::NextHopFamily { .. })
        ));
        let mut bad = attrs();
        bad.push(PathAttribute::NextHop(Ipv4Addr::LOCALHOST));
        assert_eq!(
            announce(&v4_hosts(1), &bad, &nh, &options),
            Err(BuildError::ReservedAttribute(3))
        );
    }

    #[test]
    fn end_of_rib_markers() {
        let options = Options::default();
        let v4 = Message::Update(end_of_rib(Family::IPV4_UNICAST))
            .to_bytes(&options)
            .unwrap();
        assert_eq!(v4.len(), 23);
        let v6 = Message::Update(end_of_rib(Family::IPV6_UNICAST))
            .to_bytes(&options)
            .unwrap();
        // 19 + 4 + attribute header 3 + AFI 2 + SAFI 1.
        assert_eq!(v6.len(), 29);
        let Ok(Message::Update(u)) = Message::from_bytes(&v6, &options) else {
            panic!()
        };
        assert_eq!(u.as_end_of_rib(), Some(Family::IPV6_UNICAST));
    }
}
