//! The classic BPF program attached to each packet socket, so that only ARP and ICMPv6
//! Neighbor Solicitation/Advertisement frames reach user space and unrelated traffic never
//! wakes the responder.
//!
//! It passes:
//! - EtherType 0x0806 (ARP);
//! - EtherType 0x86dd whose Next Header is 58 (ICMPv6, no extension headers) and whose ICMPv6
//!   Type is 135 or 136;
//! - the same behind one 802.1Q or 802.1ad tag. Linux usually strips the tag into packet
//!   metadata before the filter runs, so this only matters on devices without VLAN offload.
//!
//! It checks no lengths beyond the fields it loads (a load past the end drops the frame): the
//! parser decides validity and counts malformed frames. This module is data only; attaching it
//! (`SO_ATTACH_FILTER`) is the socket's job.
//!
//! [`SOCKET_FILTER`], the program sockets attach, first drops frames whose VLAN tag Linux has
//! already moved into packet metadata: they look untagged in the bytes, but belong to the
//! VLAN's own interface, and an answer from the parent would leave untagged.

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Instruction classes, sizes, modes and operations from `<linux/filter.h>`, only those used.
pub mod op {
    pub const LD: u16 = 0x00;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const ABS: u16 = 0x20;
    pub const JEQ: u16 = 0x10;
    pub const K: u16 = 0x00;
}

const fn load_half(offset: u32) -> SockFilter {
    SockFilter {
        code: op::LD | op::H | op::ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

const fn load_byte(offset: u32) -> SockFilter {
    SockFilter {
        code: op::LD | op::B | op::ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

/// `jeq #k`, written with absolute instruction indices; classic BPF jumps are relative and
/// forward only, which this checks while compiling.
const fn jump_if_equal(at: usize, k: u32, if_true: usize, if_false: usize) -> SockFilter {
    assert!(
        if_true > at && if_false > at,
        "classic BPF jumps forward only"
    );
    assert!(if_true - at - 1 <= 255 && if_false - at - 1 <= 255);
    SockFilter {
        code: op::JMP | op::JEQ | op::K,
        jt: (if_true - at - 1) as u8,
        jf: (if_false - at - 1) as u8,
        k,
    }
}

const fn ret(k: u32) -> SockFilter {
    SockFilter {
        code: op::RET | op::K,
        jt: 0,
        jf: 0,
        k,
    }
}

const ETH_P_ARP: u32 = 0x0806;
const ETH_P_IPV6: u32 = 0x86dd;
const ETH_P_8021Q: u32 = 0x8100;
const ETH_P_8021AD: u32 = 0x88a8;
const IPPROTO_ICMPV6: u32 = 58;
const NEIGHBOR_SOLICITATION: u32 = 135;
const NEIGHBOR_ADVERTISEMENT: u32 = 136;

/// Offsets in an untagged frame; a tag moves everything after the source address by 4.
const ETHERTYPE: u32 = 12;
const IPV6_NEXT_HEADER: u32 = 14 + 6;
const ICMPV6_TYPE: u32 = 14 + 40;
const TAG: u32 = 4;

// Labels: where each block starts.
const UNTAGGED_IPV6: usize = 5;
const TAGGED: usize = 10;
const ACCEPT: usize = 18;
const DROP: usize = 19;

/// The filter. Returns the whole frame for ARP and NS/NA, nothing otherwise.
#[rustfmt::skip]
pub const NEIGHBOR_FILTER: [SockFilter; 20] = [
    /*  0 */ load_half(ETHERTYPE),
    /*  1 */ jump_if_equal(1, ETH_P_ARP, ACCEPT, 2),
    /*  2 */ jump_if_equal(2, ETH_P_IPV6, UNTAGGED_IPV6, 3),
    /*  3 */ jump_if_equal(3, ETH_P_8021Q, TAGGED, 4),
    /*  4 */ jump_if_equal(4, ETH_P_8021AD, TAGGED, DROP),
    // UNTAGGED_IPV6
    /*  5 */ load_byte(IPV6_NEXT_HEADER),
    /*  6 */ jump_if_equal(6, IPPROTO_ICMPV6, 7, DROP),
    /*  7 */ load_byte(ICMPV6_TYPE),
    /*  8 */ jump_if_equal(8, NEIGHBOR_SOLICITATION, ACCEPT, 9),
    /*  9 */ jump_if_equal(9, NEIGHBOR_ADVERTISEMENT, ACCEPT, DROP),
    // TAGGED: the EtherType after one tag.
    /* 10 */ load_half(ETHERTYPE + TAG),
    /* 11 */ jump_if_equal(11, ETH_P_ARP, ACCEPT, 12),
    /* 12 */ jump_if_equal(12, ETH_P_IPV6, 13, DROP),
    /* 13 */ load_byte(IPV6_NEXT_HEADER + TAG),
    /* 14 */ jump_if_equal(14, IPPROTO_ICMPV6, 15, DROP),
    /* 15 */ load_byte(ICMPV6_TYPE + TAG),
    /* 16 */ jump_if_equal(16, NEIGHBOR_SOLICITATION, ACCEPT, 17),
    /* 17 */ jump_if_equal(17, NEIGHBOR_ADVERTISEMENT, ACCEPT, DROP),
    // ACCEPT: the whole frame.
    /* 18 */ ret(u32::MAX),
    // DROP
    /* 19 */ ret(0),
];

/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT` from `<linux/filter.h>`: an absolute load at this
/// offset reads 1 when the frame's VLAN tag is in packet metadata, else 0.
const VLAN_TAG_PRESENT: u32 = (-0x1000i32 + 48) as u32;

/// [`NEIGHBOR_FILTER`] behind a check that drops frames carrying an offloaded VLAN tag; what
/// each packet socket attaches.
pub const SOCKET_FILTER: [SockFilter; NEIGHBOR_FILTER.len() + 2] = socket_filter();

const fn socket_filter() -> [SockFilter; NEIGHBOR_FILTER.len() + 2] {
    const LEN: usize = NEIGHBOR_FILTER.len() + 2;
    // NEIGHBOR_FILTER ends with its DROP.
    let drop = LEN - 1;
    let mut program = [ret(0); LEN];
    program[0] = SockFilter {
        code: op::LD | op::W | op::ABS,
        jt: 0,
        jf: 0,
        k: VLAN_TAG_PRESENT,
    };
    program[1] = jump_if_equal(1, 0, 2, drop);
    let mut i = 0;
    while i < NEIGHBOR_FILTER.len() {
        // Jumps are relative, so the program moves as it is.
        program[i + 2] = NEIGHBOR_FILTER[i];
        i += 1;
    }
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_filter_is_the_vlan_check_then_the_neighbor_filter() {
        assert_eq!(SOCKET_FILTER[2..], NEIGHBOR_FILTER);
        assert_eq!(SOCKET_FILTER[0].k, 0xffff_f030);
        // A tag present (A != 0) jumps to the last instruction, which drops.
        let check = SOCKET_FILTER[1];
        assert_eq!((check.k, check.jt), (0, 0));
        assert_eq!(2 + usize::from(check.jf), SOCKET_FILTER.len() - 1);
        assert_eq!(SOCKET_FILTER[SOCKET_FILTER.len() - 1], ret(0));
    }
}
