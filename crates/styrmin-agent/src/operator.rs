//! The operator (SPEC §6): a kube-runtime Controller on `StyrminDeployment`. Render the
//! children from the frozen Context and the driver bundle, apply them with server-side
//! apply under one field manager, prune what a new render no longer makes, stop and start
//! component workloads, observe the HelmRelease and the workloads, and write the status.
//! A status that did not change is not written, so its own writes cause no work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use styrmin_core::children::{self, DEPLOYMENT_LABEL, MANAGED_BY, Owner, RenderInput};
use styrmin_core::context::GlobalContext;
use styrmin_core::crd::{ComponentStatus, StyrminDeployment, StyrminDeploymentStatus};
use styrmin_core::driver::ChartSource;
use styrmin_core::planner::Phase;

use crate::actions::components::{ACTION_STOPPED_ANNOTATION, Component, selector};
use crate::bundle;

pub const FINALIZER: &str = "styrmin.io/cleanup";
pub const FIELD_MANAGER: &str = "styrmin-operator";
/// On a stopped workload: the replicas it had, restored by `start`.
pub const REPLICAS_ANNOTATION: &str = "styrmin.io/replicas";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

struct Ctx {
    client: Client,
}

/// The kinds the operator makes, for pruning and cleanup.
fn managed_kinds() -> Vec<ApiResource> {
    [
        ("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
        ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
        ("", "v1", "Service"),
        ("networking.k8s.io", "v1", "NetworkPolicy"),
        ("networking.k8s.io", "v1", "Ingress"),
        ("traefik.io", "v1alpha1", "Middleware"),
    ]
    .into_iter()
    .map(|(g, v, k)| ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k)))
    .collect()
}

fn resource_of(object: &Value) -> ApiResource {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let api: Api<StyrminDeployment> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client });
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

fn error_policy(sd: Arc<StyrminDeployment>, error: &OperatorError, _: Arc<Ctx>) -> Action {
    crate::metrics::global().reconcile_failed::<StyrminDeployment>(error);
    tracing::warn!(deployment = sd.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn now() -> String {
    Timestamp::now().to_string()
}

async fn reconcile(sd: Arc<StyrminDeployment>, ctx: Arc<Ctx>) -> Result<Action, OperatorError> {
    let _timed = crate::metrics::global().reconcile_started::<StyrminDeployment>();
    let client = &ctx.client;
    let namespace = sd.namespace().unwrap_or_default();
    let name = sd.name_any();
    let api: Api<StyrminDeployment> = Api::namespaced(client.clone(), &namespace);

    if sd.meta().deletion_timestamp.is_some() || sd.spec.phase == Phase::Deleting {
        if !cleanup(client, &namespace, &sd.spec.deployment_id).await? {
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
        if sd.finalizers().iter().any(|f| f == FINALIZER) {
            let rest: Vec<&String> = sd.finalizers().iter().filter(|f| *f != FINALIZER).collect();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": rest}})),
            )
            .await?;
        }
        return Ok(Action::await_change());
    }
    if !sd.finalizers().iter().any(|f| f == FINALIZER) {
        let mut with = sd.finalizers().to_vec();
        with.push(FINALIZER.to_owned());
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": with}})),
        )
        .await?;
        return Ok(Action::await_change());
    }

    let mut status = sd.status.clone().unwrap_or_default();
    let outcome = converge(client, &sd, &namespace, &mut status).await;
    if let Err(e) = &outcome {
        status.last_error = Some(format!("{e:#}"));
        status.set_condition(
            "Stalled",
            true,
            "RenderOrApplyFailed",
            &format!("{e:#}"),
            &now(),
        );
        status.set_condition(
            "Ready",
            false,
            "RenderOrApplyFailed",
            &format!("{e:#}"),
            &now(),
        );
    }
    status.observed_generation = sd.metadata.generation;
    status.phase = Some(sd.spec.phase);
    if sd.status.as_ref() != Some(&status) {
        let mut value = serde_json::to_value(&status).map_err(anyhow::Error::new)?;
        if status.last_error.is_none() {
            // A merge patch keeps what it does not mention: clear the old error.
            value["lastError"] = Value::Null;
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": value})),
        )
        .await?;
    }
    let ready = status.is("Ready");
    let stalled = status.is("Stalled");
    Ok(match (ready, stalled) {
        (true, _) => Action::requeue(Duration::from_secs(300)),
        (false, true) => Action::requeue(Duration::from_secs(10)),
        // Workload readiness is not watched: look again soon while converging.
        (false, false) => Action::requeue(Duration::from_millis(500)),
    })
}

/// Render → apply → prune → scale → observe; fills `status`.
async fn converge(
    client: &Client,
    sd: &StyrminDeployment,
    namespace: &str,
    status: &mut StyrminDeploymentStatus,
) -> anyhow::Result<()> {
    let spec = &sd.spec;
    let context: GlobalContext = serde_json::from_value(spec.context.clone())?;
    let files = bundle::read(
        client,
        namespace,
        &bundle::configmap_name(&spec.driver.name, &spec.driver.digest),
    )
    .await?;
    let template = files
        .get(styrmin_core::render::VALUES_FILE)
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let values = styrmin_core::render_values(template.as_deref(), &spec.context)?;
    let chart_name = match context.app.chart.source() {
        Some(ChartSource::Bundled(dir)) => files
            .get(&format!("{dir}/Chart.yaml"))
            .and_then(|b| serde_yaml_ng_name(b)),
        _ => None,
    };
    let uid = sd.metadata.uid.clone().unwrap_or_default();
    let objects = children::render(&RenderInput {
        owner: Owner {
            api_version: "styrmin.io/v1",
            kind: "StyrminDeployment",
            name: &sd.name_any(),
            uid: &uid,
        },
        deployment_id: &spec.deployment_id,
        context: &context,
        values: &values.values,
        chart_repository: spec.chart_repository.as_deref(),
        bundled_chart_name: chart_name.as_deref(),
        suspend: spec.phase == Phase::Stopped,
    })?;

    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = BTreeSet::new();
    for object in &objects {
        let resource = resource_of(object);
        let object_name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        api.patch(&object_name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| anyhow::anyhow!("applying {} {object_name}: {e}", resource.kind))?;
        applied.insert((resource.kind.clone(), object_name));
    }
    prune(client, namespace, &spec.deployment_id, &applied).await?;
    scale(client, namespace, &context, spec.phase).await?;
    observe(
        client,
        namespace,
        &context,
        spec.phase,
        &sd.name_any(),
        status,
    )
    .await
}

/// Chart.yaml's `name`.
fn serde_yaml_ng_name(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|n| n.trim().trim_matches('"').trim_matches('\'').to_owned())
}

