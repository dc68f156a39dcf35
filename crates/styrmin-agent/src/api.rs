//! The agent's side of the server protocol (docs/api.md): claims, leases, logs, outcomes,
//! status reports and driver bundles, as `styrmin-client`'s named operations carrying
//! `styrmin_core::protocol` types.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use styrmin_client::ops::agent::{
    AppendFlowRunLogs, AppendLogs, Attempt, BundleDigest, Claim, ClaimFlowRuns, ClusterOf,
    Complete, CompleteFlowRun, DeploymentId, EnvironmentLocation, Fail, FailFlowRun,
    FetchBackupLocationCredentials, FetchClusterBackupLocations, FetchDriverBundle,
    FetchSecretParameterValues, HeartbeatFlowRun, LocationOf, Release, ReleaseFlowRun,
    ReportBackupLocationStatuses, ReportDeploymentStatuses, ReportLocationStatuses,
    ReportPodStatuses, ReportPods, ReportStatuses, SecretParameterValues,
};
use styrmin_client::ops::session::WhoAmI;
use styrmin_client::{Client, NoVariables};
use styrmin_core::protocol::{
    ClaimedRun, DeploymentStatusReport, LogLine, PROTOCOL_VERSION, PodReport,
};

/// A claimed flow run, as the agent needs it.
pub type Run = ClaimedRun;

#[derive(Clone)]
pub struct AgentApi {
    client: Client,
    pub cluster_id: String,
    pub token: String,
}

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

fn attempt(run: &Run) -> Attempt {
    Attempt {
        id: run.id.clone(),
        attempt: run.attempt,
    }
}

impl AgentApi {
    /// Connects and learns which cluster the token acts for.
    pub async fn connect(server: &str, token: &str) -> Result<AgentApi> {
        let client = Client::new(server, Some(token.to_owned()))?;
        let me = client
            .run::<WhoAmI>(&NoVariables {})
            .await
            .with_context(|| format!("cannot sign in to {server}"))?;
        let cluster_id = me
            .cluster_id
            .context("this token is not a cluster's agent token")?;
        Ok(AgentApi {
            client,
            cluster_id,
            token: token.to_owned(),
        })
    }

    /// Leases up to `max` runs, waiting up to `wait_seconds`. The server refuses an agent
    /// whose protocol major version it does not speak, with a message naming both.
    pub async fn claim(&self, max: i32, wait_seconds: f64) -> Result<Vec<Run>> {
        let claim = Claim {
            max,
            wait_seconds,
            agent_version: Some(AGENT_VERSION.to_owned()),
            protocol_version: Some(PROTOCOL_VERSION.to_string()),
        };
        Ok(self.client.run::<ClaimFlowRuns>(&claim).await?)
    }

    pub async fn heartbeat(&self, run: &Run) -> Result<()> {
        self.client.run::<HeartbeatFlowRun>(&attempt(run)).await?;
        Ok(())
    }

    pub async fn log(&self, run: &Run, level: &str, message: &str) -> Result<()> {
        let lines = AppendLogs {
            id: run.id.clone(),
            attempt: run.attempt,
            lines: vec![LogLine {
                at: None,
                level: level.to_owned(),
                message: message.to_owned(),
            }],
        };
        self.client.run::<AppendFlowRunLogs>(&lines).await?;
        Ok(())
    }

    pub async fn complete(&self, run: &Run, result: Value) -> Result<()> {
        let complete = Complete {
            id: run.id.clone(),
            attempt: run.attempt,
            result: Some(result),
        };
        self.client.run::<CompleteFlowRun>(&complete).await?;
        Ok(())
    }

    pub async fn fail(&self, run: &Run, error: &str) -> Result<()> {
        let fail = Fail {
            id: run.id.clone(),
            attempt: run.attempt,
            error: error.to_owned(),
        };
        self.client.run::<FailFlowRun>(&fail).await?;
        Ok(())
    }

    /// Hands a claimed run back to the queue (the agent is shutting down).
    pub async fn release(&self, run: &Run, reason: &str) -> Result<()> {
        let release = Release {
            id: run.id.clone(),
            attempt: run.attempt,
            reason: reason.to_owned(),
        };
        self.client.run::<ReleaseFlowRun>(&release).await?;
        Ok(())
    }

    /// Every file of a driver version.
    pub async fn bundle(&self, digest: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        let bundle = self
            .client
            .run::<FetchDriverBundle>(&BundleDigest {
                digest: digest.to_owned(),
            })
            .await?;
        bundle
            .files
            .into_iter()
            .map(|f| {
                let content = B64
                    .decode(&f.content_base64)
                    .with_context(|| format!("file {} of driver bundle {digest}", f.path))?;
                Ok((f.path, content))
            })
            .collect()
    }

    /// A deployment's secret parameter values, to write into its namespace.
    pub async fn secret_parameters(&self, deployment_id: &str) -> Result<SecretParameterValues> {
        Ok(self
            .client
            .run::<FetchSecretParameterValues>(&DeploymentId {
                deployment_id: deployment_id.to_owned(),
            })
            .await?)
    }

    /// The S3 credentials `(access key id, secret key)` of a backup storage location: the
    /// environment's own, or the one a backup being restored into it lives in.
    pub async fn location_credentials(
        &self,
        environment_id: &str,
        location_id: &str,
    ) -> Result<(String, String)> {
        let credentials = self
            .client
            .run::<FetchBackupLocationCredentials>(&LocationOf {
                environment_id: environment_id.to_owned(),
                location_id: Some(location_id.to_owned()),
            })
            .await
            .with_context(|| {
                format!("cannot read the credentials of backup storage location {location_id}")
            })?;
        Ok((credentials.access_key_id, credentials.secret_access_key))
    }

    /// The cluster's environments that have a backup storage location.
    pub async fn cluster_locations(&self) -> Result<Vec<EnvironmentLocation>> {
        Ok(self
            .client
            .run::<FetchClusterBackupLocations>(&ClusterOf {
                cluster_id: self.cluster_id.clone(),
            })
            .await?)
    }

    /// Velero's phase of environments' backup storage locations.
    pub async fn report_locations(
        &self,
        statuses: Vec<styrmin_core::backup::LocationStatusReport>,
    ) -> Result<()> {
        self.client
            .run::<ReportBackupLocationStatuses>(&ReportLocationStatuses {
                cluster_id: self.cluster_id.clone(),
                statuses,
            })
            .await?;
        Ok(())
    }

    /// A full snapshot of the cluster's pods and the statuses of its deployments.
    pub async fn report(
        &self,
        pods: Vec<PodReport>,
        statuses: Vec<DeploymentStatusReport>,
    ) -> Result<()> {
        let pods = ReportPods {
            cluster_id: self.cluster_id.clone(),
            pods,
            snapshot: true,
        };
        self.client.run::<ReportPodStatuses>(&pods).await?;
        if !statuses.is_empty() {
            let statuses = ReportStatuses {
                cluster_id: self.cluster_id.clone(),
                statuses,
            };
            self.client
                .run::<ReportDeploymentStatuses>(&statuses)
                .await?;
        }
        Ok(())
    }
}
