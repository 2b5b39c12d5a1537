//! [`EventRecorder`]: Events about what herald found and did, on the objects concerned.
//!
//! Level-based, like the rest of the source: each call says how things are now, and the
//! recorder writes Events only for what changed since the last call: a new problem in the
//! configuration, a Service this node started or stopped announcing, a new failure. A steady
//! state, however often it is restated, writes nothing. An Event that could not be written is
//! tried again on the next call that still calls for it.
//!
//! Events are written through `events.k8s.io/v1`, which a real API server also serves as core
//! `v1` Events, so `kubectl describe` and `kubectl get events` show them. The reasons on
//! Services are MetalLB's (`nodeAssigned`, `announceFailed`), so tooling that watches for them
//! keeps working.

use crate::error::Error;
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use model::plan::Protocol;
use model::world::ServiceRef;
use model::{Diagnostic, Severity};
use std::collections::{BTreeMap, BTreeSet};

/// The `reason` of each Event herald writes.
pub mod reasons {
    /// MetalLB's: this node started announcing a Service (with one protocol).
    pub const NODE_ASSIGNED: &str = "nodeAssigned";
    /// MetalLB's: announcing a Service failed on this node.
    pub const ANNOUNCE_FAILED: &str = "announceFailed";
    /// This node stopped announcing a Service (with one protocol). MetalLB writes no Event
    /// here, only a log line whose event is `serviceWithdrawn`; the name is kept.
    pub const SERVICE_WITHDRAWN: &str = "serviceWithdrawn";
    /// An error in a configuration object: the configuration is rejected.
    pub const INVALID_CONFIGURATION: &str = "invalidConfiguration";
    /// A warning about a configuration object: accepted, but likely not what was meant.
    pub const CONFIGURATION_WARNING: &str = "configurationWarning";
    /// A station that is not a herald node claims a Service's address on the LAN.
    pub const ADDRESS_CONFLICT: &str = "addressConflict";
}

const ACTION_ANNOUNCE: &str = "Announce";
const ACTION_WITHDRAW: &str = "Withdraw";
const ACTION_CONFIGURE: &str = "Configure";
/// The API server's limit on `note` (1 kB).
const NOTE_LIMIT: usize = 1024;
/// Where Events about cluster-scoped objects (Nodes) go, as client-go puts them.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// Who writes the Events.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// This node's name, as the Service Events name it.
    pub node: String,
    /// `reportingController` (default `herald`).
    pub controller: String,
    /// `reportingInstance` (default: the node's name), which tells the speakers apart.
    pub instance: String,
}

impl RecorderConfig {
    pub fn new(node: impl Into<String>) -> Self {
        let node = node.into();
        Self {
            controller: "herald".into(),
            instance: node.clone(),
            node,
        }
    }
}

/// How this node stands towards one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAnnouncement {
    /// The protocols this node announces the Service's addresses with; empty when it does not.
    pub protocols: BTreeSet<Protocol>,
    /// Why announcing (some of) its addresses failed here, when it did.
    pub failure: Option<String>,
    /// Address conflicts seen lately on this node, each described: a Warning Event for each
    /// new one.
    pub conflicts: BTreeSet<String>,
}

