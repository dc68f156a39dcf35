//! `styrminctl clusters …` and `styrminctl environments …`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use styrmin_client::NoVariables;
use styrmin_client::ops::clusters::{
    Cluster, ClusterEdit, ClusterId, ClusterWithToken, CreateCluster, DeleteCluster, GetCluster,
    ListClusters, NewCluster, RotateAgentToken, UpdateCluster,
};
use styrmin_client::ops::environments::{
    CreateEnvironment, DeleteEnvironment, Environment, EnvironmentCloning, EnvironmentDeletion,
    EnvironmentEdit, EnvironmentFilter, EnvironmentId, GetEnvironment, ListEnvironments,
    NewEnvironment, UpdateEnvironment,
};

use crate::api::Connection;
use crate::input::parse_json_object;
use crate::output::{Format, print_value, show, show_list};
use crate::table::{Table, cell, print_fields};
use crate::{ExitCode, InvalidInput};

#[derive(Subcommand)]
pub enum ClustersCommand {
    /// Register a cluster; prints the token its agent authenticates with (shown once).
    Create {
        name: String,
        /// The cluster's config, a JSON object inherited by its environments.
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    /// Delete a cluster that has no environments left.
    Delete {
        id: String,
    },
    /// Issue a new agent token; the old one stops working at once.
    RotateToken {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an environment on a cluster (namespace `styrmin-NAME` unless the config
    /// sets `namespace`).
    Create {
        name: String,
        cluster_id: String,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    List {
        #[arg(long)]
        cluster: Option<String>,
    },
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
        /// Back the environment up on this five-field cron expression, in UTC
        /// (e.g. "0 3 * * *"); "" removes the schedule.
        #[arg(long, value_name = "CRON")]
        backup_schedule: Option<String>,
        /// Keep this many completed backups per deployment, deleting older ones; 0 keeps
        /// all.
        #[arg(long, value_name = "N")]
        backup_keep: Option<i64>,
    },
    /// A new environment on the same cluster with the source's config, backup location and
    /// deployments; with --with-data, each deployment's latest backup restored into it.
    Clone {
        /// The environment to clone: its id, name, or CLUSTER/NAME.
        source: String,
        name: String,
        #[arg(long)]
        with_data: bool,
        /// Follow the clone's runs to their end; exit 6 if one failed.
        #[arg(long)]
        wait: bool,
    },
    /// Delete an environment that has no deployments left; with --cascade, delete its
    /// deployments first (the environment goes when their delete runs complete).
    Delete {
        id: String,
        #[arg(long)]
        cascade: bool,
    },
}

/// The JSON object a `-c` flag gives, or `None` without the flag.
pub fn config_arg(text: &Option<String>) -> Result<Option<Value>> {
    match text {
        Some(t) => Ok(Some(Value::Object(
            parse_json_object(t, "-c").map_err(|e| InvalidInput(e.to_string()))?,
        ))),
        None => Ok(None),
    }
}

fn cluster_table(list: &[Cluster]) {
    let mut t = Table::new(&["ID", "NAME", "AGENT", "LAST SEEN", "CONFIG"]);
    for c in list {
        let agent = if c.agent_online { "online" } else { "offline" };
        t.row(vec![
            c.id.clone(),
            c.name.clone(),
            agent.into(),
            cell(&c.agent_last_seen),
            cell(&c.config),
        ]);
    }
    t.print();
}

/// The location's name, with Velero's phase when the agent reported one.
fn location_cell(e: &Environment) -> String {
    match (&e.backup_storage_location, &e.backup_location_status) {
        (Some(l), Some(status)) => format!("{} ({})", l.name, status.phase),
        (Some(l), None) => l.name.clone(),
        (None, _) => String::new(),
    }
}

fn schedule_cell(e: &Environment) -> String {
    match (&e.backup_schedule, e.backup_keep) {
        (Some(s), Some(k)) => format!("{s} (keep {k})"),
        (Some(s), None) => s.clone(),
        (None, Some(k)) => format!("(keep {k})"),
        (None, None) => String::new(),
    }
}

fn environment_table(list: &[Environment]) {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "CLUSTER",
        "NAMESPACE",
        "BACKUP LOCATION",
        "BACKUP SCHEDULE",
        "STATE",
    ]);
    for e in list {
        t.row(vec![
            e.id.clone(),
            e.name.clone(),
            e.cluster_id.clone(),
            e.namespace.clone(),
            location_cell(e),
            schedule_cell(e),
            if e.deleting { "deleting" } else { "" }.to_owned(),
        ]);
    }
    t.print();
}

fn with_token(payload: &ClusterWithToken, format: Format) -> Result<ExitCode> {
    match format {
        Format::Table => {
            cluster_table(std::slice::from_ref(&payload.cluster));
            println!();
            print_fields(&[("Agent token (shown once):", payload.agent_token.clone())]);
        }
        _ => print_value(payload, format)?,
    }
    Ok(ExitCode::Ok)
}

pub async fn clusters(
    command: ClustersCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        ClustersCommand::Create { name, config } => {
            let vars = NewCluster {
                name,
                config: config_arg(&config)?,
            };
            with_token(&client.run::<CreateCluster>(&vars).await?, format)
        }
        ClustersCommand::List => show_list(
            &client.run::<ListClusters>(&NoVariables {}).await?,
            format,
            cluster_table,
        ),
        ClustersCommand::Show { id } => {
            let detail = client.run::<GetCluster>(&ClusterId { id }).await?;
            match format {
                Format::Table => cluster_table(std::slice::from_ref(&detail.cluster)),
                _ => print_value(&detail, format)?,
            }
            Ok(ExitCode::Ok)
        }
        ClustersCommand::Update { id, name, config } => {
            let vars = ClusterEdit {
                id,
                name,
                config: config_arg(&config)?,
            };
            show(
                &client.run::<UpdateCluster>(&vars).await?,
                format,
                cluster_table,
            )
        }
        ClustersCommand::Delete { id } => show(
            &client.run::<DeleteCluster>(&ClusterId { id }).await?,
            format,
            cluster_table,
        ),
        ClustersCommand::RotateToken { id } => with_token(
            &client.run::<RotateAgentToken>(&ClusterId { id }).await?,
            format,
        ),
    }
}

