//! `styrmin-bench`: measures what ARCHITECTURE.md sets targets for and writes the figures,
//! with the command that produced them, to BENCHMARKS.md.

mod agent;
mod cluster;
mod operator;
mod render;
mod report;
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
