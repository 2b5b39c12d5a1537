//! This host's network interfaces, learnt from rtnetlink: a dump at start, then RTM_NEWLINK /
//! RTM_DELLINK events from the RTNLGRP_LINK group (no polling), kept in a [`LinkTable`] that
//! others watch through a `tokio::sync::watch` channel.
//!
//! Also the interface selection rules: which links are usable by default (Ethernet, not a
//! loopback, not enslaved to a bridge or bond, not a CNI or virtual device by name), and how an
//! advertisement's named interfaces resolve against what exists.
//!
//! Owns reading link state only; it never changes an interface.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::wire::EthernetAddress;

// From <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if.h> and
// <linux/if_arp.h>.
const NETLINK_ROUTE: libc::c_int = 0;
const RTMGRP_LINK: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_RUNNING: u32 = 0x40;
const ARPHRD_ETHER: u16 = 1;

/// Name prefixes of devices that CNI plugins, container runtimes and kube-proxy create: never
/// where a LoadBalancer address is answered by default.
pub const VIRTUAL_PREFIXES: &[&str] = &[
    "lo",
    "docker",
    "veth",
    "cali",
    "flannel",
    "cni",
    "lxc",
    "kube-ipvs",
    "cilium",
    "vxlan",
    "tunl",
    "weave",
    "genev",
    "nodelocaldns",
];

/// One network interface as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The hardware address, when it is an Ethernet one.
    pub mac: Option<EthernetAddress>,
    /// ARPHRD_* type (1 for Ethernet).
    pub hardware_type: u16,
    /// IFF_* flags.
    pub flags: u32,
    /// The bridge or bond this link is enslaved to.
    pub master: Option<u32>,
    /// IFLA_INFO_KIND: "veth", "bridge", "bond", "vlan", ... (absent for physical NICs).
    pub kind: Option<String>,
    /// How many times this table has seen the link become operational after being down;
    /// a change means "announce again" even when a down/up pair was seen as one update.
    pub up_generation: u64,
}

impl Link {
    pub fn is_ethernet(&self) -> bool {
        self.hardware_type == ARPHRD_ETHER && self.mac.is_some()
    }

    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }

    /// Administratively up and with carrier: frames sent on it go out.
    pub fn is_operational(&self) -> bool {
        self.flags & IFF_UP != 0 && self.flags & IFF_RUNNING != 0
    }

    /// Whether the default selection (no interfaces named) answers on this link.
    pub fn is_default_candidate(&self) -> bool {
        self.is_ethernet()
            && !self.is_loopback()
            && self.master.is_none()
            && !VIRTUAL_PREFIXES.iter().any(|p| self.name.starts_with(p))
    }
}

/// Every link of the namespace, by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTable {
    pub links: BTreeMap<u32, Link>,
}

impl LinkTable {
    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    pub fn by_index(&self, index: u32) -> Option<&Link> {
        self.links.get(&index)
    }

    /// Applies a new state of `link`, keeping count of down→up transitions.
    fn upsert(&mut self, mut link: Link) {
        if let Some(old) = self.links.get(&link.index) {
            link.up_generation =
                old.up_generation + u64::from(!old.is_operational() && link.is_operational());
        }
        self.links.insert(link.index, link);
    }
}

/// Where the L2 advertisements say to answer (mirrors the plan's interface selection; this
/// crate does not depend on the model).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InterfaceSelection {
    /// Every default candidate ([`Link::is_default_candidate`]).
    Any,
    /// Only these names.
    Only(BTreeSet<String>),
}

/// A selection resolved against this node's links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Names of the links to answer on.
    pub interfaces: BTreeSet<String>,
    /// Named interfaces that match no Ethernet link here. When `interfaces` is empty the node
    /// is not eligible for the addresses; these say why.
    pub unmatched: BTreeSet<String>,
}

/// Resolves `selection` against `links`. A named interface matches when an Ethernet link of
/// that name exists, even one the default selection would skip: naming it is a decision.
pub fn resolve<'a>(
    selection: &InterfaceSelection,
    links: impl IntoIterator<Item = &'a Link>,
) -> Resolved {
    let links: Vec<&Link> = links.into_iter().collect();
    match selection {
        InterfaceSelection::Any => Resolved {
            interfaces: links
                .iter()
                .filter(|l| l.is_default_candidate())
                .map(|l| l.name.clone())
                .collect(),
            unmatched: BTreeSet::new(),
        },
        InterfaceSelection::Only(names) => {
            let mut resolved = Resolved::default();
            for name in names {
                if links.iter().any(|l| &l.name == name && l.is_ethernet()) {
                    resolved.interfaces.insert(name.clone());
                } else {
                    resolved.unmatched.insert(name.clone());
                }
            }
            resolved
        }
    }
}

