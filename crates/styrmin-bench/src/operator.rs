//! The operator's reaction time on the local cluster: a HelmRelease turning Ready (its
//! status written as helm-controller writes it) → the `StyrminDeployment`'s status Ready,
//! as the bench's own watch sees it. The operator runs in-process on a cluster without
//! Flux or nodes; the bench plays helm-controller. Each trial gives the deployment new
//! values (a new HelmRelease generation), waits until the operator has applied them, then
//! flips the release to Ready and times the operator's answer.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use styrmin_bundle::Bundle;
use styrmin_core::context::{SampleSettings, sample};
use styrmin_core::crd::{StyrminDeployment, values_digest};
use styrmin_localkube::{LocalCluster, Options};
use tokio::sync::watch;

use crate::report::{median, percentile};

const NAMESPACE: &str = "styrmin-bench";
const NAME: &str = "shop";
/// The longest one step may take before the bench gives up.
const STEP: Duration = Duration::from_secs(30);

pub async fn measure(repo: &Path, trials: usize) -> Result<String> {
    let cluster = LocalCluster::start(Options {
        bin_dir: crate::tools::find().await?.bin_dir,
        nodes: 0,
        helm: None,
        rclone: None,
        controller_manager: false,
        ..Options::default()
    })
    .await?;
    let client = cluster.client();
    styrmin_agent::ensure_crd(&client).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
    let bundle = Bundle::read_dir(&repo.join("drivers/examples/my-app"))?;
    let digest = bundle.digest();
    styrmin_agent::bundle::ensure(&client, NAMESPACE, "my-app", &digest, &bundle.files).await?;
    let driver = styrmin_core::load(&bundle.driver_files()?)
        .driver
        .context("the example driver loads")?;
    let settings = SampleSettings {
        environment: Some("bench".into()),
        deployment: Some(NAME.into()),
        parameters: [("admin_email".to_owned(), json!("ops@example.com"))].into(),
        ..Default::default()
    };
    let context = sample(&driver.spec, "2.3.1", &settings)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_value();

    let operator = tokio::spawn(styrmin_agent::operator::run(client.clone()));
    let sds: Api<StyrminDeployment> = Api::namespaced(client.clone(), NAMESPACE);
    let releases: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        )),
    );

    // The bench's watch: the deployment as last seen, and the generation and time it was
    // first seen Ready.
    let (ready_tx, mut ready_rx) = watch::channel::<Option<(i64, Instant)>>(None);
    let (latest_tx, mut latest_rx) = watch::channel::<Option<StyrminDeployment>>(None);
    let bench_watch = tokio::spawn({
        let sds = sds.clone();
        async move {
            let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
            let mut events = watcher(sds, config).applied_objects().boxed();
            while let Some(event) = events.next().await {
                let Ok(sd) = event else { continue };
                latest_tx.send_replace(Some(sd.clone()));
                let status = sd.status.unwrap_or_default();
                let Some(generation) = status.observed_generation else {
                    continue;
                };
                if status.is("Ready") {
                    ready_tx.send_if_modified(|seen| {
                        if seen.is_some_and(|(g, _)| g == generation) {
                            return false;
                        }
                        *seen = Some((generation, Instant::now()));
                        true
                    });
                }
            }
        }
    });

    let first = trial_values(0);
    let object = json!({
        "apiVersion": "styrmin.io/v1", "kind": "StyrminDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "deploymentId": "bench-1",
            "driver": {"name": "my-app", "version": driver.spec.spec.version, "digest": digest},
            "appVersion": "2.3.1", "phase": "running", "context": context,
            "values": first, "valuesDigest": values_digest(&first),
            "chartRepository": "http://127.0.0.1:9/charts/",
        },
    });
    sds.create(&PostParams::default(), &serde_json::from_value(object)?)
        .await?;

    let mut millis = Vec::with_capacity(trials);
    for trial in 1..=trials {
        // New values: the operator applies a new HelmRelease generation and waits for it.
        let values = trial_values(trial);
        let log_level = if trial % 2 == 0 { "info" } else { "debug" };
        let patched = sds
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {
                    "values": values, "valuesDigest": values_digest(&values),
                    // For an operator that renders the template itself instead.
                    "context": {"parameters": {"log_level": log_level}},
                }})),
            )
            .await?;
        let generation = patched.metadata.generation.context("a generation")?;
        let release_generation = applied(&mut latest_rx, &releases, generation).await?;
        // helm takes a while: the release turns Ready some time after the operator applied
        // it, not right after the operator's own status write (which starts a pass of its
        // own). Spread over 0.5–1.5 s, so the flip lands at any moment of the operator's life.
        tokio::time::sleep(settle(trial)).await;

        let flipped = Instant::now();
        releases
            .patch_status(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "observedGeneration": release_generation,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                        "message": "Helm upgrade succeeded", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                }})),
            )
            .await?;
        let seen = tokio::time::timeout(
            STEP,
            ready_rx.wait_for(|r| r.is_some_and(|(g, _)| g == generation)),
        )
        .await
        .with_context(|| format!("trial {trial}: not Ready within {STEP:?}"))??
        .map(|(_, at)| at)
        .context("seen")?;
        millis.push(seen.saturating_duration_since(flipped).as_secs_f64() * 1000.0);
        eprintln!("trial {trial}: {:.1} ms", millis[millis.len() - 1]);
    }
    bench_watch.abort();
    operator.abort();
    cluster.stop().await;

    let mut sorted = millis.clone();
    let middle = median(&mut sorted);
    let (fastest, slowest) = (sorted[0], sorted[sorted.len() - 1]);
    let p90 = percentile(&sorted, 90.0);
    Ok(format!(
        "## Operator: HelmRelease Ready → StyrminDeployment Ready\n\n\
         Command: `cargo run --release -p styrmin-bench -- operator --trials {trials}`\n\n\
         The operator in-process on the local cluster (no Flux, no nodes: the bench writes\n\
         the HelmRelease's status as helm-controller does). {trials} trials; each gives the\n\
         deployment new values, waits until the operator has applied the new HelmRelease\n\
         generation, lets 0.5–1.5 s pass (as a helm install would; a different phase each\n\
         trial), then times from sending the release's `Ready=True` status to the\n\
         bench's own watch seeing the `StyrminDeployment` Ready for that generation (an upper\n\
         bound: it includes the status patch's round trip and the watch's delivery).\n\n\
         | median | p90 | fastest | slowest | target |\n\
         |---|---|---|---|---|\n\
         | {middle:.1} ms | {p90:.1} ms | {fastest:.1} ms | {slowest:.1} ms | < 100 ms |\n"
    ))
}

