//! A reflector store for one watch: the objects it last saw, each already read.
//!
//! It follows the watcher's protocol as kube-rs's reflector does: a re-list (`Init`,
//! `InitApply`..., `InitDone`) is gathered aside and then replaces the whole store, so an object
//! deleted while the watch was away disappears, rather than lingering beside the new list.
//! Unlike the reflector, it keeps objects read (or the diagnostic saying why one could not be
//! read), so each object is typed once when it arrives, not again for every snapshot.

use crate::kinds::Kind;
use crate::read::{Read, read};
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// `(namespace, name)`.
type Key = (Option<String>, String);

#[derive(Debug)]
pub(crate) struct Store<K> {
    objects: BTreeMap<Key, Read<K>>,
    /// A re-list in progress: shown once complete.
    relisting: Option<BTreeMap<Key, Read<K>>>,
    synced: bool,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// What the store shows changed (or a re-list completed, which must be published even
    /// when it found nothing new, since what it replaced is unknown to the reader).
    pub changed: bool,
    /// Objects the event carried.
    pub received: u64,
    /// Of those, the ones that could not be read.
    pub unreadable: u64,
}

fn key<K>(read: &Read<K>) -> Key {
    (
        read.reference.namespace.clone(),
        read.reference.name.clone().unwrap_or_default(),
    )
}

impl<K: DeserializeOwned> Store<K> {
    pub fn apply(&mut self, kind: &Kind, event: Event<DynamicObject>) -> Applied {
        let received = |r: &Read<K>| Applied {
            changed: false,
            received: 1,
            unreadable: u64::from(r.object.is_none()),
        };
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Applied::default()
            }
            Event::InitApply(object) => {
                let r = read(kind, object);
                let applied = received(&r);
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&r), r);
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
                let r = read(kind, object);
                let applied = received(&r);
                self.objects.insert(key(&r), r);
                Applied {
                    changed: true,
                    ..applied
                }
            }
            Event::Delete(object) => {
                let k = (
                    object.metadata.namespace,
                    object.metadata.name.unwrap_or_default(),
                );
                Applied {
                    changed: self.objects.remove(&k).is_some(),
                    received: 1,
                    unreadable: 0,
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
        s.apply(&POOLS, Event::Init);
        s.apply(&POOLS, Event::InitApply(pool("a", json!(["192.0.2.0/28"]))));
        assert!(!s.synced());
        assert!(
            names(&s).is_empty(),
            "nothing is shown before the list completes"
        );
        assert!(s.apply(&POOLS, Event::InitDone).changed);
        assert!(s.synced());
        s.apply(&POOLS, Event::Apply(pool("b", json!(["192.0.2.16/28"]))));
        assert_eq!(names(&s), ["a", "b"]);

        // The watch was away: "a" was deleted meanwhile and "c" created. Until the re-list
        // completes, the old objects stay; then only the listed ones remain.
        s.apply(&POOLS, Event::Init);
        s.apply(
            &POOLS,
            Event::InitApply(pool("b", json!(["192.0.2.16/28"]))),
        );
        s.apply(
            &POOLS,
            Event::InitApply(pool("c", json!(["192.0.2.32/28"]))),
        );
        assert_eq!(names(&s), ["a", "b"]);
        let done = s.apply(&POOLS, Event::InitDone);
        assert!(done.changed, "a completed re-list is always published");
        assert_eq!(names(&s), ["b", "c"]);
    }

    #[test]
    fn a_kind_the_server_does_not_serve_counts_as_listed_and_empty() {
        let mut s = Store::<IPAddressPool>::default();
        assert!(s.absent(), "newly synced");
        assert!(s.synced());
        assert!(!s.absent(), "still absent: nothing to publish");
        s.apply(&POOLS, Event::Apply(pool("a", json!(["192.0.2.0/28"]))));
        assert!(s.absent(), "what it held is gone");
        assert!(names(&s).is_empty());
    }

    #[test]
    fn unreadable_objects_are_kept_as_diagnostics_and_counted() {
        let mut s = Store::<IPAddressPool>::default();
        let applied = s.apply(&POOLS, Event::Apply(pool("bad", json!("not a list"))));
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
        s.apply(&POOLS, Event::Apply(pool("bad", json!(["192.0.2.0/24"]))));
        let r = s.objects().next().expect("kept");
        assert!(r.object.is_some() && r.diagnostics.is_empty());
        let deleted = s.apply(&POOLS, Event::Delete(pool("bad", json!([]))));
        assert!(deleted.changed);
        assert!(names(&s).is_empty());
        assert!(
            !s.apply(&POOLS, Event::Delete(pool("bad", json!([]))))
                .changed
        );
    }
}