/// A configuration Event that was written and whose problem still holds:
/// (the object's uid, else its name; reason; note).
type Reported = (String, &'static str, String);

pub struct EventRecorder {
    client: Client,
    config: RecorderConfig,
    reported: BTreeSet<Reported>,
    services: BTreeMap<ServiceRef, ServiceAnnouncement>,
    /// The last Event name's time part, so names stay unique within one recorder even when
    /// the clock repeats itself.
    last_nanos: i128,
}

impl EventRecorder {
    pub fn new(client: Client, config: RecorderConfig) -> Self {
        Self {
            client,
            config,
            reported: BTreeSet::new(),
            services: BTreeMap::new(),
            last_nanos: 0,
        }
    }

    /// Says which problems the configuration has now (`diagnostics`, as from
    /// [`Snapshot::validate`]). Each error and warning about an object the snapshot holds gets
    /// one Warning Event on that object (`invalidConfiguration` / `configurationWarning`) when
    /// it first appears; it is written again only if it goes away and comes back. Returns how
    /// many Events were written; on a failed write the rest wait for the next call.
    pub async fn configuration(
        &mut self,
        snapshot: &Snapshot,
        diagnostics: &[Diagnostic],
    ) -> Result<usize, Error> {
        let mut holding = BTreeSet::new();
        let mut written = BTreeSet::new();
        let mut failed = None;
        for d in diagnostics {
            let reason = match d.severity {
                Severity::Error => reasons::INVALID_CONFIGURATION,
                Severity::Warning => reasons::CONFIGURATION_WARNING,
                Severity::Note => continue,
            };
            // A problem with no object (a file, the whole configuration) has nowhere to go.
            let Some(regarding) = snapshot.object_reference(&d.resource) else {
                continue;
            };
            let note = note_of(d);
            let id = regarding
                .uid
                .clone()
                .unwrap_or_else(|| d.resource.to_string());
            let key = (id, reason, note.clone());
            let first_mention = holding.insert(key.clone());
            if !first_mention || self.reported.contains(&key) || failed.is_some() {
                continue;
            }
            match self
                .write(&regarding, Type::Warning, reason, ACTION_CONFIGURE, note)
                .await
            {
                Ok(()) => _ = written.insert(key),
                Err(e) => failed = Some(e),
            }
        }
        // Forgetting what no longer holds is what lets its return be reported again.
        let count = written.len();
        self.reported.retain(|k| holding.contains(k));
        self.reported.extend(written);
        failed.map_or(Ok(count), Err)
    }

    /// Says how this node stands towards each Service now; a Service left out is not
    /// announced by it. Writes `nodeAssigned` for each protocol a Service is newly announced
    /// with, `serviceWithdrawn` for each it no longer is, and `announceFailed` (a Warning) for
    /// each new failure. Services the snapshot does not hold (deleted) get no Event. Returns
    /// how many Events were written; on a failed write the rest wait for the next call.
    pub async fn services(
        &mut self,
        snapshot: &Snapshot,
        now: &BTreeMap<ServiceRef, ServiceAnnouncement>,
    ) -> Result<usize, Error> {
        let keys: BTreeSet<ServiceRef> = self.services.keys().chain(now.keys()).cloned().collect();
        let mut count = 0;
        for service in keys {
            let wanted = now.get(&service).cloned().unwrap_or_default();
            let mut had = self.services.get(&service).cloned().unwrap_or_default();
            if had == wanted {
                // Nothing to write, as for most Services after any one change.
                continue;
            }
            let Some(regarding) = snapshot.service_reference(&service) else {
                self.settle(&service, wanted);
                continue;
            };
            let result = self
                .announce(&regarding, &wanted, &mut had, &mut count)
                .await;
            // What was written is remembered even when a later write failed, so it is not
            // written twice.
            self.settle(&service, had);
            result?;
        }
        Ok(count)
    }

    fn settle(&mut self, service: &ServiceRef, state: ServiceAnnouncement) {
        if state == ServiceAnnouncement::default() {
            self.services.remove(service);
        } else {
            self.services.insert(service.clone(), state);
        }
    }

    /// Writes the Events that take one Service from `had` to `wanted`, updating `had` as
    /// each is written.
    async fn announce(
        &mut self,
        regarding: &ObjectReference,
        wanted: &ServiceAnnouncement,
        had: &mut ServiceAnnouncement,
        count: &mut usize,
    ) -> Result<(), Error> {
        let node = self.config.node.clone();
        for p in wanted.protocols.difference(&had.protocols.clone()) {
            let note = format!(
                "announcing from node {node:?} with protocol {:?}",
                protocol(*p)
            );
            let (reason, action) = (reasons::NODE_ASSIGNED, ACTION_ANNOUNCE);
            self.write(regarding, Type::Normal, reason, action, note)
                .await?;
            had.protocols.insert(*p);
            *count += 1;
        }
        for p in had.protocols.clone().difference(&wanted.protocols) {
            let note = format!(
                "no longer announcing from node {node:?} with protocol {:?}",
                protocol(*p)
            );
            let (reason, action) = (reasons::SERVICE_WITHDRAWN, ACTION_WITHDRAW);
            self.write(regarding, Type::Normal, reason, action, note)
                .await?;
            had.protocols.remove(p);
            *count += 1;
        }
        if let Some(failure) = &wanted.failure
            && had.failure.as_ref() != Some(failure)
        {
            let note = format!("announcing from node {node:?} failed: {failure}");
            let (reason, action) = (reasons::ANNOUNCE_FAILED, ACTION_ANNOUNCE);
            self.write(regarding, Type::Warning, reason, action, note)
                .await?;
            *count += 1;
        }
        had.failure = wanted.failure.clone();
        for conflict in wanted.conflicts.difference(&had.conflicts.clone()) {
            let (reason, action) = (reasons::ADDRESS_CONFLICT, ACTION_ANNOUNCE);
            self.write(regarding, Type::Warning, reason, action, conflict.clone())
                .await?;
            had.conflicts.insert(conflict.clone());
            *count += 1;
        }
        had.conflicts.retain(|c| wanted.conflicts.contains(c));
        Ok(())
    }

    async fn write(
        &mut self,
        regarding: &ObjectReference,
        type_: Type,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) -> Result<(), Error> {
        let now = Timestamp::now();
        self.last_nanos = now.as_nanosecond().max(self.last_nanos + 1);
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| CLUSTER_EVENTS_NAMESPACE.into());
        let object = regarding.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name(&object, self.last_nanos)),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.as_str().into()),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(truncate(note, NOTE_LIMIT)),
            reporting_controller: Some(self.config.controller.clone()),
            reporting_instance: Some(self.config.instance.clone()),
            regarding: Some(regarding.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event)
            .await
            .map_err(|source| Error::WriteEvent {
                reason: reason.into(),
                regarding: format!(
                    "{} {namespace}/{object}",
                    regarding.kind.as_deref().unwrap_or("object")
                ),
                source,
            })?;
        tracing::debug!(reason, object = %object, "wrote an Event");
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

