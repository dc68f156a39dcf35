//! TEST DOUBLE — the node simulator: what kubelets and the scheduler do, without
//! containers. It registers Ready nodes, binds pending pods to them, and moves pods through
//! the states a kubelet reports. Pod annotations steer it:
//!
//! | annotation | effect |
//! |---|---|
//! | `sim.styrmin.io/start-delay: 2s` | containers start that long after the pod reached its node |
//! | `sim.styrmin.io/never-ready: "true"` | containers run but never pass readiness |
//! | `sim.styrmin.io/crash-loop: "true"` | containers keep crashing (CrashLoopBackOff, restarts counting up) |
//! | `sim.styrmin.io/exit-code: "1"` | for pods that run to completion (Jobs): the exit code |
//!
//! A running pod's container ports named `http…` answer HTTP on the pod's address
//! ([`pod_ip`], a loopback address): status 200 to every request, or the number written
//! in `<pods_dir>/<namespace>/http-status` while that file exists (an environment whose
//! apps answer 503, say).
//!
//! A deleted pod's containers stop at once, so its object goes as soon as it is marked for
//! deletion, as a kubelet does when nothing lingers.
//!
//! Containers start only once the pod's claims are bound, as a kubelet's wait for their
//! volumes. A pod with a PostgreSQL or MariaDB container gets its own database on this machine
//! before it runs, dropped when it goes ([`crate::databases`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::databases::DatabaseServers;

pub const START_DELAY: &str = "sim.styrmin.io/start-delay";
pub const NEVER_READY: &str = "sim.styrmin.io/never-ready";
pub const CRASH_LOOP: &str = "sim.styrmin.io/crash-loop";
pub const EXIT_CODE: &str = "sim.styrmin.io/exit-code";

const MANAGER: &str = "styrmin-node-simulator";
const CRASH_INTERVAL: Duration = Duration::from_secs(2);

/// A simulated node: its name and the port its (simulated) kubelet serves on.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    pub kubelet_port: u16,
}

struct State {
    client: Client,
    nodes: Vec<SimNode>,
    pods_dir: std::path::PathBuf,
    /// The database servers behind database pods, if any.
    databases: Option<Arc<DatabaseServers>>,
    /// The HTTP listeners of running pods, by uid.
    http: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    /// When this kubelet first saw each pod (by uid): start delays count from there, since
    /// creation timestamps have only second precision.
    first_seen: Mutex<HashMap<String, Instant>>,
}

/// Runs until the returned task is aborted.
pub async fn start(
    client: Client,
    nodes: Vec<SimNode>,
    pods_dir: std::path::PathBuf,
    databases: Option<Arc<DatabaseServers>>,
) -> Result<tokio::task::JoinHandle<()>> {
    for node in &nodes {
        register(&client, node).await?;
    }
    let state = Arc::new(State {
        client: client.clone(),
        nodes,
        pods_dir,
        databases,
        http: Mutex::new(HashMap::new()),
        first_seen: Mutex::new(HashMap::new()),
    });
    let pods: Api<Pod> = Api::all(client);
    let controller = Controller::new(pods, watcher::Config::default())
        .run(reconcile, error_policy, state)
        .for_each(|_| async {});
    Ok(tokio::spawn(controller))
}

async fn register(client: &Client, node: &SimNode) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let object = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "styrmin.io/simulated": "true"}
        }
    });
    let params = PatchParams::apply(MANAGER).force();
    api.patch(&node.name, &params, &Patch::Apply(&object))
        .await
        .with_context(|| format!("cannot register the node {}", node.name))?;
    let now = now();
    let status = json!({
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated kubelet is ready",
                 "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now}
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node.name}],
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "1000", "ephemeral-storage": "1Ti"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "1000", "ephemeral-storage": "1Ti"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": node.kubelet_port}},
            "nodeInfo": {
                "machineID": node.name, "systemUUID": node.name, "bootID": node.name,
                "kernelVersion": "simulated", "osImage": "styrmin node simulator", "containerRuntimeVersion": "sim://1",
                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64"
            }
        }
    });
    api.patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("cannot set the status of node {}", node.name))?;
    Ok(())
}

