//! The flow-run worker (SPEC §5, the core of each flow): long-polls the server, keeps the
//! lease alive, and turns each run into cluster state through the `StyrminDeployment`,
//! waiting (bounded) for the operator to report the result. Every step is idempotent, so a
//! run retried after a crash converges instead of duplicating.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use kube::Client;
use serde_json::{Value, json};
use styrmin_core::driver::Mode;
use styrmin_core::hooks;
use styrmin_core::planner::Phase;
use styrmin_core::protocol::{ApplyPayload, FlowRunPayload};
use tokio::sync::{Semaphore, watch};

use crate::actions::{self, ActionHost};
use crate::api::{AgentApi, Run};
use crate::backups;
use crate::driver_versions::DriverVersions;
use crate::instance::Instances;
use crate::locations;
use crate::runlog::{LogSink, RunLog};
use crate::slots::Slot;

/// SPEC §5: an action may run for 10 minutes unless the driver says otherwise.
const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Runs working at once: one slow deployment must not hold the others up. A run waiting
/// for the operator's verdict gives its slot back (`slots::waiting`): it costs an entry in
/// the shared watch, so waiting runs never keep others from being claimed.
const PARALLEL_RUNS: usize = 64;
/// Runs held at once, working or waiting: a bound on leases and memory, not on speed.
const RUNS_IN_FLIGHT: usize = 4096;
/// How often an agent the server refused asks again.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);

/// Whether a claim failed because the server refuses this agent (its protocol version),
/// rather than for a passing reason.
fn refused(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<styrmin_client::Error>()
        .is_some_and(|e| e.kind == styrmin_client::ErrorKind::Conflict)
}

pub struct Worker {
    api: AgentApi,
    /// Driver versions already fetched (and their spec read), by digest.
    versions: Arc<DriverVersions>,
    /// Applies Instances and phase changes; shared with the actions.
    instances: Arc<Instances>,
    /// The longest an action may run when the driver sets no `timeout_seconds`.
    action_timeout: Duration,
    /// One permit per run working (not while it waits for the cluster).
    slots: Arc<Semaphore>,
    /// One permit per run held, working or waiting.
    in_flight: Arc<Semaphore>,
    /// Set when the agent stops: no more claims.
    stopping: watch::Sender<bool>,
    /// Set when the grace period is over: runs still executing are handed back.
    handing_back: watch::Sender<bool>,
}

impl Worker {
    pub fn new(api: AgentApi, client: Client, core_timeout: Duration) -> Worker {
        let versions = Arc::new(DriverVersions::new(api.clone()));
        let instances = Arc::new(Instances::new(
            client,
            api.clone(),
            versions.clone(),
            styrmin_core::protocol::chart_pull_token(&api.token),
            core_timeout,
        ));
        Worker {
            api,
            versions,
            instances,
            action_timeout: DEFAULT_ACTION_TIMEOUT,
            slots: Arc::new(Semaphore::new(PARALLEL_RUNS)),
            in_flight: Arc::new(Semaphore::new(RUNS_IN_FLIGHT)),
            stopping: watch::Sender::new(false),
            handing_back: watch::Sender::new(false),
        }
    }

