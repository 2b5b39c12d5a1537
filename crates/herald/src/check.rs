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
