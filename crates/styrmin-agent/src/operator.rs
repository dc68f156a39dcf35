//! The operator (SPEC §6): a kube-runtime Controller on `StyrminDeployment`. It renders
//! the children (`styrmin_core::children`) from the frozen Context and the values the
//! server rendered (`spec.values`, checked against `spec.valuesDigest`; the operator
//! renders no template), applies the ones that changed with server-side apply under one
//! field manager, prunes what a new render no longer makes, stops and starts component
//! workloads, and writes the status (`styrmin_core::status`) when it changed.
//!
//! It acts when something happens, not on a timer: it owns its children (one watch per
//! kind, labelled `app.kubernetes.io/managed-by=styrmin`) and watches Deployments and
//! StatefulSets, mapped back to the deployments whose components' labels they carry. The
//! watches fill caches that the reconcile reads instead of listing. Deletion goes through
//! kube-runtime's finalizer helper: the children go first, then the finalizer.

mod children;
mod components;
mod error;
mod ledger;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::{Map, Value, json};
use styrmin_core::children::{Owner, RenderInput};
use styrmin_core::context::GlobalContext;
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentStatus};
use styrmin_core::driver::ChartSource;
use styrmin_core::planner::Phase;
use styrmin_core::status::{self, Outcome, check_values};

use crate::bundle;
use children::{Children, key_of};
use components::{Workloads, owners, placement};
pub use error::OperatorError;

pub const FINALIZER: &str = "styrmin.io/cleanup";
pub const FIELD_MANAGER: &str = "styrmin-operator";
/// The longest a deployment goes unreconciled: a safety net, since the watches bring
/// every change.
const SAFETY_NET: Duration = Duration::from_secs(300);
/// After a failed apply, the next attempt.
const RETRY_APPLY: Duration = Duration::from_secs(10);
/// While waiting for children to go or caches to list (the watches usually come first).
const RETRY_WAITING: Duration = Duration::from_secs(5);
/// After any other error.
const RETRY_ERROR: Duration = Duration::from_secs(2);
/// How long a reconcile right after start waits for the workload caches to list.
const SYNC_WAIT: Duration = Duration::from_secs(10);

