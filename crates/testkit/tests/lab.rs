//! `cargo xtask lab` (the README's first command) runs this binary: it must keep working and
//! keep showing herald doing its job, as the client and the router see it.

use std::process::Command;

#[test]
fn the_lab_shows_the_client_resolving_and_the_router_learning() {
    testkit::netns::require_privileges();
    let out = Command::new(env!("CARGO_BIN_EXE_herald-lab"))
        .output()
        .expect("running herald-lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The client resolves each Layer 2 address to the node elected for it.
    for ip in ["192.0.2.200", "2001:db8::1:0"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("client: {ip} lladdr"))
                    && l.contains(" REACHABLE")
                    && l.contains("<- node-")),
            "{stdout}"
        );
    }
    for node in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
        assert!(
            stdout.contains(&format!("router: 198.51.100.1/32 via {node} ")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("router: no route for 2001:db8:100::1/128 any more"),
        "{stdout}"
    );
    // herald doctor names the IPv6 the lab turned off on node-3, with the fix, and fails.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("node-3: FAIL  ipv6-enabled eth0:")
                && l.contains("disable_ipv6")
                && l.contains("Fix:")),
        "{stdout}"
    );
    assert!(stdout.contains("(exit status 1;"), "{stdout}");
}
