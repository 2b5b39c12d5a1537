//! `herald speaker`: read the configuration, plan, hand the plan to the actuators (Layer 2
//! and BGP), serve the plan and metrics, and reload when the files change or on SIGHUP,
//! until SIGTERM or SIGINT.
//!
//! A rejected configuration never replaces the running plan: the speaker keeps announcing
//! what the last valid configuration said and reports the configuration as stale. In file
//! mode there is no election: every eligible node announces.

use crate::actuators::Actuators;
use crate::cli::SpeakerArgs;
use crate::config::{Planned, evaluate_and_plan};
use crate::render;
use crate::state::{Applied, Shared};
use crate::watch::{ConfigWatch, WatchMsg};
use anyhow::{Context as _, bail};
use model::{Diagnostic, NodePlan, ResourceRef, Severity};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, error, info, warn};

/// Editors and ConfigMap updates change files in several steps; wait this long after the
/// last change before reading, so we read the result and not a step.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How long open HTTP connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: SpeakerArgs) -> anyhow::Result<()> {
    // Installed first: SIGHUP's default action would kill the process.
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let node = node_name(args.node)?;
    let files = absolute(&args.source.config)?;
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
    let actuators = Actuators::start(node.clone(), args.announce.options()).await;
    let shared = Arc::new(Shared::new(node, files.clone(), Some(actuators.clone())));

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-addr {}", args.metrics_addr))?;
    let local_addr = listener
        .local_addr()
        .context("reading the bound metrics address")?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = crate::http::router(shared.clone());
    let mut server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });
    info!(addr = %local_addr, "serving metrics");

    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
    let mut watch = arm_watch(&files, watch_tx.clone());

    // The first read goes through the loop like any other, so a signal is never left
    // waiting behind it.
    let mut due: Option<(Instant, &'static str)> = Some((Instant::now(), "startup"));
    let why = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                info!("SIGHUP received: re-reading the configuration");
                // A re-created directory loses its watch; SIGHUP is the way to get it back.
                drop(watch.take());
                watch = arm_watch(&files, watch_tx.clone());
                due = None;
                reload(&shared, &files, "SIGHUP").await;
            }
            Some(msg) = watch_rx.recv() => match msg {
                WatchMsg::Changed(path) => {
                    debug!(path = %path.display(), "configuration file changed");
                    due = Some((Instant::now() + DEBOUNCE, "file change"));
                }
                WatchMsg::Error(e) => {
                    warn!(error = %e, "watching the configuration files failed; re-reading them to be safe");
                    due = Some((Instant::now() + DEBOUNCE, "watch error"));
                }
            },
            _ = sleep_until(due.map_or_else(far_future, |(at, _)| at)), if due.is_some() => {
                let trigger = due.take().map_or("file change", |(_, why)| why);
                reload(&shared, &files, trigger).await;
            }
            result = &mut server => {
                match result {
                    Ok(Ok(())) => bail!("the metrics server stopped unexpectedly"),
                    Ok(Err(e)) => return Err(e).context("the metrics server failed"),
                    Err(e) => return Err(e).context("the metrics server task failed"),
                }
            }
        }
    };

    info!(signal = why, "shutting down");
    drop(watch);
    actuators.shutdown().await;
    let _ = stop_http.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "metrics server stopped with an error"),
        Ok(Err(e)) => warn!(error = %e, "metrics server task failed"),
        Err(_) => warn!("metrics server connections did not close in time; leaving them"),
    }
    info!("stopped");
    Ok(())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// `--node`, else `$NODE_NAME` (both through clap), else the hostname.
fn node_name(given: Option<String>) -> anyhow::Result<String> {
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

/// Reads and checks the files off the async threads, then applies and logs the outcome.
async fn reload(shared: &Arc<Shared>, files: &[PathBuf], trigger: &'static str) {
    let job = {
        let files = files.to_vec();
        let node = shared.node.clone();
        tokio::task::spawn_blocking(move || evaluate_and_plan(&files, &node))
    };
    let planned = match job.await {
        Ok(planned) => planned,
        // evaluate_and_plan turns the model's panics into diagnostics; this is anything
        // else that stopped the job. It counts as a rejected read, like any other failure.
        Err(e) => Planned {
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
        },
    };
    log_diagnostics(&planned);
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
    match shared.apply(planned, SystemTime::now()) {
        Applied::Accepted {
            plan,
            changed,
            generation,
        } => {
            if changed {
                log_plan(&plan);
            }
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
                changed,
                "{}",
                if changed {
                    "configuration loaded; plan updated"
                } else {
                    "configuration loaded; plan unchanged"
                }
            );
        }
        Applied::Rejected { kept_plan: true } => error!(
            trigger,
            errors, "configuration rejected; keeping the last good plan (configuration is stale)"
        ),
        Applied::Rejected { kept_plan: false } => error!(
            trigger,
            errors,
            "configuration rejected; nothing is announced until a valid configuration is read"
        ),
    }
}

fn log_diagnostics(planned: &Planned) {
    for d in &planned.diagnostics {
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
}

/// One line per announcement, so a log search for an address finds why it is (or is not)
/// announced.
fn log_plan(plan: &NodePlan) {
    for a in &plan.l2 {
        info!(
            protocol = "layer2",
            ip = %a.ip,
            service = %a.service,
            pool = %a.pool,
            interfaces = %render::interfaces(&a.interfaces),
            "planned layer 2 announcement"
        );
    }
    for p in &plan.bgp {
        info!(
            protocol = "bgp",
            peer = %p.peer.name,
            address = %render::endpoint(&p.peer),
            local_as = p.peer.local_as(),
            peer_as = %render::peer_asn(p.peer.peer_asn),
            families = %render::families(&p.families),
            routes = p.routes.len(),
            "planned BGP session"
        );
        for r in &p.routes {
            info!(
                protocol = "bgp",
                peer = %p.peer.name,
                prefix = %r.prefix,
                services = %r.services.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                communities = %render::communities(r),
                local_pref = r.local_pref,
                "planned BGP route"
            );
        }
    }
    for s in &plan.skipped {
        debug!(
            ip = ?s.ip,
            service = %s.service,
            protocol = render::protocol(s.protocol),
            reason = %render::skip_reason(s.protocol, &s.reason),
            "not announced"
        );
    }
}

fn route_count(plan: &NodePlan) -> usize {
    plan.bgp.iter().map(|p| p.routes.len()).sum()
}
