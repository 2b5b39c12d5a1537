//! Structured logs on standard error, as text for people or JSON for log collectors.

use crate::cli::{LogArgs, LogFormat};
use anyhow::{Context as _, anyhow};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(expand(&args.log_level))
        .with_context(|| format!("--log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        // One flat object per line: fields sit beside `message`, where collectors look.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    }
    .map_err(|e| anyhow!("cannot set up logging: {e}"))
}

/// herald's own crates.
const OURS: &[&str] = &[
    "herald", "l2", "bgp", "bfd", "k8s", "model", "ipam", "election",
];

/// What kube's HTTP layer logs at error for every request that fails (a 5xx, a refused
/// connection): during an API server outage, one line per retry of every watch. herald says
/// itself what failed, once (a watch failing and recovering, an Event or Lease not written),
/// so a bare level leaves these out.
const PER_REQUEST_ERRORS: &str = "kube_client::client::builder=off";

/// A bare level is for herald's own crates; the libraries under them (the HTTP and
/// Kubernetes client stacks) stay at `info` at most, or `debug` would bury herald's lines
/// under theirs, and kube's per-request failures are left out. Directives are taken as
/// written.
pub fn expand(filter: &str) -> String {
    let level = filter.trim();
    if level
        .parse::<tracing_subscriber::filter::LevelFilter>()
        .is_err()
    {
        return filter.to_owned();
    }
    let libraries = match level.to_ascii_lowercase().as_str() {
        "debug" | "trace" => "info",
        _ => level,
    };
    let mut out = format!("{libraries},{PER_REQUEST_ERRORS}");
    for crate_name in OURS {
        out.push_str(&format!(",{crate_name}={level}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn a_bare_level_is_for_our_crates_and_directives_are_kept() {
        assert_eq!(
            expand("debug"),
            "info,kube_client::client::builder=off,herald=debug,l2=debug,bgp=debug,bfd=debug,k8s=debug,model=debug,ipam=debug,election=debug"
        );
        assert_eq!(
            expand("warn"),
            "warn,kube_client::client::builder=off,herald=warn,l2=warn,bgp=warn,bfd=warn,k8s=warn,model=warn,ipam=warn,election=warn"
        );
        assert_eq!(expand("info,kube=debug"), "info,kube=debug");
        assert_eq!(expand("herald::http"), "herald::http");
    }
}
