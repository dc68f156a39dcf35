//! The flow-run queue seen from the agent: leased claims with a long-poll, heartbeats,
//! logs, completion and failure; and the reaper that puts runs of dead agents back in line.

use std::time::Duration;

use serde_json::Value;
use styrmin_core::protocol::PROTOCOL_VERSION;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::{Event, wait_for};
use crate::ids::now_ms;
use crate::reconcile;
use crate::services::backups;
use crate::state::AppState;
use crate::store::clusters::AgentCall;
use crate::store::flow_runs::{self, FlowRunRow, LogLine, Requeue, RunState};
use crate::store::{Tx, clusters};

/// Longest single log line kept; agents may send a whole traceback, not a whole file.
const MAX_LOG_LINE: usize = 16 * 1024;

/// What an agent says of itself when it claims.
#[derive(Debug, Clone, Copy, Default)]
pub struct Agent<'a> {
    pub version: Option<&'a str>,
    /// The protocol version it speaks; another major than ours is refused.
    pub protocol: Option<&'a str>,
}

/// The longest version an agent may report.
const MAX_VERSION_TEXT: usize = 64;

/// What an agent says of its versions is stored and shown: a short version text
/// (`1.2.3-rc.1+build`), nothing else.
fn check_version_text(field: &str, text: Option<&str>) -> ApiResult<()> {
    let Some(text) = text else { return Ok(()) };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_');
    if text.is_empty() || text.len() > MAX_VERSION_TEXT || !text.chars().all(allowed) {
        return Err(ApiError::field(
            field,
            format!(
                "must be a version of at most {MAX_VERSION_TEXT} characters among letters, digits and `.-+_`"
            ),
        ));
    }
    Ok(())
}

/// `claimFlowRuns`: leases up to `max` scheduled runs of the agent's cluster, waiting up to
/// `wait` for one. An agent of another protocol major is refused (and the refusal is kept on
/// its cluster for the UI and the API).
pub async fn claim(
    s: &AppState,
    who: &Principal,
    max: i64,
    wait: Duration,
    agent: Agent<'_>,
) -> ApiResult<Vec<FlowRunRow>> {
    let cluster_id = who.agent_cluster()?.to_owned();
    check_version_text("agentVersion", agent.version)?;
    check_version_text("protocolVersion", agent.protocol)?;
    let started = Instant::now();
    let refusal = PROTOCOL_VERSION.accepts(agent.protocol).err();
    let max = max.clamp(1, 100);
    let wait = wait.min(s.settings.max_claim_wait);
    let deadline = Instant::now() + wait;
    // Subscribe before looking, so a run scheduled between the look and the wait still
    // wakes us.
    let mut events = s.events.subscribe();
    {
        let mut c = s.db.read().await?;
        let message = refusal.as_ref().map(ToString::to_string);
        let call = AgentCall {
            version: agent.version,
            protocol: agent.protocol,
            refusal: message.as_deref(),
        };
        clusters::agent_claimed(&mut c, &cluster_id, call, now_ms()).await?;
    }
    if let Some(refusal) = refusal {
        return Err(ApiError::Conflict(refusal.to_string()));
    }
    loop {
        reap_expired(s).await?;
        let claimed = try_claim(s, &cluster_id, max, &who.name).await?;
        if !claimed.is_empty() || Instant::now() >= deadline {
            s.metrics.claimed(started.elapsed(), &claimed, now_ms());
            return Ok(claimed);
        }
        // Wake on our cluster's events; also re-look every `recheck`, which covers leases
        // expiring and a lost LISTEN connection.
        let tick = (deadline - Instant::now()).min(s.settings.recheck);
        wait_for(
            &mut events,
            tick,
            |e| matches!(e, Event::RunsScheduled { cluster_id: c } if *c == cluster_id),
        )
        .await;
    }
}

