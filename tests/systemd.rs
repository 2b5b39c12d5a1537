//! The unit in `systemd/`: `systemd-analyze verify` accepts it, `systemd-analyze security`
//! scores it below 2.0, and herald speaks the notify protocol it declares (READY=1 and STATUS=
//! on the socket systemd would give it, WATCHDOG=1 while WatchdogSec is set).

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::netns::Netns;
use testkit::workspace_root;

fn unit() -> String {
    std::fs::read_to_string(workspace_root().join("systemd/herald.service")).expect("the unit")
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    // verify also checks that the programs exist: the unit names the installed path, so the
    // copy checked names the binary under test instead.
    let bin = testkit::herald_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.service");
    std::fs::write(
        &file,
        unit().replace("/usr/local/bin/herald", bin.to_str().expect("UTF-8")),
    )
    .expect("writing the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_unit_is_hardened_below_exposure_2() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(workspace_root().join("systemd/herald.service"))
        .output()
        .expect("systemd-analyze must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for herald.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    println!("systemd-analyze security --offline=yes systemd/herald.service: {score}");
    assert!(score < 2.0, "exposure {score}:\n{text}");
    let unit = unit();
    for line in [
        "Type=notify",
        "ExecReload=kill -HUP $MAINPID",
        "DynamicUser=yes",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

/// What the speaker sends on the notify socket, message by message.
fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let len = socket
        .recv(&mut buf)
        .expect("a notification before the timeout");
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[test]
fn herald_says_ready_reports_status_and_pets_the_watchdog() {
    let ns = Netns::new("sd");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    ns.ip(&["link", "set", "eth0", "up"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
    socket
        .set_read_timeout(Some(testkit::PATIENCE))
        .expect("timeout");
    let bin = testkit::herald_bin();
    let mut child = ns
        .command(bin.to_str().expect("UTF-8"))
        .arg("speaker")
        .arg("--config")
        .arg(workspace_root().join("systemd/herald.example.yaml"))
        .args(["--node", "edge-1", "--metrics-addr", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        // 2 s: a WATCHDOG=1 about every second.
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting herald");
    let first = next_message(&socket);
    let mut seen = vec![first.clone()];
    let mut watchdog = first.lines().any(|l| l == "WATCHDOG=1");
    let mut ready = first.clone();
    while !ready.contains("READY=1") {
        ready = next_message(&socket);
        watchdog |= ready.lines().any(|l| l == "WATCHDOG=1");
        seen.push(ready.clone());
    }
    while !watchdog {
        let m = next_message(&socket);
        watchdog = m.lines().any(|l| l == "WATCHDOG=1");
        seen.push(m);
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut stopping = false;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let status = child.wait().expect("herald exits");
    let mut buf = [0u8; 4096];
    while let Ok(len) = socket.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..len]).contains("STOPPING=1");
    }
    assert!(status.success(), "{status}");
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=announcing: ")),
        "{seen:?}"
    );
    assert!(stopping, "no STOPPING=1 after SIGTERM: {seen:?}");
}
