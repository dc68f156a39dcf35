//! Velero's objects as the backup engine writes and reads them (velero.io/v1): the
//! environment's `BackupStorageLocation` and its credentials Secret, `Backup`, `Restore`
//! and `DeleteBackupRequest`, and the waits on their phases.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use styrmin_core::backup::{LocationRef, VELERO_NAMESPACE, credentials_secret_name};

use crate::actions::api_error;

const MANAGER: &str = "styrmin-agent-backups";
const POLL: Duration = Duration::from_millis(300);
/// How long a changed location may take to be validated before its phase is read as is.
const VALIDATION_WAIT: Duration = Duration::from_secs(30);

/// A location's S3 credentials (never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

pub fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("velero.io", "v1", kind))
}

pub fn api(client: &Client, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), VELERO_NAMESPACE, &resource(kind))
}

/// Velero's view of a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStatus {
    /// `Available`, `Unavailable`, or empty while Velero has not validated it.
    pub phase: String,
    pub message: Option<String>,
}

impl LocationStatus {
    pub fn available(&self) -> bool {
        self.phase == "Available"
    }
}

/// The `BackupStorageLocation` spec for a location: S3-compatible settings, objects under
/// the location's name (environments may share a bucket).
pub fn location_spec(location: &LocationRef) -> Value {
    json!({
        "provider": "aws",
        "objectStorage": {"bucket": location.bucket, "prefix": location.name},
        "config": {
            "region": location.region,
            "s3ForcePathStyle": location.path_style.to_string(),
            "s3Url": location.endpoint,
            "checksumAlgorithm": location.checksum_algorithm,
        },
        "credential": {"name": credentials_secret_name(&location.name), "key": "cloud"},
        "accessMode": "ReadWrite",
    })
}

/// The AWS credentials file Velero's AWS plugin reads.
pub fn credentials_file(credentials: &Credentials) -> String {
    format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
        credentials.access_key_id, credentials.secret_access_key
    )
}

/// Creates or updates the location and its credentials Secret in Velero's namespace,
/// then reads back Velero's phase (waiting, bounded, for a changed location to be
/// validated again).
pub async fn ensure_location(
    client: &Client,
    location: &LocationRef,
    credentials: &Credentials,
) -> Result<LocationStatus> {
    ensure_namespace(client).await?;
    let secret_name = credentials_secret_name(&location.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), VELERO_NAMESPACE);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "labels": {"app.kubernetes.io/managed-by": "styrmin"}},
        "stringData": {"cloud": credentials_file(credentials)},
    });
    let before_secret = secrets.get_opt(&secret_name).await.map_err(api_error)?;
    secrets
        .patch(
            &secret_name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(api_error)
        .with_context(|| format!("cannot write the Secret {VELERO_NAMESPACE}/{secret_name}"))?;
    let after_secret = secrets.get_opt(&secret_name).await.map_err(api_error)?;
    let secret_changed = before_secret.and_then(|s| s.metadata.resource_version)
        != after_secret.and_then(|s| s.metadata.resource_version);

    let locations = api(client, "BackupStorageLocation");
    let before = locations.get_opt(&location.name).await.map_err(api_error)?;
    let mut object = DynamicObject::new(&location.name, &resource("BackupStorageLocation"));
    object.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_owned(),
        "styrmin".to_owned(),
    )]));
    // A changed Secret is not a changed location to Velero: a new digest makes it look again.
    let digest = format!("{:x}", fnv(&credentials_file(credentials)));
    object.metadata.annotations = Some(BTreeMap::from([(
        "styrmin.io/credentials-digest".to_owned(),
        digest,
    )]));
    object.data = json!({"spec": location_spec(location)});
    let after = locations
        .patch(
            &location.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(api_error)
        .with_context(|| {
            format!(
                "cannot write the BackupStorageLocation {VELERO_NAMESPACE}/{}",
                location.name
            )
        })?;
    let validated = |o: &DynamicObject| o.data["status"]["lastValidationTime"].clone();
    let changed = secret_changed
        || before.as_ref().map(|b| b.metadata.resource_version.clone())
            != Some(after.metadata.resource_version.clone());
    let previous = before.as_ref().map(validated).unwrap_or(Value::Null);
    let deadline = Instant::now() + VALIDATION_WAIT;
    loop {
        let current = locations.get(&location.name).await.map_err(api_error)?;
        let phase = current.data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let fresh = !changed || (validated(&current) != previous && !phase.is_empty());
        if fresh || Instant::now() >= deadline {
            let message = current.data["status"]["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            return Ok(LocationStatus { phase, message });
        }
        tokio::time::sleep(POLL).await; // polling Velero's status within a deadline
    }
}

/// Velero's phase of a location as it stands, for status reports
/// (`LocationStatusReport`); `None` when the location is not in this cluster.
pub async fn location_status(client: &Client, name: &str) -> Result<Option<LocationStatus>> {
    let found = api(client, "BackupStorageLocation")
        .get_opt(name)
        .await
        .map_err(api_error)?;
    Ok(found.map(|location| LocationStatus {
        phase: location.data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message: location.data["status"]["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
    }))
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

async fn ensure_namespace(client: &Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(VELERO_NAMESPACE)
        .await
        .map_err(api_error)?
        .is_none()
    {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": VELERO_NAMESPACE}}))?;
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error(e)).context("cannot create Velero's namespace"),
        }
    }
    Ok(())
}

/// Creates a Velero object unless one of that name exists (a retried run).
pub async fn create_if_missing(
    client: &Client,
    kind: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: Value,
) -> Result<()> {
    let objects = api(client, kind);
    if objects.get_opt(name).await.map_err(api_error)?.is_some() {
        return Ok(());
    }
    let mut object = DynamicObject::new(name, &resource(kind));
    object.metadata.labels = Some(labels);
    object.metadata.annotations = Some(annotations);
    object.data = json!({ "spec": spec });
    match objects.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            Err(api_error(e)).with_context(|| format!("cannot create the Velero {kind} {name}"))
        }
    }
}

