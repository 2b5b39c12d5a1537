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
