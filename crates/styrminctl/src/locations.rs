//! `styrminctl backup-locations …`.

use anyhow::Result;
use clap::Subcommand;
use styrmin_client::NoVariables;
use styrmin_client::ops::locations::{
    AssignBackupStorageLocation, AssignedEnvironment, Assignment, BackupStorageLocation,
    CreateBackupStorageLocation, DeleteBackupStorageLocation, GetBackupStorageLocation,
    ListBackupStorageLocations, LocationId, NewLocation,
};

use crate::ExitCode;
use crate::api::Connection;
use crate::output::{Format, show, show_list};
use crate::table::{Table, cell};

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

fn location_table(list: &[BackupStorageLocation]) {
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
            l.id.clone(),
            l.name.clone(),
            l.endpoint.clone(),
            l.bucket.clone(),
            l.region.clone(),
            l.access_key_id.clone(),
        ]);
    }
    t.print();
}

fn assigned_table(list: &[AssignedEnvironment]) {
    let mut t = Table::new(&["ENVIRONMENT", "NAME", "BACKUP LOCATION"]);
    for e in list {
        t.row(vec![
            e.id.clone(),
            e.name.clone(),
            cell(&e.backup_storage_location.as_ref().map(|l| &l.name)),
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
            let vars = NewLocation {
                name,
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
            };
            show(
                &client.run::<CreateBackupStorageLocation>(&vars).await?,
                format,
                location_table,
            )
        }
        LocationsCommand::List => show_list(
            &client
                .run::<ListBackupStorageLocations>(&NoVariables {})
                .await?,
            format,
            location_table,
        ),
        LocationsCommand::Show { id } => show(
            &client
                .run::<GetBackupStorageLocation>(&LocationId { id })
                .await?,
            format,
            location_table,
        ),
        LocationsCommand::Assign {
            environment_id,
            backup_storage_location_id,
        } => {
            let vars = Assignment {
                environment_id,
                backup_storage_location_id,
            };
            show(
                &client.run::<AssignBackupStorageLocation>(&vars).await?,
                format,
                assigned_table,
            )
        }
        LocationsCommand::Delete { id } => show(
            &client
                .run::<DeleteBackupStorageLocation>(&LocationId { id })
                .await?,
            format,
            location_table,
        ),
    }
}
