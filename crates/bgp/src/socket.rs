//! The TCP side of a session: a connection made with the options BGP needs before the
//! first SYN leaves (source address, TTL / hop limit, TCP MD5 signature), and the
//! link-local address to announce beside a global IPv6 next hop.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpStream;

/// How to reach one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub peer: SocketAddr,
    pub source: Option<IpAddr>,
    /// IP TTL / IPv6 hop limit of our packets: 1 for directly connected eBGP, 255 for
    /// multihop and iBGP.
    pub ttl: u32,
    /// TCP MD5 signature key (RFC 2385), at most 80 octets.
    pub md5_key: Option<Vec<u8>>,
}

/// Opens a connection to the peer. The caller bounds how long it may take.
pub async fn connect(params: ConnectParams) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(params.peer),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match params.peer {
        SocketAddr::V4(_) => socket.set_ttl_v4(params.ttl)?,
        SocketAddr::V6(_) => socket.set_unicast_hops_v6(params.ttl)?,
    }
    if let Some(key) = &params.md5_key {
        set_md5_key(&socket, params.peer.ip(), key)?;
    }
    if let Some(source) = params.source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    socket.connect(params.peer).await
}

/// The longest TCP MD5 key Linux takes.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>`: the key for segments to and from one address.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

/// Signs every segment to and from `peer` with `key` (TCP_MD5SIG, tcp(7)). Must be set
/// before connecting: the SYN is signed too.
pub fn set_md5_key(socket: &Socket, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 octets",
        ));
    }
    let addr = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    // SAFETY: a SockAddr's storage is a sockaddr_storage of `len` valid octets at most.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr().cast::<u8>(),
            (&raw mut sig.addr).cast::<u8>(),
            addr.len() as usize,
        );
    }
    sig.key_len = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the fd is an open TCP socket and `sig` outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The addresses a session can give as next hops: those of the interface that holds the
/// session's local address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalAddresses {
    pub v4: Option<Ipv4Addr>,
    /// A global (not link-local) IPv6 address.
    pub v6: Option<Ipv6Addr>,
    /// The interface's link-local address, when the peer is on the interface's subnet
    /// (RFC 2545 §3: only on-link peers get it).
    pub link_local: Option<Ipv6Addr>,
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

fn same_subnet(a: IpAddr, b: IpAddr, mask: IpAddr) -> bool {
    match (a, b, mask) {
        (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(m)) => {
            u32::from(a) & u32::from(m) == u32::from(b) & u32::from(m)
        }
        (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(m)) => {
            u128::from(a) & u128::from(m) == u128::from(b) & u128::from(m)
        }
        _ => false,
    }
}

/// The next hops a session from `local` to `peer` can announce: `local` itself for its
/// family, and for the other family an address of the same interface, so one session on a
/// dual-stack link carries both families with usable next hops. A session between
/// link-local addresses (unnumbered) is on the link of `local`'s scope, and its link-local
/// address is the one to give.
pub fn local_addresses(local: SocketAddr, peer: IpAddr) -> LocalAddresses {
    let mut out = LocalAddresses::default();
    let scoped_interface = match local {
        SocketAddr::V6(a) if is_link_local(a.ip()) && a.scope_id() != 0 => {
            interface_name(a.scope_id())
        }
        _ => None,
    };
    let local = local.ip();
    match local {
        IpAddr::V4(a) => out.v4 = Some(a),
        IpAddr::V6(a) if !is_link_local(&a) => out.v6 = Some(a),
        IpAddr::V6(a) => {
            if scoped_interface.is_some() {
                out.link_local = Some(a);
            }
        }
    }
    let addrs = interface_addresses();
    let found = match &scoped_interface {
        // Link-local addresses may repeat across interfaces: the scope says which.
        Some(name) => Some((name.clone(), None)),
        None => addrs
            .iter()
            .find_map(|(name, addr, mask)| (*addr == local).then(|| (name.clone(), Some(*mask)))),
    };
    let Some((ifname, mask)) = found else {
        return out;
    };
    let on_link = mask.is_none_or(|mask| same_subnet(local, peer, mask));
    for (name, addr, _) in &addrs {
        if *name != ifname {
            continue;
        }
        match addr {
            IpAddr::V4(a) if out.v4.is_none() => out.v4 = Some(*a),
            IpAddr::V6(a) if is_link_local(a) && on_link && out.link_local.is_none() => {
                out.link_local = Some(*a);
            }
            IpAddr::V6(a) if !is_link_local(a) && out.v6.is_none() => out.v6 = Some(*a),
            _ => {}
        }
    }
    out
}

