//! Raw frame builders for tests: they write every byte themselves (checksum included, with its
//! own arithmetic) so that tests can build frames the crate's emitters never would.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

/// The RFC 1071 checksum over the IPv6 pseudo-header and `message`, computed independently of
/// the crate.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(message);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// (TPID, TCI) pairs.
pub type Tags = Vec<(u16, u16)>;

pub fn ethernet_header(dst: [u8; 6], src: [u8; 6], tags: &Tags, ethertype: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&dst);
    bytes.extend_from_slice(&src);
    for (tpid, tci) in tags {
        bytes.extend_from_slice(&tpid.to_be_bytes());
        bytes.extend_from_slice(&tci.to_be_bytes());
    }
    bytes.extend_from_slice(&ethertype.to_be_bytes());
    bytes
}

/// A Neighbor Solicitation or Advertisement frame with every field settable.
#[derive(Debug, Clone)]
pub struct NdBuilder {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub tags: Tags,
    pub ip_version: u8,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub msg_type: u8,
    pub code: u8,
    /// The 4 bytes after the checksum: reserved in an NS, flags in an NA.
    pub reserved: [u8; 4],
    pub target: Ipv6Addr,
    /// Raw options area.
    pub options: Vec<u8>,
    /// Cut the ICMPv6 message to this many bytes (the IPv6 payload length follows).
    pub icmp_len: Option<usize>,
    /// Add this to the correct checksum (0 keeps it correct).
    pub checksum_error: u16,
    /// Overrides the IPv6 payload length field.
    pub payload_len: Option<u16>,
    /// Bytes after the IPv6 packet (Ethernet padding).
    pub trailer: Vec<u8>,
}

pub fn sllao(mac: [u8; 6]) -> Vec<u8> {
    let mut option = vec![1, 1];
    option.extend_from_slice(&mac);
    option
}

pub fn tllao(mac: [u8; 6]) -> Vec<u8> {
    let mut option = vec![2, 1];
    option.extend_from_slice(&mac);
    option
}

pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

impl NdBuilder {
    /// Address resolution for `target` from 2001:db8::1, as Linux sends it.
    pub fn address_resolution(target: Ipv6Addr) -> NdBuilder {
        let group = solicited_node(target);
        let g = group.octets();
        NdBuilder {
            eth_dst: [0x33, 0x33, g[12], g[13], g[14], g[15]],
            eth_src: CLIENT_MAC,
            tags: vec![],
            ip_version: 6,
            ip_src: "2001:db8::1".parse().unwrap(),
            ip_dst: group,
            next_header: 58,
            hop_limit: 255,
            msg_type: 135,
            code: 0,
            reserved: [0; 4],
            target,
            options: sllao(CLIENT_MAC),
            icmp_len: None,
            checksum_error: 0,
            payload_len: None,
            trailer: vec![],
        }
    }

    /// Neighbor unreachability detection: unicast to the target, often without the option.
    pub fn nud(target: Ipv6Addr) -> NdBuilder {
        NdBuilder {
            eth_dst: OUR_MAC,
            ip_dst: target,
            options: vec![],
            ..Self::address_resolution(target)
        }
    }

    /// Duplicate address detection: from ::, no options.
    pub fn dad(target: Ipv6Addr) -> NdBuilder {
        NdBuilder {
            ip_src: Ipv6Addr::UNSPECIFIED,
            options: vec![],
            ..Self::address_resolution(target)
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut message = vec![self.msg_type, self.code, 0, 0];
        message.extend_from_slice(&self.reserved);
        message.extend_from_slice(&self.target.octets());
        message.extend_from_slice(&self.options);
        if let Some(len) = self.icmp_len {
            message.truncate(len);
        }
        if message.len() >= 4 {
            let checksum = icmpv6_checksum(self.ip_src, self.ip_dst, &message)
                .wrapping_add(self.checksum_error);
            message[2..4].copy_from_slice(&checksum.to_be_bytes());
        }
        let mut bytes = ethernet_header(self.eth_dst, self.eth_src, &self.tags, 0x86dd);
        bytes.extend_from_slice(&[self.ip_version << 4, 0, 0, 0]);
        let payload_len = self.payload_len.unwrap_or(message.len() as u16);
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.push(self.next_header);
        bytes.push(self.hop_limit);
        bytes.extend_from_slice(&self.ip_src.octets());
        bytes.extend_from_slice(&self.ip_dst.octets());
        bytes.extend_from_slice(&message);
        bytes.extend_from_slice(&self.trailer);
        bytes
    }
}

/// An ARP frame with every field settable.
#[derive(Debug, Clone)]
pub struct ArpBuilder {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub tags: Tags,
    pub hardware_type: u16,
    pub protocol_type: u16,
    pub hardware_len: u8,
    pub protocol_len: u8,
    pub operation: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
    pub trailer: Vec<u8>,
}

impl ArpBuilder {
    pub fn request(tpa: Ipv4Addr) -> ArpBuilder {
        ArpBuilder {
            eth_dst: [0xff; 6],
            eth_src: CLIENT_MAC,
            tags: vec![],
            hardware_type: 1,
            protocol_type: 0x0800,
            hardware_len: 6,
            protocol_len: 4,
            operation: 1,
            sha: CLIENT_MAC,
            spa: Ipv4Addr::new(192, 0, 2, 1),
            tha: [0; 6],
            tpa,
            trailer: vec![],
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut bytes = ethernet_header(self.eth_dst, self.eth_src, &self.tags, 0x0806);
        bytes.extend_from_slice(&self.hardware_type.to_be_bytes());
        bytes.extend_from_slice(&self.protocol_type.to_be_bytes());
        bytes.push(self.hardware_len);
        bytes.push(self.protocol_len);
        bytes.extend_from_slice(&self.operation.to_be_bytes());
        bytes.extend_from_slice(&self.sha);
        bytes.extend_from_slice(&self.spa.octets());
        bytes.extend_from_slice(&self.tha);
        bytes.extend_from_slice(&self.tpa.octets());
        bytes.extend_from_slice(&self.trailer);
        bytes
    }
}
