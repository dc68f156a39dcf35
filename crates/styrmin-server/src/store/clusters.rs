//! Registered clusters.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Conn, Page, json_col, to_json};

#[derive(Debug, Clone)]
pub struct ClusterRow {
    pub id: String,
    pub name: String,
    pub config: Value,
    pub agent_token_id: String,
    pub agent_last_seen: Option<i64>,
    pub agent_version: Option<String>,
    /// The protocol version the agent last spoke.
    pub agent_protocol: Option<String>,
    /// Why the server last refused the agent; cleared when it is accepted.
    pub agent_refusal: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn from_row(row: &AnyRow) -> Result<ClusterRow, sqlx::Error> {
    Ok(ClusterRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        config: json_col(row, "config")?,
        agent_token_id: row.try_get("agent_token_id")?,
        agent_last_seen: row.try_get("agent_last_seen")?,
        agent_version: row.try_get("agent_version")?,
        agent_protocol: row.try_get("agent_protocol")?,
        agent_refusal: row.try_get("agent_refusal")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &ClusterRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO clusters (id, name, config, agent_token_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(to_json(&row.config))
    .bind(&row.agent_token_id)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(c)
    .await?;
    Ok(())
}

/// The clusters with these ids (in no particular order).
pub async fn get_many(c: &mut Conn, ids: &[String]) -> Result<Vec<ClusterRow>, sqlx::Error> {
    super::by_ids(
        c,
        "SELECT * FROM clusters WHERE id IN ({ids})",
        ids,
        from_row,
    )
    .await
}

/// By id, or by name when no id matches.
pub async fn find(c: &mut Conn, reference: &str) -> Result<Option<ClusterRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM clusters WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1")
        .bind(reference)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn list(c: &mut Conn, page: Page) -> Result<Vec<ClusterRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM clusters ORDER BY name LIMIT $1 OFFSET $2")
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
    sqlx::query("UPDATE clusters SET name = $1, config = $2, updated_at = $3 WHERE id = $4")
        .bind(name)
        .bind(to_json(config))
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// What an agent says of itself when it calls in.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentCall<'a> {
    pub version: Option<&'a str>,
    pub protocol: Option<&'a str>,
    /// Set when the server refuses the agent (an incompatible protocol).
    pub refusal: Option<&'a str>,
}

/// The agent claimed runs: its heartbeat, what it runs, and whether it was refused (a
/// refusal is kept until a claim is accepted). Versions are kept when it does not say them.
pub async fn agent_claimed(
    c: &mut Conn,
    id: &str,
    call: AgentCall<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE clusters SET agent_last_seen = $1, agent_version = COALESCE($2, agent_version), \
         agent_protocol = COALESCE($3, agent_protocol), agent_refusal = $4 WHERE id = $5",
    )
    .bind(now)
    .bind(call.version)
    .bind(call.protocol)
    .bind(call.refusal)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// The agent reported: its heartbeat alone.
pub async fn agent_heard(c: &mut Conn, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE clusters SET agent_last_seen = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM clusters WHERE id = $1")
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}
