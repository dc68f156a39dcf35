//! What only agents call: the flow-run queue, status reports, and driver bundles.

use std::time::Duration;

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::flow_runs::FlowRun;
use super::{state, who};
use crate::auth::Role;
use crate::driver_versions::decode_bundle;
use crate::error::{ApiError, IntoGql as _};
use crate::queue::{self, NewLogLine};
use crate::reports;
use crate::store::drivers;
use styrmin_core::protocol::{DeploymentStatusReport, PodReport};

#[derive(SimpleObject)]
pub struct BundleFile {
    path: String,
    content_base64: String,
}

/// Every file of a driver version, fetched by the agent once per digest.
#[derive(SimpleObject)]
pub struct DriverBundle {
    digest: String,
    files: Vec<BundleFile>,
}

/// A deployment's secret parameter values, for the agent of its cluster only: it writes
/// them into the Secret its Context names.
#[derive(SimpleObject)]
pub struct SecretParameterValues {
    /// The Secret the Context refers to; null when the deployment has no secret values.
    secret_name: Option<String>,
    /// Parameter name → value.
    values: Json<serde_json::Map<String, Value>>,
}

/// The S3 credentials of an environment's backup storage location, for the agent of the
/// environment's cluster only: it writes them into the Velero credentials Secret.
#[derive(SimpleObject)]
pub struct BackupLocationCredentials {
    access_key_id: String,
    secret_access_key: String,
}

/// A backup storage location as the agent writes the Velero `BackupStorageLocation`
/// (`styrmin_core::backup::LocationRef`; the secret key comes from
/// `backupLocationCredentials`).
#[derive(SimpleObject)]
pub struct VeleroLocation {
    location_id: ID,
    /// The Velero object's name: the environment's namespace.
    name: String,
    endpoint: String,
    bucket: String,
    region: String,
    path_style: bool,
    checksum_algorithm: String,
}

/// An environment of the agent's cluster and its backup storage location.
#[derive(SimpleObject)]
pub struct EnvironmentBackupLocation {
    environment_id: ID,
    environment_name: String,
    namespace: String,
    /// Deleted with its deployments: its location goes with it.
    deleting: bool,
    location: VeleroLocation,
}

/// Velero's phase of one environment's BackupStorageLocation.
#[derive(InputObject)]
pub struct BackupLocationStatusInput {
    environment_id: ID,
    /// `Available` or `Unavailable`, as Velero says.
    phase: String,
    message: Option<String>,
}

#[derive(InputObject)]
pub struct LogLineInput {
    /// RFC 3339; the server's time when absent.
    at: Option<String>,
    #[graphql(default_with = "String::from(\"info\")")]
    level: String,
    message: String,
}

#[derive(InputObject)]
pub struct PodStatusInput {
    namespace: String,
    name: String,
    /// From the pod's `styrmin.io/deployment` label.
    deployment_id: Option<ID>,
    component: Option<String>,
    phase: String,
    ready: bool,
    #[graphql(default)]
    restarts: i64,
    node: Option<String>,
    ip: Option<String>,
    containers: Option<Json<Value>>,
    started_at: Option<String>,
}

#[derive(InputObject)]
pub struct PodRefInput {
    namespace: String,
    name: String,
}

#[derive(InputObject)]
pub struct DeploymentStatusInput {
    deployment_id: ID,
    /// PENDING, DEPLOYING, RUNNING, DEGRADED, STOPPED, FAILED or DELETING.
    status: String,
    message: Option<String>,
    instance_id: Option<ID>,
    components: Option<Json<Value>>,
    #[graphql(default)]
    urls: Vec<String>,
}

