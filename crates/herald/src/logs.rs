//! What the speaker logs about each read of its configuration, so that a log line at info or
//! above always has a change behind it:
//!
//! - a diagnostic is logged (at its severity) when it appears, and once at info when it
//!   clears, however many reads restate it in between;
//! - a changed plan is one info line with counts (the caller's); what changed, address by
//!   address and route by route, is logged at debug, and only what changed.

use crate::render;
use model::plan::Route;
use model::world::Peer;
use model::{Diagnostic, NodePlan, Severity};
use std::collections::{BTreeMap, BTreeSet};
use tracing::{debug, error, info, warn};

/// The diagnostics logged so far, still holding.
#[derive(Debug, Default)]
pub struct DiagnosticLog {
    holding: BTreeSet<Diagnostic>,
}

/// How a read's diagnostics differ from the last one's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiagnosticChanges<'a> {
    pub appeared: Vec<&'a Diagnostic>,
    pub cleared: Vec<Diagnostic>,
}

impl DiagnosticLog {
    /// Takes the diagnostics of a new read: logs those that appeared and those that cleared.
    pub fn update<'a>(&mut self, now: &'a [Diagnostic]) -> DiagnosticChanges<'a> {
        let now_set: BTreeSet<&Diagnostic> = now.iter().collect();
        let mut appeared: Vec<&Diagnostic> = now_set
            .iter()
            .copied()
            .filter(|d| !self.holding.contains(*d))
            .collect();
        appeared.dedup();
        let cleared: Vec<Diagnostic> = self
            .holding
            .iter()
            .filter(|d| !now_set.contains(d))
            .cloned()
            .collect();
        for d in &appeared {
            log_diagnostic(d);
        }
        for d in &cleared {
            let resource = (!d.resource.kind.is_empty()).then(|| d.resource.to_string());
            let field = (!d.field.is_empty()).then_some(d.field.as_str());
            match d.severity {
                Severity::Error | Severity::Warning => {
                    info!(resource, field, "resolved: {d}");
                }
                Severity::Note => debug!(resource, field, "resolved: {d}"),
            }
        }
        self.holding = now.iter().cloned().collect();
        DiagnosticChanges { appeared, cleared }
    }
}

fn log_diagnostic(d: &Diagnostic) {
    // The message is the whole one-line diagnostic; the fields make it searchable.
    let file = d.origin.file.as_ref().map(|f| f.display().to_string());
    let line = d.origin.line;
    let resource = (!d.resource.kind.is_empty()).then(|| d.resource.to_string());
    let field = (!d.field.is_empty()).then_some(d.field.as_str());
    match d.severity {
        Severity::Error => error!(file, line, resource, field, "{d}"),
        Severity::Warning => warn!(file, line, resource, field, "{d}"),
        Severity::Note => debug!(file, line, resource, field, "{d}"),
    }
}

/// What changed from `before` to `after`, in counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanChanges {
    pub l2_added: usize,
    pub l2_removed: usize,
    pub routes_added: usize,
    pub routes_removed: usize,
    pub skipped_added: usize,
    pub skipped_removed: usize,
}

/// Logs at debug, one line each, the Layer 2 announcements, BGP sessions and routes, and
/// skip reasons that differ between the plans (all of `after` when there was none before),
/// and says how many there were.
pub fn plan_changes(before: Option<&NodePlan>, after: &NodePlan) -> PlanChanges {
    let empty = NodePlan::default();
    let before = before.unwrap_or(&empty);
    let mut changes = PlanChanges::default();

    let (added, removed) = difference(&before.l2, &after.l2);
    changes.l2_added = added.len();
    changes.l2_removed = removed.len();
    for (a, what) in added
        .into_iter()
        .map(|a| (a, "planned"))
        .chain(removed.into_iter().map(|a| (a, "no longer planned")))
    {
        debug!(
            protocol = "layer2",
            ip = %a.ip,
            service = %a.service,
            pool = %a.pool,
            interfaces = %render::interfaces(&a.interfaces),
            "{what}: layer 2 announcement"
        );
    }

    let sessions = |p: &NodePlan| -> BTreeMap<String, Peer> {
        p.bgp
            .iter()
            .map(|s| (s.peer.name.clone(), s.peer.clone()))
            .collect()
    };
    let (old_sessions, new_sessions) = (sessions(before), sessions(after));
    for (name, peer) in &new_sessions {
        if old_sessions.get(name) != Some(peer) {
            debug!(
                protocol = "bgp",
                peer = %name,
                address = %render::endpoint(peer),
                local_as = peer.local_as(),
                peer_as = %render::peer_asn(peer.peer_asn),
                "planned: BGP session"
            );
        }
    }
    for name in old_sessions
        .keys()
        .filter(|n| !new_sessions.contains_key(*n))
    {
        debug!(protocol = "bgp", peer = %name, "no longer planned: BGP session");
    }

    fn routes(p: &NodePlan) -> impl Iterator<Item = (&str, &Route)> {
        p.routes().map(|(peer, r)| (peer.name.as_str(), r))
    }
    let (added, removed) = difference(routes(before), routes(after));
    changes.routes_added = added.len();
    changes.routes_removed = removed.len();
    for ((peer, r), what) in added
        .into_iter()
        .map(|x| (x, "planned"))
        .chain(removed.into_iter().map(|x| (x, "no longer planned")))
    {
        debug!(
            protocol = "bgp",
            peer = %peer,
            prefix = %r.prefix,
            services = %r.services.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            communities = %render::communities(r),
            local_pref = r.local_pref,
            "{what}: BGP route"
        );
    }

    let (added, removed) = difference(&before.skipped, &after.skipped);
    changes.skipped_added = added.len();
    changes.skipped_removed = removed.len();
    for s in added {
        debug!(
            ip = ?s.ip,
            service = %s.service,
            protocol = render::protocol(s.protocol),
            reason = %render::skip_reason(s.protocol, &s.reason),
            "not announced"
        );
    }
    changes
}

