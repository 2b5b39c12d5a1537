//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `test`: install what the suite needs (Debian packages, only those missing), then check
//!   formatting and lints and run every test in the workspace. This is what CI runs.
//! - `crds`: write `deploy/crds/` from the Rust types (`--check` only compares).
//! - `lab [--keep]`: herald's main job on a self-contained network of namespaces (two nodes,
//!   a client, a BGP router, the testkit API server), reported as the client and router see it.
//! - `bench [NAME...]`: benchmarks, each reported as a ratio to a reference measured in the
//!   same run (the kernel, BIRD, GoBGP); all of them when no name is given.
//! - `fuzz [SECONDS] [--runs N] [TARGET...]`: run every crate's cargo-fuzz targets (needs nightly; never part of
//!   `test`): the BGP and Layer 2 codecs, the YAML configuration loader (`model`) and the
//!   reading of Kubernetes objects into the model (`k8s`).

// The same cargo start as testkit's, without depending on testkit and all it builds.
#[path = "../../testkit/src/cargo_env.rs"]
mod cargo_env;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the suite drives as real peers and clients.
const TEST_PACKAGES: &[&str] = &[
    "bird2",
    "frr",
    "gobgpd",
    "exabgp",
    "ndisc6",
    "arping",
    "tcpdump",
    // The user-space answerers `cargo xtask bench l2` measures herald against.
    "ndppd",
    "farpd",
    "iputils-ping",
    "iproute2",
    "curl",
    // BFD and BGP tests silence a namespace with an nft drop rule.
    "nftables",
];

/// Python packages (PyPI) the deploy tests run: Kubernetes' schemas and a PromQL parser.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("kubernetes-validate", "kubernetes_validate"),
    ("promql-parser", "promql_parser"),
];

fn main() {
    if let Err(e) = task() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn task() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&rest),
        Some("crds") => crds(rest.contains(&"--check")),
        Some("lab") => lab(&rest),
        Some("fuzz") => fuzz(&rest),
        Some("bench") => bench(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test [ARGS]   install test dependencies, then lint and run the whole suite\n                (ARGS go to `cargo nextest run`, e.g. a test name filter)\n  crds [--check] write deploy/crds/ from crates/model (or only compare)\n  lab [--keep]  run herald on a self-contained network and report (as root)\n  fuzz [SECONDS] [--runs N] [TARGET...] run the cargo-fuzz targets (nightly), each for\n                SECONDS (default 60) or N executions\n  bench [NAME...] run the benchmarks (l2, bgp, failover, election, placement, controller, scale) against their references (as root)"
            );
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    cargo_env::without_package_vars(&mut c);
    c
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn test(args: &[&str]) -> Result<()> {
    install_packages(TEST_PACKAGES)?;
    install_python_packages(PYTHON_PACKAGES)?;
    run({
        let mut c = cargo();
        c.args(["fmt", "--all", "--", "--check"]);
        c
    })
    .context("code is not formatted: run `cargo fmt --all`")?;
    run({
        let mut c = cargo();
        c.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]);
        c
    })?;
    // The test-only fault hooks are built only into testkit's herald: lint them too.
    run({
        let mut c = cargo();
        c.args([
            "clippy",
            "-p",
            "herald",
            "--all-targets",
            "--features",
            "fault-injection",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]);
        c
    })?;
    // cargo-nextest runs the tests of every binary side by side (cargo test runs one binary
    // at a time), which the end-to-end tests, mostly waiting on timers and peers, need to
    // stay well inside CI's time; its settings are in .config/nextest.toml.
    if !cargo_has("nextest") {
        run({
            let mut c = cargo();
            c.args(["install", "--locked", "cargo-nextest"]);
            c
        })
        .context("installing cargo-nextest (crates.io)")?;
    }
    run({
        let mut c = cargo();
        c.args(["nextest", "run", "--workspace"]).args(args);
        c
    })?;
    // nextest does not run doctests.
    run({
        let mut c = cargo();
        c.args(["test", "--workspace", "--doc"]);
        c
    })
}

/// Whether `cargo SUBCOMMAND --version` runs.
fn cargo_has(subcommand: &str) -> bool {
    cargo()
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the Python packages that python3 cannot import yet, with pip.
fn install_python_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, module)| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {} (pip)", missing.join(" "));
    run({
        let mut c = Command::new("python3");
        c.args(["-m", "pip", "install", "--quiet"]).args(&missing);
        // Debian's own python3 refuses pip installs without this (PEP 668); older pips
        // ignore it.
        c.env("PIP_BREAK_SYSTEM_PACKAGES", "1");
        c
    })
    .context("installing Python test packages failed (python3 -m pip)")
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the missing packages with apt. Services the packages ship (bird, frr) are kept
/// from starting: tests run their own instances inside network namespaces.
fn install_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(
            policy,
            "#!/bin/sh\n# written by cargo xtask: packages must not start daemons\nexit 101\n",
        )
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))
        })
        .context("cannot write /usr/sbin/policy-rc.d: installing test packages needs root")?;
    }
    let result = (|| {
        let apt = |args: &[&str]| {
            let mut c = Command::new("apt-get");
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        run(apt(&["update", "-qq"]))?;
        run(apt(&[
            &["install", "-y", "-qq", "--no-install-recommends"][..],
            &missing,
        ]
        .concat()))
    })();
    if own_policy {
        let _ = std::fs::remove_file(policy);
    }
    result.context("installing test packages failed (this needs root and Debian's package archive)")
}