/// How a Velero backup or restore ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub phase: String,
    pub status: Value,
}

/// Waits until the Backup or Restore reaches a final phase, or fails when the deadline
/// passes first (naming the phase it was stuck in).
pub async fn wait_finished(
    client: &Client,
    kind: &str,
    name: &str,
    deadline: Instant,
    deadline_seconds: u64,
) -> Result<Finished> {
    let objects = api(client, kind);
    loop {
        let object = objects
            .get_opt(name)
            .await
            .map_err(api_error)?
            .with_context(|| format!("the Velero {kind} {name} is gone"))?;
        let phase = object.data["status"]["phase"]
            .as_str()
            .unwrap_or("New")
            .to_owned();
        if matches!(
            phase.as_str(),
            "Completed" | "PartiallyFailed" | "Failed" | "FailedValidation"
        ) {
            return Ok(Finished {
                phase,
                status: object.data["status"].clone(),
            });
        }
        if Instant::now() >= deadline {
            bail!(
                "the Velero {kind} {name} was still {phase} after the deadline of {deadline_seconds} s; \
                 check that Velero runs and can reach the location"
            );
        }
        tokio::time::sleep(POLL).await; // polling Velero's status within a deadline
    }
}

/// Velero's reasons for a phase other than `Completed`, one line.
pub fn reasons(finished: &Finished) -> String {
    let mut parts = Vec::new();
    if let Some(reason) = finished.status["failureReason"].as_str() {
        parts.push(reason.to_owned());
    }
    for list in ["validationErrors", "errors"] {
        if let Some(errors) = finished.status[list].as_array() {
            parts.extend(errors.iter().filter_map(|e| e.as_str().map(str::to_owned)));
        }
    }
    if parts.is_empty() {
        format!("Velero reports {}", finished.phase)
    } else {
        parts.join("; ")
    }
}

/// Waits until the object is gone.
pub async fn wait_gone(client: &Client, kind: &str, name: &str, deadline: Instant) -> Result<bool> {
    let objects = api(client, kind);
    loop {
        if objects.get_opt(name).await.map_err(api_error)?.is_none() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await; // polling within a deadline
    }
}
