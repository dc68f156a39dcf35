//! Backups and restores (SPEC §9): one row per deployment backup (an environment backup
//! is a row without a deployment, the parent of its parts), one per restore. Their flow
//! runs fill them in.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use styrmin_core::backup::{BackupState, RestoreState};

use super::{Conn, Page, json_col, to_json};

#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: String,
    pub environment_id: String,
    /// `None` for an environment backup (the parent of one backup per deployment).
    pub deployment_id: Option<String>,
    pub parent_id: Option<String>,
    pub bsl_id: String,
    pub state: BackupState,
    pub size_bytes: Option<i64>,
    /// `[ComponentResult]` as the agent reported them.
    pub components: Value,
    /// Errors not tied to one component.
    pub errors: Vec<String>,
    pub flow_run_id: Option<String>,
    pub driver_version_id: Option<String>,
    pub deleting_at: Option<i64>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn decode(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: format!("unexpected value `{value}`").into(),
    }
}

fn backup_from_row(row: &AnyRow) -> Result<BackupRow, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(BackupRow {
        id: row.try_get("id")?,
        environment_id: row.try_get("environment_id")?,
        deployment_id: row.try_get("deployment_id")?,
        parent_id: row.try_get("parent_id")?,
        bsl_id: row.try_get("bsl_id")?,
        state: state.parse().map_err(|_| decode("state", &state))?,
        size_bytes: row.try_get("size_bytes")?,
        components: json_col(row, "components")?,
        errors: json_col(row, "errors")?,
        flow_run_id: row.try_get("flow_run_id")?,
        driver_version_id: row.try_get("driver_version_id")?,
        deleting_at: row.try_get("deleting_at")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &BackupRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO backups (id, environment_id, deployment_id, parent_id, bsl_id, state, size_bytes, components, errors, flow_run_id, driver_version_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.id)
    .bind(&row.environment_id)
    .bind(row.deployment_id.as_deref())
    .bind(row.parent_id.as_deref())
    .bind(&row.bsl_id)
    .bind(row.state.as_str())
    .bind(row.size_bytes)
    .bind(to_json(&row.components))
    .bind(to_json(&row.errors))
    .bind(row.flow_run_id.as_deref())
    .bind(row.driver_version_id.as_deref())
    .bind(row.created_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Whether a backup taken in an environment of `cluster_id` lives in location `bsl_id`:
/// the agent of that cluster may then read the location's credentials to restore it.
pub async fn cluster_has_backup_in(
    c: &mut Conn,
    cluster_id: &str,
    bsl_id: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 FROM backups b JOIN environments e ON e.id = b.environment_id WHERE b.bsl_id = $1 AND e.cluster_id = $2 LIMIT 1",
    )
    .bind(bsl_id)
    .bind(cluster_id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.is_some())
}

pub async fn get(c: &mut Conn, id: &str) -> Result<Option<BackupRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM backups WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(backup_from_row)
        .transpose()
}

/// The backup a run takes.
pub async fn by_run(c: &mut Conn, run_id: &str) -> Result<Option<BackupRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM backups WHERE flow_run_id = $1")
        .bind(run_id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(backup_from_row)
        .transpose()
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub environment_id: Option<String>,
    pub deployment_id: Option<String>,
    pub parent_id: Option<String>,
}

/// Newest first.
pub async fn list(c: &mut Conn, f: &Filter, page: Page) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM backups WHERE ($1 = '' OR environment_id = $1) AND ($2 = '' OR deployment_id = $2) AND ($3 = '' OR parent_id = $3) ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(f.environment_id.as_deref().unwrap_or(""))
    .bind(f.deployment_id.as_deref().unwrap_or(""))
    .bind(f.parent_id.as_deref().unwrap_or(""))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(backup_from_row)
    .collect()
}

/// Takes the row's write lock for the rest of the transaction (a no-op UPDATE: on
/// PostgreSQL a second transaction waits here, and its next statement then sees what the
/// first committed; SQLite's writer already holds the database).
pub async fn lock(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backups SET state = state WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// The parts of an environment backup.
pub async fn parts(c: &mut Conn, parent_id: &str) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM backups WHERE parent_id = $1 ORDER BY created_at, id")
        .bind(parent_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(backup_from_row)
        .collect()
}

/// A deployment's completed backups not being deleted, newest first.
pub async fn completed_of_deployment(
    c: &mut Conn,
    deployment_id: &str,
) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM backups WHERE deployment_id = $1 AND state = 'completed' AND deleting_at IS NULL ORDER BY created_at DESC, id DESC",
    )
    .bind(deployment_id)
    .fetch_all(c)
    .await?
    .iter()
    .map(backup_from_row)
    .collect()
}

