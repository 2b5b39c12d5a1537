//! MRT table dumps (RFC 6396 TABLE_DUMP_V2): the quickest way to give GoBGP a large table
//! (`gobgp mrt inject global FILE`), where one gRPC call a route would take minutes.
//!
//! Only what that needs: one PEER_INDEX_TABLE naming one peer, then one RIB_IPV4_UNICAST or
//! RIB_IPV6_UNICAST record a prefix, each with a single entry whose attributes are ORIGIN
//! IGP, an empty AS_PATH and the next hop: NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6 in the
//! [`MpReach`] form the reader expects.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;
const RIB_IPV6_UNICAST: u16 = 4;

/// How an IPv6 entry's MP_REACH_NLRI is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpReach {
    /// RFC 6396 §4.3.4: next hop length and next hop only.
    Abbreviated,
    /// As in an UPDATE: AFI, SAFI, next hop, a reserved octet and the record's prefix as
    /// NLRI. GoBGP 3.10 (Debian 12) reads RIB entries this way: it takes the first octets
    /// of the abbreviated form for an AFI and rejects the entry.
    Full,
}

/// The peer every RIB entry of the dump was learned from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub bgp_id: Ipv4Addr,
    pub address: IpAddr,
    pub asn: u32,
}

/// Writes a TABLE_DUMP_V2 dump of `prefixes` (address and length), all learned from
/// `peer`, IPv4 ones with `next_hop_v4` and IPv6 ones with `next_hop_v6`. Host bits beyond
/// a prefix's length are dropped.
pub fn write_table_dump(
    out: &mut impl Write,
    peer: &Peer,
    prefixes: impl IntoIterator<Item = (IpAddr, u8)>,
    next_hop_v4: Ipv4Addr,
    next_hop_v6: Ipv6Addr,
    mp_reach: MpReach,
) -> io::Result<()> {
    record(out, PEER_INDEX_TABLE, &peer_index_table(peer))?;
    // ORIGIN IGP, empty AS_PATH; then the next hop.
    let common = [0x40, 1, 1, 0, 0x40, 2, 0];
    let mut v4_attributes = common.to_vec();
    v4_attributes.extend_from_slice(&[0x40, 3, 4]);
    v4_attributes.extend_from_slice(&next_hop_v4.octets());
    let mut body = Vec::with_capacity(64);
    let mut v6_attributes = Vec::with_capacity(64);
    for (sequence, (address, len)) in (0u32..).zip(prefixes) {
        let (subtype, octets, max_len) = match address {
            IpAddr::V4(a) => (RIB_IPV4_UNICAST, a.octets().to_vec(), 32),
            IpAddr::V6(a) => (RIB_IPV6_UNICAST, a.octets().to_vec(), 128),
        };
        if len > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{address}/{len}: prefix length out of range"),
            ));
        }
        // The prefix as NLRI encode it: its length, then only the octets it covers.
        let mut prefix = vec![len];
        prefix.extend_from_slice(&octets[..usize::from(len).div_ceil(8)]);
        if len % 8 != 0
            && let Some(last) = prefix.last_mut()
        {
            *last &= 0xff << (8 - len % 8);
        }
        let attributes = if address.is_ipv4() {
            &v4_attributes
        } else {
            let mut value = Vec::with_capacity(40);
            if mp_reach == MpReach::Full {
                value.extend_from_slice(&[0, 2, 1]);
            }
            value.push(16);
            value.extend_from_slice(&next_hop_v6.octets());
            if mp_reach == MpReach::Full {
                value.push(0);
                value.extend_from_slice(&prefix);
            }
            v6_attributes.clear();
            v6_attributes.extend_from_slice(&common);
            v6_attributes.extend_from_slice(&[0x80, 14, value.len() as u8]);
            v6_attributes.extend_from_slice(&value);
            &v6_attributes
        };
        body.clear();
        body.extend_from_slice(&sequence.to_be_bytes());
        body.extend_from_slice(&prefix);
        // One entry: peer index 0, originated at time 0.
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        body.extend_from_slice(attributes);
        record(out, subtype, &body)?;
    }
    Ok(())
}

