//! The command line: what a user (or a DaemonSet manifest) can say to herald.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Announces bare-metal Kubernetes LoadBalancer addresses by ARP/NDP and BGP",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate configuration files offline and show what a node would announce.
    ///
    /// Exits 0 only when the configuration has no errors.
    Check(CheckArgs),
    /// Run the node speaker daemon.
    Speaker(SpeakerArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// YAML files of Kubernetes-style documents (metallb.io resources, v1 Services, v1 Nodes).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Show the plan of this node. Without it, the plan of every Node object in the files.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// How to print the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Announce only Services of this spec.loadBalancerClass [default: Services without a
    /// class].
    #[arg(long = "lb-class", value_name = "CLASS")]
    pub lb_class: Option<String>,

    /// Also print notes (e.g. documents of kinds herald does not read).
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SpeakerArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The node this speaker runs on [default: the hostname].
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node: Option<String>,

    /// Where to serve /metrics, /healthz, /readyz and /status.
    #[arg(
        long,
        env = "HERALD_METRICS_ADDR",
        default_value = "0.0.0.0:7472",
        value_name = "ADDR"
    )]
    pub metrics_addr: SocketAddr,

    #[command(flatten)]
    pub announce: AnnounceArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

/// How addresses are announced. Durations are written as in Kubernetes: 500ms, 90s, 1m30s.
#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// Rounds of gratuitous ARP / unsolicited neighbor advertisements when this node takes
    /// an address, and again when a link comes up.
    #[arg(
        long,
        env = "HERALD_L2_ANNOUNCE_COUNT",
        default_value_t = 3,
        value_name = "N"
    )]
    pub l2_announce_count: u32,

    /// Time between those rounds. Linux ignores a second ARP update for an entry within its
    /// locktime (1s by default), so rounds closer than that may be lost.
    #[arg(long, env = "HERALD_L2_ANNOUNCE_INTERVAL", default_value = "1100ms",
          value_name = "DURATION", value_parser = parse_duration)]
    pub l2_announce_interval: Duration,

    /// One more round this often while an address is held, so switches and clients stay
    /// current; 0 turns it off.
    #[arg(long, env = "HERALD_L2_REFRESH_INTERVAL", default_value = "60s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub l2_refresh_interval: Duration,

    /// On shutdown, drain: re-announce every BGP route with the GRACEFUL_SHUTDOWN community
    /// (65535:0, RFC 8326), wait this long so routers move traffic away, then close the
    /// sessions for good (Hard Reset: routers drop the routes). 0 (the default): a SIGTERM
    /// is a restart, and routers with graceful restart keep the routes until herald is
    /// back, unless the Node is cordoned or being deleted.
    #[arg(long, env = "HERALD_BGP_GRACEFUL_SHUTDOWN", default_value = "0s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub bgp_graceful_shutdown: Duration,

    /// Send the interface's link-local address beside the global one in IPv6 next hops to
    /// on-link peers (RFC 2545). Turn it off for routers that cannot tie a link-local
    /// address to an interface and then drop the routes (FRR's bgpd running without zebra).
    #[arg(long, env = "HERALD_BGP_LINK_LOCAL_NEXT_HOP", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub bgp_link_local_next_hop: bool,

    /// Kubernetes mode: how long a node is taken to be alive after its last renewal of its
    /// Lease; a crashed node's addresses move to others after this (whole seconds).
    #[arg(long, env = "HERALD_ELECTION_LEASE_DURATION", default_value = "3s",
          value_name = "DURATION", value_parser = parse_lease_duration)]
    pub election_lease_duration: Duration,

    /// Kubernetes mode: how often each node renews its Lease: the only periodic write of the
    /// election, one per node whatever the number of addresses. Must be under the lease
    /// duration; a third of it lets two renewals fail before others take over.
    #[arg(long, env = "HERALD_ELECTION_RENEW_INTERVAL", default_value = "1s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub election_renew_interval: Duration,
}

impl AnnounceArgs {
    /// The election's timing, when the flags make sense together.
    pub fn election_timing(&self) -> Result<election::Timing, String> {
        let (duration, renew) = (self.election_lease_duration, self.election_renew_interval);
        if renew.is_zero() || renew >= duration {
            return Err(format!(
                "--election-renew-interval ({renew:?}) must be above zero and below --election-lease-duration ({duration:?}), or nodes expire between renewals"
            ));
        }
        Ok(election::Timing {
            lease_duration: duration,
            renew_interval: renew,
            ..election::Timing::default()
        })
    }

    pub fn options(&self) -> crate::actuators::Options {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        crate::actuators::Options {
            l2: l2::Config {
                announce_count: self.l2_announce_count,
                announce_interval: self.l2_announce_interval,
                refresh_interval: nonzero(self.l2_refresh_interval),
            },
            bgp_graceful_shutdown: nonzero(self.bgp_graceful_shutdown),
            bgp_link_local_next_hop: self.bgp_link_local_next_hop,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    model::net::parse_duration(s).map_err(|e| format!("{e}; {}", e.fix()))
}

/// A Lease's duration is whole seconds on the wire.
fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 || d.is_zero() {
        return Err(format!(
            "{s:?} is not a whole number of seconds; Lease durations are whole seconds, e.g. 3s"
        ));
    }
    Ok(d)
}

/// Where the configuration comes from: files (`--config`), or else the Kubernetes API
/// (`--kubeconfig`, or the in-cluster configuration when herald runs in a pod).
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// File mode: a YAML file of Kubernetes-style documents; repeat for several. Reloaded
    /// when it changes on disk and on SIGHUP.
    #[arg(long = "config", value_name = "FILE", conflicts_with = "kubeconfig")]
    pub config: Vec<PathBuf>,

