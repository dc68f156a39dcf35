//! Backup deletions (`DeleteBackupRequest`, `spec.backupName`): the backup's data leaves
//! the bucket, then its `Backup` object goes; the request ends `Processed`, with the
//! errors that stopped it.

use super::*;

pub(super) async fn reconcile_delete(
    object: Arc<DynamicObject>,
    velero: Arc<Velero>,
) -> Result<Action, VeleroError> {
    if !is_new(&object) {
        return Ok(Action::await_change());
    }
    set_status(
        &object,
        "DeleteBackupRequest",
        &velero.client,
        json!({"phase": "InProgress"}),
    )
    .await?;
    let errors = match run_delete(&velero, &object).await {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("{e:#}")],
    };
    set_status(
        &object,
        "DeleteBackupRequest",
        &velero.client,
        json!({"phase": "Processed", "errors": errors}),
    )
    .await?;
    Ok(Action::await_change())
}

async fn run_delete(velero: &Velero, request: &DynamicObject) -> Result<()> {
    let namespace = request.namespace().unwrap_or_default();
    let name = request.data["spec"]["backupName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow!("spec.backupName is not set"))?;
    let backups: Api<DynamicObject> =
        Api::namespaced_with(velero.client.clone(), &namespace, &resource("Backup"));
    let Some(backup) = backups.get_opt(name).await? else {
        // Already gone: nothing left to delete.
        return Ok(());
    };
    let location_name = backup.data["spec"]["storageLocation"]
        .as_str()
        .unwrap_or("default");
    let location = resolve_location(&velero.client, &namespace, location_name).await?;
    let folder = format!("s3:{}/backups/{name}", location.root);
    // `purge` of a folder that holds nothing is an error to rclone, not to Velero.
    let listed = location
        .target
        .run(&velero.rclone, &["lsf", "-R", &folder])
        .await
        .unwrap_or_default();
    if !listed.trim().is_empty() {
        location
            .target
            .run(&velero.rclone, &["purge", &folder])
            .await
            .with_context(|| format!("deleting the data of backup {name}"))?;
    }
    match backups.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
