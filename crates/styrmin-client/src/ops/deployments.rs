//! Deployments: creating, changing and operating them, and what they are made of.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::flow_runs::{FlowRun, run_fields};
use crate::operation::operations;

/// The fields of a deployment every deployment operation selects.
macro_rules! deployment_fields {
    () => {
        "id name environmentId clusterId appVersion phase lastError parameters secretParameters config components driverVersion { driverName version digest } status { status message urls reportedAt } activeInstance { id } createdAt updatedAt deletedAt"
    };
}

/// The selection of a mutation that changes a deployment: what it scheduled, and the
/// deployment after it.
macro_rules! change_fields {
    () => {
        concat!(
            "noop instance { id state contextDigest } flowRun { id kind state attempt } deployment { ",
            deployment_fields!(),
            " }"
        )
    };
}

/// The driver version a deployment is pinned to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedVersion {
    pub driver_name: String,
    pub version: String,
    pub digest: String,
}

/// What the agent last saw of the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedStatus {
    /// `PENDING`, `DEPLOYING`, `RUNNING`, `DEGRADED`, `STOPPED`, `FAILED`, `DELETING` or
    /// `UNKNOWN`.
    pub status: String,
    pub message: Option<String>,
    pub urls: Vec<String>,
    pub reported_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRef {
    pub id: String,
}

/// A deployment's desired state and observed status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub name: String,
    pub environment_id: String,
    pub cluster_id: String,
    pub app_version: String,
    /// `running`, `stopped` or `deleting`.
    pub phase: String,
    pub last_error: Option<String>,
    pub parameters: Value,
    /// Names of the secret parameters set (never their values).
    #[serde(default)]
    pub secret_parameters: Vec<String>,
    pub config: Value,
    pub components: Value,
    pub driver_version: Option<PinnedVersion>,
    pub status: ObservedStatus,
    pub active_instance: Option<InstanceRef>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

/// The Instance a change made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstance {
    pub id: String,
    pub state: String,
    pub context_digest: String,
}

/// The run a change scheduled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduledRun {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub attempt: i64,
}

/// What a change did: the Instance and run it made (both absent for a no-op) and the
/// deployment after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentChange {
    /// The change resolved to the state already wanted: nothing was scheduled.
    pub noop: bool,
    pub instance: Option<NewInstance>,
    pub flow_run: Option<ScheduledRun>,
    pub deployment: Deployment,
}

/// A pod of a deployment, as the deployment's page summarises it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodSummary {
    pub namespace: String,
    pub name: String,
    pub component: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i64,
}

/// A pod of a deployment, with where it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    #[serde(flatten)]
    pub summary: PodSummary,
    pub node: Option<String>,
    pub ip: Option<String>,
    pub started_at: Option<String>,
}

/// A deployment with its pods and its latest runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub pods: Vec<PodSummary>,
    pub flow_runs: Vec<FlowRun>,
}

/// A driver version, named.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionName {
    pub driver_name: String,
    pub version: String,
}

/// A frozen snapshot of the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    /// `pending`, `active`, `failed` or `superseded`.
    pub state: String,
    pub app_version: String,
    pub context_digest: String,
    pub created_at: String,
    pub driver_version: Option<VersionName>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentInstances {
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRuns {
    pub flow_runs: Vec<FlowRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentPods {
    pub pods: Vec<Pod>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRef {
    pub id: String,
}

/// A deployment's name and its latest run, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestRun {
    pub name: String,
    pub flow_runs: Vec<RunRef>,
}

/// One rendered Helm value a change would change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueChange {
    /// Dotted path with `[i]` for list items.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What a change would do, without doing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPlan {
    /// The remediation the change would schedule; `None` when it changes nothing.
    pub kind: Option<String>,
    pub context_digest: String,
    pub changes: Vec<ValueChange>,
}

/// Names one deployment, by id, name or ENVIRONMENT/NAME.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeploymentId {
    pub id: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDeployment {
    pub driver: String,
    pub app_version: String,
    pub environment_id: String,
    /// Defaults to the driver's name.
    pub name: Option<String>,
    /// The driver's latest version when `None`.
    pub driver_version: Option<String>,
    pub parameters: Option<Value>,
    /// Values of `secret` parameters, name → text.
    pub secret_parameters: Option<Value>,
    pub config: Option<Value>,
    pub components: Option<Value>,
}

/// Deployments of one environment or cluster (each `None` for all).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentFilter {
    pub environment: Option<String>,
    pub cluster: Option<String>,
    pub include_deleted: bool,
}

/// New settings; `None` keeps what is set.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSettings {
    pub id: String,
    /// Merged into the current values; a `null` value removes one.
    pub parameters: Option<Value>,
    /// Merged into the current secret values; a `null` value removes one.
    pub secret_parameters: Option<Value>,
    pub config: Option<Value>,
    pub components: Option<Value>,
}

/// Another application and/or driver version (`latest`); `None` keeps it.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upgrade {
    pub id: String,
    pub app_version: Option<String>,
    pub driver_version: Option<String>,
}

