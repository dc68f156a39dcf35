//! Declarative action steps, for drivers that need no code: `stop`, `start`, `exec`,
//! `wait_ready` and `http_check`, run in order; the first failure fails the action.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use styrmin_core::driver::{ExecCommand, Step};

use super::ActionHost;

pub async fn run(host: &Arc<ActionHost>, steps: &[Step], deadline: Instant) -> Result<()> {
    for step in steps {
        match step {
            Step::Stop(names) => host.stop_components(names, deadline).await?,
            Step::Start(names) => host.start_components(names, deadline).await?,
            Step::WaitReady(names) => host.wait_ready(names, deadline).await?,
            Step::Exec { component, command } => {
                host.execute_commands(component, &[argv(command)]).await?;
            }
            Step::HttpCheck {
                service,
                path,
                expect_status,
            } => {
                host.http_check(service, path, *expect_status, deadline)
                    .await?
            }
        }
    }
    Ok(())
}

/// A shell string runs through `sh -c`; a list runs as is.
pub fn argv(command: &ExecCommand) -> Vec<String> {
    match command {
        ExecCommand::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        ExecCommand::Argv(argv) => argv.clone(),
    }
}
