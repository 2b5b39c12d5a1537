//! This host's network interfaces and their addresses, learnt from rtnetlink: a dump of links
//! and one of addresses at start, then RTM_NEWLINK / RTM_DELLINK and RTM_NEWADDR /
//! RTM_DELADDR events (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR; no polling),
//! kept in a [`LinkTable`] that others watch through a `tokio::sync::watch` channel.
//!
//! Messages are read with `netlink-packet-route`'s types, one attribute at a time, so an
//! attribute the library cannot read costs that attribute only; the socket is `netlink-sys`'s.
//! The monitor never dies quietly: events the kernel dropped (ENOBUFS, NLMSG_OVERRUN) and dumps
//! it flagged inconsistent (NLM_F_DUMP_INTR) lead to a fresh full read; a failing socket is
//! replaced with backoff; each is logged and counted in [`LinkMonitor::health`].
//!
//! Also the interface selection rules: which links are usable by default (Ethernet, not a
//! loopback, not enslaved to a bridge or bond, not a CNI or virtual device by name), and how an
//! advertisement's named interfaces resolve against what exists.
//!
//! Owns reading link state only; it never changes an interface.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use netlink_packet_core::{
    ErrorBuffer, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
    Parseable, ParseableParametrized,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressHeader, AddressMessage, AddressMessageBuffer,
};
use netlink_packet_route::link::{
    LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage, LinkMessageBuffer,
};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::wire::EthernetAddress;

const ARPHRD_ETHER: u16 = libc::ARPHRD_ETHER;

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
    /// The link's IPv4 and IPv6 addresses with their prefix lengths, link-local ones included,
    /// kept current from RTM_NEWADDR / RTM_DELADDR.
    pub addresses: BTreeSet<IpNet>,
}

impl Link {
    pub fn is_ethernet(&self) -> bool {
        self.hardware_type == ARPHRD_ETHER && self.mac.is_some()
    }

    pub fn is_loopback(&self) -> bool {
        LinkFlags::from_bits_retain(self.flags).contains(LinkFlags::Loopback)
    }

    /// Administratively up and with carrier: frames sent on it go out.
    pub fn is_operational(&self) -> bool {
        LinkFlags::from_bits_retain(self.flags).contains(LinkFlags::Up | LinkFlags::Running)
    }

