//! A simulated cluster for testing [`Core`]: an in-memory API server applying conditional
//! writes, one watch per member, and virtual time advancing in small steps. Deterministic:
//! the same test always takes the same path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::*;

/// What a watch delivers.
#[derive(Clone, Debug)]
enum WatchEvent {
    Apply(Observed),
    Delete(LeaseId),
}

#[derive(Default)]
pub struct Server {
    /// Bumped by every write, as resource versions are.
    pub version: u64,
    pub leases: BTreeMap<LeaseId, Observed>,
    /// Refuse every request (an API server outage).
    pub down: bool,
}

impl Server {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn apply(&mut self, identity: &str, write: Write) -> (Outcome, Option<WatchEvent>) {
        // The Lease as written, its version filled in below, and the version it expects.
        let (mut lease, expected) = match write {
            Write::Member {
                resource_version,
                holder,
                duration,
                annotations,
            } => (
                Observed::Member {
                    identity: identity.to_owned(),
                    holder,
                    duration,
                    resource_version: String::new(),
                    annotations,
                },
                resource_version,
            ),
            Write::Candidacy {
                resource_version,
                keys,
            } => (
                Observed::Candidacy {
                    identity: identity.to_owned(),
                    keys,
                    resource_version: String::new(),
                },
                resource_version,
            ),
            Write::Claim {
                key,
                resource_version,
                transitions,
                ..
            } => (
                Observed::Key {
                    key,
                    holder: Some(identity.to_owned()),
                    released_by: None,
                    resource_version: String::new(),
                    transitions: transitions + 1,
                },
                resource_version,
            ),
            Write::Release {
                key,
                resource_version,
                transitions,
                ..
            } => (
                Observed::Key {
                    key,
                    holder: None,
                    released_by: Some(identity.to_owned()),
                    resource_version: String::new(),
                    transitions,
                },
                Some(resource_version),
            ),
            Write::Delete {
                key,
                resource_version,
            } => {
                let id = LeaseId::Key(key);
                return match self.leases.get(&id) {
                    None => (Outcome::NotFound, None),
                    Some(l) if l.resource_version() != resource_version => {
                        (Outcome::Conflict, None)
                    }
                    Some(_) => {
                        self.leases.remove(&id);
                        (Outcome::Deleted, Some(WatchEvent::Delete(id)))
                    }
                };
            }
            Write::Verify { key } => {
                return match self.leases.get(&LeaseId::Key(key)) {
                    Some(l) => (Outcome::Done(l.clone()), None),
                    None => (Outcome::NotFound, None),
                };
            }
        };
        let id = lease.id();
        let current = self
            .leases
            .get(&id)
            .map(|l| l.resource_version().to_owned());
        match (&expected, &current) {
            (None, Some(_)) => return (Outcome::Conflict, None),
            (Some(_), None) => return (Outcome::NotFound, None),
            (Some(e), Some(c)) if e != c => return (Outcome::Conflict, None),
            _ => {}
        }
        let version = self.next_version();
        match &mut lease {
            Observed::Member {
                resource_version, ..
            }
            | Observed::Candidacy {
                resource_version, ..
            }
            | Observed::Key {
                resource_version, ..
            } => *resource_version = version,
        }
        self.leases.insert(id, lease.clone());
        (Outcome::Done(lease.clone()), Some(WatchEvent::Apply(lease)))
    }

    /// Deletes a Lease by hand.
    pub fn delete(&mut self, id: &LeaseId) -> Option<LeaseId> {
        self.leases.remove(id).map(|_| id.clone())
    }

    pub fn holder(&self, key: &str) -> Option<String> {
        match self.leases.get(&LeaseId::Key(key.to_owned())) {
            Some(Observed::Key { holder, .. }) => holder.clone(),
            _ => None,
        }
    }
}

pub struct Node {
    pub core: Core,
    /// What the watch will deliver, with when the server sent it.
    inbox: VecDeque<(Instant, WatchEvent)>,
    /// How late this member's watch delivers (a loaded node or API server).
    pub watch_lag: Duration,
    /// Running (a crashed node does nothing).
    pub running: bool,
    /// Cut off from the API server: requests fail, the watch delivers nothing.
    pub cut_off: bool,
    /// The watch must list again when it can.
    needs_relist: bool,
    /// Writes that will come back after the latency.
    in_flight: VecDeque<(Instant, OpId, Outcome)>,
}

pub struct Sim {
    pub server: Server,
    pub nodes: BTreeMap<String, Node>,
    pub now: Instant,
    pub step: Duration,
    /// How long a request takes.
    pub latency: Duration,
    /// Keys each node was told to defend.
    pub defended: Vec<(String, String)>,
    /// Steps at which two nodes acted on the same key.
    pub overlaps: Vec<(Duration, String, Vec<String>)>,
    start: Instant,
}

