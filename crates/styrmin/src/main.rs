//! `styrmin`: the one binary of server, agent and `up`. Wiring only: the work lives in
//! the library crates.

mod up;

use std::path::PathBuf;
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
    /// Start Styrmin locally. Today: load and check the bundled drivers (the server, the
    /// agent and the local cluster join as they are built).
    Up {
        /// The directory of bundled drivers.
        #[arg(long, env = "STYRMIN_DRIVERS", default_value = "drivers")]
        drivers: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { drivers } => up::run(&drivers),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
