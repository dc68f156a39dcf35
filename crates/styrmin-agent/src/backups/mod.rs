//! The backup engine (SPEC §9): backups, restores and backup deletions of one deployment
//! through Velero.
//!
//! A backup dumps each database component inside its pod (exec; the strategy's tool, see
//! [`strategies`]) and streams the dump into the deployment's backup volume — a claim,
//! `styrmin-backup-<release>`, mounted by a short-lived holder pod that receives the
//! stream on its stdin — so nothing passes through the agent's disk and the same works on
//! any cluster. `disk` components' claims (only the named pod-template volumes) and the
//! backup volume are labelled with the backup's id, and one Velero `Backup` per
//! deployment takes exactly those claims to the environment's location.
//!
//! A restore checks the backup first (it exists, it was taken from the same driver, its
//! location answers), so a refusal changes nothing; then it stops the components, deletes
//! the claims the backup holds (Velero skips objects that exist), has a Velero `Restore`
//! bring them back (`namespaceMapping` into another namespace), starts the components and
//! loads each dump from the restored backup volume. The components are started again
//! whatever happened in between.

pub mod exec;
pub mod strategies;
pub mod velero;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde::{Deserialize, Serialize};
use serde_json::json;
use styrmin_core::backup::{
    BackupPayload, BackupResult, BackupState, ComponentPlan, ComponentResult,
    DEFAULT_DEADLINE_SECONDS, DeleteBackupPayload, LABEL_BACKUP, LABEL_DEPLOYMENT,
    LABEL_ENVIRONMENT, LABEL_RESTORE, LocationRef, RestorePayload, RestoreResult, RestoreState,
    overall_state,
};
use styrmin_core::driver::BackupKind;
use styrmin_core::protocol::{BackupRun, RestoreRun};

use crate::actions::api_error;
use crate::actions::components::Component;
use crate::runlog::LogSink;
use exec::Target;
pub use velero::{Credentials, LocationStatus, ensure_location};

/// The image of the backup volume's holder pod: it needs `sh`, `cat`, `mv`, `rm`.
pub const HOLDER_IMAGE: &str = "busybox:1.36";
/// Where the holder pod mounts the backup volume.
pub const BACKUP_MOUNT: &str = "/styrmin-backup";
/// The size asked for the backup volume.
pub const BACKUP_VOLUME_SIZE: &str = "5Gi";
/// On the Velero Backup: what it holds ([`Contents`], JSON).
pub const CONTENTS_ANNOTATION: &str = "styrmin.io/backup-contents";
/// On the Velero Backup: the driver it was taken from.
pub const DRIVER_LABEL: &str = "styrmin.io/driver";
/// The longest a pod wait (the holder pod, components starting) may take within a run.
const POD_WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(300);

/// The backup volume (claim) and holder pod of a release.
pub fn backup_volume_name(release: &str) -> String {
    format!("styrmin-backup-{release}")
}

/// The bound on a run's own work (dumps, loads, pods): the payload's deadline, at least
/// the default one. Velero's part has the payload's deadline alone, from when the Velero
/// object is created.
fn work_deadline(deadline_seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(DEFAULT_DEADLINE_SECONDS.max(deadline_seconds))
}

fn dump_file(component: &str) -> String {
    format!("{BACKUP_MOUNT}/{component}.dump")
}

/// What a Velero Backup made by the engine holds, recorded on it for the restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contents {
    /// The backup volume's claim.
    pub backup_claim: String,
    /// `disk` components' claims, by component.
    pub claims: BTreeMap<String, Vec<String>>,
    /// Components whose dump is in the backup volume, with the dump's bytes.
    pub dumps: BTreeMap<String, u64>,
}

impl Contents {
    fn all_claims(&self) -> Vec<String> {
        let mut claims: Vec<String> = self.claims.values().flatten().cloned().collect();
        claims.push(self.backup_claim.clone());
        claims.sort();
        claims.dedup();
        claims
    }
}

fn component<'a>(client: &'a Client, namespace: &'a str, plan: &'a ComponentPlan) -> Component<'a> {
    Component {
        client,
        namespace,
        name: &plan.component,
        labels: &plan.selector,
    }
}

