//! The election as a pure state machine: Leases observed and write outcomes go in; writes to
//! make, keys to act on and keys to defend come out. No I/O and no clock: every call says what
//! time it is, so each rule is tested without sockets or sleeps. [`crate::Elector`] is the thin
//! task that does the I/O.
//!
//! The rules, in brief (the crate documentation argues why they are safe):
//! - This member renews its member Lease every `renew_interval` and publishes the keys it stands
//!   for in its candidacy Lease whenever that set changes.
//! - Another member is alive while its member Lease names it and this member's watch has not
//!   delivered back one of its own renewals, started a `leaseDurationSeconds` after it last saw
//!   the other's Lease change, with no change of the other's before it (the server's order
//!   proves the silence, so a late watch cannot fake it; local monotonic time only, so clock
//!   offsets between nodes do not matter).
//! - A key is free when its Lease does not exist, names no holder, or names a member that is
//!   not alive. A free key is claimed by the first of its candidates (alive members whose
//!   candidacy lists it), ordered by preference, then by a rendezvous hash of member and key;
//!   the others step in one `fallback_step` per rank later if the first does not.
//! - Nothing is judged while this member's own view of the API is unhealthy: no renewal has
//!   succeeded, or the watch has not delivered its own latest renewal, within the lease
//!   duration. When the view comes back, every member's expiry starts again from then.
//! - A holder acts on a key only while its view says it holds the key, it is eligible, and no
//!   other member has claimed the key on the wire (see [`Core::claim_seen`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::hash;

/// The election's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a member is alive after its last renewal was seen (whole seconds on the wire:
    /// `leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How often a member renews its member Lease.
    pub renew_interval: Duration,
    /// After a member first follows the API (synced and renewed), how long it waits before
    /// claiming free keys, so that members started together all take part in the first
    /// placement however long each took to start.
    pub startup_grace: Duration,
    /// How long a key nobody has held yet waits before being claimed, so that every member's
    /// candidacy for it is known first.
    pub settle: Duration,
    /// How much later each rank steps in when the candidates ranked before it do not claim.
    pub fallback_step: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(3),
            renew_interval: Duration::from_secs(1),
            startup_grace: Duration::from_secs(2),
            settle: Duration::from_secs(1),
            fallback_step: Duration::from_secs(1),
        }
    }
}

/// What this member wants for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidacy {
    /// Why this member cannot hold the key now; `None` when it can.
    pub ineligible: Option<String>,
    /// Higher is preferred when a free key is placed.
    pub preference: u32,
    /// Labels and annotations for the key's Lease, e.g. naming the address and the Service.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Which Lease of the election an observation is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseId {
    Member(String),
    Candidacy(String),
    Key(String),
}

/// One Lease of the election as the API server holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Member {
        identity: String,
        /// `Some(identity)` while the member runs; `None` once it released itself.
        holder: Option<String>,
        duration: Duration,
        resource_version: String,
        annotations: BTreeMap<String, String>,
    },
    Candidacy {
        identity: String,
        keys: BTreeMap<String, u32>,
        resource_version: String,
    },
    Key {
        key: String,
        holder: Option<String>,
        /// Who released it last, when it names no holder.
        released_by: Option<String>,
        resource_version: String,
        transitions: i32,
    },
}

impl Observed {
    pub fn id(&self) -> LeaseId {
        match self {
            Observed::Member { identity, .. } => LeaseId::Member(identity.clone()),
            Observed::Candidacy { identity, .. } => LeaseId::Candidacy(identity.clone()),
            Observed::Key { key, .. } => LeaseId::Key(key.clone()),
        }
    }

    fn resource_version(&self) -> &str {
        match self {
            Observed::Member {
                resource_version, ..
            }
            | Observed::Candidacy {
                resource_version, ..
            }
            | Observed::Key {
                resource_version, ..
            } => resource_version,
        }
    }
}

/// Names one write in flight, so its outcome finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// A request to make to the API server. Every write is conditional on the resource version
/// given (`None`: create, which fails if the Lease exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Renew (or create, or release with `holder: None`) this member's member Lease.
    Member {
        resource_version: Option<String>,
        holder: Option<String>,
        duration: Duration,
        annotations: BTreeMap<String, String>,
    },
    /// Publish the keys this member stands for, with their preference.
    Candidacy {
        resource_version: Option<String>,
        keys: BTreeMap<String, u32>,
    },
    /// Take the key.
    Claim {
        key: String,
        resource_version: Option<String>,
        transitions: i32,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
    /// Give the key up: its Lease names no holder and says who released it.
    Release {
        key: String,
        resource_version: String,
        transitions: i32,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
    /// Delete the Lease of a key nobody stands for any more.
    Delete {
        key: String,
        resource_version: String,
    },
    /// Read the key's Lease now, past the watch (after another member claimed the key on the
    /// wire).
    Verify { key: String },
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the Lease as the server now holds it.
    Done(Observed),
    /// The Lease was deleted.
    Deleted,
    /// The resource version no longer matched (or, for a create, the Lease existed): another
    /// writer was first. Normal in an election.
    Conflict,
    NotFound,
    Failed(String),
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Write(OpId, Write),
    /// Another member claimed this key on the wire, but the API says this member holds it:
    /// announce it again so clients come back.
    Defend(String),
}

/// Why this member started or stopped acting on a key: the `reason` of
/// `herald_lease_transitions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transition {
    /// Took a key nobody had held.
    New,
    /// Took a key its holder had released.
    Handoff,
    /// Took a key whose holder was no longer alive.
    Failover,
    /// Found the key already its own (after a restart).
    Adopted,
    /// Gave the key up: no longer wanted or eligible.
    Released,
    /// The API shows another member holding it.
    Lost,
    /// Another member claimed it on the wire while this member could not reach the API.
    Yielded,
    /// This member is shutting down.
    Shutdown,
}

impl Transition {
    pub const ALL: [Transition; 8] = [
        Transition::New,
        Transition::Handoff,
        Transition::Failover,
        Transition::Adopted,
        Transition::Released,
        Transition::Lost,
        Transition::Yielded,
        Transition::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::New => "new",
            Transition::Handoff => "handoff",
            Transition::Failover => "failover",
            Transition::Adopted => "adopted",
            Transition::Released => "released",
            Transition::Lost => "lost",
            Transition::Yielded => "yielded",
            Transition::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone, Debug)]
