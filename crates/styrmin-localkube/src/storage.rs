//! TEST DOUBLE — a volume provisioner: every pending PersistentVolumeClaim gets a
//! PersistentVolume backed by a host directory, which Kubernetes' own binder then binds.
//! The directories are what backups copy and restores refill.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

const MANAGER: &str = "styrmin-volume-simulator";

pub struct Storage {
    pub client: Client,
    /// Volume `V` lives in `<volumes_dir>/V`.
    pub volumes_dir: PathBuf,
}

pub async fn start(storage: Arc<Storage>) -> Result<tokio::task::JoinHandle<()>> {
    let claims: Api<PersistentVolumeClaim> = Api::all(storage.client.clone());
    let controller = Controller::new(claims, watcher::Config::default())
        .run(
            reconcile,
            |_, _: &kube::Error, _| Action::requeue(Duration::from_millis(500)),
            storage,
        )
        .for_each(|_| async {});
    Ok(tokio::spawn(controller))
}

/// The PV name of a claim.
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pv-{}", claim.uid().unwrap_or_default())
}

async fn reconcile(
    claim: Arc<PersistentVolumeClaim>,
    storage: Arc<Storage>,
) -> Result<Action, kube::Error> {
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .is_some();
    if bound || claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = volume_name(&claim);
    let path = storage.volumes_dir.join(&name);
    if let Err(e) = tokio::fs::create_dir_all(&path).await {
        tracing::warn!(%e, "volume simulator: cannot create {}", path.display());
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .map(|q| q.0)
        .unwrap_or_else(|| "1Gi".into());
    let volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"styrmin.io/simulated": "true"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "storageClassName": spec.storage_class_name.unwrap_or_default(),
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": path.display().to_string()},
            "claimRef": {"namespace": claim.namespace(), "name": claim.name_any(), "uid": claim.uid()}
        }
    });
    let volumes: Api<PersistentVolume> = Api::all(storage.client.clone());
    volumes
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&volume),
        )
        .await?;
    Ok(Action::await_change())
}