fn failed_component(plan: &ComponentPlan, error: String) -> ComponentResult {
    ComponentResult {
        component: plan.component.clone(),
        kind: plan.kind,
        bytes: None,
        duration_ms: 0,
        error: Some(error),
    }
}

/// Takes one deployment's backup. Never fails as a call: what went wrong is in the
/// result (components' errors, `errors`), with a state the user can act on.
pub async fn backup(
    client: &Client,
    run: &BackupRun,
    credentials: &Credentials,
    log: &LogSink,
) -> BackupResult {
    let payload = &run.backup;
    let deadline = work_deadline(payload.deadline_seconds);
    let mut components = Vec::new();
    let mut errors = Vec::new();
    let outcome = take_backup(client, run, credentials, log, deadline, &mut components).await;
    // The holder pod goes whatever happened.
    if let Err(e) = delete_holder(client, &payload.namespace, &payload.release_name).await {
        log.line("warning", format!("{e:#}"));
    }
    let mut state = None;
    match outcome {
        Ok(()) => {}
        Err(e) => {
            let message = format!("{e:#}");
            log.line("error", message.clone());
            errors.push(message);
            // The data did not reach the location: nothing to restore from.
            state = Some(BackupState::Failed);
            for plan in &payload.components {
                if !components
                    .iter()
                    .any(|c: &ComponentResult| c.component == plan.component)
                {
                    components.push(failed_component(
                        plan,
                        "not backed up: the backup failed".into(),
                    ));
                }
            }
        }
    }
    let size_bytes = components.iter().filter_map(|c| c.bytes).sum::<u64>();
    BackupResult {
        state: state.unwrap_or_else(|| overall_state(&components, &errors)),
        size_bytes: Some(size_bytes),
        components,
        errors,
    }
}

