//! Backups and restores (SPEC §9): taking them for a deployment or an environment,
//! restoring, deleting, and reading how they went per component.

use serde::{Deserialize, Serialize};

use crate::operation::operations;

/// The fields of a backup every backup operation selects.
macro_rules! backup_fields {
    () => {
        "id environmentId environment { name } deploymentId deployment { name } parentId state sizeBytes deleting errors flowRunId components { component strategy bytes durationMs error } parts { id deploymentId state sizeBytes flowRunId } createdAt finishedAt"
    };
}

/// The fields of a restore every restore operation selects.
macro_rules! restore_fields {
    () => {
        "id backupId targetEnvironmentId targetDeploymentId targetDeployment { name } state errors flowRunId components { component strategy bytes durationMs error } createdAt finishedAt"
    };
}

/// A name, as a backup shows its environment and deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
}

/// One component's part of a backup or restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentResult {
    pub component: String,
    /// `disk`, `postgres`, `mariadb`, `mongodb`, `neo4j` or `action`.
    pub strategy: String,
    pub bytes: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// One deployment's backup within an environment backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPart {
    pub id: String,
    pub deployment_id: Option<String>,
    pub state: String,
    pub size_bytes: Option<i64>,
    pub flow_run_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub id: String,
    pub environment_id: String,
    pub environment: Option<Named>,
    /// `None` for an environment backup (see `parts`).
    pub deployment_id: Option<String>,
    pub deployment: Option<Named>,
    pub parent_id: Option<String>,
    /// `scheduled`, `running`, `completed`, `partially_failed` or `failed`.
    pub state: String,
    pub size_bytes: Option<i64>,
    pub deleting: bool,
    pub errors: Vec<String>,
    pub flow_run_id: Option<String>,
    pub components: Vec<ComponentResult>,
    pub parts: Vec<BackupPart>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restore {
    pub id: String,
    pub backup_id: String,
    pub target_environment_id: String,
    pub target_deployment_id: Option<String>,
    pub target_deployment: Option<Named>,
    pub state: String,
    pub errors: Vec<String>,
    pub flow_run_id: Option<String>,
    pub components: Vec<ComponentResult>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// What to back up: give exactly one.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupScope {
    pub deployment_id: Option<String>,
    pub environment_id: Option<String>,
}

/// Backups of one environment and/or deployment (each `None` for all).
#[derive(Debug, Default, Clone, Serialize)]
pub struct BackupFilter {
    pub environment: Option<String>,
    pub deployment: Option<String>,
    pub first: Option<i32>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct BackupId {
    pub id: String,
}

/// A restore of `backup_id`; into its own deployment unless `to_deployment_id`.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restoring {
    pub backup_id: String,
    pub to_deployment_id: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreId {
    pub id: String,
}

/// Restores into one environment and/or of one backup.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreFilter {
    pub environment: Option<String>,
    pub backup: Option<String>,
    pub first: Option<i32>,
}

operations! {
    /// Backs up a deployment or an environment.
    CreateBackup: "createBackup" (BackupScope) -> Backup = concat!(
        "mutation CreateBackup($deploymentId: ID, $environmentId: ID) { createBackup(deploymentId: $deploymentId, environmentId: $environmentId) { ",
        backup_fields!(),
        " } }"
    );
    /// Backups, newest first.
    ListBackups: "backups" (BackupFilter) -> Vec<Backup> = concat!(
        "query ListBackups($environment: ID, $deployment: ID, $first: Int) { backups(environment: $environment, deployment: $deployment, first: $first) { ",
        backup_fields!(),
        " } }"
    );
    GetBackup: "backup" (BackupId) -> Backup = concat!(
        "query GetBackup($id: ID!) { backup(id: $id) { ",
        backup_fields!(),
        " } }"
    );
    /// Deletes a backup's data; the backup goes when its delete_backup run completes.
    DeleteBackup: "deleteBackup" (BackupId) -> Backup = concat!(
        "mutation DeleteBackup($id: ID!) { deleteBackup(id: $id) { ",
        backup_fields!(),
        " } }"
    );
    /// Restores a backup into its deployment or another of the same driver.
    RestoreBackup: "restoreBackup" (Restoring) -> Restore = concat!(
        "mutation RestoreBackup($backupId: ID!, $toDeploymentId: ID) { restoreBackup(backupId: $backupId, toDeploymentId: $toDeploymentId) { ",
        restore_fields!(),
        " } }"
    );
    GetRestore: "restore" (RestoreId) -> Restore = concat!(
        "query GetRestore($id: ID!) { restore(id: $id) { ",
        restore_fields!(),
        " } }"
    );
    /// Restores, newest first.
    ListRestores: "restores" (RestoreFilter) -> Vec<Restore> = concat!(
        "query ListRestores($environment: ID, $backup: ID, $first: Int) { restores(environment: $environment, backup: $backup, first: $first) { ",
        restore_fields!(),
        " } }"
    );
}
