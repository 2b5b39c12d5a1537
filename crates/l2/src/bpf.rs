//! The classic BPF programs attached to each packet socket, so that only ARP and ICMPv6
//! Neighbor Solicitation/Advertisement frames about owned addresses reach user space and
//! unrelated traffic never wakes the responder.
//!
//! [`owned_target_filter`] is what a responder's socket holds: it passes only frames about the
//! addresses owned on the interface, and is rebuilt and swapped (atomically: one
//! `SO_ATTACH_FILTER`) when they change. [`SOCKET_FILTER`], the family filter, is what a socket
//! holds when it opens, and where the owned-target program would exceed the kernel's limit.
//!
//! The family filter passes:
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
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
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

/// The most instructions the kernel takes in a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_PROGRAM_LEN: usize = 4096;

/// Why no owned-target program was built: it would not fit in the kernel's limit. The socket
/// then keeps the family filter ([`SOCKET_FILTER`]), which passes every ARP and NS/NA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the owned-target filter would need {needed} instructions; the kernel takes at most \
     {MAX_PROGRAM_LEN}"
)]
pub struct TooLarge {
    pub needed: usize,
}

/// Which program a socket has attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterKind {
    /// [`owned_target_filter`]: only frames about owned addresses.
    OwnedTargets,
    /// [`SOCKET_FILTER`]: every ARP and NS/NA frame (too many owned addresses for the other).
    Family,
}

impl FilterKind {
    /// A label for metrics and status.
    pub const fn as_str(self) -> &'static str {
        match self {
            FilterKind::OwnedTargets => "owned_targets",
            FilterKind::Family => "family",
        }
    }
}

/// Offsets in an untagged frame.
const ARP_SENDER_PROTOCOL_ADDR: u32 = 14 + 14;
const ARP_TARGET_PROTOCOL_ADDR: u32 = 14 + 24;
const ND_TARGET: u32 = 14 + 40 + 8;

/// Values in a leaf of the binary search, compared one by one.
const LEAF: usize = 16;

/// A label in [`Asm`].
type Label = usize;

/// Where a conditional jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    To(Label),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insn {
    Load { size: u16, offset: u32 },
    Jeq { k: u32, t: Target, f: Target },
    Jgt { k: u32, t: Target, f: Target },
    Ja(Label),
    Ret(u32),
    Label(Label),
}

/// A classic BPF program written with labels; [`Asm::assemble`] resolves them, putting a
/// long `ja` behind any conditional jump whose target is more than 255 instructions ahead.
#[derive(Debug, Default)]
struct Asm {
    code: Vec<Insn>,
    labels: usize,
}

