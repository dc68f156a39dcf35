//! The status reporter (SPEC §7): watches pods and `StyrminDeployment`s, and sends the
//! server a snapshot whenever something changed (within a second), and at least every
//! `snapshot_interval` to repair drift. While the server is unreachable it keeps trying
//! with the latest state.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use styrmin_core::children;
use styrmin_core::context::GlobalContext;
use styrmin_core::crd::StyrminDeployment;
use styrmin_core::planner::Phase;
use styrmin_core::protocol::{
    ContainerReport, DeploymentStatus, DeploymentStatusReport, PodReport,
};
use tokio::sync::Notify;

use crate::api::AgentApi;

/// Watches both kinds into stores and reports until the task is dropped.
pub async fn run(api: AgentApi, client: Client, snapshot_interval: Duration) {
    let changed = Arc::new(Notify::new());
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (sds, sds_writer) = reflector::store::<StyrminDeployment>();
    let pod_stream = reflector::reflector(
        pods_writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let sd_stream = reflector::reflector(
        sds_writer,
        watcher(
            Api::<StyrminDeployment>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let notify = changed.clone();
    tokio::spawn(async move {
        let mut merged = std::pin::pin!(futures::stream::select(
            pod_stream.map(|_| ()),
            sd_stream.map(|_| ())
        ));
        while merged.next().await.is_some() {
            notify.notify_one();
        }
    });

    let mut last_sent: Option<Snapshot> = None;
    let mut since_full = tokio::time::Instant::now();
    loop {
        let _ = tokio::time::timeout(snapshot_interval, changed.notified()).await;
        // Let a burst of events settle into one report.
        tokio::time::sleep(Duration::from_millis(100)).await; // debounce, not synchronisation
        let snapshot = build(&pods, &sds);
        let due = since_full.elapsed() >= snapshot_interval;
        if last_sent.as_ref() == Some(&snapshot) && !due {
            continue;
        }
        match api.report(snapshot.0.clone(), snapshot.1.clone()).await {
            Ok(()) => {
                crate::metrics::global().reported(snapshot.0.len(), snapshot.1.len());
                last_sent = Some(snapshot);
                since_full = tokio::time::Instant::now();
            }
            Err(e) => {
                crate::metrics::global().report_failed();
                tracing::warn!(error = %e, "cannot report to the server; will retry");
                last_sent = None;
                changed.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await; // back-off while the server is away
            }
        }
    }
}

/// Pods of Styrmin deployments (matched by their components' labels) and every
/// deployment's observed status.
/// What one report sends: every pod of a deployment, and every deployment's status.
type Snapshot = (Vec<PodReport>, Vec<DeploymentStatusReport>);

fn build(pods: &Store<Pod>, sds: &Store<StyrminDeployment>) -> Snapshot {
    let mut pod_reports = Vec::new();
    let mut statuses = Vec::new();
    let all_pods = pods.state();
    let mut deployments: Vec<Arc<StyrminDeployment>> = sds.state();
    deployments.sort_by_key(|sd| sd.spec.deployment_id.clone());
    for sd in deployments {
        let namespace = sd.namespace().unwrap_or_default();
        let context: Option<GlobalContext> = serde_json::from_value(sd.spec.context.clone()).ok();
        if let Some(context) = &context {
            for pod in all_pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
            {
                let labels = pod.labels();
                let component = context.components.iter().find(|(_, c)| {
                    !c.labels.is_empty() && c.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
                });
                if let Some((component, _)) = component {
                    pod_reports.push(pod_report(pod, &sd.spec.deployment_id, component));
                }
            }
        }
        statuses.push(status_report(&sd, context.as_ref()));
    }
    pod_reports.sort_by(|a, b| a.name.cmp(&b.name));
    (pod_reports, statuses)
}

fn pod_report(pod: &Pod, deployment_id: &str, component: &str) -> PodReport {
    let status = pod.status.clone().unwrap_or_default();
    let containers: Vec<ContainerReport> = status
        .container_statuses
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|c| ContainerReport {
            name: c.name.clone(),
            ready: c.ready,
            restart_count: c.restart_count,
        })
        .collect();
    let restarts: i64 = status
        .container_statuses
        .as_ref()
        .map(|cs| cs.iter().map(|c| i64::from(c.restart_count)).sum())
        .unwrap_or(0);
    let ready = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    PodReport {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        deployment_id: Some(deployment_id.to_owned()),
        component: Some(component.to_owned()),
        phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
        ready,
        restarts,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ip: status.pod_ip.clone(),
        containers,
        started_at: status.start_time.as_ref().map(|t| t.0.to_string()),
    }
}

/// SPEC §7's statuses from what the operator wrote.
fn status_report(
    sd: &StyrminDeployment,
    context: Option<&GlobalContext>,
) -> DeploymentStatusReport {
    let status = sd.status.clone().unwrap_or_default();
    let ready = status.is("Ready");
    let stalled = status.is("Stalled");
    let current = status.observed_generation == sd.metadata.generation;
    let value = if sd.metadata.deletion_timestamp.is_some() || sd.spec.phase == Phase::Deleting {
        DeploymentStatus::Deleting
    } else if stalled {
        DeploymentStatus::Failed
    } else if sd.spec.phase == Phase::Stopped {
        if ready && current {
            DeploymentStatus::Stopped
        } else {
            DeploymentStatus::Deploying
        }
    } else if ready && current {
        DeploymentStatus::Running
    } else if status.helm_release_ready == Some(true) && current {
        DeploymentStatus::Degraded
    } else {
        DeploymentStatus::Deploying
    };
    let message = status
        .last_error
        .clone()
        .or_else(|| status.condition("Ready").map(|c| c.message.clone()));
    DeploymentStatusReport {
        deployment_id: sd.spec.deployment_id.clone(),
        status: value,
        message,
        instance_id: sd.spec.instance_id.clone(),
        components: status.components,
        urls: context.map(children::urls).unwrap_or_default(),
    }
}
