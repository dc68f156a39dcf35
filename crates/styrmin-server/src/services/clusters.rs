//! Clusters: registering one (with its agent's token), renaming or reconfiguring it,
//! rotating the agent's token, and deleting it once it has no environments.

use serde_json::{Value, json};

use super::{check_name, check_object, duplicate, fail_if};
use crate::auth::{Principal, Role};
use crate::crypto::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::state::AppState;
use crate::store::clusters::ClusterRow;
use crate::store::{Conn, audit, clusters, deployments, environments, tokens};
use crate::{reconcile, resolve};

/// A new cluster and the token its agent uses (returned this once).
pub async fn create_cluster(
    s: &AppState,
    who: &Principal,
    name: &str,
    config: Value,
) -> ApiResult<(ClusterRow, String)> {
    who.can_administer()?;
    let mut errors = check_name("name", name);
    errors.extend(check_object("cluster", &config));
    fail_if(errors)?;
    let now = now_ms();
    let token = new_token();
    let row = ClusterRow {
        id: new_id(),
        name: name.to_owned(),
        config,
        agent_token_id: new_id(),
        agent_last_seen: None,
        agent_version: None,
        agent_protocol: None,
        agent_refusal: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = s.db.write().await?;
    clusters::insert(&mut tx, &row)
        .await
        .map_err(duplicate("cluster", name))?;
    tokens::insert(
        &mut tx,
        &row.agent_token_id,
        &format!("agent-{}", row.id),
        Role::Agent,
        Some(&row.id),
        &token_hash(&token),
    )
    .await?;
    set_chart_token(&mut tx, &row, &token).await?;
    audit::commit(
        tx,
        who,
        "createCluster",
        "cluster",
        &row.id,
        json!({"name": name}),
    )
    .await?;
    Ok((row, token))
}

pub async fn update_cluster(
    s: &AppState,
    who: &Principal,
    reference: &str,
    name: Option<&str>,
    config: Option<Value>,
) -> ApiResult<ClusterRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut row = resolve::cluster(&mut tx, reference).await?;
    let mut errors = Vec::new();
    if let Some(name) = name {
        errors.extend(check_name("name", name));
        row.name = name.to_owned();
    }
    if let Some(config) = config {
        errors.extend(check_object("cluster", &config));
        row.config = config;
    }
    fail_if(errors)?;
    row.updated_at = now_ms();
    clusters::update(&mut tx, &row.id, &row.name, &row.config, row.updated_at)
        .await
        .map_err(duplicate("cluster", &row.name))?;
    let filter = deployments::Filter {
        cluster_id: Some(row.id.clone()),
        ..Default::default()
    };
    let changes = reconcile::replan(&mut tx, s, &filter).await?;
    audit::commit(
        tx,
        who,
        "updateCluster",
        "cluster",
        &row.id,
        json!({"name": row.name, "replanned": changes.iter().map(|c| &c.deployment.id).collect::<Vec<_>>()}),
    )
    .await?;
    reconcile::announce_all(s, &changes).await;
    Ok(row)
}

pub async fn rotate_agent_token(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<(ClusterRow, String)> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::cluster(&mut tx, reference).await?;
    let token = new_token();
    tokens::set_hash(&mut tx, &row.agent_token_id, &token_hash(&token)).await?;
    set_chart_token(&mut tx, &row, &token).await?;
    audit::commit(tx, who, "rotateAgentToken", "cluster", &row.id, json!({})).await?;
    Ok((row, token))
}

/// The id of a cluster's chart-pull token row.
fn chart_token_id(cluster: &ClusterRow) -> String {
    format!("{}-charts", cluster.agent_token_id)
}

/// Records the chart-pull token that goes with the agent token `agent_token` (derived from
/// it, so the agent needs nothing more): made with the cluster, or for a cluster
/// registered before chart-pull tokens existed, replaced on each rotation.
async fn set_chart_token(c: &mut Conn, cluster: &ClusterRow, agent_token: &str) -> ApiResult<()> {
    let id = chart_token_id(cluster);
    let hash = token_hash(&styrmin_core::protocol::chart_pull_token(agent_token));
    tokens::delete(c, &id).await?;
    tokens::insert(
        c,
        &id,
        &format!("charts-{}", cluster.id),
        Role::Charts,
        Some(&cluster.id),
        &hash,
    )
    .await?;
    Ok(())
}

pub async fn delete_cluster(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<ClusterRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::cluster(&mut tx, reference).await?;
    let n = environments::count_on_cluster(&mut tx, &row.id).await?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "cluster `{}` still has {n} environment(s); delete them first",
            row.name
        )));
    }
    sqlx::query("DELETE FROM pod_statuses WHERE cluster_id = $1")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM flow_run_logs WHERE flow_run_id IN (SELECT id FROM flow_runs WHERE cluster_id = $1)")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM flow_runs WHERE cluster_id = $1")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    tokens::delete(&mut tx, &row.agent_token_id).await?;
    tokens::delete(&mut tx, &chart_token_id(&row)).await?;
    clusters::delete(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteCluster",
        "cluster",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}