fn peer_index_table(peer: &Peer) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&peer.bgp_id.octets());
    // No view name; one peer.
    t.extend_from_slice(&0u16.to_be_bytes());
    t.extend_from_slice(&1u16.to_be_bytes());
    // Peer type: bit 1 says a 4-octet AS follows, bit 0 an IPv6 address.
    let v6 = peer.address.is_ipv6();
    t.push(0b10 | u8::from(v6));
    t.extend_from_slice(&peer.bgp_id.octets());
    match peer.address {
        IpAddr::V4(a) => t.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => t.extend_from_slice(&a.octets()),
    }
    t.extend_from_slice(&peer.asn.to_be_bytes());
    t
}

/// The MRT common header (timestamp 0) and `body`.
fn record(out: &mut impl Write, subtype: u16, body: &[u8]) -> io::Result<()> {
    let mut header = [0u8; 12];
    header[4..6].copy_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    header[6..8].copy_from_slice(&subtype.to_be_bytes());
    header[8..12].copy_from_slice(&(body.len() as u32).to_be_bytes());
    out.write_all(&header)?;
    out.write_all(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_peer_table_then_one_record_a_prefix() {
        let peer = Peer {
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            asn: 64512,
        };
        let mut out = Vec::new();
        write_table_dump(
            &mut out,
            &peer,
            [
                ("10.1.2.3".parse().unwrap(), 24),
                ("2001:db8::1".parse().unwrap(), 128),
            ],
            Ipv4Addr::new(192, 0, 2, 1),
            "2001:db8::1".parse().unwrap(),
            MpReach::Abbreviated,
        )
        .unwrap();

        let peer_table: &[u8] = &[
            0, 0, 0, 0, 0, 13, 0, 1, 0, 0, 0, 21, // header
            192, 0, 2, 1, 0, 0, 0, 1, // collector, no view, one peer
            2, 192, 0, 2, 1, 192, 0, 2, 1, 0, 0, 0xfc, 0, // IPv4, AS4
        ];
        assert_eq!(&out[..peer_table.len()], peer_table);
        let rest = &out[peer_table.len()..];
        let v4: &[u8] = &[
            0, 0, 0, 0, 0, 13, 0, 2, 0, 0, 0, 32, // header
            0, 0, 0, 0, 24, 10, 1, 2, 0, 1, // sequence 0, 10.1.2.0/24, one entry
            0, 0, 0, 0, 0, 0, 0, 14, // peer 0, time 0, attributes
            0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1,
        ];
        assert_eq!(&rest[..v4.len()], v4);
        let v6 = &rest[v4.len()..];
        assert_eq!(&v6[4..8], &[0, 13, 0, 4]);
        assert_eq!(&v6[12..16], &[0, 0, 0, 1], "sequence 1");
        assert_eq!(v6[16], 128);
        let attributes = &v6[12 + 4 + 1 + 16 + 2 + 8..];
        assert_eq!(&attributes[7..11], &[0x80, 14, 17, 16]);
        assert_eq!(attributes.len(), 7 + 4 + 16);
    }

    #[test]
    fn full_mp_reach_carries_the_family_and_the_prefix() {
        let peer = Peer {
            bgp_id: Ipv4Addr::LOCALHOST,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            asn: 1,
        };
        let mut out = Vec::new();
        write_table_dump(
            &mut out,
            &peer,
            [("2001:db8:ff::".parse().unwrap(), 48)],
            Ipv4Addr::LOCALHOST,
            "2001:db8::1".parse().unwrap(),
            MpReach::Full,
        )
        .unwrap();
        let record = &out[12 + 21..];
        // sequence, /48 in 6 octets, one entry, peer index, time, attribute length
        let attributes = &record[12 + 4 + 1 + 6 + 2 + 8..];
        let mut mp_reach = vec![0x80, 14, 3 + 1 + 16 + 1 + 7, 0, 2, 1, 16];
        mp_reach.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        mp_reach.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0xff]);
        assert_eq!(&attributes[7..], &mp_reach[..]);
    }

    #[test]
    fn refuses_impossible_lengths() {
        let peer = Peer {
            bgp_id: Ipv4Addr::LOCALHOST,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            asn: 1,
        };
        let err = write_table_dump(
            &mut Vec::new(),
            &peer,
            [("10.0.0.0".parse().unwrap(), 33)],
            Ipv4Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            MpReach::Full,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