const ACCEPT_ALL: u32 = u32::MAX;

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    fn place(&mut self, label: Label) {
        self.code.push(Insn::Label(label));
    }

    fn push(&mut self, insn: Insn) {
        self.code.push(insn);
    }

    /// With the accumulator holding a word, accepts the frame if it is one of `values`
    /// (sorted, unique) and goes to `fail` otherwise: a binary search over `jgt`, down to
    /// leaves of at most [`LEAF`] values compared in turn.
    fn search(&mut self, values: &[u32], fail: Label) {
        if values.len() <= LEAF {
            let accept = self.label();
            for &k in values {
                self.push(Insn::Jeq {
                    k,
                    t: Target::To(accept),
                    f: Target::Next,
                });
            }
            self.push(Insn::Ja(fail));
            self.place(accept);
            self.push(Insn::Ret(ACCEPT_ALL));
            return;
        }
        let mid = values.len() / 2;
        let right = self.label();
        self.push(Insn::Jgt {
            k: values[mid - 1],
            t: Target::To(right),
            f: Target::Next,
        });
        self.search(&values[..mid], fail);
        self.place(right);
        self.search(&values[mid..], fail);
    }

    fn assemble(mut self) -> Result<Vec<SockFilter>, TooLarge> {
        loop {
            let mut position = vec![0usize; self.labels];
            let mut at = 0;
            for insn in &self.code {
                match insn {
                    Insn::Label(label) => position[*label] = at,
                    _ => at += 1,
                }
            }
            if at > MAX_PROGRAM_LEN * 2 {
                // Far past the limit: no point resolving it.
                return Err(TooLarge { needed: at });
            }
            // The first conditional jump that cannot reach its target.
            let mut far = None;
            let mut at = 0;
            for (i, insn) in self.code.iter().enumerate() {
                let reach = |target: &Target| match target {
                    Target::Next => true,
                    Target::To(label) => position[*label] - at - 1 <= 255,
                };
                match insn {
                    Insn::Label(_) => continue,
                    Insn::Jeq { t, f, .. } | Insn::Jgt { t, f, .. } if !reach(t) || !reach(f) => {
                        far = Some(i);
                        break;
                    }
                    _ => {}
                }
                at += 1;
            }
            let Some(i) = far else {
                if at > MAX_PROGRAM_LEN {
                    return Err(TooLarge { needed: at });
                }
                return Ok(self.resolve(&position));
            };
            // cond(t, f) → cond(t', f'); t': ja t; f': ...: each far branch gets a trampoline
            // right behind the jump, and the fall-through a label after them.
            let after = self.label();
            let mut inserted = Vec::new();
            let mut fix = |target: Target, labels: &mut usize| -> Target {
                let far = match target {
                    Target::Next => return Target::To(after),
                    Target::To(label) => label,
                };
                let trampoline = *labels;
                *labels += 1;
                inserted.push(Insn::Label(trampoline));
                inserted.push(Insn::Ja(far));
                Target::To(trampoline)
            };
            let mut labels = self.labels;
            let fixed = match self.code[i] {
                Insn::Jeq { k, t, f } => {
                    let (t, f) = (fix(t, &mut labels), fix(f, &mut labels));
                    Insn::Jeq { k, t, f }
                }
                Insn::Jgt { k, t, f } => {
                    let (t, f) = (fix(t, &mut labels), fix(f, &mut labels));
                    Insn::Jgt { k, t, f }
                }
                other => other,
            };
            self.labels = labels;
            self.code[i] = fixed;
            inserted.push(Insn::Label(after));
            self.code.splice(i + 1..i + 1, inserted);
        }
    }

    fn resolve(&self, position: &[usize]) -> Vec<SockFilter> {
        let mut program = Vec::new();
        for insn in &self.code {
            let at = program.len();
            let offset = |target: &Target| match target {
                Target::Next => 0,
                // Checked to fit by `assemble`.
                Target::To(label) => (position[*label] - at - 1) as u8,
            };
            program.push(match insn {
                Insn::Label(_) => continue,
                Insn::Load { size, offset } => SockFilter {
                    code: op::LD | size | op::ABS,
                    jt: 0,
                    jf: 0,
                    k: *offset,
                },
                Insn::Jeq { k, t, f } => SockFilter {
                    code: op::JMP | op::JEQ | op::K,
                    jt: offset(t),
                    jf: offset(f),
                    k: *k,
                },
                Insn::Jgt { k, t, f } => SockFilter {
                    code: op::JMP | op::JGT | op::K,
                    jt: offset(t),
                    jf: offset(f),
                    k: *k,
                },
                Insn::Ja(label) => SockFilter {
                    code: op::JMP | op::JA,
                    jt: 0,
                    jf: 0,
                    k: (position[*label] - at - 1) as u32,
                },
                Insn::Ret(k) => SockFilter {
                    code: op::RET | op::K,
                    jt: 0,
                    jf: 0,
                    k: *k,
                },
            });
        }
        program
    }
}

/// The four big-endian words of an IPv6 address, as `ld [k]` reads them.
fn words(address: std::net::Ipv6Addr) -> [u32; 4] {
    let o = address.octets();
    [0, 4, 8, 12].map(|i| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]))
}

