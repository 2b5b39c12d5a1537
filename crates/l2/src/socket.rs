//! The packet socket a responder reads questions from and sends answers on: one AF_PACKET
//! `SOCK_RAW` socket bound to one interface, with [`SOCKET_FILTER`] attached so only ARP and
//! neighbor discovery frames of the interface's own (untagged) LAN reach user space, blind to the frames it sends itself, and driven
//! by tokio through [`AsyncFd`].
//!
//! It also programs the interface's multicast filter: an IPv6 address is only solicited at its
//! solicited-node group (33:33:ff:xx:xx:xx), which a NIC drops unless someone asked for it.
//! Memberships belong to the socket, so they go away with it.
//!
//! Owns the system calls only; what to read or send is the responder's business.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::bpf::{SOCKET_FILTER, SockFilter};
use crate::wire::EthernetAddress;

// From <linux/if_packet.h> and <asm-generic/socket.h>; defined here because the libc crate
// moves them between modules across versions.
const SOL_PACKET: libc::c_int = 263;
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// `struct packet_mreq`.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// Why a packet socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot open a packet socket (needs CAP_NET_RAW): {0}")]
    Open(#[source] io::Error),
    #[error("cannot attach the neighbor discovery filter: {0}")]
    AttachFilter(#[source] io::Error),
    #[error("cannot bind the packet socket to interface index {ifindex}: {source}")]
    Bind {
        ifindex: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot register the packet socket with the tokio reactor: {0}")]
    Register(#[source] io::Error),
}

/// An AF_PACKET socket bound to one interface; see the module documentation.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
    /// Multicast MACs joined, with how many callers asked for each: two owned addresses can
    /// share a solicited-node group, and the group must stay until both are gone.
    memberships: Mutex<HashMap<EthernetAddress, usize>>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex`. Must be called inside a tokio runtime.
    ///
    /// The socket is created with protocol 0, so it receives nothing until it is bound; the
    /// filter is attached before the bind, so no unfiltered frame is ever queued on it.
    pub fn open(ifindex: u32) -> Result<PacketSocket, SocketError> {
        // SAFETY: plain system call; the result is checked.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })
        .map_err(SocketError::Open)?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let program = SockFprog {
            len: SOCKET_FILTER.len() as libc::c_ushort,
            filter: SOCKET_FILTER.as_ptr(),
        };
        setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, SO_ATTACH_FILTER, &program)
            .map_err(SocketError::AttachFilter)?;
        // Linux 4.20+. On older kernels our own frames are recognised by their packet type in
        // `recv` instead, so a failure here is not fatal.
        let _ = setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &(1 as libc::c_int),
        );

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|source| SocketError::Bind { ifindex, source })?;

        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open, and only reads
        // the same descriptor through it, until the AsyncFd is dropped.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
                .map_err(|err| SocketError::Register(err.into_parts().1))?;
        Ok(PacketSocket {
            fd,
            ifindex,
            memberships: Mutex::new(HashMap::new()),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets the receive buffer to `bytes` (beyond `net.core.rmem_max` when the process has
    /// CAP_NET_ADMIN), so a burst of questions is queued rather than dropped.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        const SO_RCVBUFFORCE: libc::c_int = 33;
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let fd = self.fd.get_ref().as_raw_fd();
        setsockopt(fd, libc::SOL_SOCKET, SO_RCVBUFFORCE, &size)
            .or_else(|_| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size))
    }

    /// Waits for the next frame from the wire and copies it into `buf`, returning its length
    /// (cut to `buf`'s). Frames this host sent are skipped.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_frame(fd.as_raw_fd(), buf)) {
                Ok(Ok(Some(received))) => return Ok(received),
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one frame if one is queued, without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match recv_frame(self.fd.get_ref().as_raw_fd(), buf) {
                Ok(Some(received)) => return Ok(Some(received)),
                Ok(None) => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends one complete Ethernet frame (no FCS) out of the interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.send_once(frame).await {
            // The kernel reports a link-down on the socket once, to whichever call comes
            // next; if that is this send, the link may well be up again by now.
            Err(err) if err.raw_os_error() == Some(libc::ENETDOWN) => self.send_once(frame).await,
            result => result,
        }
    }

    async fn send_once(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| send_frame(fd.as_raw_fd(), self.ifindex, frame)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Asks the interface to pass frames sent to multicast `mac`. Counted: each call needs one
    /// [`leave_multicast`](Self::leave_multicast) before the interface stops passing them.
    pub fn join_multicast(&self, mac: EthernetAddress) -> io::Result<()> {
        let mut memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = memberships.get_mut(&mac) {
            *count += 1;
            return Ok(());
        }
        self.membership(PACKET_ADD_MEMBERSHIP, mac)?;
        memberships.insert(mac, 1);
        Ok(())
    }

    /// Undoes one [`join_multicast`](Self::join_multicast); the last one removes `mac` from the
    /// interface's filter. Leaving a group never joined does nothing.
    pub fn leave_multicast(&self, mac: EthernetAddress) -> io::Result<()> {
        let mut memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        match memberships.get_mut(&mac) {
            None => Ok(()),
            Some(count) if *count > 1 => {
                *count -= 1;
                Ok(())
            }
            Some(_) => {
                memberships.remove(&mac);
                self.membership(PACKET_DROP_MEMBERSHIP, mac)
            }
        }
    }

    /// The multicast MACs currently joined, with their counts.
    pub fn memberships(&self) -> HashMap<EthernetAddress, usize> {
        self.memberships
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn membership(&self, option: libc::c_int, mac: EthernetAddress) -> io::Result<()> {
        let mut address = [0u8; 8];
        address[..6].copy_from_slice(&mac.octets());
        let mreq = PacketMreq {
            mr_ifindex: self.ifindex as libc::c_int,
            mr_type: PACKET_MR_MULTICAST,
            mr_alen: 6,
            mr_address: address,
        };
        setsockopt(self.fd.get_ref().as_raw_fd(), SOL_PACKET, option, &mreq)
    }
}

/// One `recvfrom`; `None` for a frame this host sent (on kernels without
/// PACKET_IGNORE_OUTGOING).
fn recv_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for writes of the sizes passed.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut from_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if from.sll_pkttype == PACKET_OUTGOING {
        return Ok(None);
    }
    Ok(Some(n as usize))
}

fn send_frame(fd: RawFd, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut to: libc::sockaddr_ll = unsafe { mem::zeroed() };
    to.sll_family = libc::AF_PACKET as libc::c_ushort;
    to.sll_ifindex = ifindex as libc::c_int;
    to.sll_halen = 6;
    if let Some(dst) = frame.get(..6) {
        to.sll_addr[..6].copy_from_slice(dst);
    }
    // SAFETY: `frame` and `to` are valid for reads of the sizes passed.
    let n = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != frame.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {n} of {} bytes", frame.len()),
        ));
    }
    Ok(())
}
