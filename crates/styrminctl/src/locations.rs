//! `styrminctl backup-locations …`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::ExitCode;
use crate::api::{Connection, call};
use crate::output::{Format, show, show_value_list};
use crate::table::{Table, text};

const LOCATION: &str = "id name endpoint bucket region accessKeyId createdAt";

#[derive(Subcommand)]
pub enum LocationsCommand {
    /// Register an S3-compatible bucket. The secret key is stored encrypted and never
    /// shown again.
    Create {
        name: String,
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        access_key_id: String,
        #[arg(long, env = "STYRMIN_BSL_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
    },
    List,
    Show {
        id: String,
    },
    /// Assign a backup storage location to an environment.
    Assign {
        environment_id: String,
        backup_storage_location_id: String,
    },
    /// Delete a location no environment uses.
    Delete {
        id: String,
    },
}

fn location_table(list: &[Value]) {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "ENDPOINT",
        "BUCKET",
        "REGION",
        "ACCESS KEY ID",
    ]);
    for l in list {
        t.row(vec![
            text(l, "id"),
            text(l, "name"),
            text(l, "endpoint"),
            text(l, "bucket"),
            text(l, "region"),
            text(l, "accessKeyId"),
        ]);
    }
    t.print();
}

fn assigned_table(list: &[Value]) {
    let mut t = Table::new(&["ENVIRONMENT", "NAME", "BACKUP LOCATION"]);
    for e in list {
        t.row(vec![
            text(e, "id"),
            text(e, "name"),
            text(e, "backupStorageLocation.name"),
        ]);
    }
    t.print();
}

pub async fn run(command: LocationsCommand, conn: &Connection, format: Format) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        LocationsCommand::Create {
            name,
            endpoint,
            bucket,
            region,
            access_key_id,
            secret_access_key,
        } => {
            let q = format!(
                "mutation($name: String!, $endpoint: String!, $bucket: String!, $region: String!, $key: String!, $secret: String!) {{ createBackupStorageLocation(name: $name, endpoint: $endpoint, bucket: $bucket, region: $region, accessKeyId: $key, secretAccessKey: $secret) {{ {LOCATION} }} }}"
            );
            let vars = json!({"name": name, "endpoint": endpoint, "bucket": bucket, "region": region, "key": access_key_id, "secret": secret_access_key});
            show(
                &call(&client, &q, vars, "createBackupStorageLocation").await?,
                format,
                location_table,
            )
        }
        LocationsCommand::List => {
            let q = format!("{{ backupStorageLocations {{ {LOCATION} }} }}");
            show_value_list(
                &call(&client, &q, json!({}), "backupStorageLocations").await?,
                format,
                location_table,
            )
        }
        LocationsCommand::Show { id } => {
            let q =
                format!("query($id: ID!) {{ backupStorageLocation(id: $id) {{ {LOCATION} }} }}");
            show(
                &call(&client, &q, json!({"id": id}), "backupStorageLocation").await?,
                format,
                location_table,
            )
        }
        LocationsCommand::Assign {
            environment_id,
            backup_storage_location_id,
        } => {
            let q = "mutation($env: ID!, $bsl: ID!) { assignBackupStorageLocation(environmentId: $env, backupStorageLocationId: $bsl) { id name backupStorageLocation { id name } } }";
            let vars = json!({"env": environment_id, "bsl": backup_storage_location_id});
            show(
                &call(&client, q, vars, "assignBackupStorageLocation").await?,
                format,
                assigned_table,
            )
        }
        LocationsCommand::Delete { id } => {
            let q = format!(
                "mutation($id: ID!) {{ deleteBackupStorageLocation(id: $id) {{ {LOCATION} }} }}"
            );
            show(
                &call(
                    &client,
                    &q,
                    json!({"id": id}),
                    "deleteBackupStorageLocation",
                )
                .await?,
                format,
                location_table,
            )
        }
    }
}
