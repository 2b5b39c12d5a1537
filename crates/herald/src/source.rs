//! Where the speaker's configuration comes from, read into a plan each time it changes:
//!
//! - files (`--config`): read again when they change on disk (debounced) or on SIGHUP;
//! - the Kubernetes API: a new snapshot each time the cluster changes (the `k8s` crate
//!   watches and debounces), and Events written back about invalid configuration objects and
//!   the Services this node starts or stops announcing.
//!
//! Either way the read is checked and planned off the async threads, and the speaker treats
//! the outcome alike: a valid plan replaces the running one, a rejected one never does.

use crate::config::{Planned, evaluate_and_plan, plan_snapshot};
use crate::state;
use crate::supervise::Tasks;
use crate::watch::{ConfigWatch, WatchMsg};
use anyhow::Context as _;
use k8s::{EventRecorder, RecorderConfig, ServiceAnnouncement, Snapshot, SourceConfig};
use model::world::ServiceRef;
use model::{Diagnostic, ResourceRef};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

/// Editors and ConfigMap updates change files in several steps; wait this long after the
/// last change before reading, so we read the result and not a step.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How soon Events that could not be written are tried again.
const EVENT_RETRY: Duration = Duration::from_secs(5);

/// One read of the configuration, planned.
pub struct Read {
    pub trigger: &'static str,
    pub planned: Planned,
}

pub enum Source {
    Files(Files),
    Cluster(Cluster),
}

impl Source {
    /// Waits for the configuration to change (at once for the first read) and plans it.
    /// Cancel-safe: a read interrupted here is made again on the next call.
    pub async fn next(&mut self, node: &str) -> anyhow::Result<Read> {
        match self {
            Source::Files(f) => Ok(f.next(node).await),
            Source::Cluster(c) => c.next(node).await,
        }
    }

    pub fn sighup(&mut self) {
        match self {
            Source::Files(f) => {
                info!("SIGHUP received: re-reading the configuration");
                f.sighup();
            }
            Source::Cluster(_) => info!(
                "SIGHUP received: the configuration comes from the cluster, which is watched; nothing to re-read"
            ),
        }
    }

    pub fn status(&self) -> state::Source {
        match self {
            Source::Files(f) => state::Source::Files {
                files: f.files.clone(),
            },
            Source::Cluster(c) => state::Source::Kubernetes {
                namespace: c.namespace.clone(),
            },
        }
    }
}

/// File mode.
pub struct Files {
    files: Vec<PathBuf>,
    lb_class: Option<String>,
    watch: Option<ConfigWatch>,
    tx: mpsc::UnboundedSender<WatchMsg>,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    due: Option<(Instant, &'static str)>,
}

impl Files {
    /// `files` must be absolute: watches are on directories and events name absolute paths.
    pub fn new(files: Vec<PathBuf>, lb_class: Option<String>) -> Files {
        let (tx, rx) = mpsc::unbounded_channel();
        let watch = arm_watch(&files, tx.clone());
        Files {
            files,
            lb_class,
            watch,
            tx,
            rx,
            // The first read goes through `next` like any other, so a signal is never left
            // waiting behind it.
            due: Some((Instant::now(), "startup")),
        }
    }

    fn sighup(&mut self) {
        // A re-created directory loses its watch; SIGHUP is the way to get it back.
        drop(self.watch.take());
        self.watch = arm_watch(&self.files, self.tx.clone());
        self.due = Some((Instant::now(), "SIGHUP"));
    }

