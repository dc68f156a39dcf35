//! Environments: creating one on a cluster (its namespace fixed at creation), updating
//! it, and deleting it once it has no live deployments (their history goes with it).

use serde_json::{Value, json};
use styrmin_core::FieldError;
use styrmin_core::cron::Schedule;
use styrmin_core::naming;

use super::{check_name, check_object, duplicate, fail_if, kind_of};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::services::backups as backup_service;
use crate::state::AppState;
use crate::store::backups::{self as backup_rows, RestoreRow};
use crate::store::environments::EnvironmentRow;
use crate::store::{Conn, audit, deployments, environments, is_unique_violation};
use crate::{reconcile, resolve};

fn namespace_of(name: &str, config: &Value) -> ApiResult<String> {
    match config.get("namespace") {
        None => Ok(naming::default_namespace(name)),
        Some(Value::String(ns)) => match naming::dns1123_label_problem(ns) {
            None => Ok(ns.clone()),
            Some(p) => Err(ApiError::field("config.namespace", format!("`{ns}` {p}"))),
        },
        Some(other) => Err(ApiError::field(
            "config.namespace",
            format!("must be a string, found {}", kind_of(other)),
        )),
    }
}

pub async fn create_environment(
    s: &AppState,
    who: &Principal,
    name: &str,
    cluster_ref: &str,
    config: Value,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut errors = check_name("name", name);
    errors.extend(check_object("environment", &config));
    fail_if(errors)?;
    let namespace = namespace_of(name, &config)?;
    let mut tx = s.db.write().await?;
    let cluster = resolve::cluster(&mut tx, cluster_ref).await?;
    let now = now_ms();
    let row = EnvironmentRow {
        id: new_id(),
        name: name.to_owned(),
        cluster_id: cluster.id.clone(),
        config,
        namespace,
        bsl_id: None,
        deleting_at: None,
        backup_schedule: None,
        backup_keep: None,
        backup_next_at: None,
        backup_location_status: None,
        created_at: now,
        updated_at: now,
    };
    environments::insert(&mut tx, &row).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::field(
                "name",
                format!(
                    "cluster `{}` already has an environment named `{name}` or using namespace `{}`",
                    cluster.name, row.namespace
                ),
            )
        } else {
            e.into()
        }
    })?;
    audit::commit(
        tx,
        who,
        "createEnvironment",
        "environment",
        &row.id,
        json!({"name": name, "cluster": cluster.id}),
    )
    .await?;
    Ok(row)
}

/// An environment's backup schedule and retention, as `updateEnvironment` changes them:
/// `None` keeps a setting; an empty schedule or a `keep` of 0 removes it.
#[derive(Debug, Default, Clone)]
pub struct BackupPolicy {
    pub schedule: Option<String>,
    pub keep: Option<i64>,
}

impl BackupPolicy {
    fn is_empty(&self) -> bool {
        self.schedule.is_none() && self.keep.is_none()
    }

    /// Applies the policy to `row` (its next due time computed from `now`), or says which
    /// field is wrong.
    fn apply(&self, row: &mut EnvironmentRow, now: i64, errors: &mut Vec<FieldError>) {
        match self.schedule.as_deref().map(str::trim) {
            None => {}
            Some("") => {
                row.backup_schedule = None;
                row.backup_next_at = None;
            }
            Some(text) => match Schedule::parse(text) {
                Ok(schedule) => match schedule.next_after(now) {
                    Some(next) => {
                        row.backup_schedule = Some(schedule.as_str().to_owned());
                        row.backup_next_at = Some(next);
                    }
                    None => errors.push(FieldError::new(
                        "backupSchedule",
                        format!("`{text}` never fires (no such date within five years)"),
                    )),
                },
                Err(e) => errors.push(FieldError::new("backupSchedule", e.to_string())),
            },
        }
        match self.keep {
            None => {}
            Some(0) => row.backup_keep = None,
            Some(n) if n > 0 => row.backup_keep = Some(n),
            Some(n) => errors.push(FieldError::new(
                "backupKeep",
                format!("{n}: keep at least 1 backup per deployment, or 0 to keep all"),
            )),
        }
    }
}

