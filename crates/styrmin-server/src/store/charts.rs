//! Charts served as a Helm repository.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Conn, json_col, to_json};

#[derive(Debug, Clone)]
pub struct ChartRow {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub metadata: Value,
    pub created_at: i64,
}

fn from_row(row: &AnyRow) -> Result<ChartRow, sqlx::Error> {
    Ok(ChartRow {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        metadata: json_col(row, "metadata")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn get(c: &mut Conn, name: &str, version: &str) -> Result<Option<ChartRow>, sqlx::Error> {
    sqlx::query("SELECT name, version, digest, metadata, created_at FROM charts WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn insert(c: &mut Conn, row: &ChartRow, archive: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO charts (name, version, digest, metadata, archive, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&row.name)
        .bind(&row.version)
        .bind(&row.digest)
        .bind(to_json(&row.metadata))
        .bind(archive)
        .bind(row.created_at)
        .execute(c)
        .await?;
    Ok(())
}

/// Every chart, by name then version.
pub async fn list(c: &mut Conn) -> Result<Vec<ChartRow>, sqlx::Error> {
    sqlx::query("SELECT name, version, digest, metadata, created_at FROM charts ORDER BY name, created_at DESC")
        .fetch_all(c)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn archive(
    c: &mut Conn,
    name: &str,
    version: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("SELECT archive FROM charts WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(c)
        .await?
        .map(|row| row.try_get::<Vec<u8>, _>("archive"))
        .transpose()
}
