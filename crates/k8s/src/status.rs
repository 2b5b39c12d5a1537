//! [`ServiceStatusWriter`]: MetalLB's `ServiceL2Status` and `ServiceBGPStatus` objects for one
//! node, so `kubectl get servicel2statuses,servicebgpstatuses` shows where each Service is
//! announced as it does with MetalLB.
//!
//! Level-based: the speaker says what the node announces now (Layer 2: which addresses of which
//! Service, on which interfaces; BGP: to which peers), and a task of its own creates, updates
//! and deletes the node's objects to match, writing only what changed. Objects are named
//! `l2-XXXXX` / `bgp-XXXXX` (generated) in herald's namespace and labelled
//! `metallb.io/node`, `metallb.io/service-name` and `metallb.io/service-namespace`, MetalLB's
//! names, so the objects of one node and one Service are found by label. On start the task
//! lists the node's existing objects, so a restarted speaker adopts them rather than adding
//! copies. A failed write is tried again after a pause.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use model::status::{
    InterfaceInfo, LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE,
    MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatus, ServiceL2Status,
};
use model::world::ServiceRef;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};

/// How long a failed write waits before the next try.
const RETRY: Duration = Duration::from_secs(2);

/// What one node announces, as the status objects say it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announced {
    /// Per Service, the addresses this node answers for at Layer 2 and the interfaces for
    /// each (empty: every interface).
    pub l2: BTreeMap<ServiceRef, BTreeMap<IpAddr, BTreeSet<String>>>,
    /// Per Service, the BGP peers it is announced to from this node.
    pub bgp: BTreeMap<ServiceRef, BTreeSet<String>>,
}

impl Announced {
    fn l2_status(&self, node: &str, service: &ServiceRef) -> Option<MetalLBServiceL2Status> {
        let ips = self.l2.get(service).filter(|ips| !ips.is_empty())?;
        // Every interface when any address is answered on every interface.
        let interfaces: BTreeSet<String> = if ips.values().any(BTreeSet::is_empty) {
            BTreeSet::new()
        } else {
            ips.values().flatten().cloned().collect()
        };
        Some(MetalLBServiceL2Status {
            node: node.to_owned(),
            service_name: service.name.clone(),
            service_namespace: service.namespace.clone(),
            interfaces: interfaces
                .into_iter()
                .map(|name| InterfaceInfo { name })
                .collect(),
        })
    }

    fn bgp_status(&self, node: &str, service: &ServiceRef) -> Option<MetalLBServiceBGPStatus> {
        let peers = self.bgp.get(service).filter(|p| !p.is_empty())?;
        Some(MetalLBServiceBGPStatus {
            node: node.to_owned(),
            service_name: service.name.clone(),
            service_namespace: service.namespace.clone(),
            peers: peers.iter().cloned().collect(),
        })
    }
}

/// A handle on the node's status writer; clones share it. Dropping every handle stops it.
#[derive(Clone)]
pub struct ServiceStatusWriter {
    tx: watch::Sender<Announced>,
}

impl ServiceStatusWriter {
    /// Starts the writer for `node`'s objects in `namespace`; call inside a tokio runtime.
    pub fn start(client: Client, namespace: impl Into<String>, node: impl Into<String>) -> Self {
        let (tx, rx) = watch::channel(Announced::default());
        tokio::spawn(run(client, namespace.into(), node.into(), rx));
        ServiceStatusWriter { tx }
    }

    /// This node answers for `service`'s address `ip` on `interfaces` (empty: every one).
    pub fn announce_l2(&self, service: &ServiceRef, ip: IpAddr, interfaces: BTreeSet<String>) {
        self.tx.send_if_modified(|a| {
            let entry = a.l2.entry(service.clone()).or_default();
            entry.insert(ip, interfaces.clone()) != Some(interfaces)
        });
    }

    /// This node no longer answers for `service`'s address `ip`.
    pub fn withdraw_l2(&self, service: &ServiceRef, ip: IpAddr) {
        self.tx.send_if_modified(|a| {
            let Some(ips) = a.l2.get_mut(service) else {
                return false;
            };
            let removed = ips.remove(&ip).is_some();
            if ips.is_empty() {
                a.l2.remove(service);
            }
            removed
        });
    }

    /// Everything this node answers for at Layer 2, replacing what was said before.
    pub fn set_l2(&self, l2: BTreeMap<ServiceRef, BTreeMap<IpAddr, BTreeSet<String>>>) {
        self.tx
            .send_if_modified(|a| std::mem::replace(&mut a.l2, l2.clone()) != l2);
    }

    /// The peers each Service is announced to from this node, replacing what was said before.
    pub fn set_bgp(&self, bgp: BTreeMap<ServiceRef, BTreeSet<String>>) {
        self.tx
            .send_if_modified(|a| std::mem::replace(&mut a.bgp, bgp.clone()) != bgp);
    }

    /// The BGP peers of each Service in a node's plan: MetalLB's ServiceBGPStatus lists the
    /// peers a Service is configured to be announced to, whatever the sessions' state.
    pub fn bgp_of(plan: &model::NodePlan) -> BTreeMap<ServiceRef, BTreeSet<String>> {
        let mut out: BTreeMap<ServiceRef, BTreeSet<String>> = BTreeMap::new();
        for peer in &plan.bgp {
            for route in &peer.routes {
                for service in &route.services {
                    out.entry(service.clone())
                        .or_default()
                        .insert(peer.peer.name.clone());
                }
            }
        }
        out
    }
}

