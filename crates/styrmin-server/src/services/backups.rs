//! Backups, restores and backup deletions (SPEC §9) as recorded intent: each is a row and
//! a flow run the cluster's agent executes through Velero. The plans come from the
//! deployment's active Instance and its driver version (`styrmin_core::backup_plan`); the
//! runs' outcomes come back through the queue ([`on_claimed`], [`on_finished`],
//! [`on_cancelled`]), in the transaction that records them.
//!
//! An environment backup is one operation over its deployments: a parent row without a
//! deployment, and one backup (row and run) per deployment whose `parent_id` names it; the
//! parent's state and size follow from its parts'.

use serde_json::{Value, json};
use styrmin_core::ApplicationDriver;
use styrmin_core::backup::{
    BackupPayload, BackupResult, BackupState, DeleteBackupPayload, LocationRef, RestoreResult,
    RestoreState, velero_backup_name,
};
use styrmin_core::backup_plan::{self, DriverRef, Location};
use styrmin_core::context::GlobalContext;
use styrmin_core::planner::{FlowKind, Phase};
use styrmin_core::protocol::{BackupRun, DeploymentRef, FlowRunPayload, RestoreRun};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::ids::{new_id, now_ms};
use crate::reconcile;
use crate::resolve;
use crate::state::AppState;
use crate::store::backups::{self, BackupRow, Outcome, RestoreRow};
use crate::store::deployments::{self, DeploymentRow};
use crate::store::drivers::{self, DriverVersionRow};
use crate::store::environments::EnvironmentRow;
use crate::store::flow_runs::{self, FlowRunRow, RunState};
use crate::store::locations::LocationRow;
use crate::store::{Conn, Page, Tx, audit, environments, locations};

/// What [`create_backup`] backs up.
pub enum Scope<'a> {
    Deployment(&'a str),
    Environment(&'a str),
}

/// The command that assigns a location, for the error that says one is missing.
fn no_location(env: &EnvironmentRow) -> ApiError {
    ApiError::Conflict(format!(
        "environment `{}` has no backup storage location: assign one with `styrminctl backup-locations assign {} LOCATION`",
        env.name, env.name
    ))
}

async fn location_of(c: &mut Conn, env: &EnvironmentRow) -> ApiResult<LocationRow> {
    let Some(id) = &env.bsl_id else {
        return Err(no_location(env));
    };
    locations::find(c, id)
        .await?
        .ok_or_else(|| ApiError::not_found("backup storage location", id))
}

fn location_ref(l: &LocationRow, env: &EnvironmentRow) -> LocationRef {
    backup_plan::location_ref(&Location {
        id: &l.id,
        environment_namespace: &env.namespace,
        endpoint: &l.endpoint,
        bucket: &l.bucket,
        region: &l.region,
    })
}

fn spec_of(version: &DriverVersionRow) -> ApiResult<ApplicationDriver> {
    serde_json::from_str(&version.spec).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "stored spec of driver version {} is unreadable: {e}",
            version.id
        ))
    })
}

