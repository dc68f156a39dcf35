//! The agent's latencies on the local cluster, over many deployments: intent (the
//! `createDeployment` request) → `StyrminDeployment` applied in the cluster, and a pod
//! becoming ready → the server's API showing it ready.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use styrmin_client::Client;
use styrmin_core::crd::StyrminDeployment;
use styrmin_localkube::LocalCluster;
use styrmin_server::{ServerOptions, start};

use crate::report::percentile;

const ADMIN: &str = "stm_bench-agent-admin";

pub async fn measure(repo: &Path, deployments: usize) -> Result<String> {
    let cluster = LocalCluster::start(crate::tools::options().await?).await?;
    let kube = cluster.client();
    let data = tempfile::tempdir()?;
    let mut options = ServerOptions::new(data.path().to_owned());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN.into());
    let server = start(options).await?;
    let admin = Client::new(&server.url(), Some(ADMIN.into()))?;
    let call = |q: &'static str, v: serde_json::Value| {
        let admin = admin.clone();
        async move {
            admin
                .request(q, v)
                .await
                .map_err(|e| anyhow::anyhow!("{q}: {e}"))
        }
    };
    let v = call(
        "mutation { createCluster(name: \"bench\") { agentToken cluster { id } } }",
        json!({}),
    )
    .await?;
    let token = v["createCluster"]["agentToken"]
        .as_str()
        .context("token")?
        .to_owned();
    let driver_dir = driver_without_actions(repo)?;
    let driver = driver_dir.path().to_owned();
    call(
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.display().to_string()}),
    )
    .await?;
    // One environment per deployment: the example driver's discovery Services are named
    // after its services, so two deployments of it cannot share a namespace.
    for i in 0..deployments {
        call(
            "mutation($n: String!) { createEnvironment(name: $n, clusterId: \"bench\") { id } }",
            json!({"n": format!("env-{i}")}),
        )
        .await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(styrmin_agent::run(
        styrmin_agent::AgentConfig::new(&server.url(), &token),
        kube.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    // The bench's own watches: when each StyrminDeployment appears, when each pod is ready.
    // The CRD must be served before its watch starts.
    styrmin_agent::ensure_crd(&kube).await?;
    let applied: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sd_watch = {
        let applied = applied.clone();
        let stream = watcher(
            Api::<StyrminDeployment>::all(kube.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(sd)) = stream.next().await {
                applied
                    .lock()
                    .unwrap()
                    .entry(sd.namespace().unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        })
    };
    let pod_watch = {
        let ready = ready.clone();
        let stream = watcher(Api::<Pod>::all(kube.clone()), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(pod)) = stream.next().await {
                let is_ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if is_ready {
                    ready
                        .lock()
                        .unwrap()
                        .entry(format!(
                            "{}/{}",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        ))
                        .or_insert_with(Instant::now);
                }
            }
        })
    };

    let started = Instant::now();
    let mut sent = HashMap::new();
    for i in 0..deployments {
        let namespace = format!("styrmin-env-{i}");
        sent.insert(namespace, Instant::now());
        call("mutation($e: ID!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $e, name: \"app\", parameters: {admin_email: \"a@b.c\", replicas: 1}) { deployment { id } } }", json!({"e": format!("env-{i}")})).await?;
    }

    // Poll the API for pods shown ready; the first sighting is when it became visible.
    let mut visible: HashMap<String, Instant> = HashMap::new();
    let expected = deployments * 2;
    let deadline = Instant::now() + Duration::from_secs(1500);
    while visible.len() < expected {
        if Instant::now() > deadline {
            break;
        }
        let v = call(
            "{ podStatuses(first: 1000) { namespace name ready } }",
            json!({}),
        )
        .await?;
        let now = Instant::now();
        for p in v["podStatuses"].as_array().into_iter().flatten() {
            if p["ready"] == true {
                visible
                    .entry(format!(
                        "{}/{}",
                        p["namespace"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    ))
                    .or_insert(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the bench's sampling interval
    }
    let converged = started.elapsed();

    let applied = applied.lock().unwrap().clone();
    let mut to_applied: Vec<f64> = sent
        .iter()
        .filter_map(|(ns, t0)| {
            applied
                .get(ns)
                .map(|t1| t1.duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    let ready = ready.lock().unwrap().clone();
    let mut to_visible: Vec<f64> = visible
        .iter()
        .filter_map(|(pod, seen)| {
            ready
                .get(pod)
                .map(|r| seen.saturating_duration_since(*r).as_secs_f64() * 1000.0)
        })
        .collect();
    to_applied.sort_by(f64::total_cmp);
    to_visible.sort_by(f64::total_cmp);
    if to_applied.len() < deployments {
        bail!(
            "only {} of {deployments} StyrminDeployments were seen applied",
            to_applied.len()
        );
    }
    let _ = stop.send(());
    agent.abort();
    sd_watch.abort();
    pod_watch.abort();
    server.stop().await?;
    cluster.stop().await;
    let (a50, a99) = (percentile(&to_applied, 50.0), percentile(&to_applied, 99.0));
    let (v50, v99) = (percentile(&to_visible, 50.0), percentile(&to_visible, 99.0));
    Ok(format!(
        "## Agent: intent → applied, pod ready → visible\n\n\
         Command: `cargo run --release -p styrmin-bench -- agent --deployments {deployments}`\n\n\
         Server, agent and local cluster in one process (release build); {deployments} deployments of\n\
         the example driver without its lifecycle actions (each in its own environment, 1 server\n\
         replica + PostgreSQL) created back to back. **Intent → applied**: from sending `createDeployment` to the bench's own\n\
         watch seeing the `StyrminDeployment` in the cluster. **Pod ready → visible**: from the\n\
         bench's watch seeing a pod Ready to the API (`podStatuses`, sampled every 20 ms)\n\
         showing it ready; {} pods.\n\n\
         | measure | p50 | p99 | target |\n\
         |---|---|---|---|\n\
         | intent → StyrminDeployment applied | {a50:.0} ms | {a99:.0} ms | p50 < 50 ms, p99 < 250 ms |\n\
         | pod ready → visible through the API | {v50:.0} ms | {v99:.0} ms | p50 < 500 ms |\n\n\
         {} of {expected} pods visible as ready {:.1} s after the first request. The\n\
         convergence time is the Flux stand-in's: it runs the real `helm upgrade --install --wait`\n\
         per release on this 2-core machine.\n",
        to_visible.len(),
        visible.len(),
        converged.as_secs_f64()
    ))
}

/// The example driver without its lifecycle actions: the measure is the agent's own path
/// from intent to the applied object, not a driver's `setup/pre` action (a Python
/// process start, about a second here) that by definition runs before it.
pub fn driver_without_actions(repo: &Path) -> Result<tempfile::TempDir> {
    let source = repo.join("drivers/examples/my-app");
    let copy = tempfile::tempdir()?;
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(source.join("."))
        .arg(copy.path())
        .status()?;
    anyhow::ensure!(status.success(), "cannot copy {}", source.display());
    let spec_path = copy.path().join("driver.styrmin.yml");
    let spec = std::fs::read_to_string(&spec_path)?;
    let cut = spec
        .find("\n  actions:\n")
        .context("the example driver's actions are its last section")?;
    std::fs::write(&spec_path, &spec[..cut + 1])?;
    std::fs::remove_file(copy.path().join("actions.py"))?;
    Ok(copy)
}