/// The protocol as MetalLB's Events spell it.
fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Layer2 => "layer2",
        Protocol::Bgp => "bgp",
    }
}

/// The diagnostic without the object it is about, which the Event names already:
/// `spec.addresses[0] = "x": problem; fix: ...`.
fn note_of(d: &Diagnostic) -> String {
    let mut note = String::new();
    if !d.field.is_empty() {
        note.push_str(&d.field);
        if let Some(value) = &d.value {
            note.push_str(&format!(" = {value:?}"));
        }
        note.push_str(": ");
    }
    note.push_str(&d.problem);
    if let Some(fix) = &d.fix {
        note.push_str("; fix: ");
        note.push_str(fix);
    }
    note
}

fn truncate(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('…');
    text
}

/// `<object>.<time in hex>`, as client-go names Events, kept within the 253 characters of a
/// DNS subdomain.
fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{:x}", nanos.max(0));
    let mut base: String = object
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(253 - suffix.len())
        .collect();
    // A subdomain's parts start and end with an alphanumeric character.
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    while base.starts_with(['-', '.']) {
        base.remove(0);
    }
    if base.is_empty() {
        base.push_str("herald");
    }
    base + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ResourceRef;

    #[test]
    fn notes_leave_out_the_object_and_stay_within_the_limit() {
        let d = Diagnostic::error(
            ResourceRef {
                kind: "IPAddressPool".into(),
                namespace: Some("metallb-system".into()),
                name: "p".into(),
            },
            "spec.addresses[0]",
            "not a CIDR prefix or a range",
        )
        .value("192.0.2.0/33")
        .fix("write a prefix such as 192.0.2.0/24");
        assert_eq!(
            note_of(&d),
            "spec.addresses[0] = \"192.0.2.0/33\": not a CIDR prefix or a range; fix: write a prefix such as 192.0.2.0/24"
        );
        let long = truncate("é".repeat(800), NOTE_LIMIT);
        assert!(long.len() <= NOTE_LIMIT && long.ends_with('…'));
        assert_eq!(truncate("short".into(), NOTE_LIMIT), "short");
    }

    #[test]
    fn event_names_are_dns_subdomains() {
        assert_eq!(event_name("web", 255), "web.ff");
        let long = event_name(&"a".repeat(300), i128::MAX);
        assert!(long.len() <= 253, "{}", long.len());
        assert_eq!(event_name("-", 1), "herald.1");
    }
}
