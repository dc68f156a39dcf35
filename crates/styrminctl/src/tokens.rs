//! `styrminctl tokens …` and `styrminctl audit`.

use anyhow::Result;
use clap::Subcommand;
use styrmin_client::NoVariables;
use styrmin_client::ops::audit::{AuditEntry, AuditFilter, ListAuditLog};
use styrmin_client::ops::session::WhoAmI;
use styrmin_client::ops::tokens::{CreateToken, DeleteToken, ListTokens, NewToken, Token, TokenId};

use crate::ExitCode;
use crate::api::Connection;
use crate::output::{Format, print_value, show, show_list};
use crate::table::{Table, cell, print_fields};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; its secret is printed once.
    Create {
        name: String,
        /// admin, operator, viewer or agent.
        #[arg(long)]
        role: String,
        /// The cluster an agent token is bound to.
        #[arg(long)]
        cluster: Option<String>,
    },
    List,
    /// Revoke a token (by id or name).
    Delete {
        id: String,
    },
    /// Who the current token is.
    Whoami,
}

fn token_table(list: &[Token]) {
    let mut t = Table::new(&["ID", "NAME", "ROLE", "CLUSTER", "CREATED", "LAST USED"]);
    for tk in list {
        t.row(vec![
            tk.id.clone(),
            tk.name.clone(),
            tk.role.clone(),
            cell(&tk.cluster_id),
            tk.created_at.clone(),
            cell(&tk.last_used_at),
        ]);
    }
    t.print();
}

fn audit_table(list: &[AuditEntry]) {
    let mut t = Table::new(&["AT", "ACTOR", "ROLE", "ACTION", "TARGET", "DETAIL"]);
    for a in list {
        t.row(vec![
            a.at.clone(),
            a.actor.clone(),
            a.role.clone(),
            a.action.clone(),
            format!("{} {}", a.target_kind, a.target_id),
            cell(&a.detail),
        ]);
    }
    t.print();
}

pub async fn run(command: TokensCommand, conn: &Connection, format: Format) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        TokensCommand::Create {
            name,
            role,
            cluster,
        } => {
            let vars = NewToken {
                name,
                role,
                cluster,
            };
            let created = client.run::<CreateToken>(&vars).await?;
            match format {
                Format::Table => {
                    token_table(std::slice::from_ref(&created.token));
                    println!();
                    print_fields(&[("Secret (shown once):", created.secret.clone())]);
                }
                _ => print_value(&created, format)?,
            }
            Ok(ExitCode::Ok)
        }
        TokensCommand::List => show_list(
            &client.run::<ListTokens>(&NoVariables {}).await?,
            format,
            token_table,
        ),
        TokensCommand::Delete { id } => show(
            &client.run::<DeleteToken>(&TokenId { id }).await?,
            format,
            token_table,
        ),
        TokensCommand::Whoami => {
            let me = client.run::<WhoAmI>(&NoVariables {}).await?;
            match format {
                Format::Table => print_fields(&[
                    ("name", me.name.clone()),
                    ("role", me.role.clone()),
                    ("cluster", cell(&me.cluster_id)),
                ]),
                _ => print_value(&me, format)?,
            }
            Ok(ExitCode::Ok)
        }
    }
}

pub async fn audit(
    target: Option<String>,
    first: i32,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    let vars = AuditFilter {
        target,
        first: Some(first),
    };
    show_list(
        &client.run::<ListAuditLog>(&vars).await?,
        format,
        audit_table,
    )
}