/// Deletes objects of the deployment that the render no longer makes.
async fn prune(
    client: &Client,
    namespace: &str,
    deployment_id: &str,
    keep: &BTreeSet<(String, String)>,
) -> anyhow::Result<()> {
    let labels = format!(
        "{}={},{DEPLOYMENT_LABEL}={deployment_id}",
        MANAGED_BY.0, MANAGED_BY.1
    );
    for resource in managed_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let Ok(list) = api.list(&ListParams::default().labels(&labels)).await else {
            continue; // a kind the cluster does not serve (e.g. no Traefik CRDs)
        };
        for object in list {
            let name = object.name_any();
            if !keep.contains(&(resource.kind.clone(), name.clone())) {
                api.delete(&name, &DeleteParams::background()).await.ok();
            }
        }
    }
    Ok(())
}

/// Deletes everything the operator made; true once all of it is gone.
async fn cleanup(
    client: &Client,
    namespace: &str,
    deployment_id: &str,
) -> Result<bool, OperatorError> {
    let labels = format!("{DEPLOYMENT_LABEL}={deployment_id}");
    let mut left = 0;
    for resource in managed_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let Ok(list) = api.list(&ListParams::default().labels(&labels)).await else {
            continue;
        };
        for object in list {
            left += 1;
            if object.metadata.deletion_timestamp.is_none() {
                api.delete(&object.name_any(), &DeleteParams::background())
                    .await
                    .ok();
            }
        }
    }
    Ok(left == 0)
}

/// `stopped`: every component workload to 0, its replicas remembered; `running`: restored.
async fn scale(
    client: &Client,
    namespace: &str,
    context: &GlobalContext,
    phase: Phase,
) -> anyhow::Result<()> {
    for component in context.components.values() {
        let labels = selector(&component.labels);
        let params = ListParams::default().labels(&labels);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        for d in deployments.list(&params).await? {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            scale_one(
                &deployments,
                &d.name_any(),
                replicas,
                d.annotations(),
                phase,
            )
            .await?;
        }
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
        for s in sets.list(&params).await? {
            let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            scale_one(&sets, &s.name_any(), replicas, s.annotations(), phase).await?;
        }
    }
    Ok(())
}

