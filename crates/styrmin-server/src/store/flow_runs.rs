//! Flow runs (the queue of recorded intent) and their log lines.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use styrmin_core::planner::FlowKind;

use super::{Backend, Conn, Page, json_col, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "lowercase")]
pub enum RunState {
    Scheduled,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "scheduled" => RunState::Scheduled,
            "running" => RunState::Running,
            "completed" => RunState::Completed,
            "failed" => RunState::Failed,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Cancelled
        )
    }
}

#[derive(Debug, Clone)]
pub struct FlowRunRow {
    pub id: String,
    pub deployment_id: Option<String>,
    pub cluster_id: String,
    pub position: i64,
    pub kind: FlowKind,
    pub state: RunState,
    pub attempt: i64,
    pub max_attempts: i64,
    pub instance_id: Option<String>,
    pub payload: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    #[allow(
        dead_code,
        reason = "the server holding the lease, read when diagnosing in the database"
    )]
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

fn bad(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: format!("unexpected value `{value}`").into(),
    }
}

fn from_row(row: &AnyRow) -> Result<FlowRunRow, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(FlowRunRow {
        id: row.try_get("id")?,
        deployment_id: row.try_get("deployment_id")?,
        cluster_id: row.try_get("cluster_id")?,
        position: row.try_get("position")?,
        kind: kind.parse().map_err(|_| bad("kind", &kind))?,
        state: RunState::parse(&state).ok_or_else(|| bad("state", &state))?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        instance_id: row.try_get("instance_id")?,
        payload: json_col(row, "payload")?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| sqlx::Error::ColumnDecode {
                index: "result".into(),
                source: Box::new(e),
            })?,
        error: row.try_get("error")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(c: &mut Conn, row: &FlowRunRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO flow_runs (id, deployment_id, cluster_id, position, kind, state, attempt, max_attempts, instance_id, payload, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.id)
    .bind(row.deployment_id.as_deref())
    .bind(&row.cluster_id)
    .bind(row.position)
    .bind(row.kind.as_str())
    .bind(row.state.as_str())
    .bind(row.attempt)
    .bind(row.max_attempts)
    .bind(row.instance_id.as_deref())
    .bind(to_json(&row.payload))
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn get(c: &mut Conn, id: &str) -> Result<Option<FlowRunRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM flow_runs WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub deployment_id: Option<String>,
    pub cluster_id: Option<String>,
    pub state: Option<RunState>,
}

/// Newest first.
pub async fn list(c: &mut Conn, f: &Filter, page: Page) -> Result<Vec<FlowRunRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM flow_runs WHERE ($1 = '' OR deployment_id = $1) AND ($2 = '' OR cluster_id = $2) AND ($3 = '' OR state = $3) ORDER BY created_at DESC, position DESC LIMIT $4 OFFSET $5",
    )
    .bind(f.deployment_id.as_deref().unwrap_or(""))
    .bind(f.cluster_id.as_deref().unwrap_or(""))
    .bind(f.state.map(RunState::as_str).unwrap_or(""))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// A deployment's runs that are scheduled or running, in queue order.
pub async fn open_for_deployment(
    c: &mut Conn,
    deployment_id: &str,
) -> Result<Vec<FlowRunRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM flow_runs WHERE deployment_id = $1 AND state IN ('scheduled', 'running') ORDER BY position",
    )
    .bind(deployment_id)
    .fetch_all(c)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// The deployment's latest run, whatever its state.
pub async fn latest_for_deployment(
    c: &mut Conn,
    deployment_id: &str,
) -> Result<Option<FlowRunRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM flow_runs WHERE deployment_id = $1 ORDER BY position DESC LIMIT 1")
        .bind(deployment_id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Moves a still-scheduled run to `cancelled`.
pub async fn cancel(c: &mut Conn, id: &str, reason: &str, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE flow_runs SET state = 'cancelled', error = $1, finished_at = $2, updated_at = $2 WHERE id = $3 AND state = 'scheduled'",
    )
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(c)
    .await?
    .rows_affected())
}

/// The claimable runs of a cluster: scheduled, and first in their deployment's queue.
const CANDIDATES: &str = "SELECT r.id FROM flow_runs r WHERE r.cluster_id = $1 AND r.state = 'scheduled' AND NOT EXISTS (SELECT 1 FROM flow_runs o WHERE o.deployment_id = r.deployment_id AND o.state IN ('scheduled', 'running') AND o.position < r.position) ORDER BY r.created_at, r.position LIMIT $2";

/// Leases up to `max` runs to `owner` until `lease_until`. The caller's transaction must
/// write (see `Db::write`); on PostgreSQL, `SKIP LOCKED` lets several servers claim at once
/// without handing one run out twice.
pub async fn claim(
    c: &mut Conn,
    backend: Backend,
    cluster_id: &str,
    max: i64,
    owner: &str,
    now: i64,
    lease_until: i64,
) -> Result<Vec<FlowRunRow>, sqlx::Error> {
    let candidates = match backend {
        Backend::Postgres => format!("{CANDIDATES} FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => CANDIDATES.to_owned(),
    };
    let ids: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(candidates))
        .bind(cluster_id)
        .bind(max)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let updated = sqlx::query(
            "UPDATE flow_runs SET state = 'running', lease_owner = $1, lease_expires_at = $2, started_at = $3, updated_at = $3 WHERE id = $4 AND state = 'scheduled'",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(&id)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if updated == 1
            && let Some(run) = get(c, &id).await?
        {
            claimed.push(run);
        }
    }
    Ok(claimed)
}