/// What `new` has and `old` has not, and what `old` has and `new` has not. The items are
/// references (a plan holds thousands of entries, and one change moves a few): sorted and
/// merged, nothing copied.
fn difference<T: Ord>(
    old: impl IntoIterator<Item = T>,
    new: impl IntoIterator<Item = T>,
) -> (Vec<T>, Vec<T>) {
    let sorted = |items: &mut Vec<T>| {
        items.sort_unstable();
        items.dedup();
    };
    let (mut old, mut new): (Vec<T>, Vec<T>) =
        (old.into_iter().collect(), new.into_iter().collect());
    sorted(&mut old);
    sorted(&mut new);
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut old, mut new) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => match o.cmp(n) {
                std::cmp::Ordering::Less => removed.extend(old.next()),
                std::cmp::Ordering::Greater => added.extend(new.next()),
                std::cmp::Ordering::Equal => {
                    old.next();
                    new.next();
                }
            },
            (Some(_), None) => removed.extend(old.next()),
            (None, Some(_)) => added.extend(new.next()),
            (None, None) => return (added, removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ResourceRef;
    use model::plan::{Interfaces, L2Announcement, SkipReason, Skipped};
    use model::world::ServiceRef;

    fn warning(text: &str) -> Diagnostic {
        Diagnostic::warning(ResourceRef::default(), "", text)
    }

    #[test]
    fn a_diagnostic_is_news_when_it_appears_and_when_it_clears() {
        let mut log = DiagnosticLog::default();
        let (a, b) = (warning("a"), warning("b"));
        let first = [a.clone(), b.clone()];
        let changes = log.update(&first);
        assert_eq!(changes.appeared, vec![&a, &b]);
        assert!(changes.cleared.is_empty());
        // Restated, in another order and twice over: nothing to say.
        let again = [b.clone(), a.clone(), a.clone()];
        assert_eq!(log.update(&again), DiagnosticChanges::default());
        let later = [b.clone()];
        let changes = log.update(&later);
        assert!(changes.appeared.is_empty());
        assert_eq!(changes.cleared, vec![a.clone()]);
        // Back again: news again.
        let back = [a.clone(), b.clone()];
        assert_eq!(log.update(&back).appeared, vec![&a]);
    }

    fn service(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn plan_changes_count_only_what_differs() {
        let announce = |ip: &str, svc: &str| L2Announcement {
            ip: ip.parse().expect("an address"),
            service: service(svc),
            pool: "p".into(),
            advertisements: BTreeSet::from(["l2".to_owned()]),
            interfaces: Interfaces::Any,
            preference: 0,
        };
        let before = NodePlan {
            node: "n".into(),
            l2: vec![announce("192.0.2.1", "a"), announce("192.0.2.2", "b")],
            bgp: Vec::new(),
            skipped: vec![Skipped {
                service: service("c"),
                ip: None,
                protocol: None,
                reason: SkipReason::NoAddress,
            }],
            departing: None,
        };
        let mut after = before.clone();
        after.l2.remove(0);
        after.l2.push(announce("192.0.2.3", "d"));
        after.skipped.clear();
        let changes = plan_changes(Some(&before), &after);
        assert_eq!(
            changes,
            PlanChanges {
                l2_added: 1,
                l2_removed: 1,
                skipped_removed: 1,
                ..PlanChanges::default()
            }
        );
        assert_eq!(plan_changes(Some(&after), &after), PlanChanges::default());
        assert_eq!(plan_changes(None, &after).l2_added, 2);
    }
}