fn deployment_ref(d: &DeploymentRow) -> DeploymentRef {
    DeploymentRef {
        deployment_id: d.id.clone(),
        deployment_name: d.name.clone(),
        environment_id: d.environment_id.clone(),
        phase: d.phase,
        active_instance_id: d.active_instance_id.clone(),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

/// What a deployment runs now: its active Instance's Context and driver version.
struct Running {
    context: GlobalContext,
    version: DriverVersionRow,
    spec: ApplicationDriver,
}

async fn running(c: &mut Conn, d: &DeploymentRow) -> ApiResult<Running> {
    let Some(instance_id) = &d.active_instance_id else {
        return Err(ApiError::Conflict(format!(
            "deployment `{}` has nothing running to back up or restore into yet: its create run has not completed",
            d.name
        )));
    };
    let instance = deployments::instance(c, instance_id)
        .await?
        .ok_or_else(|| ApiError::not_found("instance", instance_id))?;
    let context: GlobalContext = serde_json::from_value(instance.context).map_err(|e| {
        internal(format!(
            "the Context of instance {instance_id} is unreadable: {e}"
        ))
    })?;
    let version = drivers::version(c, &instance.driver_version_id)
        .await?
        .ok_or_else(|| ApiError::not_found("driver version", &instance.driver_version_id))?;
    let spec = spec_of(&version)?;
    Ok(Running {
        context,
        version,
        spec,
    })
}

fn refuse_if_deleting(d: &DeploymentRow) -> ApiResult<()> {
    if d.phase == Phase::Deleting {
        return Err(ApiError::Conflict(format!(
            "deployment `{}` is being deleted",
            d.name
        )));
    }
    Ok(())
}

/// A backup of one deployment: its row and its `backup` run, queued behind the
/// deployment's other runs.
async fn backup_deployment(
    tx: &mut Tx,
    s: &AppState,
    d: &DeploymentRow,
    env: &EnvironmentRow,
    location: &LocationRow,
    parent_id: Option<&str>,
) -> ApiResult<BackupRow> {
    let now = running(tx, d).await?;
    let id = new_id();
    let backup = backup_plan::backup_payload(
        &id,
        &now.context,
        &DriverRef {
            driver: &now.spec,
            digest: &now.version.digest,
        },
        location_ref(location, env),
    );
    let payload = FlowRunPayload::Backup(BackupRun {
        deployment: deployment_ref(d),
        backup,
    })
    .to_wire();
    let run = reconcile::enqueue(tx, s, d, FlowKind::Backup, None, payload).await?;
    let row = BackupRow {
        id,
        environment_id: env.id.clone(),
        deployment_id: Some(d.id.clone()),
        parent_id: parent_id.map(str::to_owned),
        bsl_id: location.id.clone(),
        state: BackupState::Scheduled,
        size_bytes: None,
        components: json!([]),
        errors: Vec::new(),
        flow_run_id: Some(run.id.clone()),
        driver_version_id: Some(now.version.id.clone()),
        deleting_at: None,
        created_at: now_ms(),
        finished_at: None,
    };
    backups::insert(tx, &row).await?;
    Ok(row)
}

/// `createBackup`: a backup of one deployment, or of every live deployment of an
/// environment as one operation. Refused when the environment has no backup storage
/// location, naming the command that assigns one.
pub async fn create_backup(
    s: &AppState,
    who: &Principal,
    scope: Scope<'_>,
) -> ApiResult<BackupRow> {
    who.can_operate()?;
    let mut tx = s.db.write().await?;
    let (row, clusters) = record_backup(&mut tx, s, scope).await?;
    let parts = match &row.deployment_id {
        Some(_) => Vec::new(),
        None => backups::parts(&mut tx, &row.id).await?,
    };
    audit::commit(
        tx,
        who,
        "createBackup",
        "backup",
        &row.id,
        json!({"environment": row.environment_id, "deployment": row.deployment_id, "parts": parts.iter().map(|p| &p.id).collect::<Vec<_>>()}),
    )
    .await?;
    wake(s, &clusters, &row).await;
    Ok(row)
}

/// Records a backup in `tx`; returns it and the clusters whose agents have work.
async fn record_backup(
    tx: &mut Tx,
    s: &AppState,
    scope: Scope<'_>,
) -> ApiResult<(BackupRow, Vec<String>)> {
    match scope {
        Scope::Deployment(reference) => {
            let d = resolve::deployment(tx, reference).await?;
            refuse_if_deleting(&d)?;
            let env = environments::get(tx, &d.environment_id)
                .await?
                .ok_or_else(|| ApiError::not_found("environment", &d.environment_id))?;
            let location = location_of(tx, &env).await?;
            let row = backup_deployment(tx, s, &d, &env, &location, None).await?;
            Ok((row, vec![env.cluster_id]))
        }
        Scope::Environment(reference) => {
            let env = resolve::environment(tx, reference).await?;
            let row = backup_environment(tx, s, &env).await?;
            Ok((row, vec![env.cluster_id]))
        }
    }
}

/// An environment backup: the parent row and one part per live deployment.
pub async fn backup_environment(
    tx: &mut Tx,
    s: &AppState,
    env: &EnvironmentRow,
) -> ApiResult<BackupRow> {
    if env.deleting_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "environment `{}` is being deleted",
            env.name
        )));
    }
    let location = location_of(tx, env).await?;
    let filter = deployments::Filter {
        environment_id: Some(env.id.clone()),
        ..Default::default()
    };
    let all = deployments::list(
        tx,
        &filter,
        Page {
            limit: 100_000,
            offset: 0,
        },
    )
    .await?;
    let live: Vec<DeploymentRow> = all
        .into_iter()
        .filter(|d| d.phase != Phase::Deleting)
        .collect();
    if live.is_empty() {
        return Err(ApiError::Conflict(format!(
            "environment `{}` has no deployments to back up",
            env.name
        )));
    }
    let parent = BackupRow {
        id: new_id(),
        environment_id: env.id.clone(),
        deployment_id: None,
        parent_id: None,
        bsl_id: location.id.clone(),
        state: BackupState::Scheduled,
        size_bytes: None,
        components: json!([]),
        errors: Vec::new(),
        flow_run_id: None,
        driver_version_id: None,
        deleting_at: None,
        created_at: now_ms(),
        finished_at: None,
    };
    backups::insert(tx, &parent).await?;
    for d in &live {
        backup_deployment(tx, s, d, env, &location, Some(&parent.id)).await?;
    }
    Ok(parent)
}

