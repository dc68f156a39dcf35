//! Backup storage locations. The secret access key is stored sealed and never read back
//! through the API.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Conn, Page};

#[derive(Debug, Clone)]
pub struct LocationRow {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key_enc: String,
    pub created_at: i64,
}

fn from_row(row: &AnyRow) -> Result<LocationRow, sqlx::Error> {
    Ok(LocationRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        endpoint: row.try_get("endpoint")?,
        bucket: row.try_get("bucket")?,
        region: row.try_get("region")?,
        access_key_id: row.try_get("access_key_id")?,
        secret_access_key_enc: row.try_get("secret_access_key_enc")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &LocationRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO backup_storage_locations (id, name, endpoint, bucket, region, access_key_id, secret_access_key_enc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.endpoint)
    .bind(&row.bucket)
    .bind(&row.region)
    .bind(&row.access_key_id)
    .bind(&row.secret_access_key_enc)
    .bind(row.created_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn find(c: &mut Conn, reference: &str) -> Result<Option<LocationRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM backup_storage_locations WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
    )
    .bind(reference)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub async fn list(c: &mut Conn, page: Page) -> Result<Vec<LocationRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM backup_storage_locations ORDER BY name LIMIT $1 OFFSET $2")
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(c)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn users(c: &mut Conn, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM environments WHERE bsl_id = $1")
        .bind(id)
        .fetch_one(c)
        .await?
        .try_get("n")
}

/// Moves a location to another endpoint (`styrmin up`'s local store after a restart on
/// another port).
pub async fn set_endpoint(c: &mut Conn, id: &str, endpoint: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backup_storage_locations SET endpoint = $1 WHERE id = $2")
        .bind(endpoint)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM backup_storage_locations WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}