async fn take_backup(
    client: &Client,
    run: &BackupRun,
    credentials: &Credentials,
    log: &LogSink,
    deadline: Instant,
    results: &mut Vec<ComponentResult>,
) -> Result<()> {
    let payload: &BackupPayload = &run.backup;
    check_location(client, &payload.location, credentials, log).await?;
    let namespace = &payload.namespace;
    let labels = BTreeMap::from([
        (LABEL_BACKUP.to_owned(), label_value(&payload.backup_id)),
        (
            LABEL_DEPLOYMENT.to_owned(),
            label_value(&run.deployment.deployment_id),
        ),
        (
            LABEL_ENVIRONMENT.to_owned(),
            label_value(&run.deployment.environment_id),
        ),
    ]);
    let claim = ensure_backup_volume(client, namespace, &payload.release_name, &labels).await?;
    let holder = start_holder(client, namespace, &payload.release_name, &claim, deadline).await?;
    exec::output(
        client,
        &holder,
        "clearing the backup volume",
        &format!("rm -f {BACKUP_MOUNT}/*.dump {BACKUP_MOUNT}/*.tmp"),
        4096,
        deadline,
    )
    .await?;

    let mut contents = Contents {
        backup_claim: claim.clone(),
        ..Contents::default()
    };
    for plan in &payload.components {
        let started = Instant::now();
        log.line(
            "info",
            format!("backing up component {} ({})", plan.component, plan.kind),
        );
        let outcome = match plan.kind {
            BackupKind::Disk => backup_disk(client, namespace, plan, &labels, deadline)
                .await
                .map(|(claims, bytes)| {
                    contents.claims.insert(plan.component.clone(), claims);
                    bytes
                }),
            BackupKind::Action => Err(anyhow!(
                "the `action` strategy is not supported by this agent yet"
            )),
            kind => dump(client, namespace, plan, kind, &holder, deadline)
                .await
                .map(|bytes| {
                    contents.dumps.insert(plan.component.clone(), bytes);
                    Some(bytes)
                }),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let result = match outcome {
            Ok(bytes) => ComponentResult {
                component: plan.component.clone(),
                kind: plan.kind,
                bytes,
                duration_ms,
                error: None,
            },
            Err(e) => {
                let message = format!("{e:#}");
                log.line("error", format!("component {}: {message}", plan.component));
                ComponentResult {
                    component: plan.component.clone(),
                    kind: plan.kind,
                    bytes: None,
                    duration_ms,
                    error: Some(message),
                }
            }
        };
        results.push(result);
    }

    let mut velero_labels = labels.clone();
    velero_labels.insert(DRIVER_LABEL.to_owned(), label_value(&payload.driver_name));
    let annotations = BTreeMap::from([(
        CONTENTS_ANNOTATION.to_owned(),
        serde_json::to_string(&contents)?,
    )]);
    velero::create_if_missing(
        client,
        "Backup",
        &payload.velero_backup,
        velero_labels,
        annotations,
        json!({
            "includedNamespaces": [namespace],
            "includedResources": ["persistentvolumeclaims", "persistentvolumes"],
            "labelSelector": {"matchLabels": {LABEL_BACKUP: label_value(&payload.backup_id)}},
            "storageLocation": payload.location.name,
            "snapshotVolumes": false,
            "defaultVolumesToFsBackup": true,
        }),
    )
    .await?;
    log.line(
        "info",
        format!(
            "Velero Backup {} created; waiting for it",
            payload.velero_backup
        ),
    );
    let finished = velero::wait_finished(
        client,
        "Backup",
        &payload.velero_backup,
        Instant::now() + Duration::from_secs(payload.deadline_seconds),
        payload.deadline_seconds,
    )
    .await?;
    match finished.phase.as_str() {
        "Completed" => Ok(()),
        "PartiallyFailed" => {
            // Some items made it: the components' results stand, Velero's reasons join them.
            let reasons = velero::reasons(&finished);
            for result in results.iter_mut().filter(|r| r.error.is_none()) {
                if result.kind == BackupKind::Disk {
                    result.error = Some(format!("Velero could not take every volume: {reasons}"));
                }
            }
            if results.iter().all(|r| r.error.is_none()) {
                bail!("the Velero Backup partially failed: {reasons}");
            }
            Ok(())
        }
        _ => bail!(
            "the Velero Backup {} {}: {}",
            payload.velero_backup,
            finished.phase,
            velero::reasons(&finished)
        ),
    }
}

/// Label values are at most 63 characters of `[A-Za-z0-9._-]`.
fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

async fn check_location(
    client: &Client,
    location: &LocationRef,
    credentials: &Credentials,
    log: &LogSink,
) -> Result<()> {
    let status = ensure_location(client, location, credentials).await?;
    if !status.available() {
        bail!(
            "the backup location `{}` ({} bucket {}) is {}: {}; check its endpoint and credentials",
            location.name,
            location.endpoint,
            location.bucket,
            if status.phase.is_empty() {
                "not validated by Velero yet"
            } else {
                status.phase.as_str()
            },
            status
                .message
                .as_deref()
                .unwrap_or("Velero gives no reason")
        );
    }
    log.line(
        "info",
        format!("backup location {} is Available", location.name),
    );
    Ok(())
}

async fn ensure_backup_volume(
    client: &Client,
    namespace: &str,
    release: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String> {
    let name = backup_volume_name(release);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut wanted = labels.clone();
    wanted.insert("app.kubernetes.io/managed-by".into(), "styrmin".into());
    if claims.get_opt(&name).await.map_err(api_error)?.is_none() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": wanted},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": BACKUP_VOLUME_SIZE}}
            }
        }))?;
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => return Ok(name),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(api_error(e)).with_context(|| {
                    format!("cannot create the backup volume {namespace}/{name}")
                });
            }
        }
    }
    // An existing volume carries this backup's labels from now on.
    claims
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": wanted}})),
        )
        .await
        .map_err(api_error)
        .with_context(|| format!("cannot label the backup volume {namespace}/{name}"))?;
    Ok(name)
}