/// One kind of status object: how to name, find and fill it.
struct Kind {
    resource: ApiResource,
    prefix: &'static str,
}

/// The node's objects of one kind: per Service, the objects found (the first is kept).
type Existing = BTreeMap<ServiceRef, Vec<(String, Value)>>;

async fn run(client: Client, namespace: String, node: String, mut rx: watch::Receiver<Announced>) {
    let kinds = [
        Kind {
            resource: ApiResource::erase::<ServiceL2Status>(&()),
            prefix: "l2-",
        },
        Kind {
            resource: ApiResource::erase::<ServiceBGPStatus>(&()),
            prefix: "bgp-",
        },
    ];
    let apis: Vec<Api<DynamicObject>> = kinds
        .iter()
        .map(|k| Api::namespaced_with(client.clone(), &namespace, &k.resource))
        .collect();
    let mut existing: Vec<Option<Existing>> = vec![None, None];
    loop {
        let want = rx.borrow_and_update().clone();
        let mut ok = true;
        for (i, kind) in kinds.iter().enumerate() {
            if existing[i].is_none() {
                match list(&apis[i], &node).await {
                    Ok(found) => existing[i] = Some(found),
                    Err(e) => {
                        warn!(error = %e, kind = %kind.resource.kind, "cannot list the node's status objects");
                        ok = false;
                        continue;
                    }
                }
            }
            let Some(have) = existing[i].as_mut() else {
                continue;
            };
            if let Err(e) = reconcile(&apis[i], kind, i == 0, &node, &want, have).await {
                warn!(error = %e, kind = %kind.resource.kind, "cannot write a status object; trying again");
                // Read again what is there: the write may have half happened.
                existing[i] = None;
                ok = false;
            }
        }
        if !ok {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn list(api: &Api<DynamicObject>, node: &str) -> Result<Existing, kube::Error> {
    let objects = api
        .list(&ListParams::default().labels(&format!("{LABEL_NODE}={node}")))
        .await?;
    let mut out: Existing = BTreeMap::new();
    for o in objects.items {
        let labels = o.metadata.labels.clone().unwrap_or_default();
        let (Some(name), Some(ns)) = (
            labels.get(LABEL_SERVICE_NAME),
            labels.get(LABEL_SERVICE_NAMESPACE),
        ) else {
            continue;
        };
        let key = ServiceRef {
            namespace: ns.clone(),
            name: name.clone(),
        };
        let status = o.data.get("status").cloned().unwrap_or(Value::Null);
        out.entry(key)
            .or_default()
            .push((o.metadata.name.clone().unwrap_or_default(), status));
    }
    Ok(out)
}

async fn reconcile(
    api: &Api<DynamicObject>,
    kind: &Kind,
    l2: bool,
    node: &str,
    want: &Announced,
    have: &mut Existing,
) -> Result<(), kube::Error> {
    let wanted: BTreeMap<ServiceRef, Value> = if l2 {
        want.l2
            .keys()
            .filter_map(|s| {
                Some((
                    s.clone(),
                    serde_json::to_value(want.l2_status(node, s)?).ok()?,
                ))
            })
            .collect()
    } else {
        want.bgp
            .keys()
            .filter_map(|s| {
                Some((
                    s.clone(),
                    serde_json::to_value(want.bgp_status(node, s)?).ok()?,
                ))
            })
            .collect()
    };
    // Objects of Services no longer announced here, and duplicates, go.
    let keys: Vec<ServiceRef> = have.keys().cloned().collect();
    for key in keys {
        let objects = have.get_mut(&key).map(std::mem::take).unwrap_or_default();
        let keep = wanted.contains_key(&key);
        let mut kept = Vec::new();
        for (i, (name, status)) in objects.into_iter().enumerate() {
            if keep && i == 0 {
                kept.push((name, status));
                continue;
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => debug!(object = %name, "status object deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    have.insert(key.clone(), kept);
                    return Err(e);
                }
            }
        }
        if kept.is_empty() {
            have.remove(&key);
        } else {
            have.insert(key, kept);
        }
    }
    for (key, status) in wanted {
        let current = have.get(&key).and_then(|o| o.first()).cloned();
        let name = match current {
            Some((_, s)) if s == status => continue,
            Some((name, _)) => name,
            None => {
                let labels: BTreeMap<String, String> = [
                    (LABEL_NODE.to_owned(), node.to_owned()),
                    (LABEL_SERVICE_NAME.to_owned(), key.name.clone()),
                    (LABEL_SERVICE_NAMESPACE.to_owned(), key.namespace.clone()),
                ]
                .into();
                let mut object = DynamicObject::new("", &kind.resource);
                object.metadata = ObjectMeta {
                    generate_name: Some(kind.prefix.to_owned()),
                    labels: Some(labels),
                    ..Default::default()
                };
                object.data = json!({"spec": {}});
                let created = api.create(&PostParams::default(), &object).await?;
                let name = created.metadata.name.unwrap_or_default();
                have.insert(key.clone(), vec![(name.clone(), Value::Null)]);
                name
            }
        };
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
        have.insert(key, vec![(name, status)]);
    }
    Ok(())
}
