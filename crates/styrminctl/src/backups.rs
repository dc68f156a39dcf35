//! `styrminctl backups …` and `styrminctl environments clone`: taking, listing, showing,
//! restoring and deleting backups, and following their runs to the end with `--wait`.

use anyhow::Result;
use clap::{ArgGroup, Subcommand};
use styrmin_client::Client;
use styrmin_client::ops::backups::{
    Backup, BackupFilter, BackupId, BackupScope, ComponentResult, CreateBackup, DeleteBackup,
    GetBackup, GetRestore, ListBackups, ListRestores, Restore, RestoreBackup, RestoreFilter,
    RestoreId, Restoring,
};
use styrmin_client::ops::environments::{CloneEnvironment, EnvironmentClone, EnvironmentCloning};
use styrmin_client::ops::flow_runs::{FlowRunLog, LogPage};

use crate::ExitCode;
use crate::api::Connection;
use crate::output::{Format, print_value, show, show_list};
use crate::table::{Table, cell, print_fields};

#[derive(Subcommand)]
pub enum BackupsCommand {
    /// Back up one deployment, or every deployment of an environment as one backup.
    #[command(group(ArgGroup::new("scope").required(true).args(["deployment", "environment"])))]
    Create {
        /// A deployment: its id, or ENVIRONMENT/NAME.
        #[arg(long)]
        deployment: Option<String>,
        /// An environment: its id, name, or CLUSTER/NAME.
        #[arg(long)]
        environment: Option<String>,
        /// Follow the backup to its end; exit 6 unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Backups, newest first.
    List {
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        deployment: Option<String>,
        #[arg(long, default_value_t = 100)]
        first: i32,
    },
    /// A backup with its per-component results (and an environment backup's parts).
    Show { id: String },
    /// Delete a backup's data from its bucket; the backup goes when that completes.
    Delete { id: String },
    /// Restore a backup into its deployment, or into another deployment of the same
    /// driver (its data is overwritten).
    Restore {
        backup: String,
        /// The deployment to restore into [default: the one backed up].
        #[arg(long = "to", value_name = "DEPLOYMENT")]
        to: Option<String>,
        /// Follow the restore to its end; exit 6 unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Restores, newest first.
    Restores {
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        backup: Option<String>,
        #[arg(long, default_value_t = 100)]
        first: i32,
    },
}

fn size(bytes: Option<i64>) -> String {
    bytes.map(|b| b.to_string()).unwrap_or_default()
}

fn backup_table(list: &[Backup]) {
    let mut t = Table::new(&[
        "ID",
        "ENVIRONMENT",
        "DEPLOYMENT",
        "STATE",
        "SIZE",
        "CREATED",
        "FINISHED",
    ]);
    for b in list {
        let deployment = match (&b.deployment, b.parts.len()) {
            (Some(d), _) => d.name.clone(),
            (None, n) => format!("(environment: {n} deployment(s))"),
        };
        let state = if b.deleting {
            format!("{} (deleting)", b.state)
        } else {
            b.state.clone()
        };
        t.row(vec![
            b.id.clone(),
            cell(&b.environment.as_ref().map(|e| &e.name)),
            deployment,
            state,
            size(b.size_bytes),
            b.created_at.clone(),
            cell(&b.finished_at),
        ]);
    }
    t.print();
}

fn restore_table(list: &[Restore]) {
    let mut t = Table::new(&["ID", "BACKUP", "INTO", "STATE", "CREATED", "FINISHED"]);
    for r in list {
        t.row(vec![
            r.id.clone(),
            r.backup_id.clone(),
            cell(&r.target_deployment.as_ref().map(|d| &d.name)),
            r.state.clone(),
            r.created_at.clone(),
            cell(&r.finished_at),
        ]);
    }
    t.print();
}

fn components_table(components: &[ComponentResult]) {
    if components.is_empty() {
        return;
    }
    let mut t = Table::new(&["COMPONENT", "STRATEGY", "BYTES", "DURATION MS", "ERROR"]);
    for c in components {
        t.row(vec![
            c.component.clone(),
            c.strategy.clone(),
            size(c.bytes),
            c.duration_ms.to_string(),
            cell(&c.error),
        ]);
    }
    println!();
    t.print();
}

fn errors_list(errors: &[String]) {
    if !errors.is_empty() {
        println!();
        print_fields(&[("Errors:", errors.join("; "))]);
    }
}

fn show_backup(b: &Backup, format: Format) -> Result<()> {
    match format {
        Format::Table => {
            backup_table(std::slice::from_ref(b));
            components_table(&b.components);
            if !b.parts.is_empty() {
                let mut t = Table::new(&["PART", "DEPLOYMENT", "STATE", "SIZE"]);
                for p in &b.parts {
                    t.row(vec![
                        p.id.clone(),
                        cell(&p.deployment_id),
                        p.state.clone(),
                        size(p.size_bytes),
                    ]);
                }
                println!();
                t.print();
            }
            errors_list(&b.errors);
        }
        _ => print_value(b, format)?,
    }
    Ok(())
}

fn show_restore(r: &Restore, format: Format) -> Result<()> {
    match format {
        Format::Table => {
            restore_table(std::slice::from_ref(r));
            components_table(&r.components);
            errors_list(&r.errors);
        }
        _ => print_value(r, format)?,
    }
    Ok(())
}

/// Follows a run until it ends, its log lines on standard error; returns its state.
pub async fn follow_run(client: &Client, run_id: &str) -> Result<String> {
    let mut after = 0i64;
    loop {
        let page = LogPage {
            id: run_id.to_owned(),
            after,
            wait_seconds: 20.0,
        };
        let run = client.run::<FlowRunLog>(&page).await?;
        for line in &run.logs {
            after = line.seq;
            eprintln!("{} [{}] {}", line.at, line.level, line.message);
        }
        if matches!(run.state.as_str(), "completed" | "failed" | "cancelled") && run.logs.is_empty()
        {
            if run.state != "completed" {
                eprintln!("run {run_id} ended {}: {}", run.state, cell(&run.error));
            }
            return Ok(run.state);
        }
    }
}

/// The exit code of a backup or restore that ended in `state`.
fn outcome(what: &str, id: &str, state: &str, errors: &[String]) -> ExitCode {
    if state == "completed" {
        ExitCode::Ok
    } else {
        eprintln!("{what} {id} ended {state}: {}", errors.join("; "));
        ExitCode::RunFailed
    }
}

pub async fn run(command: BackupsCommand, conn: &Connection, format: Format) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        BackupsCommand::Create {
            deployment,
            environment,
            wait,
        } => {
            let vars = BackupScope {
                deployment_id: deployment,
                environment_id: environment,
            };
            let b = client.run::<CreateBackup>(&vars).await?;
            if !wait {
                show_backup(&b, format)?;
                return Ok(ExitCode::Ok);
            }
            let runs: Vec<String> = b
                .flow_run_id
                .iter()
                .cloned()
                .chain(b.parts.iter().filter_map(|p| p.flow_run_id.clone()))
                .collect();
            for run_id in &runs {
                follow_run(&client, run_id).await?;
            }
            let b = client.run::<GetBackup>(&BackupId { id: b.id }).await?;
            show_backup(&b, format)?;
            Ok(outcome("backup", &b.id, &b.state, &b.errors))
        }
        BackupsCommand::List {
            environment,
            deployment,
            first,
        } => {
            let vars = BackupFilter {
                environment,
                deployment,
                first: Some(first),
            };
            show_list(
                &client.run::<ListBackups>(&vars).await?,
                format,
                backup_table,
            )
        }
        BackupsCommand::Show { id } => {
            show_backup(&client.run::<GetBackup>(&BackupId { id }).await?, format)?;
            Ok(ExitCode::Ok)
        }
        BackupsCommand::Delete { id } => show(
            &client.run::<DeleteBackup>(&BackupId { id }).await?,
            format,
            backup_table,
        ),
        BackupsCommand::Restore { backup, to, wait } => {
            let vars = Restoring {
                backup_id: backup,
                to_deployment_id: to,
            };
            let r = client.run::<RestoreBackup>(&vars).await?;
            if !wait {
                show_restore(&r, format)?;
                return Ok(ExitCode::Ok);
            }
            if let Some(run_id) = &r.flow_run_id {
                follow_run(&client, run_id).await?;
            }
            let r = client.run::<GetRestore>(&RestoreId { id: r.id }).await?;
            show_restore(&r, format)?;
            Ok(outcome("restore", &r.id, &r.state, &r.errors))
        }
        BackupsCommand::Restores {
            environment,
            backup,
            first,
        } => {
            let vars = RestoreFilter {
                environment,
                backup,
                first: Some(first),
            };
            show_list(
                &client.run::<ListRestores>(&vars).await?,
                format,
                restore_table,
            )
        }
    }
}

