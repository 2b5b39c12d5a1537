//! `herald-apiserver`: the testkit API server as a process, for the lab and for trying herald
//! without a cluster. It writes a kubeconfig pointing at itself and serves until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use testkit::apiserver::ApiServer;

#[derive(Parser)]
#[command(
    about = "A Kubernetes API server for tests: core, coordination, discovery, events and metallb.io kinds"
)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for this server.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// The token and user name in the kubeconfig; requests are counted per client.
    #[arg(long, default_value = "admin")]
    client: String,
    /// Change events kept for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
    /// Service CIDRs, as `--service-cluster-ip-range`: one, or one of each family for a
    /// dual-stack cluster (primary first). Services get clusterIPs, ipFamilies and
    /// ipFamilyPolicy from them on create; empty: no cluster IPs.
    #[arg(long, default_value = "10.96.0.0/12,fd00:10:96::/112")]
    service_cidrs: String,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = ApiServer::builder()
        .listen(args.listen)
        .history_limit(args.history_limit);
    let server = if args.service_cidrs.trim().is_empty() {
        server
    } else {
        server.service_cidrs(&args.service_cidrs)
    }
    .start()?;
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path, &args.client)?;
    }
    println!("herald-apiserver listening on {}", server.url());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, std::io::Error>(())
    })?;
    drop(server);
    Ok(())
}