pub async fn environments(
    command: EnvironmentsCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        EnvironmentsCommand::Create {
            name,
            cluster_id,
            config,
        } => {
            let vars = NewEnvironment {
                name,
                cluster_id,
                config: config_arg(&config)?,
            };
            show(
                &client.run::<CreateEnvironment>(&vars).await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::List { cluster } => show_list(
            &client
                .run::<ListEnvironments>(&EnvironmentFilter { cluster })
                .await?,
            format,
            environment_table,
        ),
        EnvironmentsCommand::Show { id } => show(
            &client.run::<GetEnvironment>(&EnvironmentId { id }).await?,
            format,
            environment_table,
        ),
        EnvironmentsCommand::Update {
            id,
            name,
            config,
            backup_schedule,
            backup_keep,
        } => {
            let vars = EnvironmentEdit {
                id,
                name,
                config: config_arg(&config)?,
                backup_schedule,
                backup_keep,
            };
            show(
                &client.run::<UpdateEnvironment>(&vars).await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::Clone {
            source,
            name,
            with_data,
            wait,
        } => {
            let vars = EnvironmentCloning {
                source_id: source,
                name,
                with_data,
            };
            crate::backups::clone(conn, format, vars, wait).await
        }
        EnvironmentsCommand::Delete { id, cascade } => show(
            &client
                .run::<DeleteEnvironment>(&EnvironmentDeletion { id, cascade })
                .await?,
            format,
            environment_table,
        ),
    }
}