    /// Whether the link has an IPv6 link-local address (fe80::/10), which IPv6 neighbor
    /// discovery and MLD on it need.
    pub fn has_ipv6_link_local(&self) -> bool {
        self.addresses.iter().any(|net| match net.addr() {
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        })
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

    /// Applies a new state of `link`, keeping count of down→up transitions and the
    /// addresses known (link messages do not carry them).
    fn upsert(&mut self, mut link: Link) {
        if let Some(old) = self.links.get_mut(&link.index) {
            link.up_generation =
                old.up_generation + u64::from(!old.is_operational() && link.is_operational());
            link.addresses = std::mem::take(&mut old.addresses);
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
    #[error("the kernel refused the dump: {0}")]
    Refused(#[source] io::Error),
    #[cfg(feature = "fault-injection")]
    #[error("the link monitor was told to fail (a test)")]
    Injected,
}

/// Receive buffer of the monitor's socket: room for a burst of events. Events lost anyway
/// (ENOBUFS) are answered with a fresh dump.
const RECEIVE_BUFFER: usize = 1 << 20;

/// Room for one read: a dump sends at most a page-sized batch of messages per read, events
/// come one per read.
const READ_BUFFER: usize = 64 * 1024;

/// A NETLINK_ROUTE socket subscribed to link and address events (RTNLGRP_LINK,
/// RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR).
struct NetlinkSocket {
    socket: Socket,
    seq: u32,
}

impl NetlinkSocket {
    fn open(nonblocking: bool) -> io::Result<NetlinkSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.set_non_blocking(nonblocking)?;
        // Beyond net.core.rmem_max when privileged; else whatever the kernel allows. A bigger
        // buffer makes ENOBUFS (lost events, answered with a new dump) rare.
        let size = RECEIVE_BUFFER as libc::c_int;
        let fd = socket.as_raw_fd();
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            let _ = socket.set_rx_buf_sz(size);
        }
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        socket.bind(&SocketAddr::new(0, groups))?;
        Ok(NetlinkSocket { socket, seq: 0 })
    }

    /// Asks for every link (`Dump::Links`) or every address of every family (`Dump::Addresses`).
    fn request_dump(&mut self, what: Dump) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let payload = match what {
            Dump::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
            Dump::Addresses => RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        self.socket.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
        Ok(())
    }

    /// One read into `buf`; the length read, or more than `buf.len()` if the datagram was cut.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut window: &mut [u8] = buf;
        self.socket.recv(&mut window, libc::MSG_TRUNC)
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int of the size passed.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The two dumps that make a full read, links first so that every address has its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dump {
    Links,
    Addresses,
}

/// One netlink message about links or addresses, as far as the table cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    NewLink(Link),
    DelLink(u32),
    NewAddress {
        index: u32,
        address: IpNet,
    },
    DelAddress {
        index: u32,
        address: IpNet,
    },
    /// The end of a dump.
    Done,
    Error(i32),
    /// Messages lost: the table must be dumped again.
    Overrun,
    Other,
}

/// A message and whether the kernel flagged it NLM_F_DUMP_INTR (the dump it belongs to may be
/// inconsistent, since the table changed while it ran).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    message: Message,
    interrupted: bool,
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a receive buffer into netlink messages and reads each; never panics, stops at the
/// first message whose length does not fit.
fn parse_messages(mut bytes: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    while let Ok(buffer) = NetlinkBuffer::new_checked(bytes) {
        let len = buffer.length() as usize;
        let payload = buffer.payload();
        let message = match buffer.message_type() {
            libc::RTM_NEWLINK => parse_link(payload).map_or(Message::Other, Message::NewLink),
            libc::RTM_DELLINK => {
                LinkHeader::parse(payload).map_or(Message::Other, |h| Message::DelLink(h.index))
            }
            libc::RTM_NEWADDR => {
                parse_address(payload).map_or(Message::Other, |(index, address)| {
                    Message::NewAddress { index, address }
                })
            }
            libc::RTM_DELADDR => {
                parse_address(payload).map_or(Message::Other, |(index, address)| {
                    Message::DelAddress { index, address }
                })
            }
            NLMSG_DONE => Message::Done,
            NLMSG_ERROR => match ErrorBuffer::new_checked(payload)
                .ok()
                .and_then(|e| e.code())
            {
                Some(code) => Message::Error(code.get()),
                // An acknowledgement.
                None => Message::Other,
            },
            NLMSG_OVERRUN => Message::Overrun,
            _ => Message::Other,
        };
        out.push(Parsed {
            message,
            interrupted: buffer.flags() & NLM_F_DUMP_INTR != 0,
        });
        bytes = bytes.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// Reads an RTM_NEWLINK body with netlink-packet-route, one attribute at a time: an attribute
/// the library cannot read (a kernel newer than it, say) is skipped rather than losing the link.
fn parse_link(payload: &[u8]) -> Option<Link> {
    let header = LinkHeader::parse(payload).ok()?;
    let mut link = Link {
        index: header.index,
        name: String::new(),
        mac: None,
        hardware_type: u16::from(header.link_layer_type),
        flags: header.flags.bits(),
        master: None,
        kind: None,
        up_generation: 0,
        addresses: BTreeSet::new(),
    };
    let attributes = payload.get(std::mem::size_of::<LinkMessageBuffer>()..)?;
    for nla in NlasIterator::new(attributes) {
        let Ok(nla) = nla else { break };
        match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(LinkAttribute::IfName(name)) => link.name = name,
            Ok(LinkAttribute::Address(bytes)) => link.mac = EthernetAddress::from_bytes(&bytes),
            Ok(LinkAttribute::Controller(index)) => link.master = Some(index).filter(|&i| i != 0),
            Ok(LinkAttribute::LinkInfo(infos)) => {
                link.kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            Ok(_) => {}
            // Some kinds' IFLA_INFO_DATA are beyond what the library reads; the kind is all
            // that is needed, and it is a plain string.
            Err(_) if nla.kind() == IFLA_LINKINFO => link.kind = info_kind(nla.value()),
            Err(_) => {}
        }
    }
    Some(link)
}

/// IFLA_LINKINFO → IFLA_INFO_KIND, read without the rest of the nest.
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;

fn info_kind(nest: &[u8]) -> Option<String> {
    NlasIterator::new(nest)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == IFLA_INFO_KIND)
        .map(|nla| {
            let value = nla.value();
            let name = value.split(|&b| b == 0).next().unwrap_or(&[]);
            String::from_utf8_lossy(name).into_owned()
        })
}

/// Reads an RTM_NEWADDR/RTM_DELADDR body: the link index and the address with its prefix
/// length. For IPv4 the local address (IFA_LOCAL) is the interface's own; IFA_ADDRESS is the
/// peer's on a point-to-point link.
fn parse_address(payload: &[u8]) -> Option<(u32, IpNet)> {
    let header = AddressHeader::parse(payload).ok()?;
    let attributes = payload.get(std::mem::size_of::<AddressMessageBuffer>()..)?;
    let (mut local, mut address) = (None, None);
    for nla in NlasIterator::new(attributes) {
        let Ok(nla) = nla else { break };
        match AddressAttribute::parse(&nla) {
            Ok(AddressAttribute::Local(ip)) => local = Some(ip),
            Ok(AddressAttribute::Address(ip)) => address = Some(ip),
            _ => {}
        }
    }
    let ip: IpAddr = local.or(address)?;
    Some((header.index, IpNet::new(ip, header.prefix_len).ok()?))
}

/// What the reader must do after a message.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Nothing,
    /// Ask for the given dump.
    Request(Dump),
}

/// The link table as messages change it, and where a full read (a link dump, then an address
/// dump) stands. Pure: the socket is the caller's.
#[derive(Debug, Default)]
struct Tracker {
    table: LinkTable,
    /// The dump under way, if any.
    dumping: Option<Dump>,
    /// The dump under way may miss changes: start a full read again when it ends.
    stale: bool,
    /// Links and addresses the current full read has seen (in the dumps or in events while
    /// it ran); what it has not seen is gone when it ends.
    seen_links: BTreeSet<u32>,
    seen_addresses: BTreeSet<(u32, IpNet)>,
    /// Full reads started again after events were lost or a dump was interrupted.
    resyncs: u64,
}

impl Tracker {
    /// Starts a full read; the caller requests the link dump.
    fn start(&mut self) -> Dump {
        self.dumping = Some(Dump::Links);
        self.stale = false;
        self.seen_links.clear();
        self.seen_addresses.clear();
        Dump::Links
    }

    fn is_current(&self) -> bool {
        self.dumping.is_none()
    }

    /// Events were lost (ENOBUFS or NLMSG_OVERRUN): read everything again, once the dump under
    /// way (whose own messages are never lost) has ended.
    fn lost_events(&mut self) -> Next {
        self.resyncs += 1;
        if self.dumping.is_some() {
            self.stale = true;
            Next::Nothing
        } else {
            Next::Request(self.start())
        }
    }

    fn apply(&mut self, parsed: Parsed) -> Result<Next, LinkError> {
        if parsed.interrupted && self.dumping.is_some() && !self.stale {
            self.resyncs += 1;
            self.stale = true;
        }
        match parsed.message {
            Message::NewLink(link) => {
                if self.dumping.is_some() {
                    self.seen_links.insert(link.index);
                }
                self.table.upsert(link);
            }
            Message::DelLink(index) => {
                self.table.links.remove(&index);
                self.seen_links.remove(&index);
            }
            Message::NewAddress { index, address } => {
                if self.dumping.is_some() {
                    self.seen_addresses.insert((index, address));
                }
                if let Some(link) = self.table.links.get_mut(&index) {
                    link.addresses.insert(address);
                }
            }
            Message::DelAddress { index, address } => {
                self.seen_addresses.remove(&(index, address));
                if let Some(link) = self.table.links.get_mut(&index) {
                    link.addresses.remove(&address);
                }
            }
            Message::Done => match self.dumping {
                Some(Dump::Links) => {
                    self.dumping = Some(Dump::Addresses);
                    return Ok(Next::Request(Dump::Addresses));
                }
                Some(Dump::Addresses) => {
                    if self.stale {
                        return Ok(Next::Request(self.start()));
                    }
                    let seen_links = std::mem::take(&mut self.seen_links);
                    let seen_addresses = std::mem::take(&mut self.seen_addresses);
                    self.table
                        .links
                        .retain(|index, _| seen_links.contains(index));
                    for (index, link) in &mut self.table.links {
                        link.addresses
                            .retain(|a| seen_addresses.contains(&(*index, *a)));
                    }
                    self.dumping = None;
                }
                None => {}
            },
            Message::Error(code) if self.dumping.is_some() => {
                return Err(LinkError::Refused(io::Error::from_raw_os_error(-code)));
            }
            Message::Overrun => return Ok(self.lost_events()),
            Message::Error(_) | Message::Other => {}
        }
        Ok(Next::Nothing)
    }
}

/// Reads every link and its addresses once, blocking (for one-shot use).
pub fn list_links() -> Result<LinkTable, LinkError> {
    let mut socket = NetlinkSocket::open(false).map_err(LinkError::Open)?;
    let mut tracker = Tracker::default();
    let first = tracker.start();
    socket.request_dump(first).map_err(LinkError::Io)?;
    let mut buf = vec![0u8; READ_BUFFER];
    while !tracker.is_current() {
        let next = match socket.recv(&mut buf) {
            Ok(n) if n <= buf.len() => {
                let mut next = Vec::new();
                for parsed in parse_messages(&buf[..n]) {
                    next.push(tracker.apply(parsed)?);
                }
                next
            }
            Ok(_) => vec![tracker.lost_events()],
            Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => vec![tracker.lost_events()],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(LinkError::Io(err)),
        };
        for next in next {
            if let Next::Request(dump) = next {
                socket.request_dump(dump).map_err(LinkError::Io)?;
            }
        }
    }
    Ok(tracker.table)
}

/// How a task of the responder is doing: up, or ended and waiting to be restarted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskHealth {
    /// Running (false between an unexpected end and the restart that follows it).
    pub up: bool,
    /// Times it ended unexpectedly and was started again.
    pub restarts: u64,
    /// Why it last ended, while it is down (and after, until it is up again).
    pub last_error: Option<String>,
}

/// The link monitor's health and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorHealth {
    pub task: TaskHealth,
    /// Full reads started again because events were lost (ENOBUFS, NLMSG_OVERRUN) or a dump
    /// was interrupted by changes (NLM_F_DUMP_INTR).
    pub resyncs: u64,
}

