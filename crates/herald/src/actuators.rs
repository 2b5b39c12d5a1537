//! The actuators together: each accepted plan goes to Layer 2 and to BGP, and both report
//! what they announce for `/status` and `/metrics`.

use crate::bgp_speaker::{BgpSpeaker, SessionStatus};
use crate::layer2::{Layer2, Layer2Status};
use crate::metrics::gauge_family;
use crate::supervise::Tasks;
use k8s::ServiceAnnouncement;
use model::NodePlan;
use model::plan::Protocol;
use model::world::ServiceRef;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the actuators behave, from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub l2: l2::Config,
    /// Announce GRACEFUL_SHUTDOWN and wait this long before closing BGP sessions.
    pub bgp_graceful_shutdown: Option<Duration>,
    /// Add the link-local address to IPv6 next hops for on-link peers.
    pub bgp_link_local_next_hop: bool,
}

#[derive(Debug)]
pub struct Actuators {
    node: String,
    layer2: Layer2,
    bgp: BgpSpeaker,
    /// The speaker's supervised tasks, theirs and the others'.
    tasks: Tasks,
}

/// What `/status` shows of the actuators.
#[derive(Serialize)]
pub struct Announcing {
    pub layer2: Layer2Status,
    pub bgp: Vec<SessionStatus>,
}

impl Actuators {
    /// Starts the actuators; with an elector (Kubernetes mode), Layer 2 answers only for the
    /// addresses this node is elected for.
    pub async fn start(
        node: String,
        options: Options,
        elector: Option<(
            election::Elector,
            tokio::sync::mpsc::UnboundedReceiver<election::Event>,
        )>,
        tasks: Tasks,
    ) -> Arc<Actuators> {
        Arc::new(Actuators {
            layer2: Layer2::start(node.clone(), options.l2, elector, &tasks).await,
            bgp: BgpSpeaker::start(
                node.clone(),
                options.bgp_graceful_shutdown,
                options.bgp_link_local_next_hop,
                &tasks,
            ),
            node,
            tasks,
        })
    }

    /// Makes `plan` true (level-based: applying the same plan again changes nothing).
    pub fn apply(&self, plan: &NodePlan) {
        self.layer2.set(&plan.l2);
        self.bgp.set(&plan.bgp, plan.departing);
    }

    /// This node's links, kept current by the Layer 2 responder's link monitor.
    pub fn links(&self) -> Option<tokio::sync::watch::Receiver<Arc<l2::LinkTable>>> {
        self.layer2.links()
    }

    /// Makes the task of BGP peer `peer` panic (a test); false when there is none.
    #[cfg(feature = "fault-injection")]
    pub fn panic_bgp_peer(&self, peer: &str) -> bool {
        self.bgp.panic_peer(peer)
    }

    /// Makes the Layer 2 task of `interface` panic (a test); false when there is none.
    #[cfg(feature = "fault-injection")]
    pub fn fail_interface(&self, interface: &str) -> bool {
        self.layer2.fail_interface(interface)
    }

    /// Why the speaker is not healthy (a task down, of the Layer 2 responder or one of
    /// the speaker's own); empty when it is.
    pub fn problems(&self) -> Vec<String> {
        self.tasks.problems()
    }

    pub fn status(&self) -> Announcing {
        Announcing {
            layer2: self.layer2.status(),
            bgp: self.bgp.status(),
        }
    }

    /// How this node stands towards each Service of `plan` (the running plan, applied):
    /// the protocols it announces the Service with, and what failed. For Events.
    /// What this node answers for at Layer 2 now: per Service, each address and its
    /// interfaces (for MetalLB's ServiceL2Status objects).
    pub fn l2_answering(
        &self,
        plan: &NodePlan,
    ) -> BTreeMap<ServiceRef, BTreeMap<IpAddr, BTreeSet<String>>> {
        let mut out: BTreeMap<ServiceRef, BTreeMap<IpAddr, BTreeSet<String>>> = BTreeMap::new();
        for a in self.layer2.resolve(&plan.l2).unwrap_or_default() {
            if a.answering && a.why_not().is_none() {
                out.entry(a.service).or_default().insert(a.ip, a.interfaces);
            }
        }
        out
    }

