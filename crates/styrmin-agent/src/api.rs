//! The agent's side of the server protocol (docs/api.md): claims, leases, logs, outcomes,
//! status reports and driver bundles, over the shared GraphQL client.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use styrmin_client::Client;

/// A claimed flow run, as the agent needs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub kind: String,
    pub attempt: i64,
    pub deployment_id: Option<String>,
    pub payload: Value,
    /// How long the lease lasts without a heartbeat.
    pub lease_seconds: f64,
}

#[derive(Clone)]
pub struct AgentApi {
    client: Client,
    pub cluster_id: String,
    pub token: String,
}

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

impl AgentApi {
    /// Connects and learns which cluster the token acts for.
    pub async fn connect(server: &str, token: &str) -> Result<AgentApi> {
        let client = Client::new(server, Some(token.to_owned()))?;
        let me = client
            .request("{ me { role clusterId } }", json!({}))
            .await
            .with_context(|| format!("cannot sign in to {server}"))?;
        let cluster_id = me["me"]["clusterId"]
            .as_str()
            .context("this token is not a cluster's agent token")?
            .to_owned();
        Ok(AgentApi {
            client,
            cluster_id,
            token: token.to_owned(),
        })
    }

    async fn call(&self, query: &str, variables: Value) -> Result<Value> {
        Ok(self.client.request(query, variables).await?)
    }

    pub async fn claim(&self, max: i32, wait_seconds: f64) -> Result<Vec<Run>> {
        let v = self
            .call(
                "mutation($m: Int!, $w: Float!, $v: String) { claimFlowRuns(max: $m, waitSeconds: $w, agentVersion: $v) { id kind attempt deploymentId payload leaseSeconds } }",
                json!({"m": max, "w": wait_seconds, "v": AGENT_VERSION}),
            )
            .await?;
        Ok(serde_json::from_value(v["claimFlowRuns"].clone())?)
    }

    pub async fn heartbeat(&self, run: &Run) -> Result<()> {
        self.call(
            "mutation($id: ID!, $a: Int!) { heartbeatFlowRun(id: $id, attempt: $a) { id } }",
            json!({"id": run.id, "a": run.attempt}),
        )
        .await?;
        Ok(())
    }

    pub async fn log(&self, run: &Run, level: &str, message: &str) -> Result<()> {
        self.call(
            "mutation($id: ID!, $a: Int!, $l: String!, $m: String!) { appendFlowRunLogs(id: $id, attempt: $a, lines: [{level: $l, message: $m}]) }",
            json!({"id": run.id, "a": run.attempt, "l": level, "m": message}),
        )
        .await?;
        Ok(())
    }

    pub async fn complete(&self, run: &Run, result: Value) -> Result<()> {
        self.call(
            "mutation($id: ID!, $a: Int!, $r: JSON) { completeFlowRun(id: $id, attempt: $a, result: $r) { id } }",
            json!({"id": run.id, "a": run.attempt, "r": result}),
        )
        .await?;
        Ok(())
    }

    pub async fn fail(&self, run: &Run, error: &str) -> Result<()> {
        self.call(
            "mutation($id: ID!, $a: Int!, $e: String!) { failFlowRun(id: $id, attempt: $a, error: $e) { id } }",
            json!({"id": run.id, "a": run.attempt, "e": error}),
        )
        .await?;
        Ok(())
    }

    /// Hands a claimed run back to the queue (the agent is shutting down).
    pub async fn release(&self, run: &Run, reason: &str) -> Result<()> {
        self.call(
            "mutation($id: ID!, $a: Int!, $r: String!) { releaseFlowRun(id: $id, attempt: $a, reason: $r) { id } }",
            json!({"id": run.id, "a": run.attempt, "r": reason}),
        )
        .await?;
        Ok(())
    }

    /// Every file of a driver version.
    pub async fn bundle(&self, digest: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        let v = self
            .call(
                "query($d: String!) { driverBundle(digest: $d) { files { path contentBase64 } } }",
                json!({"d": digest}),
            )
            .await?;
        let mut files = BTreeMap::new();
        for f in v["driverBundle"]["files"].as_array().into_iter().flatten() {
            let path = f["path"].as_str().context("a file path")?.to_owned();
            let content = B64.decode(f["contentBase64"].as_str().unwrap_or_default())?;
            files.insert(path, content);
        }
        Ok(files)
    }

    /// A full snapshot of the cluster's pods and the statuses of its deployments.
    pub async fn report(&self, pods: Vec<Value>, statuses: Vec<Value>) -> Result<()> {
        self.call(
            "mutation($c: ID!, $p: [PodStatusInput!]!) { reportPodStatuses(clusterId: $c, pods: $p, snapshot: true) }",
            json!({"c": self.cluster_id, "p": pods}),
        )
        .await?;
        if !statuses.is_empty() {
            self.call(
                "mutation($c: ID!, $s: [DeploymentStatusInput!]!) { reportDeploymentStatuses(clusterId: $c, statuses: $s) }",
                json!({"c": self.cluster_id, "s": statuses}),
            )
            .await?;
        }
        Ok(())
    }
}
