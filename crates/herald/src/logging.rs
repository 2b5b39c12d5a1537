//! Structured logs on standard error, as text for people or JSON for log collectors.

use crate::cli::{LogArgs, LogFormat};
use anyhow::{Context as _, anyhow};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(&args.log_level)
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