/// The index of interface `name`, 0 when there is none.
pub fn if_index(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `c` is a NUL-terminated string valid for the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// The name of interface `index`.
pub fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE octets if_indextoname may write.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The Ethernet address of interface `name`, when it has one.
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for octet in &mut mac {
        *octet = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Every address of this network namespace with its interface name and netmask.
fn interface_addresses() -> Vec<(String, IpAddr, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let ip = |sa: *const libc::sockaddr| -> Option<IpAddr> {
        // SAFETY: non-null sockaddrs from getifaddrs are valid for their family's size.
        unsafe {
            if sa.is_null() {
                return None;
            }
            match i32::from((*sa).sa_family) {
                libc::AF_INET => {
                    let sin = &*sa.cast::<libc::sockaddr_in>();
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))))
                }
                libc::AF_INET6 => {
                    let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        }
    };
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned, which stays valid until freed.
        let ifa = unsafe { &*cur };
        if let (Some(addr), Some(mask)) = (ip(ifa.ifa_addr), ip(ifa.ifa_netmask)) {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            out.push((name, addr, mask));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_keys_are_checked_and_set() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        set_md5_key(&socket, "192.0.2.2".parse().unwrap(), b"s3cret").unwrap();
        let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).unwrap();
        set_md5_key(&socket, "2001:db8::2".parse().unwrap(), b"s3cret").unwrap();
        assert!(set_md5_key(&socket, "2001:db8::2".parse().unwrap(), &[0; 81]).is_err());
    }

    #[tokio::test]
    async fn connect_binds_the_source_and_sets_the_ttl() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        // TCP MD5 needs a keyed peer: the router tests prove it, md5_keys_are_checked_and_set
        // the setsockopt.
        let stream = connect(ConnectParams {
            peer,
            source: Some("127.0.0.2".parse().unwrap()),
            ttl: 1,
            md5_key: None,
        })
        .await
        .unwrap();
        assert_eq!(
            stream.local_addr().unwrap().ip(),
            "127.0.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(socket2::SockRef::from(&stream).ttl_v4().unwrap(), 1);
        assert!(stream.nodelay().unwrap());
        let (accepted, from) = listener.accept().await.unwrap();
        assert_eq!(from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        drop(accepted);

        let stream = connect(ConnectParams {
            peer,
            source: None,
            ttl: 255,
            md5_key: None,
        })
        .await
        .unwrap();
        assert_eq!(socket2::SockRef::from(&stream).ttl_v4().unwrap(), 255);
    }

    #[test]
    fn addresses_of_the_loopback_interface() {
        // 127.0.0.1 is on lo, which has ::1 too (where IPv6 is on) and no link-local.
        let a = local_addresses(
            "127.0.0.1:179".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        assert_eq!(a.v4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(a.link_local, None);
        // An address not here still answers for itself.
        let a = local_addresses(
            "[2001:db8::dead]:179".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        assert_eq!(a.v6, Some("2001:db8::dead".parse().unwrap()));
        assert_eq!((a.v4, a.link_local), (None, None));
        assert_eq!(if_index("lo"), 1);
        assert_eq!(interface_name(1).as_deref(), Some("lo"));
        assert_eq!(if_index("no-such-if"), 0);
        assert_eq!(interface_mac("lo"), Some([0; 6]));
    }
}
