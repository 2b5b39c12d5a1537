//! Per-key election over Kubernetes Leases: for every key, at most one member acts on it, and
//! the API traffic of a steady cluster grows with the number of members, not of keys.
//!
//! Keys are opaque strings (herald uses one per Layer 2 service address); labels and
//! annotations for a key's Lease come from the caller. This crate knows nothing of IP
//! addresses, Services or MAC addresses. What it owns: the Leases of one election in one
//! namespace, the rules for who holds a key, and the requests that carry them out. What it must
//! not touch: anything else in the API, and the wire.
//!
//! # The Leases
//!
//! - A **member Lease** per member (`<election>-member-<identity>`), renewed every
//!   `renew_interval` (1 s) with `leaseDurationSeconds` = `lease_duration` (3 s), carrying the
//!   caller's annotations (herald: the node's MAC addresses). Released (no holder) when the
//!   member shuts down.
//! - A **candidacy Lease** per member, listing the keys it can hold now and its preference for
//!   each; written only when that list changes (at most every 250 ms).
//! - A **key Lease** per key (`<election>-<key>`), naming its holder; written only when the key
//!   changes hands.
//!
//! Every member watches all of them through one watch (label `herald.io/election`). A member
//! that holds nothing and whose candidacy does not change makes no request but its renewal.
//!
//! # The rules
//!
//! - A member is **alive** while its member Lease names it and the observer cannot show, in
//!   the server's own order, that it went a lease duration without changing it. The proof is
//!   one of the observer's own renewals, started at least `leaseDurationSeconds` (on the
//!   observer's monotonic clock) after the observer last saw the other's Lease change, and
//!   delivered back by the observer's watch with no change of that Lease before it. A watch
//!   delivers in the order the server applied the writes, so a watch running late (a burst of
//!   a thousand claims, a loaded node) delays the proof but never fakes it; clock offsets
//!   between nodes do not matter either (`renewTime` is written for people and never read).
//!   When another member's time is up on the observer's clock, the observer renews at once
//!   rather than at its next interval, so a failover waits for one round trip, not for the
//!   renewal timer.
//! - A key is **free** when its Lease does not exist, names no holder, or names a member that
//!   is not alive. The free key's candidates are the alive members whose candidacy lists it,
//!   ordered by preference, then by a rendezvous hash of member and key (so keys spread evenly,
//!   and a member's departure moves only its own keys). The first candidate claims it; each
//!   next one steps in one `fallback_step` per rank later if those before it have not (one
//!   lease duration per rank for a key nobody has held yet: nothing is lost by waiting, and
//!   placement stays even when a member is slow to claim).
//!   A key nobody has held yet waits `settle` first, so that every member's candidacy for it is
//!   known; a member just started waits `startup_grace` from the moment it first follows the
//!   API before claiming a key that was already free then, so that members started together
//!   share the first placement however long each took to start. A key freed while it watched
//!   (released, or its holder expired) is claimed per rank at once.
//! - **Sticky**: a member never takes a key from an alive holder, whatever its preference or
//!   rank. Keys move only when their holder goes away or gives them up.
//! - Every write is conditional on the resource version the writer saw (a create fails if the
//!   Lease exists). Losing such a race is normal and only means another member was first.
//! - A member **acts** on a key while the last version of its Lease it saw names it, it is
//!   eligible for it, and it has not stepped back after a claim on the wire (below). It stops
//!   acting before it writes a release, and at shutdown before it releases its member Lease.
//! - A member judges others (expiry, claims) only while its **own view is healthy**: its
//!   watch is synced, a renewal succeeded within one lease duration, and the watch has not kept
//!   one of its renewals from it for longer than that. When its view comes back, every other
//!   member gets a full lease duration from then: nothing moves because of an outage of the
//!   API server itself (*fail static*: holders keep acting, nobody claims).
//! - **Fencing on the wire** ([`Elector::claim_seen`]): when the caller sees another member
//!   announce a key this member acts on, this member stops acting on it at once if its own
//!   view is unhealthy (the other must have taken the key through the API while this member
//!   was cut off); if its view is healthy it reads the key's Lease, stops if it names another
//!   member or the read fails, and otherwise asks the caller to defend the key
//!   ([`Event::Defend`]) against what must be a stale claimant.
//!
//! # Why two members never both act on a key, and what bounds it when they do
//!
//! The API server applies conditional writes one at a time, so at any moment a key's Lease
//! names at most one holder, and two members cannot both take a key from the same version.
//! Two members act on a key at once only if one, X, acts on a version the other, Y, has
//! already replaced. Y replaces X's version only when X released the key (X stopped acting
//! first) or when X's member Lease has not changed for a lease duration in Y's view.
//!
//! **Assumption**: the API server applies a running member's renewals no more than
//! `lease_duration - renew_interval` (2 s by default) later than they are sent (they go out
//! every `renew_interval`, ahead of every other write of the member). Under it, nobody can see
//! a lease duration of a running member's silence in the server's order, so nobody takes its
//! keys, and no two members act on a key. How late a watch delivers does not enter: it delays
//! judgements, never makes them. The health rule keeps a member whose own watch lags by more
//! than a lease duration from judging anyone until it catches up.
//!
//! **When the assumption fails** (a member cut off from the API server while its LAN stays
//! up, its renewals held up beyond the bound), X may act on a key Y has taken. Y announces the key
//! as soon as its claim is written (a gratuitous ARP / unsolicited NA from Y's MAC, which X
//! knows from Y's member Lease); X stops on receipt, after at most `verify_timeout` (500 ms)
//! when its own view still looks healthy. The window is therefore the time for Y's first
//! announcement to reach X plus at most `verify_timeout`; if every announcement of Y's burst is
//! lost, the holder's periodic refresh bounds it. Only a partition of the LAN itself keeps both
//! acting, each for the clients on its own side.
//!
//! Timers are monotonic and local; nothing compares clocks across nodes.

pub mod core;
mod elector;
mod hash;
pub mod lease;
pub mod names;

pub use core::{Candidacy, KeyStatus, Timing, Transition};
pub use elector::{Config, Elector, Error, Event, MemberStatus, Members, Stats, Status};