pub async fn update_environment(
    s: &AppState,
    who: &Principal,
    reference: &str,
    name: Option<&str>,
    config: Option<Value>,
    policy: BackupPolicy,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut row = resolve::environment(&mut tx, reference).await?;
    let mut errors = Vec::new();
    policy.apply(&mut row, now_ms(), &mut errors);
    if let Some(name) = name {
        errors.extend(check_name("name", name));
        row.name = name.to_owned();
    }
    if let Some(config) = config {
        errors.extend(check_object("environment", &config));
        if errors.is_empty()
            && namespace_of(&row.name, &config)? != row.namespace
            && config.get("namespace").is_some()
        {
            errors.push(FieldError::new(
                "config.namespace",
                format!("cannot change after creation (it is `{}`)", row.namespace),
            ));
        }
        row.config = config;
    }
    fail_if(errors)?;
    row.updated_at = now_ms();
    environments::update(&mut tx, &row.id, &row.name, &row.config, row.updated_at)
        .await
        .map_err(duplicate("environment", &row.name))?;
    if !policy.is_empty() {
        environments::set_backup_policy(
            &mut tx,
            &row.id,
            row.backup_schedule.as_deref(),
            row.backup_keep,
            row.backup_next_at,
            row.updated_at,
        )
        .await?;
    }
    let filter = deployments::Filter {
        environment_id: Some(row.id.clone()),
        ..Default::default()
    };
    let changes = reconcile::replan(&mut tx, s, &filter).await?;
    audit::commit(
        tx,
        who,
        "updateEnvironment",
        "environment",
        &row.id,
        json!({"name": row.name, "backupSchedule": row.backup_schedule, "backupKeep": row.backup_keep, "replanned": changes.iter().map(|c| &c.deployment.id).collect::<Vec<_>>()}),
    )
    .await?;
    reconcile::announce_all(s, &changes).await;
    Ok(row)
}

