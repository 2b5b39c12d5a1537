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
//!
//! A store can also park objects: kept, not shown, as the compact JSON of what herald reads
//! of them ([`compact`]), with the key of what they belong to. EndpointSlices of Services that
//! are not herald's are parked (in a cluster most slices are such, and a read slice takes
//! several times the room), and read when their Service becomes herald's.

use crate::kinds::Kind;
use crate::read::{Read, Scope, compact, expand, read};
use kube::Resource;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// `(namespace, name)`.
pub(crate) type Key = (Option<String>, String);

pub(crate) struct Store<K> {
    objects: BTreeMap<Key, Read<K>>,
    parked: BTreeMap<Key, Parked>,
    /// A re-list in progress: shown once complete.
    relisting: Option<Listing<K>>,
    synced: bool,
}

/// An object kept aside: what it belongs to, and what herald reads of it as JSON.
struct Parked {
    owner: Key,
    json: Box<[u8]>,
}

struct Listing<K> {
    objects: BTreeMap<Key, Read<K>>,
    parked: BTreeMap<Key, Parked>,
}

impl<K> Default for Listing<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            parked: BTreeMap::new(),
        }
    }
}

/// Counts only: a store may hold Secrets.
impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("objects", &self.objects.len())
            .field("parked", &self.parked.len())
            .field(
                "relisting",
                &self.relisting.as_ref().map(|l| l.objects.len()),
            )
            .field("synced", &self.synced)
            .finish()
    }
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            parked: BTreeMap::new(),
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

pub(crate) fn key_of(object: &DynamicObject) -> Key {
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
        self.apply_parking(kind, scope, event, |_| None)
    }

    /// [`Store::apply`], parking each object `park` names an owner for instead of reading it.
    pub fn apply_parking(
        &mut self,
        kind: &Kind,
        scope: &Scope,
        event: Event<DynamicObject>,
        park: impl Fn(&DynamicObject) -> Option<Key>,
    ) -> Applied {
        let received = |r: Option<&Read<K>>| Applied {
            received: 1,
            unreadable: u64::from(r.is_some_and(|r| r.object.is_none())),
            ..Applied::default()
        };
        match event {
            Event::Init => {
                self.relisting = Some(Listing::default());
                Applied::default()
            }
            Event::InitApply(object) => {
                let key = key_of(&object);
                let listing = self.relisting.get_or_insert_with(Listing::default);
                if let Some(owner) = park(&object) {
                    let json = compact(kind, object);
                    listing.parked.insert(key, Parked { owner, json });
                    return received(None);
                }
                let r = read(kind, scope, object);
                let applied = received(r.as_ref());
                if let Some(r) = r {
                    listing.objects.insert(key, r);
                }
                applied
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.objects = listed.objects;
                    self.parked = listed.parked;
                }
                self.synced = true;
                Applied {
                    changed: true,
                    ..Applied::default()
                }
            }
            Event::Apply(object) => {
                let key = key_of(&object);
                if let Some(owner) = park(&object) {
                    let json = compact(kind, object);
                    self.parked.insert(key.clone(), Parked { owner, json });
                    return Applied {
                        changed: self.objects.remove(&key).is_some(),
                        ..received(None)
                    };
                }
                self.parked.remove(&key);
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
                self.parked.remove(&key);
                let changed = self.objects.remove(&key).is_some();
                Applied {
                    changed,
                    received: 1,
                    ..Applied::default()
                }
            }
        }
    }

    /// Shows the objects `owner_of` says belong to what `shown` accepts, and parks the others:
    /// reads the parked ones that now belong, and parks the shown ones that no longer do (one
    /// that could not be read has nothing to park and is dropped; its next change, or the next
    /// list, brings it back). Says whether what is shown changed.
    pub fn rehome(
        &mut self,
        kind: &Kind,
        scope: &Scope,
        owner_of: impl Fn(&Read<K>) -> Option<Key>,
        shown: impl Fn(&Key) -> bool,
    ) -> bool
    where
        K: Serialize,
    {
        let leaving: Vec<(Key, Key)> = self
            .objects
            .iter()
            .filter_map(|(k, r)| owner_of(r).filter(|o| !shown(o)).map(|o| (k.clone(), o)))
            .collect();
        let coming: Vec<Key> = self
            .parked
            .iter()
            .filter(|(_, p)| shown(&p.owner))
            .map(|(k, _)| k.clone())
            .collect();
        for (key, owner) in &leaving {
            let Some(r) = self.objects.remove(key) else {
                continue;
            };
            if let Some(o) = &r.object
                && let Ok(json) = serde_json::to_vec(&*o.object)
            {
                let owner = owner.clone();
                let json = json.into();
                self.parked.insert(key.clone(), Parked { owner, json });
            }
        }
        for key in &coming {
            let Some(parked) = self.parked.remove(key) else {
                continue;
            };
            if let Some(r) = expand(&parked.json).and_then(|o| read(kind, scope, o)) {
                self.objects.insert(key.clone(), r);
            }
        }
        !leaving.is_empty() || !coming.is_empty()
    }
}

