//! Backup storage locations: creating one (the secret access key sealed with the
//! server's key), assigning it to an environment, and deleting it once unassigned.

use serde_json::json;
use styrmin_core::FieldError;

use super::{check_name, duplicate, fail_if};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::resolve;
use crate::state::AppState;
use crate::store::environments::EnvironmentRow;
use crate::store::locations::LocationRow;
use crate::store::{audit, environments, locations};

/// A new backup storage location, as the caller gave it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
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
