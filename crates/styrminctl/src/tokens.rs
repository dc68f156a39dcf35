//! `styrminctl tokens …` and `styrminctl audit`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::ExitCode;
use crate::api::{Connection, call};
use crate::output::{Format, print_value, show_value_list};
use crate::table::{Table, print_value_fields, text};

const TOKEN: &str = "id name role clusterId createdAt lastUsedAt";

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

fn token_table(list: &[Value]) {
    let mut t = Table::new(&["ID", "NAME", "ROLE", "CLUSTER", "CREATED", "LAST USED"]);
    for tk in list {
        t.row(vec![
            text(tk, "id"),
            text(tk, "name"),
            text(tk, "role"),
            text(tk, "clusterId"),
            text(tk, "createdAt"),
            text(tk, "lastUsedAt"),
        ]);
    }
    t.print();
}

fn audit_table(list: &[Value]) {
    let mut t = Table::new(&["AT", "ACTOR", "ROLE", "ACTION", "TARGET", "DETAIL"]);
    for a in list {
        t.row(vec![
            text(a, "at"),
            text(a, "actor"),
            text(a, "role"),
            text(a, "action"),
            format!("{} {}", text(a, "targetKind"), text(a, "targetId")),
            text(a, "detail"),
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
            let q = format!(
                "mutation($name: String!, $role: Role!, $cluster: ID) {{ createToken(name: $name, role: $role, cluster: $cluster) {{ secret token {{ {TOKEN} }} }} }}"
            );
            let v = call(
                &client,
                &q,
                json!({"name": name, "role": role, "cluster": cluster}),
                "createToken",
            )
            .await?;
            match format {
                Format::Table => {
                    token_table(std::slice::from_ref(&v["token"]));
                    println!();
                    print_value_fields(&v, &[("Secret (shown once):", "secret")]);
                }
                _ => print_value(&v, format)?,
            }
            Ok(ExitCode::Ok)
        }
        TokensCommand::List => {
            let q = format!("{{ tokens {{ {TOKEN} }} }}");
            show_value_list(
                &call(&client, &q, json!({}), "tokens").await?,
                format,
                token_table,
            )
        }
        TokensCommand::Delete { id } => {
            let q = format!("mutation($id: ID!) {{ deleteToken(id: $id) {{ {TOKEN} }} }}");
            let v = call(&client, &q, json!({"id": id}), "deleteToken").await?;
            crate::output::show(&v, format, token_table)
        }
        TokensCommand::Whoami => {
            let v = call(&client, "{ me { name role clusterId } }", json!({}), "me").await?;
            match format {
                Format::Table => print_value_fields(
                    &v,
                    &[("name", "name"), ("role", "role"), ("cluster", "clusterId")],
                ),
                _ => print_value(&v, format)?,
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
    let q = "query($target: ID, $first: Int) { auditLog(target: $target, first: $first) { id at actor role action targetKind targetId detail } }";
    show_value_list(
        &call(
            &client,
            q,
            json!({"target": target, "first": first}),
            "auditLog",
        )
        .await?,
        format,
        audit_table,
    )
}