/// The `DeploymentEdit` input: a change to plan.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEdit {
    pub parameters: Option<Value>,
    /// Left out of the input when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_parameters: Option<Value>,
    /// Left out of the input when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    pub components: Option<Value>,
    pub app_version: Option<String>,
    pub driver_version: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub change: Option<DeploymentEdit>,
}

operations! {
    /// Deploys a driver's application into an environment; schedules `create`.
    CreateDeployment: "createDeployment" (NewDeployment) -> DeploymentChange = concat!(
        "mutation CreateDeployment($driver: String!, $appVersion: String!, $environmentId: ID!, $name: String, $driverVersion: String, $parameters: JSON, $secretParameters: JSON, $config: JSON, $components: JSON) { createDeployment(driver: $driver, appVersion: $appVersion, environmentId: $environmentId, name: $name, driverVersion: $driverVersion, parameters: $parameters, secretParameters: $secretParameters, config: $config, components: $components) { ",
        change_fields!(),
        " } }"
    );
    ListDeployments: "deployments" (DeploymentFilter) -> Vec<Deployment> = concat!(
        "query ListDeployments($environment: ID, $cluster: ID, $includeDeleted: Boolean!) { deployments(environment: $environment, cluster: $cluster, includeDeleted: $includeDeleted) { ",
        deployment_fields!(),
        " } }"
    );
    /// A deployment with its pods and its five latest runs.
    GetDeployment: "deployment" (DeploymentId) -> DeploymentDetail = concat!(
        "query GetDeployment($id: ID!) { deployment(id: $id) { ",
        deployment_fields!(),
        " pods { namespace name component phase ready restarts } flowRuns(first: 5) { ",
        run_fields!(),
        " } } }"
    );
    /// Changes parameters, config or component settings; schedules `update` unless
    /// nothing changes.
    UpdateDeployment: "updateDeployment" (DeploymentSettings) -> DeploymentChange = concat!(
        "mutation UpdateDeployment($id: ID!, $parameters: JSON, $secretParameters: JSON, $config: JSON, $components: JSON) { updateDeployment(id: $id, parameters: $parameters, secretParameters: $secretParameters, config: $config, components: $components) { ",
        change_fields!(),
        " } }"
    );
    UpgradeDeployment: "upgradeDeployment" (Upgrade) -> DeploymentChange = concat!(
        "mutation UpgradeDeployment($id: ID!, $appVersion: String, $driverVersion: String) { upgradeDeployment(id: $id, appVersion: $appVersion, driverVersion: $driverVersion) { ",
        change_fields!(),
        " } }"
    );
    StopDeployment: "stopDeployment" (DeploymentId) -> DeploymentChange = concat!(
        "mutation StopDeployment($id: ID!) { stopDeployment(id: $id) { ",
        change_fields!(),
        " } }"
    );
    StartDeployment: "startDeployment" (DeploymentId) -> DeploymentChange = concat!(
        "mutation StartDeployment($id: ID!) { startDeployment(id: $id) { ",
        change_fields!(),
        " } }"
    );
    DeleteDeployment: "deleteDeployment" (DeploymentId) -> DeploymentChange = concat!(
        "mutation DeleteDeployment($id: ID!) { deleteDeployment(id: $id) { ",
        change_fields!(),
        " } }"
    );
    /// Runs the failed latest run again, as a new attempt.
    RetryDeployment: "retryDeployment" (DeploymentId) -> DeploymentChange = concat!(
        "mutation RetryDeployment($id: ID!) { retryDeployment(id: $id) { ",
        change_fields!(),
        " } }"
    );
    /// Dry run of a change: stores nothing.
    PlanDeployment: "planDeployment" (Plan) -> DeploymentPlan =
        "mutation PlanDeployment($id: ID!, $change: DeploymentEdit) { planDeployment(id: $id, change: $change) { kind contextDigest changes { path before after } } }";
    /// The deployment's Instances, newest first.
    DeploymentInstanceList: "deployment" (DeploymentId) -> DeploymentInstances =
        "query DeploymentInstanceList($id: ID!) { deployment(id: $id) { instances { id state appVersion contextDigest createdAt driverVersion { driverName version } } } }";
    /// The deployment's 100 latest runs, newest first.
    DeploymentRunList: "deployment" (DeploymentId) -> DeploymentRuns = concat!(
        "query DeploymentRunList($id: ID!) { deployment(id: $id) { flowRuns(first: 100) { ",
        run_fields!(),
        " } } }"
    );
    /// The pods the agent reports for the deployment.
    DeploymentPodList: "deployment" (DeploymentId) -> DeploymentPods =
        "query DeploymentPodList($id: ID!) { deployment(id: $id) { pods { namespace name component phase ready restarts node ip startedAt } } }";
    /// The deployment's name and latest run.
    DeploymentLatestRun: "deployment" (DeploymentId) -> LatestRun =
        "query DeploymentLatestRun($id: ID!) { deployment(id: $id) { name flowRuns(first: 1) { id } } }";
}
