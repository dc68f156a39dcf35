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
use styrmin_core::children::CHART_CREDENTIALS_SECRET;
use styrmin_core::context::GlobalContext;
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentSpec};
use styrmin_core::driver::Mode;
use styrmin_core::hooks;
use styrmin_core::planner::{FlowKind, Phase};
use tokio::sync::{Mutex, Semaphore, watch};

use crate::actions::{self, ActionHost};
use crate::api::{AgentApi, Run};
use crate::bundle;
use crate::runlog::{LogSink, RunLog};

pub const FIELD_MANAGER: &str = "styrmin-worker";
/// SPEC §5: an action may run for 10 minutes unless the driver says otherwise.
const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Runs executed at once: one slow deployment must not hold the others up. A run spends
/// most of its time waiting on one watch for the operator's verdict, which costs little.
const PARALLEL_RUNS: usize = 64;

/// A driver version as the worker uses it.
pub struct DriverVersion {
    pub files: Arc<bundle::Files>,
    pub spec: styrmin_core::driver::DriverSpec,
}

pub struct Worker {
    pub api: AgentApi,
    pub client: Client,
    /// The longest a core step waits for the operator.
    pub core_timeout: Duration,
    /// The longest an action may run when the driver sets no `timeout_seconds`.
    pub action_timeout: Duration,
    /// Runs executed at once (each deployment has at most one; the server sees to that).
    parallel: usize,
    /// Driver versions already fetched (and their spec read), by digest.
    bundles: Mutex<BTreeMap<String, Arc<DriverVersion>>>,
    /// Namespaces already given their namespace object, bundle ConfigMap and chart
    /// credentials (forgotten when a run there fails, in case they were removed).
    prepared: Mutex<std::collections::HashSet<String>>,
    /// One permit per run executing.
    slots: Arc<Semaphore>,
    /// Set when the agent stops: no more claims.
    stopping: watch::Sender<bool>,
    /// Set when the grace period is over: runs still executing are handed back.
    handing_back: watch::Sender<bool>,
}

impl Worker {
    pub fn new(api: AgentApi, client: Client, core_timeout: Duration) -> Worker {
        Worker {
            api,
            client,
            core_timeout,
            action_timeout: DEFAULT_ACTION_TIMEOUT,
            parallel: PARALLEL_RUNS,
            bundles: Mutex::new(BTreeMap::new()),
            prepared: Mutex::new(Default::default()),
            slots: Arc::new(Semaphore::new(PARALLEL_RUNS)),
            stopping: watch::Sender::new(false),
            handing_back: watch::Sender::new(false),
        }
    }

