//! Backup schedules (SPEC §9): each environment with a cron expression is backed up when
//! its next due time passes. Every server looks; the one whose conditional UPDATE moves
//! the due time on acts, in the same transaction as the backup it records, so with
//! several servers on one PostgreSQL exactly one backup is taken per due time.

use std::time::Duration;

use serde_json::json;
use styrmin_core::cron::Schedule;

use super::backups;
use crate::auth::{Principal, Role};
use crate::error::ApiResult;
use crate::events::Event;
use crate::ids::now_ms;
use crate::state::AppState;
use crate::store::environments::EnvironmentRow;
use crate::store::{audit, environments};

/// Who the audit log names for scheduled backups.
fn scheduler() -> Principal {
    Principal {
        name: "scheduler".into(),
        role: Role::Admin,
        cluster_id: None,
    }
}

/// Takes the backups due at `now`; returns how many this server took.
pub async fn run_due(s: &AppState, now: i64) -> ApiResult<usize> {
    let due = {
        let mut c = s.db.read().await?;
        environments::due_schedules(&mut c, now).await?
    };
    let mut taken = 0;
    for env in due {
        if take(s, &env, now).await? {
            taken += 1;
        }
    }
    Ok(taken)
}

/// One environment's due backup, when this server wins it.
async fn take(s: &AppState, env: &EnvironmentRow, now: i64) -> ApiResult<bool> {
    let (Some(text), Some(due)) = (&env.backup_schedule, env.backup_next_at) else {
        return Ok(false);
    };
    let next = Schedule::parse(text).ok().and_then(|c| c.next_after(now));
    let mut tx = s.db.write().await?;
    if environments::take_due(&mut tx, &env.id, due, next).await? != 1 {
        return Ok(false);
    }
    match backups::backup_environment(&mut tx, s, env).await {
        Ok(row) => {
            audit::commit(
                tx,
                &scheduler(),
                "createBackup",
                "backup",
                &row.id,
                json!({"environment": env.id, "schedule": text}),
            )
            .await?;
            let mut c = s.db.read().await?;
            s.events
                .publish(
                    &mut c,
                    Event::RunsScheduled {
                        cluster_id: env.cluster_id.clone(),
                    },
                )
                .await;
            Ok(true)
        }
        Err(refusal) => {
            // Nothing of the backup is kept; the due time still moves on, and the
            // refusal is recorded where an admin looks.
            tx.rollback().await?;
            tracing::warn!(environment = %env.name, error = %refusal, "scheduled backup refused");
            let mut tx = s.db.write().await?;
            if environments::take_due(&mut tx, &env.id, due, next).await? == 1 {
                audit::commit(
                    tx,
                    &scheduler(),
                    "scheduledBackupRefused",
                    "environment",
                    &env.id,
                    json!({"schedule": text, "error": refusal.to_string()}),
                )
                .await?;
            }
            Ok(false)
        }
    }
}

/// Looks for due schedules every `tick` until the process ends.
pub async fn scheduler_loop(s: AppState, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        if let Err(e) = run_due(&s, now_ms()).await {
            tracing::warn!(error = %e, "cannot run backup schedules");
        }
    }
}