/// Why links could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open a route netlink socket: {0}")]
    Open(#[source] io::Error),
    #[error("netlink: {0}")]
    Io(#[source] io::Error),
    #[error("the kernel refused the link dump: {0}")]
    Refused(#[source] io::Error),
}

/// A NETLINK_ROUTE socket subscribed to link events.
struct NetlinkSocket {
    fd: OwnedFd,
    seq: u32,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl NetlinkSocket {
    fn open(nonblocking: bool) -> io::Result<NetlinkSocket> {
        let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: plain system call; the result is checked.
        let raw = check(unsafe { libc::socket(libc::AF_NETLINK, ty, NETLINK_ROUTE) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A bigger receive buffer makes ENOBUFS (lost events, answered with a new dump) rare.
        let size: libc::c_int = 1 << 20;
        // SAFETY: `size` is a live c_int of the size passed.
        let _ = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: all-zero is a valid sockaddr_nl.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(NetlinkSocket { fd, seq: 0 })
    }

    fn request_dump(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = [0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
        msg[0..4].copy_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
        msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // The rest (pid 0 = the kernel, ifinfomsg with family AF_UNSPEC) stays zero.
        // SAFETY: all-zero is a valid sockaddr_nl; it addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `kernel` are valid for reads of the sizes passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One netlink message about links, as far as the table cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    New(Link),
    Del(u32),
    /// The end of a dump; `interrupted` when the kernel says it may be inconsistent.
    Done {
        interrupted: bool,
    },
    Error(i32),
    /// Messages lost: the table must be dumped again.
    Overrun,
    Other,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a buffer of netlink attributes into (type, payload) pairs; stops at the first one
/// whose length does not fit.
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(bytes, 0)?);
        let ty = u16_at(bytes, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let payload = &bytes[4..len];
        bytes = bytes.get(align4(len)..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// Splits a receive buffer into netlink messages and reads each; never panics.
fn parse_messages(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty), Some(flags)) =
        (u32_at(bytes, 0), u16_at(bytes, 4), u16_at(bytes, 6))
    {
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > bytes.len() {
            break;
        }
        let body = &bytes[NLMSG_HDRLEN..len];
        out.push(match ty {
            RTM_NEWLINK => parse_link(body).map_or(Message::Other, Message::New),
            RTM_DELLINK => parse_link(body).map_or(Message::Other, |l| Message::Del(l.index)),
            NLMSG_DONE => Message::Done {
                interrupted: flags & NLM_F_DUMP_INTR != 0,
            },
            NLMSG_ERROR => {
                let code = u32_at(body, 0).map_or(0, |c| c as i32);
                if code == 0 {
                    Message::Other
                } else {
                    Message::Error(code)
                }
            }
            NLMSG_OVERRUN => Message::Overrun,
            _ => Message::Other,
        });
        bytes = bytes.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// Reads an `ifinfomsg` and its attributes.
fn parse_link(body: &[u8]) -> Option<Link> {
    let hardware_type = u16_at(body, 2)?;
    let index = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let mut link = Link {
        index,
        name: String::new(),
        mac: None,
        hardware_type,
        flags,
        master: None,
        kind: None,
        up_generation: 0,
    };
    for (ty, payload) in attributes(body.get(IFINFOMSG_LEN..)?) {
        match ty {
            IFLA_IFNAME => {
                let name = payload.split(|&b| b == 0).next().unwrap_or(&[]);
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_ADDRESS => link.mac = EthernetAddress::from_bytes(payload),
            IFLA_MASTER => link.master = u32_at(payload, 0).filter(|&m| m != 0),
            IFLA_LINKINFO => {
                for (ty, payload) in attributes(payload) {
                    if ty == IFLA_INFO_KIND {
                        let kind = payload.split(|&b| b == 0).next().unwrap_or(&[]);
                        link.kind = Some(String::from_utf8_lossy(kind).into_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// Reads every link once, blocking (for one-shot use such as `herald check`).
pub fn list_links() -> Result<LinkTable, LinkError> {
    let mut socket = NetlinkSocket::open(false).map_err(LinkError::Open)?;
    loop {
        socket.request_dump().map_err(LinkError::Io)?;
        let mut table = LinkTable::default();
        let mut buf = vec![0u8; 64 * 1024];
        let interrupted = 'dump: loop {
            let n = recv(socket.fd.as_raw_fd(), &mut buf).map_err(LinkError::Io)?;
            for message in parse_messages(&buf[..n]) {
                match message {
                    Message::New(link) => table.upsert(link),
                    Message::Del(index) => {
                        table.links.remove(&index);
                    }
                    Message::Done { interrupted } => break 'dump interrupted,
                    Message::Error(code) => {
                        return Err(LinkError::Refused(io::Error::from_raw_os_error(-code)));
                    }
                    Message::Overrun | Message::Other => {}
                }
            }
        };
        if !interrupted {
            return Ok(table);
        }
    }
}

/// Follows the links of the namespace it was started in.
#[derive(Debug)]
pub struct LinkMonitor {
    table: watch::Receiver<Arc<LinkTable>>,
    task: JoinHandle<()>,
}

impl LinkMonitor {
    /// Subscribes to link events, reads every link, and keeps the table current from then
    /// on. Returns once the first dump is complete. Must be called inside a tokio runtime.
    pub async fn start() -> Result<LinkMonitor, LinkError> {
        let mut socket = NetlinkSocket::open(true).map_err(LinkError::Open)?;
        socket.request_dump().map_err(LinkError::Io)?;
        let NetlinkSocket { fd, seq } = socket;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open until dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|err| LinkError::Io(err.into_parts().1))?;
        let mut state = MonitorState {
            fd,
            seq,
            table: LinkTable::default(),
            dumping: true,
            seen_in_dump: BTreeSet::new(),
            buf: vec![0u8; 64 * 1024],
        };
        // The first dump, before anyone looks at the table.
        while state.dumping {
            state.read().await?;
        }
        let (tx, rx) = watch::channel(Arc::new(state.table.clone()));
        let task = tokio::spawn(async move {
            loop {
                match state.read().await {
                    Ok(true) => {
                        let table = Arc::new(state.table.clone());
                        if tx.send(table).is_err() {
                            return;
                        }
                    }
                    Ok(false) => {}
                    // A netlink socket fails only when the system is in trouble; keep the last
                    // table rather than spin.
                    Err(_) => return,
                }
            }
        });
        Ok(LinkMonitor { table: rx, task })
    }

    /// The current table.
    pub fn table(&self) -> Arc<LinkTable> {
        self.table.borrow().clone()
    }

    /// A receiver that sees every new table.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LinkTable>> {
        self.table.clone()
    }
}

impl Drop for LinkMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct MonitorState {
    fd: AsyncFd<OwnedFd>,
    seq: u32,
    table: LinkTable,
    dumping: bool,
    seen_in_dump: BTreeSet<u32>,
    buf: Vec<u8>,
}

impl MonitorState {
    fn redump(&mut self) -> Result<(), LinkError> {
        let mut socket = NetlinkSocket {
            // Borrowed for the send only.
            fd: self.fd.get_ref().try_clone().map_err(LinkError::Io)?,
            seq: self.seq,
        };
        socket.request_dump().map_err(LinkError::Io)?;
        self.seq = socket.seq;
        self.dumping = true;
        self.seen_in_dump.clear();
        Ok(())
    }

    /// Reads what is queued and applies it; true when the table changed.
    async fn read(&mut self) -> Result<bool, LinkError> {
        let mut guard = self.fd.readable().await.map_err(LinkError::Io)?;
        let n = match guard.try_io(|fd| recv(fd.as_raw_fd(), &mut self.buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(err)) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                // Events were lost: read everything again.
                drop(guard);
                self.redump()?;
                return Ok(false);
            }
            Ok(Err(err)) => return Err(LinkError::Io(err)),
            Err(_would_block) => return Ok(false),
        };
        drop(guard);
        let before = self.table.clone();
        for message in parse_messages(&self.buf[..n]) {
            match message {
                Message::New(link) => {
                    if self.dumping {
                        self.seen_in_dump.insert(link.index);
                    }
                    self.table.upsert(link);
                }
                Message::Del(index) => {
                    self.table.links.remove(&index);
                }
                Message::Done { interrupted } if self.dumping => {
                    if interrupted {
                        self.redump()?;
                    } else {
                        // Links gone while events were lost.
                        let seen = std::mem::take(&mut self.seen_in_dump);
                        self.table.links.retain(|index, _| seen.contains(index));
                        self.dumping = false;
                    }
                }
                Message::Error(code) if self.dumping => {
                    return Err(LinkError::Refused(io::Error::from_raw_os_error(-code)));
                }
                Message::Overrun => self.redump()?,
                _ => {}
            }
        }
        Ok(self.table != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    fn newlink(index: u32, name: &str, flags: u32, extra: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&flags.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        body.extend(attr(IFLA_IFNAME, &n));
        body.extend(attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 1]));
        body.extend_from_slice(extra);
        let mut msg = Vec::new();
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&[0; 8]);
        msg.extend(body);
        msg
    }

    #[test]
    fn reads_a_link_with_master_and_kind() {
        let mut kind = attr(IFLA_INFO_KIND, b"veth\0");
        kind = attr(IFLA_LINKINFO | 0x8000, &kind);
        kind.extend(attr(IFLA_MASTER, &7u32.to_ne_bytes()));
        let msg = newlink(3, "eth0", IFF_UP | IFF_RUNNING, &kind);
        let messages = parse_messages(&msg);
        let [Message::New(link)] = messages.as_slice() else {
            panic!("{messages:?}");
        };
        assert_eq!(link.index, 3);
        assert_eq!(link.name, "eth0");
        assert_eq!(link.mac, Some(EthernetAddress([2, 0, 0, 0, 0, 1])));
        assert_eq!(link.master, Some(7));
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert!(link.is_operational());
        assert!(!link.is_default_candidate(), "enslaved");
    }

    #[test]
    fn parsing_never_panics_on_cut_messages() {
        let msg = newlink(3, "eth0", 0, &attr(IFLA_MASTER, &1u32.to_ne_bytes()));
        for len in 0..msg.len() {
            let _ = parse_messages(&msg[..len]);
        }
        let mut bad = msg.clone();
        bad[NLMSG_HDRLEN + IFINFOMSG_LEN] = 0xff; // an attribute longer than the message
        let _ = parse_messages(&bad);
    }

    #[test]
    fn counts_down_up_transitions() {
        let mut table = LinkTable::default();
        let up = parse_link(&newlink(3, "eth0", IFF_UP | IFF_RUNNING, &[])[NLMSG_HDRLEN..]);
        let down = parse_link(&newlink(3, "eth0", IFF_UP, &[])[NLMSG_HDRLEN..]);
        table.upsert(up.clone().unwrap());
        table.upsert(up.clone().unwrap());
        assert_eq!(table.by_name("eth0").unwrap().up_generation, 0);
        table.upsert(down.unwrap());
        table.upsert(up.unwrap());
        assert_eq!(table.by_name("eth0").unwrap().up_generation, 1);
    }

    fn link(name: &str) -> Link {
        Link {
            index: 1,
            name: name.into(),
            mac: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
            hardware_type: ARPHRD_ETHER,
            flags: IFF_UP | IFF_RUNNING,
            master: None,
            kind: None,
            up_generation: 0,
        }
    }

    #[test]
    fn default_selection_skips_loopback_members_non_ethernet_and_virtual_devices() {
        let mut lo = link("lo");
        lo.flags |= IFF_LOOPBACK;
        let mut member = link("eno2");
        member.master = Some(9);
        let mut tun = link("wg0");
        tun.hardware_type = 65534;
        let links = [
            link("eth0"),
            link("br0"),
            lo,
            member,
            tun,
            link("veth1234"),
            link("cali0a"),
            link("flannel.1"),
            link("cni0"),
            link("docker0"),
            link("lxc99"),
            link("kube-ipvs0"),
            link("cilium_host"),
            link("vxlan.calico"),
            link("tunl0"),
            link("weave"),
            link("genev_sys_6081"),
            link("nodelocaldns"),
        ];
        let resolved = resolve(&InterfaceSelection::Any, &links);
        assert_eq!(
            resolved.interfaces,
            ["br0", "eth0"].map(String::from).into_iter().collect()
        );
        assert!(resolved.unmatched.is_empty());
    }

    #[test]
    fn named_selection_reports_names_that_match_nothing() {
        let mut member = link("eno2");
        member.master = Some(9);
        let links = [link("eth0"), member];
        let named: BTreeSet<String> = ["eno2", "eth9", "eth0"].map(String::from).into();
        let resolved = resolve(&InterfaceSelection::Only(named), &links);
        assert_eq!(
            resolved.interfaces,
            ["eno2", "eth0"].map(String::from).into()
        );
        assert_eq!(resolved.unmatched, ["eth9"].map(String::from).into());
    }
}
