//! `herald doctor`: checks a node and a cluster (or a node against configuration files) for
//! what breaks announcing, dual-stack above all, and prints one line per check: pass, or what
//! is wrong and the fix. Exits non-zero when any check fails.
//!
//! Node checks read this host's links and sysctls (the network namespace herald runs in);
//! cluster checks read the configuration as the speaker does (the same watches, the same
//! validation), and with the API the Services, Nodes and ServiceCIDRs.

pub mod check;
pub mod cluster;
pub mod node;

use crate::cli::{DoctorArgs, Mode, OutputFormat};
use anyhow::Context as _;
use check::{Check, Report};
use model::{Diagnostic, World};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// How long to wait for the first complete read of the cluster.
const API_PATIENCE: Duration = Duration::from_secs(30);

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let node = crate::speaker::node_name(args.node.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(examine(args, &node));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        OutputFormat::Text => write!(out, "{}", report.text()).context("writing the report")?,
    }
    out.flush().context("writing the report")?;
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn examine(args: &DoctorArgs, node: &str) -> Report {
    let lb_class = args.source.lb_class.clone();
    let mut checks = Vec::new();
    let (world, role, facts) = match args.source.mode() {
        Mode::Files(files) => {
            // As the speaker reads them: a field herald does not know is a warning.
            let evaluated = crate::config::evaluate(
                &files,
                lb_class.as_deref(),
                model::file::UnknownFields::Warn,
            );
            checks.extend(cluster::configuration(
                evaluated.world.as_ref(),
                &evaluated.diagnostics,
            ));
            (evaluated.world, node::Role::Host, None)
        }
        Mode::Kubernetes {
            kubeconfig,
            namespace,
        } => match read_cluster(kubeconfig.as_deref(), &namespace, node, lb_class.clone()).await {
            Ok((diagnostics, world, facts)) => {
                checks.extend(cluster::configuration(world.as_ref(), &diagnostics));
                (world, node::Role::KubernetesNode, Some(facts))
            }
            Err(e) => {
                checks.push(Check::fail(
                    "api",
                    "",
                    format!("cannot read the cluster: {e:#}"),
                    "check --kubeconfig and that herald's ServiceAccount may list what the RBAC in deploy/ grants; or check a file with --config",
                ));
                (None, node::Role::KubernetesNode, None)
            }
        },
    };
    let Some(world) = world else {
        checks.push(Check::skip(
            "node",
            node,
            "no valid configuration: the node checks need one",
        ));
        return Report::new(Some(node.to_owned()), checks);
    };
    checks.extend(node_checks(&world, node, role));
    checks.extend(cluster::announcement(&world));
    match facts {
        Some(facts) => checks.extend(cluster::api(&facts, &world, lb_class.as_deref())),
        None => checks.push(Check::skip(
            "cluster",
            "",
            "file mode: Services, Nodes and service CIDRs are checked only with the Kubernetes API",
        )),
    }
    Report::new(Some(node.to_owned()), checks)
}

/// The node checks of this host, as the speaker runs them too.
pub fn node_checks(world: &World, node: &str, role: node::Role) -> Vec<Check> {
    match node::NodeFacts::gather() {
        Ok(facts) => node::checks(world, node, &facts, role),
        Err(e) => vec![Check::fail(
            "interfaces",
            "",
            format!("cannot read this node's interfaces: {e}"),
            "run herald doctor with CAP_NET_ADMIN in the node's network namespace (hostNetwork)",
        )],
    }
}

async fn read_cluster(
    kubeconfig: Option<&std::path::Path>,
    namespace: &str,
    node: &str,
    lb_class: Option<String>,
) -> anyhow::Result<(Vec<Diagnostic>, Option<World>, cluster::ClusterFacts)> {
    let client = crate::source::client(kubeconfig).await?;
    let mut config = k8s::SourceConfig::new(namespace, node);
    config.load_balancer_class = lb_class;
    let (_source, mut snapshots) = k8s::Source::start(client.clone(), config);
    let snapshot = tokio::time::timeout(API_PATIENCE, async {
        loop {
            if let Some(s) = snapshots.borrow_and_update().clone() {
                return Ok::<_, anyhow::Error>(s);
            }
            snapshots
                .changed()
                .await
                .context("the Kubernetes watches stopped")?;
        }
    })
    .await
    .with_context(|| {
        format!(
            "the API server did not list the configuration within {}s",
            API_PATIENCE.as_secs()
        )
    })??;
    let checked = snapshot.validate();
    let facts = cluster::ClusterFacts::gather(&client)
        .await
        .context("listing Services, Nodes and ServiceCIDRs")?;
    Ok((checked.diagnostics, checked.world, facts))
}