/// `environments clone SRC NAME [--with-data] [--wait]`.
pub async fn clone(
    conn: &Connection,
    format: Format,
    vars: EnvironmentCloning,
    wait: bool,
) -> Result<ExitCode> {
    let client = conn.client()?;
    let made = client.run::<CloneEnvironment>(&vars).await?;
    let mut code = ExitCode::Ok;
    if wait {
        for run in &made.flow_runs {
            let state = follow_run(&client, &run.id).await?;
            if state != "completed" {
                code = ExitCode::RunFailed;
            }
        }
        for r in &made.restores {
            let r = client
                .run::<GetRestore>(&RestoreId { id: r.id.clone() })
                .await?;
            if outcome("restore", &r.id, &r.state, &r.errors) != ExitCode::Ok {
                code = ExitCode::RunFailed;
            }
        }
    }
    clone_output(&made, format)?;
    Ok(code)
}

fn clone_output(made: &EnvironmentClone, format: Format) -> Result<()> {
    match format {
        Format::Table => {
            print_fields(&[
                ("Environment:", made.environment.name.clone()),
                ("Id:", made.environment.id.clone()),
                ("Namespace:", made.environment.namespace.clone()),
            ]);
            let mut t = Table::new(&["DEPLOYMENT", "ID", "RESTORE OF BACKUP"]);
            for d in &made.deployments {
                let restore = made
                    .restores
                    .iter()
                    .find(|r| r.target_deployment_id.as_deref() == Some(d.id.as_str()));
                t.row(vec![
                    d.name.clone(),
                    d.id.clone(),
                    cell(&restore.map(|r| &r.backup_id)),
                ]);
            }
            println!();
            t.print();
        }
        _ => print_value(made, format)?,
    }
    Ok(())
}
