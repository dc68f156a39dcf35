//! The Styrmin agent: the only part that touches a cluster (SPEC §5–§7). Three loops in one
//! process — the flow-run worker, the `StyrminDeployment` operator and the status
//! reporter — each in its own task, so a failure in one does not stop the others; and,
//! with `metrics_listen`, a small listener for `/metrics` and `/healthz`.

pub mod actions;
pub mod api;
pub mod backups;
pub mod bundle;
pub mod driver_versions;
pub mod http;
pub mod instance;
pub mod kube_client;
mod locations;
pub mod metrics;
pub mod operator;
pub mod reporter;
pub mod runlog;
mod settled;
mod slots;
pub mod worker;
pub mod workloads;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub server: String,
    pub token: String,
    /// A full report at least this often.
    pub snapshot_interval: Duration,
    /// The longest a core step waits for the operator.
    pub core_timeout: Duration,
    /// On shutdown, how long runs in flight may finish before they are handed back.
    pub shutdown_grace: Duration,
    /// Where to serve `/metrics` and `/healthz`; nowhere when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// The namespace the agent runs in: labelled at start so that environments'
    /// NetworkPolicies let the agent's lifecycle actions reach their pods.
    pub namespace: Option<String>,
}

impl AgentConfig {
    pub fn new(server: &str, token: &str) -> AgentConfig {
        AgentConfig {
            server: server.to_owned(),
            token: token.to_owned(),
            snapshot_interval: Duration::from_secs(30),
            core_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(20),
            metrics_listen: None,
            namespace: None,
        }
    }
}

/// Installs (or updates) the StyrminDeployment CRD and waits until it is served.
pub async fn ensure_crd(client: &Client) -> Result<()> {
    let crd = styrmin_core::crd::crd();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "styrmindeployments.styrmin.io";
    api.patch(
        name,
        &PatchParams::apply("styrmin-agent").force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("cannot install the StyrminDeployment CRD")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        await_condition(api, name, conditions::is_crd_established()),
    )
    .await
    .context("the StyrminDeployment CRD was not established in 30 s")??;
    Ok(())
}

/// Marks the agent's namespace with [`AGENT_NAMESPACE_LABEL`], the label environments'
/// NetworkPolicies admit.
///
/// [`AGENT_NAMESPACE_LABEL`]: styrmin_core::children::AGENT_NAMESPACE_LABEL
pub async fn label_own_namespace(client: &Client, namespace: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {
        styrmin_core::children::AGENT_NAMESPACE_LABEL: "true"
    }}});
    api.patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot label the agent's namespace {namespace}"))?;
    Ok(())
}

/// Runs the three loops until `shutdown` resolves.
pub async fn run(
    config: AgentConfig,
    client: Client,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = match config.metrics_listen {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    let api = api::AgentApi::connect(&config.server, &config.token).await?;
    ensure_crd(&client).await?;
    if let Some(namespace) = &config.namespace {
        label_own_namespace(&client, namespace).await?;
    }
    tracing::info!(cluster = api.cluster_id, "agent connected");
    let worker = Arc::new(worker::Worker::new(
        api.clone(),
        client.clone(),
        config.core_timeout,
    ));
    let mut tasks = vec![
        tokio::spawn(operator::run(client.clone())),
        tokio::spawn(worker.clone().run()),
        tokio::spawn(locations::run(api.clone(), client.clone())),
        tokio::spawn(reporter::run(api, client, config.snapshot_interval)),
    ];
    if let Some(listener) = listener {
        tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics and /healthz");
        tasks.push(tokio::spawn(http::serve(listener, metrics::global())));
    }
    shutdown.await;
    // The operator keeps reconciling while runs in flight finish: they wait on it.
    worker.shutdown(config.shutdown_grace).await;
    for task in tasks {
        task.abort();
    }
    Ok(())
}
