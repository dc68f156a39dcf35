//! Web UI sessions: a hashed secret bound to the API token that signed in, until it
//! expires, is signed out, or its token is revoked.

use sqlx::Row as _;

use super::Conn;
use crate::auth::Role;

pub async fn insert(
    c: &mut Conn,
    id: &str,
    hash: &str,
    token_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ui_sessions (id, hash, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(hash)
    .bind(token_id)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// The caller of a live session: its token's name, role and cluster.
pub struct SessionOwner {
    pub name: String,
    pub role: Role,
    pub cluster_id: Option<String>,
}

/// The owner of the unexpired session with `hash`, when its token still exists.
pub async fn live(c: &mut Conn, hash: &str, now: i64) -> Result<Option<SessionOwner>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.name, t.role, t.cluster_id FROM ui_sessions s JOIN tokens t ON t.id = s.token_id WHERE s.hash = $1 AND s.expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let role: String = row.try_get("role")?;
    Ok(Some(SessionOwner {
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::ColumnDecode {
                index: "role".into(),
                source: e.into(),
            })?,
        cluster_id: row.try_get("cluster_id")?,
    }))
}

/// Ends the session with `hash` (sign-out), and any expired ones.
pub async fn delete(c: &mut Conn, hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE hash = $1 OR expires_at <= $2")
        .bind(hash)
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

/// Forgets expired sessions.
pub async fn prune(c: &mut Conn, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

/// Ends every session of a revoked token.
pub async fn delete_for_token(c: &mut Conn, token_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE token_id = $1")
        .bind(token_id)
        .execute(c)
        .await?;
    Ok(())
}
