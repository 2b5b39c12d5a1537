//! Unnumbered peering (MetalLB's `BGPPeer.interface`): the peer is the router at the other
//! end of a link, known only by its IPv6 link-local address there, found as FRR finds it.
//!
//! - The router's address is learnt from the Router Advertisements it sends on the link
//!   (FRR's zebra and BIRD's `radv` send them), or from the connection it opens to us.
//! - Ours is made known the same way: Router Advertisements on that interface only, with
//!   router lifetime 0 (RFC 4861 §4.2) so no host on the link takes the node for a default
//!   router, no prefixes and no flags. A Router Solicitation is answered at once.
//!
//! [`RouterAdvertisement`] and [`RouterSolicitation`] are the wire views (only what this
//! needs); [`Discovery`] runs one raw ICMPv6 socket per interface. Messages are accepted
//! only as RFC 4861 §6.1 says: hop limit 255, code 0, a link-local source, and options of
//! non-zero length within the message.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// The Source Link-Layer Address option (RFC 4861 §4.6.1).
const OPTION_SOURCE_LINK_LAYER: u8 = 1;

/// Why an ICMPv6 message is not a Router Advertisement or Solicitation to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("message of {0} octets is too short")]
    Truncated(usize),
    #[error("ICMPv6 type {0} is neither a Router Solicitation nor Advertisement")]
    Type(u8),
    #[error("code {0} is not 0")]
    Code(u8),
    #[error("an option has length 0 or runs past the message")]
    BadOption,
}

/// A Router Advertisement (RFC 4861 §4.2), as far as herald reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvertisement {
    pub cur_hop_limit: u8,
    /// Seconds; 0: "not a default router".
    pub router_lifetime: u16,
    pub source_link_layer: Option<[u8; 6]>,
}

/// A Router Solicitation (RFC 4861 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSolicitation {
    pub source_link_layer: Option<[u8; 6]>,
}

/// Either message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Solicitation(RouterSolicitation),
    Advertisement(RouterAdvertisement),
}

const RA_LEN: usize = 16;
const RS_LEN: usize = 8;

/// Walks the options after `start`, checking each, and returns the source link-layer
/// address (Ethernet) if one is there.
fn options(buf: &[u8], start: usize) -> Result<Option<[u8; 6]>, Error> {
    let mut at = start;
    let mut sll = None;
    while at < buf.len() {
        let (Some(&kind), Some(&units)) = (buf.get(at), buf.get(at + 1)) else {
            return Err(Error::BadOption);
        };
        let len = usize::from(units) * 8;
        if len == 0 || at + len > buf.len() {
            return Err(Error::BadOption);
        }
        if kind == OPTION_SOURCE_LINK_LAYER && len == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&buf[at + 2..at + 8]);
            sll = Some(mac);
        }
        at += len;
    }
    Ok(sll)
}

impl Message {
    /// Parses an ICMPv6 message (from its type octet on, as a raw ICMPv6 socket gives it).
    /// The checksum is the kernel's to check.
    pub fn parse(buf: &[u8]) -> Result<Message, Error> {
        let (&kind, &code) = match (buf.first(), buf.get(1)) {
            (Some(k), Some(c)) => (k, c),
            _ => return Err(Error::Truncated(buf.len())),
        };
        if code != 0 {
            return Err(Error::Code(code));
        }
        match kind {
            ROUTER_ADVERTISEMENT => {
                if buf.len() < RA_LEN {
                    return Err(Error::Truncated(buf.len()));
                }
                Ok(Message::Advertisement(RouterAdvertisement {
                    cur_hop_limit: buf[4],
                    router_lifetime: u16::from_be_bytes([buf[6], buf[7]]),
                    source_link_layer: options(buf, RA_LEN)?,
                }))
            }
            ROUTER_SOLICITATION => {
                if buf.len() < RS_LEN {
                    return Err(Error::Truncated(buf.len()));
                }
                Ok(Message::Solicitation(RouterSolicitation {
                    source_link_layer: options(buf, RS_LEN)?,
                }))
            }
            other => Err(Error::Type(other)),
        }
    }
}

impl RouterAdvertisement {
    /// herald's advertisement: not a default router, no prefixes, no flags, the interface's
    /// MAC address when known.
    pub fn herald(mac: Option<[u8; 6]>) -> Self {
        RouterAdvertisement {
            cur_hop_limit: 0,
            router_lifetime: 0,
            source_link_layer: mac,
        }
    }

    /// The message with a zero checksum (the kernel fills it in on raw ICMPv6 sockets).
    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![0u8; RA_LEN];
        out[0] = ROUTER_ADVERTISEMENT;
        out[4] = self.cur_hop_limit;
        out[6..8].copy_from_slice(&self.router_lifetime.to_be_bytes());
        if let Some(mac) = self.source_link_layer {
            out.extend_from_slice(&[OPTION_SOURCE_LINK_LAYER, 1]);
            out.extend_from_slice(&mac);
        }
        out
    }
}

