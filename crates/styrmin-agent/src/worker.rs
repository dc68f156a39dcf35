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
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use styrmin_core::children::CHART_CREDENTIALS_SECRET;
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentSpec};
use styrmin_core::planner::Phase;
use tokio::sync::Mutex;

use crate::api::{AgentApi, Run};
use crate::bundle;
use crate::runlog::RunLog;

pub const FIELD_MANAGER: &str = "styrmin-worker";

pub struct Worker {
    pub api: AgentApi,
    pub client: Client,
    /// The longest a core step waits for the operator.
    pub core_timeout: Duration,
    /// Runs executed at once (each deployment has at most one; the server sees to that).
    pub parallel: usize,
    /// Bundles already fetched, by digest.
    bundles: Mutex<BTreeMap<String, Arc<bundle::Files>>>,
    /// Namespaces already given their namespace object, bundle ConfigMap and chart
    /// credentials (forgotten when a run there fails, in case they were removed).
    prepared: Mutex<std::collections::HashSet<String>>,
}

impl Worker {
    pub fn new(api: AgentApi, client: Client, core_timeout: Duration) -> Worker {
        Worker {
            api,
            client,
            core_timeout,
            parallel: 16,
            bundles: Mutex::new(BTreeMap::new()),
            prepared: Mutex::new(Default::default()),
        }
    }

    /// Claims flow runs and runs up to `parallel` of them at once, until the task is
    /// dropped: one slow deployment must not hold the others up.
    pub async fn run(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.parallel.max(1)));
        loop {
            if slots.available_permits() == 0 {
                drop(slots.clone().acquire_owned().await);
                continue;
            }
            match self.api.claim(slots.available_permits() as i32, 20.0).await {
                Ok(runs) => {
                    for run in runs {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let worker = self.clone();
                        tokio::spawn(async move {
                            worker.handle(run).await;
                            drop(slot);
                        });
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
        let log = RunLog::start(self.api.clone(), run.clone());
        log.line(
            "info",
            format!("{} started (attempt {})", run.kind, run.attempt),
        );
        let outcome = self.execute(&run, &log).await;
        if outcome.is_err() {
            self.prepared.lock().await.clear();
        }
        heartbeat.abort();
        let reported = match outcome {
            Ok(result) => {
                log.line("info", format!("{} completed", run.kind));
                log.flush().await;
                self.api.complete(&run, result).await
            }
            Err(e) => {
                let message = format!("{e:#}");
                log.line("error", message.clone());
                log.flush().await;
                self.api.fail(&run, &message).await
            }
        };
        if let Err(e) = reported {
            tracing::warn!(run = run.id, error = %e, "cannot report the run's outcome");
        }
    }

    async fn execute(&self, run: &Run, log: &RunLog) -> Result<Value> {
        match run.kind.as_str() {
            "create" | "update" | "upgrade" => self.apply_instance(run, log).await,
            "stop" => self.set_phase(run, log, Phase::Stopped).await,
            "start" => self.set_phase(run, log, Phase::Running).await,
            "delete" => self.delete(run, log).await,
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
    async fn apply_instance(&self, run: &Run, log: &RunLog) -> Result<Value> {
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

        let chart_repository = p["chartRepository"].as_str().map(str::to_owned);
        let configmap = bundle::configmap_name(&driver, &digest);
        // What a namespace needs once: made on the first run there, remembered after.
        let key = format!("{namespace}/{configmap}/{}", chart_repository.is_some());
        if !self.prepared.lock().await.contains(&key) {
            log.line("info", format!("ensuring namespace {namespace}"));
            ensure_namespace(&self.client, &namespace).await?;
            let files = self.bundle(&digest).await?;
            bundle::ensure(&self.client, &namespace, &driver, &digest, &files).await?;
            if chart_repository.is_some() {
                ensure_chart_credentials(&self.client, &namespace, &self.api.token).await?;
            }
            self.prepared.lock().await.insert(key.clone());
        }
        log.line(
            "info",
            format!("namespace {namespace} ready; driver bundle in ConfigMap {configmap}"),
        );
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
        log.line(
            "info",
            format!(
                "StyrminDeployment {namespace}/{release} applied (generation {})",
                applied.metadata.generation.unwrap_or(0)
            ),
        );
        self.wait_ready(&api, &release, applied.metadata.generation)
            .await
    }

    async fn set_phase(&self, run: &Run, log: &RunLog, phase: Phase) -> Result<Value> {
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
        log.line("info", format!("phase set to {phase}"));
        self.wait_ready(&api, &name, patched.metadata.generation)
            .await
    }

    async fn delete(&self, run: &Run, log: &RunLog) -> Result<Value> {
        let Ok((api, name)) = self.existing(run).await else {
            log.line("info", "nothing to delete: no StyrminDeployment");
            return Ok(json!({"deleted": false}));
        };
        api.delete(&name, &DeleteParams::background()).await.ok();
        log.line(
            "info",
            format!("StyrminDeployment {name} deleted; waiting for its objects to go"),
        );
        let gone = await_condition(api, &name, |sd: Option<&StyrminDeployment>| sd.is_none());
        match tokio::time::timeout(self.core_timeout, gone).await {
            Ok(result) => {
                result?;
                Ok(json!({"deleted": true}))
            }
            Err(_) => bail!(
                "StyrminDeployment {name} was not gone within {:?}",
                self.core_timeout
            ),
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
        let sd = match tokio::time::timeout(
            self.core_timeout,
            await_condition(api.clone(), name, settled),
        )
        .await
        {
            Ok(result) => result?.with_context(|| format!("StyrminDeployment {name} is gone"))?,
            Err(_) => bail!(
                "StyrminDeployment {name} was not ready within {:?}",
                self.core_timeout
            ),
        };
        let status = sd.status.unwrap_or_default();
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