struct Member {
    holder: Option<String>,
    duration: Duration,
    resource_version: String,
    observed_at: Instant,
    annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct KeyLease {
    holder: Option<String>,
    released_by: Option<String>,
    resource_version: String,
    transitions: i32,
    observed_at: Instant,
}

/// This member's own view of one key.
#[derive(Clone, Debug, Default)]
struct Local {
    /// Since when the key has been free (in this member's view), while it is.
    free_since: Option<Instant>,
    /// Stopped acting because another member claimed the key on the wire.
    yielded: bool,
    /// A write or read about this key is in flight.
    pending: Option<OpId>,
    /// Do not claim again before this (after losing a race).
    retry_after: Option<Instant>,
}

/// This member's own Leases.
#[derive(Clone, Debug, Default)]
struct Own {
    member_version: Option<String>,
    member_in_flight: Option<OpId>,
    /// Last renewal attempt, and last success.
    renew_attempt: Option<Instant>,
    renewed_at: Option<Instant>,
    /// Since when a successful renewal has waited for the watch to deliver it (`None`: the
    /// watch has delivered the latest).
    unseen_since: Option<Instant>,
    /// The version a renewal wrote and when that renewal was started, until the watch
    /// delivers it.
    echo_pending: Option<(String, Instant)>,
    /// When the latest renewal the watch has delivered back was started: every change the
    /// server applied before that renewal has been seen (the watch delivers in the server's
    /// order), so a member seen last more than a lease duration before it has not renewed
    /// for a lease duration, however late the watch runs.
    echoed: Option<Instant>,
    annotations_written: Option<BTreeMap<String, String>>,
    candidacy_version: Option<String>,
    candidacy_in_flight: Option<OpId>,
    candidacy_published: Option<BTreeMap<String, u32>>,
    candidacy_written_at: Option<Instant>,
    released: bool,
}

/// What an in-flight operation is about.
#[derive(Clone, Debug)]
enum Op {
    Member,
    /// The release of this member at shutdown.
    MemberRelease,
    Candidacy(BTreeMap<String, u32>),
    Claim(String, Transition),
    Release(String),
    Delete(String),
    Verify(String),
}

/// Writes to the same candidacy Lease no closer together than this.
const CANDIDACY_MIN_INTERVAL: Duration = Duration::from_millis(250);

/// The election, seen from one member.
#[derive(Debug)]
pub struct Core {
    identity: String,
    timing: Timing,
    /// When this member first followed the API: the start of its startup grace.
    first_healthy: Option<Instant>,
    /// The watch has listed everything at least once, and is not relisting now.
    synced: bool,
    /// Leases seen since the current relist began; the rest are gone when it ends.
    relist: Option<BTreeSet<LeaseId>>,
    was_healthy: bool,
    members: BTreeMap<String, Member>,
    /// Holders whose member Lease does not exist: alive for one lease duration from when that
    /// was first seen (a Lease deleted by hand is recreated by its member's next renewal).
    missing: BTreeMap<String, Instant>,
    candidacies: BTreeMap<String, BTreeMap<String, u32>>,
    keys: BTreeMap<String, KeyLease>,
    /// After a write, what the watch delivers about that Lease is older until it delivers the
    /// version written.
    awaiting: BTreeMap<LeaseId, (String, Instant)>,
    /// The version of each Lease the watch delivered last (it may deliver a write's result
    /// before the write's answer arrives).
    watched: BTreeMap<LeaseId, String>,
    member_annotations: BTreeMap<String, String>,
    own: Own,
    wanted: BTreeMap<String, Candidacy>,
    local: BTreeMap<String, Local>,
    acting: BTreeSet<String>,
    ops: BTreeMap<OpId, Op>,
    next_op: u64,
    shutting_down: bool,
    /// Actions decided outside [`Core::poll`], handed out by the next poll.
    queued: Vec<Action>,
    defend: Vec<String>,
    transitions: BTreeMap<Transition, u64>,
    /// Keys that changed hands since the last [`Core::take_changes`], with the reason.
    changes: Vec<(String, Transition)>,
    /// When stale key Leases are looked for next.
    gc_at: Option<Instant>,
}

impl Core {
    pub fn new(identity: impl Into<String>, timing: Timing) -> Core {
        Core {
            identity: identity.into(),
            timing,
            first_healthy: None,
            synced: false,
            relist: None,
            was_healthy: false,
            members: BTreeMap::new(),
            missing: BTreeMap::new(),
            candidacies: BTreeMap::new(),
            keys: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            watched: BTreeMap::new(),
            member_annotations: BTreeMap::new(),
            own: Own::default(),
            wanted: BTreeMap::new(),
            local: BTreeMap::new(),
            acting: BTreeSet::new(),
            ops: BTreeMap::new(),
            next_op: 0,
            shutting_down: false,
            queued: Vec::new(),
            defend: Vec::new(),
            transitions: BTreeMap::new(),
            changes: Vec::new(),
            gc_at: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// The watch delivered `lease` (added, changed, or listed).
    pub fn observe(&mut self, lease: Observed, now: Instant) {
        self.record(lease, now, true);
    }

    /// Records what the server holds, from the watch or from a write's or read's answer.
    fn record(&mut self, lease: Observed, now: Instant, from_watch: bool) {
        let id = lease.id();
        if let Some(seen) = &mut self.relist {
            seen.insert(id.clone());
        }
        if from_watch {
            self.watched
                .insert(id.clone(), lease.resource_version().to_owned());
        }
        if from_watch && let Some((version, since)) = self.awaiting.get(&id) {
            let given_up = now.saturating_duration_since(*since) > self.timing.lease_duration;
            if version != lease.resource_version() && !given_up {
                // Older than what this member wrote: wait for the watch to catch up.
                return;
            }
            self.awaiting.remove(&id);
        }
        match lease {
            Observed::Member {
                identity,
                holder,
                duration,
                resource_version,
                annotations,
            } => {
                if identity == self.identity {
                    if self.own.member_in_flight.is_none() {
                        self.own.member_version = Some(resource_version.clone());
                    }
                    if from_watch {
                        self.own.unseen_since = None;
                        if let Some((version, started)) = &self.own.echo_pending
                            && *version == resource_version
                        {
                            self.own.echoed = Some(*started);
                            self.own.echo_pending = None;
                        }
                    }
                }
                let changed = self
                    .members
                    .get(&identity)
                    .is_none_or(|m| m.resource_version != resource_version);
                let observed_at = match self.members.get(&identity) {
                    Some(m) if !changed => m.observed_at,
                    _ => now,
                };
                self.missing.remove(&identity);
                self.members.insert(
                    identity,
                    Member {
                        holder,
                        duration,
                        resource_version,
                        observed_at,
                        annotations,
                    },
                );
            }
            Observed::Candidacy {
                identity,
                keys,
                resource_version,
            } => {
                if identity == self.identity && self.own.candidacy_in_flight.is_none() {
                    self.own.candidacy_version = Some(resource_version);
                    self.own.candidacy_published = Some(keys.clone());
                }
                self.candidacies.insert(identity, keys);
            }
            Observed::Key {
                key,
                holder,
                released_by,
                resource_version,
                transitions,
            } => {
                let changed = self
                    .keys
                    .get(&key)
                    .is_none_or(|k| k.resource_version != resource_version);
                if changed && let Some(local) = self.local.get_mut(&key) {
                    // A fresh look at the key: whatever made this member step back is settled by it.
                    local.yielded = false;
                    local.retry_after = None;
                }
                let observed_at = match self.keys.get(&key) {
                    Some(k) if !changed => k.observed_at,
                    _ => now,
                };
                self.keys.insert(
                    key,
                    KeyLease {
                        holder,
                        released_by,
                        resource_version,
                        transitions,
                        observed_at,
                    },
                );
            }
        }
    }

    /// The watch saw `id` deleted.
    pub fn observe_deleted(&mut self, id: LeaseId) {
        self.awaiting.remove(&id);
        self.watched.remove(&id);
        match id {
            LeaseId::Member(identity) => {
                if identity == self.identity {
                    self.own.member_version = None;
                }
                self.members.remove(&identity);
            }
            LeaseId::Candidacy(identity) => {
                if identity == self.identity {
                    self.own.candidacy_version = None;
                    self.own.candidacy_published = None;
                }
                self.candidacies.remove(&identity);
            }
            LeaseId::Key(key) => {
                self.keys.remove(&key);
                if let Some(local) = self.local.get_mut(&key) {
                    local.yielded = false;
                    local.retry_after = None;
                }
            }
        }
    }

    /// The watch starts listing everything again (first start, or it could not resume).
    pub fn relist_started(&mut self) {
        self.relist = Some(BTreeSet::new());
        self.synced = false;
        // A list is the server's current state: nothing it shows is older than a write.
        self.awaiting.clear();
    }

    /// The relist is complete: what it did not show is gone.
    pub fn relist_done(&mut self) {
        let seen = self.relist.take().unwrap_or_default();
        let gone: Vec<LeaseId> = self
            .members
            .keys()
            .map(|i| LeaseId::Member(i.clone()))
            .chain(
                self.candidacies
                    .keys()
                    .map(|i| LeaseId::Candidacy(i.clone())),
            )
            .chain(self.keys.keys().map(|k| LeaseId::Key(k.clone())))
            .filter(|id| !seen.contains(id))
            .collect();
        for id in gone {
            self.observe_deleted(id);
        }
        // A fresh look at everything settles whatever made this member step back.
        for local in self.local.values_mut() {
            local.yielded = false;
        }
        self.synced = true;
    }

    /// What this member stands for, as a whole (level-based). Keys must be valid
    /// ([`crate::names::valid_key`]); the caller checks.
    pub fn set_candidacy(&mut self, wanted: BTreeMap<String, Candidacy>) {
        self.wanted = wanted;
    }

    /// Annotations for this member's member Lease (e.g. its MAC addresses), written with the
    /// next renewal, at once when they change.
    pub fn set_member_annotations(&mut self, annotations: BTreeMap<String, String>) {
        self.member_annotations = annotations;
    }

    /// Another member (`claimant`) was seen claiming `key` on the wire. While this member can
    /// reach the API it reads the key's Lease to learn who is right; when it cannot, it stops
    /// acting on the key at once, since the claimant must have taken it through the API.
    pub fn claim_seen(&mut self, key: &str, claimant: &str, now: Instant) {
        if claimant == self.identity || !self.acting.contains(key) {
            return;
        }
        let healthy = self.healthy(now);
        let local = self.local.entry(key.to_owned()).or_default();
        if !healthy {
            local.yielded = true;
            self.lose(key, Transition::Yielded);
        } else if local.pending.is_none() {
            let op = self.op(Op::Verify(key.to_owned()));
            self.local.entry(key.to_owned()).or_default().pending = Some(op);
            self.queued.push(Action::Write(
                op,
                Write::Verify {
                    key: key.to_owned(),
                },
            ));
        }
    }

    /// Stop acting on every key and release this member, so others take over at once.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        for key in std::mem::take(&mut self.acting) {
            self.changes.push((key, Transition::Shutdown));
            *self.transitions.entry(Transition::Shutdown).or_default() += 1;
        }
    }

