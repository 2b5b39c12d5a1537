//! Membership of solicited-node multicast groups at the IPv6 layer, so the kernel sends MLD
//! reports for them (and answers queries): switches that snoop MLD forward a Neighbor
//! Solicitation only to the ports that reported its group. Programming the NIC's MAC filter
//! ([`crate::socket::PacketSocket::join_multicast`]) lets the frame in once it arrives; this
//! makes it arrive.
//!
//! Memberships are held by plain IPv6 datagram sockets (`socket2`), reference-counted per
//! group: two owned addresses can share a solicited-node group, and it is left only when both
//! are gone. A socket holds a bounded number of memberships (its option memory,
//! `net.core.optmem_max`), so more sockets are opened as needed. Closing them (on drop) leaves
//! every group, and the kernel reports that too.

use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;

use socket2::{Domain, Protocol, Socket, Type};

/// The solicited-node groups joined on one interface.
#[derive(Debug)]
pub struct GroupMemberships {
    ifindex: u32,
    sockets: Vec<Socket>,
    /// Each group joined: how many callers asked for it, and which socket holds it.
    groups: HashMap<Ipv6Addr, (usize, usize)>,
}

impl GroupMemberships {
    /// No group joined yet on interface `ifindex`; sockets are opened on the first join.
    pub fn new(ifindex: u32) -> GroupMemberships {
        GroupMemberships {
            ifindex,
            sockets: Vec::new(),
            groups: HashMap::new(),
        }
    }

    fn open() -> io::Result<Socket> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        // Nothing is ever read from it; it only holds memberships.
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Joins `group` on the interface, or counts one more caller if it is joined already.
    pub fn join(&mut self, group: Ipv6Addr) -> io::Result<()> {
        if let Some((count, _)) = self.groups.get_mut(&group) {
            *count += 1;
            return Ok(());
        }
        if self.sockets.is_empty() {
            self.sockets.push(Self::open()?);
        }
        let last = self.sockets.len() - 1;
        let held_by = match self.sockets[last].join_multicast_v6(&group, self.ifindex) {
            Ok(()) => last,
            // This socket's option memory is full: another socket.
            Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                let socket = Self::open()?;
                socket.join_multicast_v6(&group, self.ifindex)?;
                self.sockets.push(socket);
                last + 1
            }
            Err(err) => return Err(err),
        };
        self.groups.insert(group, (1, held_by));
        Ok(())
    }

    /// Undoes one [`join`](Self::join); the last one leaves the group. Leaving a group never
    /// joined does nothing.
    pub fn leave(&mut self, group: Ipv6Addr) -> io::Result<()> {
        match self.groups.get_mut(&group) {
            None => Ok(()),
            Some((count, _)) if *count > 1 => {
                *count -= 1;
                Ok(())
            }
            Some(&mut (_, held_by)) => {
                self.groups.remove(&group);
                match self.sockets.get(held_by) {
                    Some(socket) => socket.leave_multicast_v6(&group, self.ifindex),
                    None => Ok(()),
                }
            }
        }
    }

    /// The groups joined, with how many callers asked for each.
    pub fn groups(&self) -> HashMap<Ipv6Addr, usize> {
        self.groups.iter().map(|(&g, &(n, _))| (g, n)).collect()
    }
}