/// What a received message means for the link: who the router is, whether to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A Router Advertisement from this link-local address: the peer.
    Router(Ipv6Addr),
    /// A Router Solicitation: advertise now.
    Solicited,
    Ignored,
}

/// Applies RFC 4861 §6.1.1 / §6.1.2: a message is acted on only with hop limit 255 (it
/// was not forwarded) and, for an advertisement, a link-local source.
pub fn heard(buf: &[u8], source: Ipv6Addr, hop_limit: Option<u8>) -> Heard {
    if hop_limit != Some(255) {
        return Heard::Ignored;
    }
    match Message::parse(buf) {
        Ok(Message::Advertisement(_)) if is_link_local(&source) => Heard::Router(source),
        Ok(Message::Solicitation(_)) => Heard::Solicited,
        _ => Heard::Ignored,
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// How often herald advertises itself on an unnumbered link (FRR's zebra default for BGP
/// unnumbered), after a first few a second apart so a router that just came up learns us
/// quickly.
pub const ADVERTISE_INTERVAL: Duration = Duration::from_secs(10);
const FAST_ADVERTISEMENTS: u32 = 3;
/// Solicitations are answered at most this often.
const MIN_ANSWER_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait before trying again when the interface cannot be used (it may not
/// exist yet).
const RETRY: Duration = Duration::from_secs(2);

/// What one interface's discovery has seen, for status and error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStatus {
    pub interface: String,
    pub router: Option<Ipv6Addr>,
    pub advertisements_sent: u64,
    pub advertisements_received: u64,
    pub solicitations_received: u64,
    pub last_error: Option<String>,
}

/// Router discovery on one interface: learns the router's link-local address and
/// advertises ours, until dropped.
pub struct Discovery {
    router: watch::Receiver<Option<Ipv6Addr>>,
    status: Arc<Mutex<DiscoveryStatus>>,
    task: JoinHandle<()>,
}

impl Discovery {
    /// Starts on `interface` (inside a tokio runtime). Needs CAP_NET_RAW; failures are
    /// reported in [`Discovery::status`] and retried.
    pub fn start(interface: &str) -> Discovery {
        let (tx, router) = watch::channel(None);
        let status = Arc::new(Mutex::new(DiscoveryStatus {
            interface: interface.to_owned(),
            ..DiscoveryStatus::default()
        }));
        let task = tokio::spawn(run(interface.to_owned(), tx, status.clone()));
        Discovery {
            router,
            status,
            task,
        }
    }

    /// The router's link-local address, as it is learnt.
    pub fn router(&self) -> watch::Receiver<Option<Ipv6Addr>> {
        self.router.clone()
    }

    pub fn status(&self) -> DiscoveryStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Mutex<DiscoveryStatus>) -> std::sync::MutexGuard<'_, DiscoveryStatus> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run(
    interface: String,
    router: watch::Sender<Option<Ipv6Addr>>,
    status: Arc<Mutex<DiscoveryStatus>>,
) {
    loop {
        let error = match Link::open(&interface) {
            Ok(link) => match link.serve(&router, &status).await {
                Ok(()) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        lock(&status).last_error = Some(format!("router discovery on {interface}: {error}"));
        tokio::time::sleep(RETRY).await;
    }
}

/// The raw ICMPv6 socket of one interface.
struct Link {
    socket: AsyncFd<socket2::Socket>,
    ifindex: u32,
    mac: Option<[u8; 6]>,
}

/// `struct icmp6_filter` (RFC 3542 §3.2): a set bit blocks the type.
const ICMP6_FILTER: libc::c_int = 1;

impl Link {
    fn open(interface: &str) -> io::Result<Link> {
        let ifindex = crate::socket::if_index(interface);
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {interface}"),
            ));
        }
        let socket = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV6),
        )?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        socket.set_multicast_if_v6(ifindex)?;
        socket.set_multicast_loop_v6(false)?;
        socket.set_nonblocking(true)?;
        // Only solicitations and advertisements reach us.
        let mut filter = [u32::MAX; 8];
        for t in [ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT] {
            filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
        }
        setsockopt(&socket, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
        setsockopt(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &1i32)?;
        let mac = crate::socket::interface_mac(interface);
        Ok(Link {
            // SAFETY: the socket owns its descriptor, which stays open until the AsyncFd
            // drops the socket.
            socket: unsafe {
                AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE)
            }?,
            ifindex,
            mac,
        })
    }

    fn advertise(&self, status: &Mutex<DiscoveryStatus>) {
        let ra = RouterAdvertisement::herald(self.mac).emit();
        let to = SocketAddrV6::new(
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            0,
            0,
            self.ifindex,
        );
        match self.socket.get_ref().send_to(&ra, &to.into()) {
            Ok(_) => lock(status).advertisements_sent += 1,
            Err(e) => {
                lock(status).last_error = Some(format!("sending a Router Advertisement: {e}"))
            }
        }
    }

    async fn serve(
        &self,
        router: &watch::Sender<Option<Ipv6Addr>>,
        status: &Mutex<DiscoveryStatus>,
    ) -> io::Result<()> {
        lock(status).last_error = None;
        let mut sent = 0u32;
        let mut next = tokio::time::Instant::now();
        let mut last_answer: Option<tokio::time::Instant> = None;
        let mut buf = [0u8; 1500];
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    self.advertise(status);
                    sent += 1;
                    next += if sent < FAST_ADVERTISEMENTS {
                        Duration::from_secs(1)
                    } else {
                        ADVERTISE_INTERVAL
                    };
                }
                guard = self.socket.readable() => {
                    let mut guard = guard?;
                    let received = guard.try_io(|s| recv(s.get_ref(), &mut buf));
                    let Ok(result) = received else { continue };
                    let Some((len, source, hop_limit)) = result? else { continue };
                    let Some(message) = buf.get(..len) else { continue };
                    match heard(message, source, hop_limit) {
                        Heard::Router(address) => {
                            lock(status).advertisements_received += 1;
                            lock(status).router = Some(address);
                            router.send_if_modified(|known| {
                                let changed = *known != Some(address);
                                *known = Some(address);
                                changed
                            });
                        }
                        Heard::Solicited => {
                            lock(status).solicitations_received += 1;
                            let now = tokio::time::Instant::now();
                            if last_answer.is_none_or(|t| now - t >= MIN_ANSWER_INTERVAL) {
                                last_answer = Some(now);
                                self.advertise(status);
                            }
                        }
                        Heard::Ignored => {}
                    }
                }
            }
        }
    }
}