    /// Whether the release written at shutdown is done (or failed: nothing more to do).
    pub fn shutdown_complete(&self) -> bool {
        self.shutting_down && self.own.released && self.own.member_in_flight.is_none()
    }

    /// A write or read ended.
    pub fn outcome(&mut self, op: OpId, outcome: Outcome, now: Instant) {
        let Some(what) = self.ops.remove(&op) else {
            return;
        };
        match what {
            Op::Member => {
                self.own.member_in_flight = None;
                match outcome {
                    Outcome::Done(lease) => {
                        if !self.shutting_down {
                            self.own.renewed_at = Some(now);
                            let started = self.own.renew_attempt.unwrap_or(now);
                            if self.watched_already(&lease) {
                                self.own.echoed = Some(started);
                            } else {
                                self.own.unseen_since.get_or_insert(now);
                                self.own.echo_pending =
                                    Some((lease.resource_version().to_owned(), started));
                            }
                        }
                        self.wrote(lease, now);
                    }
                    Outcome::NotFound => self.own.member_version = None,
                    Outcome::Conflict | Outcome::Deleted | Outcome::Failed(_) => {}
                }
            }
            Op::MemberRelease => {
                self.own.member_in_flight = None;
                // One attempt: a member that cannot reach the API expires instead.
                self.own.released = true;
                if let Outcome::Done(lease) = outcome {
                    self.wrote(lease, now);
                }
            }
            Op::Candidacy(keys) => {
                self.own.candidacy_in_flight = None;
                match outcome {
                    Outcome::Done(lease) => {
                        self.own.candidacy_published = Some(keys);
                        self.wrote(lease, now);
                    }
                    Outcome::NotFound => self.own.candidacy_version = None,
                    Outcome::Conflict | Outcome::Deleted | Outcome::Failed(_) => {}
                }
            }
            Op::Claim(key, reason) => {
                self.settle_pending(&key);
                match outcome {
                    Outcome::Done(lease) => {
                        self.wrote(lease, now);
                        if let Some(local) = self.local.get_mut(&key) {
                            local.free_since = None;
                        }
                        self.gain(&key, reason);
                    }
                    Outcome::Conflict
                    | Outcome::NotFound
                    | Outcome::Deleted
                    | Outcome::Failed(_) => {
                        // Lost the race (or the server is away): look again after the watch
                        // has had time to show who won.
                        let retry = now + self.timing.renew_interval;
                        self.local.entry(key).or_default().retry_after = Some(retry);
                    }
                }
            }
            Op::Release(key) => {
                self.settle_pending(&key);
                if let Outcome::Done(lease) = outcome {
                    self.wrote(lease, now);
                }
            }
            Op::Delete(key) => {
                self.settle_pending(&key);
                if outcome == Outcome::Deleted {
                    self.observe_deleted(LeaseId::Key(key));
                }
            }
            Op::Verify(key) => {
                self.settle_pending(&key);
                match outcome {
                    Outcome::Done(lease) => {
                        let mine = matches!(&lease, Observed::Key { holder: Some(h), .. } if *h == self.identity);
                        self.record(lease, now, false);
                        if mine && self.acting.contains(&key) {
                            self.defend.push(key);
                        }
                    }
                    Outcome::NotFound | Outcome::Deleted => self.observe_deleted(LeaseId::Key(key)),
                    Outcome::Conflict | Outcome::Failed(_) => {
                        // The claimant may well be right: step back until the API is heard.
                        self.lose(&key, Transition::Yielded);
                        self.local.entry(key).or_default().yielded = true;
                    }
                }
            }
        }
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// Brings everything up to date at `now`: which keys to act on, and what to write.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = std::mem::take(&mut self.queued);
        let healthy = self.healthy(now);
        if healthy && !self.was_healthy {
            // Back from a time this member could not follow the API: whatever it missed,
            // every member gets a full lease duration from now to show it is alive.
            for m in self.members.values_mut() {
                m.observed_at = now;
            }
            for since in self.missing.values_mut() {
                *since = now;
            }
            for local in self.local.values_mut() {
                local.free_since = None;
                local.yielded = false;
            }
        }
        self.was_healthy = healthy;
        if healthy && self.first_healthy.is_none() {
            self.first_healthy = Some(now);
        }
        self.note_missing_holders(now);
        self.write_own(now, &mut actions);
        self.evaluate_keys(now, healthy, &mut actions);
        for key in self.defend.drain(..) {
            actions.push(Action::Defend(key));
        }
        actions
    }

