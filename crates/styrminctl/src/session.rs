//! `styrminctl login`, `styrminctl context …` and `styrminctl version`: which server the
//! other commands talk to, kept in the user's configuration file (see
//! `styrmin_client::config`).

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use serde::Serialize;
use styrmin_client::config::{self, Config};
use styrmin_client::ops::session::{ServerVersion, WhoAmI};
use styrmin_client::{Client, NoVariables};

use crate::api::{Connection, not_found};
use crate::output::{Format, print_value};
use crate::table::{Table, print_fields};
use crate::{ExitCode, InvalidInput};

/// The longest token accepted on standard input.
const MAX_TOKEN: usize = 4096;

#[derive(Subcommand)]
pub enum ContextCommand {
    /// The contexts of the configuration file; `*` marks the current one.
    List,
    /// Make NAME the current context.
    Use { name: String },
    /// Forget a context and its token.
    Delete { name: String },
}

/// Checks the token against the server, then saves server and token as a context and
/// makes it current. The token is `--token`, else STYRMIN_TOKEN, else read from stdin.
pub async fn login(
    server: String,
    name: Option<String>,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let server = server.trim_end_matches('/').to_owned();
    config::check_server(&server).map_err(|e| InvalidInput(e.to_string()))?;
    let name = name.unwrap_or_else(|| config::name_for(&server));
    config::check_name(&name).map_err(|e| InvalidInput(e.to_string()))?;
    let token = match conn.token.clone().filter(|t| !t.is_empty()) {
        Some(token) => token,
        None => read_token()?,
    };
    let me = Client::new(&server, Some(token.clone()))?
        .run::<WhoAmI>(&NoVariables {})
        .await?;
    let path = config::path()?;
    let mut config = Config::load(&path)?;
    config.upsert(config::Context {
        name: name.clone(),
        server: server.clone(),
        token: Some(token),
    })?;
    config.current_context = Some(name.clone());
    config.save(&path)?;
    match format {
        Format::Table => println!(
            "Logged in to {server} as {} ({}); context `{name}` is current ({})",
            me.name,
            me.role.to_lowercase(),
            path.display()
        ),
        _ => print_value(
            &serde_json::json!({"context": name, "server": server, "name": me.name, "role": me.role, "config": path}),
            format,
        )?,
    }
    Ok(ExitCode::Ok)
}

fn read_token() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Token: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_TOKEN as u64 + 1)
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim().to_owned();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(InvalidInput(
            "give a token with --token, STYRMIN_TOKEN or on standard input".into(),
        )
        .into());
    }
    Ok(token)
}

#[derive(Serialize)]
struct ContextRow {
    name: String,
    server: String,
    current: bool,
}

pub fn context(command: ContextCommand, format: Format) -> Result<ExitCode> {
    let path = config::path()?;
    let mut config = Config::load(&path)?;
    match command {
        ContextCommand::List => {
            let rows: Vec<ContextRow> = config
                .contexts
                .iter()
                .map(|c| ContextRow {
                    name: c.name.clone(),
                    server: c.server.clone(),
                    current: config.current_context.as_deref() == Some(c.name.as_str()),
                })
                .collect();
            match format {
                Format::Table => {
                    let mut t = Table::new(&["CURRENT", "NAME", "SERVER"]);
                    for r in &rows {
                        let mark = if r.current { "*" } else { "" };
                        t.row(vec![mark.into(), r.name.clone(), r.server.clone()]);
                    }
                    t.print();
                }
                _ => print_value(&rows, format)?,
            }
        }
        ContextCommand::Use { name } => {
            if config.get(&name).is_none() {
                return Err(not_found(&name, &path));
            }
            config.current_context = Some(name.clone());
            config.save(&path)?;
            println!("Context `{name}` is current");
        }
        ContextCommand::Delete { name } => {
            let before = config.contexts.len();
            config.contexts.retain(|c| c.name != name);
            if config.contexts.len() == before {
                return Err(not_found(&name, &path));
            }
            if config.current_context.as_deref() == Some(name.as_str()) {
                config.current_context = None;
            }
            config.save(&path)?;
            println!("Context `{name}` deleted");
        }
    }
    Ok(ExitCode::Ok)
}

/// The client's version, then the server's (unless `client_only`): a server that cannot
/// be asked is an error after the client's line.
pub async fn version(client_only: bool, conn: &Connection, format: Format) -> Result<ExitCode> {
    let client = env!("CARGO_PKG_VERSION");
    let server = if client_only {
        None
    } else {
        let target = conn.target()?;
        let answer = Client::new(&target.server, target.token)?
            .run::<ServerVersion>(&NoVariables {})
            .await;
        match answer {
            Ok(version) => Some((version, target.server)),
            Err(error) => {
                println!("client  {client}");
                return Err(anyhow::Error::from(error)
                    .context(format!("cannot ask {} for its version", target.server)));
            }
        }
    };
    match format {
        Format::Table => {
            let mut fields = vec![("client", client.to_owned())];
            if let Some((version, url)) = &server {
                fields.push(("server", format!("{version} ({url})")));
            }
            print_fields(&fields);
        }
        _ => print_value(
            &serde_json::json!({"client": client, "server": server.as_ref().map(|s| &s.0)}),
            format,
        )?,
    }
    Ok(ExitCode::Ok)
}
