//! Talking to the server: the connection options every server command shares, where the
//! server and token come from, and how the server's error kinds become exit codes.
//!
//! The server is `--server`, else STYRMIN_SERVER_ADDRESS, else the context's (`--context`,
//! STYRMIN_CONTEXT, else the configuration's current one), else http://127.0.0.1:8080.
//! The token is `--token`, else STYRMIN_TOKEN, else the context's, which is only ever sent
//! to that context's own server.

use anyhow::Result;
use clap::Args;
use styrmin_client::config::{self, Config};
use styrmin_client::{Client, ErrorKind};

use crate::ExitCode;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// The Styrmin server's base URL [default: the context's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "STYRMIN_SERVER_ADDRESS")]
    pub server: Option<String>,
    /// An API token [default: the context's].
    #[arg(long, global = true, env = "STYRMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The context to use instead of the current one (`styrminctl context list`); given
    /// before the command, since `drivers render --context FILE` names a Context file.
    #[arg(long, env = "STYRMIN_CONTEXT")]
    pub context: Option<String>,
}

/// A server and the token to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
}

impl Connection {
    /// Where the commands go, after flags, environment and the configuration.
    pub fn target(&self) -> Result<Target> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let (server, token) = (given(&self.server), given(&self.token));
        if server.is_some() && token.is_some() && self.context.is_none() {
            return Ok(Target {
                server: server.unwrap_or_default(),
                token,
            });
        }
        let path = config::path()?;
        let config = Config::load(&path)?;
        let context = match &self.context {
            Some(name) => Some(config.get(name).ok_or_else(|| not_found(name, &path))?),
            None => config.current(),
        };
        let server = server
            .or_else(|| context.map(|c| c.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let token = token.or_else(|| {
            context
                .filter(|c| c.server == server)
                .and_then(|c| c.token.clone())
        });
        Ok(Target { server, token })
    }

    pub fn client(&self) -> Result<Client> {
        let target = self.target()?;
        Ok(Client::new(&target.server, target.token)?)
    }
}

/// An unknown context: exit code 3, like any missing object.
pub fn not_found(name: &str, path: &std::path::Path) -> anyhow::Error {
    styrmin_client::Error {
        kind: ErrorKind::NotFound,
        message: format!(
            "no context {name:?} in {} (see `styrminctl context list`)",
            path.display()
        ),
        fields: Vec::new(),
    }
    .into()
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
