//! `herald speaker`: read the configuration (files or the Kubernetes API), plan, hand the
//! plan to the actuators (Layer 2 and BGP), serve the plan and metrics, and follow every
//! change, until SIGTERM or SIGINT.
//!
//! A rejected configuration never replaces the running plan: the speaker keeps announcing
//! what the last valid configuration said and reports the configuration as stale.
//!
//! No task dies silently: the speaker's long-running tasks (the Layer 2 reconcile loop, the
//! BGP session watcher and through it every peer task, the Event writer) are supervised
//! ([`crate::supervise`]): restarted with backoff, counted, and shown by `/healthz` while
//! down. Every way out (SIGTERM, SIGINT, the configuration source or the HTTP server
//! failing) runs the same orderly shutdown: stop answering, release Leases, close BGP
//! sessions.

use crate::actuators::Actuators;
use crate::cli::{Mode, SpeakerArgs};
use crate::config::Planned;
use crate::logs::DiagnosticLog;
use crate::metrics::Metrics;
use crate::source::{Cluster, Files, Read, Source};
use crate::state::{Applied, Shared};
use crate::supervise::Tasks;
use anyhow::{Context as _, bail};
use model::{NodePlan, Severity};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

/// How long open HTTP connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    // Installed first: SIGHUP's default action would kill the process.
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let node = node_name(args.node)?;
    #[cfg(feature = "fault-injection")]
    crate::faults::announce();
    // Bound before anything starts, so a taken port stops herald before it announces.
    let (metrics_listener, metrics_addr) = bind(args.metrics_addr, "--metrics-addr").await?;
    let (status_listener, status_addr) = bind(args.status_addr, "--status-addr").await?;
    let lb_class = args.source.lb_class.clone();
    let timing = args
        .announce
        .election_timing()
        .map_err(anyhow::Error::msg)?;
    let mut metrics = Metrics::new();
    let tasks = Tasks::default();
    let mut elector = None;
    let mut source = match args.source.mode() {
        Mode::Files(files) => {
            let files = absolute(&files)?;
            info!(
                version = env!("CARGO_PKG_VERSION"),
                node = %node,
                files = %files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                "starting herald speaker in file mode"
            );
            Source::Files(Files::new(files, lb_class))
        }
        Mode::Kubernetes {
            kubeconfig,
            namespace,
        } => {
            info!(
                version = env!("CARGO_PKG_VERSION"),
                node = %node,
                namespace = %namespace,
                kubeconfig = kubeconfig.as_ref().map(|k| k.display().to_string()),
                "starting herald speaker in Kubernetes mode"
            );
            let (cluster, k8s_metrics, client) =
                Cluster::connect(kubeconfig, namespace.clone(), &node, lb_class, &tasks).await?;
            #[cfg(feature = "fault-injection")]
            crate::faults::register_watches(cluster.fault_handle());
            metrics.register_kubernetes(k8s_metrics);
            let mut config = election::Config::new(&namespace, crate::leadership::ELECTION, &node);
            config.timing = timing;
            elector = Some(election::Elector::start(client, config));
            Source::Cluster(cluster)
        }
    };
    let actuators = Actuators::start(
        node.clone(),
        args.announce.options(),
        elector,
        tasks.clone(),
    )
    .await;
    let mut answering = actuators.changed();
    let mut links = actuators.links();
    let role = match &source {
        Source::Files(_) => crate::doctor::node::Role::Host,
        Source::Cluster(_) => crate::doctor::node::Role::KubernetesNode,
    };
    // The valid configuration the node checks judge the links against.
    let mut world: Option<Arc<model::World>> = None;
    let shared = Arc::new(Shared::new(
        node.clone(),
        source.status(),
        metrics,
        Some(actuators.clone()),
    ));

    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let metrics_server = serve(
        metrics_listener,
        crate::http::router(shared.clone()),
        http_stopped.clone(),
    );
    info!(addr = %metrics_addr, "serving metrics");
    let status_server = serve(
        status_listener,
        crate::http::status_router(shared.clone()),
        http_stopped,
    );
    info!(addr = %status_addr, "serving status");
    let mut server = tokio::spawn(async move {
        // Either ending is a failure; the other is stopped with it.
        tokio::select! {
            r = metrics_server => r,
            r = status_server => r,
        }
    });

    let notifier = crate::notify::Notifier::from_env();
    let mut ready_sent = false;
    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);

    let mut logged = DiagnosticLog::default();
    let mut server_ended = false;
    // Every way out (a signal, the source failing, the HTTP server failing) leaves through
    // the same orderly shutdown below: stop answering, release Leases, close BGP sessions.
    let exit = loop {
        tokio::select! {
            // Petted from this loop, so a wedged loop (not merely a live process) is restarted.
            Some(_) = tick(&mut watchdog) => notifier.send("WATCHDOG=1"),
            _ = sigterm.recv() => break Exit::Signal("SIGTERM"),
            _ = sigint.recv() => break Exit::Signal("SIGINT"),
            _ = sighup.recv() => source.sighup(),
            read = source.next(&node) => match read {
                Ok(Read { trigger, planned }) => {
                    let diagnostics = planned.diagnostics.clone();
                    let first = world.is_none();
                    if let Some(w) = planned.world.clone() {
                        world = Some(w);
                    }
                    apply(&shared, planned, trigger, &mut logged);
                    notifier.send(&systemd_status(&shared, ready_sent));
                    ready_sent = true;
                    if let Some(w) = &world {
                        let table = links.as_mut().map(|l| l.borrow_and_update().clone());
                        let why = if first { "start" } else { "configuration" };
                        run_node_checks(&shared, w, role, why, table);
                    }
                    if let Source::Cluster(cluster) = &source {
                        report(cluster, &shared, &actuators, Some(diagnostics));
                    }
                }
                Err(e) => break Exit::Failed(e.context("the configuration source failed")),
            },
            Some(table) = link_change(&mut links) => {
                if let Some(w) = &world {
                    run_node_checks(&shared, w, role, "link change", Some(table));
                }
            }
            Ok(()) = answering.changed() => {
                if let Source::Cluster(cluster) = &source {
                    report(cluster, &shared, &actuators, None);
                }
            }
            result = &mut server => {
                server_ended = true;
                break Exit::Failed(match result {
                    Ok(Ok(())) => anyhow::anyhow!("an HTTP server (metrics or status) stopped unexpectedly"),
                    Ok(Err(e)) => anyhow::Error::from(e).context("an HTTP server (metrics or status) failed"),
                    Err(e) => anyhow::Error::from(e).context("an HTTP server task failed"),
                });
            }
        }
    };

    match &exit {
        Exit::Signal(signal) => info!(signal, "shutting down"),
        Exit::Failed(e) => error!(
            error = %format!("{e:#}"),
            "shutting down after a failure: answering stops, Leases are released and BGP sessions closed first"
        ),
    }
    notifier.send("STOPPING=1");
    drop(source);
    actuators.shutdown().await;
    tasks.stop();
    let _ = stop_http.send(true);
    if !server_ended {
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "an HTTP server stopped with an error"),
            Ok(Err(e)) => warn!(error = %e, "an HTTP server task failed"),
            Err(_) => warn!("HTTP connections did not close in time; leaving them"),
        }
    }
    info!("stopped");
    match exit {
        Exit::Signal(_) => Ok(()),
        Exit::Failed(e) => Err(e),
    }
}