    /// Kubernetes mode: the kubeconfig to reach the API server with [default: the in-cluster
    /// configuration, else $KUBECONFIG or ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubernetes mode: the namespace of the metallb.io configuration (and of herald's
    /// Leases) [default: the pod's namespace, else metallb-system].
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Announce only Services of this spec.loadBalancerClass [default: Services without a
    /// class, as MetalLB does].
    #[arg(long = "lb-class", env = "HERALD_LB_CLASS", value_name = "CLASS")]
    pub lb_class: Option<String>,
}

/// Where the pod's namespace is, when herald runs in one.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// MetalLB's namespace, where its configuration usually lives.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// The source `herald speaker` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Files(Vec<PathBuf>),
    Kubernetes {
        kubeconfig: Option<PathBuf>,
        namespace: String,
    },
}

impl SourceArgs {
    pub fn mode(&self) -> Mode {
        if !self.config.is_empty() {
            return Mode::Files(self.config.clone());
        }
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string(POD_NAMESPACE_FILE)
                    .ok()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Mode::Kubernetes {
            kubeconfig: self.kubeconfig.clone(),
            namespace,
        }
    }
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format (logs go to standard error).
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) for herald's own logs (the
    /// libraries under it log at info at most then), or tracing directives such as
    /// `info,kube=debug`.
    #[arg(long, env = "HERALD_LOG_LEVEL", default_value = "info", value_name = "FILTER",
          value_parser = parse_log_filter)]
    pub log_level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Rejects a bad filter as a usage error (exit 2) instead of failing later.
fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(crate::logging::expand(s))
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log level or tracing filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn speaker_defaults() {
        let cli = Cli::try_parse_from([
            "herald", "speaker", "--config", "a.yaml", "--config", "b.yaml", "--node", "n1",
        ])
        .expect("parses");
        let Command::Speaker(args) = cli.command else {
            panic!("not speaker")
        };
        assert_eq!(
            args.source.mode(),
            Mode::Files(vec!["a.yaml".into(), "b.yaml".into()])
        );
        assert_eq!(args.node.as_deref(), Some("n1"));
        assert_eq!(args.metrics_addr, "0.0.0.0:7472".parse().expect("addr"));
        assert_eq!(args.log.log_format, LogFormat::Text);
        assert_eq!(args.log.log_level, "info");
        let options = args.announce.options();
        assert_eq!(options.l2, l2::Config::default());
        assert_eq!(options.bgp_graceful_shutdown, None);
        assert!(options.bgp_link_local_next_hop);
    }

    #[test]
    fn announce_timing_is_configurable() {
        let cli = Cli::try_parse_from([
            "herald",
            "speaker",
            "--config",
            "a.yaml",
            "--l2-announce-count",
            "5",
            "--l2-announce-interval",
            "2s",
            "--l2-refresh-interval",
            "0",
            "--bgp-graceful-shutdown",
            "1m30s",
            "--bgp-link-local-next-hop",
            "false",
        ])
        .expect("parses");
        let Command::Speaker(args) = cli.command else {
            panic!("not speaker")
        };
        let options = args.announce.options();
        assert_eq!(options.l2.announce_count, 5);
        assert_eq!(options.l2.announce_interval, Duration::from_secs(2));
        assert_eq!(options.l2.refresh_interval, None);
        assert_eq!(options.bgp_graceful_shutdown, Some(Duration::from_secs(90)));
        assert!(!options.bgp_link_local_next_hop);
        let err = Cli::try_parse_from([
            "herald",
            "speaker",
            "--config",
            "a.yaml",
            "--l2-announce-interval",
            "2",
        ])
        .expect_err("a duration needs a unit");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("2s"), "{err}");
    }

    #[test]
    fn without_config_files_the_source_is_kubernetes() {
        let cli = Cli::try_parse_from([
            "herald",
            "speaker",
            "--kubeconfig",
            "/tmp/kc",
            "--namespace",
            "lb",
        ])
        .expect("parses");
        let Command::Speaker(args) = cli.command else {
            panic!("not speaker")
        };
        assert_eq!(
            args.source.mode(),
            Mode::Kubernetes {
                kubeconfig: Some("/tmp/kc".into()),
                namespace: "lb".into()
            }
        );
        let err = Cli::try_parse_from([
            "herald",
            "speaker",
            "--config",
            "a.yaml",
            "--kubeconfig",
            "/tmp/kc",
        ])
        .expect_err("one source at a time");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_log_filter_is_usage_error() {
        let err = Cli::try_parse_from([
            "herald",
            "speaker",
            "--config",
            "a.yaml",
            "--log-level",
            "info,=[",
        ])
        .expect_err("rejected");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn check_needs_a_file() {
        let err = Cli::try_parse_from(["herald", "check"]).expect_err("rejected");
        assert_eq!(err.exit_code(), 2);
    }
}