/// The program a packet socket attaches while `owned` are the addresses owned on its
/// interface: after [`SOCKET_FILTER`]'s check for an offloaded VLAN tag, it passes
/// - ARP whose target protocol address is owned (a question), or whose sender protocol
///   address is owned (a gratuitous ARP or a reply: a claim, see [`crate::claim`]);
/// - ICMPv6 Neighbor Solicitations and Advertisements, directly in IPv6, whose target is
///   owned (questions, DAD probes, and claims);
/// - behind one 802.1Q/802.1ad tag in the bytes (a device without VLAN offload), every ARP and
///   NS/NA frame, as [`NEIGHBOR_FILTER`] does;
///
/// and drops everything else, so unrelated traffic (an ARP storm for other hosts' addresses)
/// never wakes the responder. Addresses are found by binary search, so a frame costs a few
/// dozen instructions however many are owned.
///
/// Past [`MAX_PROGRAM_LEN`] instructions (about 1,600 IPv4 addresses, or about 3,200 IPv6
/// addresses sharing their first 96 bits, per interface) this returns [`TooLarge`], and the
/// socket keeps [`SOCKET_FILTER`] (every ARP and NS/NA frame reaches user space, which answers
/// exactly as before, only at a higher CPU cost during ARP storms).
pub fn owned_target_filter(
    owned: &std::collections::BTreeSet<std::net::IpAddr>,
) -> Result<Vec<SockFilter>, TooLarge> {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    let v4: Vec<u32> = owned
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(u32::from(*v4)),
            IpAddr::V6(_) => None,
        })
        .collect();
    // IPv6 targets grouped by their first 96 bits; service addresses usually share them.
    let mut v6: BTreeMap<[u32; 3], Vec<u32>> = BTreeMap::new();
    for ip in owned {
        if let IpAddr::V6(v6addr) = ip {
            let [a, b, c, d] = words(*v6addr);
            v6.entry([a, b, c]).or_default().push(d);
        }
    }

    let mut asm = Asm::default();
    let (accept, drop) = (asm.label(), asm.label());
    let (not_arp, tagged, sender) = (asm.label(), asm.label(), asm.label());
    asm.push(Insn::Load {
        size: op::W,
        offset: VLAN_TAG_PRESENT,
    });
    asm.push(Insn::Jeq {
        k: 0,
        t: Target::Next,
        f: Target::To(drop),
    });
    asm.push(Insn::Load {
        size: op::H,
        offset: ETHERTYPE,
    });
    asm.push(Insn::Jeq {
        k: ETH_P_ARP,
        t: Target::Next,
        f: Target::To(not_arp),
    });
    // ARP: the target, then the sender.
    if v4.is_empty() {
        asm.push(Insn::Ja(drop));
    } else {
        asm.push(Insn::Load {
            size: op::W,
            offset: ARP_TARGET_PROTOCOL_ADDR,
        });
        asm.search(&v4, sender);
        asm.place(sender);
        asm.push(Insn::Load {
            size: op::W,
            offset: ARP_SENDER_PROTOCOL_ADDR,
        });
        asm.search(&v4, drop);
    }
    asm.place(not_arp);
    let nd = asm.label();
    asm.push(Insn::Jeq {
        k: ETH_P_IPV6,
        t: Target::Next,
        f: Target::To(tagged),
    });
    asm.push(Insn::Load {
        size: op::B,
        offset: IPV6_NEXT_HEADER,
    });
    asm.push(Insn::Jeq {
        k: IPPROTO_ICMPV6,
        t: Target::Next,
        f: Target::To(drop),
    });
    asm.push(Insn::Load {
        size: op::B,
        offset: ICMPV6_TYPE,
    });
    asm.push(Insn::Jeq {
        k: NEIGHBOR_SOLICITATION,
        t: Target::To(nd),
        f: Target::Next,
    });
    asm.push(Insn::Jeq {
        k: NEIGHBOR_ADVERTISEMENT,
        t: Target::Next,
        f: Target::To(drop),
    });
    asm.place(nd);
    for (prefix, mut low) in v6 {
        low.sort_unstable();
        low.dedup();
        let next_group = asm.label();
        for (i, word) in prefix.into_iter().enumerate() {
            asm.push(Insn::Load {
                size: op::W,
                offset: ND_TARGET + 4 * i as u32,
            });
            asm.push(Insn::Jeq {
                k: word,
                t: Target::Next,
                f: Target::To(next_group),
            });
        }
        asm.push(Insn::Load {
            size: op::W,
            offset: ND_TARGET + 12,
        });
        // The prefix matched: no other group can.
        asm.search(&low, drop);
        asm.place(next_group);
    }
    asm.push(Insn::Ja(drop));
    // Tagged in the bytes: the family filter's checks, one tag in.
    asm.place(tagged);
    let tagged_ipv6 = asm.label();
    asm.push(Insn::Jeq {
        k: ETH_P_8021Q,
        t: Target::To(tagged_ipv6),
        f: Target::Next,
    });
    asm.push(Insn::Jeq {
        k: ETH_P_8021AD,
        t: Target::To(tagged_ipv6),
        f: Target::To(drop),
    });
    asm.place(tagged_ipv6);
    asm.push(Insn::Load {
        size: op::H,
        offset: ETHERTYPE + TAG,
    });
    asm.push(Insn::Jeq {
        k: ETH_P_ARP,
        t: Target::To(accept),
        f: Target::Next,
    });
    asm.push(Insn::Jeq {
        k: ETH_P_IPV6,
        t: Target::Next,
        f: Target::To(drop),
    });
    asm.push(Insn::Load {
        size: op::B,
        offset: IPV6_NEXT_HEADER + TAG,
    });
    asm.push(Insn::Jeq {
        k: IPPROTO_ICMPV6,
        t: Target::Next,
        f: Target::To(drop),
    });
    asm.push(Insn::Load {
        size: op::B,
        offset: ICMPV6_TYPE + TAG,
    });
    asm.push(Insn::Jeq {
        k: NEIGHBOR_SOLICITATION,
        t: Target::To(accept),
        f: Target::Next,
    });
    asm.push(Insn::Jeq {
        k: NEIGHBOR_ADVERTISEMENT,
        t: Target::To(accept),
        f: Target::To(drop),
    });
    asm.place(accept);
    asm.push(Insn::Ret(ACCEPT_ALL));
    asm.place(drop);
    asm.push(Insn::Ret(0));
    asm.assemble()
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