async fn bind(
    addr: std::net::SocketAddr,
    flag: &str,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {flag} {addr}"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("reading the bound {flag} address"))?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `stop` turns true.
fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = std::io::Result<()>> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .into_future()
}

/// Why the speaker stops.
enum Exit {
    Signal(&'static str),
    Failed(anyhow::Error),
}

/// The next watchdog tick, when systemd's watchdog is on (never otherwise).
async fn tick(interval: &mut Option<tokio::time::Interval>) -> Option<tokio::time::Instant> {
    match interval {
        Some(i) => Some(i.tick().await),
        None => std::future::pending().await,
    }
}

/// What `systemctl status herald` shows after a read; the first read also says READY=1
/// (valid or not: the speaker is up, and /status and the log say what is wrong).
fn systemd_status(shared: &Shared, ready_sent: bool) -> String {
    let state = shared.read();
    let status = match (&state.plan, state.config.state) {
        (Some(plan), crate::state::ConfigState::Stale) => format!(
            "configuration rejected; keeping the last good plan ({} Layer 2 addresses, {} BGP routes)",
            plan.l2.len(),
            route_count(plan)
        ),
        (Some(plan), _) => format!(
            "announcing: {} Layer 2 addresses, {} BGP routes",
            plan.l2.len(),
            route_count(plan)
        ),
        (None, _) => "configuration rejected; nothing announced".to_owned(),
    };
    if ready_sent {
        format!("STATUS={status}")
    } else {
        format!("READY=1\nSTATUS={status}")
    }
}

/// The next state of the links, when there is a link monitor (never otherwise).
async fn link_change(
    links: &mut Option<tokio::sync::watch::Receiver<Arc<l2::LinkTable>>>,
) -> Option<Arc<l2::LinkTable>> {
    match links {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// `herald doctor`'s node checks, for `/status` and `herald_doctor_failed_checks`; what fails
/// or warns is logged when it changes.
fn run_node_checks(
    shared: &Shared,
    world: &model::World,
    role: crate::doctor::node::Role,
    trigger: &'static str,
    links: Option<Arc<l2::LinkTable>>,
) {
    use crate::doctor::check::Status;
    let checks = match links {
        Some(table) => crate::doctor::node::checks(
            world,
            &shared.node,
            &crate::doctor::node::NodeFacts::with_links((*table).clone()),
            role,
        ),
        None => crate::doctor::node_checks(world, &shared.node, role),
    };
    if !shared.set_node_checks(checks.clone(), trigger, SystemTime::now()) {
        return;
    }
    let mut problems = 0;
    for c in checks.iter().filter(|c| c.status == Status::Fail) {
        problems += 1;
        error!(check = c.check, subject = %c.subject, trigger, "node check failed: {}", c.line());
    }
    for c in checks.iter().filter(|c| c.status == Status::Warn) {
        problems += 1;
        warn!(check = c.check, subject = %c.subject, trigger, "node check warns: {}", c.line());
    }
    if problems == 0 {
        info!(trigger, checks = checks.len(), "node checks pass");
    }
}

/// Has Events written for what this node now announces of each Service (and, after a read,
/// for that read's diagnostics).
fn report(
    cluster: &Cluster,
    shared: &Shared,
    actuators: &Actuators,
    diagnostics: Option<Vec<model::Diagnostic>>,
) {
    let running = shared.read().plan.clone();
    if let Some(plan) = &running {
        cluster.report_bgp(plan);
        cluster.report_l2(actuators.l2_answering(plan));
    }
    let services = running
        .map(|plan| actuators.service_report(&plan))
        .unwrap_or_default();
    cluster.report(diagnostics, services);
}

/// `--node`, else `$NODE_NAME` (both through clap), else the hostname.
pub fn node_name(given: Option<String>) -> anyhow::Result<String> {
    if let Some(node) = given {
        let node = node.trim().to_owned();
        if node.is_empty() {
            bail!(
                "--node (or NODE_NAME) is empty; give the name of the Kubernetes node this speaker runs on"
            );
        }
        return Ok(node);
    }
    let host = hostname::get()
        .context("neither --node nor NODE_NAME is set, and the hostname cannot be read")?;
    let Some(host) = host.to_str().map(str::trim).filter(|h| !h.is_empty()) else {
        bail!(
            "neither --node nor NODE_NAME is set, and the hostname {host:?} is not a usable node name"
        );
    };
    info!(
        node = host,
        "no --node or NODE_NAME given: using the hostname as the node name"
    );
    Ok(host.to_owned())
}

/// Watches are on directories and events name absolute paths, so the files are made
/// absolute once, against the directory herald started in.
fn absolute(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    files
        .iter()
        .map(|f| {
            std::path::absolute(f)
                .with_context(|| format!("cannot make --config {} an absolute path", f.display()))
        })
        .collect()
}

/// Logs a read and makes its plan the running one when it is valid, then hands the running
/// plan to the actuators. Diagnostics are logged when they appear and when they clear; a plan
/// change is one info line with counts, its details at debug.
fn apply(
    shared: &Arc<Shared>,
    planned: Planned,
    trigger: &'static str,
    logged: &mut DiagnosticLog,
) {
    let changes = logged.update(&planned.diagnostics);
    // A rejection restated without new problems is not news.
    let news = !changes.appeared.is_empty() || !changes.cleared.is_empty();
    if let Some(known) = &planned.unknown_node {
        warn!(
            node = %shared.node,
            described = %known.join(", "),
            "no Node object in the configuration is named like this node: is --node (or NODE_NAME) right? It is planned with only its kubernetes.io/hostname label"
        );
    }
    let errors = planned
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let before = shared.read().plan.clone();
    match shared.apply(planned, SystemTime::now()) {
        Applied::Accepted {
            plan,
            changed,
            generation,
        } => {
            // An unchanged plan is already the actuators': applying it again would only make
            // every BGP peer diff its whole table for nothing.
            if !changed {
                debug!(trigger, generation, "configuration loaded; plan unchanged");
                return;
            }
            let c = crate::logs::plan_changes(before.as_deref(), &plan);
            if let Some(actuators) = &shared.actuators {
                actuators.apply(&plan);
            }
            info!(
                trigger,
                generation,
                node = %plan.node,
                l2_addresses = plan.l2.len(),
                bgp_peers = plan.bgp.len(),
                bgp_routes = route_count(&plan),
                skipped = plan.skipped.len(),
                l2_added = c.l2_added,
                l2_removed = c.l2_removed,
                routes_added = c.routes_added,
                routes_removed = c.routes_removed,
                "configuration loaded; plan updated"
            );
        }
        Applied::Rejected { kept_plan: true } if news => error!(
            trigger,
            errors, "configuration rejected; keeping the last good plan (configuration is stale)"
        ),
        Applied::Rejected { kept_plan: false } if news => error!(
            trigger,
            errors,
            "configuration rejected; nothing is announced until a valid configuration is read"
        ),
        Applied::Rejected { .. } => debug!(trigger, errors, "configuration still rejected"),
    }
}

fn route_count(plan: &NodePlan) -> usize {
    plan.bgp.iter().map(|p| p.routes.len()).sum()
}
