//! Talking to the server: the connection options every server command shares, and how
//! the server's error kinds become exit codes.

use anyhow::Result;
use clap::Args;
use styrmin_client::{Client, ErrorKind};

use crate::ExitCode;

#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// The Styrmin server's base URL.
    #[arg(
        long,
        global = true,
        env = "STYRMIN_SERVER_ADDRESS",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// An API token.
    #[arg(long, global = true, env = "STYRMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.server, self.token.clone())?)
    }
}

/// The exit code of an error: what scripts branch on.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if let Some(e) = error.downcast_ref::<styrmin_client::Error>() {
        return match e.kind {
            ErrorKind::Validation => ExitCode::Invalid,
            ErrorKind::NotFound => ExitCode::NotFound,
            ErrorKind::Conflict => ExitCode::Conflict,
            ErrorKind::Unauthorized | ErrorKind::Forbidden => ExitCode::Denied,
            ErrorKind::Transport | ErrorKind::Server => ExitCode::Failed,
        };
    }
    if error.downcast_ref::<crate::InvalidInput>().is_some() {
        return ExitCode::Invalid;
    }
    ExitCode::Failed
}
