//! The Layer 2 actuator: makes the plan's L2 announcements true on this node's links.
//!
//! The plan says which addresses this node may answer for and on which interfaces
//! (every usable one, or those the L2Advertisements name). Here they are resolved against
//! the links rtnetlink reports, and the responder is told which addresses to answer for on
//! which interface. Resolution runs again whenever the plan or the links change, so an
//! interface that appears later is served, and one that goes away is dropped.
//!
//! In file mode there is no election: every eligible node answers. An address whose
//! advertisements name only interfaces this node does not have is not answered here, and
//! `/status` and the log say so.

use crate::metrics::{Family, counter_family, gauge_family};
use l2::{InterfaceSelection, LinkTable, Responder};
use model::plan::{Interfaces, L2Announcement};
use model::world::ServiceRef;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Where one planned address is answered on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub ip: IpAddr,
    pub service: ServiceRef,
    /// The links answering for it. Empty: this node is not eligible for the address.
    pub interfaces: BTreeSet<String>,
    /// Interfaces the advertisements name that this node does not have (as Ethernet links).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub unmatched: BTreeSet<String>,
}

impl Assignment {
    /// Why this node does not answer for the address, when it does not.
    pub fn why_not(&self) -> Option<String> {
        if !self.interfaces.is_empty() {
            return None;
        }
        Some(if self.unmatched.is_empty() {
            "this node has no usable interface (every link is loopback, virtual, or a bridge or bond member); name one in the L2Advertisement's interfaces".to_owned()
        } else {
            let named = self
                .unmatched
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            format!("no interface of this node matches the L2Advertisement's interfaces ({named})")
        })
    }
}

/// Resolves every announcement against `links`: which addresses each interface answers for,
/// and for each address where it is answered.
pub fn assign(
    announcements: &[L2Announcement],
    links: &LinkTable,
) -> (BTreeMap<String, BTreeSet<IpAddr>>, Vec<Assignment>) {
    let mut owned: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    let mut assignments = Vec::with_capacity(announcements.len());
    for a in announcements {
        let selection = match &a.interfaces {
            Interfaces::Any => InterfaceSelection::Any,
            Interfaces::Only(names) => InterfaceSelection::Only(names.clone()),
        };
        let resolved = l2::resolve(&selection, links.links.values());
        for name in &resolved.interfaces {
            owned.entry(name.clone()).or_default().insert(a.ip);
        }
        assignments.push(Assignment {
            ip: a.ip,
            service: a.service.clone(),
            interfaces: resolved.interfaces,
            unmatched: resolved.unmatched,
        });
    }
    (owned, assignments)
}

/// What `/status` shows of Layer 2.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Layer2Status {
    /// Why the responder is not running, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub addresses: Vec<Assignment>,
    pub interfaces: BTreeMap<String, InterfaceStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InterfaceStatus {
    pub listening: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub frames_read: u64,
}

/// The running Layer 2 actuator.
#[derive(Debug)]
pub struct Layer2 {
    plan: watch::Sender<Arc<Vec<L2Announcement>>>,
    state: Arc<State>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    responder: Option<Responder>,
    start_error: Option<String>,
    assignments: Mutex<Vec<Assignment>>,
}

impl Layer2 {
    /// Starts following this namespace's links. A failure to do so (no netlink) is logged
    /// and shown in `/status`; the rest of herald keeps running without Layer 2.
    pub async fn start(config: l2::Config) -> Layer2 {
        let (responder, start_error) = match Responder::start(config).await {
            Ok(r) => (Some(r), None),
            Err(e) => {
                let e = format!("cannot follow this node's links, so Layer 2 is off: {e}");
                warn!(error = %e, "layer 2 responder not started");
                (None, Some(e))
            }
        };
        let state = Arc::new(State {
            responder,
            start_error,
            assignments: Mutex::new(Vec::new()),
        });
        let (plan, plan_rx) = watch::channel(Arc::new(Vec::new()));
        let task = state.responder.as_ref().map(|r| {
            tokio::spawn(reconcile_loop(
                state.clone(),
                plan_rx,
                r.links().subscribe(),
            ))
        });
        Layer2 {
            plan,
            state,
            task: Mutex::new(task),
        }
    }

