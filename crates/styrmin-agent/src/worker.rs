//! The flow-run worker (SPEC §5, the core of each flow): long-polls the server, keeps the
//! lease alive, and turns each run into cluster state through the `StyrminDeployment`,
//! waiting (bounded) for the operator to report the result. Every step is idempotent, so a
//! run retried after a crash converges instead of duplicating.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use styrmin_core::children::CHART_CREDENTIALS_SECRET;
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentSpec};
use styrmin_core::planner::Phase;
use tokio::sync::Mutex;

use crate::api::{AgentApi, Run};
use crate::bundle;

pub const FIELD_MANAGER: &str = "styrmin-worker";

pub struct Worker {
    pub api: AgentApi,
    pub client: Client,
    /// The longest a core step waits for the operator.
    pub core_timeout: Duration,
    /// Bundles already fetched, by digest.
    bundles: Mutex<BTreeMap<String, Arc<bundle::Files>>>,
}

impl Worker {
    pub fn new(api: AgentApi, client: Client, core_timeout: Duration) -> Worker {
        Worker {
            api,
            client,
            core_timeout,
            bundles: Mutex::new(BTreeMap::new()),
        }
    }

    /// Claims and runs flow runs, one at a time, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.api.claim(1, 20.0).await {
                Ok(runs) => {
                    for run in runs {
                        self.handle(run).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim flow runs; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await; // back-off after a failed call
                }
            }
        }
    }

    async fn handle(&self, run: Run) {
        let heartbeat = {
            let api = self.api.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    if let Err(e) = api.heartbeat(&run).await {
                        tracing::warn!(run = run.id, error = %e, "heartbeat failed");
                    }
                }
            })
        };
        let _ = self
            .api
            .log(
                &run,
                "info",
                &format!("{} started (attempt {})", run.kind, run.attempt),
            )
            .await;
        let outcome = self.execute(&run).await;
        heartbeat.abort();
        let reported = match outcome {
            Ok(result) => {
                let _ = self
                    .api
                    .log(&run, "info", &format!("{} completed", run.kind))
                    .await;
                self.api.complete(&run, result).await
            }
            Err(e) => {
                let message = format!("{e:#}");
                let _ = self.api.log(&run, "error", &message).await;
                self.api.fail(&run, &message).await
            }
        };
        if let Err(e) = reported {
            tracing::warn!(run = run.id, error = %e, "cannot report the run's outcome");
        }
    }

    async fn execute(&self, run: &Run) -> Result<Value> {
        match run.kind.as_str() {
            "create" | "update" | "upgrade" => self.apply_instance(run).await,
            "stop" => self.set_phase(run, Phase::Stopped).await,
            "start" => self.set_phase(run, Phase::Running).await,
            "delete" => self.delete(run).await,
            other => bail!("this agent does not run `{other}` flow runs yet"),
        }
    }

    async fn bundle(&self, digest: &str) -> Result<Arc<bundle::Files>> {
        let mut cache = self.bundles.lock().await;
        if let Some(files) = cache.get(digest) {
            return Ok(files.clone());
        }
        let files = Arc::new(self.api.bundle(digest).await?);
        cache.insert(digest.to_owned(), files.clone());
        Ok(files)
    }

    /// The core of create, update and upgrade: namespace, bundle, StyrminDeployment, wait.
    async fn apply_instance(&self, run: &Run) -> Result<Value> {
        let p = &run.payload;
        let text = |key: &str| -> Result<String> {
            p[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the run's payload has no {key}"))
        };
        let context = p["context"].clone();
        let namespace = context["instance"]["namespace"]
            .as_str()
            .context("the Context has no namespace")?
            .to_owned();
        let release = context["instance"]["release_name"]
            .as_str()
            .context("the Context has no release name")?
            .to_owned();
        let (driver, digest) = (text("driverName")?, text("driverDigest")?);

        self.api
            .log(run, "info", &format!("ensuring namespace {namespace}"))
            .await?;
        ensure_namespace(&self.client, &namespace).await?;
        let files = self.bundle(&digest).await?;
        let configmap = bundle::ensure(&self.client, &namespace, &driver, &digest, &files).await?;
        self.api
            .log(
                run,
                "info",
                &format!("driver bundle in ConfigMap {configmap}"),
            )
            .await?;
        let chart_repository = p["chartRepository"].as_str().map(str::to_owned);
        if chart_repository.is_some() {
            ensure_chart_credentials(&self.client, &namespace, &self.api.token).await?;
        }
        let values_digest = {
            let text = serde_json::to_string(&p["values"])?;
            Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let phase = match p["phase"].as_str() {
            Some("stopped") => Phase::Stopped,
            _ => Phase::Running,
        };
        let sd = StyrminDeployment::new(
            &release,
            StyrminDeploymentSpec {
                deployment_id: text("deploymentId")?,
                driver: DriverRef {
                    name: driver,
                    version: text("driverVersion")?,
                    digest,
                },
                app_version: text("appVersion")?,
                phase,
                context,
                values_digest,
                instance_id: p["instanceId"].as_str().map(str::to_owned),
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
        self.api
            .log(
                run,
                "info",
                &format!(
                    "StyrminDeployment {namespace}/{release} applied (generation {})",
                    applied.metadata.generation.unwrap_or(0)
                ),
            )
            .await?;
        self.wait_ready(run, &api, &release, applied.metadata.generation)
            .await
    }

    async fn set_phase(&self, run: &Run, phase: Phase) -> Result<Value> {
        let (api, name) = self.existing(run).await?;
        // A merge patch: an apply naming only the phase would take the rest of the spec
        // away from the worker's field manager, and with it from the object.
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"phase": phase.as_str()}})),
            )
            .await?;
        self.api
            .log(run, "info", &format!("phase set to {phase}"))
            .await?;
        self.wait_ready(run, &api, &name, patched.metadata.generation)
            .await
    }

    async fn delete(&self, run: &Run) -> Result<Value> {
        let Ok((api, name)) = self.existing(run).await else {
            self.api
                .log(run, "info", "nothing to delete: no StyrminDeployment")
                .await?;
            return Ok(json!({"deleted": false}));
        };
        api.delete(&name, &DeleteParams::background()).await.ok();
        self.api
            .log(
                run,
                "info",
                &format!("StyrminDeployment {name} deleted; waiting for its objects to go"),
            )
            .await?;
        let deadline = tokio::time::Instant::now() + self.core_timeout;
        loop {
            if api.get_opt(&name).await?.is_none() {
                return Ok(json!({"deleted": true}));
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "StyrminDeployment {name} was not gone within {:?}",
                    self.core_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await; // poll interval within a deadline
        }
    }

    /// The deployment's StyrminDeployment, found by the payload's release name.
    async fn existing(&self, run: &Run) -> Result<(Api<StyrminDeployment>, String)> {
        let deployment_id = run
            .deployment_id
            .clone()
            .context("the run names no deployment")?;
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
    async fn wait_ready(
        &self,
        run: &Run,
        api: &Api<StyrminDeployment>,
        name: &str,
        generation: Option<i64>,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + self.core_timeout;
        loop {
            let sd = api.get(name).await?;
            if let Some(status) = &sd.status
                && status.observed_generation == generation
            {
                if status.is("Ready") {
                    return Ok(json!({"components": status.components}));
                }
                if status.is("Stalled") {
                    bail!(
                        "{}",
                        status
                            .last_error
                            .clone()
                            .unwrap_or_else(|| "the operator stalled".into())
                    );
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "StyrminDeployment {name} was not ready within {:?}",
                    self.core_timeout
                );
            }
            let _ = run;
            tokio::time::sleep(Duration::from_millis(250)).await; // poll interval within a deadline
        }
    }
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "styrmin"}}});
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(ns))
        .await
        .with_context(|| format!("cannot ensure namespace {name}"))?;
    Ok(())
}

/// The Secret the HelmRepository of a chart shipped inside a driver authenticates with.
async fn ensure_chart_credentials(client: &Client, namespace: &str, token: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": CHART_CREDENTIALS_SECRET, "labels": {"app.kubernetes.io/managed-by": "styrmin"}},
        "stringData": {"username": "styrmin-agent", "password": token},
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
