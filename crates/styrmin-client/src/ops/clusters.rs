//! Registered Kubernetes clusters and the tokens their agents authenticate with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::{NoVariables, operations};

/// The fields of a cluster every cluster operation selects.
macro_rules! cluster_fields {
    () => {
        "id name config agentOnline agentLastSeen agentVersion createdAt updatedAt"
    };
}

/// A cluster and its agent's liveness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub id: String,
    pub name: String,
    /// Inherited by the cluster's environments and deployments.
    pub config: Value,
    pub agent_online: bool,
    pub agent_last_seen: Option<String>,
    pub agent_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An environment of a cluster, as a cluster lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEnvironment {
    pub id: String,
    pub name: String,
    pub namespace: String,
}

/// One cluster with the environments on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDetail {
    #[serde(flatten)]
    pub cluster: Cluster,
    pub environments: Vec<ClusterEnvironment>,
}

/// A cluster with the token its agent authenticates with, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterWithToken {
    pub agent_token: String,
    pub cluster: Cluster,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCluster {
    pub name: String,
    /// A JSON object; `None` for an empty config.
    pub config: Option<Value>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEdit {
    pub id: String,
    /// `None` keeps the name.
    pub name: Option<String>,
    /// `None` keeps the config.
    pub config: Option<Value>,
}

/// Names one cluster, by id or name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ClusterId {
    pub id: String,
}

operations! {
    /// Registers a cluster; the answer carries its agent's token.
    CreateCluster: "createCluster" (NewCluster) -> ClusterWithToken = concat!(
        "mutation CreateCluster($name: String!, $config: JSON) { createCluster(name: $name, config: $config) { agentToken cluster { ",
        cluster_fields!(),
        " } } }"
    );
    ListClusters: "clusters" (NoVariables) -> Vec<Cluster> = concat!(
        "query ListClusters { clusters { ",
        cluster_fields!(),
        " } }"
    );
    GetCluster: "cluster" (ClusterId) -> ClusterDetail = concat!(
        "query GetCluster($id: ID!) { cluster(id: $id) { ",
        cluster_fields!(),
        " environments { id name namespace } } }"
    );
    UpdateCluster: "updateCluster" (ClusterEdit) -> Cluster = concat!(
        "mutation UpdateCluster($id: ID!, $name: String, $config: JSON) { updateCluster(id: $id, name: $name, config: $config) { ",
        cluster_fields!(),
        " } }"
    );
    /// Deletes a cluster that has no environments left.
    DeleteCluster: "deleteCluster" (ClusterId) -> Cluster = concat!(
        "mutation DeleteCluster($id: ID!) { deleteCluster(id: $id) { ",
        cluster_fields!(),
        " } }"
    );
    /// A new agent token; the old one stops working at once.
    RotateAgentToken: "rotateAgentToken" (ClusterId) -> ClusterWithToken = concat!(
        "mutation RotateAgentToken($id: ID!) { rotateAgentToken(id: $id) { agentToken cluster { ",
        cluster_fields!(),
        " } } }"
    );
}