    /// Makes `announcements` the addresses to answer for (level-based).
    pub fn set(&self, announcements: &[L2Announcement]) {
        let new = Arc::new(announcements.to_vec());
        self.plan.send_if_modified(|current| {
            let changed = **current != *new;
            *current = new;
            changed
        });
    }

    pub fn status(&self) -> Layer2Status {
        let interfaces = self
            .state
            .responder
            .as_ref()
            .map(|r| {
                r.stats()
                    .interfaces
                    .into_iter()
                    .map(|(name, s)| {
                        let status = InterfaceStatus {
                            listening: s.listening,
                            error: s.error,
                            frames_read: s.frames_read,
                        };
                        (name, status)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Layer2Status {
            error: self.state.start_error.clone(),
            addresses: self.state.assignments().clone(),
            interfaces,
        }
    }

    /// Where `announcements` would be answered on the links as they are now; `Err` when
    /// Layer 2 is off on this node.
    pub fn resolve(&self, announcements: &[L2Announcement]) -> Result<Vec<Assignment>, String> {
        match &self.state.responder {
            Some(r) => Ok(assign(announcements, &r.links().table()).1),
            None => Err(self.state.start_error.clone().unwrap_or_default()),
        }
    }

    /// The addresses answered for on at least one interface.
    pub fn announced(&self) -> BTreeSet<(ServiceRef, String)> {
        self.state
            .assignments()
            .iter()
            .filter(|a| !a.interfaces.is_empty())
            .map(|a| (a.service.clone(), a.ip.to_string()))
            .collect()
    }

    /// Why Layer 2 is not healthy: a task of the responder that ended and is not running
    /// again yet (for `/healthz`). Empty when all is well, or when Layer 2 is off.
    pub fn problems(&self) -> Vec<String> {
        self.state
            .responder
            .as_ref()
            .map(|r| r.health().problems())
            .unwrap_or_default()
    }

    /// The metrics of Layer 2, read at scrape time.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(Layer2Collector(self.state.clone()))
    }
}

impl Layer2 {
    /// Stops answering for every address, at once and for good.
    pub fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
        if let Some(r) = &self.state.responder {
            r.set_owned(&BTreeMap::new());
        }
        let stopped = std::mem::take(&mut *self.state.assignments());
        log_changes(&stopped, &[]);
    }
}

impl Drop for Layer2 {
    fn drop(&mut self) {
        self.stop();
    }
}

impl State {
    fn assignments(&self) -> std::sync::MutexGuard<'_, Vec<Assignment>> {
        self.assignments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn reconcile_loop(
    state: Arc<State>,
    mut plan: watch::Receiver<Arc<Vec<L2Announcement>>>,
    mut links: watch::Receiver<Arc<LinkTable>>,
) {
    let Some(responder) = &state.responder else {
        return;
    };
    // Socket trouble (no CAP_NET_RAW, say) is only seen in the responder's counters; a look
    // once a second puts it in the log.
    let mut tick = tokio::time::interval(SOCKET_CHECK_INTERVAL);
    let mut socket_errors: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut dirty = true;
    loop {
        if dirty {
            let announcements = plan.borrow_and_update().clone();
            let table = links.borrow_and_update().clone();
            let (owned, assignments) = assign(&announcements, &table);
            responder.set_owned(&owned);
            let previous = std::mem::replace(&mut *state.assignments(), assignments.clone());
            log_changes(&previous, &assignments);
        }
        tokio::select! {
            r = plan.changed() => if r.is_err() { return } else { dirty = true },
            r = links.changed() => if r.is_err() { return } else { dirty = true },
            _ = tick.tick() => {
                dirty = false;
                log_socket_errors(responder, &mut socket_errors);
            }
        }
    }
}

const SOCKET_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn log_socket_errors(responder: &Responder, seen: &mut BTreeMap<String, Option<String>>) {
    for (name, s) in responder.stats().interfaces {
        if seen.get(&name) == Some(&s.error) {
            continue;
        }
        match &s.error {
            Some(e) => error!(
                protocol = "layer2",
                interface = %name,
                error = %e,
                hint = e
                    .contains("not permitted")
                    .then_some("herald needs CAP_NET_RAW (and CAP_NET_ADMIN) for Layer 2"),
                "cannot listen on the interface, so nothing is answered there"
            ),
            None if seen.get(&name).is_some_and(Option::is_some) => {
                info!(protocol = "layer2", interface = %name, "listening on the interface again")
            }
            None => {}
        }
        seen.insert(name, s.error);
    }
}

/// One line per address whose answering interfaces changed, so the log tells when this
/// node started or stopped answering for an address, and why not when it cannot.
fn log_changes(before: &[Assignment], after: &[Assignment]) {
    let old: BTreeMap<IpAddr, &Assignment> = before.iter().map(|a| (a.ip, a)).collect();
    let new: BTreeMap<IpAddr, &Assignment> = after.iter().map(|a| (a.ip, a)).collect();
    for (ip, a) in &new {
        let was = old.get(ip);
        if was.map(|w| (&w.interfaces, &w.unmatched)) == Some((&a.interfaces, &a.unmatched)) {
            continue;
        }
        match a.why_not() {
            Some(why) => warn!(
                protocol = "layer2",
                %ip,
                service = %a.service,
                reason = %why,
                "not answering ARP/NDP: this node is not eligible for the address"
            ),
            None => {
                let interfaces = a.interfaces.iter().cloned().collect::<Vec<_>>().join(",");
                info!(protocol = "layer2", %ip, service = %a.service, interfaces, "answering ARP/NDP");
            }
        }
    }
    for (ip, a) in &old {
        if !new.contains_key(ip) && !a.interfaces.is_empty() {
            info!(protocol = "layer2", %ip, service = %a.service, "stopped answering ARP/NDP");
        }
    }
}

#[derive(Debug)]
struct Layer2Collector(Arc<State>);

impl Collector for Layer2Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(responder) = &self.0.responder else {
            return Ok(());
        };
        let stats = responder.stats();
        let by_ip = |f: fn(&l2::AddressStats) -> u64| -> Family {
            stats
                .addresses
                .iter()
                .map(|(ip, s)| (vec![("ip", ip.to_string())], f(s)))
                .collect()
        };
        // MetalLB's names carry no `_total`: typed `unknown`, they keep their exact names.
        gauge_family(
            &mut encoder,
            "metallb_layer2_requests_received",
            "ARP requests and neighbor solicitations received for owned addresses",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.requests_received),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_layer2_responses_sent",
            "ARP replies and neighbor advertisements sent in answer",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.responses_sent),
        )?;
        gauge_family(
            &mut encoder,
            "metallb_layer2_gratuitous_sent",
            "Gratuitous ARP and unsolicited neighbor advertisements sent",
            prometheus_client::metrics::MetricType::Unknown,
            by_ip(|s| s.gratuitous_sent),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_frames_read",
            "Frames that passed the socket filter, by interface",
            stats
                .interfaces
                .iter()
                .map(|(name, s)| (vec![("interface", name.clone())], s.frames_read))
                .collect(),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_dropped",
            "Frames read that got no answer, by interface and reason",
            stats
                .interfaces
                .iter()
                .flat_map(|(name, s)| {
                    l2::responder::drop_labels().map(move |reason| {
                        let n = s.dropped.get(reason).copied().unwrap_or(0);
                        let labels = vec![("interface", name.clone()), ("reason", reason.into())];
                        (labels, n)
                    })
                })
                .collect(),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_address_conflicts",
            "Claims of an owned address on the wire by a MAC that is not a herald node, by address",
            by_ip(|s| s.conflicts),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_claims",
            "Claims of an owned address on the wire by another MAC (herald nodes' included), by address",
            by_ip(|s| s.claims),
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_claims_lost",
            "Claims a slow receiver never saw",
            vec![(vec![], stats.claims_lost)],
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_rate_limited",
            "Actions held back by a rate limit, by interface and what",
            stats
                .interfaces
                .iter()
                .flat_map(|(name, s)| {
                    l2::responder::rate_limited_labels().map(move |what| {
                        let n = s.rate_limited.get(what).copied().unwrap_or(0);
                        (vec![("interface", name.clone()), ("what", what.into())], n)
                    })
                })
                .collect(),
        )?;
        let health = responder.health();
        let tasks = std::iter::once(("link_monitor".to_owned(), &health.link_monitor.task)).chain(
            health
                .interfaces
                .iter()
                .map(|(n, t)| (format!("interface:{n}"), t)),
        );
        let (mut up, mut restarts) = (Vec::new(), Vec::new());
        for (task, h) in tasks {
            up.push((vec![("task", task.clone())], u64::from(h.up)));
            restarts.push((vec![("task", task)], h.restarts));
        }
        gauge_family(
            &mut encoder,
            "herald_l2_task_up",
            "1 while a task of the Layer 2 responder runs, 0 between its unexpected end and its restart",
            prometheus_client::metrics::MetricType::Gauge,
            up,
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_task_restarts",
            "Times a task of the Layer 2 responder ended unexpectedly and was started again",
            restarts,
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_link_resyncs",
            "Full reads of links and addresses after lost netlink events or an interrupted dump",
            vec![(vec![], health.link_monitor.resyncs)],
        )?;
        counter_family(
            &mut encoder,
            "herald_l2_send_errors",
            "Replies and announcements that could not be sent, by interface",
            stats
                .interfaces
                .iter()
                .map(|(name, s)| (vec![("interface", name.clone())], s.send_errors))
                .collect(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2::{EthernetAddress, Link};

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(EthernetAddress([2, 0, 0, 0, 0, index as u8])),
            hardware_type: 1,
            flags: 0x1 | 0x40,
            master: None,
            kind: None,
            up_generation: 0,
            addresses: Default::default(),
        }
    }

