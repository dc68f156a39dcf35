//! TEST DOUBLE — the Velero stand-in, for `BackupStorageLocation`, `Backup`, `Restore` and
//! `DeleteBackupRequest` (velero.io/v1). A location reads its credentials Secret
//! (`spec.credential`, the AWS credentials-file format) and is `Available` when its bucket
//! answers a listing with them, else `Unavailable` with the reason as `message`. A backup runs the pods' pre hooks (exec), collects the selected
//! namespaces' objects and the files of their volumes (the volume simulator's host
//! directories) into one tarball, uploads it to the location's bucket on a real S3 server,
//! runs the post hooks, and records Velero's phases (`New`, `InProgress`, `Completed`,
//! `PartiallyFailed`, `Failed`) and item counts. A restore downloads it, re-creates the
//! objects (honouring `namespaceMapping`) and writes the files into the new volumes. As
//! real Velero does, an object that already exists is skipped, with a warning (a claim
//! that exists keeps its files): whoever restores over live objects deletes them first.
//! A backup honours `includedNamespaces`, `includedResources` and
//! `labelSelector.matchLabels`. A deletion request removes the backup's folder from the
//! bucket, then the `Backup`.
//!
//! Objects with owner references are left out: their owners re-create them.

mod backup;
mod delete;
mod files;
mod location;
mod restore;

use backup::reconcile_backup;
use delete::reconcile_delete;
use files::{copy_tree, run_command, walk};
use location::{reconcile_location, resolve_location};
use restore::reconcile_restore;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, AttachParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::core::TypeMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::s3::S3Target;

pub fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("velero.io", "v1", kind))
}

/// Kinds a backup never holds: recreated by controllers, or only meaningful live.
const SKIPPED: &[&str] = &[
    "events",
    "pods",
    "endpoints",
    "endpointslices",
    "replicasets",
    "controllerrevisions",
    "leases",
    "backups",
    "restores",
    "backupstoragelocations",
    "deletebackuprequests",
];

pub struct Velero {
    pub client: Client,
    pub rclone: PathBuf,
    pub work_dir: PathBuf,
}

pub async fn start(velero: Arc<Velero>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    tokio::fs::create_dir_all(&velero.work_dir).await?;
    let mut tasks = Vec::new();
    macro_rules! controller {
        ($kind:literal, $reconcile:ident) => {{
            let ar = resource($kind);
            let api: Api<DynamicObject> = Api::all_with(velero.client.clone(), &ar);
            let run = Controller::new_with(api, watcher::Config::default(), ar)
                .run($reconcile, error_policy, velero.clone())
                .for_each(|_| async {});
            tasks.push(tokio::spawn(run));
        }};
    }
    controller!("BackupStorageLocation", reconcile_location);
    controller!("Backup", reconcile_backup);
    controller!("Restore", reconcile_restore);
    controller!("DeleteBackupRequest", reconcile_delete);
    Ok(tasks)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VeleroError(String);

impl From<kube::Error> for VeleroError {
    fn from(e: kube::Error) -> Self {
        VeleroError(e.to_string())
    }
}

fn error_policy(_: Arc<DynamicObject>, error: &VeleroError, _: Arc<Velero>) -> Action {
    tracing::debug!(%error, "velero stand-in: retrying");
    Action::requeue(Duration::from_secs(1))
}

fn now() -> Time {
    Time(Timestamp::now())
}

async fn set_status(
    object: &DynamicObject,
    kind: &str,
    client: &Client,
    status: Value,
) -> Result<(), VeleroError> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &object.namespace().unwrap_or_default(),
        &resource(kind),
    );
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    Ok(())
}

/// A Backup or Restore starts: `InProgress`, with its start time.
async fn begin(object: &DynamicObject, kind: &str, velero: &Velero) -> Result<Time, VeleroError> {
    let started = now();
    set_status(
        object,
        kind,
        &velero.client,
        json!({"phase": "InProgress", "startTimestamp": started}),
    )
    .await?;
    Ok(started)
}

/// A Backup or Restore ends in Velero's final phase, with its counts and errors.
async fn finish(
    object: &DynamicObject,
    kind: &str,
    items_key: &str,
    velero: &Velero,
    started: Time,
    result: Result<()>,
    outcome: Outcome,
) -> Result<Action, VeleroError> {
    let phase = match (&result, outcome.errors.is_empty()) {
        (Err(_), _) => "Failed",
        (Ok(()), true) => "Completed",
        (Ok(()), false) => "PartiallyFailed",
    };
    let mut status = json!({
        "phase": phase,
        "startTimestamp": started,
        "completionTimestamp": now(),
        "progress": {"totalItems": outcome.total, items_key: outcome.done},
        "errors": outcome.errors.len(),
        "warnings": outcome.warnings.len(),
    });
    if let Err(e) = result {
        status["failureReason"] = json!(format!("{e:#}"));
    }
    if !outcome.errors.is_empty() {
        status["validationErrors"] = json!(outcome.errors);
    }
    set_status(object, kind, &velero.client, status).await?;
    Ok(Action::await_change())
}

/// A JSON list of strings (`includedNamespaces`, an exec `command`).
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn is_new(object: &DynamicObject) -> bool {
    matches!(
        object.data["status"]["phase"].as_str(),
        None | Some("") | Some("New")
    )
}

#[derive(Default)]
struct Outcome {
    total: usize,
    done: usize,
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// `backups/<name>/<name>.tar.gz` under the location's root, as Velero lays it out.
fn archive_key(root: &str, backup: &str) -> String {
    format!("s3:{root}/backups/{backup}/{backup}.tar.gz")
}

/// The host directory behind a bound claim (the volume simulator's hostPath).
async fn volume_dir(client: &Client, namespace: &str, claim: &str) -> Result<Option<PathBuf>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(volume) = claims.get(claim).await?.spec.and_then(|s| s.volume_name) else {
        return Ok(None);
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes.get(&volume).await?;
    Ok(pv
        .spec
        .and_then(|s| s.host_path)
        .map(|h| PathBuf::from(h.path)))
}
