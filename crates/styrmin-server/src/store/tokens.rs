//! API tokens: only their hashes are stored.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Conn;
use crate::auth::Role;
use crate::ids::now_ms;

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub cluster_id: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<TokenRow, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::ColumnDecode {
                index: "role".into(),
                source: e.into(),
            })?,
        cluster_id: row.try_get("cluster_id")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

const COLUMNS: &str = "id, name, role, cluster_id, created_at, last_used_at";

pub async fn insert(
    c: &mut Conn,
    id: &str,
    name: &str,
    role: Role,
    cluster_id: Option<&str>,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tokens (id, name, role, cluster_id, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(name)
    .bind(role.as_str())
    .bind(cluster_id)
    .bind(hash)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(())
}

pub async fn by_hash(c: &mut Conn, hash: &str) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tokens WHERE hash = $1"
    )))
    .bind(hash)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub async fn by_name(c: &mut Conn, name: &str) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tokens WHERE name = $1 OR id = $1"
    )))
    .bind(name)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub async fn list(c: &mut Conn) -> Result<Vec<TokenRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tokens ORDER BY created_at, name"
    )))
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn set_hash(c: &mut Conn, id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tokens SET hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Records use at most once a minute per token, so reads stay reads.
pub async fn touch(c: &mut Conn, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - 60_000)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn delete(c: &mut Conn, id: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM tokens WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?
        .rows_affected())
}

/// True when `id` is the token a cluster was registered with (`clusters.agent_token_id`).
pub async fn is_cluster_agent_token(c: &mut Conn, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM clusters WHERE agent_token_id = $1")
            .bind(id)
            .fetch_optional(c)
            .await?;
    Ok(found.is_some())
}
