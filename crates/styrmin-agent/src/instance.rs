//! Applying an Instance and waiting for the operator's verdict (the default core of a
//! flow, SPEC §5), and the phase changes and deletion of a deployment's StyrminDeployment.
//! Used by the worker and by actions (`upgrade_deployment_version`); holds only what that
//! needs, so neither depends on the other.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use styrmin_core::children::{CHART_CREDENTIALS_SECRET, DEPLOYMENT_LABEL};
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentSpec};
use styrmin_core::planner::Phase;
use styrmin_core::protocol::ApplyPayload;
use tokio::sync::Mutex;

use crate::api::AgentApi;
use crate::bundle;
use crate::driver_versions::DriverVersions;
use crate::runlog::LogSink;
use crate::settled::Settled;
use crate::slots::waiting;

pub const FIELD_MANAGER: &str = "styrmin-worker";

pub struct Instances {
    client: Client,
    /// For the values of secret parameters.
    api: AgentApi,
    versions: Arc<DriverVersions>,
    /// What a namespace's chart repository credentials hold.
    chart_token: String,
    /// The longest a core step waits for the operator.
    core_timeout: Duration,
    /// Namespaces already given their namespace object, bundle ConfigMap and chart
    /// credentials (forgotten when a run fails, in case they were removed).
    prepared: Mutex<HashSet<String>>,
    /// Every StyrminDeployment, from one watch: what the waits and lookups read.
    settled: Arc<Settled>,
}

