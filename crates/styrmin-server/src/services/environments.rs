//! Environments: creating one on a cluster (its namespace fixed at creation), updating
//! it, and deleting it once it has no live deployments (their history goes with it).

use serde_json::{Value, json};
use styrmin_core::FieldError;
use styrmin_core::naming;

use super::{check_name, check_object, duplicate, fail_if, kind_of};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::state::AppState;
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

pub async fn update_environment(
    s: &AppState,
    who: &Principal,
    reference: &str,
    name: Option<&str>,
    config: Option<Value>,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut row = resolve::environment(&mut tx, reference).await?;
    let mut errors = Vec::new();
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
        json!({"name": row.name, "replanned": changes.iter().map(|c| &c.deployment.id).collect::<Vec<_>>()}),
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
