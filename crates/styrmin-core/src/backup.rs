//! Backups, restores and backup deletions (SPEC §9) as they cross the server↔agent wire:
//! what the server asks of the agent in a `backup`, `restore` or `delete_backup` flow run,
//! what the agent reports back as the run's result, and the names both sides derive from
//! ids. Pure types and functions; the agent does the work through Velero.
//!
//! Secrets never travel here: the agent reads a location's secret key through the
//! agent-only query `backupLocationCredentials(environmentId)` when it writes the Velero
//! credentials Secret, so no flow-run payload (stored and shown) ever holds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::driver::BackupKind;
use crate::spelled::spelled_enum;

/// The namespace Velero runs in; BackupStorageLocations, Backups, Restores and
/// DeleteBackupRequests live there.
pub const VELERO_NAMESPACE: &str = "velero";

/// How long the agent waits for Velero to finish a backup or restore when the server does
/// not say: a Velero backup stuck `InProgress` past it is failed with that reason.
pub const DEFAULT_DEADLINE_SECONDS: u64 = 1800;

spelled_enum!(
    /// A backup's state as the API shows it (SPEC §9).
    BackupState {
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        PartiallyFailed = "partially_failed",
        Failed = "failed",
    }
);

spelled_enum!(
    /// A restore's state: the same words as a backup's.
    RestoreState {
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        PartiallyFailed = "partially_failed",
        Failed = "failed",
    }
);

/// The Velero `BackupStorageLocation` of an environment: named after the environment's
/// namespace, which is unique in its cluster. Its credentials Secret is
/// [`credentials_secret_name`] of it, in [`VELERO_NAMESPACE`].
pub fn location_name(environment_namespace: &str) -> String {
    environment_namespace.to_owned()
}

/// The Secret (in [`VELERO_NAMESPACE`]) holding a location's S3 credentials, in the
/// AWS credentials-file format Velero's AWS plugin reads (key `cloud`).
pub fn credentials_secret_name(location_name: &str) -> String {
    format!("{location_name}-credentials")
}

/// The Velero `Backup` (and its data in the bucket) of one deployment's backup.
pub fn velero_backup_name(backup_id: &str) -> String {
    format!("styrmin-{}", dns_safe(backup_id))
}

/// The Velero `Restore` of one restore.
pub fn velero_restore_name(restore_id: &str) -> String {
    format!("styrmin-restore-{}", dns_safe(restore_id))
}

/// Ids are UUIDs or similar; Kubernetes names are lower-case DNS labels.
fn dns_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Labels every Velero object and backup volume of a backup carries.
pub const LABEL_BACKUP: &str = "styrmin.io/backup";
pub const LABEL_DEPLOYMENT: &str = "styrmin.io/deployment";
pub const LABEL_ENVIRONMENT: &str = "styrmin.io/environment";
pub const LABEL_RESTORE: &str = "styrmin.io/restore";

/// An environment's backup storage location as the agent needs it to create the Velero
/// `BackupStorageLocation` (without the secret key: see the module's note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationRef {
    /// The server's id of the location.
    pub location_id: String,
    /// The Velero object's name: [`location_name`] of the environment's namespace.
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Path-style addressing (`s3ForcePathStyle`), what S3-compatible servers need.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Velero's `checksumAlgorithm` setting; empty turns checksums off, which some
    /// S3-compatible stores need.
    #[serde(default)]
    pub checksum_algorithm: String,
}

fn yes() -> bool {
    true
}

/// How one component is backed up and restored: its driver's `backup` block and the label
/// selector that finds its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPlan {
    pub component: String,
    pub kind: BackupKind,
    /// The component's pod selector (the driver's `identifier.label`), already scoped to
    /// the deployment's release.
    pub selector: BTreeMap<String, String>,
    /// For `disk`: the pod-template volumes whose claims are backed up.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// For `action`: `actions.py::fn` that takes the backup, and the one that restores it.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub restore_action: Option<String>,
    /// Connection settings that override what the pod's env says (`POSTGRES_USER`…),
    /// from the driver's `backup` block.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
}

/// A `backup` flow run: back up one deployment into its environment's location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPayload {
    pub backup_id: String,
    /// The Velero Backup to create: [`velero_backup_name`] of `backup_id`.
    pub velero_backup: String,
    /// The deployment's namespace and Helm release.
    pub namespace: String,
    pub release_name: String,
    pub location: LocationRef,
    /// The driver version's content digest, for `action` strategies.
    pub driver_digest: String,
    pub driver_name: String,
    pub components: Vec<ComponentPlan>,
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
}

