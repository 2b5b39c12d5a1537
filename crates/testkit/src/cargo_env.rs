//! Starting cargo from a process cargo started. Cargo gives each test, benchmark and
//! `cargo xtask` run its package's variables (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...).
//! ring's build script asks to rerun when those change in cargo's own environment, so a cargo
//! started with them rebuilds ring and the TLS and kube crates above it, and the next plain
//! cargo run rebuilds them back: minutes each time. Shared by testkit and xtask (which
//! includes this file rather than depend on testkit), so it uses nothing but std.

use std::process::Command;

/// Drops the calling package's variables from `cargo`'s environment.
pub fn without_package_vars(cargo: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name)
        {
            cargo.env_remove(&*name);
        }
    }
    cargo
}