#[derive(Debug, Default)]
struct MonitorShared {
    health: Mutex<MonitorHealth>,
    /// A test's request that the socket fail.
    #[cfg(feature = "fault-injection")]
    fault: tokio::sync::Notify,
}

/// Follows the links of the namespace it was started in.
#[derive(Debug)]
pub struct LinkMonitor {
    table: watch::Receiver<Arc<LinkTable>>,
    shared: Arc<MonitorShared>,
    task: JoinHandle<()>,
}

/// The first wait before a failed task or socket is tried again; it doubles up to
/// [`RESTART_BACKOFF_MAX`] while failures follow each other.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A task that ran this long before failing starts its backoff over from the minimum.
pub const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(30);

/// Exponential backoff between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: RESTART_BACKOFF_MIN,
        }
    }
}

impl Backoff {
    /// The wait before the next restart of something that ran for `ran` before failing.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESTART_BACKOFF_RESET {
            self.next = RESTART_BACKOFF_MIN;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(RESTART_BACKOFF_MAX);
        wait
    }
}

impl LinkMonitor {
    /// Subscribes to link and address events, reads every link and address, and keeps the
    /// table current from then on. Returns once the first full read is complete. Must be
    /// called inside a tokio runtime.
    ///
    /// The task behind it never ends on its own: lost events and interrupted dumps lead to a
    /// fresh full read, and a failing socket is replaced (with backoff), each logged and
    /// counted in [`health`](Self::health).
    pub async fn start() -> Result<LinkMonitor, LinkError> {
        let mut reader = Reader::open(LinkTable::default())?;
        reader.read_until_current().await?;
        let (tx, rx) = watch::channel(Arc::new(reader.tracker.table.clone()));
        let shared = Arc::new(MonitorShared::default());
        lock(&shared.health).task.up = true;
        let task = tokio::spawn(supervise_monitor(reader, Arc::new(tx), shared.clone()));
        Ok(LinkMonitor {
            table: rx,
            shared,
            task,
        })
    }

