//! `styrmin agent`: the per-cluster agent, with the cluster from a kubeconfig or, inside a
//! pod, from the service account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use styrmin_agent::{AgentConfig, run as run_agent};

#[derive(Args, Clone)]
pub struct AgentArgs {
    /// The Styrmin server's URL.
    #[arg(long, env = "STYRMIN_SERVER_ADDRESS")]
    pub server: String,
    /// The cluster's agent token (from `clusters create` or `clusters rotate-token`).
    #[arg(long, env = "STYRMIN_AGENT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A kubeconfig; in-cluster configuration (or the usual kubeconfig) when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between full status snapshots (changes are sent as they happen).
    #[arg(long, default_value_t = 30)]
    pub snapshot_interval: u64,
    /// Seconds a flow run's core step waits for the operator.
    #[arg(long, default_value_t = 600)]
    pub core_timeout: u64,
    /// Seconds runs in flight may finish after SIGTERM before they are handed back to
    /// the server (keep it below the pod's terminationGracePeriodSeconds).
    #[arg(long, default_value_t = 20)]
    pub shutdown_grace: u64,
    /// Serve Prometheus metrics at `/metrics` (and `/healthz`) on this address, without a
    /// token: bind it where only the cluster's network reaches (`0.0.0.0:9090` in a pod).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// The namespace the agent runs in (the chart sets it): labelled
    /// `styrmin.io/agent=true` at start, so environments' NetworkPolicies let the agent in.
    #[arg(long, env = "STYRMIN_AGENT_NAMESPACE")]
    pub namespace: Option<String>,
}

pub async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster configuration found")?,
    };
    styrmin_agent::kube_client::counted(config)
}

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::shutdown_signal();
    let client = client(args.kubeconfig.as_ref()).await?;
    let mut config = AgentConfig::new(&args.server, &args.token);
    config.snapshot_interval = Duration::from_secs(args.snapshot_interval.max(1));
    config.core_timeout = Duration::from_secs(args.core_timeout.max(1));
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    config.metrics_listen = args.metrics_listen;
    config.namespace = args.namespace;
    println!(
        "Styrmin agent {} → {}",
        env!("CARGO_PKG_VERSION"),
        args.server
    );
    run_agent(config, client, stop).await?;
    crate::say("agent stopped");
    Ok(ExitCode::SUCCESS)
}
