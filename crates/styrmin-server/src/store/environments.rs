//! Environments: a namespace on one cluster, with its own config and backup location.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Conn, Page, json_col, to_json};

#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    pub id: String,
    pub name: String,
    pub cluster_id: String,
    pub config: Value,
    pub namespace: String,
    pub bsl_id: Option<String>,
    /// Set while the environment waits for its deployments' delete runs (a cascading
    /// delete); it goes when the last completes.
    pub deleting_at: Option<i64>,
    /// A five-field cron expression (UTC): the server backs the environment up on it.
    pub backup_schedule: Option<String>,
    /// Completed backups kept per deployment; older ones are deleted.
    pub backup_keep: Option<i64>,
    /// When the schedule is next due.
    pub backup_next_at: Option<i64>,
    /// Velero's view of the location, as the agent last reported it.
    pub backup_location_status: Option<LocationStatus>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Velero's phase of an environment's location (`Available`, `Unavailable`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStatus {
    pub phase: String,
    pub message: Option<String>,
    pub reported_at: i64,
}

fn from_row(row: &AnyRow) -> Result<EnvironmentRow, sqlx::Error> {
    Ok(EnvironmentRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        cluster_id: row.try_get("cluster_id")?,
        config: json_col(row, "config")?,
        namespace: row.try_get("namespace")?,
        bsl_id: row.try_get("bsl_id")?,
        deleting_at: row.try_get("deleting_at")?,
        backup_schedule: row.try_get("backup_schedule")?,
        backup_keep: row.try_get("backup_keep")?,
        backup_next_at: row.try_get("backup_next_at")?,
        backup_location_status: match row.try_get::<Option<String>, _>("backup_location_phase")? {
            Some(phase) => Some(LocationStatus {
                phase,
                message: row.try_get("backup_location_message")?,
                reported_at: row
                    .try_get::<Option<i64>, _>("backup_location_reported_at")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &EnvironmentRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO environments (id, name, cluster_id, config, namespace, bsl_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.cluster_id)
    .bind(to_json(&row.config))
    .bind(&row.namespace)
    .bind(row.bsl_id.as_deref())
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(c)
    .await?;
    Ok(())
}

/// The environments with these ids (in no particular order).
pub async fn get_many(c: &mut Conn, ids: &[String]) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
    super::by_ids(
        c,
        "SELECT * FROM environments WHERE id IN ({ids})",
        ids,
        from_row,
    )
    .await
}

pub async fn get(c: &mut Conn, id: &str) -> Result<Option<EnvironmentRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM environments WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every environment the reference names: its id, or its name (one per cluster, so a
/// name may match several).
pub async fn find(c: &mut Conn, reference: &str) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM environments WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC, name",
    )
    .bind(reference)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn list(
    c: &mut Conn,
    cluster_id: Option<&str>,
    page: Page,
) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM environments WHERE ($1 = '' OR cluster_id = $1) ORDER BY name, id LIMIT $2 OFFSET $3",
    )
    .bind(cluster_id.unwrap_or(""))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn update(
    c: &mut Conn,
    id: &str,
    name: &str,
    config: &Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE environments SET name = $1, config = $2, updated_at = $3 WHERE id = $4")
        .bind(name)
        .bind(to_json(config))
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn assign_location(
    c: &mut Conn,
    id: &str,
    bsl_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE environments SET bsl_id = $1, updated_at = $2 WHERE id = $3")
        .bind(bsl_id)
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn count_on_cluster(c: &mut Conn, cluster_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM environments WHERE cluster_id = $1")
        .bind(cluster_id)
        .fetch_one(c)
        .await?
        .try_get("n")
}

/// Marks the environment as going once its deployments are deleted.
pub async fn set_deleting(c: &mut Conn, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE environments SET deleting_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM environments WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Sets the schedule and retention; `next_at` is when the schedule is next due.
pub async fn set_backup_policy(
    c: &mut Conn,
    id: &str,
    schedule: Option<&str>,
    keep: Option<i64>,
    next_at: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE environments SET backup_schedule = $1, backup_keep = $2, backup_next_at = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(schedule)
    .bind(keep)
    .bind(next_at)
    .bind(now)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// Environments whose backup schedule is due at `now`.
pub async fn due_schedules(c: &mut Conn, now: i64) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM environments WHERE backup_schedule IS NOT NULL AND backup_next_at IS NOT NULL AND backup_next_at <= $1 AND deleting_at IS NULL ORDER BY backup_next_at",
    )
    .bind(now)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Moves a due schedule on from `due` to `next`: 1 row for the one caller that saw `due`
/// first, 0 for every other (another server acted).
pub async fn take_due(
    c: &mut Conn,
    id: &str,
    due: i64,
    next: Option<i64>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE environments SET backup_next_at = $1 WHERE id = $2 AND backup_next_at = $3",
    )
    .bind(next)
    .bind(id)
    .bind(due)
    .execute(c)
    .await?
    .rows_affected())
}

pub async fn report_location(
    c: &mut Conn,
    id: &str,
    phase: &str,
    message: Option<&str>,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE environments SET backup_location_phase = $1, backup_location_message = $2, backup_location_reported_at = $3 WHERE id = $4",
    )
    .bind(phase)
    .bind(message)
    .bind(at)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}
