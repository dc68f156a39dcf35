//! What only agents call: the flow-run queue, run logs and outcomes, status reports and
//! driver bundles (docs/api.md). The documents carry `styrmin_core::protocol` types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use styrmin_core::backup::{LocationRef, LocationStatusReport};
use styrmin_core::protocol::{ClaimedRun, DeploymentStatusReport, LogLine, PodReport};

use crate::operation::operations;

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub max: i32,
    pub wait_seconds: f64,
    pub agent_version: Option<String>,
    /// `styrmin_core::protocol::PROTOCOL_VERSION`; the server refuses another major.
    pub protocol_version: Option<String>,
}

/// Names the attempt an agent holds: every call about a run carries it, so a call from an
/// attempt that lost its lease changes nothing.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    pub attempt: i64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendLogs {
    pub id: String,
    pub attempt: i64,
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Complete {
    pub id: String,
    pub attempt: i64,
    pub result: Option<Value>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fail {
    pub id: String,
    pub attempt: i64,
    pub error: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub id: String,
    pub attempt: i64,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportPods {
    pub cluster_id: String,
    pub pods: Vec<PodReport>,
    /// `true`: the report is every pod of the cluster; pods not in it are forgotten.
    pub snapshot: bool,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportStatuses {
    pub cluster_id: String,
    pub statuses: Vec<DeploymentStatusReport>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct BundleDigest {
    pub digest: String,
}

/// A run's id, as the run mutations return it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunId {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleFile {
    pub path: String,
    pub content_base64: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DriverBundle {
    pub files: Vec<BundleFile>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentId {
    pub deployment_id: String,
}

/// A deployment's secret parameter values and the Secret its Context names for them.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretParameterValues {
    pub secret_name: Option<String>,
    pub values: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretParameterValues {
    /// Names only: a value never reaches a log through a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretParameterValues")
            .field("secret_name", &self.secret_name)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Names the environment whose backup storage location the agent sets up.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationOf {
    pub environment_id: String,
    /// The location a backup being restored lives in, when not the environment's own.
    pub location_id: Option<String>,
}

/// The S3 credentials of an environment's backup storage location, for the Velero
/// credentials Secret.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupLocationCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for BackupLocationCredentials {
    /// The key id only: the secret never reaches a log through a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupLocationCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Names the agent's cluster.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOf {
    pub cluster_id: String,
}

/// An environment of the agent's cluster with its backup storage location.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentLocation {
    pub environment_id: String,
    pub environment_name: String,
    pub namespace: String,
    /// Deleted with its deployments: its location goes with it.
    pub deleting: bool,
    pub location: LocationRef,
}

/// Velero's phase of each environment's BackupStorageLocation on the agent's cluster.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLocationStatuses {
    pub cluster_id: String,
    pub statuses: Vec<LocationStatusReport>,
}

operations! {
    /// Leases up to `max` runs of the agent's cluster, waiting up to `waitSeconds`.
    ClaimFlowRuns: "claimFlowRuns" (Claim) -> Vec<ClaimedRun> = "mutation ClaimFlowRuns($max: Int!, $waitSeconds: Float!, $agentVersion: String, $protocolVersion: String) { claimFlowRuns(max: $max, waitSeconds: $waitSeconds, agentVersion: $agentVersion, protocolVersion: $protocolVersion) { id kind attempt deploymentId payload leaseSeconds } }";
    /// Renews the lease of the attempt.
    HeartbeatFlowRun: "heartbeatFlowRun" (Attempt) -> RunId = "mutation HeartbeatFlowRun($id: ID!, $attempt: Int!) { heartbeatFlowRun(id: $id, attempt: $attempt) { id } }";
    /// Appends lines to the run's log; returns the last line's sequence number.
    AppendFlowRunLogs: "appendFlowRunLogs" (AppendLogs) -> i64 = "mutation AppendFlowRunLogs($id: ID!, $attempt: Int!, $lines: [LogLineInput!]!) { appendFlowRunLogs(id: $id, attempt: $attempt, lines: $lines) }";
    CompleteFlowRun: "completeFlowRun" (Complete) -> RunId = "mutation CompleteFlowRun($id: ID!, $attempt: Int!, $result: JSON) { completeFlowRun(id: $id, attempt: $attempt, result: $result) { id } }";
    FailFlowRun: "failFlowRun" (Fail) -> RunId = "mutation FailFlowRun($id: ID!, $attempt: Int!, $error: String!) { failFlowRun(id: $id, attempt: $attempt, error: $error) { id } }";
    /// Hands a claimed run back (the agent is shutting down).
    ReleaseFlowRun: "releaseFlowRun" (Release) -> RunId = "mutation ReleaseFlowRun($id: ID!, $attempt: Int!, $reason: String!) { releaseFlowRun(id: $id, attempt: $attempt, reason: $reason) { id } }";
    /// The cluster's pods; returns how many were stored.
    ReportPodStatuses: "reportPodStatuses" (ReportPods) -> i32 = "mutation ReportPodStatuses($clusterId: ID!, $pods: [PodStatusInput!]!, $snapshot: Boolean!) { reportPodStatuses(clusterId: $clusterId, pods: $pods, snapshot: $snapshot) }";
    /// The cluster's deployment statuses; returns how many were stored.
    ReportDeploymentStatuses: "reportDeploymentStatuses" (ReportStatuses) -> i32 = "mutation ReportDeploymentStatuses($clusterId: ID!, $statuses: [DeploymentStatusInput!]!) { reportDeploymentStatuses(clusterId: $clusterId, statuses: $statuses) }";
    /// Every file of a driver version.
    FetchDriverBundle: "driverBundle" (BundleDigest) -> DriverBundle = "query FetchDriverBundle($digest: String!) { driverBundle(digest: $digest) { files { path contentBase64 } } }";
    /// A deployment's secret parameter values (the agent of its cluster only).
    FetchSecretParameterValues: "secretParameterValues" (DeploymentId) -> SecretParameterValues = "query FetchSecretParameterValues($deploymentId: ID!) { secretParameterValues(deploymentId: $deploymentId) { secretName values } }";
    /// Every environment of the agent's cluster that has a backup storage location.
    FetchClusterBackupLocations: "clusterBackupLocations" (ClusterOf) -> Vec<EnvironmentLocation> = "query FetchClusterBackupLocations($clusterId: ID!) { clusterBackupLocations(clusterId: $clusterId) { environmentId environmentName namespace deleting location { locationId name endpoint bucket region pathStyle checksumAlgorithm } } }";
    /// The credentials of an environment's backup storage location (the agent of its
    /// cluster only).
    FetchBackupLocationCredentials: "backupLocationCredentials" (LocationOf) -> BackupLocationCredentials = "query FetchBackupLocationCredentials($environmentId: ID!, $locationId: ID) { backupLocationCredentials(environmentId: $environmentId, locationId: $locationId) { accessKeyId secretAccessKey } }";
    /// Velero's phase of the environments' locations; returns how many were stored.
    ReportBackupLocationStatuses: "reportBackupLocationStatuses" (ReportLocationStatuses) -> i32 = "mutation ReportBackupLocationStatuses($clusterId: ID!, $statuses: [BackupLocationStatusInput!]!) { reportBackupLocationStatuses(clusterId: $clusterId, statuses: $statuses) }";
}