    /// The current table.
    pub fn table(&self) -> Arc<LinkTable> {
        self.table.borrow().clone()
    }

    /// A receiver that sees every new table.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LinkTable>> {
        self.table.clone()
    }

    /// Whether the monitor is running, and how often it had to start over.
    pub fn health(&self) -> MonitorHealth {
        lock(&self.shared.health).clone()
    }

    /// Makes the monitor's socket fail as if the kernel had broken it, so tests can see it
    /// recover. Only with the `fault-injection` feature, which the released binary never has.
    #[cfg(feature = "fault-injection")]
    pub fn inject_socket_failure(&self) {
        self.shared.fault.notify_one();
    }
}

impl Drop for LinkMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A socket and the tracker it feeds.
struct Reader {
    socket: AsyncFd<NetlinkSocket>,
    tracker: Tracker,
    buf: Vec<u8>,
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Reader {
    /// A new socket, a full read requested, starting from `table` (what is not seen again is
    /// dropped when the read ends).
    fn open(table: LinkTable) -> Result<Reader, LinkError> {
        let mut socket = NetlinkSocket::open(true).map_err(LinkError::Open)?;
        let mut tracker = Tracker {
            table,
            ..Tracker::default()
        };
        let first = tracker.start();
        socket.request_dump(first).map_err(LinkError::Io)?;
        // SAFETY: the socket is moved into the AsyncFd, which owns its descriptor (closed when
        // the socket is dropped) and only reads through it.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|err| LinkError::Io(err.into_parts().1))?;
        Ok(Reader {
            socket,
            tracker,
            buf: vec![0u8; READ_BUFFER],
        })
    }

    async fn read_until_current(&mut self) -> Result<(), LinkError> {
        while !self.tracker.is_current() {
            self.read().await?;
        }
        Ok(())
    }

    fn request(&mut self, next: Next) -> Result<(), LinkError> {
        if let Next::Request(dump) = next {
            self.socket
                .get_mut()
                .request_dump(dump)
                .map_err(LinkError::Io)?;
        }
        Ok(())
    }

    /// Reads what is queued and applies it.
    async fn read(&mut self) -> Result<(), LinkError> {
        let mut guard = self.socket.readable().await.map_err(LinkError::Io)?;
        let buf = &mut self.buf;
        let n = match guard.try_io(|socket| socket.get_ref().recv(buf)) {
            Ok(Ok(n)) if n <= self.buf.len() => n,
            Ok(Ok(_)) => {
                // A datagram bigger than the buffer: its messages are cut, so read again.
                let next = self.tracker.lost_events();
                return self.request(next);
            }
            Ok(Err(err)) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                warn!(
                    "link monitor: the kernel dropped link or address events; reading every link and address again"
                );
                let next = self.tracker.lost_events();
                return self.request(next);
            }
            Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Ok(Err(err)) => return Err(LinkError::Io(err)),
            Err(_would_block) => return Ok(()),
        };
        drop(guard);
        let resyncs = self.tracker.resyncs;
        for parsed in parse_messages(&self.buf[..n]) {
            let next = self.tracker.apply(parsed)?;
            self.request(next)?;
        }
        if self.tracker.resyncs != resyncs {
            warn!(
                "link monitor: a dump was interrupted or events were lost; reading every link and address again"
            );
        }
        Ok(())
    }
}