/// Starts (or finds) the holder pod mounting `claim`, and waits until it is ready.
async fn start_holder(
    client: &Client,
    namespace: &str,
    release: &str,
    claim: &str,
    deadline: Instant,
) -> Result<Target> {
    let name = backup_volume_name(release);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let existing = pods.get_opt(&name).await.map_err(api_error)?;
    let mounts_claim = |pod: &Pod| {
        pod.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
    };
    if let Some(pod) = &existing
        && (!mounts_claim(pod) || pod.metadata.deletion_timestamp.is_some())
    {
        delete_holder(client, namespace, release).await?;
    }
    if existing.as_ref().is_none_or(|p| !mounts_claim(p)) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "app.kubernetes.io/managed-by": "styrmin",
                "app.kubernetes.io/component": "backup-volume-holder"
            }},
            "spec": {
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 1,
                // Admitted by the `restricted` Pod Security level; fsGroup makes the
                // volume writable to the unprivileged user.
                "securityContext": {
                    "runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"}
                },
                "containers": [{
                    "name": "holder",
                    "image": HOLDER_IMAGE,
                    "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5; done"],
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]}
                    },
                    "volumeMounts": [{"name": "backup", "mountPath": BACKUP_MOUNT}]
                }],
                "volumes": [{"name": "backup", "persistentVolumeClaim": {"claimName": claim}}]
            }
        }))?;
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(api_error(e))
                    .with_context(|| format!("cannot create the holder pod {namespace}/{name}"));
            }
        }
    }
    let wait_until = deadline.min(Instant::now() + POD_WAIT);
    loop {
        let pod = pods.get_opt(&name).await.map_err(api_error)?;
        let ready = pod.as_ref().is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            break;
        }
        if Instant::now() >= wait_until {
            bail!("the backup volume's holder pod {namespace}/{name} was not ready in time");
        }
        tokio::time::sleep(POLL).await; // polling the pod within a deadline
    }
    Ok(Target {
        namespace: namespace.to_owned(),
        pod: name,
        container: "holder".into(),
    })
}

