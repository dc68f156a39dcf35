//! `styrmin`: the one binary of server, agent and `up`. Wiring only: the work lives in
//! the library crates.

mod agent;
mod server;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "styrmin",
    version,
    about = "Styrmin: deploy and operate application stacks on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: GraphQL API at /graphql, the source of truth for what should run.
    Server(server::ServerArgs),
    /// Run a cluster's agent: flow-run worker, StyrminDeployment operator, status reporter.
    Agent(agent::AgentArgs),
    /// Run Styrmin locally: the server on SQLite with the bundled drivers loaded, a local
    /// Kubernetes cluster with its agent, registered as `local` with a `dev` environment.
    Up(up::UpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The local cluster's clients skip TLS verification on purpose (a self-signed
    // apiserver on loopback); kube warns about it on every client it builds.
    let mut quiet = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("kube_client::client::tls", tracing::Level::ERROR);
    if matches!(cli.command, Command::Up(_)) {
        // `up` starts and stops the apiserver itself: the kube client's own reports of a
        // refused connection then are expected, and the agent reports its failures with
        // their context.
        quiet = quiet.with_target("kube_client::client", tracing::Level::ERROR);
        quiet = quiet.with_target(
            "kube_client::client::builder",
            tracing::level_filters::LevelFilter::OFF,
        );
    }
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .finish()
        .with(quiet)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Up(args) => up::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints a line on stdout, ignoring a closed stdout (a supervisor that stopped reading
/// must not turn a clean shutdown into a panic).
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A future that resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, so call it before announcing readiness: a signal that arrives right after the
/// announcement must stop the process cleanly, not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                _ = received(term.as_mut()) => {}
                _ = received(interrupt.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
