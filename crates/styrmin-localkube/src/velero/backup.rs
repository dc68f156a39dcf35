//! Backups: hooks, objects and volume files into one archive in the location's bucket.

use super::*;

pub(super) async fn reconcile_backup(
    object: Arc<DynamicObject>,
    velero: Arc<Velero>,
) -> Result<Action, VeleroError> {
    if !is_new(&object) {
        return Ok(Action::await_change());
    }
    let started = begin(&object, "Backup", &velero).await?;
    let mut outcome = Outcome::default();
    let result = run_backup(&velero, &object, &mut outcome).await;
    finish(
        &object,
        "Backup",
        "itemsBackedUp",
        &velero,
        started,
        result,
        outcome,
    )
    .await
}

pub(super) async fn run_backup(
    velero: &Velero,
    backup: &DynamicObject,
    outcome: &mut Outcome,
) -> Result<()> {
    let spec = &backup.data["spec"];
    let namespace = backup.namespace().unwrap_or_default();
    let location_name = spec["storageLocation"].as_str().unwrap_or("default");
    let location = resolve_location(&velero.client, &namespace, location_name).await?;
    let namespaces = included_namespaces(&velero.client, spec).await?;
    let selector = label_selector(&spec["labelSelector"]);
    let resources = strings(&spec["includedResources"]);
    let included = |plural: &str, group: &str| {
        resources.is_empty()
            || resources
                .iter()
                .any(|r| r == "*" || r == plural || *r == format!("{plural}.{group}"))
    };

    run_hooks(velero, spec, &namespaces, "pre", outcome).await?;

    let staging = velero
        .work_dir
        .join(format!("backup-{}-{}", namespace, backup.name_any()));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let discovery = Discovery::new(velero.client.clone()).run().await?;
    for ns in &namespaces {
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced
                    || !caps.supports_operation(verbs::LIST)
                    || SKIPPED.contains(&ar.plural.as_str())
                    || !included(&ar.plural, &ar.group)
                {
                    continue;
                }
                let api: Api<DynamicObject> = Api::namespaced_with(velero.client.clone(), ns, &ar);
                let items = api
                    .list(&ListParams::default().labels(&selector))
                    .await?
                    .items;
                for mut item in items {
                    if !item.owner_references().is_empty() {
                        continue;
                    }
                    outcome.total += 1;
                    item.types = Some(TypeMeta {
                        api_version: ar.api_version.clone(),
                        kind: ar.kind.clone(),
                    });
                    let entry = json!({
                        "resource": {"group": ar.group, "version": ar.version, "kind": ar.kind, "plural": ar.plural},
                        "object": item,
                    });
                    let dir = staging
                        .join("resources")
                        .join(ns)
                        .join(format!("{}.{}", ar.plural, ar.group));
                    tokio::fs::create_dir_all(&dir).await?;
                    tokio::fs::write(
                        dir.join(format!("{}.json", item.name_any())),
                        serde_json::to_vec_pretty(&entry)?,
                    )
                    .await?;
                    if ar.kind == "PersistentVolumeClaim"
                        && let Err(e) = save_volume(velero, ns, &item.name_any(), &staging).await
                    {
                        outcome
                            .errors
                            .push(format!("volume of {ns}/{}: {e:#}", item.name_any()));
                        continue;
                    }
                    outcome.done += 1;
                }
            }
        }
    }
    tokio::fs::create_dir_all(&staging).await?;
    let archive = velero
        .work_dir
        .join(format!("{}.tar.gz", backup.name_any()));
    run_command(
        "tar",
        &[
            "czf",
            &archive.display().to_string(),
            "-C",
            &staging.display().to_string(),
            ".",
        ],
    )
    .await?;
    location
        .target
        .run(
            &velero.rclone,
            &[
                "copyto",
                &archive.display().to_string(),
                &archive_key(&location.root, &backup.name_any()),
            ],
        )
        .await?;
    tokio::fs::remove_dir_all(&staging).await.ok();
    tokio::fs::remove_file(&archive).await.ok();

    run_hooks(velero, spec, &namespaces, "post", outcome).await?;
    Ok(())
}

pub(super) async fn included_namespaces(client: &Client, spec: &Value) -> Result<Vec<String>> {
    let listed = strings(&spec["includedNamespaces"]);
    if !listed.is_empty() && !listed.iter().any(|n| n == "*") {
        return Ok(listed);
    }
    let all: Api<Namespace> = Api::all(client.clone());
    Ok(all
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|n| n.name_any())
        .filter(|n| !n.starts_with("kube-"))
        .collect())
}

pub(super) fn label_selector(selector: &Value) -> String {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Velero's backup hooks: `spec.hooks.resources[].pre|post[].exec` on the matching pods.
pub(super) async fn run_hooks(
    velero: &Velero,
    spec: &Value,
    namespaces: &[String],
    when: &str,
    outcome: &mut Outcome,
) -> Result<()> {
    for hook in spec["hooks"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let hook_namespaces = match strings(&hook["includedNamespaces"]) {
            listed if listed.is_empty() => namespaces.to_vec(),
            listed => listed,
        };
        for ns in namespaces.iter().filter(|ns| hook_namespaces.contains(ns)) {
            let pods: Api<Pod> = Api::namespaced(velero.client.clone(), ns);
            let selected = pods
                .list(&ListParams::default().labels(&label_selector(&hook["labelSelector"])))
                .await?;
            for pod in selected.items {
                for step in hook[when].as_array().cloned().unwrap_or_default() {
                    let exec = &step["exec"];
                    let command = strings(&exec["command"]);
                    let container = exec["container"].as_str().map(str::to_owned);
                    let result =
                        exec_in_pod(&pods, &pod.name_any(), container, command.clone()).await;
                    if let Err(e) = result {
                        let message = format!(
                            "{when} hook {:?} in pod {ns}/{}: {e:#}",
                            command,
                            pod.name_any()
                        );
                        if exec["onError"].as_str() == Some("Continue") {
                            outcome.errors.push(message);
                        } else {
                            bail!(message);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn exec_in_pod(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<String>,
    command: Vec<String>,
) -> Result<()> {
    let mut params = AttachParams::default().stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut process = pods.exec(pod, command, &params).await?;
    let mut stderr = String::new();
    if let Some(mut err) = process.stderr() {
        err.read_to_string(&mut stderr).await.ok();
    }
    let status = process
        .take_status()
        .ok_or_else(|| anyhow!("no exec status"))?
        .await;
    match status.and_then(|s| s.status) {
        Some(s) if s == "Success" => Ok(()),
        _ => bail!("the command failed: {}", stderr.trim()),
    }
}

pub(super) async fn save_volume(
    velero: &Velero,
    namespace: &str,
    claim: &str,
    staging: &Path,
) -> Result<()> {
    if let Some(dir) = volume_dir(&velero.client, namespace, claim).await? {
        let target = staging.join("volumes").join(namespace).join(claim);
        copy_tree(&dir, &target).await?;
    }
    Ok(())
}