/// Runs [`monitor`] and starts it again should it ever end (it ends only by panicking: a bug),
/// from a new socket and the last table published.
async fn supervise_monitor(
    reader: Reader,
    tx: Arc<watch::Sender<Arc<LinkTable>>>,
    shared: Arc<MonitorShared>,
) {
    let mut reader = reader;
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let mut task = AbortOnDrop(tokio::spawn(monitor(reader, tx.clone(), shared.clone())));
        let ended = match task.await_end().await {
            Ok(()) => "the link monitor task returned".to_owned(),
            Err(err) => format!("the link monitor task failed: {err}"),
        };
        error!(error = %ended, "link monitor: the task ended; starting it again");
        let table = (**tx.borrow()).clone();
        reader = reopen_with_backoff(table, &shared, &mut backoff, started, ended).await;
    }
}

/// Marks the monitor down for `err`, then waits (with backoff) and tries a new socket and a
/// full read until one works.
async fn reopen_with_backoff(
    table: LinkTable,
    shared: &MonitorShared,
    backoff: &mut Backoff,
    mut since: Instant,
    mut err: String,
) -> Reader {
    loop {
        {
            let mut health = lock(&shared.health);
            health.task.up = false;
            health.task.last_error = Some(err.clone());
        }
        let wait = backoff.next(since.elapsed());
        tokio::time::sleep(wait).await;
        since = Instant::now();
        let attempt = async {
            let mut fresh = Reader::open(table.clone())?;
            fresh.read_until_current().await?;
            Ok::<Reader, LinkError>(fresh)
        };
        match attempt.await {
            Ok(fresh) => {
                let mut health = lock(&shared.health);
                health.task.up = true;
                health.task.restarts += 1;
                drop(health);
                info!("link monitor: following links and addresses again");
                return fresh;
            }
            Err(e) => {
                err = e.to_string();
                error!(error = %err, "link monitor: cannot open a new netlink socket; trying again");
            }
        }
    }
}

