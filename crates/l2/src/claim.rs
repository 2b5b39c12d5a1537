//! Claims on the wire: a frame from another station saying that it holds an address this
//! interface owns, and the rate-limited re-announcement that answers a conflicting one.
//!
//! A claim is any of:
//! - an ARP request or reply whose sender protocol address is owned (a gratuitous ARP, an ARP
//!   reply, or a request from a host using the address as its own): every cache that reads it
//!   learns the sender's hardware address for the address;
//! - a valid Neighbor Advertisement (RFC 4861 §7.1.2), solicited or not, whose target is owned:
//!   caches learn its Target Link-Layer Address option (or, without one, the frame's source).
//!
//! from a MAC other than the interface's own. Whether a claim is a conflict (the claimant is
//! not another herald node) is the responder's decision; this module is pure.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::frame::Frame;
use crate::validate::validate_neighbor_advertisement;
use crate::wire::{EthernetAddress, NdiscRepr};

/// An address owned on `interface` that the station `mac` claims on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim {
    pub interface: String,
    pub address: IpAddr,
    pub mac: EthernetAddress,
}

/// The owned address `frame` claims for another station, and that station's MAC; `None` when
/// the frame claims nothing owned, or comes from `our_mac`.
pub fn claimed(
    frame: &Frame<'_>,
    our_mac: EthernetAddress,
    owns: impl Fn(IpAddr) -> bool,
) -> Option<(IpAddr, EthernetAddress)> {
    if frame.ethernet().src_addr == our_mac {
        return None;
    }
    let (address, mac) = match frame {
        Frame::Arp { arp, .. } => {
            if arp.sender_protocol_addr.is_unspecified() {
                // An RFC 5227 probe claims nothing (yet); it is answered as a question.
                return None;
            }
            (
                IpAddr::V4(arp.sender_protocol_addr),
                arp.sender_hardware_addr,
            )
        }
        Frame::NeighborAdvertisement(nd) => {
            let NdiscRepr::NeighborAdvertisement {
                target_addr,
                target_link_layer_addr,
                ..
            } = validate_neighbor_advertisement(nd).ok()?
            else {
                return None;
            };
            let mac = target_link_layer_addr.unwrap_or(nd.ethernet.src_addr);
            (IpAddr::V6(target_addr), mac)
        }
        Frame::NeighborSolicitation(_) | Frame::Other { .. } => return None,
    };
    (mac != our_mac && mac.is_unicast() && owns(address)).then_some((address, mac))
}

/// The least time between two re-announcements of one address on one interface.
pub const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// When to re-announce addresses whose claims were conflicts: the first re-announcement at
/// once, then at most one per address per [`REANNOUNCE_INTERVAL`] (a claim within the interval
/// is answered when it ends), so a claim is always answered within the interval and a
/// flood of claims costs one announcement per second. Pure: the caller says what time it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConflictDefense {
    /// When each address was last re-announced.
    last: BTreeMap<IpAddr, Instant>,
    /// Re-announcements due, by address.
    due: BTreeMap<IpAddr, Instant>,
}

impl ConflictDefense {
    /// A conflicting claim for `address` at `now`: when its re-announcement is due.
    pub fn on_conflict(&mut self, address: IpAddr, now: Instant) -> Instant {
        if let Some(&due) = self.due.get(&address) {
            return due;
        }
        let due = match self.last.get(&address) {
            Some(&last) => (last + REANNOUNCE_INTERVAL).max(now),
            None => now,
        };
        self.due.insert(address, due);
        due
    }

    /// Whether a re-announcement of `address` is already due.
    pub fn is_pending(&self, address: &IpAddr) -> bool {
        self.due.contains_key(address)
    }

    /// The next re-announcement due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// The addresses to re-announce at `now`, each recorded as re-announced.
    pub fn take_due(&mut self, now: Instant) -> Vec<IpAddr> {
        let due: Vec<IpAddr> = self
            .due
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&address, _)| address)
            .collect();
        for address in &due {
            self.due.remove(address);
            self.last.insert(*address, now);
        }
        // Forget what no longer limits anything, so the map does not grow.
        self.last
            .retain(|_, &mut at| now.saturating_duration_since(at) < REANNOUNCE_INTERVAL);
        due
    }

    /// Forgets `address` (no longer owned).
    pub fn remove(&mut self, address: &IpAddr) {
        self.due.remove(address);
        self.last.remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_conflict_is_answered_at_once_then_one_per_second() {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let b: IpAddr = "2001:db8::10".parse().unwrap();
        let t0 = Instant::now();
        let mut defense = ConflictDefense::default();
        assert_eq!(defense.on_conflict(a, t0), t0);
        assert_eq!(defense.take_due(t0), vec![a]);
        // A flood of claims within the second: one more re-announcement, when it ends.
        for i in 1..100 {
            assert_eq!(defense.on_conflict(a, t0 + i * MS), t0 + 1000 * MS);
        }
        assert!(defense.take_due(t0 + 999 * MS).is_empty());
        // Another address is not held back by the first.
        assert_eq!(defense.on_conflict(b, t0 + 500 * MS), t0 + 500 * MS);
        assert_eq!(defense.take_due(t0 + 500 * MS), vec![b]);
        assert_eq!(defense.next_due(), Some(t0 + 1000 * MS));
        assert_eq!(defense.take_due(t0 + 1000 * MS), vec![a]);
        assert_eq!(defense.next_due(), None);
        // Quiet for longer than the interval: at once again.
        let later = t0 + 5000 * MS;
        assert_eq!(defense.on_conflict(a, later), later);
    }
}