impl<K> Store<K> {
    /// The API server does not serve the kind at all (its CRD is not installed): there are
    /// none, which is as good as a completed list. Says whether that changed what is shown.
    pub fn absent(&mut self) -> bool {
        let changed = !self.synced || !self.objects.is_empty();
        self.objects.clear();
        self.parked.clear();
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

#[cfg(test)]
mod parking {
    use super::*;
    use crate::kinds::ENDPOINT_SLICES;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn slice(name: &str, service: &str, node: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": "5",
                         "labels": {"kubernetes.io/service-name": service},
                         "managedFields": [{"manager": "kube-controller-manager"}]},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": node,
                           "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns"}}],
        }))
        .expect("a DynamicObject")
    }

    fn owner(r: &Read<EndpointSlice>) -> Option<Key> {
        let o = &r.object.as_ref()?.object;
        let service = o
            .metadata
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?;
        Some((o.metadata.namespace.clone(), service.clone()))
    }

    #[test]
    fn a_parked_object_reads_as_it_would_have_and_parks_again() {
        let scope = Scope::default();
        let ours = |s: &str| (Some("ns".to_owned()), s.to_owned());
        let park_unless_a = |o: &DynamicObject| {
            let s = o
                .metadata
                .labels
                .as_ref()?
                .get("kubernetes.io/service-name")?;
            (s != "a").then(|| ours(s))
        };
        let mut direct = Store::<EndpointSlice>::default();
        direct.apply(
            &ENDPOINT_SLICES,
            &scope,
            Event::Apply(slice("b-1", "b", "n1")),
        );
        let expected = direct.objects().next().expect("read").clone();

        let mut s = Store::<EndpointSlice>::default();
        let a = s.apply_parking(
            &ENDPOINT_SLICES,
            &scope,
            Event::Apply(slice("a-1", "a", "n1")),
            park_unless_a,
        );
        assert!(a.changed, "a slice of a shown owner is shown");
        let b = s.apply_parking(
            &ENDPOINT_SLICES,
            &scope,
            Event::Apply(slice("b-1", "b", "n1")),
            park_unless_a,
        );
        assert!(!b.changed, "a parked slice changes nothing shown");
        assert_eq!(s.len(), 1);

        // b's Service becomes ours: its slice is read as if it had never been parked.
        assert!(s.rehome(&ENDPOINT_SLICES, &scope, owner, |_| true));
        assert_eq!(s.len(), 2);
        let unparked = s
            .objects()
            .find(|r| owner(r) == Some(ours("b")))
            .expect("shown");
        assert_eq!(
            unparked.object.as_ref().map(|o| &o.object),
            expected.object.as_ref().map(|o| &o.object)
        );
        assert_eq!(unparked.reference, expected.reference);
        assert!(
            !s.rehome(&ENDPOINT_SLICES, &scope, owner, |_| true),
            "nothing moves twice"
        );

        // a's Service stops being ours; an update while parked is kept, and shown when it is
        // ours again.
        assert!(s.rehome(&ENDPOINT_SLICES, &scope, owner, |o| *o == ours("b")));
        assert_eq!(s.len(), 1);
        s.apply_parking(
            &ENDPOINT_SLICES,
            &scope,
            Event::Apply(slice("a-1", "a", "n2")),
            |o| Some((o.metadata.namespace.clone(), "a".to_owned())),
        );
        assert!(s.rehome(&ENDPOINT_SLICES, &scope, owner, |_| true));
        let a = s
            .objects()
            .find(|r| owner(r) == Some(ours("a")))
            .expect("shown");
        let node = a
            .object
            .as_ref()
            .and_then(|o| o.object.endpoints[0].node_name.clone());
        assert_eq!(node.as_deref(), Some("n2"));
        // A deleted parked object is gone for good.
        s.rehome(&ENDPOINT_SLICES, &scope, owner, |_| false);
        s.apply_parking(
            &ENDPOINT_SLICES,
            &scope,
            Event::Delete(slice("a-1", "a", "n2")),
            |_| None,
        );
        s.rehome(&ENDPOINT_SLICES, &scope, owner, |_| true);
        assert_eq!(s.len(), 1);
    }
}