    /// Claims flow runs and runs up to `parallel` of them at once, until `shutdown`.
    pub async fn run(self: Arc<Self>) {
        let slots = self.slots.clone();
        let mut stopping = self.stopping.subscribe();
        loop {
            if slots.available_permits() == 0 {
                tokio::select! {
                    _ = set(&mut stopping) => return,
                    permit = slots.clone().acquire_owned() => drop(permit),
                }
                continue;
            }
            let claimed = tokio::select! {
                _ = set(&mut stopping) => return,
                claimed = self.api.claim(slots.available_permits() as i32, 20.0) => claimed,
            };
            match claimed {
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

    /// Stops claiming, lets the runs in flight finish for up to `grace`, then hands the
    /// rest back to the server so that no lease is left without a heartbeat.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.send_replace(true);
        let all = self.parallel as u32;
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_ok()
        {
            return;
        }
        let in_flight = all as usize - self.slots.available_permits();
        tracing::info!(runs = in_flight, "grace period over: handing runs back");
        self.handing_back.send_replace(true);
        // Handing back is one call per run; bounded in case the server is unreachable.
        if tokio::time::timeout(Duration::from_secs(10), self.slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some runs could not be handed back; their leases will expire");
        }
    }

    async fn handle(self: Arc<Self>, run: Run) {
        let heartbeat = AbortOnDrop({
            let api = self.api.clone();
            let run = run.clone();
            tokio::spawn(async move {
                // Three heartbeats per lease: one lost call does not lose the run.
                let every = Duration::from_secs_f64((run.lease_seconds / 3.0).clamp(0.2, 10.0));
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if let Err(e) = api.heartbeat(&run).await {
                        tracing::warn!(run = run.id, error = %e, "heartbeat failed");
                    }
                }
            })
        });
        let log = RunLog::start(self.api.clone(), run.clone());
        log.line(
            "info",
            format!("{} started (attempt {})", run.kind, run.attempt),
        );
        let mut handing_back = self.handing_back.subscribe();
        let outcome = tokio::select! {
            outcome = self.execute(&run, log.sink()) => outcome,
            _ = set(&mut handing_back) => {
                // Every step is idempotent: the next attempt picks up where this one stopped.
                log.line("warning", "the agent is shutting down: handing the run back");
                log.flush().await;
                if let Err(e) = self.api.release(&run, "agent shutting down").await {
                    tracing::warn!(run = run.id, error = %e, "cannot hand the run back; its lease will expire");
                }
                return;
            }
        };
        if outcome.is_err() {
            self.prepared.lock().await.clear();
        }
        drop(heartbeat);
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

    async fn execute(self: &Arc<Self>, run: &Run, log: &LogSink) -> Result<Value> {
        match run.kind.as_str() {
            "create" | "update" | "upgrade" => self.apply_with_hooks(run, log).await,
            "stop" => self.set_phase(run, log, Phase::Stopped).await,
            "start" => self.set_phase(run, log, Phase::Running).await,
            "delete" => self.delete(run, log).await,
            other => bail!("this agent does not run `{other}` flow runs yet"),
        }
    }

    /// A create, update or upgrade: the hook's `pre` actions, the core (the driver's own
    /// core action, or applying the Instance), then the `post` actions (SPEC §5).
    async fn apply_with_hooks(self: &Arc<Self>, run: &Run, log: &LogSink) -> Result<Value> {
        let kind: FlowKind = run
            .kind
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown flow kind {}", run.kind))?;
        let digest = run.payload["driverDigest"]
            .as_str()
            .context("the run's payload has no driverDigest")?
            .to_owned();
        let version = self.bundle(&digest).await?;
        let plan = hooks::plan(&version.spec, kind);
        let Some(hook) = plan.hook else {
            return self.apply_instance(run, log).await;
        };
        let context: GlobalContext = serde_json::from_value(run.payload["context"].clone())
            .context("the run's Context does not read as a GlobalContext")?;
        let host = Arc::new(ActionHost {
            worker: self.clone(),
            run: run.clone(),
            log: log.clone(),
            namespace: context.instance.namespace.clone(),
            context,
            files: version.files.clone(),
            driver_digest: digest,
        });
        let mut result = json!({});
        for (mode, actions) in plan.stages() {
            if mode == Mode::Core && actions.is_empty() {
                result = self.apply_instance(run, log).await?;
            } else if !actions.is_empty() {
                log.line(
                    "info",
                    format!("hook {hook}: {mode} ({} action(s))", actions.len()),
                );
                actions::run_stage(&host, hook, &actions).await?;
            }
        }
        Ok(result)
    }

    /// A driver version's files and spec, fetched and read once per digest.
    pub async fn bundle(&self, digest: &str) -> Result<Arc<DriverVersion>> {
        let mut cache = self.bundles.lock().await;
        if let Some(version) = cache.get(digest) {
            return Ok(version.clone());
        }
        let files = self.api.bundle(digest).await?;
        let spec = driver_spec(&files)?;
        let version = Arc::new(DriverVersion {
            files: Arc::new(files),
            spec,
        });
        cache.insert(digest.to_owned(), version.clone());
        Ok(version)
    }

    /// The core of create, update and upgrade: namespace, bundle, StyrminDeployment, wait.
    pub async fn apply_instance(&self, run: &Run, log: &LogSink) -> Result<Value> {
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
            let (_, version) = tokio::try_join!(
                ensure_namespace(&self.client, &namespace),
                self.bundle(&digest)
            )?;
            // Both need only the namespace: written side by side.
            tokio::try_join!(
                bundle::ensure(&self.client, &namespace, &driver, &digest, &version.files),
                async {
                    if chart_repository.is_some() {
                        ensure_chart_credentials(&self.client, &namespace, &self.api.token).await?;
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
        // The server is the one render site: its values go to the cluster as they are,
        // checked against the digest it computed, never rendered again here.
        let values = p["values"].clone();
        match p["valuesDigest"].as_str() {
            Some(sent) => styrmin_core::crd::verify_values_digest(&values, sent).map_err(|e| {
                anyhow::anyhow!("the run's values are not the ones the server rendered: {e}")
            })?,
            None => log.line(
                "warning",
                "the run carries no valuesDigest (scheduled by an older server); its values are applied as sent",
            ),
        }
        let values_digest = styrmin_core::crd::values_digest(&values);
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
                values,
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

    async fn set_phase(&self, run: &Run, log: &LogSink, phase: Phase) -> Result<Value> {
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

    async fn delete(&self, run: &Run, log: &LogSink) -> Result<Value> {
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

/// The driver version's spec, from its bundle.
fn driver_spec(files: &bundle::Files) -> Result<styrmin_core::driver::DriverSpec> {
    let text = |name: &str| {
        files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let loaded = styrmin_core::driver::load(&styrmin_core::driver::DriverFiles {
        spec: text(styrmin_core::driver::SPEC_FILE)
            .context("the driver bundle has no driver.styrmin.yml")?,
        values_template: text(styrmin_core::render::VALUES_FILE),
        actions: text(styrmin_core::driver::ACTIONS_FILE),
        files: files.keys().cloned().collect(),
    });
    if let Some(error) = loaded.errors().next() {
        bail!("the driver bundle does not validate: {error}");
    }
    Ok(loaded
        .driver
        .context("the driver bundle has no driver")?
        .spec
        .spec)
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

/// Resolves once the flag is set (the watch's guard is not held across awaits).
async fn set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// A task that ends with its owner (the heartbeat of a run, whichever way the run ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
