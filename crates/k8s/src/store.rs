//! A reflector store for one watch: the objects it last saw, each already read.
//!
//! It follows the watcher's protocol as kube-rs's reflector does: a re-list (`Init`,
//! `InitApply`..., `InitDone`) is gathered aside and then replaces the whole store, so an object
//! deleted while the watch was away disappears, rather than lingering beside the new list.
//! Unlike the reflector, it keeps objects read (or the diagnostic saying why one could not be
//! read), so each object is typed once when it arrives, not again for every snapshot; it
//! keeps only the part herald reads, shared (`Arc`) with every snapshot that shows it; it
//! drops Services that are not herald's; and an update that leaves what herald reads as it
//! was changes nothing.

use crate::kinds::Kind;
use crate::read::{Read, Scope, read};
use kube::Resource;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// `(namespace, name)`.
pub(crate) type Key = (Option<String>, String);

pub(crate) struct Store<K> {
    objects: BTreeMap<Key, Read<K>>,
    /// A re-list in progress: shown once complete.
    relisting: Option<BTreeMap<Key, Read<K>>>,
    synced: bool,
}

/// Counts only: a store may hold Secrets.
impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("objects", &self.objects.len())
            .field("relisting", &self.relisting.as_ref().map(BTreeMap::len))
            .field("synced", &self.synced)
            .finish()
    }
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

/// What one watch event did to a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// What the store shows changed (or a re-list completed, which must be published even
    /// when it found nothing new, since what it replaced is unknown to the reader).
    pub changed: bool,
    /// Objects the event carried.
    pub received: u64,
    /// Of those, the ones that could not be read.
    pub unreadable: u64,
}

fn key_of(object: &DynamicObject) -> Key {
    (
        object.metadata.namespace.clone(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// Whether two reads of an object show herald the same thing: equal but for the
/// resourceVersion, which every write moves on.
fn same<K: Resource + Clone + PartialEq>(a: &Read<K>, b: &Read<K>) -> bool {
    let objects = match (&a.object, &b.object) {
        (Some(a), Some(b)) => {
            let version = |o: &K| o.meta().resource_version.clone();
            if version(&a.object) == version(&b.object) {
                a.object == b.object
            } else {
                let mut b = (*b.object).clone();
                b.meta_mut().resource_version = version(&a.object);
                *a.object == b
            }
        }
        (None, None) => true,
        _ => false,
    };
    objects && a.diagnostics == b.diagnostics && a.reference.uid == b.reference.uid
}

impl<K: DeserializeOwned + Resource + Clone + PartialEq> Store<K> {
    pub fn apply(&mut self, kind: &Kind, scope: &Scope, event: Event<DynamicObject>) -> Applied {
        let received = |r: Option<&Read<K>>| Applied {
            received: 1,
            unreadable: u64::from(r.is_some_and(|r| r.object.is_none())),
            ..Applied::default()
        };
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Applied::default()
            }
            Event::InitApply(object) => {
                let key = key_of(&object);
                let r = read(kind, scope, object);
                let applied = received(r.as_ref());
                if let Some(r) = r {
                    self.relisting
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, r);
                }
                applied
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.objects = listed;
                }
                self.synced = true;
                Applied {
                    changed: true,
                    ..Applied::default()
                }
            }
            Event::Apply(object) => {
                let key = key_of(&object);
                let r = read(kind, scope, object);
                let mut applied = received(r.as_ref());
                let changed = match r {
                    // Kept either way, so the store shows the latest resourceVersion; a
                    // change only when herald would see one.
                    Some(r) => match self.objects.insert(key.clone(), r) {
                        Some(old) => !same(&old, &self.objects[&key]),
                        None => true,
                    },
                    // Not herald's (any more): gone, if it was held.
                    None => self.objects.remove(&key).is_some(),
                };
                applied.changed = changed;
                applied
            }
            Event::Delete(object) => {
                let key = key_of(&object);
                let changed = self.objects.remove(&key).is_some();
                Applied {
                    changed,
                    received: 1,
                    ..Applied::default()
                }
            }
        }
    }
}

impl<K> Store<K> {
    /// The API server does not serve the kind at all (its CRD is not installed): there are
    /// none, which is as good as a completed list. Says whether that changed what is shown.
    pub fn absent(&mut self) -> bool {
        let changed = !self.synced || !self.objects.is_empty();
        self.objects.clear();
        self.relisting = None;
        self.synced = true;
        changed
    }