    /// When [`Core::poll`] next has something to do by the clock alone.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        // Only what lies ahead: whatever is due now, `poll` has just done.
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| {
            if t > now {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.synced && !self.shutting_down {
            if let Some(t) = self.own.renew_attempt {
                at(t + self.timing.renew_interval);
            }
            if self.own.candidacy_in_flight.is_none()
                && self.own.candidacy_published.as_ref() != Some(&self.published_candidacy())
            {
                at(self
                    .own
                    .candidacy_written_at
                    .map_or(now, |t| t + CANDIDACY_MIN_INTERVAL));
            }
        }
        // Health lapses, members expire, claims fall due.
        for t in [self.own.renewed_at, self.own.unseen_since]
            .into_iter()
            .flatten()
        {
            at(t + self.timing.lease_duration);
        }
        for m in self.members.values() {
            at(m.observed_at + m.duration);
        }
        for since in self.missing.values() {
            at(*since + self.timing.lease_duration);
        }
        for (key, local) in &self.local {
            if let Some(due) = self.claim_due(key, local, now) {
                at(due);
            }
            if let Some(t) = local.retry_after {
                at(t);
            }
        }
        for k in self.keys.values() {
            at(k.observed_at + 2 * self.timing.lease_duration);
        }
        next
    }

    /// The keys this member holds and should act on now.
    pub fn acting(&self) -> &BTreeSet<String> {
        &self.acting
    }

    /// Keys that started or stopped being acted on since the last call, with why.
    pub fn take_changes(&mut self) -> Vec<(String, Transition)> {
        std::mem::take(&mut self.changes)
    }

    pub fn transitions(&self) -> &BTreeMap<Transition, u64> {
        &self.transitions
    }

    /// Whether this member's view of the API can be trusted now: the watch is synced, a
    /// renewal succeeded within one lease duration, and the watch has not kept a renewal from
    /// this member for longer than that.
    pub fn healthy(&self, now: Instant) -> bool {
        let within = |t: Instant| now.saturating_duration_since(t) <= self.timing.lease_duration;
        self.synced
            && !self.shutting_down
            && self.own.renewed_at.is_some_and(within)
            && self.own.unseen_since.is_none_or(within)
    }

    /// Whether the watch has stopped delivering although the API answers: this member's own
    /// renewal has gone undelivered for a lease duration. The watch should be started afresh.
    pub fn watch_stale(&self, now: Instant) -> bool {
        self.own
            .unseen_since
            .is_some_and(|t| now.saturating_duration_since(t) > self.timing.lease_duration)
    }

    /// Every live member's annotations (this one's included), by identity.
    pub fn live_members(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut live: BTreeMap<String, BTreeMap<String, String>> = self
            .members
            .iter()
            .filter(|(id, _)| self.alive(id))
            .map(|(id, m)| (id.clone(), m.annotations.clone()))
            .collect();
        if !self.shutting_down {
            live.insert(self.identity.clone(), self.member_annotations.clone());
        }
        live
    }

    /// Every member ever seen, with its annotations, alive or not: a member cut off from the
    /// API is still known by what it last said.
    pub fn known_members(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.annotations.clone()))
            .collect()
    }

    /// How one key stands, for `/status`.
    pub fn key_status(&self, key: &str) -> KeyStatus {
        let lease = self.keys.get(key);
        let holder = lease.and_then(|l| l.holder.clone());
        let candidates = self.ranked(key);
        let wanted = self.wanted.get(key);
        KeyStatus {
            key: key.to_owned(),
            holder_alive: holder.as_deref().is_some_and(|h| self.alive(h)),
            holder,
            acting: self.acting.contains(key),
            ineligible: match wanted {
                None => Some("this member does not stand for the key".to_owned()),
                Some(c) => c.ineligible.clone(),
            },
            yielded: self.local.get(key).is_some_and(|l| l.yielded),
            candidates,
        }
    }

    /// Every key with a Lease or wanted here.
    pub fn keys(&self) -> BTreeSet<String> {
        self.keys
            .keys()
            .chain(self.wanted.keys())
            .cloned()
            .collect()
    }

    // ---- internals -------------------------------------------------------------------------

    fn op(&mut self, what: Op) -> OpId {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.ops.insert(id, what);
        id
    }

    fn settle_pending(&mut self, key: &str) {
        if let Some(local) = self.local.get_mut(key) {
            local.pending = None;
        }
    }

