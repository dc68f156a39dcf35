//! `styrminctl`: the Styrmin command line.

mod driver_dir;
mod drivers;
mod input;
mod output;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Application Drivers: lint and render offline.
    #[command(subcommand)]
    Drivers(drivers::DriversCommand),
}

/// Exit codes scripts can rely on: 0 success, 1 invalid input (lint errors, rejected
/// values), 2 the command could not run (bad usage, unreadable files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Invalid = 1,
    Failed = 2,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Drivers(command) => drivers::run(command, cli.output),
    };
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<InvalidInput>().is_some() {
                ExitCode::Invalid
            } else {
                ExitCode::Failed
            }
        }
    };
    std::process::ExitCode::from(code as u8)
}