/// Extends the lease of the attempt that holds it; 0 rows when the lease was lost.
pub async fn heartbeat(
    c: &mut Conn,
    id: &str,
    attempt: i64,
    lease_until: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE flow_runs SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND attempt = $4 AND state = 'running'",
    )
    .bind(lease_until)
    .bind(now)
    .bind(id)
    .bind(attempt)
    .execute(c)
    .await?
    .rows_affected())
}

/// Ends the running attempt; 0 rows when that attempt no longer holds the run.
pub async fn finish(
    c: &mut Conn,
    id: &str,
    attempt: i64,
    state: RunState,
    result: Option<&Value>,
    error: Option<&str>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE flow_runs SET state = $1, result = $2, error = $3, lease_owner = NULL, lease_expires_at = NULL, finished_at = $4, updated_at = $4 WHERE id = $5 AND attempt = $6 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(result.map(to_json))
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(attempt)
    .execute(c)
    .await?
    .rows_affected())
}

/// Running runs whose lease ran out.
pub async fn expired(c: &mut Conn, now: i64) -> Result<Vec<FlowRunRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM flow_runs WHERE state = 'running' AND lease_expires_at < $1")
        .bind(now)
        .fetch_all(c)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Why a running attempt goes back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Its lease expired: the attempt counts against `max_attempts`.
    LeaseExpired,
    /// Its agent handed it back on shutdown: nothing failed, so the run gets one more.
    HandedBack,
}

/// Puts a running attempt back in the queue under the next attempt; 0 rows when that
/// attempt no longer holds the run.
pub async fn reschedule(
    c: &mut Conn,
    id: &str,
    attempt: i64,
    why: Requeue,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE flow_runs SET state = 'scheduled', attempt = attempt + 1, max_attempts = max_attempts + $1, lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 WHERE id = $3 AND attempt = $4 AND state = 'running'",
    )
    .bind(i64::from(why == Requeue::HandedBack))
    .bind(now)
    .bind(id)
    .bind(attempt)
    .execute(c)
    .await?
    .rows_affected())
}

/// A run that failed is scheduled again as a new attempt (`retry`).
pub async fn retry(c: &mut Conn, id: &str, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE flow_runs SET state = 'scheduled', attempt = attempt + 1, max_attempts = max_attempts + 1, error = NULL, result = NULL, finished_at = NULL, updated_at = $1 WHERE id = $2 AND state = 'failed'",
    )
    .bind(now)
    .bind(id)
    .execute(c)
    .await?
    .rows_affected())
}

/// One group of [`counts`]: a cluster's runs of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    /// The cluster's name.
    pub cluster: String,
    /// `None` (with `count` 0) for a cluster without runs.
    pub kind: Option<String>,
    pub state: Option<String>,
    pub count: i64,
}

/// Runs counted by cluster, kind and state in one query (for `/metrics`); every cluster
/// appears, one without runs once with no kind or state.
pub async fn counts(c: &mut Conn) -> Result<Vec<RunCount>, sqlx::Error> {
    sqlx::query(
        "SELECT c.name AS cluster, r.kind AS kind, r.state AS state, COUNT(r.id) AS n FROM clusters c LEFT JOIN flow_runs r ON r.cluster_id = c.id GROUP BY c.name, r.kind, r.state",
    )
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| {
        Ok(RunCount {
            cluster: r.try_get("cluster")?,
            kind: r.try_get("kind")?,
            state: r.try_get("state")?,
            count: r.try_get("n")?,
        })
    })
    .collect()
}

// ---- Logs ----

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub attempt: i64,
    pub at: i64,
    pub level: String,
    pub message: String,
}

pub async fn append_logs(
    c: &mut Conn,
    run_id: &str,
    attempt: i64,
    lines: &[(i64, String, String)],
) -> Result<i64, sqlx::Error> {
    let mut seq: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM flow_run_logs WHERE flow_run_id = $1")
            .bind(run_id)
            .fetch_one(&mut *c)
            .await?
            .try_get("n")?;
    for (at, level, message) in lines {
        seq += 1;
        sqlx::query(
            "INSERT INTO flow_run_logs (flow_run_id, seq, attempt, at, level, message) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(seq)
        .bind(attempt)
        .bind(at)
        .bind(level)
        .bind(message)
        .execute(&mut *c)
        .await?;
    }
    Ok(seq)
}

pub async fn logs(
    c: &mut Conn,
    run_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<LogLine>, sqlx::Error> {
    sqlx::query(
        "SELECT seq, attempt, at, level, message FROM flow_run_logs WHERE flow_run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(run_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| {
        Ok(LogLine {
            seq: r.try_get("seq")?,
            attempt: r.try_get("attempt")?,
            at: r.try_get("at")?,
            level: r.try_get("level")?,
            message: r.try_get("message")?,
        })
    })
    .collect()
}
