//! Observed state reported by agents: pods and deployment statuses (latest only).

use serde_json::Value;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use styrmin_core::protocol::PodReport;

use super::{Conn, json_col, to_json};

#[derive(Debug, Clone)]
pub struct PodRow {
    pub cluster_id: String,
    /// The pod as its agent last reported it.
    pub pod: PodReport,
    pub reported_at: i64,
}

fn pod_from_row(row: &AnyRow) -> Result<PodRow, sqlx::Error> {
    Ok(PodRow {
        cluster_id: row.try_get("cluster_id")?,
        pod: PodReport {
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
            deployment_id: row.try_get("deployment_id")?,
            component: row.try_get("component")?,
            phase: row.try_get("phase")?,
            ready: row.try_get::<i64, _>("ready")? != 0,
            restarts: row.try_get("restarts")?,
            node: row.try_get("node")?,
            ip: row.try_get("ip")?,
            // Written from the same type; a row that does not read shows no containers.
            containers: serde_json::from_value(json_col(row, "containers")?).unwrap_or_default(),
            started_at: row.try_get("started_at")?,
        },
        reported_at: row.try_get("reported_at")?,
    })
}

/// Rows per INSERT: 13 parameters each stays far below both databases' limits.
const UPSERT_BATCH: usize = 400;

/// Inserts or replaces pods, in batches of multi-row upserts.
pub async fn upsert_pods(c: &mut Conn, pods: &[PodRow]) -> Result<(), sqlx::Error> {
    for batch in pods.chunks(UPSERT_BATCH) {
        let mut sql = String::from(
            "INSERT INTO pod_statuses (cluster_id, namespace, name, deployment_id, component, phase, ready, restarts, node, ip, containers, started_at, reported_at) VALUES ",
        );
        for i in 0..batch.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for col in 0..13 {
                if col > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i * 13 + col + 1));
            }
            sql.push(')');
        }
        sql.push_str(
            " ON CONFLICT (cluster_id, namespace, name) DO UPDATE SET deployment_id = excluded.deployment_id, component = excluded.component, phase = excluded.phase, ready = excluded.ready, restarts = excluded.restarts, node = excluded.node, ip = excluded.ip, containers = excluded.containers, started_at = excluded.started_at, reported_at = excluded.reported_at",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in batch {
            let p = &row.pod;
            q = q
                .bind(&row.cluster_id)
                .bind(&p.namespace)
                .bind(&p.name)
                .bind(p.deployment_id.as_deref())
                .bind(p.component.as_deref())
                .bind(&p.phase)
                .bind(i64::from(p.ready))
                .bind(p.restarts)
                .bind(p.node.as_deref())
                .bind(p.ip.as_deref())
                .bind(to_json(
                    &serde_json::to_value(&p.containers).unwrap_or_default(),
                ))
                .bind(p.started_at.as_deref())
                .bind(row.reported_at);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

pub async fn remove_pod(
    c: &mut Conn,
    cluster_id: &str,
    namespace: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pod_statuses WHERE cluster_id = $1 AND namespace = $2 AND name = $3")
        .bind(cluster_id)
        .bind(namespace)
        .bind(name)
        .execute(c)
        .await?;
    Ok(())
}

/// After a full snapshot: forgets pods of the cluster the snapshot did not mention.
pub async fn remove_pods_reported_before(
    c: &mut Conn,
    cluster_id: &str,
    reported_at: i64,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM pod_statuses WHERE cluster_id = $1 AND reported_at < $2")
            .bind(cluster_id)
            .bind(reported_at)
            .execute(c)
            .await?
            .rows_affected(),
    )
}

pub async fn pods_of_deployment(
    c: &mut Conn,
    deployment_id: &str,
) -> Result<Vec<PodRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM pod_statuses WHERE deployment_id = $1 ORDER BY namespace, name")
        .bind(deployment_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(pod_from_row)
        .collect()
}

pub async fn pods(
    c: &mut Conn,
    cluster_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PodRow>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM pod_statuses WHERE ($1 = '' OR cluster_id = $1) ORDER BY cluster_id, namespace, name LIMIT $2 OFFSET $3",
    )
    .bind(cluster_id.unwrap_or(""))
    .bind(limit)
    .bind(offset)
    .fetch_all(c)
    .await?
    .iter()
    .map(pod_from_row)
    .collect()
}

#[derive(Debug, Clone)]
pub struct DeploymentStatusRow {
    pub deployment_id: String,
    pub cluster_id: String,
    pub status: String,
    pub message: Option<String>,
    pub instance_id: Option<String>,
    pub components: Value,
    pub urls: Vec<String>,
    pub reported_at: i64,
}

fn status_from_row(row: &AnyRow) -> Result<DeploymentStatusRow, sqlx::Error> {
    Ok(DeploymentStatusRow {
        deployment_id: row.try_get("deployment_id")?,
        cluster_id: row.try_get("cluster_id")?,
        status: row.try_get("status")?,
        message: row.try_get("message")?,
        instance_id: row.try_get("instance_id")?,
        components: json_col(row, "components")?,
        urls: json_col(row, "urls")?,
        reported_at: row.try_get("reported_at")?,
    })
}

pub async fn upsert_status(c: &mut Conn, s: &DeploymentStatusRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deployment_statuses (deployment_id, cluster_id, status, message, instance_id, components, urls, reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (deployment_id) DO UPDATE SET status = excluded.status, message = excluded.message, instance_id = excluded.instance_id, components = excluded.components, urls = excluded.urls, reported_at = excluded.reported_at",
    )
    .bind(&s.deployment_id)
    .bind(&s.cluster_id)
    .bind(&s.status)
    .bind(s.message.as_deref())
    .bind(s.instance_id.as_deref())
    .bind(to_json(&s.components))
    .bind(to_json(&s.urls))
    .bind(s.reported_at)
    .execute(c)
    .await?;
    Ok(())
}

/// How many live deployments of the environment have each status, in one query: the
/// status reported, else FAILED after a failed run, else PENDING (as a deployment's own
/// status reads while its agent is online).
pub async fn counts_in_environment(
    c: &mut Conn,
    environment_id: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT CASE WHEN s.status IS NOT NULL THEN s.status WHEN d.last_error IS NOT NULL THEN 'FAILED' ELSE 'PENDING' END AS observed, COUNT(*) AS n \
         FROM deployments d LEFT JOIN deployment_statuses s ON s.deployment_id = d.id \
         WHERE d.environment_id = $1 AND d.deleted_at IS NULL GROUP BY 1 ORDER BY 1",
    )
    .bind(environment_id)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("observed")?, r.try_get("n")?)))
        .collect()
}

/// The latest reports of these deployments (those that have one).
pub async fn statuses_of(
    c: &mut Conn,
    deployment_ids: &[String],
) -> Result<Vec<DeploymentStatusRow>, sqlx::Error> {
    super::by_ids(
        c,
        "SELECT * FROM deployment_statuses WHERE deployment_id IN ({ids})",
        deployment_ids,
        status_from_row,
    )
    .await
}

/// Ids of the cluster's live deployments: what its agent may report on.
pub async fn deployment_ids_of_cluster(
    c: &mut Conn,
    cluster_id: &str,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    sqlx::query("SELECT id FROM deployments WHERE cluster_id = $1")
        .bind(cluster_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}