/// Between the operator applying a generation and the release turning Ready: 0.5 s to
/// 1.5 s, a different fraction of a second each trial.
fn settle(trial: usize) -> Duration {
    Duration::from_millis(500 + (trial as u64 * 379) % 1000)
}

/// A trial's values (any map will do: the operator applies them as they are).
fn trial_values(trial: usize) -> Value {
    json!({"server": {"replicas": 1}, "bench": {"trial": trial}})
}

/// Waits until the operator has reported on `generation` (not Ready: the release has not
/// said so yet) and returns the HelmRelease generation it applied.
async fn applied(
    latest: &mut watch::Receiver<Option<StyrminDeployment>>,
    releases: &Api<DynamicObject>,
    generation: i64,
) -> Result<i64> {
    let reported = |sd: &Option<StyrminDeployment>| {
        sd.as_ref()
            .and_then(|sd| sd.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(generation) && !s.is("Ready"))
    };
    let sd = tokio::time::timeout(STEP, latest.wait_for(reported))
        .await
        .with_context(|| {
            format!("the operator did not apply generation {generation} within {STEP:?}")
        })??
        .clone()
        .context("seen")?;
    let status = sd.status.unwrap_or_default();
    if status.is("Stalled") {
        bail!("the operator stalled: {:?}", status.last_error);
    }
    let release = releases.get(NAME).await?;
    release.metadata.generation.context("a generation")
}