async fn wake(s: &AppState, clusters: &[String], backup: &BackupRow) {
    let Ok(mut c) = s.db.read().await else { return };
    for cluster_id in clusters {
        s.events
            .publish(
                &mut c,
                Event::RunsScheduled {
                    cluster_id: cluster_id.clone(),
                },
            )
            .await;
    }
    if let Some(d) = &backup.deployment_id {
        s.events
            .publish(
                &mut c,
                Event::Deployment {
                    deployment_id: d.clone(),
                },
            )
            .await;
    }
}

pub async fn find_backup(c: &mut Conn, id: &str) -> ApiResult<BackupRow> {
    backups::get(c, id)
        .await?
        .ok_or_else(|| ApiError::not_found("backup", id))
}

/// The plan a backup was taken with: its run's payload.
async fn source_plan(c: &mut Conn, b: &BackupRow) -> ApiResult<BackupPayload> {
    let Some(run_id) = &b.flow_run_id else {
        return Err(ApiError::Conflict(format!(
            "backup {} is an environment backup: restore its deployments' backups one by one (`styrminctl backups show {}` lists them)",
            b.id, b.id
        )));
    };
    let run = flow_runs::get(c, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("flow run", run_id))?;
    match FlowRunPayload::from_wire(FlowKind::Backup, &run.payload).map_err(internal)? {
        FlowRunPayload::Backup(r) => Ok(r.backup),
        _ => Err(internal(format!("run {run_id} is not a backup run"))),
    }
}

/// The deployment a restore writes into, with the Context and driver version it is
/// planned from.
pub struct RestoreTarget<'a> {
    pub deployment: &'a DeploymentRow,
    pub context: &'a GlobalContext,
    pub version: &'a DriverVersionRow,
}

/// Records a restore of `b` into `target` and queues its run behind the target's other
/// runs. The caller checked the target.
pub async fn record_restore(
    tx: &mut Tx,
    s: &AppState,
    b: &BackupRow,
    target: &RestoreTarget<'_>,
) -> ApiResult<RestoreRow> {
    let source = source_plan(tx, b).await?;
    let spec = spec_of(target.version)?;
    let id = new_id();
    let restore = backup_plan::restore_payload(
        &id,
        &source,
        target.context,
        &DriverRef {
            driver: &spec,
            digest: &target.version.digest,
        },
    );
    let payload = FlowRunPayload::Restore(RestoreRun {
        deployment: deployment_ref(target.deployment),
        restore,
    })
    .to_wire();
    let run =
        reconcile::enqueue(tx, s, target.deployment, FlowKind::Restore, None, payload).await?;
    let row = RestoreRow {
        id,
        backup_id: b.id.clone(),
        target_environment_id: target.deployment.environment_id.clone(),
        target_deployment_id: Some(target.deployment.id.clone()),
        state: RestoreState::Scheduled,
        components: json!([]),
        errors: Vec::new(),
        flow_run_id: Some(run.id),
        created_at: now_ms(),
        finished_at: None,
    };
    backups::insert_restore(tx, &row).await?;
    Ok(row)
}