    /// A write returned `lease`: record it, and ignore older versions the watch may still
    /// deliver.
    fn wrote(&mut self, lease: Observed, now: Instant) {
        let id = lease.id();
        let version = lease.resource_version().to_owned();
        if let Observed::Member { identity, .. } | Observed::Candidacy { identity, .. } = &lease
            && *identity == self.identity
        {
            match &lease {
                Observed::Member { .. } => self.own.member_version = Some(version.clone()),
                _ => self.own.candidacy_version = Some(version.clone()),
            }
        }
        let seen = self.watched_already(&lease);
        self.record(lease, now, false);
        if !seen {
            self.awaiting.insert(id, (version, now));
        }
    }

    /// Whether the watch has delivered this very version already.
    fn watched_already(&self, lease: &Observed) -> bool {
        self.watched.get(&lease.id()).map(String::as_str) == Some(lease.resource_version())
    }

    fn count(&mut self, key: &str, t: Transition) {
        *self.transitions.entry(t).or_default() += 1;
        self.changes.push((key.to_owned(), t));
    }

    fn gain(&mut self, key: &str, reason: Transition) {
        if self.acting.insert(key.to_owned()) {
            self.count(key, reason);
        }
    }

    fn lose(&mut self, key: &str, reason: Transition) {
        if self.acting.remove(key) {
            self.count(key, reason);
        }
    }

    /// Whether `identity` is alive in this member's view.
    fn alive(&self, identity: &str) -> bool {
        if identity == self.identity {
            return !self.shutting_down;
        }
        match self.members.get(identity) {
            Some(m) => {
                m.holder.as_deref() == Some(identity)
                    && !self.silent_until(m.observed_at + m.duration)
            }
            None => self
                .missing
                .get(identity)
                .is_some_and(|since| !self.silent_until(*since + self.timing.lease_duration)),
        }
    }

    /// Whether the server has shown, in its own order, that a member last seen changing a lease
    /// duration before `deadline` made no change until then: the watch has delivered back a
    /// renewal of this member's that was started at `deadline` or later, and nothing from that
    /// member before it. A watch running late only delays this, it never makes a live member
    /// look silent.
    fn silent_until(&self, deadline: Instant) -> bool {
        self.own.echoed.is_some_and(|started| started >= deadline)
    }

    /// Whether some member (or missing holder) has been silent for a lease duration on this
    /// member's clock without a renewal of this member's started since to prove it in the
    /// server's order: renew now rather than at the next interval, so a failover waits for one
    /// round trip, not for the renewal timer.
    fn proof_wanted(&self, now: Instant) -> bool {
        let started = self.own.renew_attempt;
        let unproven = |deadline: Instant| deadline <= now && started.is_none_or(|s| s < deadline);
        self.members
            .iter()
            .filter(|(id, m)| **id != self.identity && m.holder.as_deref() == Some(id.as_str()))
            .any(|(_, m)| unproven(m.observed_at + m.duration))
            || self
                .missing
                .values()
                .any(|since| unproven(*since + self.timing.lease_duration))
    }

    fn note_missing_holders(&mut self, now: Instant) {
        let holders: BTreeSet<&String> = self
            .keys
            .values()
            .filter_map(|k| k.holder.as_ref())
            .collect();
        self.missing.retain(|id, _| holders.contains(id));
        for h in holders {
            if *h != self.identity && !self.members.contains_key(h) && !self.missing.contains_key(h)
            {
                self.missing.insert(h.clone(), now);
            }
        }
    }

    /// What the candidacy Lease should say: the keys this member can hold now.
    fn published_candidacy(&self) -> BTreeMap<String, u32> {
        if self.shutting_down {
            return BTreeMap::new();
        }
        self.wanted
            .iter()
            .filter(|(_, c)| c.ineligible.is_none())
            .map(|(k, c)| (k.clone(), c.preference))
            .collect()
    }

    fn write_own(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.synced && !self.shutting_down {
            return;
        }
        if self.shutting_down {
            if !self.own.released && self.own.member_in_flight.is_none() {
                if self.own.renewed_at.is_none() && self.own.member_version.is_none() {
                    // Never joined: nothing to release.
                    self.own.released = true;
                    return;
                }
                let op = self.op(Op::MemberRelease);
                self.own.member_in_flight = Some(op);
                actions.push(Action::Write(
                    op,
                    Write::Member {
                        resource_version: self.own.member_version.clone(),
                        holder: None,
                        duration: self.timing.lease_duration,
                        annotations: self.member_annotations.clone(),
                    },
                ));
            }
            return;
        }
        let annotations_changed =
            self.own.annotations_written.as_ref() != Some(&self.member_annotations);
        let due = self
            .own
            .renew_attempt
            .is_none_or(|t| now >= t + self.timing.renew_interval)
            || self.proof_wanted(now);
        if self.own.member_in_flight.is_none() && (due || annotations_changed) {
            let op = self.op(Op::Member);
            self.own.member_in_flight = Some(op);
            self.own.renew_attempt = Some(now);
            self.own.annotations_written = Some(self.member_annotations.clone());
            actions.push(Action::Write(
                op,
                Write::Member {
                    resource_version: self.own.member_version.clone(),
                    holder: Some(self.identity.clone()),
                    duration: self.timing.lease_duration,
                    annotations: self.member_annotations.clone(),
                },
            ));
        }
        let candidacy = self.published_candidacy();
        let candidacy_due = self
            .own
            .candidacy_written_at
            .is_none_or(|t| now >= t + CANDIDACY_MIN_INTERVAL);
        if self.own.candidacy_in_flight.is_none()
            && candidacy_due
            && self.own.candidacy_published.as_ref() != Some(&candidacy)
        {
            let op = self.op(Op::Candidacy(candidacy.clone()));
            self.own.candidacy_in_flight = Some(op);
            self.own.candidacy_written_at = Some(now);
            actions.push(Action::Write(
                op,
                Write::Candidacy {
                    resource_version: self.own.candidacy_version.clone(),
                    keys: candidacy,
                },
            ));
        }
    }

    /// The alive candidates for `key`, best first: preference, then rendezvous hash. This
    /// member counts when it is eligible; others when their published candidacy lists the key
    /// and they did not just release it.
    fn ranked(&self, key: &str) -> Vec<String> {
        let released_by = self.keys.get(key).and_then(|k| {
            k.holder
                .is_none()
                .then_some(k.released_by.as_deref())
                .flatten()
        });
        let mut candidates: Vec<(u32, u64, &str)> = self
            .candidacies
            .iter()
            .filter(|(id, _)| **id != self.identity && Some(id.as_str()) != released_by)
            .filter(|(id, _)| self.alive(id))
            .filter_map(|(id, keys)| {
                keys.get(key)
                    .map(|&p| (p, hash::weight(id, key), id.as_str()))
            })
            .collect();
        if !self.shutting_down
            && let Some(c) = self.wanted.get(key)
            && c.ineligible.is_none()
        {
            candidates.push((
                c.preference,
                hash::weight(&self.identity, key),
                &self.identity,
            ));
        }
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        candidates
            .into_iter()
            .map(|(_, _, id)| id.to_owned())
            .collect()
    }