async fn delete_holder(client: &Client, namespace: &str, release: &str) -> Result<()> {
    let name = backup_volume_name(release);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => {
            return Err(api_error(e))
                .with_context(|| format!("cannot delete the holder pod {namespace}/{name}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods.get_opt(&name).await.map_err(api_error)?.is_some() {
        if Instant::now() >= deadline {
            bail!("the holder pod {namespace}/{name} did not go in time");
        }
        tokio::time::sleep(POLL).await; // polling the pod within a deadline
    }
    Ok(())
}

/// A ready pod of the component and its container.
async fn component_target(
    client: &Client,
    namespace: &str,
    plan: &ComponentPlan,
) -> Result<Target> {
    let (pod, container) = component(client, namespace, plan).ready_pod().await?;
    Ok(Target {
        namespace: namespace.to_owned(),
        pod,
        container,
    })
}

/// Dumps the component into the backup volume; returns the dump's bytes.
async fn dump(
    client: &Client,
    namespace: &str,
    plan: &ComponentPlan,
    kind: BackupKind,
    holder: &Target,
    deadline: Instant,
) -> Result<u64> {
    let unknown = strategies::unknown_overrides(&plan.overrides);
    if !unknown.is_empty() {
        bail!(
            "the driver's backup block sets unknown connection settings {} (known: {})",
            unknown.join(", "),
            strategies::OVERRIDE_KEYS.join(", ")
        );
    }
    let script = strategies::dump_script(kind, &plan.overrides)
        .with_context(|| format!("the {kind} strategy has no dump"))?;
    let source = component_target(client, namespace, plan).await?;
    let file = dump_file(&plan.component);
    let write = format!("cat > {file}.tmp");
    let bytes = exec::pipe(
        client,
        (&source, &format!("the {kind} dump"), &script),
        (holder, "writing the dump", &write),
        deadline,
    )
    .await;
    let finish = match &bytes {
        Ok(_) => format!("mv {file}.tmp {file}"),
        Err(_) => format!("rm -f {file}.tmp"),
    };
    let settled = exec::output(client, holder, "storing the dump", &finish, 4096, deadline).await;
    let bytes = bytes?;
    settled?;
    Ok(bytes)
}

/// The claims behind the component's named volumes, labelled for this backup; the bytes
/// they hold when a pod can say (`du`).
async fn backup_disk(
    client: &Client,
    namespace: &str,
    plan: &ComponentPlan,
    labels: &BTreeMap<String, String>,
    deadline: Instant,
) -> Result<(Vec<String>, Option<u64>)> {
    if plan.volumes.is_empty() {
        bail!("the disk strategy names no volumes");
    }
    let claims = disk_claims(client, namespace, plan).await?;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for claim in &claims {
        api.patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .map_err(api_error)
        .with_context(|| format!("cannot label the claim {namespace}/{claim}"))?;
    }
    // The size, from inside a pod that mounts the volumes; unknown when it cannot say.
    let bytes = match component_target(client, namespace, plan).await {
        Ok(target) => {
            let pod: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let spec = pod
                .get(&target.pod)
                .await
                .map_err(api_error)?
                .spec
                .unwrap_or_default();
            let paths: Vec<String> = spec
                .containers
                .iter()
                .filter(|c| c.name == target.container)
                .flat_map(|c| c.volume_mounts.clone().unwrap_or_default())
                .filter(|m| plan.volumes.contains(&m.name))
                .map(|m| strategies::quote(&m.mount_path))
                .collect();
            if paths.is_empty() {
                None
            } else {
                exec::output(
                    client,
                    &target,
                    "measuring the volumes",
                    &format!(
                        "du -sk {} | {{ t=0; while read k _; do t=$((t + k)); done; echo $((t * 1024)); }}",
                        paths.join(" ")
                    ),
                    1024,
                    deadline,
                )
                .await
                .ok()
                .and_then(|out| out.trim().parse().ok())
            }
        }
        Err(_) => None,
    };
    Ok((claims, bytes))
}

/// The claims of the component's pods for the named volumes.
async fn disk_claims(
    client: &Client,
    namespace: &str,
    plan: &ComponentPlan,
) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = crate::workloads::selector(&plan.selector);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error)?;
    if listed.items.is_empty() {
        bail!(
            "component `{}` has no pods in {namespace}: its volumes cannot be found",
            plan.component
        );
    }
    let mut claims = Vec::new();
    for pod in &listed.items {
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for wanted in &plan.volumes {
            let volume = volumes
                .iter()
                .find(|v| &v.name == wanted)
                .with_context(|| {
                    format!(
                        "pod {} of component `{}` has no volume `{wanted}` (it has: {})",
                        pod.name_any(),
                        plan.component,
                        volumes
                            .iter()
                            .map(|v| v.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let claim = volume.persistent_volume_claim.as_ref().with_context(|| {
                format!(
                    "volume `{wanted}` of component `{}` is not a PersistentVolumeClaim: only claims are backed up",
                    plan.component
                )
            })?;
            claims.push(claim.claim_name.clone());
        }
    }
    claims.sort();
    claims.dedup();
    Ok(claims)
}

/// Restores a backup into one deployment. Never fails as a call: the result says.
pub async fn restore(
    client: &Client,
    run: &RestoreRun,
    credentials: &Credentials,
    log: &LogSink,
) -> RestoreResult {
    let payload = &run.restore;
    let deadline = work_deadline(payload.deadline_seconds);
    let mut components = Vec::new();
    let mut errors = Vec::new();
    let outcome = run_restore(client, payload, credentials, log, deadline, &mut components).await;
    if let Err(e) = delete_holder(client, &payload.namespace, &payload.source_release_name).await {
        log.line("warning", format!("{e:#}"));
    }
    let mut failed = false;
    if let Err(e) = outcome {
        let message = format!("{e:#}");
        log.line("error", message.clone());
        errors.push(message);
        failed = components.is_empty() || components.iter().all(|c| c.error.is_some());
        for plan in &payload.components {
            if !components
                .iter()
                .any(|c: &ComponentResult| c.component == plan.component)
            {
                components.push(failed_component(
                    plan,
                    "not restored: the restore failed".into(),
                ));
            }
        }
    }
    let state = if failed {
        RestoreState::Failed
    } else {
        match overall_state(&components, &errors) {
            BackupState::Completed => RestoreState::Completed,
            BackupState::Failed => RestoreState::Failed,
            _ => RestoreState::PartiallyFailed,
        }
    };
    RestoreResult {
        state,
        components,
        errors,
    }
}

async fn run_restore(
    client: &Client,
    payload: &RestorePayload,
    credentials: &Credentials,
    log: &LogSink,
    deadline: Instant,
    results: &mut Vec<ComponentResult>,
) -> Result<()> {
    // Checks first: a refused restore changes nothing.
    check_location(client, &payload.location, credentials, log).await?;
    let backups = velero::api(client, "Backup");
    let backup = backups
        .get_opt(&payload.velero_backup)
        .await
        .map_err(api_error)?
        .with_context(|| {
            format!(
                "the backup {} is not in this cluster's Velero (its location `{}` may not have been synced yet)",
                payload.velero_backup, payload.location.name
            )
        })?;
    let phase = backup.data["status"]["phase"].as_str().unwrap_or("New");
    if !matches!(phase, "Completed" | "PartiallyFailed") {
        bail!(
            "the backup {} is {phase}: only a completed backup can be restored",
            payload.velero_backup
        );
    }
    let taken_from = backup
        .labels()
        .get(DRIVER_LABEL)
        .cloned()
        .unwrap_or_default();
    if taken_from != label_value(&payload.driver_name) {
        bail!(
            "the backup was taken from a deployment of driver `{taken_from}`; this deployment runs `{}`: \
             a backup restores only into a deployment of the same driver",
            payload.driver_name
        );
    }
    let contents: Contents = backup
        .annotations()
        .get(CONTENTS_ANNOTATION)
        .map(|c| serde_json::from_str(c))
        .transpose()
        .context("the backup's contents annotation does not read")?
        .with_context(|| {
            format!(
                "the backup {} was not made by Styrmin (it has no {CONTENTS_ANNOTATION} annotation)",
                payload.velero_backup
            )
        })?;
    let same_namespace = payload.namespace == payload.source_namespace;
    if same_namespace && payload.release_name != payload.source_release_name {
        bail!(
            "restoring into another deployment in the same namespace is not supported: its volumes would \
             replace those of `{}`",
            payload.source_release_name
        );
    }

    // Velero restores claims under their names: a `disk` component's running pods must
    // use exactly the claims the backup holds, or its data would land beside them.
    for plan in payload
        .components
        .iter()
        .filter(|p| p.kind == BackupKind::Disk)
    {
        let Some(held) = contents.claims.get(&plan.component) else {
            continue;
        };
        if let Ok(used) = disk_claims(client, &payload.namespace, plan).await
            && &used != held
        {
            bail!(
                "component `{}` uses the claims {} but the backup holds {}: restoring volumes into a \
                 deployment whose claims are named otherwise (another release name) is not supported",
                plan.component,
                used.join(", "),
                held.join(", ")
            );
        }
    }

    let plans: Vec<&ComponentPlan> = payload.components.iter().collect();
    log.line("info", "stopping the deployment's components");
    let mut stop_error = None;
    for plan in &plans {
        if let Err(e) = component(client, &payload.namespace, plan)
            .stop(deadline.min(Instant::now() + POD_WAIT))
            .await
        {
            stop_error = Some(e.context(format!("stopping component `{}`", plan.component)));
            break;
        }
    }
    let restored = match stop_error {
        Some(e) => Err(e),
        None => restore_volumes(client, payload, &contents, log, deadline)
            .await
            .context(
                "the volumes were not restored (the claims the backup holds had been deleted \
                 for it; restoring again replaces them)",
            ),
    };
    // The components run again whatever happened.
    log.line("info", "starting the deployment's components");
    let mut start_errors = Vec::new();
    for plan in &plans {
        if let Err(e) = component(client, &payload.namespace, plan)
            .start(deadline.min(Instant::now() + POD_WAIT))
            .await
        {
            start_errors.push(format!(
                "component `{}` did not start: {e:#}",
                plan.component
            ));
        }
    }
    restored?;
    if !start_errors.is_empty() {
        bail!("{}", start_errors.join("; "));
    }

    let mut holder = None;
    for plan in &payload.components {
        let started = Instant::now();
        let outcome = match plan.kind {
            BackupKind::Disk => {
                if contents.claims.contains_key(&plan.component) {
                    Ok(None)
                } else {
                    Err(anyhow!(
                        "the backup holds no volumes of this component (its backup failed)"
                    ))
                }
            }
            BackupKind::Action => Err(anyhow!(
                "the `action` strategy is not supported by this agent yet"
            )),
            kind => match contents.dumps.get(&plan.component) {
                None => Err(anyhow!(
                    "the backup holds no dump of this component (its backup failed)"
                )),
                Some(_) => {
                    if holder.is_none() {
                        holder = Some(
                            start_holder(
                                client,
                                &payload.namespace,
                                &payload.source_release_name,
                                &contents.backup_claim,
                                deadline,
                            )
                            .await?,
                        );
                    }
                    log.line(
                        "info",
                        format!("loading the dump of component {}", plan.component),
                    );
                    load(
                        client,
                        &payload.namespace,
                        plan,
                        kind,
                        holder.as_ref().expect("started above"),
                        deadline,
                    )
                    .await
                    .map(Some)
                }
            },
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        results.push(match outcome {
            Ok(bytes) => ComponentResult {
                component: plan.component.clone(),
                kind: plan.kind,
                bytes,
                duration_ms,
                error: None,
            },
            Err(e) => {
                let message = format!("{e:#}");
                log.line("error", format!("component {}: {message}", plan.component));
                ComponentResult {
                    component: plan.component.clone(),
                    kind: plan.kind,
                    bytes: None,
                    duration_ms,
                    error: Some(message),
                }
            }
        });
    }
    Ok(())
}

/// Deletes the claims the backup holds (Velero would skip them), then has Velero restore
/// them, mapping the namespace when it differs.
async fn restore_volumes(
    client: &Client,
    payload: &RestorePayload,
    contents: &Contents,
    log: &LogSink,
    deadline: Instant,
) -> Result<()> {
    let namespace = &payload.namespace;
    delete_holder(client, namespace, &payload.source_release_name).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for claim in contents.all_claims() {
        match claims.delete(&claim, &DeleteParams::default()).await {
            Ok(_) => log.line(
                "info",
                format!("claim {namespace}/{claim} deleted, to be restored"),
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(api_error(e))
                    .with_context(|| format!("cannot delete the claim {namespace}/{claim}"));
            }
        }
    }
    for claim in contents.all_claims() {
        let until = deadline.min(Instant::now() + POD_WAIT);
        while claims.get_opt(&claim).await.map_err(api_error)?.is_some() {
            if Instant::now() >= until {
                bail!("the claim {namespace}/{claim} did not go in time (a pod still uses it?)");
            }
            tokio::time::sleep(POLL).await; // polling within a deadline
        }
    }
    let mut spec = json!({
        "backupName": payload.velero_backup,
        "includedNamespaces": [payload.source_namespace],
        "restorePVs": true,
        "existingResourcePolicy": "none",
    });
    if payload.source_namespace != payload.namespace {
        spec["namespaceMapping"] = json!({ payload.source_namespace.clone(): payload.namespace });
    }
    let labels = BTreeMap::from([
        (LABEL_RESTORE.to_owned(), label_value(&payload.restore_id)),
        (LABEL_BACKUP.to_owned(), label_value(&payload.backup_id)),
    ]);
    velero::create_if_missing(
        client,
        "Restore",
        &payload.velero_restore,
        labels,
        BTreeMap::new(),
        spec,
    )
    .await?;
    log.line(
        "info",
        format!(
            "Velero Restore {} created; waiting for it",
            payload.velero_restore
        ),
    );
    let finished = velero::wait_finished(
        client,
        "Restore",
        &payload.velero_restore,
        Instant::now() + Duration::from_secs(payload.deadline_seconds),
        payload.deadline_seconds,
    )
    .await?;
    if finished.phase != "Completed" {
        bail!(
            "the Velero Restore {} {}: {}",
            payload.velero_restore,
            finished.phase,
            velero::reasons(&finished)
        );
    }
    if finished.status["warnings"].as_u64().unwrap_or(0) > 0 {
        log.line(
            "warning",
            format!(
                "Velero skipped {} object(s) that already existed",
                finished.status["warnings"]
            ),
        );
    }
    Ok(())
}

/// Streams the dump from the backup volume into the component's loader; returns bytes.
async fn load(
    client: &Client,
    namespace: &str,
    plan: &ComponentPlan,
    kind: BackupKind,
    holder: &Target,
    deadline: Instant,
) -> Result<u64> {
    let script = strategies::load_script(kind, &plan.overrides)
        .with_context(|| format!("the {kind} strategy has no load"))?;
    let target = component_target(client, namespace, plan).await?;
    exec::pipe(
        client,
        (
            holder,
            "reading the dump",
            &format!("cat {}", dump_file(&plan.component)),
        ),
        (&target, &format!("the {kind} load"), &script),
        deadline,
    )
    .await
}

/// Deletes a backup's data from its location (a Velero `DeleteBackupRequest`) and waits
/// until Velero has removed the `Backup`. A backup Velero no longer knows is deleted
/// already.
pub async fn delete_backup(
    client: &Client,
    payload: &DeleteBackupPayload,
    deadline: Instant,
    log: &LogSink,
) -> Result<()> {
    let backups = velero::api(client, "Backup");
    if backups
        .get_opt(&payload.velero_backup)
        .await
        .map_err(api_error)?
        .is_none()
    {
        log.line("info", "Velero has no such backup: nothing to delete");
        return Ok(());
    }
    let locations = velero::api(client, "BackupStorageLocation");
    if locations
        .get_opt(&payload.location.name)
        .await
        .map_err(api_error)?
        .is_none()
    {
        bail!(
            "the backup location `{}` is not set up in this cluster: its data cannot be deleted",
            payload.location.name
        );
    }
    let name = format!("{}-delete", payload.velero_backup);
    velero::create_if_missing(
        client,
        "DeleteBackupRequest",
        &name,
        BTreeMap::from([(LABEL_BACKUP.to_owned(), label_value(&payload.backup_id))]),
        BTreeMap::new(),
        json!({"backupName": payload.velero_backup}),
    )
    .await?;
    log.line(
        "info",
        format!("DeleteBackupRequest {name} created; waiting"),
    );
    let requests = velero::api(client, "DeleteBackupRequest");
    loop {
        if velero::wait_gone(
            client,
            "Backup",
            &payload.velero_backup,
            Instant::now() + POLL,
        )
        .await?
        {
            requests.delete(&name, &DeleteParams::default()).await.ok();
            return Ok(());
        }
        let request = requests.get_opt(&name).await.map_err(api_error)?;
        if let Some(request) = request
            && request.data["status"]["phase"] == "Processed"
        {
            let errors: Vec<String> = request.data["status"]["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // A retry makes a new request.
            requests.delete(&name, &DeleteParams::default()).await.ok();
            bail!(
                "Velero could not delete the backup {}: {}",
                payload.velero_backup,
                if errors.is_empty() {
                    "no reason given".to_owned()
                } else {
                    errors.join("; ")
                }
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "Velero did not delete the backup {} before the deadline; is Velero running?",
                payload.velero_backup
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids become label values Kubernetes accepts.
    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("01HX:ab/c"), "01HX-ab-c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
        assert_eq!(label_value("-a-"), "a");
    }

    /// The restore deletes every claim the backup holds, the backup volume's included.
    #[test]
    fn contents_name_every_claim_once() {
        let contents = Contents {
            backup_claim: "styrmin-backup-shop".into(),
            claims: BTreeMap::from([
                ("files".into(), vec!["data-0".into(), "data-1".into()]),
                ("more".into(), vec!["data-1".into()]),
            ]),
            dumps: BTreeMap::new(),
        };
        assert_eq!(
            contents.all_claims(),
            vec!["data-0", "data-1", "styrmin-backup-shop"]
        );
    }
}