/// Moves a backup to `state` (claimed: running).
pub async fn set_state(c: &mut Conn, id: &str, state: BackupState) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backups SET state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// What a finished backup run reported.
pub struct Outcome<'a> {
    pub state: BackupState,
    pub size_bytes: Option<i64>,
    pub components: &'a Value,
    pub errors: &'a [String],
    pub finished_at: Option<i64>,
}

pub async fn finish(c: &mut Conn, id: &str, o: &Outcome<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE backups SET state = $1, size_bytes = $2, components = $3, errors = $4, finished_at = $5 WHERE id = $6",
    )
    .bind(o.state.as_str())
    .bind(o.size_bytes)
    .bind(to_json(o.components))
    .bind(to_json(&o.errors))
    .bind(o.finished_at)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// Marks a backup as being deleted unless it already is: 1 row for the one caller that
/// starts its deletion, 0 for any other.
pub async fn start_deleting(c: &mut Conn, id: &str, at: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE backups SET deleting_at = $1 WHERE id = $2 AND deleting_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected(),
    )
}

pub async fn set_deleting(c: &mut Conn, id: &str, at: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backups SET deleting_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_errors(c: &mut Conn, id: &str, errors: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backups SET errors = $1 WHERE id = $2")
        .bind(to_json(&errors))
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Removes a backup row with its restores' history.
pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM restores WHERE backup_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

// ---- Restores ----

#[derive(Debug, Clone)]
pub struct RestoreRow {
    pub id: String,
    pub backup_id: String,
    pub target_environment_id: String,
    pub target_deployment_id: Option<String>,
    pub state: RestoreState,
    pub components: Value,
    pub errors: Vec<String>,
    pub flow_run_id: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn restore_from_row(row: &AnyRow) -> Result<RestoreRow, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(RestoreRow {
        id: row.try_get("id")?,
        backup_id: row.try_get("backup_id")?,
        target_environment_id: row.try_get("target_environment_id")?,
        target_deployment_id: row.try_get("target_deployment_id")?,
        state: state.parse().map_err(|_| decode("state", &state))?,
        components: json_col(row, "components")?,
        errors: json_col(row, "errors")?,
        flow_run_id: row.try_get("flow_run_id")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub async fn insert_restore(c: &mut Conn, row: &RestoreRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO restores (id, backup_id, target_environment_id, target_deployment_id, state, components, errors, flow_run_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.backup_id)
    .bind(&row.target_environment_id)
    .bind(row.target_deployment_id.as_deref())
    .bind(row.state.as_str())
    .bind(to_json(&row.components))
    .bind(to_json(&row.errors))
    .bind(row.flow_run_id.as_deref())
    .bind(row.created_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn get_restore(c: &mut Conn, id: &str) -> Result<Option<RestoreRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM restores WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(restore_from_row)
        .transpose()
}

pub async fn restore_by_run(c: &mut Conn, run_id: &str) -> Result<Option<RestoreRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM restores WHERE flow_run_id = $1")
        .bind(run_id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(restore_from_row)
        .transpose()
}

/// Newest first, into one environment and/or of one backup.
pub async fn restores(
    c: &mut Conn,
    environment_id: Option<&str>,
    backup_id: Option<&str>,
    page: Page,
) -> Result<Vec<RestoreRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM restores WHERE ($1 = '' OR target_environment_id = $1) AND ($2 = '' OR backup_id = $2) ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
    )
    .bind(environment_id.unwrap_or(""))
    .bind(backup_id.unwrap_or(""))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(restore_from_row)
    .collect()
}

pub async fn set_restore_state(
    c: &mut Conn,
    id: &str,
    state: RestoreState,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE restores SET state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn finish_restore(
    c: &mut Conn,
    id: &str,
    state: RestoreState,
    components: &Value,
    errors: &[String],
    finished_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE restores SET state = $1, components = $2, errors = $3, finished_at = $4 WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(to_json(components))
    .bind(to_json(&errors))
    .bind(finished_at)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}