    pub fn service_report(&self, plan: &NodePlan) -> BTreeMap<ServiceRef, ServiceAnnouncement> {
        let mut report: BTreeMap<ServiceRef, ServiceAnnouncement> = BTreeMap::new();
        fn entry<'a>(
            report: &'a mut BTreeMap<ServiceRef, ServiceAnnouncement>,
            service: &ServiceRef,
        ) -> &'a mut ServiceAnnouncement {
            report.entry(service.clone()).or_default()
        }
        let elected = self.layer2.elected();
        let conflicts = self.layer2.conflicts();
        match self.layer2.resolve(&plan.l2) {
            Ok(assignments) => {
                for a in assignments {
                    let e = entry(&mut report, &a.service);
                    if let Some(conflict) = conflicts.get(&a.ip) {
                        e.conflicts.insert(conflict.clone());
                    }
                    match a.why_not() {
                        // With an election, another node answers instead: no failure.
                        Some(_) if elected => {}
                        Some(why) => add_failure(e, format!("layer2 {}: {why}", a.ip)),
                        None if a.answering => {
                            e.protocols.insert(Protocol::Layer2);
                        }
                        None => {}
                    }
                }
            }
            Err(why) => {
                for a in &plan.l2 {
                    add_failure(
                        entry(&mut report, &a.service),
                        format!("layer2 {}: {why}", a.ip),
                    );
                }
            }
        }
        let not_running = self.bgp.not_running();
        for peer in &plan.bgp {
            let problem = not_running.get(&peer.peer.name);
            for service in peer.routes.iter().flat_map(|r| &r.services) {
                let e = entry(&mut report, service);
                match problem {
                    Some(why) => add_failure(e, format!("bgp peer {}: {why}", peer.peer.name)),
                    None => {
                        e.protocols.insert(Protocol::Bgp);
                    }
                }
            }
        }
        report
    }

    pub fn collectors(self: &Arc<Self>) -> Vec<Box<dyn Collector>> {
        vec![
            self.layer2.collector(),
            self.bgp.collector(),
            self.tasks.collector(),
            Box::new(Announced(self.clone())),
        ]
    }

    /// Changes whenever the addresses this node answers for change (elections move them
    /// without any change of plan), so Events can be written again.
    pub fn changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.layer2.changed()
    }

    /// Stops answering at once and releases the addresses this node leads, then ends the BGP
    /// sessions (after the graceful shutdown wait, when one is set).
    pub async fn shutdown(&self) {
        // First, so that no task ended here counts as a failure or is started again.
        self.tasks.stop();
        self.layer2.stop().await;
        self.bgp.shutdown().await;
    }
}

fn add_failure(entry: &mut ServiceAnnouncement, why: String) {
    match &mut entry.failure {
        Some(f) if f.contains(&why) => {}
        Some(f) => {
            f.push_str("; ");
            f.push_str(&why);
        }
        None => entry.failure = Some(why),
    }
}

/// `metallb_speaker_announced`: one family for both protocols.
#[derive(Debug)]
struct Announced(Arc<Actuators>);

impl Collector for Announced {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let a = &self.0;
        let layer2 = a.layer2.announced().into_iter().map(|x| ("layer2", x));
        let bgp = a.bgp.announced().into_iter().map(|x| ("bgp", x));
        let samples = layer2
            .chain(bgp)
            .map(|(protocol, (service, ip))| {
                let labels = vec![
                    ("service", service.to_string()),
                    ("protocol", protocol.to_owned()),
                    ("node", a.node.clone()),
                    ("ip", ip),
                ];
                (labels, 1)
            })
            .collect();
        gauge_family(
            &mut encoder,
            "metallb_speaker_announced",
            "1 for each service address this node announces, by protocol",
            MetricType::Gauge,
            samples,
        )
    }
}