/// The error a test asked the monitor's socket to fail with
/// ([`LinkMonitor::inject_socket_failure`]); never comes without the `fault-injection`
/// feature.
async fn injected_failure(shared: &MonitorShared) -> LinkError {
    #[cfg(feature = "fault-injection")]
    {
        shared.fault.notified().await;
        LinkError::Injected
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = shared;
        std::future::pending().await
    }
}

/// The monitor's task: reads, publishes every new table once a full read is complete, and
/// replaces a failing socket.
async fn monitor(
    mut reader: Reader,
    tx: Arc<watch::Sender<Arc<LinkTable>>>,
    shared: Arc<MonitorShared>,
) {
    let mut backoff = Backoff::default();
    let mut since = Instant::now();
    let mut resyncs_before = 0;
    loop {
        let result = tokio::select! {
            result = reader.read() => result,
            e = injected_failure(&shared) => Err(e),
        };
        match result {
            Ok(()) => {
                let resyncs = reader.tracker.resyncs;
                if resyncs != resyncs_before {
                    lock(&shared.health).resyncs += resyncs - resyncs_before;
                    resyncs_before = resyncs;
                }
            }
            Err(err) => {
                let err = err.to_string();
                error!(error = %err, "link monitor: the netlink socket failed; links and addresses are not followed until it is replaced");
                let table = reader.tracker.table.clone();
                reader = reopen_with_backoff(table, &shared, &mut backoff, since, err).await;
                since = Instant::now();
                resyncs_before = 0;
            }
        }
        if reader.tracker.is_current() && **tx.borrow() != reader.tracker.table {
            tx.send_replace(Arc::new(reader.tracker.table.clone()));
        }
    }
}