fn setsockopt<T>(
    socket: &socket2::Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a plain value of the size given, valid for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One message with its source and hop limit; `None` when what arrived was not IPv6.
fn recv(
    socket: &socket2::Socket,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Ipv6Addr, Option<u8>)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let hop_limit = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
            _ => None,
        })
    });
    let Some(source) = msg.address else {
        return Ok(None);
    };
    Ok(Some((msg.bytes, source.ip(), hop_limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_advertises_itself_as_no_default_router() {
        let mac = [0x02, 0, 0, 0, 0, 0x01];
        let bytes = RouterAdvertisement::herald(Some(mac)).emit();
        assert_eq!(
            bytes,
            [
                134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1
            ]
        );
        assert_eq!(
            Message::parse(&bytes),
            Ok(Message::Advertisement(RouterAdvertisement {
                cur_hop_limit: 0,
                router_lifetime: 0,
                source_link_layer: Some(mac),
            }))
        );
    }

    #[test]
    fn only_valid_messages_from_the_link_count() {
        let ra = RouterAdvertisement::herald(None).emit();
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(heard(&ra, ll, Some(255)), Heard::Router(ll));
        // Forwarded (hop limit below 255), or hop limit unknown: not from this link.
        assert_eq!(heard(&ra, ll, Some(254)), Heard::Ignored);
        assert_eq!(heard(&ra, ll, None), Heard::Ignored);
        // RFC 4861 §6.1.2: advertisements come from link-local addresses.
        assert_eq!(heard(&ra, global, Some(255)), Heard::Ignored);
        let rs = [133, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(heard(&rs, global, Some(255)), Heard::Solicited);
        let mut bad_code = ra.clone();
        bad_code[1] = 1;
        assert_eq!(heard(&bad_code, ll, Some(255)), Heard::Ignored);
    }

    #[test]
    fn parsing_never_trusts_lengths() {
        assert_eq!(Message::parse(&[]), Err(Error::Truncated(0)));
        assert_eq!(Message::parse(&[134, 0, 0]), Err(Error::Truncated(3)));
        let mut ra = RouterAdvertisement::herald(None).emit();
        // An option of length 0 would loop forever; one past the end would overrun.
        ra.extend_from_slice(&[1, 0]);
        assert_eq!(Message::parse(&ra), Err(Error::BadOption));
        ra.truncate(16);
        ra.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Message::parse(&ra), Err(Error::BadOption));
        ra.truncate(16);
        ra.push(1);
        assert_eq!(Message::parse(&ra), Err(Error::BadOption));
        // Every prefix of every length of a valid message parses or fails cleanly.
        let full = RouterAdvertisement::herald(Some([1; 6])).emit();
        for n in 0..full.len() {
            let _ = Message::parse(&full[..n]);
        }
    }
}
