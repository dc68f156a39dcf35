//! Environments: a namespace on a cluster, and the backup location assigned to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::operations;

/// The fields of an environment every environment operation selects.
macro_rules! environment_fields {
    () => {
        "id name clusterId namespace config deleting backupStorageLocation { id name } createdAt updatedAt"
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
    pub created_at: String,
    pub updated_at: String,
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
        "mutation UpdateEnvironment($id: ID!, $name: String, $config: JSON) { updateEnvironment(id: $id, name: $name, config: $config) { ",
        environment_fields!(),
        " } }"
    );
    /// Deletes an environment that has no deployments left.
    DeleteEnvironment: "deleteEnvironment" (EnvironmentDeletion) -> Environment = concat!(
        "mutation DeleteEnvironment($id: ID!, $cascade: Boolean!) { deleteEnvironment(id: $id, cascade: $cascade) { ",
        environment_fields!(),
        " } }"
    );
}