/// A task aborted when this is dropped, so a supervisor that is itself aborted takes what it
/// supervises with it.
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Waits for the task to end.
    pub(crate) async fn await_end(&mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, Emitable, ErrorMessage};
    use netlink_packet_route::link::{InfoKind, LinkLayerType};

    fn emit(message_type_payload: NetlinkPayload<RouteNetlinkMessage>, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut message = NetlinkMessage::new(header, message_type_payload);
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    fn link_message(
        index: u32,
        name: &str,
        flags: LinkFlags,
        extra: Vec<LinkAttribute>,
    ) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.link_layer_type = LinkLayerType::Ether;
        message.header.flags = flags;
        message.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
        ];
        message.attributes.extend(extra);
        message
    }

    fn newlink(index: u32, name: &str, flags: LinkFlags, extra: Vec<LinkAttribute>) -> Vec<u8> {
        let message = link_message(index, name, flags, extra);
        emit(
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message)),
            0,
        )
    }

    fn address_message(index: u32, net: &str) -> AddressMessage {
        let net: IpNet = net.parse().unwrap();
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = net.prefix_len();
        message.header.family = match net {
            IpNet::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpNet::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        message.attributes = vec![AddressAttribute::Address(net.addr())];
        if net.addr().is_ipv4() {
            message.attributes.push(AddressAttribute::Local(net.addr()));
        }
        message
    }

    fn newaddr(index: u32, net: &str) -> Vec<u8> {
        let message = address_message(index, net);
        emit(
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(message)),
            0,
        )
    }

    fn deladdr(index: u32, net: &str) -> Vec<u8> {
        let message = address_message(index, net);
        emit(
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(message)),
            0,
        )
    }

    fn done(flags: u16) -> Vec<u8> {
        emit(NetlinkPayload::Done(DoneMessage::default()), flags)
    }

    fn up() -> LinkFlags {
        LinkFlags::Up | LinkFlags::Running
    }

    fn one(bytes: &[u8]) -> Message {
        let parsed = parse_messages(bytes);
        let [p] = parsed.as_slice() else {
            panic!("{parsed:?}");
        };
        p.message.clone()
    }

    #[test]
    fn reads_a_link_with_master_and_kind() {
        let extra = vec![
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::Controller(7),
        ];
        let Message::NewLink(link) = one(&newlink(3, "eth0", up(), extra)) else {
            panic!("not a link");
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
    fn an_attribute_the_library_cannot_read_costs_only_itself() {
        // IFLA_MTU (4) must be 4 bytes; give it 2. The library refuses the attribute, and with
        // it (read whole) the message; read one attribute at a time, the link stays.
        let mut bytes = newlink(3, "eth0", up(), vec![]);
        let bad = [6u8, 0, 4, 0, 0xaa, 0xbb, 0, 0];
        bytes.extend_from_slice(&bad);
        let len = bytes.len() as u32;
        bytes[..4].copy_from_slice(&len.to_ne_bytes());
        assert!(NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).is_err());
        let Message::NewLink(link) = one(&bytes) else {
            panic!("the link is lost");
        };
        assert_eq!(link.name, "eth0");
    }

    #[test]
    fn reads_addresses_with_prefix_lengths() {
        assert_eq!(
            one(&newaddr(3, "192.0.2.1/24")),
            Message::NewAddress {
                index: 3,
                address: "192.0.2.1/24".parse().unwrap()
            }
        );
        assert_eq!(
            one(&deladdr(3, "fe80::1/64")),
            Message::DelAddress {
                index: 3,
                address: "fe80::1/64".parse().unwrap()
            }
        );
    }

    #[test]
    fn reads_done_errors_overruns_and_the_dump_interrupted_flag() {
        let parsed = parse_messages(&done(NLM_F_DUMP_INTR));
        assert_eq!(
            parsed,
            vec![Parsed {
                message: Message::Done,
                interrupted: true
            }]
        );
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(-libc::EBUSY);
        assert_eq!(
            one(&emit(NetlinkPayload::Error(error), 0)),
            Message::Error(-libc::EBUSY)
        );
        let ack = ErrorMessage::default();
        assert_eq!(one(&emit(NetlinkPayload::Error(ack), 0)), Message::Other);
        let mut overrun = NetlinkHeader::default();
        overrun.message_type = NLMSG_OVERRUN;
        overrun.length = 16;
        let mut bytes = vec![0u8; 16];
        overrun.emit(&mut bytes);
        assert_eq!(one(&bytes), Message::Overrun);
    }

    #[test]
    fn parsing_never_panics_on_cut_or_bent_messages() {
        let mut all = newlink(3, "eth0", up(), vec![LinkAttribute::Controller(1)]);
        all.extend(newaddr(3, "2001:db8::1/64"));
        all.extend(done(0));
        for len in 0..all.len() {
            let _ = parse_messages(&all[..len]);
        }
        for at in 0..all.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut bent = all.clone();
                bent[at] = value;
                let _ = parse_messages(&bent);
            }
        }
    }

    fn parsed(bytes: Vec<u8>) -> Vec<Parsed> {
        parse_messages(&bytes)
    }

    fn feed(tracker: &mut Tracker, bytes: Vec<u8>) -> Vec<Next> {
        parsed(bytes)
            .into_iter()
            .map(|p| tracker.apply(p).expect("applies"))
            .collect()
    }

    fn addresses(table: &LinkTable, name: &str) -> Vec<String> {
        table
            .by_name(name)
            .unwrap()
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn a_full_read_is_links_then_addresses_then_what_was_not_seen_goes() {
        let mut tracker = Tracker::default();
        // An old table: eth1 and one of eth0's addresses are gone by now.
        tracker
            .table
            .upsert(parse_link(&newlink(2, "eth0", up(), vec![])[16..]).unwrap());
        tracker
            .table
            .upsert(parse_link(&newlink(9, "eth1", up(), vec![])[16..]).unwrap());
        tracker
            .table
            .links
            .get_mut(&2)
            .unwrap()
            .addresses
            .insert("192.0.2.9/24".parse().unwrap());
        assert_eq!(tracker.start(), Dump::Links);
        feed(&mut tracker, newlink(2, "eth0", up(), vec![]));
        // An address event while links are dumped: kept although the address dump may miss it.
        feed(&mut tracker, newaddr(2, "fe80::1/64"));
        assert_eq!(
            feed(&mut tracker, done(0)),
            vec![Next::Request(Dump::Addresses)]
        );
        feed(&mut tracker, newaddr(2, "192.0.2.1/24"));
        assert!(!tracker.is_current());
        assert_eq!(feed(&mut tracker, done(0)), vec![Next::Nothing]);
        assert!(tracker.is_current());
        assert!(tracker.table.by_name("eth1").is_none());
        assert_eq!(
            addresses(&tracker.table, "eth0"),
            ["192.0.2.1/24", "fe80::1/64"]
        );
        assert!(tracker.table.by_name("eth0").unwrap().has_ipv6_link_local());
        // Events from then on.
        feed(&mut tracker, deladdr(2, "fe80::1/64"));
        feed(&mut tracker, newlink(2, "eth0", LinkFlags::Up, vec![]));
        assert_eq!(
            addresses(&tracker.table, "eth0"),
            ["192.0.2.1/24"],
            "a link update keeps addresses"
        );
        assert!(!tracker.table.by_name("eth0").unwrap().has_ipv6_link_local());
        assert_eq!(tracker.resyncs, 0);
    }

    #[test]
    fn an_interrupted_dump_or_lost_events_start_the_read_over() {
        let mut tracker = Tracker::default();
        tracker.start();
        feed(&mut tracker, newlink(2, "eth0", up(), vec![]));
        // Lost events while a dump runs: the read starts over when the dump ends.
        assert_eq!(tracker.lost_events(), Next::Nothing);
        assert_eq!(
            feed(&mut tracker, done(0)),
            vec![Next::Request(Dump::Addresses)]
        );
        assert_eq!(
            feed(&mut tracker, done(0)),
            vec![Next::Request(Dump::Links)]
        );
        assert!(!tracker.is_current());
        // A dump flagged inconsistent: over again.
        assert_eq!(
            feed(&mut tracker, done(NLM_F_DUMP_INTR)),
            vec![Next::Request(Dump::Addresses)]
        );
        assert_eq!(
            feed(&mut tracker, done(0)),
            vec![Next::Request(Dump::Links)]
        );
        feed(&mut tracker, newlink(2, "eth0", up(), vec![]));
        feed(&mut tracker, done(0));
        assert_eq!(feed(&mut tracker, done(0)), vec![Next::Nothing]);
        assert!(tracker.is_current());
        assert!(tracker.table.by_name("eth0").is_some());
        // Lost events while current: a read at once.
        assert_eq!(tracker.lost_events(), Next::Request(Dump::Links));
        assert_eq!(tracker.resyncs, 3);
        // A refused dump is an error for the caller (a new socket).
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(-libc::EBUSY);
        let p = parsed(emit(NetlinkPayload::Error(error), 0)).remove(0);
        assert!(tracker.apply(p).is_err());
    }

    #[test]
    fn counts_down_up_transitions() {
        let mut table = LinkTable::default();
        let up = parse_link(&newlink(3, "eth0", up(), vec![])[16..]);
        let down = parse_link(&newlink(3, "eth0", LinkFlags::Up, vec![])[16..]);
        table.upsert(up.clone().unwrap());
        table.upsert(up.clone().unwrap());
        assert_eq!(table.by_name("eth0").unwrap().up_generation, 0);
        table.upsert(down.unwrap());
        table.upsert(up.unwrap());
        assert_eq!(table.by_name("eth0").unwrap().up_generation, 1);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_starts_over_after_a_good_run() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next(Duration::ZERO)).collect();
        assert_eq!(waits[0], RESTART_BACKOFF_MIN);
        assert_eq!(waits[1], RESTART_BACKOFF_MIN * 2);
        assert_eq!(waits[9], RESTART_BACKOFF_MAX);
        assert_eq!(backoff.next(RESTART_BACKOFF_RESET), RESTART_BACKOFF_MIN);
    }

    fn link(name: &str) -> Link {
        Link {
            index: 1,
            name: name.into(),
            mac: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
            hardware_type: ARPHRD_ETHER,
            flags: up().bits(),
            master: None,
            kind: None,
            up_generation: 0,
            addresses: BTreeSet::new(),
        }
    }

    #[test]
    fn default_selection_skips_loopback_members_non_ethernet_and_virtual_devices() {
        let mut lo = link("lo");
        lo.flags |= LinkFlags::Loopback.bits();
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