    async fn next(&mut self, node: &str) -> Read {
        let trigger = loop {
            let at = self.due.map(|(at, _)| at);
            tokio::select! {
                Some(msg) = self.rx.recv() => match msg {
                    WatchMsg::Changed(path) => {
                        debug!(path = %path.display(), "configuration file changed");
                        self.due = Some((Instant::now() + DEBOUNCE, "file change"));
                    }
                    WatchMsg::Error(e) => {
                        warn!(error = %e, "watching the configuration files failed; re-reading them to be safe");
                        self.due = Some((Instant::now() + DEBOUNCE, "watch error"));
                    }
                },
                _ = sleep_until(at.unwrap_or_else(Instant::now)), if at.is_some() => {
                    break self.due.map_or("file change", |(_, why)| why);
                }
            }
        };
        let job = {
            let (files, lb_class, node) =
                (self.files.clone(), self.lb_class.clone(), node.to_owned());
            tokio::task::spawn_blocking(move || {
                evaluate_and_plan(&files, lb_class.as_deref(), &node)
            })
        };
        let planned = job.await.unwrap_or_else(unfinished);
        // Only now: a read cancelled above is made again.
        self.due = None;
        Read { trigger, planned }
    }
}

/// Starts watching; without a watch the speaker still runs and reloads on SIGHUP.
fn arm_watch(files: &[PathBuf], tx: mpsc::UnboundedSender<WatchMsg>) -> Option<ConfigWatch> {
    match ConfigWatch::new(files, tx) {
        Ok(watch) => Some(watch),
        Err(e) => {
            warn!(
                error = %format!("{e:#}"),
                "cannot watch the configuration files; changes are only read on SIGHUP"
            );
            None
        }
    }
}

/// A planning job that did not finish (it panicked outside the guarded model calls, or was
/// cancelled): a rejected read like any other.
fn unfinished(e: tokio::task::JoinError) -> Planned {
    Planned {
        diagnostics: vec![
            Diagnostic::error(
                ResourceRef::default(),
                "",
                format!("reading the configuration did not finish: {e}"),
            )
            .fix("this is a bug in herald; please report it"),
        ],
        plan: None,
        unknown_node: None,
        world: None,
    }
}

/// A client from `kubeconfig`, else the in-cluster configuration, else `$KUBECONFIG` or
/// `~/.kube/config`.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(client_config(kubeconfig).await?)
        .context("cannot make a Kubernetes client")
}

/// The configuration [`client`] makes its client from.
async fn client_config(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .with_context(|| format!("--kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no Kubernetes API to talk to: not in a pod, and no kubeconfig ($KUBECONFIG, \
             ~/.kube/config); give --kubeconfig, or --config FILE for file mode",
        )?,
    };
    Ok(config)
}

/// Kubernetes mode.
pub struct Cluster {
    namespace: String,
    _source: k8s::Source,
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Taken from the channel but not planned yet.
    pending: Option<Arc<Snapshot>>,
    /// The snapshot the running plan's read came from, for the Events about it.
    last: Option<Arc<Snapshot>>,
    reports: watch::Sender<Option<Report>>,
    /// MetalLB's ServiceL2Status / ServiceBGPStatus objects of this node.
    statuses: k8s::ServiceStatusWriter,
    /// Runs the Event writer, task [`EVENTS_TASK`].
    tasks: Tasks,
}

/// The name of the Event writer among the speaker's tasks.
const EVENTS_TASK: &str = "kubernetes_events";

impl Drop for Cluster {
    fn drop(&mut self) {
        // Before `reports` closes, which would end the writer as if it had failed.
        self.tasks.stop_task(EVENTS_TASK);
    }
}

/// What the Events should say now.
#[derive(Clone)]
struct Report {
    snapshot: Arc<Snapshot>,
    diagnostics: Vec<Diagnostic>,
    services: BTreeMap<ServiceRef, ServiceAnnouncement>,
}

impl Cluster {
    /// Connects with `kubeconfig`, else the in-cluster configuration, else `$KUBECONFIG` or
    /// `~/.kube/config`, and starts the watches.
    pub async fn connect(
        kubeconfig: Option<PathBuf>,
        namespace: String,
        node: &str,
        lb_class: Option<String>,
        tasks: &Tasks,
    ) -> anyhow::Result<(Cluster, k8s::Metrics, kube::Client)> {
        let mut config = client_config(kubeconfig.as_deref()).await?;
        // The watches retry on their own, with a capped backoff; kube's retry of 503s grows
        // to minutes and would keep a watch blind long after the API server is back.
        config.default_retry = false;
        let client = kube::Client::try_from(config).context("cannot make a Kubernetes client")?;
        let mut source_config = SourceConfig::new(namespace.clone(), node);
        source_config.load_balancer_class = lb_class;
        let (source, snapshots) = k8s::Source::start(client.clone(), source_config);
        let statuses = k8s::ServiceStatusWriter::start(client.clone(), namespace.clone(), node);
        let metrics = source.metrics();
        let (reports, reports_rx) = watch::channel(None);
        {
            let (client, node) = (client.clone(), node.to_owned());
            // Started again after a failure with a new recorder: at worst an Event already
            // written is written once more.
            tasks.spawn(EVENTS_TASK, move || {
                write_events(
                    EventRecorder::new(client.clone(), RecorderConfig::new(&node)),
                    reports_rx.clone(),
                )
            });
        }
        let cluster = Cluster {
            statuses,
            namespace,
            _source: source,
            snapshots,
            pending: None,
            last: None,
            reports,
            tasks: tasks.clone(),
        };
        Ok((cluster, metrics, client))
    }

