//! `styrmin-bench`: measures what ARCHITECTURE.md sets targets for and writes the figures,
//! with the command that produced them, to BENCHMARKS.md.

mod agent;
mod agent_load;
mod cluster;
mod operator;
mod render;
mod report;
mod scale;
mod server;
mod tools;
mod ui;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "styrmin-bench")]
struct Cli {
    /// Where to write the figures.
    #[arg(long, default_value = "BENCHMARKS.md", global = true)]
    write: PathBuf,
    /// Print the figures without writing them.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// values.j2.yml rendering, ours against Python Jinja2.
    Render {
        #[arg(long, default_value_t = 10_000)]
        iterations: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Local cluster start-up, cached binaries.
    ClusterStart {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The agent on the local cluster: intent → StyrminDeployment applied, pod ready →
    /// visible through the API.
    Agent {
        #[arg(long, default_value_t = 100)]
        deployments: usize,
    },
    /// The operator: a HelmRelease turning Ready → the StyrminDeployment's status Ready.
    Operator {
        #[arg(long, default_value_t = 30)]
        trials: usize,
    },
    /// The server: claim latency (scheduled → long-poll returns) and reportPodStatuses
    /// ingest, on SQLite and optionally PostgreSQL.
    Server {
        #[arg(long, default_value_t = 200)]
        samples: usize,
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// A PostgreSQL URL whose user may create databases; the bench makes its own.
        #[arg(long, env = "STYRMIN_BENCH_POSTGRES_URL")]
        postgres: Option<String>,
    },
    /// Many deployments across environments and clusters: convergence, a change on all of
    /// them, latencies, peak memory, API-server requests and the idle cost.
    Scale {
        #[arg(long, default_value_t = 100)]
        deployments: usize,
        #[arg(long, default_value_t = 10)]
        environments: usize,
        #[arg(long, default_value_t = 1)]
        clusters: usize,
        /// The local cluster's scale mode: the Flux stand-in renders each release with
        /// `helm template` and applies it, without `helm --wait`.
        #[arg(long)]
        no_helm: bool,
        /// How long to measure the idle cost after everything converged.
        #[arg(long, default_value_t = 60)]
        idle_seconds: u64,
        /// The most a convergence may take before the bench fails.
        #[arg(long, default_value_t = 1800)]
        timeout_seconds: u64,
        /// A PostgreSQL database URL for the server; SQLite without one.
        #[arg(long)]
        postgres: Option<String>,
        /// The `styrmin` binary (default: beside this bench's binary).
        #[arg(long)]
        styrmin: Option<PathBuf>,
    },
    /// The server under its agents' load: UI overview and `deployments` query latencies
    /// while many agents report their pods, on SQLite, PostgreSQL and two servers.
    AgentLoad {
        #[arg(long, default_value_t = 50)]
        agents: usize,
        #[arg(long, default_value_t = 200)]
        pods: usize,
        #[arg(long, default_value_t = 20)]
        deployments_per_agent: usize,
        #[arg(long, default_value_t = 5)]
        every_seconds: u64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// A PostgreSQL URL whose user may create databases; adds the PostgreSQL rows.
        #[arg(long, env = "STYRMIN_BENCH_POSTGRES_URL")]
        postgres: Option<String>,
    },
    /// The web UI: every page's time with many deployments.
    Ui {
        #[arg(long, default_value_t = 1000)]
        deployments: usize,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// A PostgreSQL URL whose user may create databases; SQLite without one.
        #[arg(long)]
        postgres: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (name, body) = match cli.command {
        Bench::Render { iterations, rounds } => {
            let figures = render::measure(&repo, iterations, rounds)?;
            let command = format!(
                "cargo run --release -p styrmin-bench -- render --iterations {iterations} --rounds {rounds}"
            );
            ("render", figures.markdown(&command))
        }
        Bench::ClusterStart { runs } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            ("cluster-start", runtime.block_on(cluster::measure(runs))?)
        }
        Bench::Scale {
            deployments,
            environments,
            clusters,
            no_helm,
            idle_seconds,
            timeout_seconds,
            postgres,
            styrmin,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let figures = runtime.block_on(scale::measure(
                &repo,
                scale::ScaleArgs {
                    deployments,
                    environments,
                    clusters,
                    no_helm,
                    idle_seconds,
                    timeout: std::time::Duration::from_secs(timeout_seconds),
                    postgres,
                    styrmin,
                },
            ))?;
            println!("{}", figures.line);
            let name = if no_helm {
                format!("scale-{deployments}")
            } else {
                format!("scale-helm-{deployments}")
            };
            (name.leak() as &str, figures.markdown)
        }
        Bench::AgentLoad {
            agents,
            pods,
            deployments_per_agent,
            every_seconds,
            seconds,
            postgres,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let args = agent_load::LoadArgs {
                agents,
                pods,
                deployments_per_agent,
                every: std::time::Duration::from_secs(every_seconds.max(1)),
                seconds,
            };
            (
                "agent-load",
                runtime.block_on(agent_load::measure(&repo, postgres.as_deref(), args))?,
            )
        }
        Bench::Agent { deployments } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            (
                "agent",
                runtime.block_on(agent::measure(&repo, deployments))?,
            )
        }
        Bench::Operator { trials } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            (
                "operator",
                runtime.block_on(operator::measure(&repo, trials))?,
            )
        }
        Bench::Server {
            samples,
            pods,
            rounds,
            postgres,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let body = runtime.block_on(server::measure(
                &repo,
                postgres.as_deref(),
                samples,
                pods,
                rounds,
            ))?;
            ("server", body)
        }
        Bench::Ui {
            deployments,
            rounds,
            postgres,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let body =
                runtime.block_on(ui::measure(&repo, postgres.as_deref(), deployments, rounds))?;
            ("ui", body)
        }
    };
    print!("{body}");
    if !cli.dry_run {
        report::write_section(&repo.join(&cli.write), name, &body)?;
    }
    Ok(())
}
