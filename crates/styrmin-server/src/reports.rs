//! What agents report (SPEC §7): pods and deployment statuses, kept latest-only, and the
//! agent's liveness that decides whether those reports can still be trusted.

use std::collections::HashSet;

use styrmin_core::protocol::{DeploymentStatus, DeploymentStatusReport, PodReport};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::ids::now_ms;
use crate::state::AppState;
use crate::store::clusters::ClusterRow;
use crate::store::statuses::{self, DeploymentStatusRow, PodRow};
use crate::store::{Conn, clusters};

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
                pod: p,
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
    clusters::agent_heard(&mut tx, &cluster_id, now).await?;
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

/// `reportDeploymentStatuses`: the latest observed status of each named deployment.
pub async fn report_statuses(
    s: &AppState,
    who: &Principal,
    cluster_ref: &str,
    reports: Vec<DeploymentStatusReport>,
) -> ApiResult<usize> {
    let now = now_ms();
    if reports
        .iter()
        .any(|r| r.status == DeploymentStatus::Unknown)
    {
        return Err(unknown_status());
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
                status: r.status.as_str().to_owned(),
                message: r.message.clone(),
                instance_id: r.instance_id.clone(),
                components: serde_json::to_value(&r.components).unwrap_or_default(),
                urls: r.urls.clone(),
                reported_at: now,
            },
        )
        .await?;
    }
    clusters::agent_heard(&mut tx, &cluster_id, now).await?;
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

/// `UNKNOWN` is what the server shows when no agent can be believed; an agent never
/// reports it.
pub fn unknown_status() -> ApiError {
    let reportable: Vec<&str> = DeploymentStatus::ALL
        .iter()
        .map(|(text, _)| *text)
        .filter(|t| *t != "UNKNOWN")
        .collect();
    ApiError::field(
        "statuses.status",
        format!("use one of {}", reportable.join(", ")),
    )
}

/// Whether the cluster's agent has called in recently enough to be believed.
pub fn agent_online(s: &AppState, cluster: &ClusterRow) -> bool {
    cluster
        .agent_last_seen
        .is_some_and(|seen| now_ms() - seen <= s.settings.agent_offline_after.as_millis() as i64)
}
