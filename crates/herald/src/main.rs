//! The `herald` binary: command line, wiring, metrics/health HTTP and signals.
//!
//! Owns no protocol or configuration logic of its own: it reads configuration through
//! `model`, and hands plans to the Layer 2 (`l2`) and BGP (`bgp`) actuators; allocation
//! (`herald controller`) is `ipam`'s.

mod actuators;
mod bgp_speaker;
mod check;
mod cli;
mod config;
mod controller;
mod doctor;
#[cfg(feature = "fault-injection")]
mod faults;
mod http;
mod layer2;
mod leadership;
mod logging;
mod logs;
mod metrics;
mod notify;
mod render;
mod source;
mod speaker;
mod state;
mod status;
mod supervise;
mod watch;

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Check(args) => match check::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("herald check: {e:#}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Doctor(args) => match doctor::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("herald doctor: {e:#}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Speaker(args) => run_speaker(args),
        cli::Command::Controller(args) => run_controller(args),
        cli::Command::Status(args) => match status::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald status: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_controller(args: cli::ControllerArgs) -> ExitCode {
    if let Err(e) = logging::init(&args.log) {
        eprintln!("herald controller: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("herald-controller")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(controller::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "herald controller failed");
            ExitCode::FAILURE
        }
    }
}

fn run_speaker(args: cli::SpeakerArgs) -> ExitCode {
    if let Err(e) = logging::init(&args.log) {
        eprintln!("herald speaker: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("herald")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(speaker::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "herald speaker failed");
            ExitCode::FAILURE
        }
    }
}

/// One malloc arena for the whole process. glibc gives each thread that allocates an arena of
/// its own (up to eight per core), and memory freed in one is not reused by another: with the
/// async workers and the planning thread each holding theirs, the speaker took 75 MiB for a
/// 41 MB heap at 10,000 Services, and 61 MiB with one arena, at no cost in CPU per change
/// (`cargo xtask bench scale`). musl's allocator (the container image) has no arenas.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; called before any other thread
    // of the process exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