/// A `restore` flow run: a backup's data into a deployment of the same driver, the one it
/// was taken from or another (then Velero's `namespaceMapping` maps the source namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePayload {
    pub restore_id: String,
    pub backup_id: String,
    pub velero_backup: String,
    pub velero_restore: String,
    /// Where the backup was taken.
    pub source_namespace: String,
    pub source_release_name: String,
    /// The deployment restored into.
    pub namespace: String,
    pub release_name: String,
    /// The location holding the backup (the source environment's).
    pub location: LocationRef,
    pub driver_digest: String,
    pub driver_name: String,
    pub components: Vec<ComponentPlan>,
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
}

/// A `delete_backup` flow run: the backup's data leaves the bucket (a Velero
/// `DeleteBackupRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBackupPayload {
    pub backup_id: String,
    pub velero_backup: String,
    pub location: LocationRef,
}

fn default_deadline() -> u64 {
    DEFAULT_DEADLINE_SECONDS
}

/// One component's part of a backup or restore, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentResult {
    pub component: String,
    pub kind: BackupKind,
    /// Bytes the strategy wrote (a dump's size, the volumes' files) or read back.
    pub bytes: Option<u64>,
    pub duration_ms: u64,
    /// Why this component failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// The result of a `backup` run (the run's `result` in `completeFlowRun`). A run that
/// cannot even start (no location, no Velero) fails instead, with its error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    /// `completed`, `partially_failed` or `failed`.
    pub state: BackupState,
    /// The bytes stored in the bucket for this backup.
    pub size_bytes: Option<u64>,
    pub components: Vec<ComponentResult>,
    /// Errors not tied to one component (Velero's own, a deadline passed).
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The result of a `restore` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    pub state: RestoreState,
    pub components: Vec<ComponentResult>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// What the agent reports about each environment's Velero location
/// (`reportBackupLocationStatuses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatusReport {
    pub environment_id: String,
    /// Velero's phase: `Available` or `Unavailable`.
    pub phase: String,
    pub message: Option<String>,
}

/// A backup's overall state from its components' results and the other errors: nothing
/// failed → completed (a deployment without backed-up components still has its objects
/// backed up); every component failed, or an error with no component to show for it →
/// failed; otherwise partially failed.
pub fn overall_state(components: &[ComponentResult], errors: &[String]) -> BackupState {
    let failed = components.iter().filter(|c| c.error.is_some()).count();
    let every_component_failed = failed == components.len();
    if failed == 0 && errors.is_empty() {
        BackupState::Completed
    } else if every_component_failed {
        BackupState::Failed
    } else {
        BackupState::PartiallyFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(error: Option<&str>) -> ComponentResult {
        ComponentResult {
            component: "db".into(),
            kind: BackupKind::Postgres,
            bytes: Some(10),
            duration_ms: 5,
            error: error.map(str::to_owned),
        }
    }

    /// Names are DNS labels whatever the id looks like.
    #[test]
    fn names_are_dns_labels() {
        assert_eq!(velero_backup_name("01HX_Ab.c"), "styrmin-01hx-ab-c");
        assert_eq!(velero_restore_name("R1"), "styrmin-restore-r1");
        assert_eq!(
            credentials_secret_name("styrmin-dev"),
            "styrmin-dev-credentials"
        );
    }

    /// All good → completed; some failed or an outside error → partially failed; every
    /// component failed → failed.
    #[test]
    fn the_overall_state_follows_the_components() {
        assert_eq!(overall_state(&[result(None)], &[]), BackupState::Completed);
        assert_eq!(
            overall_state(&[result(None), result(Some("x"))], &[]),
            BackupState::PartiallyFailed
        );
        assert_eq!(
            overall_state(&[result(None)], &["velero".into()]),
            BackupState::PartiallyFailed
        );
        assert_eq!(
            overall_state(&[result(Some("x"))], &[]),
            BackupState::Failed
        );
        assert_eq!(overall_state(&[], &["x".into()]), BackupState::Failed);
        assert_eq!(overall_state(&[], &[]), BackupState::Completed);
    }

    /// The wire spelling is camelCase and the states are the API's words.
    #[test]
    fn results_use_the_api_spelling() {
        let wire = serde_json::to_value(BackupResult {
            state: BackupState::PartiallyFailed,
            size_bytes: Some(3),
            components: vec![result(Some("pg_dump failed"))],
            errors: vec![],
        })
        .unwrap();
        assert_eq!(wire["state"], "partially_failed");
        assert_eq!(wire["sizeBytes"], 3);
        assert_eq!(wire["components"][0]["kind"], "postgres");
        assert_eq!(wire["components"][0]["durationMs"], 5);
        let location: LocationRef = serde_json::from_value(json!({
            "locationId": "l1", "name": "styrmin-dev", "endpoint": "http://s3",
            "bucket": "b", "region": "us-east-1"
        }))
        .unwrap();
        assert!(location.path_style);
        assert_eq!(location.checksum_algorithm, "");
    }
}