    /// Why `key` is free in this member's view, if it is.
    fn free(&self, key: &str) -> Option<Transition> {
        match self.keys.get(key) {
            None => Some(Transition::New),
            Some(k) => match &k.holder {
                None => Some(Transition::Handoff),
                Some(h) if *h == self.identity => None,
                Some(h) if !self.alive(h) => Some(Transition::Failover),
                Some(_) => None,
            },
        }
    }

    /// When this member may claim `key`, if it is a free key it stands for.
    fn claim_due(&self, key: &str, local: &Local, now: Instant) -> Option<Instant> {
        let since = local.free_since?;
        let new = !self.keys.contains_key(key);
        let start = self.first_healthy.unwrap_or(now);
        // The startup grace shares out the keys that were already free when this member began
        // to follow the API (members started together). A key freed while it watched (its
        // holder left or failed) is taken per rank at once: its address is unanswered
        // meanwhile, and a node restarted a moment ago (a rolling upgrade) is as good a
        // successor as any.
        let mut due = if since <= start {
            start + self.timing.startup_grace
        } else {
            since
        };
        if new {
            due = due.max(since + self.timing.settle);
        }
        let rank = self
            .ranked(key)
            .iter()
            .position(|id| *id == self.identity)?;
        // A key that was held moves as fast as it can: its address is unanswered meanwhile.
        // A new key lets each candidate before this one a whole lease duration to claim it, so
        // that a member slowed down (claiming hundreds of keys, a loaded node) still gets its
        // share of the first placement.
        let step = if new {
            self.timing.lease_duration
        } else {
            self.timing.fallback_step
        };
        due += step * rank as u32;
        if let Some(retry) = local.retry_after {
            due = due.max(retry);
        }
        Some(due)
    }

    fn evaluate_keys(&mut self, now: Instant, healthy: bool, actions: &mut Vec<Action>) {
        let mut keys: BTreeSet<String> = self.wanted.keys().cloned().collect();
        keys.extend(
            self.keys
                .iter()
                .filter(|(_, k)| k.holder.as_deref() == Some(self.identity.as_str()))
                .map(|(key, _)| key.clone()),
        );
        keys.extend(self.acting.iter().cloned());
        for key in keys {
            self.evaluate_key(&key, now, healthy, actions);
        }
        if healthy {
            self.collect_garbage(now, actions);
        }
        self.local
            .retain(|k, l| l.pending.is_some() || l.yielded || self.wanted.contains_key(k));
    }

    fn evaluate_key(&mut self, key: &str, now: Instant, healthy: bool, actions: &mut Vec<Action>) {
        let eligible =
            !self.shutting_down && self.wanted.get(key).is_some_and(|c| c.ineligible.is_none());
        let lease = self.keys.get(key).cloned();
        let mine = lease
            .as_ref()
            .is_some_and(|l| l.holder.as_deref() == Some(self.identity.as_str()));
        let local = self.local.entry(key.to_owned()).or_default().clone();

        if mine {
            if !eligible {
                self.lose(key, Transition::Released);
                if self.shutting_down || local.pending.is_some() {
                    return;
                }
                let Some(lease) = lease else { return };
                // Nobody else stands for it: the Lease goes; otherwise it is handed on.
                let anyone_else = self.candidacies.iter().any(|(id, keys)| {
                    *id != self.identity && keys.contains_key(key) && self.alive(id)
                });
                let (op, write) = if anyone_else || self.wanted.contains_key(key) {
                    let c = self.wanted.get(key).cloned().unwrap_or_default();
                    let op = self.op(Op::Release(key.to_owned()));
                    (
                        op,
                        Write::Release {
                            key: key.to_owned(),
                            resource_version: lease.resource_version,
                            transitions: lease.transitions,
                            labels: c.labels,
                            annotations: c.annotations,
                        },
                    )
                } else {
                    let op = self.op(Op::Delete(key.to_owned()));
                    (
                        op,
                        Write::Delete {
                            key: key.to_owned(),
                            resource_version: lease.resource_version,
                        },
                    )
                };
                self.local.entry(key.to_owned()).or_default().pending = Some(op);
                actions.push(Action::Write(op, write));
            } else if local.yielded {
                self.lose(key, Transition::Yielded);
            } else if !self.acting.contains(key) && local.pending.is_none() {
                // Already this member's: the holder restarted. (A claim the watch showed
                // before its write returned is counted when it returns.)
                self.gain(key, Transition::Adopted);
            }
            return;
        }

        if self.acting.contains(key) && local.pending.is_none() {
            match lease {
                // Deleted by hand while held: take it again at once, still answering.
                None if eligible && healthy => {
                    self.claim(key, None, 0, Transition::Adopted, actions);
                    return;
                }
                None if eligible => return,
                _ => {
                    let reason = if eligible {
                        Transition::Lost
                    } else {
                        Transition::Released
                    };
                    self.lose(key, reason);
                }
            }
        }
        if !eligible || !healthy || local.pending.is_some() {
            if let Some(l) = self.local.get_mut(key) {
                l.free_since = None;
            }
            return;
        }
        let Some(reason) = self.free(key) else {
            if let Some(l) = self.local.get_mut(key) {
                l.free_since = None;
            }
            return;
        };
        let local = self.local.entry(key.to_owned()).or_default();
        local.free_since.get_or_insert(now);
        let local = local.clone();
        let Some(due) = self.claim_due(key, &local, now) else {
            return;
        };
        if now >= due {
            let (version, transitions) = lease
                .map(|l| (Some(l.resource_version), l.transitions))
                .unwrap_or((None, 0));
            self.claim(key, version, transitions, reason, actions);
        }
    }

    fn claim(
        &mut self,
        key: &str,
        resource_version: Option<String>,
        transitions: i32,
        reason: Transition,
        actions: &mut Vec<Action>,
    ) {
        let c = self.wanted.get(key).cloned().unwrap_or_default();
        let op = self.op(Op::Claim(key.to_owned(), reason));
        self.local.entry(key.to_owned()).or_default().pending = Some(op);
        actions.push(Action::Write(
            op,
            Write::Claim {
                key: key.to_owned(),
                resource_version,
                transitions,
                labels: c.labels,
                annotations: c.annotations,
            },
        ));
    }

