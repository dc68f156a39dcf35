//! Environments: a namespace on a cluster, and the backup location assigned to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::operations;

/// The fields of an environment every environment operation selects.
macro_rules! environment_fields {
    () => {
        "id name clusterId namespace config deleting backupStorageLocation { id name } backupSchedule backupKeep backupNextAt backupLocationStatus { phase message reportedAt } createdAt updatedAt"
    };
}

/// A backup storage location as an environment names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocationRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub cluster_id: String,
    pub namespace: String,
    /// Overrides the cluster's config.
    pub config: Value,
    pub backup_storage_location: Option<LocationRef>,
    /// Deleted with its deployments: it goes when their delete runs complete.
    #[serde(default)]
    pub deleting: bool,
    /// A five-field cron expression (UTC) the server backs the environment up on.
    #[serde(default)]
    pub backup_schedule: Option<String>,
    /// Completed backups kept per deployment.
    #[serde(default)]
    pub backup_keep: Option<i64>,
    #[serde(default)]
    pub backup_next_at: Option<String>,
    /// Velero's phase of the backup location, as the agent last reported it.
    #[serde(default)]
    pub backup_location_status: Option<LocationStatus>,
    pub created_at: String,
    pub updated_at: String,
}

/// Velero's phase of an environment's backup location (`Available`, `Unavailable`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatus {
    pub phase: String,
    pub message: Option<String>,
    pub reported_at: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewEnvironment {
    pub name: String,
    pub cluster_id: String,
    /// A JSON object; `None` for an empty config.
    pub config: Option<Value>,
}

/// The environments of one cluster, or of all with `None`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EnvironmentFilter {
    pub cluster: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentEdit {
    pub id: String,
    /// `None` keeps the name.
    pub name: Option<String>,
    /// `None` keeps the config.
    pub config: Option<Value>,
    /// `None` keeps the schedule; empty removes it.
    pub backup_schedule: Option<String>,
    /// `None` keeps the retention; 0 keeps every backup.
    pub backup_keep: Option<i64>,
}

/// A clone of an environment; with `with_data`, each deployment's latest backup is
/// restored into its clone.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentCloning {
    pub source_id: String,
    pub name: String,
    pub with_data: bool,
}

/// A run a clone scheduled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClonedRun {
    pub id: String,
    pub kind: String,
    pub deployment_id: Option<String>,
}

/// A deployment a clone made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClonedDeployment {
    pub id: String,
    pub name: String,
}

/// A restore a clone scheduled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClonedRestore {
    pub id: String,
    pub backup_id: String,
    pub target_deployment_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentClone {
    pub environment: Environment,
    pub deployments: Vec<ClonedDeployment>,
    pub flow_runs: Vec<ClonedRun>,
    pub restores: Vec<ClonedRestore>,
}

/// Names one environment, by id, name or CLUSTER/NAME.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EnvironmentId {
    pub id: String,
}

/// An environment to delete; with `cascade`, its deployments too.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EnvironmentDeletion {
    pub id: String,
    pub cascade: bool,
}

operations! {
    /// Creates an environment on a cluster.
    CreateEnvironment: "createEnvironment" (NewEnvironment) -> Environment = concat!(
        "mutation CreateEnvironment($name: String!, $clusterId: ID!, $config: JSON) { createEnvironment(name: $name, clusterId: $clusterId, config: $config) { ",
        environment_fields!(),
        " } }"
    );
    ListEnvironments: "environments" (EnvironmentFilter) -> Vec<Environment> = concat!(
        "query ListEnvironments($cluster: ID) { environments(cluster: $cluster) { ",
        environment_fields!(),
        " } }"
    );
    GetEnvironment: "environment" (EnvironmentId) -> Environment = concat!(
        "query GetEnvironment($id: ID!) { environment(id: $id) { ",
        environment_fields!(),
        " } }"
    );
    UpdateEnvironment: "updateEnvironment" (EnvironmentEdit) -> Environment = concat!(
        "mutation UpdateEnvironment($id: ID!, $name: String, $config: JSON, $backupSchedule: String, $backupKeep: Int) { updateEnvironment(id: $id, name: $name, config: $config, backupSchedule: $backupSchedule, backupKeep: $backupKeep) { ",
        environment_fields!(),
        " } }"
    );
    /// Deletes an environment that has no deployments left.
    DeleteEnvironment: "deleteEnvironment" (EnvironmentDeletion) -> Environment = concat!(
        "mutation DeleteEnvironment($id: ID!, $cascade: Boolean!) { deleteEnvironment(id: $id, cascade: $cascade) { ",
        environment_fields!(),
        " } }"
    );
    /// A new environment like the source; with data, its backups restored into it.
    CloneEnvironment: "cloneEnvironment" (EnvironmentCloning) -> EnvironmentClone = concat!(
        "mutation CloneEnvironment($sourceId: ID!, $name: String!, $withData: Boolean!) { cloneEnvironment(sourceId: $sourceId, name: $name, withData: $withData) { environment { ",
        environment_fields!(),
        " } deployments { id name } flowRuns { id kind deploymentId } restores { id backupId targetDeploymentId } } }"
    );
}