impl Instances {
    pub fn new(
        client: Client,
        api: AgentApi,
        versions: Arc<DriverVersions>,
        chart_token: String,
        core_timeout: Duration,
    ) -> Instances {
        Instances {
            settled: Settled::start(client.clone()),
            client,
            api,
            versions,
            chart_token,
            core_timeout,
            prepared: Mutex::new(HashSet::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Forgets which namespaces were prepared: the next run checks them again.
    pub async fn forget_prepared(&self) {
        self.prepared.lock().await.clear();
    }

    /// The core of create, update and upgrade: namespace, bundle, StyrminDeployment, wait.
    pub async fn apply(&self, apply: &ApplyPayload, log: &LogSink) -> Result<Value> {
        let instance = &apply.instance;
        // The server is the one render site: its values go to the cluster as they are,
        // checked against the digest it computed, never rendered again here.
        let values_digest = instance.checked_values_digest()?;
        let namespace = instance.context.instance.namespace.clone();
        let release = instance.context.instance.release_name.clone();
        let (driver, digest) = (instance.driver_name.clone(), instance.driver_digest.clone());

        let chart_repository = instance.chart_repository.clone();
        let configmap = bundle::configmap_name(&driver, &digest);
        // What a namespace needs once: made on the first run there, remembered after.
        let key = format!("{namespace}/{configmap}/{}", chart_repository.is_some());
        if !self.prepared.lock().await.contains(&key) {
            log.line("info", format!("ensuring namespace {namespace}"));
            let (_, version) = tokio::try_join!(
                ensure_namespace(&self.client, &namespace),
                self.versions.get(&digest)
            )?;
            // Both need only the namespace: written side by side.
            tokio::try_join!(
                bundle::ensure(&self.client, &namespace, &driver, &digest, &version.files),
                async {
                    if chart_repository.is_some() {
                        ensure_chart_credentials(&self.client, &namespace, &self.chart_token)
                            .await?;
                    }
                    Ok(())
                }
            )?;
            self.prepared.lock().await.insert(key.clone());
        }
        log.line(
            "info",
            format!("namespace {namespace} ready; driver bundle in ConfigMap {configmap}"),
        );
        let deployment_id = &apply.deployment.deployment_id;
        let secret = self
            .write_secret_parameters(&instance.context, deployment_id)
            .await?;
        if let Some(secret) = &secret {
            log.line(
                "info",
                format!("secret parameters written to Secret {namespace}/{secret}"),
            );
        }
        let phase = match apply.deployment.phase {
            Phase::Stopped => Phase::Stopped,
            Phase::Running | Phase::Deleting => Phase::Running,
        };
        let sd = StyrminDeployment::new(
            &release,
            StyrminDeploymentSpec {
                deployment_id: apply.deployment.deployment_id.clone(),
                driver: DriverRef {
                    name: driver,
                    version: instance.driver_version.clone(),
                    digest,
                },
                app_version: instance.app_version.clone(),
                phase,
                context: serde_json::to_value(&instance.context)?,
                values: instance.values.clone(),
                values_digest,
                instance_id: Some(instance.instance_id.clone()),
                chart_repository,
            },
        );
        let api: Api<StyrminDeployment> = Api::namespaced(self.client.clone(), &namespace);
        let applied = api
            .patch(
                &release,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&sd),
            )
            .await
            .with_context(|| format!("applying StyrminDeployment {namespace}/{release}"))?;
        log.line(
            "info",
            format!(
                "StyrminDeployment {namespace}/{release} applied (generation {})",
                applied.metadata.generation.unwrap_or(0)
            ),
        );
        let ready = self
            .wait_ready(&api, &release, applied.metadata.generation)
            .await?;
        // The release reads the new Secret now: older ones of this deployment can go.
        prune_secret_parameters(&self.client, &namespace, deployment_id, secret.as_deref()).await?;
        Ok(ready)
    }

    /// Writes the deployment's secret parameter values into the Secret its Context names
    /// (`<release>-secrets-<hex>`), fetched from the server now; returns that name, or
    /// `None` when the Context names none. Only names are ever logged.
    async fn write_secret_parameters(
        &self,
        context: &styrmin_core::GlobalContext,
        deployment_id: &str,
    ) -> Result<Option<String>> {
        let prefix = format!("{}-secrets-", context.instance.release_name);
        let Some(wanted) = context
            .parameters
            .values()
            .filter_map(|v| styrmin_core::parameters::secret_ref(v).ok())
            .map(|r| r.name)
            .find(|name| name.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let fetched = self.api.secret_parameters(deployment_id).await?;
        if fetched.secret_name.as_deref() != Some(wanted.as_str()) {
            bail!(
                "the deployment's secret parameters changed after this run was planned (Secret {wanted} is no longer current); the run planned for the change applies them"
            );
        }
        let namespace = &context.instance.namespace;
        let owned = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": wanted, "labels": {
                "app.kubernetes.io/managed-by": "styrmin",
                DEPLOYMENT_LABEL: deployment_id,
                SECRET_PARAMETERS_LABEL: "true",
            }},
            "type": "Opaque",
            "stringData": fetched.values,
        });
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        api.patch(
            &wanted,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(owned),
        )
        .await
        .with_context(|| format!("cannot write Secret {namespace}/{wanted}"))?;
        Ok(Some(wanted))
    }

    /// `stop` / `start`: sets the phase of the deployment's StyrminDeployment and waits.
    pub async fn set_phase(
        &self,
        deployment_id: &str,
        log: &LogSink,
        phase: Phase,
    ) -> Result<Value> {
        let (api, name) = self.existing(deployment_id).await?;
        // A merge patch: an apply naming only the phase would take the rest of the spec
        // away from the worker's field manager, and with it from the object.
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"phase": phase.as_str()}})),
            )
            .await?;
        log.line("info", format!("phase set to {phase}"));
        self.wait_ready(&api, &name, patched.metadata.generation)
            .await
    }

    /// `delete`: deletes the StyrminDeployment and waits until its objects are gone.
    pub async fn delete(&self, deployment_id: &str, log: &LogSink) -> Result<Value> {
        let Ok((api, name)) = self.existing(deployment_id).await else {
            log.line("info", "nothing to delete: no StyrminDeployment");
            return Ok(json!({"deleted": false}));
        };
        api.delete(&name, &DeleteParams::background()).await.ok();
        log.line(
            "info",
            format!("StyrminDeployment {name} deleted; waiting for its objects to go"),
        );
        let namespace = api.namespace().unwrap_or_default().to_owned();
        let gone = self.settled.until(&namespace, &name, |sd| sd.is_none());
        match tokio::time::timeout(self.core_timeout, waiting(gone)).await {
            Ok(_) => {
                prune_secret_parameters(&self.client, &namespace, deployment_id, None).await?;
                Ok(json!({"deleted": true}))
            }
            Err(_) => bail!(
                "StyrminDeployment {name} was not gone within {:?}",
                self.core_timeout
            ),
        }
    }

    /// The deployment's StyrminDeployment, wherever it is: from the shared watch's cache,
    /// or, when the cache does not have it (yet), from a listing.
    async fn existing(&self, deployment_id: &str) -> Result<(Api<StyrminDeployment>, String)> {
        if let Some((namespace, name)) = self.settled.find(deployment_id).await {
            return Ok((Api::namespaced(self.client.clone(), &namespace), name));
        }
        let all: Api<StyrminDeployment> = Api::all(self.client.clone());
        let found = all
            .list(&Default::default())
            .await?
            .into_iter()
            .find(|sd| sd.spec.deployment_id == deployment_id)
            .with_context(|| format!("no StyrminDeployment for deployment {deployment_id}"))?;
        let namespace = found.namespace().unwrap_or_default();
        Ok((
            Api::namespaced(self.client.clone(), &namespace),
            found.name_any(),
        ))
    }

    /// Waits until the operator reports the generation Ready, or fails with its error.
    /// Watches the object until the operator reports the generation Ready (or Stalled,
    /// which fails the run with the operator's error), within the core timeout.
    async fn wait_ready(
        &self,
        api: &Api<StyrminDeployment>,
        name: &str,
        generation: Option<i64>,
    ) -> Result<Value> {
        let settled = move |sd: Option<&StyrminDeployment>| {
            sd.and_then(|sd| sd.status.as_ref()).is_some_and(|s| {
                s.observed_generation == generation && (s.is("Ready") || s.is("Stalled"))
            })
        };
        let namespace = api.namespace().unwrap_or_default().to_owned();
        let wait = self.settled.until(&namespace, name, settled);
        let sd = match tokio::time::timeout(self.core_timeout, waiting(wait)).await {
            Ok(found) => found.with_context(|| format!("StyrminDeployment {name} is gone"))?,
            Err(_) => bail!(
                "StyrminDeployment {name} was not ready within {:?}",
                self.core_timeout
            ),
        };
        let status = sd.status.clone().unwrap_or_default();
        if status.is("Ready") {
            return Ok(json!({"components": status.components}));
        }
        bail!(
            "{}",
            status
                .last_error
                .unwrap_or_else(|| "the operator stalled".into())
        )
    }
}

