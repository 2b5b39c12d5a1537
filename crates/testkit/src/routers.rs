//! Real routing daemons in network namespaces: BIRD 2, FRR bgpd (without zebra) and GoBGP,
//! each started from a configuration the caller writes, in a directory of its own (the
//! configuration, the control socket, the log), with its command-line client run inside the
//! namespace. What the configuration says, and how to read the daemon's answers, is the
//! caller's business: the BGP tests and the BGP benchmark want different things of them.
//!
//! Needs root and the Debian packages bird2, frr and gobgpd (`cargo xtask test` installs
//! them). A daemon that does not start makes the caller panic with its log: a privileged
//! test never skips.

use crate::netns::Netns;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bird,
    Frr,
    Gobgp,
}

/// A routing daemon running in a namespace, killed when dropped. Its directory is removed
/// then too, unless the thread is panicking: the configuration and log say what it saw.
pub struct Daemon {
    kind: Kind,
    dir: PathBuf,
    child: Child,
    ns: String,
}

/// How long a daemon may take to answer on its control interface after it was started.
const START_LIMIT: Duration = Duration::from_secs(20);

impl Daemon {
    /// Writes `config` into a new directory and starts `kind` with it in `ns` (in the
    /// foreground, output to `log` in the directory), then waits until its control
    /// interface answers. Panics, with the log, if it never does.
    pub fn start(kind: Kind, ns: &Netns, config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("{}-{kind:?}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let (file, args): (&str, Vec<String>) = match kind {
            Kind::Bird => (
                "bird.conf",
                vec![
                    "bird".into(),
                    "-f".into(),
                    "-c".into(),
                    path(&dir.join("bird.conf")),
                    "-s".into(),
                    path(&dir.join("bird.ctl")),
                ],
            ),
            Kind::Frr => (
                "frr.conf",
                [
                    "/usr/lib/frr/bgpd",
                    "-f",
                    &path(&dir.join("frr.conf")),
                    "-i",
                    &path(&dir.join("bgpd.pid")),
                    "--vty_socket",
                    &path(&dir),
                    // No zebra, no listener outside what the configuration says, no vty port.
                    "-Z",
                    "-S",
                    "-n",
                    "-P",
                    "0",
                    "--log",
                    "stdout",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Kind::Gobgp => (
                "gobgpd.toml",
                [
                    "gobgpd",
                    "-f",
                    &path(&dir.join("gobgpd.toml")),
                    "-p",
                    "--pprof-disable",
                    // The API is per namespace: every GoBGP can use the default port.
                    "--api-hosts",
                    "127.0.0.1:50051",
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        std::fs::write(dir.join(file), config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", dir.join(file).display()));
        let log = std::fs::File::create(dir.join("log")).expect("daemon log file");
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        let child = ns
            .command(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("daemon log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?} ({args:?}): {e}"));
        let daemon = Daemon {
            kind,
            dir,
            child,
            ns: ns.name().to_owned(),
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let answer = match kind {
                Kind::Bird => daemon.birdc(&["show", "status"]),
                Kind::Frr => daemon.vtysh("show bgp summary json"),
                Kind::Gobgp => daemon.gobgp(&["global", "-j"]),
            };
            match answer {
                Ok(_) => return daemon,
                Err(e) if Instant::now() >= deadline => panic!(
                    "{kind:?} did not answer within {START_LIMIT:?}: {e}\nits log:\n{}",
                    daemon.log()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where its configuration, control socket and log are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `program ARGS` inside the daemon's namespace: stdout when it succeeds, else
    /// what it printed.
    pub fn cli(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, program])
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `birdc COMMAND...` on this BIRD's control socket.
    pub fn birdc(&self, command: &[&str]) -> Result<String, String> {
        let socket = path(&self.dir.join("bird.ctl"));
        let mut args = vec!["-s", &socket];
        args.extend_from_slice(command);
        self.cli("birdc", &args)
    }

    /// A connection to this BIRD's control socket, for asking often without starting a
    /// process each time.
    pub fn bird_control(&self) -> io::Result<BirdControl> {
        BirdControl::connect(&self.dir.join("bird.ctl"))
    }

    /// `vtysh -c COMMAND` against this FRR.
    pub fn vtysh(&self, command: &str) -> Result<String, String> {
        self.cli("vtysh", &["--vty_socket", &path(&self.dir), "-c", command])
    }

    /// `gobgp ARGS...` against this GoBGP's API.
    pub fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        self.cli("gobgp", args)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the daemon's own pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(
            rc,
            0,
            "kill {signal} {}: {}",
            self.child.id(),
            io::Error::last_os_error()
        );
    }

    /// Its peak resident set size so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The peak resident set size (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn path(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// A connection to BIRD's control socket, speaking what `birdc` speaks: one command a line;
/// the reply is lines of a four-digit code and `-` (more follows) or a space (the last
/// line), or a space alone (continuing the previous code). A Unix socket is reachable from
/// any namespace, so this needs no `ip netns exec`.
pub struct BirdControl {
    stream: BufReader<UnixStream>,
}

impl BirdControl {
    /// Connects and reads the greeting.
    pub fn connect(socket: &Path) -> io::Result<BirdControl> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut control = BirdControl {
            stream: BufReader::new(stream),
        };
        control.reply()?;
        Ok(control)
    }

    /// Sends `command` (as typed at `birdc`) and returns the reply's text, one line per
    /// line, without the codes.
    pub fn command(&mut self, command: &str) -> io::Result<String> {
        let stream = self.stream.get_mut();
        stream.write_all(command.as_bytes())?;
        stream.write_all(b"\n")?;
        self.reply()
    }

    fn reply(&mut self) -> io::Result<String> {
        let mut text = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "BIRD closed its control socket",
                ));
            }
            let line = line.trim_end_matches('\n');
            let bytes = line.as_bytes();
            let coded = bytes.len() >= 4
                && bytes[..4].iter().all(u8::is_ascii_digit)
                && matches!(bytes.get(4), None | Some(b' ' | b'-'));
            if coded {
                text.push_str(line.get(5..).unwrap_or_default());
                text.push('\n');
                if bytes.get(4) != Some(&b'-') {
                    return Ok(text);
                }
            } else if let Some(rest) = line.strip_prefix(' ') {
                text.push_str(rest);
                text.push('\n');
            }
            // Anything else ('+' asynchronous messages) is not part of the reply.
        }
    }
}