struct Ctx {
    client: Client,
    children: Children,
    workloads: Workloads,
    /// The `Chart.yaml` name of each bundled chart, by bundle ConfigMap and chart
    /// directory (the ConfigMap is immutable: its name holds the driver's digest).
    chart_names: Mutex<HashMap<String, Option<String>>>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let (children, child_streams) = Children::watch(&client).await;
    let (workloads, deployments, sets) = Workloads::watch(&client);
    let mut controller = Controller::new(
        Api::<StyrminDeployment>::all(client.clone()),
        watcher::Config::default(),
    );
    for (stream, resource) in child_streams {
        controller = controller.owns_stream_with(stream, resource);
    }
    let (by_deployment, by_set) = (controller.store(), controller.store());
    let controller = controller
        .watches_stream(deployments, move |d: Deployment| {
            let (namespace, labels) = placement(&d.metadata);
            owners(&by_deployment, namespace, labels)
        })
        .watches_stream(sets, move |s: StatefulSet| {
            let (namespace, labels) = placement(&s.metadata);
            owners(&by_set, namespace, labels)
        });
    let ctx = Arc::new(Ctx {
        client,
        children,
        workloads,
        chart_names: Mutex::default(),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

async fn reconcile(sd: Arc<StyrminDeployment>, ctx: Arc<Ctx>) -> Result<Action, OperatorError> {
    let _timed = crate::metrics::global().reconcile_started::<StyrminDeployment>();
    let api: Api<StyrminDeployment> =
        Api::namespaced(ctx.client.clone(), &sd.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, sd, |event| async {
        match event {
            Event::Apply(sd) => ctx.apply(&api, &sd).await,
            Event::Cleanup(sd) => ctx.cleanup(&sd).await,
        }
    })
    .await
    .map_err(|e| OperatorError::Finalizer(Box::new(e)))
}

fn error_policy(sd: Arc<StyrminDeployment>, error: &OperatorError, _: Arc<Ctx>) -> Action {
    if error.is_waiting() {
        tracing::debug!(deployment = sd.name_any(), %error, "waiting");
        return Action::requeue(RETRY_WAITING);
    }
    crate::metrics::global().reconcile_failed::<StyrminDeployment>(error);
    tracing::warn!(deployment = sd.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(RETRY_ERROR)
}

fn now() -> String {
    Timestamp::now().to_string()
}

impl Ctx {
    /// The deployment as its spec asks: converged, and the status written if it changed.
    async fn apply(
        &self,
        api: &Api<StyrminDeployment>,
        sd: &StyrminDeployment,
    ) -> Result<Action, OperatorError> {
        let namespace = sd.namespace().unwrap_or_default();
        let name = sd.name_any();
        let uid = sd.uid().unwrap_or_default();
        if sd.spec.phase == Phase::Deleting {
            // Its children go; the object itself stays until it is deleted.
            self.children
                .cleanup(&uid, &namespace, &name, &sd.spec.deployment_id)
                .await?;
            return Ok(Action::requeue(SAFETY_NET));
        }
        self.workloads.synced(SYNC_WAIT).await?;
        let outcome = match check_values(&sd.spec.values, &sd.spec.values_digest) {
            Err(problem) => Outcome::ValuesRejected(problem),
            Ok(values) => match self.converge(sd, &namespace, values).await {
                Ok(outcome) => outcome,
                Err(e) => Outcome::ApplyFailed(e.to_string()),
            },
        };
        let previous = sd.status.clone().unwrap_or_default();
        let status = status::next(
            &previous,
            sd.metadata.generation,
            sd.spec.phase,
            &outcome,
            &now(),
        );
        if sd.status.as_ref() != Some(&status) {
            write_status(api, &namespace, &name, &status).await?;
        }
        Ok(match outcome {
            Outcome::ApplyFailed(_) => Action::requeue(RETRY_APPLY),
            _ => Action::requeue(SAFETY_NET),
        })
    }

    /// Render → apply what changed → prune → scale → observe.
    async fn converge(
        &self,
        sd: &StyrminDeployment,
        namespace: &str,
        values: &Map<String, Value>,
    ) -> Result<Outcome, OperatorError> {
        let spec = &sd.spec;
        let name = sd.name_any();
        let uid = sd.uid().unwrap_or_default();
        let context: GlobalContext =
            serde_json::from_value(spec.context.clone()).map_err(|source| {
                OperatorError::Context {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    source,
                }
            })?;
        let chart_name = match context.app.chart.source() {
            Some(ChartSource::Bundled(dir)) => {
                self.chart_name(namespace, &spec.driver, dir).await?
            }
            _ => None,
        };
        let objects = styrmin_core::children::render(&RenderInput {
            owner: Owner {
                api_version: "styrmin.io/v1",
                kind: "StyrminDeployment",
                name: &name,
                uid: &uid,
            },
            deployment_id: &spec.deployment_id,
            context: &context,
            values,
            chart_repository: spec.chart_repository.as_deref(),
            bundled_chart_name: chart_name.as_deref(),
            suspend: spec.phase == Phase::Stopped,
        })?;
        let answers = self.children.apply(&uid, namespace, &objects).await?;
        let keep: BTreeSet<_> = objects.iter().map(key_of).collect();
        self.children
            .prune(&uid, namespace, &spec.deployment_id, &keep)
            .await?;
        let components = self
            .workloads
            .converge(namespace, &context, spec.phase)
            .await?;
        let release_name = &context.instance.release_name;
        let applied_release = answers
            .iter()
            .find(|(key, _)| key.kind == "HelmRelease" && key.name == *release_name)
            .map(|(_, answer)| answer);
        let release = self
            .children
            .release(&uid, namespace, release_name, applied_release);
        Ok(Outcome::Observed {
            release,
            components,
        })
    }

    /// Deleted: every child goes, then (by returning `Ok`) the finalizer.
    async fn cleanup(&self, sd: &StyrminDeployment) -> Result<Action, OperatorError> {
        self.children
            .cleanup(
                &sd.uid().unwrap_or_default(),
                &sd.namespace().unwrap_or_default(),
                &sd.name_any(),
                &sd.spec.deployment_id,
            )
            .await?;
        Ok(Action::await_change())
    }

    /// The name of a chart shipped inside the driver (its `Chart.yaml`), read once per
    /// driver version from the bundle ConfigMap.
    async fn chart_name(
        &self,
        namespace: &str,
        driver: &DriverRef,
        dir: &str,
    ) -> Result<Option<String>, OperatorError> {
        let configmap = bundle::configmap_name(&driver.name, &driver.digest);
        let key = format!("{namespace}/{configmap}/{dir}");
        if let Some(name) = self.chart_names.lock().expect("not poisoned").get(&key) {
            return Ok(name.clone());
        }
        let files = bundle::read(&self.client, namespace, &configmap).await?;
        let name = files
            .get(&format!("{dir}/Chart.yaml"))
            .and_then(|b| chart_yaml_name(b));
        self.chart_names
            .lock()
            .expect("not poisoned")
            .insert(key, name.clone());
        Ok(name)
    }
}

async fn write_status(
    api: &Api<StyrminDeployment>,
    namespace: &str,
    name: &str,
    status: &StyrminDeploymentStatus,
) -> Result<(), OperatorError> {
    let mut value = serde_json::to_value(status).expect("the status is plain data");
    if status.last_error.is_none() {
        // A merge patch keeps what it does not mention: clear the old error.
        value["lastError"] = Value::Null;
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": value})),
    )
    .await
    .map_err(|source| OperatorError::Status {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })?;
    Ok(())
}

/// `Chart.yaml`'s top-level `name`.
fn chart_yaml_name(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|n| n.trim().trim_matches('"').trim_matches('\'').to_owned())
}
