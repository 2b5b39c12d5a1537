//! `herald status`: reads the speaker's `/status` on `--status-addr` (loopback by default,
//! so this runs on the node, or in the speaker's pod) and prints it for a person, or as the
//! JSON document it is (`--output json`).

use crate::cli::{OutputFormat, StatusArgs};
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let body = get(args.status_addr, "/status")?;
    match args.output {
        OutputFormat::Json => print!("{body}"),
        OutputFormat::Text => {
            let doc: Value = serde_json::from_str(&body)
                .with_context(|| format!("/status on {} is not JSON", args.status_addr))?;
            print!("{}", summary(&doc));
        }
    }
    Ok(())
}

/// `GET path` over HTTP/1.0; the body of a 200 answer.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| {
        format!(
            "cannot reach the speaker's /status on {addr}: is herald speaker running here, \
             with this --status-addr?"
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading /status from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{addr} did not answer with HTTP");
    };
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!(
            "{addr}{path} answered {}: {}",
            head.lines().next().unwrap_or(""),
            body.trim()
        );
    }
    Ok(body.to_owned())
}

/// A string, or `namespace/name` for a reference, or the JSON text.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        Value::Object(o) => match (o.get("namespace"), o.get("name")) {
            (Some(Value::String(ns)), Some(Value::String(n))) => format!("{ns}/{n}"),
            (None, Some(Value::String(n))) => n.clone(),
            _ => v.to_string(),
        },
        _ => v.to_string(),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// What a person wants from `/status`: the configuration's state, what is answered and
/// announced, and why anything is not.
fn summary(doc: &Value) -> String {
    let mut out = String::new();
    let config = &doc["config"];
    let _ = writeln!(
        out,
        "node {}: configuration {} (generation {}), {}",
        show(&doc["node"]),
        show(&config["state"]),
        config["generation"],
        if doc["ready"] == true {
            "ready"
        } else {
            "not ready"
        }
    );
    for (what, key) in [("error", "last_errors"), ("warning", "warnings")] {
        for d in list(&config[key]) {
            let message = d.get("message").map(show).unwrap_or_else(|| show(d));
            let _ = writeln!(out, "  {what}: {message}");
        }
    }
    let layer2 = &doc["announcing"]["layer2"];
    if let Some(e) = layer2.get("error") {
        let _ = writeln!(out, "Layer 2 is off: {}", show(e));
    }
    let addresses = list(&layer2["addresses"]);
    if !addresses.is_empty() {
        let _ = writeln!(out, "Layer 2:");
        for a in addresses {
            let interfaces: Vec<String> = list(&a["interfaces"]).iter().map(show).collect();
            let doing = if a["answering"] == true {
                format!("answering on {}", interfaces.join(", "))
            } else if let Some(leader) = a.get("leader").filter(|l| !l.is_null()) {
                format!("answered by {}", show(leader))
            } else if interfaces.is_empty() {
                "not answered here: no usable interface".to_owned()
            } else {
                "not answered here".to_owned()
            };
            let _ = writeln!(out, "  {} {}: {doing}", show(&a["ip"]), show(&a["service"]));
        }
    }
    let sessions = list(&doc["announcing"]["bgp"]);
    if !sessions.is_empty() {
        let _ = writeln!(out, "BGP:");
        for s in sessions {
            let _ = write!(
                out,
                "  {} ({}): {}, {} of {} routes advertised",
                show(&s["peer"]),
                show(&s["address"]),
                show(&s["state"]),
                s["routes_advertised"],
                s["routes_planned"],
            );
            if let Some(e) = s.get("not_running").filter(|e| !e.is_null()) {
                let _ = write!(out, "; not running: {}", show(e));
            } else if let Some(e) = s.get("last_error").filter(|e| !e.is_null()) {
                let _ = write!(out, "; last error: {}", show(e));
            }
            let _ = writeln!(out);
            if let Some(withheld) = s["withheld"].as_object() {
                for (prefix, why) in withheld {
                    let _ = writeln!(out, "    withheld {prefix}: {}", show(why));
                }
            }
        }
    }
    let skipped = list(&doc["plan"]["skipped"]);
    if !skipped.is_empty() {
        let _ = writeln!(out, "Not announced here:");
        for s in skipped {
            let what = match (s.get("ip").filter(|i| !i.is_null()), &s["protocol"]) {
                (Some(ip), Value::Null) => format!("{} {}", show(&s["service"]), show(ip)),
                (Some(ip), p) => format!("{} {} ({})", show(&s["service"]), show(ip), show(p)),
                (None, _) => show(&s["service"]),
            };
            let _ = writeln!(out, "  {what}: {}", show(&s["reason"]));
        }
    }
    // `herald doctor`'s node checks, as the speaker last ran them: what fails or warns.
    let problems = list(&doc["node_checks"]["problems"]);
    if !problems.is_empty() {
        let _ = writeln!(out, "Node checks:");
        for p in problems {
            let _ = write!(
                out,
                "  {} {}: {}",
                show(&p["status"]),
                show(&p["check"]),
                show(&p["message"])
            );
            if let Some(fix) = p.get("fix").filter(|f| !f.is_null()) {
                let _ = write!(out, " ({})", show(fix));
            }
            let _ = writeln!(out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_says_what_is_announced_and_why_not() {
        let doc = json!({
            "node": "node-a",
            "ready": true,
            "config": {"state": "loaded", "generation": 2, "last_errors": [],
                       "warnings": [{"message": "BGPPeer x names a missing BFDProfile"}]},
            "plan": {"skipped": [{"service": {"namespace": "default", "name": "web"},
                                  "ip": "192.0.2.7", "protocol": null,
                                  "reason": "no-ready-endpoints"}]},
            "announcing": {
                "layer2": {"addresses": [{"ip": "192.0.2.10", "service": "default/dns",
                                          "interfaces": ["eth0"], "answering": true}],
                           "interfaces": {}},
                "bgp": [{"peer": "router", "address": "192.0.2.1:179", "state": "Established",
                         "routes_planned": 3, "routes_advertised": 2,
                         "withheld": {"2001:db8::1/128": "no IPv6 session"}}]
            },
            "node_checks": {"failed": 1, "problems": [{"check": "ipv6", "subject": "eth0",
                            "status": "fail", "message": "IPv6 is disabled on eth0",
                            "fix": "sysctl -w net.ipv6.conf.eth0.disable_ipv6=0"}]}
        });
        let text = summary(&doc);
        for want in [
            "node node-a: configuration loaded (generation 2), ready",
            "warning: BGPPeer x names a missing BFDProfile",
            "192.0.2.10 default/dns: answering on eth0",
            "router (192.0.2.1:179): Established, 2 of 3 routes advertised",
            "withheld 2001:db8::1/128: no IPv6 session",
            "default/web 192.0.2.7: no-ready-endpoints",
            "fail ipv6: IPv6 is disabled on eth0 (sysctl -w net.ipv6.conf.eth0.disable_ipv6=0)",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn nothing_listening_is_a_clear_error() {
        // A port nothing listens on: bound, then closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let e = get(addr, "/status").expect_err("nothing listens");
        assert!(
            format!("{e:#}").contains("is herald speaker running here"),
            "{e:#}"
        );
    }
}