fn now() -> Time {
    Time(Timestamp::now())
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SimError(#[from] kube::Error);

fn error_policy(_pod: Arc<Pod>, error: &SimError, _state: Arc<State>) -> Action {
    tracing::debug!(%error, "node simulator: retrying a pod");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(pod: Arc<Pod>, state: Arc<State>) -> Result<Action, SimError> {
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &namespace);
    let spec = pod.spec.clone().unwrap_or_default();

    let Some(node) = spec.node_name.clone() else {
        bind(&api, &pod, &state.nodes).await?;
        return Ok(Action::await_change());
    };
    if !state.nodes.iter().any(|n| n.name == node) {
        return Ok(Action::await_change());
    }
    let uid = pod.uid().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        state.first_seen.lock().expect("not poisoned").remove(&uid);
        for listener in state
            .http
            .lock()
            .expect("not poisoned")
            .remove(&uid)
            .unwrap_or_default()
        {
            listener.abort();
        }
        if let Some(databases) = &state.databases
            && let Err(error) = databases.drop_for(&pod).await
        {
            // A database left behind goes with the cluster; the pod goes now.
            tracing::warn!(error = %format!("{error:#}"), "node simulator: cannot drop a pod's database");
        }
        // The containers stop at once; the kubelet then removes the object.
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Ok(Action::await_change());
    }

    let annotations = pod.annotations();
    let delay = annotations
        .get(START_DELAY)
        .and_then(|d| parse_duration(d))
        .unwrap_or_default();
    let seen = *state
        .first_seen
        .lock()
        .expect("not poisoned")
        .entry(uid)
        .or_insert_with(Instant::now);
    let wait = delay.saturating_sub(seen.elapsed());
    if !wait.is_zero() {
        return Ok(Action::requeue(wait));
    }

    let runs_to_completion = spec
        .restart_policy
        .as_deref()
        .is_some_and(|p| p != "Always");
    let flag = |key: &str| annotations.get(key).is_some_and(|v| v == "true");
    let (status, next) = if runs_to_completion {
        let exit_code: i32 = annotations
            .get(EXIT_CODE)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (completed_status(&pod, exit_code), Action::await_change())
    } else if flag(CRASH_LOOP) {
        (crash_loop_status(&pod), Action::requeue(CRASH_INTERVAL))
    } else if phase == "Running" {
        serve_http(&state, &pod, &namespace).await;
        return Ok(Action::await_change());
    } else {
        // As a kubelet, containers start only once their claims are bound.
        if !claims_bound(&state.client, &namespace, &spec).await? {
            return Ok(Action::requeue(Duration::from_millis(300)));
        }
        if let Some(databases) = &state.databases
            && let Err(e) = databases.create_for(&pod).await
        {
            // The containers wait for their database, saying why.
            let waiting = waiting_status(&pod, "DatabaseUnavailable", &format!("{e:#}"));
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": waiting})),
            )
            .await?;
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        (
            running_status(&pod, !flag(NEVER_READY)),
            Action::await_change(),
        )
    };
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    Ok(next)
}

/// Opens the pod's `http…` container ports on its address, once per pod.
async fn serve_http(state: &Arc<State>, pod: &Pod, namespace: &str) {
    let uid = pod.uid().unwrap_or_default();
    if state.http.lock().expect("not poisoned").contains_key(&uid) {
        return;
    }
    let ip = pod_ip(pod);
    let status_file = state.pods_dir.join(namespace).join("http-status");
    let ports: Vec<i32> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.name.as_deref().is_some_and(|n| n.starts_with("http")))
        .map(|p| p.container_port)
        .collect();
    let mut listeners = Vec::new();
    for port in ports {
        match tokio::net::TcpListener::bind((ip.as_str(), port as u16)).await {
            Ok(listener) => {
                let status_file = status_file.clone();
                listeners.push(tokio::spawn(answer_http(listener, status_file)));
            }
            Err(error) => tracing::debug!(%error, %ip, port, "node simulator: cannot serve HTTP"),
        }
    }
    state
        .http
        .lock()
        .expect("not poisoned")
        .insert(uid, listeners);
}

async fn answer_http(listener: tokio::net::TcpListener, status_file: std::path::PathBuf) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut stream, _)) = listener.accept().await {
        let status_file = status_file.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let status: u16 = tokio::fs::read_to_string(&status_file)
                .await
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(200);
            let body = if status == 200 {
                "ok"
            } else {
                "simulated failure"
            };
            let response = format!(
                "HTTP/1.1 {status} SIM\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

async fn bind(api: &Api<Pod>, pod: &Pod, nodes: &[SimNode]) -> Result<(), SimError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let uid = pod.uid().unwrap_or_default();
    let index = uid
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % nodes.len();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(nodes[index].name.clone()),
            ..ObjectReference::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &pod.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(()),
        // 409: someone bound it meanwhile; the watch brings the new state.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A loopback address per pod, so pods that serve something can be reached one by one.
pub fn pod_ip(pod: &Pod) -> String {
    let uid = pod.uid().unwrap_or_default();
    let h = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(16777619) ^ b as u32);
    format!(
        "127.{}.{}.{}",
        10 + (h >> 16) % 200,
        (h >> 8) & 0xff,
        1 + (h & 0xff) % 254
    )
}

fn conditions(ready: bool, now: &Time) -> serde_json::Value {
    let status = if ready { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        {"type": "Ready", "status": status, "lastTransitionTime": now}
    ])
}

