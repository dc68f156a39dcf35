//! Deployments (desired state) and their Instances (frozen snapshots).

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use styrmin_core::context::ComponentSettings;
use styrmin_core::planner::Phase;

use super::{Conn, Page, json_col, to_json};

#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub id: String,
    pub name: String,
    pub environment_id: String,
    pub cluster_id: String,
    pub driver_version_id: String,
    pub app_version: String,
    pub parameters: BTreeMap<String, Value>,
    /// Secret parameter values, each sealed with the server key (`crypto::SecretKey`).
    pub secret_parameters: BTreeMap<String, String>,
    pub config: Value,
    pub components: BTreeMap<String, ComponentSettings>,
    pub phase: Phase,
    pub active_instance_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

fn decode_err(column: &str, message: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: message.into(),
    }
}

fn from_row(row: &AnyRow) -> Result<DeploymentRow, sqlx::Error> {
    let phase: String = row.try_get("phase")?;
    Ok(DeploymentRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        environment_id: row.try_get("environment_id")?,
        cluster_id: row.try_get("cluster_id")?,
        driver_version_id: row.try_get("driver_version_id")?,
        app_version: row.try_get("app_version")?,
        parameters: json_col(row, "parameters")?,
        secret_parameters: json_col(row, "secret_parameters")?,
        config: json_col(row, "config")?,
        components: json_col(row, "components")?,
        phase: phase
            .parse()
            .map_err(|_| decode_err("phase", format!("unknown phase {phase}")))?,
        active_instance_id: row.try_get("active_instance_id")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &DeploymentRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deployments (id, name, environment_id, cluster_id, driver_version_id, app_version, parameters, config, components, phase, next_position, created_at, updated_at, secret_parameters) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.environment_id)
    .bind(&row.cluster_id)
    .bind(&row.driver_version_id)
    .bind(&row.app_version)
    .bind(to_json(&row.parameters))
    .bind(to_json(&row.config))
    .bind(to_json(&row.components))
    .bind(row.phase.as_str())
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(to_json(&row.secret_parameters))
    .execute(c)
    .await?;
    Ok(())
}

/// Writes the desired state a user changed.
pub async fn save_desired(c: &mut Conn, row: &DeploymentRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployments SET driver_version_id = $1, app_version = $2, parameters = $3, config = $4, components = $5, phase = $6, updated_at = $7, secret_parameters = $9 WHERE id = $8",
    )
    .bind(&row.driver_version_id)
    .bind(&row.app_version)
    .bind(to_json(&row.parameters))
    .bind(to_json(&row.config))
    .bind(to_json(&row.components))
    .bind(row.phase.as_str())
    .bind(row.updated_at)
    .bind(&row.id)
    .bind(to_json(&row.secret_parameters))
    .execute(c)
    .await?;
    Ok(())
}

/// The deployments with these ids, deleted or not (in no particular order).
pub async fn get_many(c: &mut Conn, ids: &[String]) -> Result<Vec<DeploymentRow>, sqlx::Error> {
    super::by_ids(
        c,
        "SELECT * FROM deployments WHERE id IN ({ids})",
        ids,
        from_row,
    )
    .await
}

pub async fn get(c: &mut Conn, id: &str) -> Result<Option<DeploymentRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Live deployments the reference names: an id, a name, or `ENVIRONMENT/NAME`.
pub async fn find(c: &mut Conn, reference: &str) -> Result<Vec<DeploymentRow>, sqlx::Error> {
    if let Some((env, name)) = reference.split_once('/') {
        return sqlx::query(
            "SELECT d.* FROM deployments d JOIN environments e ON e.id = d.environment_id WHERE d.deleted_at IS NULL AND d.name = $1 AND (e.id = $2 OR e.name = $2) ORDER BY d.created_at",
        )
        .bind(name)
        .bind(env)
        .fetch_all(c)
        .await?
        .iter()
        .map(from_row)
        .collect();
    }
    sqlx::query(
        "SELECT * FROM deployments WHERE id = $1 OR (deleted_at IS NULL AND name = $1) ORDER BY (id = $1) DESC, created_at",
    )
    .bind(reference)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub environment_id: Option<String>,
    pub cluster_id: Option<String>,
    pub include_deleted: bool,
}