    /// Whether a first list has completed, so the store holds the cluster's objects and not
    /// merely none yet.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn objects(&self) -> impl Iterator<Item = &Read<K>> {
        self.objects.values()
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.objects.contains_key(key)
    }

    pub fn get(&self, key: &Key) -> Option<&Read<K>> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::POOLS;
    use model::crd::IPAddressPool;
    use serde_json::json;

    fn pool(name: &str, addresses: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"addresses": addresses},
        }))
        .expect("a DynamicObject")
    }

    fn names(s: &Store<IPAddressPool>) -> Vec<String> {
        s.objects()
            .map(|r| r.reference.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_relist_replaces_the_store_when_it_completes() {
        let mut s = Store::<IPAddressPool>::default();
        s.apply(&POOLS, &Scope::default(), Event::Init);
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::InitApply(pool("a", json!(["192.0.2.0/28"]))),
        );
        assert!(!s.synced());
        assert!(
            names(&s).is_empty(),
            "nothing is shown before the list completes"
        );
        assert!(s.apply(&POOLS, &Scope::default(), Event::InitDone).changed);
        assert!(s.synced());
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::Apply(pool("b", json!(["192.0.2.16/28"]))),
        );
        assert_eq!(names(&s), ["a", "b"]);

        // The watch was away: "a" was deleted meanwhile and "c" created. Until the re-list
        // completes, the old objects stay; then only the listed ones remain.
        s.apply(&POOLS, &Scope::default(), Event::Init);
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::InitApply(pool("b", json!(["192.0.2.16/28"]))),
        );
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::InitApply(pool("c", json!(["192.0.2.32/28"]))),
        );
        assert_eq!(names(&s), ["a", "b"]);
        let done = s.apply(&POOLS, &Scope::default(), Event::InitDone);
        assert!(done.changed, "a completed re-list is always published");
        assert_eq!(names(&s), ["b", "c"]);
    }

    #[test]
    fn a_kind_the_server_does_not_serve_counts_as_listed_and_empty() {
        let mut s = Store::<IPAddressPool>::default();
        assert!(s.absent(), "newly synced");
        assert!(s.synced());
        assert!(!s.absent(), "still absent: nothing to publish");
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::Apply(pool("a", json!(["192.0.2.0/28"]))),
        );
        assert!(s.absent(), "what it held is gone");
        assert!(names(&s).is_empty());
    }

    #[test]
    fn unreadable_objects_are_kept_as_diagnostics_and_counted() {
        let mut s = Store::<IPAddressPool>::default();
        let applied = s.apply(
            &POOLS,
            &Scope::default(),
            Event::Apply(pool("bad", json!("not a list"))),
        );
        assert_eq!(
            applied,
            Applied {
                changed: true,
                received: 1,
                unreadable: 1
            }
        );
        let r = s.objects().next().expect("kept");
        assert!(r.object.is_none());
        assert_eq!(r.diagnostics.len(), 1);
        // Fixing it replaces the diagnostic with the object.
        s.apply(
            &POOLS,
            &Scope::default(),
            Event::Apply(pool("bad", json!(["192.0.2.0/24"]))),
        );
        let r = s.objects().next().expect("kept");
        assert!(r.object.is_some() && r.diagnostics.is_empty());
        let deleted = s.apply(
            &POOLS,
            &Scope::default(),
            Event::Delete(pool("bad", json!([]))),
        );
        assert!(deleted.changed);
        assert!(names(&s).is_empty());
        assert!(
            !s.apply(
                &POOLS,
                &Scope::default(),
                Event::Delete(pool("bad", json!([])))
            )
            .changed
        );
    }

    #[test]
    fn an_update_of_what_herald_does_not_read_changes_nothing() {
        use crate::kinds::NODES;
        use k8s_openapi::api::core::v1::Node;
        let node = |rv: &str, heartbeat: &str, unavailable: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "metadata": {"name": "n1", "resourceVersion": rv},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat},
                    {"type": "NetworkUnavailable", "status": unavailable}]},
            }))
            .expect("a DynamicObject")
        };
        let scope = Scope::default();
        let mut s = Store::<Node>::default();
        assert!(
            s.apply(&NODES, &scope, Event::Apply(node("1", "t1", "False")))
                .changed
        );
        // A kubelet heartbeat: a new resourceVersion, nothing herald reads.
        assert!(
            !s.apply(&NODES, &scope, Event::Apply(node("2", "t2", "False")))
                .changed
        );
        let shown = s
            .objects()
            .next()
            .and_then(|r| r.object.as_ref())
            .expect("held");
        assert_eq!(shown.object.metadata.resource_version.as_deref(), Some("2"));
        assert!(
            s.apply(&NODES, &scope, Event::Apply(node("3", "t3", "True")))
                .changed
        );
    }
}
