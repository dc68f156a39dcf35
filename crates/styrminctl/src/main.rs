//! `styrminctl`: the Styrmin command line. A thin client of the server's GraphQL API, plus
//! `drivers lint` and `drivers render`, which work offline.

mod api;
mod backups;
mod clusters;
mod deployments;
mod driver_dir;
mod drivers;
mod input;
mod locations;
mod output;
mod session;
mod table;
mod tokens;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::api::Connection;
use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "styrminctl",
    version,
    about = "Deploy and operate applications with Styrmin"
)]
struct Cli {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table"
    )]
    output: Format,
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Registered Kubernetes clusters.
    #[command(subcommand)]
    Clusters(clusters::ClustersCommand),
    /// Environments: a namespace on a cluster.
    #[command(subcommand)]
    Environments(clusters::EnvironmentsCommand),
    /// Backup storage locations (S3-compatible buckets).
    #[command(subcommand)]
    BackupLocations(locations::LocationsCommand),
    /// Backups and restores of deployments and environments.
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
    /// Application Drivers: lint and render offline; load and list on the server.
    #[command(subcommand)]
    Drivers(drivers::DriversCommand),
    /// Deployments: create, change, operate, follow.
    #[command(subcommand)]
    Deployments(deployments::DeploymentsCommand),
    /// Flow runs across the system.
    #[command(subcommand)]
    FlowRuns(deployments::FlowRunsCommand),
    /// API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Check a token against a server and save both as a context, made current.
    Login {
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(value_name = "URL")]
        url: String,
        /// The context's name [default: the server's host and port].
        #[arg(long)]
        name: Option<String>,
    },
    /// The saved contexts: servers and their tokens.
    #[command(subcommand)]
    Context(session::ContextCommand),
    /// The versions of styrminctl and of the server.
    Version {
        /// Only styrminctl's own version; the server is not asked.
        #[arg(long)]
        client: bool,
    },
    /// A shell completion script on standard output, e.g.
    /// `styrminctl completion bash > ~/.local/share/bash-completion/completions/styrminctl`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The audit log, newest first.
    Audit {
        /// Only entries about this object id.
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 50)]
        first: i32,
    },
}

/// Exit codes scripts can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    /// Invalid input: lint errors, rejected values, malformed flags.
    Invalid = 1,
    /// The command could not run: bad usage, unreadable files, server unreachable.
    Failed = 2,
    NotFound = 3,
    /// The request conflicts with the current state (e.g. a deployment being deleted).
    Conflict = 4,
    /// No valid token, or the token's role may not do this.
    Denied = 5,
    /// `logs --follow`: the run ended failed or cancelled.
    RunFailed = 6,
}

/// An error in what the user gave (as opposed to a failure to run): exit code 1.
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (conn, format) = (&cli.connection, cli.output);
    match cli.command {
        Command::Drivers(command) if command.is_offline() => drivers::run(command, format),
        Command::Drivers(command) => drivers::remote(command, conn, format).await,
        Command::Clusters(command) => clusters::clusters(command, conn, format).await,
        Command::Environments(command) => clusters::environments(command, conn, format).await,
        Command::BackupLocations(command) => locations::run(command, conn, format).await,
        Command::Backups(command) => backups::run(command, conn, format).await,
        Command::Deployments(command) => deployments::deployments(command, conn, format).await,
        Command::FlowRuns(command) => deployments::flow_runs(command, conn, format).await,
        Command::Tokens(command) => tokens::run(command, conn, format).await,
        Command::Audit { target, first } => tokens::audit(target, first, conn, format).await,
        Command::Login { url, name } => session::login(url, name, conn, format).await,
        Command::Context(command) => session::context(command, format),
        Command::Version { client } => session::version(client, conn, format).await,
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "styrminctl",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::Ok)
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return std::process::ExitCode::from(ExitCode::Failed as u8);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            api::exit_code(&error)
        }
    };
    std::process::ExitCode::from(code as u8)
}