async fn scale_one<K>(
    api: &Api<K>,
    name: &str,
    replicas: i32,
    annotations: &BTreeMap<String, String>,
    phase: Phase,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let remembered = annotations.get(REPLICAS_ANNOTATION);
    let stopped_by_action = annotations.contains_key(ACTION_STOPPED_ANNOTATION);
    let patch = match (phase, remembered) {
        // An action stopped it: it stays at 0 (a Helm upgrade sets replicas again) until
        // an action starts it, which then restores the count the chart asks for now.
        (Phase::Running, None) if stopped_by_action && replicas > 0 => {
            json!({"metadata": {"annotations": {ACTION_STOPPED_ANNOTATION: replicas.to_string()}}, "spec": {"replicas": 0}})
        }
        (Phase::Stopped, None) if replicas > 0 => {
            json!({"metadata": {"annotations": {REPLICAS_ANNOTATION: replicas.to_string()}}, "spec": {"replicas": 0}})
        }
        (Phase::Running, Some(n)) => {
            let n: i32 = n.parse().unwrap_or(1);
            json!({"metadata": {"annotations": {REPLICAS_ANNOTATION: null}}, "spec": {"replicas": n}})
        }
        _ => return Ok(()),
    };
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Reads the HelmRelease and the component workloads into `status`.
async fn observe(
    client: &Client,
    namespace: &str,
    context: &GlobalContext,
    phase: Phase,
    release_name: &str,
    status: &mut StyrminDeploymentStatus,
) -> anyhow::Result<()> {
    let releases: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        )),
    );
    let release = releases.get_opt(release_name).await?;
    let (helm_ready, helm_failure) = match &release {
        None => (false, None),
        Some(r) => {
            let current = r.data["status"]["observedGeneration"].as_i64() == r.metadata.generation;
            let ready = r.data["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .cloned();
            match ready {
                Some(c) if current && c["status"] == "True" => (true, None),
                Some(c)
                    if current
                        && c["status"] == "False"
                        && c["reason"].as_str().is_some_and(|r| r.ends_with("Failed")) =>
                {
                    (false, c["message"].as_str().map(str::to_owned))
                }
                _ => (false, None),
            }
        }
    };
    let mut components = BTreeMap::new();
    for (name, component) in &context.components {
        let replicas = Component {
            client,
            namespace,
            name,
            labels: &component.labels,
        }
        .replicas()
        .await?;
        components.insert(
            name.clone(),
            ComponentStatus {
                desired: replicas.desired,
                ready: replicas.ready,
            },
        );
    }
    let all_ready = components.values().all(|c| c.ready == c.desired);
    let now = now();
    status.components = components;
    status.helm_release_ready = Some(helm_ready);
    match (&helm_failure, phase) {
        (Some(message), Phase::Running) => {
            status.last_error = Some(message.clone());
            status.set_condition("Stalled", true, "HelmReleaseFailed", message, &now);
            status.set_condition("Ready", false, "HelmReleaseFailed", message, &now);
        }
        _ => {
            status.set_condition("Stalled", false, "Progressing", "", &now);
            let (ready, message) = match phase {
                Phase::Running if helm_ready && all_ready => {
                    (true, "every component is ready".to_owned())
                }
                Phase::Running if !helm_ready => (false, "waiting for the HelmRelease".to_owned()),
                Phase::Running => (false, "waiting for component pods".to_owned()),
                Phase::Stopped => {
                    let down = status
                        .components
                        .values()
                        .all(|c| c.desired == 0 && c.ready == 0);
                    (
                        down,
                        if down {
                            "stopped".into()
                        } else {
                            "stopping components".into()
                        },
                    )
                }
                Phase::Deleting => (false, "deleting".to_owned()),
            };
            if ready {
                status.last_error = None;
            }
            status.set_condition(
                "Ready",
                ready,
                if ready { "Ready" } else { "Reconciling" },
                &message,
                &now,
            );
        }
    }
    Ok(())
}