impl Sim {
    pub fn new() -> Sim {
        let now = Instant::now();
        Sim {
            server: Server::default(),
            nodes: BTreeMap::new(),
            now,
            step: Duration::from_millis(10),
            latency: Duration::from_millis(5),
            defended: Vec::new(),
            overlaps: Vec::new(),
            start: now,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Starts (or restarts) a member standing for `keys` with preference 0.
    pub fn start(&mut self, identity: &str, keys: &[String]) {
        let mut core = Core::new(identity, Timing::default());
        core.set_candidacy(
            keys.iter()
                .map(|k| (k.clone(), Candidacy::default()))
                .collect(),
        );
        core.set_member_annotations(BTreeMap::from([(
            "mac".to_owned(),
            format!("mac-of-{identity}"),
        )]));
        let node = Node {
            core,
            inbox: VecDeque::new(),
            watch_lag: Duration::ZERO,
            running: true,
            cut_off: false,
            needs_relist: true,
            in_flight: VecDeque::new(),
        };
        self.nodes.insert(identity.to_owned(), node);
    }

    pub fn node(&mut self, identity: &str) -> &mut Node {
        self.nodes
            .get_mut(identity)
            .expect("a node of the simulation")
    }

    fn relist(&self, core: &mut Core) {
        core.relist_started();
        for lease in self.server.leases.values() {
            core.observe(lease.clone(), self.now);
        }
        core.relist_done();
    }

    /// One step of virtual time.
    pub fn tick(&mut self) {
        self.now += self.step;
        let now = self.now;
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in &names {
            let mut node = self.nodes.remove(name).expect("node");
            if node.running {
                self.run_node(name, &mut node, now);
            }
            self.nodes.insert(name.clone(), node);
        }
        self.check_overlaps();
    }

    fn run_node(&mut self, name: &str, node: &mut Node, now: Instant) {
        let reachable = !node.cut_off && !self.server.down;
        if reachable && node.needs_relist {
            self.relist(&mut node.core);
            node.needs_relist = false;
            node.inbox.clear();
        }
        if reachable {
            while node
                .inbox
                .front()
                .is_some_and(|(sent, _)| *sent + node.watch_lag <= now)
            {
                let (_, e) = node.inbox.pop_front().expect("front");
                match e {
                    WatchEvent::Apply(l) => node.core.observe(l, now),
                    WatchEvent::Delete(id) => node.core.observe_deleted(id),
                }
            }
        }
        while node.in_flight.front().is_some_and(|(t, _, _)| *t <= now) {
            let (_, op, outcome) = node.in_flight.pop_front().expect("front");
            node.core.outcome(op, outcome, now);
        }
        for action in node.core.poll(now) {
            match action {
                Action::Defend(key) => self.defended.push((name.to_owned(), key)),
                Action::Write(op, write) => {
                    let outcome = if reachable {
                        let (outcome, event) = self.server.apply(name, write);
                        if let Some(e) = event {
                            self.broadcast(e, name, node, now);
                        }
                        outcome
                    } else {
                        Outcome::Failed("unreachable".into())
                    };
                    node.in_flight.push_back((now + self.latency, op, outcome));
                }
            }
        }
    }

    fn broadcast(&mut self, event: WatchEvent, writer: &str, writer_node: &mut Node, now: Instant) {
        for (name, node) in self.nodes.iter_mut() {
            if name != writer && !node.cut_off {
                node.inbox.push_back((now, event.clone()));
            } else if name != writer {
                node.needs_relist = true;
            }
        }
        // The writer's own watch, after its write's answer.
        if writer_node.cut_off {
            writer_node.needs_relist = true;
        } else {
            writer_node.inbox.push_back((now, event));
        }
    }

    /// Applies a hand-made deletion and tells the watches.
    pub fn delete_by_hand(&mut self, id: LeaseId) {
        if let Some(id) = self.server.delete(&id) {
            for node in self.nodes.values_mut() {
                node.inbox
                    .push_back((self.now, WatchEvent::Delete(id.clone())));
            }
        }
    }

    pub fn cut_off(&mut self, identity: &str, cut: bool) {
        let node = self.node(identity);
        node.cut_off = cut;
        if cut {
            node.needs_relist = true;
        }
    }

    pub fn set_down(&mut self, down: bool) {
        self.server.down = down;
        if down {
            for node in self.nodes.values_mut() {
                node.needs_relist = true;
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.tick();
        }
    }

    /// Runs until `done` holds, at most `limit`; returns how long it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.tick();
        }
        done(self).then(|| self.now - start)
    }

    /// Who acts on each key now.
    pub fn actors(&self) -> BTreeMap<String, Vec<String>> {
        let mut actors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, node) in &self.nodes {
            if !node.running {
                continue;
            }
            for key in node.core.acting() {
                actors.entry(key.clone()).or_default().push(name.clone());
            }
        }
        actors
    }

    pub fn actor(&self, key: &str) -> Option<String> {
        let actors = self.actors();
        match actors.get(key).map(Vec::as_slice) {
            Some([one]) => Some(one.clone()),
            _ => None,
        }
    }

    fn check_overlaps(&mut self) {
        let elapsed = self.elapsed();
        for (key, who) in self.actors() {
            if who.len() > 1 {
                self.overlaps.push((elapsed, key, who));
            }
        }
    }

    pub fn held_by(&self, identity: &str) -> BTreeSet<String> {
        self.nodes
            .get(identity)
            .map(|n| n.core.acting().clone())
            .unwrap_or_default()
    }
}

pub fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("ip-10.0.{}.{}", i / 256, i % 256))
        .collect()
}