/// A backup that can be restored: a deployment's, with data (completed or partially
/// failed), not being deleted.
fn restorable(b: &BackupRow) -> ApiResult<()> {
    if b.deployment_id.is_none() {
        return Err(ApiError::Conflict(format!(
            "backup {} is an environment backup: restore its deployments' backups one by one (`styrminctl backups show {}` lists them)",
            b.id, b.id
        )));
    }
    if !matches!(
        b.state,
        BackupState::Completed | BackupState::PartiallyFailed
    ) {
        return Err(ApiError::Conflict(format!(
            "backup {} is {}: only a completed (or partially failed) backup can be restored",
            b.id, b.state
        )));
    }
    if b.deleting_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "backup {} is being deleted",
            b.id
        )));
    }
    Ok(())
}

/// The driver a driver version belongs to.
async fn driver_of(c: &mut Conn, version_id: &str) -> ApiResult<DriverVersionRow> {
    drivers::version(c, version_id)
        .await?
        .ok_or_else(|| ApiError::not_found("driver version", version_id))
}

/// Refuses a restore into a deployment of another driver than the backup's.
pub async fn check_same_driver(
    c: &mut Conn,
    b: &BackupRow,
    target: &DeploymentRow,
    target_version: &DriverVersionRow,
) -> ApiResult<()> {
    let Some(source_version) = &b.driver_version_id else {
        return Ok(());
    };
    let source = driver_of(c, source_version).await?;
    if source.driver_id != target_version.driver_id {
        return Err(ApiError::Conflict(format!(
            "backup {} was taken of driver `{}`, but deployment `{}` runs driver `{}`: a backup restores only into a deployment of the same driver",
            b.id, source.driver_name, target.name, target_version.driver_name
        )));
    }
    Ok(())
}

/// `restoreBackup`: a backup's data back into its own deployment, or into another
/// deployment of the same driver on the same cluster (`to`).
pub async fn restore_backup(
    s: &AppState,
    who: &Principal,
    backup_id: &str,
    to: Option<&str>,
) -> ApiResult<RestoreRow> {
    who.can_operate()?;
    let mut tx = s.db.write().await?;
    let b = find_backup(&mut tx, backup_id).await?;
    restorable(&b)?;
    let target = match to {
        Some(reference) => resolve::deployment(&mut tx, reference).await?,
        None => {
            let id = b.deployment_id.as_deref().expect("checked");
            let d = deployments::get(&mut tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("deployment", id))?;
            if d.deleted_at.is_some() {
                return Err(ApiError::Conflict(format!(
                    "deployment `{}` of backup {} was deleted: restore into another deployment of its driver with --to",
                    d.name, b.id
                )));
            }
            d
        }
    };
    refuse_if_deleting(&target)?;
    let now = running(&mut tx, &target).await?;
    check_same_driver(&mut tx, &b, &target, &now.version).await?;
    let source_env = environments::get(&mut tx, &b.environment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &b.environment_id))?;
    if source_env.cluster_id != target.cluster_id {
        return Err(ApiError::Conflict(format!(
            "backup {} lives in environment `{}` on another cluster than deployment `{}`: restores across clusters are not supported",
            b.id, source_env.name, target.name
        )));
    }
    let row = record_restore(
        &mut tx,
        s,
        &b,
        &RestoreTarget {
            deployment: &target,
            context: &now.context,
            version: &now.version,
        },
    )
    .await?;
    audit::commit(
        tx,
        who,
        "restoreBackup",
        "restore",
        &row.id,
        json!({"backup": b.id, "deployment": target.id}),
    )
    .await?;
    let mut c = s.db.read().await?;
    s.events
        .publish(
            &mut c,
            Event::RunsScheduled {
                cluster_id: target.cluster_id.clone(),
            },
        )
        .await;
    s.events
        .publish(
            &mut c,
            Event::Deployment {
                deployment_id: target.id.clone(),
            },
        )
        .await;
    Ok(row)
}