/// On the Secrets the worker writes for secret parameters.
pub const SECRET_PARAMETERS_LABEL: &str = "styrmin.io/secret-parameters";

/// Deletes the deployment's secret-parameter Secrets other than `keep`.
async fn prune_secret_parameters(
    client: &Client,
    namespace: &str,
    deployment_id: &str,
    keep: Option<&str>,
) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{DEPLOYMENT_LABEL}={deployment_id},{SECRET_PARAMETERS_LABEL}=true");
    let found = api
        .list_metadata(&kube::api::ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("cannot list the secret-parameter Secrets of {namespace}"))?;
    for secret in found {
        let name = secret.name_any();
        if Some(name.as_str()) != keep {
            api.delete(&name, &DeleteParams::default())
                .await
                .with_context(|| format!("cannot delete Secret {namespace}/{name}"))?;
        }
    }
    Ok(())
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "styrmin"}}});
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(ns))
        .await
        .with_context(|| format!("cannot ensure namespace {name}"))?;
    Ok(())
}

/// The Secret the HelmRepository of a chart shipped inside a driver authenticates with: the
/// cluster's chart-pull token, never the agent's own token.
async fn ensure_chart_credentials(client: &Client, namespace: &str, token: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": CHART_CREDENTIALS_SECRET, "labels": {"app.kubernetes.io/managed-by": "styrmin"}},
        "stringData": {"username": "styrmin-charts", "password": token},
    });
    api.patch(
        CHART_CREDENTIALS_SECRET,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(secret),
    )
    .await
    .with_context(|| format!("cannot write Secret {namespace}/{CHART_CREDENTIALS_SECRET}"))?;
    Ok(())
}
