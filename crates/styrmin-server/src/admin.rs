//! Clusters, environments, backup storage locations and tokens: the admin's nouns. Every
//! change validates first, writes in one transaction with its audit row, and writes nothing
//! when anything is wrong.

use serde_json::{Value, json};
use styrmin_core::FieldError;
use styrmin_core::context::check_config;
use styrmin_core::naming;

use crate::auth::{Principal, Role};
use crate::crypto::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::resolve;
use crate::state::AppState;
use crate::store::clusters::ClusterRow;
use crate::store::environments::EnvironmentRow;
use crate::store::locations::LocationRow;
use crate::store::tokens::TokenRow;
use crate::store::{
    audit, clusters, deployments, environments, is_unique_violation, locations, tokens,
};

fn check_name(field: &str, name: &str) -> Vec<FieldError> {
    naming::dns1123_label_problem(name)
        .map(|p| vec![FieldError::new(field, format!("`{name}` {p}"))])
        .unwrap_or_default()
}

fn check_object(scope: &str, config: &Value) -> Vec<FieldError> {
    if config.is_object() {
        check_config(scope, config.as_object().expect("object"))
    } else {
        vec![FieldError::new(
            "config",
            format!("must be a JSON object, found {}", kind_of(config)),
        )]
    }
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn fail_if(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn duplicate(kind: &str, name: &str) -> impl FnOnce(sqlx::Error) -> ApiError {
    let message = format!("a {kind} named `{name}` already exists");
    move |e| {
        if is_unique_violation(&e) {
            ApiError::Validation(vec![FieldError::new("name", message)])
        } else {
            e.into()
        }
    }
}

// ---- Clusters ----

/// A new cluster and the token its agent uses (returned this once).
pub async fn create_cluster(
    s: &AppState,
    who: &Principal,
    name: &str,
    config: Value,
) -> ApiResult<(ClusterRow, String)> {
    who.can_administer()?;
    let mut errors = check_name("name", name);
    errors.extend(check_object("cluster", &config));
    fail_if(errors)?;
    let now = now_ms();
    let token = new_token();
    let row = ClusterRow {
        id: new_id(),
        name: name.to_owned(),
        config,
        agent_token_id: new_id(),
        agent_last_seen: None,
        agent_version: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = s.db.write().await?;
    clusters::insert(&mut tx, &row)
        .await
        .map_err(duplicate("cluster", name))?;
    tokens::insert(
        &mut tx,
        &row.agent_token_id,
        &format!("agent-{}", row.id),
        Role::Agent,
        Some(&row.id),
        &token_hash(&token),
    )
    .await?;
    audit::commit(
        tx,
        who,
        "createCluster",
        "cluster",
        &row.id,
        json!({"name": name}),
    )
    .await?;
    Ok((row, token))
}

pub async fn update_cluster(
    s: &AppState,
    who: &Principal,
    reference: &str,
    name: Option<&str>,
    config: Option<Value>,
) -> ApiResult<ClusterRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut row = resolve::cluster(&mut tx, reference).await?;
    let mut errors = Vec::new();
    if let Some(name) = name {
        errors.extend(check_name("name", name));
        row.name = name.to_owned();
    }
    if let Some(config) = config {
        errors.extend(check_object("cluster", &config));
        row.config = config;
    }
    fail_if(errors)?;
    row.updated_at = now_ms();
    clusters::update(&mut tx, &row.id, &row.name, &row.config, row.updated_at)
        .await
        .map_err(duplicate("cluster", &row.name))?;
    audit::commit(
        tx,
        who,
        "updateCluster",
        "cluster",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

pub async fn rotate_agent_token(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<(ClusterRow, String)> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::cluster(&mut tx, reference).await?;
    let token = new_token();
    tokens::set_hash(&mut tx, &row.agent_token_id, &token_hash(&token)).await?;
    audit::commit(tx, who, "rotateAgentToken", "cluster", &row.id, json!({})).await?;
    Ok((row, token))
}

pub async fn delete_cluster(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<ClusterRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::cluster(&mut tx, reference).await?;
    let n = environments::count_on_cluster(&mut tx, &row.id).await?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "cluster `{}` still has {n} environment(s); delete them first",
            row.name
        )));
    }
    sqlx::query("DELETE FROM pod_statuses WHERE cluster_id = $1")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM flow_run_logs WHERE flow_run_id IN (SELECT id FROM flow_runs WHERE cluster_id = $1)")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM flow_runs WHERE cluster_id = $1")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    tokens::delete(&mut tx, &row.agent_token_id).await?;
    clusters::delete(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteCluster",
        "cluster",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

// ---- Environments ----

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
    audit::commit(
        tx,
        who,
        "updateEnvironment",
        "environment",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

pub async fn delete_environment(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::environment(&mut tx, reference).await?;
    let n = deployments::count_in_environment(&mut tx, &row.id).await?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "environment `{}` still has {n} deployment(s); delete them first",
            row.name
        )));
    }
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
        sqlx::query(sql).bind(&row.id).execute(&mut *tx).await?;
    }
    environments::delete(&mut tx, &row.id).await?;
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

// ---- Backup storage locations ----

pub struct NewLocation<'a> {
    pub name: &'a str,
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