fn container_statuses(
    pod: &Pod,
    state: impl Fn(&str) -> (serde_json::Value, bool, i32),
) -> serde_json::Value {
    let uid = pod.uid().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    serde_json::Value::Array(
        containers
            .iter()
            .map(|c| {
                let (state, ready, restarts) = state(&c.name);
                json!({
                    "name": c.name,
                    "image": c.image.clone().unwrap_or_default(),
                    "imageID": format!("sim://{}", c.image.clone().unwrap_or_default()),
                    "containerID": format!("sim://{uid}/{}", c.name),
                    "ready": ready,
                    "started": ready,
                    "restartCount": restarts,
                    "state": state
                })
            })
            .collect(),
    )
}

fn base_status(pod: &Pod, now: &Time) -> BTreeMap<&'static str, serde_json::Value> {
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| now.clone());
    BTreeMap::from([
        ("hostIP", json!("127.0.0.1")),
        ("podIP", json!(pod_ip(pod))),
        ("podIPs", json!([{"ip": pod_ip(pod)}])),
        ("startTime", json!(start)),
        ("qosClass", json!("BestEffort")),
    ])
}

fn running_status(pod: &Pod, ready: bool) -> serde_json::Value {
    let now = now();
    let mut status = base_status(pod, &now);
    status.insert("phase", json!("Running"));
    status.insert("conditions", conditions(ready, &now));
    status.insert(
        "containerStatuses",
        container_statuses(pod, |_| (json!({"running": {"startedAt": now}}), ready, 0)),
    );
    json!(status)
}

async fn claims_bound(
    client: &Client,
    namespace: &str,
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> Result<bool, SimError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for volume in spec.volumes.iter().flatten() {
        let Some(source) = &volume.persistent_volume_claim else {
            continue;
        };
        let bound = claims
            .get_opt(&source.claim_name)
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.phase)
            .is_some_and(|p| p == "Bound");
        if !bound {
            return Ok(false);
        }
    }
    Ok(true)
}

fn waiting_status(pod: &Pod, reason: &str, message: &str) -> serde_json::Value {
    let now = now();
    let mut status = base_status(pod, &now);
    status.insert("phase", json!("Pending"));
    status.insert("conditions", conditions(false, &now));
    status.insert(
        "containerStatuses",
        container_statuses(pod, |_| {
            (
                json!({"waiting": {"reason": reason, "message": message}}),
                false,
                0,
            )
        }),
    );
    json!(status)
}

fn crash_loop_status(pod: &Pod) -> serde_json::Value {
    let now = now();
    let previous: BTreeMap<String, i32> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.restart_count))
        .collect();
    let mut status = base_status(pod, &now);
    status.insert("phase", json!("Running"));
    status.insert("conditions", conditions(false, &now));
    status.insert(
        "containerStatuses",
        container_statuses(pod, |name| {
            let restarts = previous.get(name).copied().unwrap_or(0) + 1;
            (
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container (simulated)"}}),
                false,
                restarts,
            )
        }),
    );
    json!(status)
}

fn completed_status(pod: &Pod, exit_code: i32) -> serde_json::Value {
    let now = now();
    let mut status = base_status(pod, &now);
    let succeeded = exit_code == 0;
    status.insert(
        "phase",
        json!(if succeeded { "Succeeded" } else { "Failed" }),
    );
    status.insert("conditions", conditions(false, &now));
    let reason = if succeeded { "Completed" } else { "Error" };
    status.insert(
        "containerStatuses",
        container_statuses(pod, |_| {
            (
                json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": now, "finishedAt": now}}),
                false,
                0,
            )
        }),
    );
    json!(status)
}

/// A duration as Kubernetes objects and annotations spell it (Go's style): `1500ms`, `2s`,
/// `5m`, `1h`, `1m30s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let (number, tail) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit() && c != '.')?);
        let (unit, next) = tail.split_at(
            tail.find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len()),
        );
        let value: f64 = number.parse().ok()?;
        seconds += value
            * match unit {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
        rest = next;
    }
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubernetes_writes_them() {
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("fast"), None);
    }
}