/// Deletes an environment without live deployments at once. With deployments: refused,
/// unless `cascade`, which schedules a `delete` run for each and marks the environment,
/// which goes when the last of those runs completes ([`purge_if_emptied`]).
pub async fn delete_environment(
    s: &AppState,
    who: &Principal,
    reference: &str,
    cascade: bool,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut row = resolve::environment(&mut tx, reference).await?;
    let n = deployments::count_in_environment(&mut tx, &row.id).await?;
    if n > 0 && !cascade {
        return Err(ApiError::Conflict(format!(
            "environment `{}` still has {n} deployment(s); delete them first, or delete the environment with cascade",
            row.name
        )));
    }
    if n > 0 {
        let now = now_ms();
        let changes = reconcile::delete_all(&mut tx, s, &row.id).await?;
        environments::set_deleting(&mut tx, &row.id, now).await?;
        row.deleting_at = Some(now);
        audit::commit(
            tx,
            who,
            "deleteEnvironment",
            "environment",
            &row.id,
            json!({"name": row.name, "cascade": changes.iter().map(|c| &c.deployment.id).collect::<Vec<_>>()}),
        )
        .await?;
        reconcile::announce_all(s, &changes).await;
        return Ok(row);
    }
    purge(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteEnvironment",
        "environment",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

/// After a deployment's delete run completed: removes its environment when a cascading
/// delete marked it and no live deployment is left.
pub async fn purge_if_emptied(c: &mut Conn, environment_id: &str) -> ApiResult<()> {
    let Some(env) = environments::get(c, environment_id).await? else {
        return Ok(());
    };
    if env.deleting_at.is_some() && deployments::count_in_environment(c, &env.id).await? == 0 {
        purge(c, &env.id).await?;
    }
    Ok(())
}

/// Removes an environment whose deployments are all deleted, with their history.
async fn purge(c: &mut Conn, environment_id: &str) -> ApiResult<()> {
    // Only deleted deployments remain: their history goes with the environment.
    for sql in [
        "DELETE FROM flow_run_logs WHERE flow_run_id IN (SELECT r.id FROM flow_runs r JOIN deployments d ON d.id = r.deployment_id WHERE d.environment_id = $1)",
        "DELETE FROM flow_runs WHERE deployment_id IN (SELECT id FROM deployments WHERE environment_id = $1)",
        "DELETE FROM deployment_statuses WHERE deployment_id IN (SELECT id FROM deployments WHERE environment_id = $1)",
        "DELETE FROM pod_statuses WHERE deployment_id IN (SELECT id FROM deployments WHERE environment_id = $1)",
        "DELETE FROM restores WHERE target_environment_id = $1 OR backup_id IN (SELECT id FROM backups WHERE environment_id = $1)",
        "DELETE FROM backups WHERE environment_id = $1",
        "DELETE FROM instances WHERE deployment_id IN (SELECT id FROM deployments WHERE environment_id = $1)",
        "DELETE FROM deployments WHERE environment_id = $1",
    ] {
        sqlx::query(sql)
            .bind(environment_id)
            .execute(&mut *c)
            .await?;
    }
    environments::delete(c, environment_id).await?;
    Ok(())
}

/// What [`clone_environment`] made.
pub struct Cloned {
    pub environment: EnvironmentRow,
    pub changes: Vec<reconcile::Change>,
    pub restores: Vec<RestoreRow>,
}

/// `cloneEnvironment`: a new environment on the source's cluster with its config (but
/// its own namespace) and backup location, each live deployment recreated in it (same
/// driver version, application version, parameters and secret parameters), and — with
/// `with_data` — each deployment's latest completed backup restored into its clone, after
/// the clone's create run (a deployment's runs run in order). With data, a source
/// deployment without a completed backup refuses the clone, naming it; nothing is made.
pub async fn clone_environment(
    s: &AppState,
    who: &Principal,
    source_ref: &str,
    name: &str,
    with_data: bool,
) -> ApiResult<Cloned> {
    who.can_administer()?;
    fail_if(check_name("name", name))?;
    let mut tx = s.db.write().await?;
    let source = resolve::environment(&mut tx, source_ref).await?;
    if source.deleting_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "environment `{}` is being deleted",
            source.name
        )));
    }
    let filter = deployments::Filter {
        environment_id: Some(source.id.clone()),
        ..Default::default()
    };
    let page = crate::store::Page {
        limit: 100_000,
        offset: 0,
    };
    let live: Vec<_> = deployments::list(&mut tx, &filter, page)
        .await?
        .into_iter()
        .filter(|d| d.phase != styrmin_core::planner::Phase::Deleting)
        .collect();
    let mut latest = Vec::new();
    if with_data {
        if source.bsl_id.is_none() {
            return Err(ApiError::Conflict(format!(
                "environment `{}` has no backup storage location, so it has no backups to clone with: assign one with `styrminctl backup-locations assign {} LOCATION`",
                source.name, source.name
            )));
        }
        for d in &live {
            let Some(b) = backup_rows::completed_of_deployment(&mut tx, &d.id)
                .await?
                .into_iter()
                .next()
            else {
                return Err(ApiError::Conflict(format!(
                    "deployment `{}` of environment `{}` has no completed backup to clone its data from: take one with `styrminctl backups create --environment {} --wait`, then clone again",
                    d.name, source.name, source.name
                )));
            };
            latest.push(b);
        }
    }
    let mut config = source.config.clone();
    if let Some(map) = config.as_object_mut() {
        map.remove("namespace");
    }
    let now = now_ms();
    let env = EnvironmentRow {
        id: new_id(),
        name: name.to_owned(),
        cluster_id: source.cluster_id.clone(),
        config,
        namespace: naming::default_namespace(name),
        bsl_id: source.bsl_id.clone(),
        deleting_at: None,
        backup_schedule: None,
        backup_keep: None,
        backup_next_at: None,
        backup_location_status: None,
        created_at: now,
        updated_at: now,
    };
    environments::insert(&mut tx, &env).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::field(
                "name",
                format!(
                    "the cluster already has an environment named `{name}` or using namespace `{}`",
                    env.namespace
                ),
            )
        } else {
            e.into()
        }
    })?;
    let mut changes = Vec::new();
    let mut restores = Vec::new();
    for (i, d) in live.iter().enumerate() {
        let cloned = reconcile::clone_into(&mut tx, s, d, &env).await?;
        if let Some(b) = latest.get(i) {
            let target = backup_service::RestoreTarget {
                deployment: &cloned.change.deployment,
                context: &cloned.context,
                version: &cloned.version,
            };
            restores.push(backup_service::record_restore(&mut tx, s, b, &target).await?);
        }
        changes.push(cloned.change);
    }
    audit::commit(
        tx,
        who,
        "cloneEnvironment",
        "environment",
        &env.id,
        json!({"source": source.id, "name": env.name, "withData": with_data, "deployments": changes.iter().map(|c| &c.deployment.id).collect::<Vec<_>>(), "restores": restores.iter().map(|r| &r.id).collect::<Vec<_>>()}),
    )
    .await?;
    reconcile::announce_all(s, &changes).await;
    Ok(Cloned {
        environment: env,
        changes,
        restores,
    })
}