pub async fn create_location(
    s: &AppState,
    who: &Principal,
    new: NewLocation<'_>,
) -> ApiResult<LocationRow> {
    who.can_administer()?;
    let mut errors = check_name("name", new.name);
    if !(new.endpoint.starts_with("http://") || new.endpoint.starts_with("https://")) {
        errors.push(FieldError::new(
            "endpoint",
            format!("`{}` must be an http:// or https:// URL", new.endpoint),
        ));
    }
    for (field, value) in [
        ("bucket", new.bucket),
        ("region", new.region),
        ("accessKeyId", new.access_key_id),
        ("secretAccessKey", new.secret_access_key),
    ] {
        if value.trim().is_empty() {
            errors.push(FieldError::new(field, "must not be empty"));
        }
    }
    fail_if(errors)?;
    let row = LocationRow {
        id: new_id(),
        name: new.name.to_owned(),
        endpoint: new.endpoint.to_owned(),
        bucket: new.bucket.to_owned(),
        region: new.region.to_owned(),
        access_key_id: new.access_key_id.to_owned(),
        secret_access_key_enc: s.key.encrypt(new.secret_access_key),
        created_at: now_ms(),
    };
    let mut tx = s.db.write().await?;
    locations::insert(&mut tx, &row)
        .await
        .map_err(duplicate("backup storage location", new.name))?;
    audit::commit(
        tx,
        who,
        "createBackupStorageLocation",
        "backup_storage_location",
        &row.id,
        json!({"name": row.name, "endpoint": row.endpoint, "bucket": row.bucket}),
    )
    .await?;
    Ok(row)
}

pub async fn assign_location(
    s: &AppState,
    who: &Principal,
    environment_ref: &str,
    location_ref: &str,
) -> ApiResult<EnvironmentRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let mut env = resolve::environment(&mut tx, environment_ref).await?;
    let bsl = resolve::location(&mut tx, location_ref).await?;
    env.updated_at = now_ms();
    environments::assign_location(&mut tx, &env.id, &bsl.id, env.updated_at).await?;
    env.bsl_id = Some(bsl.id.clone());
    audit::commit(
        tx,
        who,
        "assignBackupStorageLocation",
        "environment",
        &env.id,
        json!({"backupStorageLocation": bsl.id}),
    )
    .await?;
    Ok(env)
}

pub async fn delete_location(
    s: &AppState,
    who: &Principal,
    reference: &str,
) -> ApiResult<LocationRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = resolve::location(&mut tx, reference).await?;
    let n = locations::users(&mut tx, &row.id).await?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "backup storage location `{}` is assigned to {n} environment(s)",
            row.name
        )));
    }
    locations::delete(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteBackupStorageLocation",
        "backup_storage_location",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

// ---- Tokens ----

pub async fn create_token(
    s: &AppState,
    who: &Principal,
    name: &str,
    role: Role,
    cluster_ref: Option<&str>,
) -> ApiResult<(TokenRow, String)> {
    who.can_administer()?;
    if name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    let mut tx = s.db.write().await?;
    let cluster_id = match (role, cluster_ref) {
        (Role::Agent, Some(r)) => Some(resolve::cluster(&mut tx, r).await?.id),
        (Role::Agent, None) => {
            return Err(ApiError::field(
                "cluster",
                "an agent token is bound to a cluster: name it",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::field(
                "cluster",
                "only agent tokens are bound to a cluster",
            ));
        }
        (_, None) => None,
    };
    let token = new_token();
    let id = new_id();
    tokens::insert(
        &mut tx,
        &id,
        name,
        role,
        cluster_id.as_deref(),
        &token_hash(&token),
    )
    .await
    .map_err(duplicate("token", name))?;
    let row = tokens::by_name(&mut tx, &id).await?.expect("just inserted");
    audit::commit(
        tx,
        who,
        "createToken",
        "token",
        &id,
        json!({"name": name, "role": role.as_str()}),
    )
    .await?;
    Ok((row, token))
}

pub async fn delete_token(s: &AppState, who: &Principal, reference: &str) -> ApiResult<TokenRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = tokens::by_name(&mut tx, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("token", reference))?;
    if row.role == Role::Agent {
        return Err(ApiError::Conflict(format!(
            "`{}` is a cluster's agent token: rotate it with rotateAgentToken instead",
            row.name
        )));
    }
    tokens::delete(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteToken",
        "token",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::state::Settings;
    use crate::store::Db;

    /// A backup location's secret access key is stored sealed, and the server's key
    /// opens what was stored.
    #[tokio::test]
    async fn a_location_secret_is_stored_sealed_and_the_server_key_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        let state = AppState::new(db, SecretKey::from_passphrase("k"), Settings::default());
        let admin = Principal {
            name: "admin".into(),
            role: Role::Admin,
            cluster_id: None,
        };
        let new = NewLocation {
            name: "s3-main",
            endpoint: "http://127.0.0.1:9000",
            bucket: "backups",
            region: "eu-1",
            access_key_id: "AKIA1",
            secret_access_key: "s3cr3t-access-key",
        };
        create_location(&state, &admin, new).await.unwrap();

        let mut c = state.db.read().await.unwrap();
        let stored = resolve::location(&mut c, "s3-main").await.unwrap();
        assert!(
            !stored.secret_access_key_enc.contains("s3cr3t"),
            "{}",
            stored.secret_access_key_enc
        );
        assert_eq!(
            state.key.decrypt(&stored.secret_access_key_enc).unwrap(),
            "s3cr3t-access-key"
        );
    }
}