pub async fn list(c: &mut Conn, f: &Filter, page: Page) -> Result<Vec<DeploymentRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM deployments WHERE ($1 = '' OR environment_id = $1) AND ($2 = '' OR cluster_id = $2) AND ($3 = 1 OR deleted_at IS NULL) ORDER BY name, created_at LIMIT $4 OFFSET $5",
    )
    .bind(f.environment_id.as_deref().unwrap_or(""))
    .bind(f.cluster_id.as_deref().unwrap_or(""))
    .bind(i64::from(f.include_deleted))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn count_in_environment(c: &mut Conn, environment_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM deployments WHERE environment_id = $1 AND deleted_at IS NULL",
    )
    .bind(environment_id)
    .fetch_one(c)
    .await?
    .try_get("n")
}

/// The next queue position of the deployment's flow runs (kept on the row so positions are
/// assigned under the row's write lock).
pub async fn take_position(c: &mut Conn, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("UPDATE deployments SET next_position = next_position + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("SELECT next_position FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_one(c)
        .await?
        .try_get("next_position")
}

pub async fn set_outcome(
    c: &mut Conn,
    id: &str,
    active_instance_id: Option<&str>,
    last_error: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match active_instance_id {
        Some(active) => sqlx::query(
            "UPDATE deployments SET active_instance_id = $1, last_error = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(active)
        .bind(last_error)
        .bind(now)
        .bind(id),
        None => sqlx::query(
            "UPDATE deployments SET last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(last_error)
        .bind(now)
        .bind(id),
    }
    .execute(c)
    .await?;
    Ok(())
}

pub async fn mark_deleted(c: &mut Conn, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deployments SET deleted_at = $1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

// ---- Instances ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "lowercase")]
pub enum InstanceState {
    Pending,
    Active,
    Failed,
    Superseded,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Active => "active",
            InstanceState::Failed => "failed",
            InstanceState::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Option<InstanceState> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "active" => InstanceState::Active,
            "failed" => InstanceState::Failed,
            "superseded" => InstanceState::Superseded,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub deployment_id: String,
    /// Order among the deployment's Instances and flow runs.
    pub seq: i64,
    pub driver_version_id: String,
    pub app_version: String,
    pub context: Value,
    pub context_digest: String,
    pub rendered_values: Value,
    pub state: InstanceState,
    pub created_at: i64,
    pub updated_at: i64,
}

fn instance_from_row(row: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(InstanceRow {
        id: row.try_get("id")?,
        deployment_id: row.try_get("deployment_id")?,
        seq: row.try_get("seq")?,
        driver_version_id: row.try_get("driver_version_id")?,
        app_version: row.try_get("app_version")?,
        context: json_col(row, "context")?,
        context_digest: row.try_get("context_digest")?,
        rendered_values: json_col(row, "rendered_values")?,
        state: InstanceState::parse(&state)
            .ok_or_else(|| decode_err("state", format!("unknown instance state {state}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert_instance(c: &mut Conn, row: &InstanceRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO instances (id, deployment_id, seq, driver_version_id, app_version, context, context_digest, rendered_values, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&row.id)
    .bind(&row.deployment_id)
    .bind(row.seq)
    .bind(&row.driver_version_id)
    .bind(&row.app_version)
    .bind(to_json(&row.context))
    .bind(&row.context_digest)
    .bind(to_json(&row.rendered_values))
    .bind(row.state.as_str())
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn instance(c: &mut Conn, id: &str) -> Result<Option<InstanceRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM instances WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(instance_from_row)
        .transpose()
}

/// A deployment's Instances, newest first.
pub async fn instances_of(
    c: &mut Conn,
    deployment_id: &str,
) -> Result<Vec<InstanceRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM instances WHERE deployment_id = $1 ORDER BY seq DESC")
        .bind(deployment_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(instance_from_row)
        .collect()
}

pub async fn set_instance_state(
    c: &mut Conn,
    id: &str,
    state: InstanceState,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE instances SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(state.as_str())
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}