    /// Where a test makes the watches fail.
    #[cfg(feature = "fault-injection")]
    pub fn fault_handle(&self) -> k8s::FaultHandle {
        self._source.fault_handle()
    }

    async fn next(&mut self, node: &str) -> anyhow::Result<Read> {
        let snapshot = match self.pending.clone() {
            Some(s) => s,
            None => loop {
                self.snapshots
                    .changed()
                    .await
                    .context("the Kubernetes watches stopped")?;
                // `None` until every watch has listed once.
                if let Some(s) = self.snapshots.borrow_and_update().clone() {
                    self.pending = Some(s.clone());
                    break s;
                }
            },
        };
        let job = {
            let (snapshot, node) = (snapshot.clone(), node.to_owned());
            tokio::task::spawn_blocking(move || plan_snapshot(&snapshot, &node))
        };
        let planned = job.await.unwrap_or_else(unfinished);
        self.pending = None;
        debug!(
            generation = snapshot.generation,
            "planned the cluster's configuration"
        );
        self.last = Some(snapshot);
        Ok(Read {
            trigger: "cluster change",
            planned,
        })
    }

    /// Has this node's ServiceBGPStatus objects say which peers each Service of `plan` is
    /// announced to.
    pub fn report_bgp(&self, plan: &model::NodePlan) {
        self.statuses
            .set_bgp(k8s::ServiceStatusWriter::bgp_of(plan));
    }

    /// Has this node's ServiceL2Status objects say which addresses of each Service it answers
    /// for now, and on which interfaces.
    pub fn report_l2(&self, l2: BTreeMap<ServiceRef, BTreeMap<IpAddr, BTreeSet<String>>>) {
        self.statuses.set_l2(l2);
    }

    /// Has Events written (in the background) for the last read's `diagnostics` and for
    /// what this node now announces of each Service.
    /// `diagnostics` `None` keeps those of the last report (a change of what this node
    /// announces that no read caused, such as an election).
    pub fn report(
        &self,
        diagnostics: Option<Vec<Diagnostic>>,
        services: BTreeMap<ServiceRef, ServiceAnnouncement>,
    ) {
        if let Some(snapshot) = &self.last {
            let diagnostics = diagnostics.unwrap_or_else(|| {
                self.reports
                    .borrow()
                    .as_ref()
                    .map(|r| r.diagnostics.clone())
                    .unwrap_or_default()
            });
            self.reports.send_replace(Some(Report {
                snapshot: snapshot.clone(),
                diagnostics,
                services,
            }));
        }
    }
}

/// Writes the newest report's Events, and tries again after a failure (the API server may
/// be briefly away) until the writes succeed or a newer report arrives.
async fn write_events(mut recorder: EventRecorder, mut reports: watch::Receiver<Option<Report>>) {
    let mut failed = false;
    loop {
        tokio::select! {
            changed = reports.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(EVENT_RETRY), if failed => {}
        }
        let Some(report) = reports.borrow_and_update().clone() else {
            continue;
        };
        failed = false;
        if let Err(e) = recorder
            .configuration(&report.snapshot, &report.diagnostics)
            .await
        {
            warn!(error = %e, "cannot write a configuration Event; trying again shortly");
            failed = true;
        }
        if let Err(e) = recorder.services(&report.snapshot, &report.services).await {
            warn!(error = %e, "cannot write a Service Event; trying again shortly");
            failed = true;
        }
    }
}