/// `deleteBackup`: its data leaves the bucket through a `delete_backup` run, and the row
/// goes when the run completes. An environment backup deletes each of its parts. A backup
/// still being taken is refused.
pub async fn delete_backup(s: &AppState, who: &Principal, id: &str) -> ApiResult<BackupRow> {
    who.can_operate()?;
    let mut tx = s.db.write().await?;
    let mut b = find_backup(&mut tx, id).await?;
    let env = environments::get(&mut tx, &b.environment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &b.environment_id))?;
    let parts = match &b.deployment_id {
        Some(_) => vec![b.clone()],
        None => backups::parts(&mut tx, &b.id).await?,
    };
    if let Some(open) = parts
        .iter()
        .find(|p| matches!(p.state, BackupState::Scheduled | BackupState::Running))
    {
        return Err(ApiError::Conflict(format!(
            "backup {} is {}: wait for it to end before deleting it",
            open.id, open.state
        )));
    }
    let now = now_ms();
    for part in parts.iter().filter(|p| p.deleting_at.is_none()) {
        start_deletion(&mut tx, s, part, &env).await?;
    }
    if b.deployment_id.is_none() {
        if parts.is_empty() {
            backups::delete(&mut tx, &b.id).await?;
        } else {
            backups::set_deleting(&mut tx, &b.id, Some(now)).await?;
        }
    }
    b.deleting_at.get_or_insert(now);
    audit::commit(
        tx,
        who,
        "deleteBackup",
        "backup",
        &b.id,
        json!({"parts": parts.iter().map(|p| &p.id).collect::<Vec<_>>()}),
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
    Ok(b)
}

/// Marks one deployment's backup as being deleted and queues its `delete_backup` run (not
/// tied to a deployment: the deployment may be gone).
async fn start_deletion(
    tx: &mut Tx,
    s: &AppState,
    b: &BackupRow,
    env: &EnvironmentRow,
) -> ApiResult<()> {
    let now = now_ms();
    // Two deletions of one backup at once queue one run.
    if backups::start_deleting(tx, &b.id, now).await? != 1 {
        return Ok(());
    }
    let location = match source_plan(tx, b).await {
        Ok(plan) => plan.location,
        Err(_) => location_ref(&location_for(tx, b).await?, env),
    };
    let payload = FlowRunPayload::DeleteBackup(DeleteBackupPayload {
        backup_id: b.id.clone(),
        velero_backup: velero_backup_name(&b.id),
        location,
    })
    .to_wire();
    let run = FlowRunRow {
        id: new_id(),
        deployment_id: None,
        cluster_id: env.cluster_id.clone(),
        position: 0,
        kind: FlowKind::DeleteBackup,
        state: RunState::Scheduled,
        attempt: 1,
        max_attempts: s.settings.max_attempts,
        instance_id: None,
        payload,
        result: None,
        error: None,
        lease_owner: None,
        lease_expires_at: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    };
    flow_runs::insert(tx, &run).await?;
    Ok(())
}

async fn location_for(c: &mut Conn, b: &BackupRow) -> ApiResult<LocationRow> {
    locations::find(c, &b.bsl_id)
        .await?
        .ok_or_else(|| ApiError::not_found("backup storage location", &b.bsl_id))
}

// ---- Outcomes, from the queue ----