    /// Deletes Leases of keys no live member stands for, once they have stayed so for two
    /// lease durations; only the first live member by name does it, so it is done once.
    fn collect_garbage(&mut self, now: Instant, actions: &mut Vec<Action>) {
        // It reads every member's candidacy: not on every event.
        if self.gc_at.is_some_and(|t| now < t) {
            return;
        }
        self.gc_at = Some(now + self.timing.lease_duration);
        let live = self.live_members();
        if live.keys().next() != Some(&self.identity) {
            return;
        }
        let stood_for: BTreeSet<&String> = self
            .candidacies
            .iter()
            .filter(|(id, _)| live.contains_key(*id))
            .flat_map(|(_, keys)| keys.keys())
            .chain(self.wanted.keys())
            .collect();
        let stale: Vec<(String, String)> = self
            .keys
            .iter()
            .filter(|(key, _)| !stood_for.contains(key))
            .filter(|(_, k)| k.holder.as_ref().is_none_or(|h| !self.alive(h)))
            .filter(|(_, k)| {
                now.saturating_duration_since(k.observed_at) >= 2 * self.timing.lease_duration
            })
            .map(|(key, k)| (key.clone(), k.resource_version.clone()))
            .collect();
        for (key, resource_version) in stale {
            if self.local.get(&key).is_some_and(|l| l.pending.is_some()) {
                continue;
            }
            let op = self.op(Op::Delete(key.clone()));
            self.local.entry(key.clone()).or_default().pending = Some(op);
            actions.push(Action::Write(
                op,
                Write::Delete {
                    key,
                    resource_version,
                },
            ));
        }
    }
}

/// How one key stands, seen from this member.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    pub key: String,
    /// The member its Lease names.
    pub holder: Option<String>,
    pub holder_alive: bool,
    /// This member acts on it (answers for it).
    pub acting: bool,
    /// Why this member does not stand for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ineligible: Option<String>,
    /// This member stepped back after another claimed the key on the wire.
    pub yielded: bool,
    /// Live candidates in the order a free key would be placed.
    pub candidates: Vec<String>,
}

#[cfg(test)]
mod sim;

#[cfg(test)]
mod tests {
    use super::sim::{Sim, keys};
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn three(keys: &[String]) -> Sim {
        let mut sim = Sim::new();
        for n in ["node-a", "node-b", "node-c"] {
            sim.start(n, keys);
        }
        sim
    }

    fn settled(sim: &mut Sim, keys: &[String]) {
        let placed = sim.run_until(10 * S, |s| keys.iter().all(|k| s.actor(k).is_some()));
        assert!(placed.is_some(), "every key placed: {:?}", sim.actors());
    }

    #[test]
    fn members_started_together_share_keys_evenly_and_one_acts_on_each() {
        let keys = keys(300);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        sim.run_for(5 * S);
        for n in ["node-a", "node-b", "node-c"] {
            let held = sim.held_by(n).len();
            assert!((75..=126).contains(&held), "{n} holds {held} of 300");
        }
        for k in &keys {
            assert_eq!(sim.server.holder(k), sim.actor(k), "{k}");
        }
        assert!(sim.overlaps.is_empty(), "{:?}", &sim.overlaps[..1]);
    }

