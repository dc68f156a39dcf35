//! The audit log: one row per mutation, written in the mutation's own transaction.

use serde_json::Value;
use sqlx::Row as _;

use super::{Conn, Page, json_col, to_json};
use crate::auth::Principal;
use crate::ids::{new_id, now_ms};

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub detail: Value,
}

pub async fn record(
    c: &mut Conn,
    who: &Principal,
    action: &str,
    target_kind: &str,
    target_id: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, role, action, target_kind, target_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(now_ms())
    .bind(&who.name)
    .bind(who.role.as_str())
    .bind(action)
    .bind(target_kind)
    .bind(target_id)
    .bind(to_json(&detail))
    .execute(c)
    .await?;
    Ok(())
}

/// Records the mutation and commits the transaction that made it: the audit row and the
/// change land together or not at all.
pub async fn commit(
    mut tx: super::Tx,
    who: &Principal,
    action: &str,
    target_kind: &str,
    target_id: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    record(&mut tx, who, action, target_kind, target_id, detail).await?;
    tx.commit().await
}

/// Newest first.
pub async fn list(
    c: &mut Conn,
    target_id: Option<&str>,
    page: Page,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM audit_log WHERE ($1 = '' OR target_id = $1) ORDER BY at DESC, id LIMIT $2 OFFSET $3",
    )
    .bind(target_id.unwrap_or(""))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(|row| {
        Ok(AuditRow {
            id: row.try_get("id")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            role: row.try_get("role")?,
            action: row.try_get("action")?,
            target_kind: row.try_get("target_kind")?,
            target_id: row.try_get("target_id")?,
            detail: json_col(row, "detail")?,
        })
    })
    .collect()
}