/// The generator is the model's CRD test: it compares, or with HERALD_WRITE_CRDS writes.
fn crds(check: bool) -> Result<()> {
    let mut c = cargo();
    c.args(["test", "--quiet", "-p", "model", "--test", "crds"]);
    if !check {
        c.env("HERALD_WRITE_CRDS", "1");
    }
    run(c).context(if check {
        "deploy/crds/ is out of date: run `cargo xtask crds`"
    } else {
        "writing deploy/crds/ failed"
    })
}

/// The lab: herald's main job on a self-contained network (namespaces: two nodes running
/// herald in Kubernetes mode against the testkit API server, a client, a BIRD router), with a
/// report of what the client resolves and the router learns. Needs root.
fn lab(args: &[&str]) -> Result<()> {
    install_packages(&["bird2", "iputils-ping", "iproute2"])?;
    let mut c = cargo();
    c.args([
        "run",
        "--quiet",
        "-p",
        "testkit",
        "--bin",
        "herald-lab",
        "--",
    ])
    .args(args);
    run(c)
}

/// `cargo xtask fuzz [SECONDS] [--runs N] [TARGET...]`: run every cargo-fuzz target of
/// every crate that has a `fuzz/` directory (or only the TARGETs named) for SECONDS each (60
/// by default), or for N executions each with `--runs`, on nightly, installing cargo-fuzz
/// first when it is missing. The fuzz crates share one target directory, `target/fuzz`, so
/// their common dependencies are built once.
fn fuzz(args: &[&str]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask fuzz [SECONDS] [--runs N] [TARGET...]";
    let mut seconds: u64 = 60;
    let mut runs: Option<u64> = None;
    let mut only: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--runs" => {
                let n = rest.next().context(USAGE)?;
                runs = Some(n.parse().context(USAGE)?);
            }
            a if a.bytes().all(|b| b.is_ascii_digit()) => seconds = a.parse().context(USAGE)?,
            a => only.push(a),
        }
    }
    // Through rustup's `cargo`, which understands `+nightly` (CARGO names one toolchain's).
    let nightly = |dir: &Path| {
        let mut c = Command::new("cargo");
        c.current_dir(dir).arg("+nightly");
        c
    };
    let have_fuzz = nightly(&root())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_fuzz {
        run({
            let mut c = Command::new("cargo");
            c.args(["install", "--locked", "cargo-fuzz"]);
            c
        })?;
    }
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("fuzz/Cargo.toml").is_file())
        .collect();
    crates.sort();
    for dir in crates {
        let list = nightly(&dir)
            .args(["fuzz", "list"])
            .output()
            .with_context(|| format!("listing fuzz targets in {}", dir.display()))?;
        if !list.status.success() {
            bail!("cargo fuzz list failed in {}", dir.display());
        }
        for target in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
            if target.is_empty() || (!only.is_empty() && !only.contains(&target)) {
                continue;
            }
            run({
                let mut c = nightly(&dir);
                c.env("CARGO_TARGET_DIR", root().join("target/fuzz"))
                    .args(["fuzz", "run", target, "--"]);
                match runs {
                    Some(n) => c.arg(format!("-runs={n}")),
                    None => c.arg(format!("-max_total_time={seconds}")),
                };
                c
            })?;
        }
    }
    Ok(())
}

/// Benchmarks are the root package's `benches/NAME.rs` (harness = false; they need root, as
/// they build network namespaces), run with the release profile; testkit then runs a
/// release herald too.
fn bench(names: &[&str]) -> Result<()> {
    let mut all: Vec<String> = std::fs::read_dir(root().join("benches"))
        .context("reading benches/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    all.sort();
    let chosen: Vec<&str> = if names.is_empty() {
        all.iter().map(String::as_str).collect()
    } else {
        names.to_vec()
    };
    if let Some(unknown) = chosen.iter().find(|n| !all.iter().any(|a| a == *n)) {
        bail!(
            "no benchmark named {unknown:?}; there are: {}",
            all.join(", ")
        );
    }
    install_packages(TEST_PACKAGES)?;
    for name in chosen {
        let mut c = cargo();
        c.args(["bench", "-p", "herald-e2e", "--bench", name]);
        run(c)?;
    }
    Ok(())
}
