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
    pub created_at: i64,
    pub updated_at: i64,
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
