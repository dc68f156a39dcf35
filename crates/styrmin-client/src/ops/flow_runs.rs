//! Flow runs across the system, and their logs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::operations;

/// The fields of a flow run every run listing selects.
macro_rules! run_fields {
    () => {
        "id deploymentId kind state attempt maxAttempts instanceId error createdAt startedAt finishedAt"
    };
}
pub(crate) use run_fields;

/// A flow run: what it does, how far it got, and why it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRun {
    pub id: String,
    pub deployment_id: Option<String>,
    pub kind: String,
    /// `scheduled`, `running`, `completed`, `failed` or `cancelled`.
    pub state: String,
    /// 1 for the first try.
    pub attempt: i64,
    pub max_attempts: i64,
    pub instance_id: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A flow run with what the agent was given and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowRunDetail {
    #[serde(flatten)]
    pub run: FlowRun,
    pub payload: Value,
    pub result: Option<Value>,
}

/// One line of a run's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLogLine {
    /// Position in the run's log, from 1.
    pub seq: i64,
    pub attempt: i64,
    pub at: String,
    pub level: String,
    pub message: String,
}

/// A page of a run's log, with the run's state to tell whether more can come.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLog {
    pub state: String,
    pub error: Option<String>,
    pub logs: Vec<RunLogLine>,
}

/// Runs of one deployment, cluster or state (each `None` for all), newest first.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunFilter {
    pub deployment: Option<String>,
    pub cluster: Option<String>,
    /// `scheduled`, `running`, `completed`, `failed` or `cancelled`.
    pub state: Option<String>,
    pub first: Option<i32>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RunId {
    pub id: String,
}

/// The run's log lines after `after`; when there are none and the run is open, the
/// server waits up to `waitSeconds` for one.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub id: String,
    pub after: i64,
    pub wait_seconds: f64,
}

operations! {
    /// Flow runs, newest first.
    ListFlowRuns: "flowRuns" (RunFilter) -> Vec<FlowRun> = concat!(
        "query ListFlowRuns($deployment: ID, $cluster: ID, $state: RunState, $first: Int) { flowRuns(deployment: $deployment, cluster: $cluster, state: $state, first: $first) { ",
        run_fields!(),
        " } }"
    );
    GetFlowRun: "flowRun" (RunId) -> FlowRunDetail = concat!(
        "query GetFlowRun($id: ID!) { flowRun(id: $id) { ",
        run_fields!(),
        " payload result } }"
    );
    /// Long-polls a run's log.
    FlowRunLog: "flowRun" (LogPage) -> RunLog =
        "query FlowRunLog($id: ID!, $after: Int!, $waitSeconds: Float!) { flowRun(id: $id) { state error logs(after: $after, waitSeconds: $waitSeconds) { seq attempt at level message } } }";
}
