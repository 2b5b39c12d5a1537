//! `herald check`: validate configuration offline and show what a node would announce.

use crate::cli::{CheckArgs, OutputFormat};
use crate::config::{Evaluated, evaluate};
use crate::render;
use anyhow::Context as _;
use model::file::UnknownFields;
use model::{NodePlan, Severity};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

/// What `--output json` prints: one document.
#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    diagnostics: &'a [model::Diagnostic],
    plans: &'a [NodePlan],
    /// What `herald controller` would assign to the LoadBalancer Services without addresses.
    allocations: &'a [Allocation],
}

/// One Service's addresses as `herald controller` would assign them.
#[derive(Clone, Debug, Serialize)]
struct Allocation {
    service: String,
    /// Empty when allocation fails.
    addresses: Vec<std::net::IpAddr>,
    pool: Option<String>,
    /// Why it fails, in the words of the controller's AllocationFailed Event.
    error: Option<String>,
}

/// Exit code 0 when the configuration has no errors, 1 when it has.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let unknown = if args.allow_unknown_fields {
        UnknownFields::Warn
    } else {
        UnknownFields::Error
    };
    let evaluated = evaluate(&args.files, args.lb_class.as_deref(), unknown);
    let valid = evaluated.world.is_some();
    let plans = plans(&evaluated, args.node.as_deref());
    let allocations = match &evaluated.world {
        Some(world) => allocations(world, &args.files, args.lb_class.as_deref()),
        None => Vec::new(),
    };
    let unknown = match (&evaluated.world, &args.node) {
        (Some(world), Some(node)) => crate::config::unknown_node(world, node),
        _ => None,
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.output {
        OutputFormat::Json => {
            let report = Report {
                valid,
                diagnostics: &evaluated.diagnostics,
                plans: &plans,
                allocations: &allocations,
            };
            serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        OutputFormat::Text => {
            print_diagnostics(&evaluated, args.verbose)?;
            if let (Some(known), Some(node)) = (&unknown, &args.node) {
                eprintln!(
                    "warning: --node {node} names no Node object in the files (they describe {}); planning it with only its kubernetes.io/hostname label",
                    known.join(", ")
                );
            }
            if valid {
                write_valid(&mut out, &evaluated, &plans, args)?;
                write_allocations(&mut out, &allocations)?;
            }
        }
    }
    out.flush().context("writing the report")?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The plans to show: the named node's, or every described node's when none is named.
fn plans(evaluated: &Evaluated, node: Option<&str>) -> Vec<NodePlan> {
    let Some(world) = &evaluated.world else {
        return Vec::new();
    };
    match node {
        Some(node) => vec![model::plan(world, node)],
        None => world
            .nodes
            .keys()
            .map(|node| model::plan(world, node))
            .collect(),
    }
}

/// Diagnostics go to standard error, like a compiler's, so the plan on standard output can
/// be piped on its own.
fn print_diagnostics(evaluated: &Evaluated, verbose: bool) -> anyhow::Result<()> {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for d in &evaluated.diagnostics {
        if d.severity == Severity::Note && !verbose {
            continue;
        }
        writeln!(err, "{d}").context("writing diagnostics")?;
    }
    let errors = evaluated.errors();
    if errors > 0 {
        writeln!(
            err,
            "configuration rejected: {}{}",
            plural(errors, "error"),
            match evaluated.warnings() {
                0 => String::new(),
                w => format!(", {}", plural(w, "warning")),
            }
        )
        .context("writing diagnostics")?;
    }
    Ok(())
}

fn write_valid(
    out: &mut impl Write,
    evaluated: &Evaluated,
    plans: &[NodePlan],
    args: &CheckArgs,
) -> anyhow::Result<()> {
    let warnings = evaluated.warnings();
    let mut summary = format!("Configuration valid ({}", plural(args.files.len(), "file"));
    if warnings > 0 {
        summary.push_str(&format!(", {}", plural(warnings, "warning")));
    }
    summary.push_str(").");
    writeln!(out, "{summary}")?;

    let nodes = evaluated
        .world
        .as_ref()
        .map(|w| &w.nodes)
        .filter(|n| !n.is_empty());
    if plans.is_empty() {
        writeln!(
            out,
            "No Node objects in the files; `herald check --node NAME` shows what node NAME would announce."
        )?;
        return Ok(());
    }
    for plan in plans {
        writeln!(out)?;
        let described = nodes.is_some_and(|n| n.contains_key(&plan.node));
        write!(out, "{}", render::plan_text(plan, described))?;
    }
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The Services of type LoadBalancer (of our class) that have no addresses yet, allocated
/// as `herald controller` would: those with addresses are registered first, then the others
/// converge in name order. A Service without cluster IPs (files rarely have them) is read as
/// the API server of a dual-stack cluster, IPv4 first, would default it from its
/// `ipFamilies` and `ipFamilyPolicy`.
fn allocations(
    world: &model::World,
    files: &[std::path::PathBuf],
    lb_class: Option<&str>,
) -> Vec<Allocation> {
    let loaded = model::file::load_files(files);
    let mut allocator = ipam::Allocator::new();
    allocator.set_pools(&world.pools, &Default::default());
    let mut requests: Vec<ipam::Request> = loaded
        .resources
        .services
        .iter()
        .filter(|s| k8s::allocation::is_our_class(&s.object, lb_class))
        .map(|s| defaulted(k8s::allocation::request_of(&s.object)))
        .filter(|r| r.is_load_balancer)
        .collect();
    requests.sort_by(|a, b| a.key.cmp(&b.key));
    for r in &requests {
        ipam::register(&mut allocator, r);
    }
    requests
        .iter()
        .filter(|r| r.ingress.is_empty())
        .map(|r| {
            let out = ipam::converge(&mut allocator, r);
            let error = out
                .events
                .iter()
                .find(|e| e.kind == ipam::EventType::Warning)
                .map(|e| e.message.clone());
            Allocation {
                service: r.key.to_string(),
                addresses: out.ingress.clone(),
                pool: out.pool.clone(),
                error: if out.failed { error } else { None },
            }
        })
        .collect()
}

/// Cluster IPs and families as a dual-stack API server (IPv4 first) would give them.
fn defaulted(mut r: ipam::Request) -> ipam::Request {
    use model::world::Family;
    if !r.cluster_ips.is_empty() {
        return r;
    }
    let mut families = r.ip_families.clone();
    if families.is_empty() {
        families.push(Family::Ipv4);
    }
    if r.policy != ipam::FamilyPolicy::SingleStack && families.len() == 1 {
        families.push(match families[0] {
            Family::Ipv4 => Family::Ipv6,
            Family::Ipv6 => Family::Ipv4,
        });
    }
    families.truncate(if r.policy == ipam::FamilyPolicy::SingleStack {
        1
    } else {
        2
    });
    r.cluster_ips = families
        .iter()
        .map(|f| match f {
            Family::Ipv4 => "10.96.0.10".to_owned(),
            Family::Ipv6 => "fd00:10:96::a".to_owned(),
        })
        .collect();
    r.ip_families = families;
    r
}

fn write_allocations(out: &mut impl Write, allocations: &[Allocation]) -> anyhow::Result<()> {
    if allocations.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "Allocation ({} without addresses; what herald controller would assign):",
        plural(allocations.len(), "LoadBalancer Service")
    )?;
    let mut table = render::Table::new(&["SERVICE", "ADDRESSES", "POOL"]);
    for a in allocations.iter().filter(|a| a.error.is_none()) {
        let ips: Vec<String> = a.addresses.iter().map(ToString::to_string).collect();
        table.row(vec![
            a.service.clone(),
            ips.join(", "),
            a.pool.clone().unwrap_or_default(),
        ]);
    }
    write!(out, "{}", table.render("  "))?;
    for a in allocations {
        if let Some(e) = &a.error {
            writeln!(out, "  cannot allocate {}: {e}", a.service)?;
        }
    }
    Ok(())
}
