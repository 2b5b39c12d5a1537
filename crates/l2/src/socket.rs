//! The packet socket a responder reads questions from and sends answers on: one AF_PACKET
//! `SOCK_RAW` socket bound to one interface, with [`SOCKET_FILTER`] attached so only ARP and
//! neighbor discovery frames of the interface's own (untagged) LAN reach user space, blind to the frames it sends itself, and driven
//! by tokio through [`AsyncFd`].
//!
//! Frames are read and sent one at a time or, for the responder, in batches: one `recvmmsg`
//! takes whatever is queued (up to [`BATCH`] frames) into a reused [`RecvBatch`], and one
//! `sendmmsg` sends the replies to it.
//!
//! It also programs the interface's multicast filter: an IPv6 address is only solicited at its
//! solicited-node group (33:33:ff:xx:xx:xx), which a NIC drops unless someone asked for it.
//! Memberships belong to the socket, so they go away with it.
//!
//! Owns the system calls only; what to read or send is the responder's business.

use std::collections::HashMap;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Mutex;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::bpf::{SOCKET_FILTER, SockFilter};
use crate::wire::EthernetAddress;

// Constants and struct layouts are libc's.
use libc::{PACKET_OTHERHOST, PACKET_OUTGOING};

/// A filter program as `SO_ATTACH_FILTER` takes it; [`SockFilter`] has the kernel's layout of
/// `struct sock_filter`, as `libc::sock_filter` does.
fn sock_fprog(program: &[SockFilter]) -> io::Result<libc::sock_fprog> {
    const _: () =
        assert!(std::mem::size_of::<SockFilter>() == std::mem::size_of::<libc::sock_filter>());
    let len = libc::c_ushort::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    Ok(libc::sock_fprog {
        len,
        // The kernel only reads the program.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    })
}

/// Most frames one [`PacketSocket::recv_batch`] reads, and one system call sends in
/// [`PacketSocket::send_batch`].
pub const BATCH: usize = 64;

/// Room for each frame read in a batch; longer frames are cut (no question is that long).
const SLOT: usize = 2048;

/// Frames read by one `recvmmsg`, in buffers kept between reads so that reading neither
/// allocates nor sets up `recvmmsg`'s headers anew.
pub struct RecvBatch {
    /// A leaked `Box<RecvState>`, freed on drop. Held as a raw pointer because its headers
    /// point into it: every access goes through this pointer, so none of them invalidates the
    /// pointers the headers hold.
    state: NonNull<RecvState>,
    /// Length of each frame read, `None` for one this host sent.
    lens: [Option<usize>; BATCH],
    /// Messages the last read returned, own frames included.
    read: usize,
    /// Of those, frames addressed to another station (PACKET_OTHERHOST: the interface is
    /// promiscuous), left out of [`frames`](Self::frames).
    other_host: usize,
}

/// The buffers and the `recvmmsg` headers that describe them.
struct RecvState {
    slots: [[u8; SLOT]; BATCH],
    from: [libc::sockaddr_ll; BATCH],
    iov: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

// SAFETY: `RecvBatch` owns its state alone; the pointers inside only point into it.
unsafe impl Send for RecvBatch {}
// SAFETY: through a shared `RecvBatch` the state is only read.
unsafe impl Sync for RecvBatch {}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        // SAFETY: all-zero bytes are valid buffers, socket addresses, iovecs and mmsghdrs
        // (null pointers, zero lengths).
        let state = unsafe { Box::<RecvState>::new_zeroed().assume_init() };
        let state = NonNull::from(Box::leak(state));
        let raw = state.as_ptr();
        for i in 0..BATCH {
            // SAFETY: `raw` points at the live state, which nothing else references yet.
            unsafe {
                let iov = &raw mut (*raw).iov[i];
                (*iov).iov_base = (&raw mut (*raw).slots[i]).cast();
                (*iov).iov_len = SLOT;
                let msg = &raw mut (*raw).msgs[i].msg_hdr;
                (*msg).msg_iov = iov;
                (*msg).msg_iovlen = 1;
                (*msg).msg_name = (&raw mut (*raw).from[i]).cast();
                (*msg).msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            }
        }
        RecvBatch {
            state,
            lens: [None; BATCH],
            read: 0,
            other_host: 0,
        }
    }

    /// The frames of the last read, in the order they arrived.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        // SAFETY: the state is live while `self` is, and written only through `&mut self`.
        let slots = unsafe { &(*self.state.as_ptr()).slots };
        self.lens[..self.read]
            .iter()
            .zip(slots.iter())
            .filter_map(|(len, slot)| len.map(|len| &slot[..len]))
    }

    /// How many messages the last read took off the queue, this host's own frames included.
    pub fn messages(&self) -> usize {
        self.read
    }

    /// How many frames of the last read were addressed to another station's MAC (they reach
    /// a packet socket when the interface is promiscuous) and are left out of
    /// [`frames`](Self::frames): a question sent to another host is not ours to answer.
    pub fn other_host(&self) -> usize {
        self.other_host
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl Drop for RecvBatch {
    fn drop(&mut self) {
        // SAFETY: leaked from a Box in `new`, and freed only here.
        drop(unsafe { Box::from_raw(self.state.as_ptr()) });
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
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

        let program = sock_fprog(&SOCKET_FILTER).map_err(SocketError::AttachFilter)?;
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &program,
        )
        .map_err(SocketError::AttachFilter)?;
        // Linux 4.20+. On older kernels our own frames are recognised by their packet type in
        // `recv` instead, so a failure here is not fatal.
        let _ = setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &(1 as libc::c_int),
        );

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
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

        // Readable only: with write interest too, every frame sent would wake the reactor once
        // more when the kernel frees it (an EPOLLOUT edge), for nothing. Sends wait for room
        // through `wait_writable` in the rare case there is none.
        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open, and only reads
        // the same descriptor through it, until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|err| SocketError::Register(err.into_parts().1))?;
        Ok(PacketSocket {
            fd,
            ifindex,
            memberships: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the socket's filter with `program`, atomically: every frame is checked by
    /// either the old program or the new one.
    pub fn set_filter(&self, program: &[SockFilter]) -> io::Result<()> {
        let program = sock_fprog(program)?;
        setsockopt(
            self.fd.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &program,
        )
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets the receive buffer to `bytes` (beyond `net.core.rmem_max` when the process has
    /// CAP_NET_ADMIN), so a burst of questions is queued rather than dropped.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let fd = self.fd.get_ref().as_raw_fd();
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size)
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
            match recv_frame(self.raw_fd(), buf) {
                Ok(Some(received)) => return Ok(Some(received)),
                Ok(None) => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Waits for frames from the wire and reads as many as are queued, up to [`BATCH`], with one
    /// system call. Frames this host sent, and frames for other stations (counted in
    /// [`RecvBatch::other_host`]), are left out, so a read may hold none.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_frames(fd.as_raw_fd(), batch)) {
                Ok(Ok(())) => {
                    if batch.messages() <= 1 {
                        // A lone frame, the usual case: the queue is taken to be empty, and
                        // the read that would only say EAGAIN is skipped. A frame arriving
                        // from now on raises a new readiness event, so none is missed.
                        guard.clear_ready();
                    }
                    if batch.frames().next().is_some() || batch.other_host() > 0 {
                        return Ok(());
                    }
                }
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads what is queued into `batch` without waiting, as [`recv_batch`](Self::recv_batch)
    /// does; false when nothing is (or the socket is not known to be readable).
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<bool> {
        match self
            .fd
            .try_io(Interest::READABLE, |fd| recv_frames(fd.as_raw_fd(), batch))
        {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Sends complete Ethernet frames (no FCS) out of the interface, [`BATCH`] to a system
    /// call, and tells `sent` how each went, in order.
    pub async fn send_batch<F: AsRef<[u8]>>(
        &self,
        frames: &[F],
        mut sent: impl FnMut(usize, io::Result<()>),
    ) {
        let mut next = 0;
        let mut link_down_retried = false;
        while next < frames.len() {
            let end = frames.len().min(next + BATCH);
            let result = match send_frames(self.raw_fd(), self.ifindex, &frames[next..end]) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait_writable().await {
                        // Room again: the same frames once more.
                        Ok(()) => continue,
                        Err(err) => Err(err),
                    }
                }
                result => result,
            };
            match result {
                Ok(done) if done.count > 0 => {
                    for i in 0..done.count {
                        let result = if done.cut_short & (1 << i) == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::new(
                                io::ErrorKind::WriteZero,
                                "the frame was cut short",
                            ))
                        };
                        sent(next + i, result);
                    }
                    next += done.count;
                    link_down_retried = false;
                }
                Ok(_) => {
                    sent(next, Err(io::ErrorKind::WriteZero.into()));
                    next += 1;
                }
                // As in `send`: a link-down is reported once, maybe to this call, and the
                // link may be up again by now.
                Err(err) if err.raw_os_error() == Some(libc::ENETDOWN) && !link_down_retried => {
                    link_down_retried = true;
                }
                Err(err) => {
                    sent(next, Err(err));
                    next += 1;
                    link_down_retried = false;
                }
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
            match send_frame(self.raw_fd(), self.ifindex, frame) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_writable().await?;
                }
                result => return result,
            }
        }
    }

    fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }

    /// Waits until the send buffer has room (it is full only while the interface's queue is
    /// stalled). Write interest is registered for the wait alone, on a duplicate descriptor of
    /// the same socket, since the socket's own registration is read-only.
    async fn wait_writable(&self) -> io::Result<()> {
        let duplicate = self.fd.get_ref().try_clone()?;
        // SAFETY: the duplicate is a fresh descriptor owned by the AsyncFd alone, which only
        // waits on it and closes it when dropped.
        let waiter = unsafe { AsyncFd::register_with_interest(duplicate, Interest::WRITABLE) }
            .map_err(|err| err.into_parts().1)?;
        let _ready = waiter.writable().await?;
        Ok(())
    }

    /// Asks the interface to pass frames sent to multicast `mac`. Counted: each call needs one
    /// [`leave_multicast`](Self::leave_multicast) before the interface stops passing them.
    pub fn join_multicast(&self, mac: EthernetAddress) -> io::Result<()> {
        let mut memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = memberships.get_mut(&mac) {
            *count += 1;
            return Ok(());
        }
        self.membership(libc::PACKET_ADD_MEMBERSHIP, mac)?;
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
                self.membership(libc::PACKET_DROP_MEMBERSHIP, mac)
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
        let mreq = libc::packet_mreq {
            mr_ifindex: self.ifindex as libc::c_int,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: address,
        };
        setsockopt(
            self.fd.get_ref().as_raw_fd(),
            libc::SOL_PACKET,
            option,
            &mreq,
        )
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

/// Where a frame goes: out of interface `ifindex`, to its destination MAC.
fn link_address(ifindex: u32, frame: &[u8]) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut to: libc::sockaddr_ll = unsafe { mem::zeroed() };
    to.sll_family = libc::AF_PACKET as libc::c_ushort;
    to.sll_ifindex = ifindex as libc::c_int;
    to.sll_halen = 6;
    if let Some(dst) = frame.get(..6) {
        to.sll_addr[..6].copy_from_slice(dst);
    }
    to
}

fn send_frame(fd: RawFd, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    let to = link_address(ifindex, frame);
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

/// How far one `sendmmsg` got: the first `count` frames went out; bit `i` of `cut_short` is set
/// when frame `i` went out incomplete.
struct SentFrames {
    count: usize,
    cut_short: u64,
}

const _: () = assert!(BATCH <= 64, "SentFrames::cut_short has a bit per frame");

/// One `recvmmsg` without waiting into `batch`; EAGAIN when nothing is queued.
fn recv_frames(fd: RawFd, batch: &mut RecvBatch) -> io::Result<()> {
    let raw = batch.state.as_ptr();
    // The kernel overwrote the address lengths of the messages it filled last time.
    for i in 0..batch.read {
        // SAFETY: the state is live, and `&mut batch` makes this the only access.
        unsafe {
            (*raw).msgs[i].msg_hdr.msg_namelen =
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        }
    }
    batch.read = 0;
    batch.other_host = 0;
    // SAFETY: every header points at its own slot and sockaddr_ll in the live state, of the
    // sizes given; nothing else accesses the state during the call.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            (&raw mut (*raw).msgs).cast(),
            BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).min(BATCH);
    // SAFETY: as above; the kernel is done writing.
    let state = unsafe { &*raw };
    for (i, (msg, from)) in state.msgs[..n].iter().zip(&state.from).enumerate() {
        batch.lens[i] = match from.sll_pkttype {
            PACKET_OUTGOING => None,
            PACKET_OTHERHOST => {
                batch.other_host += 1;
                None
            }
            _ => Some((msg.msg_len as usize).min(SLOT)),
        };
    }
    batch.read = n;
    Ok(())
}

/// One `sendmmsg` of up to [`BATCH`] frames, each addressed as [`send_frame`] does. Only the
/// headers of the frames given are set up.
fn send_frames<F: AsRef<[u8]>>(fd: RawFd, ifindex: u32, frames: &[F]) -> io::Result<SentFrames> {
    let frames = &frames[..frames.len().min(BATCH)];
    let mut to = [MaybeUninit::<libc::sockaddr_ll>::uninit(); BATCH];
    let mut iov = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
    let mut msgs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    let headers = to.iter_mut().zip(&mut iov).zip(&mut msgs);
    for (frame, ((to, iov), msg)) in frames.iter().zip(headers) {
        let frame = frame.as_ref();
        let to = to.write(link_address(ifindex, frame));
        let iov = iov.write(libc::iovec {
            // The kernel only reads from it on send.
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        });
        // SAFETY: all-zero is a valid mmsghdr (no control data, no flags).
        let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
        header.msg_hdr.msg_iov = iov;
        header.msg_hdr.msg_iovlen = 1;
        header.msg_hdr.msg_name = (to as *mut libc::sockaddr_ll).cast();
        header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.write(header);
    }
    // SAFETY: the first `frames.len()` headers are initialised and point at live frames and
    // sockaddr_lls of the sizes given, which outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr().cast::<libc::mmsghdr>(),
            frames.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let count = (n as usize).min(frames.len());
    let mut cut_short = 0u64;
    for (i, (msg, frame)) in msgs.iter().zip(frames).take(count).enumerate() {
        // SAFETY: initialised above, for every frame given.
        let sent = unsafe { msg.assume_init_ref() }.msg_len as usize;
        if sent != frame.as_ref().len() {
            cut_short |= 1 << i;
        }
    }
    Ok(SentFrames { count, cut_short })
}