    fn table(names: &[&str]) -> LinkTable {
        LinkTable {
            links: names
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u32 + 1, link(i as u32 + 1, n)))
                .collect(),
        }
    }

    fn announcement(ip: &str, interfaces: Interfaces) -> L2Announcement {
        L2Announcement {
            ip: ip.parse().expect("ip"),
            service: ServiceRef {
                namespace: "default".into(),
                name: "web".into(),
            },
            pool: "pool".into(),
            advertisements: BTreeSet::new(),
            interfaces,
        }
    }

    #[test]
    fn any_means_every_default_candidate_and_names_narrow_it() {
        let links = table(&["eth0", "eth1", "veth12", "docker0"]);
        let only = Interfaces::Only(["eth1".to_owned(), "bond9".to_owned()].into());
        let (owned, assignments) = assign(
            &[
                announcement("192.0.2.10", Interfaces::Any),
                announcement("2001:db8::10", only),
            ],
            &links,
        );
        let v4: IpAddr = "192.0.2.10".parse().expect("ip");
        let v6: IpAddr = "2001:db8::10".parse().expect("ip");
        assert_eq!(
            owned,
            BTreeMap::from([
                ("eth0".to_owned(), BTreeSet::from([v4])),
                ("eth1".to_owned(), BTreeSet::from([v4, v6])),
            ])
        );
        assert_eq!(
            assignments[1].unmatched,
            BTreeSet::from(["bond9".to_owned()])
        );
    }

    #[test]
    fn named_interfaces_missing_here_make_the_node_ineligible() {
        let links = table(&["eth0"]);
        let only = Interfaces::Only(["ens5".to_owned()].into());
        let (owned, assignments) = assign(&[announcement("192.0.2.10", only)], &links);
        assert!(owned.is_empty());
        assert!(assignments[0].interfaces.is_empty());
        assert_eq!(
            assignments[0].unmatched,
            BTreeSet::from(["ens5".to_owned()])
        );
    }
}