/// A claimed backup or restore run: its row is `running`.
pub async fn on_claimed(tx: &mut Tx, run: &FlowRunRow) -> ApiResult<()> {
    match run.kind {
        FlowKind::Backup => {
            if let Some(b) = backups::by_run(tx, &run.id).await? {
                backups::set_state(tx, &b.id, BackupState::Running).await?;
                if let Some(parent) = &b.parent_id {
                    refresh_parent(tx, parent).await?;
                }
            }
        }
        FlowKind::Restore => {
            if let Some(r) = backups::restore_by_run(tx, &run.id).await? {
                backups::set_restore_state(tx, &r.id, RestoreState::Running).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A run that will not run: superseded (a delete of its deployment) before it started.
pub async fn on_cancelled(tx: &mut Tx, run_id: &str, reason: &str) -> ApiResult<()> {
    let now = now_ms();
    let errors = [format!("cancelled: {reason}")];
    if let Some(b) = backups::by_run(tx, run_id).await? {
        let outcome = Outcome {
            state: BackupState::Failed,
            size_bytes: None,
            components: &json!([]),
            errors: &errors,
            finished_at: Some(now),
        };
        backups::finish(tx, &b.id, &outcome).await?;
        if let Some(parent) = &b.parent_id {
            refresh_parent(tx, parent).await?;
        }
    }
    if let Some(r) = backups::restore_by_run(tx, run_id).await? {
        backups::finish_restore(tx, &r.id, RestoreState::Failed, &json!([]), &errors, now).await?;
    }
    Ok(())
}

/// The end of a backup, restore or backup-deletion run: `outcome` is the agent's result
/// (a `BackupResult` / `RestoreResult`) or its error.
pub async fn on_finished(
    tx: &mut Tx,
    s: &AppState,
    run: &FlowRunRow,
    outcome: Result<Option<&Value>, &str>,
) -> ApiResult<()> {
    match run.kind {
        FlowKind::Backup => backup_finished(tx, s, run, outcome).await,
        FlowKind::Restore => restore_finished(tx, run, outcome).await,
        FlowKind::DeleteBackup => deletion_finished(tx, run, outcome).await,
        _ => Ok(()),
    }
}

/// The agent's result read as `T`, or the errors that say why there is none.
fn read_result<T: serde::de::DeserializeOwned>(
    outcome: Result<Option<&Value>, &str>,
    what: &str,
) -> Result<T, String> {
    match outcome {
        Err(message) => Err(message.to_owned()),
        Ok(None) => Err(format!("the agent reported no {what} result")),
        Ok(Some(v)) => serde_json::from_value(v.clone())
            .map_err(|e| format!("the agent's result is not a {what} result: {e}")),
    }
}

async fn backup_finished(
    tx: &mut Tx,
    s: &AppState,
    run: &FlowRunRow,
    outcome: Result<Option<&Value>, &str>,
) -> ApiResult<()> {
    let Some(b) = backups::by_run(tx, &run.id).await? else {
        return Ok(());
    };
    let now = now_ms();
    let (state, size, components, errors) = match read_result::<BackupResult>(outcome, "backup") {
        Ok(r) => {
            // A result that claims the backup is still open is no end: failed.
            let mut errors = r.errors;
            let state = match r.state {
                BackupState::Scheduled | BackupState::Running => {
                    errors.push(format!(
                        "the agent ended the run with the backup still {}",
                        r.state
                    ));
                    BackupState::Failed
                }
                other => other,
            };
            let size = r.size_bytes.and_then(|n| i64::try_from(n).ok());
            let components = serde_json::to_value(&r.components).map_err(internal)?;
            (state, size, components, errors)
        }
        Err(message) => (BackupState::Failed, None, json!([]), vec![message]),
    };
    backups::finish(
        tx,
        &b.id,
        &Outcome {
            state,
            size_bytes: size,
            components: &components,
            errors: &errors,
            finished_at: Some(now),
        },
    )
    .await?;
    if let Some(parent) = &b.parent_id {
        refresh_parent(tx, parent).await?;
    }
    if state == BackupState::Completed {
        apply_retention(tx, s, &b).await?;
    }
    Ok(())
}

async fn restore_finished(
    tx: &mut Tx,
    run: &FlowRunRow,
    outcome: Result<Option<&Value>, &str>,
) -> ApiResult<()> {
    let Some(r) = backups::restore_by_run(tx, &run.id).await? else {
        return Ok(());
    };
    let (state, components, errors) = match read_result::<RestoreResult>(outcome, "restore") {
        Ok(result) => {
            let mut errors = result.errors;
            let state = match result.state {
                RestoreState::Scheduled | RestoreState::Running => {
                    errors.push(format!(
                        "the agent ended the run with the restore still {}",
                        result.state
                    ));
                    RestoreState::Failed
                }
                other => other,
            };
            let components = serde_json::to_value(&result.components).map_err(internal)?;
            (state, components, errors)
        }
        Err(message) => (RestoreState::Failed, json!([]), vec![message]),
    };
    backups::finish_restore(tx, &r.id, state, &components, &errors, now_ms()).await?;
    Ok(())
}

async fn deletion_finished(
    tx: &mut Tx,
    run: &FlowRunRow,
    outcome: Result<Option<&Value>, &str>,
) -> ApiResult<()> {
    let Ok(FlowRunPayload::DeleteBackup(payload)) =
        FlowRunPayload::from_wire(FlowKind::DeleteBackup, &run.payload)
    else {
        return Ok(());
    };
    let Some(b) = backups::get(tx, &payload.backup_id).await? else {
        return Ok(());
    };
    match outcome {
        Ok(_) => {
            backups::delete(tx, &b.id).await?;
            if let Some(parent) = &b.parent_id {
                refresh_parent(tx, parent).await?;
            }
        }
        Err(message) => {
            backups::set_deleting(tx, &b.id, None).await?;
            let mut errors = b.errors.clone();
            errors.push(format!("deleting the backup failed: {message}"));
            backups::set_errors(tx, &b.id, &errors).await?;
            if let Some(parent) = &b.parent_id {
                backups::set_deleting(tx, parent, None).await?;
            }
        }
    }
    Ok(())
}

/// An environment backup's state, size and errors from its parts; it goes with its last
/// part. The parent is locked first (see [`backups::lock`]).
async fn refresh_parent(tx: &mut Tx, parent_id: &str) -> ApiResult<()> {
    // Parts of one backup may end at once on two servers: each reads the parts only once
    // it holds the parent, so the last to write has seen the others' outcomes.
    backups::lock(tx, parent_id).await?;
    let parts = backups::parts(tx, parent_id).await?;
    if parts.is_empty() {
        backups::delete(tx, parent_id).await?;
        return Ok(());
    }
    let states: Vec<BackupState> = parts.iter().map(|p| p.state).collect();
    let state = backup_plan::group_state(&states);
    let ended = !matches!(state, BackupState::Scheduled | BackupState::Running);
    let size = parts
        .iter()
        .filter_map(|p| p.size_bytes)
        .reduce(|a, b| a.saturating_add(b));
    let mut errors = Vec::new();
    for p in &parts {
        for e in &p.errors {
            errors.push(format!("backup {}: {e}", p.id));
        }
    }
    backups::finish(
        tx,
        parent_id,
        &Outcome {
            state,
            size_bytes: size,
            components: &json!([]),
            errors: &errors,
            finished_at: ended
                .then(|| parts.iter().filter_map(|p| p.finished_at).max())
                .flatten(),
        },
    )
    .await?;
    Ok(())
}

/// After a backup of a deployment completed: its completed backups past the environment's
/// `backup_keep` newest are deleted.
async fn apply_retention(tx: &mut Tx, s: &AppState, b: &BackupRow) -> ApiResult<()> {
    let Some(deployment_id) = &b.deployment_id else {
        return Ok(());
    };
    let Some(env) = environments::get(tx, &b.environment_id).await? else {
        return Ok(());
    };
    let Some(keep) = env.backup_keep.filter(|k| *k > 0) else {
        return Ok(());
    };
    let completed = backups::completed_of_deployment(tx, deployment_id).await?;
    let old: Vec<BackupRow> =
        backup_plan::beyond_retention(&completed, usize::try_from(keep).unwrap_or(usize::MAX))
            .to_vec();
    for expired in &old {
        start_deletion(tx, s, expired, &env).await?;
    }
    Ok(())
}

// ---- Locations as the agent sees them ----

/// An environment of the agent's cluster with its backup storage location, as the agent
/// creates the Velero `BackupStorageLocation` for it.
pub struct EnvironmentLocation {
    pub environment: EnvironmentRow,
    pub location: LocationRef,
}

/// Every environment of the cluster that has a backup storage location (the agent of the
/// cluster only), by environment name.
pub async fn cluster_locations(
    s: &AppState,
    who: &Principal,
    cluster_id: &str,
) -> ApiResult<Vec<EnvironmentLocation>> {
    who.agent_for(cluster_id)?;
    let mut c = s.db.read().await?;
    let page = Page {
        limit: 100_000,
        offset: 0,
    };
    let mut out = Vec::new();
    for env in environments::list(&mut c, Some(cluster_id), page).await? {
        if env.bsl_id.is_none() {
            continue;
        }
        let location = location_of(&mut c, &env).await?;
        out.push(EnvironmentLocation {
            location: location_ref(&location, &env),
            environment: env,
        });
    }
    Ok(out)
}

/// An environment's location credentials, for the agent of its cluster only.
pub async fn location_credentials(
    s: &AppState,
    who: &Principal,
    environment_id: &str,
    location_id: Option<&str>,
) -> ApiResult<(String, String)> {
    let mut c = s.db.read().await?;
    let env = environments::get(&mut c, environment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", environment_id))?;
    who.agent_for(&env.cluster_id)?;
    let location = match location_id {
        // A restore reads the location its backup lives in, which may be another
        // environment's (of the same cluster) or one the environment no longer uses.
        Some(id) if env.bsl_id.as_deref() != Some(id) => {
            if !backups::cluster_has_backup_in(&mut c, &env.cluster_id, id).await? {
                return Err(ApiError::Forbidden(format!(
                    "backup storage location {id} holds no backup of this cluster's environments"
                )));
            }
            locations::find(&mut c, id)
                .await?
                .ok_or_else(|| ApiError::not_found("backup storage location", id))?
        }
        _ => location_of(&mut c, &env).await?,
    };
    let secret = s
        .key
        .decrypt(&location.secret_access_key_enc)
        .map_err(|e| {
            ApiError::Internal(e.context(format!("backup storage location {}", location.name)))
        })?;
    Ok((location.access_key_id, secret))
}

/// The longest phase and message a location report may carry.
const MAX_PHASE: usize = 64;
const MAX_MESSAGE: usize = 4096;

pub struct LocationReport {
    pub environment_id: String,
    pub phase: String,
    pub message: Option<String>,
}

/// `reportBackupLocationStatuses`: Velero's phase of each environment's location, from
/// the agent of the environments' cluster.
pub async fn report_locations(
    s: &AppState,
    who: &Principal,
    cluster_id: &str,
    reports: Vec<LocationReport>,
) -> ApiResult<usize> {
    who.agent_for(cluster_id)?;
    if reports.len() > 10_000 {
        return Err(ApiError::field(
            "statuses",
            "at most 10000 statuses at once",
        ));
    }
    let now = now_ms();
    let mut tx = s.db.write().await?;
    for r in &reports {
        if r.phase.is_empty() || r.phase.len() > MAX_PHASE {
            return Err(ApiError::field(
                "statuses.phase",
                format!("must be 1 to {MAX_PHASE} characters"),
            ));
        }
        let env = environments::get(&mut tx, &r.environment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("environment", &r.environment_id))?;
        if env.cluster_id != cluster_id {
            return Err(ApiError::Forbidden(format!(
                "environment `{}` is not on cluster {cluster_id}",
                env.name
            )));
        }
        let message = r.message.as_deref().map(|m| {
            let mut cut = m.len().min(MAX_MESSAGE);
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            &m[..cut]
        });
        environments::report_location(&mut tx, &env.id, &r.phase, message, now).await?;
    }
    crate::store::clusters::agent_heard(&mut tx, cluster_id, now).await?;
    tx.commit().await?;
    Ok(reports.len())
}
