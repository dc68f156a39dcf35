//! What agents report (SPEC §7): pods and deployment statuses, kept latest-only, and the
//! agent's liveness that decides whether those reports can still be trusted.

use std::collections::HashSet;

use serde_json::Value;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::ids::now_ms;
use crate::state::AppState;
use crate::store::clusters::ClusterRow;
use crate::store::statuses::{self, DeploymentStatusRow, PodRow};
use crate::store::{Conn, clusters};

/// Observed deployment statuses, as the public API spells them.
pub const STATUSES: &[&str] = &[
    "PENDING",
    "DEPLOYING",
    "RUNNING",
    "DEGRADED",
    "STOPPED",
    "FAILED",
    "DELETING",
    "UNKNOWN",
];

pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub deployment_id: Option<String>,
    pub component: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i64,
    pub node: Option<String>,
    pub ip: Option<String>,
    pub containers: Value,
    pub started_at: Option<String>,
}

async fn allowed_deployments(
    c: &mut Conn,
    who: &Principal,
    cluster_ref: &str,
) -> ApiResult<(String, HashSet<String>)> {
    let cluster = clusters::find(c, cluster_ref)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", cluster_ref))?;
    who.agent_for(&cluster.id)?;
    let ids = statuses::deployment_ids_of_cluster(c, &cluster.id).await?;
    Ok((cluster.id, ids))
}

fn foreign(deployment_id: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "deployment {deployment_id} does not run on this agent's cluster"
    ))
}

/// `reportPodStatuses`. With `snapshot`, pods of the cluster not in the report are
/// forgotten; otherwise the report is a delta (`removed` lists pods that are gone).
pub async fn report_pods(
    s: &AppState,
    who: &Principal,
    cluster_ref: &str,
    pods: Vec<PodReport>,
    removed: Vec<(String, String)>,
    snapshot: bool,
) -> ApiResult<usize> {
    let now = now_ms();
    let mut tx = s.db.write().await?;
    let (cluster_id, allowed) = allowed_deployments(&mut tx, who, cluster_ref).await?;
    let mut touched = HashSet::new();
    let rows: Vec<PodRow> = pods
        .into_iter()
        .map(|p| {
            if let Some(d) = &p.deployment_id {
                if !allowed.contains(d) {
                    return Err(foreign(d));
                }
                touched.insert(d.clone());
            }
            Ok(PodRow {
                cluster_id: cluster_id.clone(),
                namespace: p.namespace,
                name: p.name,
                deployment_id: p.deployment_id,
                component: p.component,
                phase: p.phase,
                ready: p.ready,
                restarts: p.restarts,
                node: p.node,
                ip: p.ip,
                containers: p.containers,
                started_at: p.started_at,
                reported_at: now,
            })
        })
        .collect::<ApiResult<_>>()?;
    statuses::upsert_pods(&mut tx, &rows).await?;
    for (namespace, name) in &removed {
        statuses::remove_pod(&mut tx, &cluster_id, namespace, name).await?;
    }
    if snapshot {
        statuses::remove_pods_reported_before(&mut tx, &cluster_id, now).await?;
    }
    clusters::agent_seen(&mut tx, &cluster_id, None, now).await?;
    tx.commit().await?;
    s.metrics.pods_reported(rows.len());
    let mut c = s.db.read().await?;
    for deployment_id in touched {
        s.events
            .publish(&mut c, Event::Deployment { deployment_id })
            .await;
    }
    Ok(rows.len())
}

pub struct StatusReport {
    pub deployment_id: String,
    pub status: String,
    pub message: Option<String>,
    pub instance_id: Option<String>,
    pub components: Value,
    pub urls: Vec<String>,
}

/// `reportDeploymentStatuses`: the latest observed status of each named deployment.
pub async fn report_statuses(
    s: &AppState,
    who: &Principal,
    cluster_ref: &str,
    reports: Vec<StatusReport>,
) -> ApiResult<usize> {
    let now = now_ms();
    for r in &reports {
        if !STATUSES.contains(&r.status.as_str()) || r.status == "UNKNOWN" {
            return Err(ApiError::field(
                "statuses.status",
                format!(
                    "`{}` is not a status an agent reports: use one of {}",
                    r.status,
                    STATUSES[..7].join(", ")
                ),
            ));
        }
    }
    let mut tx = s.db.write().await?;
    let (cluster_id, allowed) = allowed_deployments(&mut tx, who, cluster_ref).await?;
    for r in &reports {
        if !allowed.contains(&r.deployment_id) {
            return Err(foreign(&r.deployment_id));
        }
        statuses::upsert_status(
            &mut tx,
            &DeploymentStatusRow {
                deployment_id: r.deployment_id.clone(),
                cluster_id: cluster_id.clone(),
                status: r.status.clone(),
                message: r.message.clone(),
                instance_id: r.instance_id.clone(),
                components: r.components.clone(),
                urls: r.urls.clone(),
                reported_at: now,
            },
        )
        .await?;
    }
    clusters::agent_seen(&mut tx, &cluster_id, None, now).await?;
    tx.commit().await?;
    s.metrics.statuses_reported(reports.len());
    let mut c = s.db.read().await?;
    for r in reports.iter() {
        s.events
            .publish(
                &mut c,
                Event::Deployment {
                    deployment_id: r.deployment_id.clone(),
                },
            )
            .await;
    }
    Ok(reports.len())
}

/// Whether the cluster's agent has called in recently enough to be believed.
pub fn agent_online(s: &AppState, cluster: &ClusterRow) -> bool {
    cluster
        .agent_last_seen
        .is_some_and(|seen| now_ms() - seen <= s.settings.agent_offline_after.as_millis() as i64)
}