async fn try_claim(
    s: &AppState,
    cluster_id: &str,
    max: i64,
    owner: &str,
) -> ApiResult<Vec<FlowRunRow>> {
    let now = now_ms();
    let lease_until = now + s.settings.lease.as_millis() as i64;
    let mut tx = s.db.write().await?;
    let owner = format!("{owner}@{}", s.settings.server_id);
    let claimed = flow_runs::claim(
        &mut tx,
        s.db.backend(),
        cluster_id,
        max,
        &owner,
        now,
        lease_until,
    )
    .await?;
    for run in &claimed {
        backups::on_claimed(&mut tx, run).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Runs whose agent stopped heartbeating: back to `scheduled` under the next attempt, or
/// `failed` once the attempts are used up. Safe to run on every server at once: each
/// change is conditional on the state it read.
pub async fn reap_expired(s: &AppState) -> ApiResult<usize> {
    let now = now_ms();
    let expired = {
        let mut c = s.db.read().await?;
        flow_runs::expired(&mut c, now).await?
    };
    if expired.is_empty() {
        return Ok(0);
    }
    let mut tx = s.db.write().await?;
    let mut changed = 0;
    let mut clusters_woken = Vec::new();
    for run in &expired {
        if run.attempt < run.max_attempts {
            if flow_runs::reschedule(&mut tx, &run.id, run.attempt, Requeue::LeaseExpired, now)
                .await?
                == 1
            {
                changed += 1;
                clusters_woken.push(run.cluster_id.clone());
                log_system(
                    &mut tx,
                    run,
                    &format!(
                        "lease of attempt {} expired (agent lost?); scheduled attempt {}",
                        run.attempt,
                        run.attempt + 1
                    ),
                )
                .await?;
            }
        } else {
            let reason = format!(
                "the agent stopped reporting {} time(s) (lease expired each time); giving up",
                run.attempt
            );
            if flow_runs::finish(
                &mut tx,
                &run.id,
                run.attempt,
                RunState::Failed,
                None,
                Some(&reason),
                now,
            )
            .await?
                == 1
            {
                changed += 1;
                log_system(&mut tx, run, &reason).await?;
                reconcile::settle(&mut tx, run, Some(&reason)).await?;
                backups::on_finished(&mut tx, s, run, Err(&reason)).await?;
            }
        }
    }
    tx.commit().await?;
    let mut c = s.db.read().await?;
    for cluster_id in clusters_woken {
        s.events
            .publish(&mut c, Event::RunsScheduled { cluster_id })
            .await;
    }
    Ok(changed)
}

async fn log_system(tx: &mut Tx, run: &FlowRunRow, message: &str) -> ApiResult<()> {
    flow_runs::append_logs(
        tx,
        &run.id,
        run.attempt,
        &[(now_ms(), "warning".to_owned(), message.to_owned())],
    )
    .await?;
    Ok(())
}

/// Loads a run and checks that the calling agent owns it and that `attempt` still holds it.
async fn owned_run(tx: &mut Tx, who: &Principal, id: &str) -> ApiResult<FlowRunRow> {
    let run = flow_runs::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("flow run", id))?;
    who.agent_for(&run.cluster_id)?;
    Ok(run)
}

fn lease_lost(run: &FlowRunRow, attempt: i64) -> ApiError {
    ApiError::Conflict(format!(
        "flow run {} attempt {attempt} no longer holds the run (it is {} on attempt {})",
        run.id,
        run.state.as_str(),
        run.attempt
    ))
}

pub async fn heartbeat(
    s: &AppState,
    who: &Principal,
    id: &str,
    attempt: i64,
) -> ApiResult<FlowRunRow> {
    let now = now_ms();
    let mut tx = s.db.write().await?;
    let run = owned_run(&mut tx, who, id).await?;
    let until = now + s.settings.lease.as_millis() as i64;
    if flow_runs::heartbeat(&mut tx, id, attempt, until, now).await? != 1 {
        return Err(lease_lost(&run, attempt));
    }
    clusters::agent_heard(&mut tx, &run.cluster_id, now).await?;
    let run = flow_runs::get(&mut tx, id).await?.expect("exists");
    tx.commit().await?;
    Ok(run)
}

pub struct NewLogLine {
    pub at: Option<i64>,
    pub level: String,
    pub message: String,
}

pub async fn append_logs(
    s: &AppState,
    who: &Principal,
    id: &str,
    attempt: i64,
    lines: Vec<NewLogLine>,
) -> ApiResult<i64> {
    let now = now_ms();
    let mut tx = s.db.write().await?;
    let run = owned_run(&mut tx, who, id).await?;
    if run.attempt != attempt {
        return Err(lease_lost(&run, attempt));
    }
    let lines: Vec<(i64, String, String)> = lines
        .into_iter()
        .map(|l| {
            let mut message = l.message;
            if message.len() > MAX_LOG_LINE {
                let mut cut = MAX_LOG_LINE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push_str(" …[truncated]");
            }
            (l.at.unwrap_or(now), l.level, message)
        })
        .collect();
    let last = flow_runs::append_logs(&mut tx, id, attempt, &lines).await?;
    tx.commit().await?;
    let mut c = s.db.read().await?;
    s.events
        .publish(
            &mut c,
            Event::RunLog {
                run_id: id.to_owned(),
            },
        )
        .await;
    Ok(last)
}

/// `releaseFlowRun`: an agent shutting down hands a run back instead of leaving its lease
/// to expire; the run is scheduled again at once under the next attempt. Releasing an
/// attempt that no longer holds the run is a conflict.
pub async fn hand_back(
    s: &AppState,
    who: &Principal,
    id: &str,
    attempt: i64,
    reason: &str,
) -> ApiResult<FlowRunRow> {
    let now = now_ms();
    let mut tx = s.db.write().await?;
    let run = owned_run(&mut tx, who, id).await?;
    if flow_runs::reschedule(&mut tx, id, attempt, Requeue::HandedBack, now).await? != 1 {
        return Err(lease_lost(&run, attempt));
    }
    log_system(
        &mut tx,
        &run,
        &format!(
            "attempt {attempt} handed back by the agent ({reason}); scheduled attempt {}",
            attempt + 1
        ),
    )
    .await?;
    let run = flow_runs::get(&mut tx, id).await?.expect("exists");
    tx.commit().await?;
    let mut c = s.db.read().await?;
    s.events
        .publish(
            &mut c,
            Event::RunsScheduled {
                cluster_id: run.cluster_id.clone(),
            },
        )
        .await;
    Ok(run)
}

/// `completeFlowRun` / `failFlowRun`. Repeating the call for an attempt that already ended
/// the same way returns the run unchanged (the agent may retry after a lost response).
pub async fn finish(
    s: &AppState,
    who: &Principal,
    id: &str,
    attempt: i64,
    outcome: Result<Option<Value>, String>,
) -> ApiResult<FlowRunRow> {
    let now = now_ms();
    let mut tx = s.db.write().await?;
    let run = owned_run(&mut tx, who, id).await?;
    let (state, result, error) = match &outcome {
        Ok(result) => (RunState::Completed, result.as_ref(), None),
        Err(message) => (RunState::Failed, None, Some(message.as_str())),
    };
    if flow_runs::finish(&mut tx, id, attempt, state, result, error, now).await? != 1 {
        if run.attempt == attempt && run.state == state {
            return Ok(run);
        }
        return Err(lease_lost(&run, attempt));
    }
    // Read before settling: the last delete run of an environment deleted with cascade
    // takes the environment, and its runs, with it.
    let finished = flow_runs::get(&mut tx, id).await?.expect("exists");
    reconcile::settle(&mut tx, &run, error).await?;
    let ended = match &outcome {
        Ok(result) => Ok(result.as_ref()),
        Err(message) => Err(message.as_str()),
    };
    backups::on_finished(&mut tx, s, &run, ended).await?;
    clusters::agent_heard(&mut tx, &run.cluster_id, now).await?;
    let run = finished;
    tx.commit().await?;
    let mut c = s.db.read().await?;
    if let Some(deployment_id) = &run.deployment_id {
        s.events
            .publish(
                &mut c,
                Event::Deployment {
                    deployment_id: deployment_id.clone(),
                },
            )
            .await;
    }
    // The next run of this deployment may now be claimable.
    s.events
        .publish(
            &mut c,
            Event::RunsScheduled {
                cluster_id: run.cluster_id.clone(),
            },
        )
        .await;
    Ok(run)
}

pub async fn logs(s: &AppState, run_id: &str, after: i64, limit: i64) -> ApiResult<Vec<LogLine>> {
    let mut c = s.db.read().await?;
    Ok(flow_runs::logs(&mut c, run_id, after, limit.clamp(1, 10_000)).await?)
}

/// Log lines after `after`; when there are none yet and the run is still open, waits up to
/// `wait` for the next ones (a long-poll, for `logs --follow` over plain HTTP).
pub async fn logs_wait(
    s: &AppState,
    run_id: &str,
    after: i64,
    limit: i64,
    wait: Duration,
) -> ApiResult<Vec<LogLine>> {
    let deadline = Instant::now() + wait.min(s.settings.max_claim_wait);
    let mut events = s.events.subscribe();
    loop {
        let lines = logs(s, run_id, after, limit).await?;
        let open = {
            let mut c = s.db.read().await?;
            flow_runs::get(&mut c, run_id)
                .await?
                .is_some_and(|r| !r.state.is_terminal())
        };
        if !lines.is_empty() || !open || Instant::now() >= deadline {
            return Ok(lines);
        }
        let tick = (deadline - Instant::now()).min(s.settings.recheck);
        wait_for(&mut events, tick, |e| run_moved(e, run_id)).await;
    }
}

/// Reaps expired leases every second until the process ends, so runs of a dead agent go
/// back in line even when no agent is claiming.
pub async fn reaper(s: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = reap_expired(&s).await {
            tracing::warn!(error = %e, "cannot reap expired leases");
        }
    }
}

/// Whether an event may mean new log lines or a new state for the run: its own log
/// events, or a change of its deployment (runs end through those).
pub fn run_moved(event: &Event, run_id: &str) -> bool {
    match event {
        Event::RunLog { run_id: r } => r == run_id,
        Event::Deployment { .. } => true,
        Event::RunsScheduled { .. } => false,
    }
}