    #[test]
    fn a_member_started_later_takes_nothing_and_a_restart_adopts_its_own() {
        let keys = keys(30);
        let mut sim = Sim::new();
        sim.start("node-a", &keys);
        settled(&mut sim, &keys);
        sim.start("node-b", &keys);
        sim.run_for(10 * S);
        assert!(
            sim.held_by("node-b").is_empty(),
            "sticky: {:?}",
            sim.held_by("node-b")
        );
        // node-a restarts within its lease duration (kill -9 and back): its keys are its own.
        sim.start("node-a", &keys);
        let adopted = sim.run_until(5 * S, |s| s.held_by("node-a").len() == keys.len());
        assert!(adopted.is_some_and(|t| t < S), "{adopted:?}");
        assert!(sim.held_by("node-b").is_empty());
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn shutdown_hands_every_key_over_at_once() {
        let keys = keys(100);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let held: Vec<String> = sim.held_by("node-a").into_iter().collect();
        assert!(!held.is_empty());
        sim.node("node-a").core.shutdown();
        let took = sim
            .run_until(5 * S, |s| {
                held.iter()
                    .all(|k| s.actor(k).is_some_and(|a| a != "node-a"))
            })
            .expect("others take over");
        assert!(took <= 100 * MS, "handoff took {took:?}");
        // Spread over both others.
        let b = held
            .iter()
            .filter(|k| sim.actor(k).as_deref() == Some("node-b"))
            .count();
        assert!(b > 0 && b < held.len(), "{b} of {}", held.len());
        assert!(sim.node("node-a").core.shutdown_complete());
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn a_member_just_restarted_takes_over_a_key_handed_over_at_once() {
        let keys = keys(30);
        let mut sim = Sim::new();
        sim.start("node-a", &keys);
        settled(&mut sim, &keys);
        sim.start("node-b", &keys);
        // node-b follows the API, but its startup grace has not run out when node-a leaves.
        sim.run_for(S);
        sim.node("node-a").core.shutdown();
        let took = sim
            .run_until(5 * S, |s| s.held_by("node-b").len() == keys.len())
            .expect("node-b takes every key");
        assert!(
            took < Timing::default().startup_grace / 2,
            "handover took {took:?}"
        );
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn a_crashed_holder_is_replaced_after_its_lease_expires() {
        let keys = keys(50);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let held: Vec<String> = sim.held_by("node-c").into_iter().collect();
        sim.node("node-c").running = false;
        let took = sim
            .run_until(10 * S, |s| held.iter().all(|k| s.actor(k).is_some()))
            .expect("others take over");
        let d = Timing::default();
        assert!(
            took >= d.lease_duration - d.renew_interval && took <= d.lease_duration + 100 * MS,
            "{took:?}"
        );
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn an_api_outage_moves_nothing_during_or_after_it() {
        let keys = keys(60);
        let mut sim = three(&keys);
        sim.step = 50 * MS;
        settled(&mut sim, &keys);
        let before = sim.actors();
        sim.set_down(true);
        for _ in 0..120 {
            sim.run_for(S);
            assert_eq!(sim.actors(), before, "at {:?}", sim.elapsed());
        }
        sim.set_down(false);
        sim.run_for(10 * S);
        assert_eq!(sim.actors(), before);
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn a_member_cut_off_alone_loses_its_keys_and_steps_back_on_the_wire() {
        let keys = keys(30);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let held: Vec<String> = sim.held_by("node-a").into_iter().collect();
        sim.cut_off("node-a", true);
        // The others take over after the lease duration; node-a still acts (fail static).
        let took = sim
            .run_until(10 * S, |s| {
                held.iter()
                    .all(|k| matches!(s.server.holder(k).as_deref(), Some(h) if h != "node-a"))
            })
            .expect("others claim through the API");
        assert!(
            took <= Timing::default().lease_duration + 100 * MS,
            "{took:?}"
        );
        assert_eq!(
            sim.held_by("node-a").len(),
            held.len(),
            "still acting until it hears a claim"
        );
        // Each new holder's announcement reaches node-a: it steps back at once.
        for k in &held {
            let claimant = sim.server.holder(k).expect("a holder");
            let now = sim.now;
            sim.node("node-a").core.claim_seen(k, &claimant, now);
        }
        // At once when its view is stale; after a failed read (cut off) when it still looked
        // current.
        sim.run_for(50 * MS);
        assert!(sim.held_by("node-a").is_empty());
        for k in &held {
            assert!(sim.actor(k).is_some(), "{k}");
        }
        // Back on the API: node-a sees the new holders and stays a candidate.
        sim.cut_off("node-a", false);
        sim.run_for(5 * S);
        assert!(sim.held_by("node-a").is_empty());
        let t = sim.node("node-a").core.transitions();
        assert_eq!(t.get(&Transition::Yielded), Some(&(held.len() as u64)));
    }

    #[test]
    fn a_stale_claim_is_defended_while_the_api_says_the_key_is_ours() {
        let keys = keys(3);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let key = sim
            .held_by("node-a")
            .into_iter()
            .next()
            .expect("node-a holds a key");
        let now = sim.now;
        sim.node("node-a").core.claim_seen(&key, "node-b", now);
        sim.run_for(100 * MS);
        assert_eq!(sim.actor(&key).as_deref(), Some("node-a"));
        assert_eq!(sim.defended, vec![("node-a".to_owned(), key)]);
    }

    #[test]
    fn an_ineligible_holder_hands_over_at_once() {
        let keys = keys(20);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let key = sim
            .held_by("node-b")
            .into_iter()
            .next()
            .expect("node-b holds a key");
        let mut wanted: BTreeMap<String, Candidacy> = keys
            .iter()
            .map(|k| (k.clone(), Candidacy::default()))
            .collect();
        wanted.get_mut(&key).expect("key").ineligible = Some("interface down".into());
        sim.node("node-b").core.set_candidacy(wanted);
        let took = sim
            .run_until(5 * S, |s| s.actor(&key).is_some_and(|a| a != "node-b"))
            .expect("another takes it");
        assert!(took <= 100 * MS, "{took:?}");
        let t = sim.node("node-b").core.transitions();
        assert_eq!(t.get(&Transition::Released), Some(&1));
    }

    #[test]
    fn preference_places_free_keys_on_the_preferred_member() {
        let keys = keys(40);
        let mut sim = three(&keys);
        let preferred: BTreeMap<String, Candidacy> = keys
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    Candidacy {
                        preference: 50,
                        ..Candidacy::default()
                    },
                )
            })
            .collect();
        sim.node("node-c").core.set_candidacy(preferred);
        settled(&mut sim, &keys);
        assert_eq!(sim.held_by("node-c").len(), keys.len());
    }

    #[test]
    fn a_key_lease_deleted_by_hand_is_recreated_by_its_holder() {
        let keys = keys(5);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        let key = sim
            .held_by("node-a")
            .into_iter()
            .next()
            .expect("node-a holds a key");
        sim.delete_by_hand(LeaseId::Key(key.clone()));
        sim.run_for(3 * S);
        assert_eq!(sim.actor(&key).as_deref(), Some("node-a"));
        assert_eq!(sim.server.holder(&key).as_deref(), Some("node-a"));
        // A member Lease deleted by hand is recreated by the next renewal: nothing moves.
        let before = sim.actors();
        sim.delete_by_hand(LeaseId::Member("node-b".into()));
        sim.run_for(10 * S);
        assert_eq!(sim.actors(), before);
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn keys_nobody_stands_for_are_deleted_and_new_keys_settle_first() {
        let keys = keys(4);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        for n in ["node-a", "node-b", "node-c"] {
            sim.node(n).core.set_candidacy(BTreeMap::new());
        }
        let gone = sim.run_until(20 * S, |s| {
            keys.iter()
                .all(|k| !s.server.leases.contains_key(&LeaseId::Key(k.clone())))
        });
        assert!(
            gone.is_some(),
            "the Leases of keys nobody wants are deleted"
        );
        assert!(sim.actors().is_empty());
    }

    #[test]
    fn a_watch_falling_behind_moves_nothing() {
        // A burst of work (a thousand new keys at once) delays one member's watch by most of a
        // lease duration in an instant: the renewals it sees from the others are suddenly
        // further apart than the lease duration, yet the others never stopped renewing.
        let keys = keys(60);
        let mut sim = three(&keys);
        settled(&mut sim, &keys);
        sim.run_for(2 * S);
        let before = sim.actors();
        for lag in [2500 * MS, 2900 * MS, 1500 * MS, 2900 * MS, Duration::ZERO] {
            sim.node("node-b").watch_lag = lag;
            sim.run_for(5 * S);
            assert_eq!(sim.actors(), before, "with the watch {lag:?} late");
        }
        let t = sim.node("node-b").core.transitions().clone();
        assert_eq!(t.get(&Transition::Failover), None, "{t:?}");
        assert!(sim.overlaps.is_empty());
        // A member that does stop is still replaced: seen through the lagging watch, a lease
        // duration of the server's time after its last renewal.
        sim.node("node-b").watch_lag = 2 * S;
        let held: Vec<String> = sim.held_by("node-a").into_iter().collect();
        sim.node("node-a").running = false;
        sim.run_until(10 * S, |s| held.iter().all(|k| s.actor(k).is_some()))
            .expect("others take over");
        assert!(sim.overlaps.is_empty());
    }

    #[test]
    fn steady_state_writes_are_one_renewal_per_member_per_interval() {
        for n in [10, 300] {
            let keys = keys(n);
            let mut sim = three(&keys);
            sim.step = 50 * MS;
            settled(&mut sim, &keys);
            sim.run_for(5 * S);
            let before = sim.server.version;
            sim.run_for(30 * S);
            let writes = sim.server.version - before;
            assert!(
                (87..=93).contains(&writes),
                "{n} keys: {writes} writes in 30 s"
            );
        }
    }
}
