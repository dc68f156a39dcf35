//! Restores: the archive back into (possibly other) namespaces, volumes refilled.

use super::*;

pub(super) async fn reconcile_restore(
    object: Arc<DynamicObject>,
    velero: Arc<Velero>,
) -> Result<Action, VeleroError> {
    if !is_new(&object) {
        return Ok(Action::await_change());
    }
    let started = begin(&object, "Restore", &velero).await?;
    let mut outcome = Outcome::default();
    let result = run_restore(&velero, &object, &mut outcome).await;
    finish(
        &object,
        "Restore",
        "itemsRestored",
        &velero,
        started,
        result,
        outcome,
    )
    .await
}

/// Restore order: what others refer to comes first.
pub(super) fn priority(kind: &str) -> usize {
    [
        "PersistentVolumeClaim",
        "Secret",
        "ConfigMap",
        "ServiceAccount",
        "Service",
    ]
    .iter()
    .position(|k| *k == kind)
    .unwrap_or(10)
}

pub(super) async fn run_restore(
    velero: &Velero,
    restore: &DynamicObject,
    outcome: &mut Outcome,
) -> Result<()> {
    let spec = &restore.data["spec"];
    let namespace = restore.namespace().unwrap_or_default();
    let backup_name = spec["backupName"]
        .as_str()
        .ok_or_else(|| anyhow!("spec.backupName is not set"))?;
    let backups: Api<DynamicObject> =
        Api::namespaced_with(velero.client.clone(), &namespace, &resource("Backup"));
    let backup = backups
        .get(backup_name)
        .await
        .with_context(|| format!("Backup {namespace}/{backup_name}"))?;
    let location_name = backup.data["spec"]["storageLocation"]
        .as_str()
        .unwrap_or("default");
    let location = resolve_location(&velero.client, &namespace, location_name).await?;
    let mapping: BTreeMap<String, String> =
        serde_json::from_value(spec["namespaceMapping"].clone()).unwrap_or_default();
    let only: Vec<String> =
        serde_json::from_value(spec["includedNamespaces"].clone()).unwrap_or_default();

    let staging = velero
        .work_dir
        .join(format!("restore-{}-{}", namespace, restore.name_any()));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    tokio::fs::create_dir_all(&staging).await?;
    let archive = staging.join("backup.tar.gz");
    location
        .target
        .run(
            &velero.rclone,
            &[
                "copyto",
                &archive_key(&location.root, backup_name),
                &archive.display().to_string(),
            ],
        )
        .await?;
    run_command(
        "tar",
        &[
            "xzf",
            &archive.display().to_string(),
            "-C",
            &staging.display().to_string(),
        ],
    )
    .await?;

    let mut entries: Vec<(String, Value)> = Vec::new();
    for file in walk(&staging.join("resources"))? {
        let source_ns = file
            .strip_prefix(staging.join("resources"))?
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if !only.is_empty() && !only.contains(&source_ns) {
            continue;
        }
        entries.push((
            source_ns,
            serde_json::from_slice(&tokio::fs::read(&file).await?)?,
        ));
    }
    entries.sort_by_key(|(_, e)| priority(e["resource"]["kind"].as_str().unwrap_or_default()));
    outcome.total = entries.len();

    let namespaces: Api<Namespace> = Api::all(velero.client.clone());
    for (source_ns, entry) in entries {
        let target_ns = mapping
            .get(&source_ns)
            .cloned()
            .unwrap_or_else(|| source_ns.clone());
        if namespaces.get_opt(&target_ns).await?.is_none() {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": target_ns}}))?;
            namespaces.create(&PostParams::default(), &ns).await?;
        }
        let r = &entry["resource"];
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                r["group"].as_str().unwrap_or_default(),
                r["version"].as_str().unwrap_or_default(),
                r["kind"].as_str().unwrap_or_default(),
            ),
            r["plural"].as_str().unwrap_or_default(),
        );
        let object = clean_for_restore(entry["object"].clone(), &target_ns);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api: Api<DynamicObject> = Api::namespaced_with(velero.client.clone(), &target_ns, &ar);
        let object: DynamicObject = serde_json::from_value(object)?;
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => outcome.done += 1,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Velero leaves what exists alone, a claim's files included.
                outcome
                    .warnings
                    .push(format!("{} {target_ns}/{name} already exists", ar.kind));
                continue;
            }
            Err(e) => {
                outcome
                    .errors
                    .push(format!("{} {target_ns}/{name}: {e}", ar.kind));
                continue;
            }
        }
        if ar.kind == "PersistentVolumeClaim" {
            let saved = staging.join("volumes").join(&source_ns).join(&name);
            if saved.is_dir()
                && let Err(e) = restore_volume(velero, &target_ns, &name, &saved).await
            {
                outcome
                    .errors
                    .push(format!("volume of {target_ns}/{name}: {e:#}"));
            }
        }
    }
    tokio::fs::remove_dir_all(&staging).await.ok();
    Ok(())
}

pub(super) async fn restore_volume(
    velero: &Velero,
    namespace: &str,
    claim: &str,
    saved: &Path,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = loop {
        if let Some(dir) = volume_dir(&velero.client, namespace, claim).await? {
            break dir;
        }
        if Instant::now() > deadline {
            bail!("the claim was not bound in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    copy_tree(saved, &dir).await
}

/// What the API server assigns, and what belonged to the old namespace, goes.
pub(super) fn clean_for_restore(mut object: Value, namespace: &str) -> Value {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
            "ownerReferences",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            metadata.remove(key);
        }
        metadata.insert("namespace".into(), json!(namespace));
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.retain(|k, _| {
                !k.starts_with("pv.kubernetes.io/") && !k.starts_with("volume.beta.kubernetes.io/")
            });
        }
    }
    if let Some(root) = object.as_object_mut() {
        root.remove("status");
    }
    match object["kind"].as_str() {
        Some("Service") => {
            if let Some(spec) = object["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
        Some("PersistentVolumeClaim") => {
            if let Some(spec) = object["spec"].as_object_mut() {
                spec.remove("volumeName");
            }
        }
        _ => {}
    }
    object
}