#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// The values of a deployment's secret parameters (agents of its cluster only).
    async fn secret_parameter_values(
        &self,
        ctx: &Context<'_>,
        deployment_id: ID,
    ) -> async_graphql::Result<SecretParameterValues> {
        let who = who(ctx)?;
        let s = state(ctx);
        let mut c = s.db.read().await?;
        let d = crate::store::deployments::get(&mut c, &deployment_id)
            .await?
            .ok_or(ApiError::not_found("deployment", deployment_id.to_string()))
            .gql()?;
        who.agent_for(&d.cluster_id).gql()?;
        let mut values = serde_json::Map::new();
        for (name, sealed) in &d.secret_parameters {
            let value = s
                .key
                .decrypt(sealed)
                .map_err(|e| ApiError::Internal(e.context(format!("secret parameter {name}"))))
                .gql()?;
            values.insert(name.clone(), Value::String(value));
        }
        Ok(SecretParameterValues {
            secret_name: crate::reconcile::secret_parameters_name(&d),
            values: Json(values),
        })
    }

    /// The credentials of an environment's backup storage location (the agent of the
    /// environment's cluster only).
    async fn backup_location_credentials(
        &self,
        ctx: &Context<'_>,
        environment_id: ID,
        #[graphql(
            desc = "The location to read when it is not the environment's own: the one a backup being restored lives in (it must hold a backup of this cluster)."
        )]
        location_id: Option<ID>,
    ) -> async_graphql::Result<BackupLocationCredentials> {
        let (access_key_id, secret_access_key) = crate::services::backups::location_credentials(
            state(ctx),
            who(ctx)?,
            &environment_id,
            location_id.as_ref().map(|id| id.as_str()),
        )
        .await
        .gql()?;
        Ok(BackupLocationCredentials {
            access_key_id,
            secret_access_key,
        })
    }

    /// Every environment of the cluster that has a backup storage location, with the
    /// location (the cluster's agent only): what the agent keeps Velero's
    /// BackupStorageLocations in line with.
    async fn cluster_backup_locations(
        &self,
        ctx: &Context<'_>,
        cluster_id: ID,
    ) -> async_graphql::Result<Vec<EnvironmentBackupLocation>> {
        let list = crate::services::backups::cluster_locations(state(ctx), who(ctx)?, &cluster_id)
            .await
            .gql()?;
        Ok(list
            .into_iter()
            .map(|e| EnvironmentBackupLocation {
                environment_id: ID(e.environment.id),
                environment_name: e.environment.name,
                namespace: e.environment.namespace,
                deleting: e.environment.deleting_at.is_some(),
                location: VeleroLocation {
                    location_id: ID(e.location.location_id),
                    name: e.location.name,
                    endpoint: e.location.endpoint,
                    bucket: e.location.bucket,
                    region: e.location.region,
                    path_style: e.location.path_style,
                    checksum_algorithm: e.location.checksum_algorithm,
                },
            })
            .collect())
    }

    /// The files of a driver version by digest (agents and readers).
    async fn driver_bundle(
        &self,
        ctx: &Context<'_>,
        digest: String,
    ) -> async_graphql::Result<DriverBundle> {
        let who = who(ctx)?;
        if who.role != Role::Agent {
            who.can_read().gql()?;
        }
        let mut c = state(ctx).db.read().await?;
        let bytes = drivers::bundle(&mut c, &digest)
            .await?
            .ok_or(ApiError::not_found("driver bundle", digest.clone()))
            .gql()?;
        let bundle = decode_bundle(&bytes)?;
        Ok(DriverBundle {
            digest,
            files: bundle
                .files
                .into_iter()
                .map(|(path, content)| BundleFile {
                    path,
                    content_base64: B64.encode(content),
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct AgentMutation;

fn parse_time(field: &str, text: Option<String>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        t.parse::<jiff::Timestamp>()
            .map(|ts| ts.as_millisecond())
            .map_err(|e| ApiError::field(field, format!("`{t}` is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

#[Object]
impl AgentMutation {
    /// Leases up to `max` runs of the agent's cluster. Waits up to `waitSeconds` for one
    /// when none is ready, returning the moment one is scheduled.
    async fn claim_flow_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] max: i32,
        #[graphql(default = 0.0)] wait_seconds: f64,
        agent_version: Option<String>,
        #[graphql(
            desc = "The server↔agent protocol version the agent speaks (`MAJOR.MINOR`); an agent of another major version is refused with a CONFLICT error naming both."
        )]
        protocol_version: Option<String>,
    ) -> async_graphql::Result<Vec<FlowRun>> {
        let wait = Duration::from_secs_f64(wait_seconds.clamp(0.0, 3600.0));
        let agent = queue::Agent {
            version: agent_version.as_deref(),
            protocol: protocol_version.as_deref(),
        };
        let runs = queue::claim(state(ctx), who(ctx)?, i64::from(max), wait, agent)
            .await
            .gql()?;
        Ok(runs.into_iter().map(FlowRun).collect())
    }

    /// Renews the lease of the attempt that holds the run.
    async fn heartbeat_flow_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        attempt: i64,
    ) -> async_graphql::Result<FlowRun> {
        queue::heartbeat(state(ctx), who(ctx)?, &id, attempt)
            .await
            .gql()
            .map(FlowRun)
    }

    /// Appends lines to the run's log; returns the last line's `seq`.
    async fn append_flow_run_logs(
        &self,
        ctx: &Context<'_>,
        id: ID,
        attempt: i64,
        lines: Vec<LogLineInput>,
    ) -> async_graphql::Result<i64> {
        let lines = lines
            .into_iter()
            .map(|l| {
                Ok(NewLogLine {
                    at: parse_time("lines.at", l.at)?,
                    level: l.level,
                    message: l.message,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()
            .gql()?;
        queue::append_logs(state(ctx), who(ctx)?, &id, attempt, lines)
            .await
            .gql()
    }

    async fn complete_flow_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        attempt: i64,
        result: Option<Json<Value>>,
    ) -> async_graphql::Result<FlowRun> {
        queue::finish(state(ctx), who(ctx)?, &id, attempt, Ok(result.map(|r| r.0)))
            .await
            .gql()
            .map(FlowRun)
    }

    async fn fail_flow_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        attempt: i64,
        error: String,
    ) -> async_graphql::Result<FlowRun> {
        queue::finish(state(ctx), who(ctx)?, &id, attempt, Err(error))
            .await
            .gql()
            .map(FlowRun)
    }

    /// Hands a claimed run back (an agent shutting down): it is scheduled again at once
    /// under the next attempt, without counting as a failed attempt.
    async fn release_flow_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        attempt: i64,
        reason: String,
    ) -> async_graphql::Result<FlowRun> {
        queue::hand_back(state(ctx), who(ctx)?, &id, attempt, &reason)
            .await
            .gql()
            .map(FlowRun)
    }

    /// The pods of the cluster. `snapshot: true` replaces everything known about the
    /// cluster's pods; otherwise `pods` are upserted and `removed` forgotten.
    async fn report_pod_statuses(
        &self,
        ctx: &Context<'_>,
        cluster_id: ID,
        pods: Vec<PodStatusInput>,
        #[graphql(default)] removed: Vec<PodRefInput>,
        #[graphql(default = false)] snapshot: bool,
    ) -> async_graphql::Result<i32> {
        let pods = pods
            .into_iter()
            .map(|p| {
                let containers = match p.containers {
                    Some(Json(value)) => serde_json::from_value(value).map_err(|e| {
                        ApiError::field(
                            "pods.containers",
                            format!("expected a list of {{name, ready, restartCount}}: {e}"),
                        )
                    })?,
                    None => Vec::new(),
                };
                Ok(PodReport {
                    namespace: p.namespace,
                    name: p.name,
                    deployment_id: p.deployment_id.map(|d| d.0),
                    component: p.component,
                    phase: p.phase,
                    ready: p.ready,
                    restarts: p.restarts,
                    node: p.node,
                    ip: p.ip,
                    containers,
                    started_at: p.started_at,
                })
            })
            .collect::<Result<_, ApiError>>()
            .gql()?;
        let removed = removed.into_iter().map(|r| (r.namespace, r.name)).collect();
        let n = reports::report_pods(state(ctx), who(ctx)?, &cluster_id, pods, removed, snapshot)
            .await
            .gql()?;
        Ok(n as i32)
    }

    /// Velero's phase of each environment's backup storage location on the cluster;
    /// returns how many were stored.
    async fn report_backup_location_statuses(
        &self,
        ctx: &Context<'_>,
        cluster_id: ID,
        statuses: Vec<BackupLocationStatusInput>,
    ) -> async_graphql::Result<i32> {
        let reports = statuses
            .into_iter()
            .map(|s| crate::services::backups::LocationReport {
                environment_id: s.environment_id.0,
                phase: s.phase,
                message: s.message,
            })
            .collect();
        let n =
            crate::services::backups::report_locations(state(ctx), who(ctx)?, &cluster_id, reports)
                .await
                .gql()?;
        Ok(n as i32)
    }

    async fn report_deployment_statuses(
        &self,
        ctx: &Context<'_>,
        cluster_id: ID,
        statuses: Vec<DeploymentStatusInput>,
    ) -> async_graphql::Result<i32> {
        let statuses = statuses
            .into_iter()
            .map(|s| {
                let status = s.status.parse().map_err(|_| reports::unknown_status())?;
                let components = match s.components {
                    Some(Json(value)) => serde_json::from_value(value).map_err(|e| {
                        ApiError::field(
                            "statuses.components",
                            format!("expected a map of component to {{ready, desired}}: {e}"),
                        )
                    })?,
                    None => Default::default(),
                };
                Ok(DeploymentStatusReport {
                    deployment_id: s.deployment_id.0,
                    status,
                    message: s.message,
                    instance_id: s.instance_id.map(|i| i.0),
                    components,
                    urls: s.urls,
                })
            })
            .collect::<Result<_, ApiError>>()
            .gql()?;
        let n = reports::report_statuses(state(ctx), who(ctx)?, &cluster_id, statuses)
            .await
            .gql()?;
        Ok(n as i32)
    }
}