    /// Claims flow runs and works on up to `PARALLEL_RUNS` of them at once, until `shutdown`.
    pub async fn run(self: Arc<Self>) {
        let slots = self.slots.clone();
        let in_flight = self.in_flight.clone();
        let mut stopping = self.stopping.subscribe();
        loop {
            if slots.available_permits() == 0 || in_flight.available_permits() == 0 {
                tokio::select! {
                    _ = set(&mut stopping) => return,
                    permits = async {
                        (slots.clone().acquire_owned().await, in_flight.clone().acquire_owned().await)
                    } => drop(permits),
                }
                continue;
            }
            let room = slots.available_permits().min(in_flight.available_permits());
            let claimed = tokio::select! {
                _ = set(&mut stopping) => return,
                claimed = crate::metrics::global().claim(self.api.claim(room as i32, 20.0)) => claimed,
            };
            match claimed {
                Ok(runs) => {
                    for run in runs {
                        let (Ok(held), Ok(permit)) = (
                            in_flight.clone().acquire_owned().await,
                            slots.clone().acquire_owned().await,
                        ) else {
                            return;
                        };
                        let slot = Slot::new(slots.clone(), permit);
                        let worker = self.clone();
                        tokio::spawn(async move {
                            slot.scope(worker.handle(run)).await;
                            drop(held);
                        });
                    }
                }
                Err(e) if refused(&e) => {
                    // The server will not work with this agent (another protocol major):
                    // say why, loudly, and ask again rarely; an upgrade of either side ends it.
                    tracing::error!(error = %e, "the server refuses this agent; asking again in 30 s");
                    tokio::time::sleep(REFUSED_BACKOFF).await;
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
        let all = RUNS_IN_FLIGHT as u32;
        if tokio::time::timeout(grace, self.in_flight.acquire_many(all))
            .await
            .is_ok()
        {
            return;
        }
        let in_flight = all as usize - self.in_flight.available_permits();
        tracing::info!(runs = in_flight, "grace period over: handing runs back");
        self.handing_back.send_replace(true);
        // Handing back is one call per run; bounded in case the server is unreachable.
        if tokio::time::timeout(Duration::from_secs(10), self.in_flight.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some runs could not be handed back; their leases will expire");
        }
    }

    async fn handle(self: Arc<Self>, run: Run) {
        let timed = crate::metrics::global().flow_run_started(run.kind);
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
                timed.handed_back();
                log.line("warning", "the agent is shutting down: handing the run back");
                log.flush().await;
                if let Err(e) = self.api.release(&run, "agent shutting down").await {
                    tracing::warn!(run = run.id, error = %e, "cannot hand the run back; its lease will expire");
                }
                return;
            }
        };
        if outcome.is_err() {
            self.instances.forget_prepared().await;
        }
        drop(heartbeat);
        timed.finished(outcome.is_ok());
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

    async fn execute(&self, run: &Run, log: &LogSink) -> Result<Value> {
        // A payload that does not read fails this run alone, with the kind and the field.
        match run.payload()? {
            FlowRunPayload::Create(apply)
            | FlowRunPayload::Update(apply)
            | FlowRunPayload::Upgrade(apply) => self.apply_with_hooks(run, apply, log).await,
            FlowRunPayload::Stop(d) => {
                let id = &d.deployment_id;
                self.instances.set_phase(id, log, Phase::Stopped).await
            }
            FlowRunPayload::Start(d) => {
                let id = &d.deployment_id;
                self.instances.set_phase(id, log, Phase::Running).await
            }
            FlowRunPayload::Delete(d) => self.instances.delete(&d.deployment_id, log).await,
            FlowRunPayload::Backup(run) => {
                let (access_key_id, secret_access_key) = self
                    .api
                    .location_credentials(
                        &run.deployment.environment_id,
                        &run.backup.location.location_id,
                    )
                    .await?;
                let credentials = backups::Credentials {
                    access_key_id,
                    secret_access_key,
                };
                let client = self.instances.client();
                let result = backups::backup(client, &run, &credentials, log).await;
                log.line("info", format!("backup {}", result.state));
                let environment = &run.deployment.environment_id;
                locations::report_one(&self.api, client, environment, &run.backup.location.name)
                    .await;
                Ok(serde_json::to_value(result)?)
            }
            FlowRunPayload::Restore(run) => {
                // The location is the backup's (the source environment's), which the
                // server lets this cluster's agent read while it holds one of its backups.
                let (access_key_id, secret_access_key) = self
                    .api
                    .location_credentials(
                        &run.deployment.environment_id,
                        &run.restore.location.location_id,
                    )
                    .await?;
                let credentials = backups::Credentials {
                    access_key_id,
                    secret_access_key,
                };
                let client = self.instances.client();
                let result = backups::restore(client, &run, &credentials, log).await;
                log.line("info", format!("restore {}", result.state));
                Ok(serde_json::to_value(result)?)
            }
            FlowRunPayload::DeleteBackup(payload) => {
                let deadline = std::time::Instant::now()
                    + Duration::from_secs(styrmin_core::backup::DEFAULT_DEADLINE_SECONDS);
                backups::delete_backup(self.instances.client(), &payload, deadline, log).await?;
                Ok(json!({"deleted": true}))
            }
        }
    }

    /// A create, update or upgrade: the hook's `pre` actions, the core (the driver's own
    /// core action, or applying the Instance), then the `post` actions (SPEC §5).
    async fn apply_with_hooks(
        &self,
        run: &Run,
        apply: ApplyPayload,
        log: &LogSink,
    ) -> Result<Value> {
        let digest = apply.instance.driver_digest.clone();
        let version = self.versions.get(&digest).await?;
        let plan = hooks::plan(&version.spec, run.kind);
        let Some(hook) = plan.hook else {
            return self.instances.apply(&apply, log).await;
        };
        let host = Arc::new(ActionHost {
            instances: self.instances.clone(),
            action_timeout: self.action_timeout,
            run: run.clone(),
            log: log.clone(),
            namespace: apply.instance.context.instance.namespace.clone(),
            context: apply.instance.context.clone(),
            apply: apply.clone(),
            files: version.files.clone(),
            driver_digest: digest,
        });
        let mut result = json!({});
        for (mode, actions) in plan.stages() {
            if mode == Mode::Core && actions.is_empty() {
                result = self.instances.apply(&apply, log).await?;
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
