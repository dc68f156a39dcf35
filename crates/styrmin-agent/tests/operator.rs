//! The operator alone against a real kube-apiserver (the local cluster, without Flux or
//! nodes: the test plays helm-controller and the workload controllers by writing their
//! status itself). It proves that the operator acts on watch events — a HelmRelease
//! turning Ready, a workload's replicas becoming ready, a child deleted or edited — well
//! inside its 5-minute safety-net requeue; that it applies the server's values only when
//! they match their digest; that it leaves unchanged children alone, prunes what a render
//! drops, stops and starts workloads, and removes everything before its finalizer.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde_json::{Value, json};
use styrmin_core::context::{SampleSettings, sample};
use styrmin_core::crd::{DriverRef, StyrminDeployment, StyrminDeploymentSpec, values_digest};
use styrmin_core::driver::{DriverFiles, load};
use styrmin_core::planner::Phase;
use styrmin_localkube::{LocalCluster, Options};

const NAMESPACE: &str = "styrmin-dev";
const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Far below the operator's safety-net requeue (300 s): whatever happens within this
/// was brought by a watch.
const WAIT: Duration = Duration::from_secs(15);

/// The example driver's Context for deployment `shop` in environment `dev`.
fn context() -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/examples/my-app");
    let files = DriverFiles {
        spec: std::fs::read_to_string(dir.join("driver.styrmin.yml")).unwrap(),
        values_template: None,
        actions: std::fs::read_to_string(dir.join("actions.py")).ok(),
        files: ["driver.styrmin.yml", "actions.py", "chart/Chart.yaml"]
            .map(String::from)
            .into(),
    };
    let driver = load(&files).driver.expect("the example driver is valid");
    let settings = SampleSettings {
        environment: Some("dev".into()),
        deployment: Some("shop".into()),
        parameters: [("admin_email".to_owned(), json!("ops@example.com"))].into(),
        ..Default::default()
    };
    sample(&driver.spec, "2.3.1", &settings).unwrap().to_value()
}

fn spec(context: Value, values: Value) -> StyrminDeploymentSpec {
    StyrminDeploymentSpec {
        deployment_id: "d-1".into(),
        driver: DriverRef {
            name: "my-app".into(),
            version: "1".into(),
            digest: DIGEST.into(),
        },
        app_version: "2.3.1".into(),
        phase: Phase::Running,
        context,
        values_digest: values_digest(&values),
        values,
        instance_id: Some("i-1".into()),
        chart_repository: Some("http://127.0.0.1:9/charts/".into()),
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Waits on a watch until `check` holds for the object (or its absence).
async fn until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, check)).await {
        Ok(found) => found.expect("the watch works"),
        Err(_) => panic!(
            "timed out after {WAIT:?} waiting for {what}; the object is {:#?}",
            api.get_opt(name).await
        ),
    }
}

/// The Ready condition's status, reason and message.
fn ready(sd: Option<&StyrminDeployment>) -> Option<(String, String, String)> {
    let c = sd?.status.as_ref()?.condition("Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn ready_with(sd: Option<&StyrminDeployment>, status: &str, message: &str) -> bool {
    ready(sd).is_some_and(|(s, _, m)| s == status && m.contains(message))
}

/// Writes a HelmRelease status as Flux's helm-controller does on success.
async fn release_ready(releases: &Api<DynamicObject>) {
    let release = releases.get("shop").await.unwrap();
    let generation = release.metadata.generation.unwrap();
    releases
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": generation, "conditions": [
                {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                 "message": "Helm upgrade succeeded", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}})),
        )
        .await
        .unwrap();
}

/// Writes a Deployment's status as its controller would.
async fn workload_status(deployments: &Api<Deployment>, ready: i32) {
    let d = deployments.get("shop-server").await.unwrap();
    deployments
        .patch_status(
            "shop-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": d.metadata.generation,
                "replicas": ready, "readyReplicas": ready
            }})),
        )
        .await
        .unwrap();
}

async fn start() -> (LocalCluster, Client) {
    let cluster = LocalCluster::start(Options {
        nodes: 0,
        helm: None,
        rclone: None,
        controller_manager: false,
        ..Options::default()
    })
    .await
    .expect("the local cluster starts");
    let client = cluster.client();
    styrmin_agent::ensure_crd(&client).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let files: BTreeMap<String, Vec<u8>> = [(
        "chart/Chart.yaml".to_owned(),
        b"apiVersion: v2\nname: my-app\nversion: 1.4.0\n".to_vec(),
    )]
    .into();
    styrmin_agent::bundle::ensure(&client, NAMESPACE, "my-app", DIGEST, &files)
        .await
        .unwrap();
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_acts_on_watch_events_and_applies_only_verified_values() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let (cluster, client) = start().await;
    let operator = tokio::spawn(styrmin_agent::operator::run(client.clone()));
    let sds: Api<StyrminDeployment> = Api::namespaced(client.clone(), NAMESPACE);
    let releases: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
    );
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);

    // Created: the children appear, the finalizer is on, and it waits for the release.
    let values = json!({"server": {"replicas": 1}});
    let object = StyrminDeployment::new("shop", spec(context(), values.clone()));
    sds.create(&PostParams::default(), &object).await.unwrap();
    let sd = until(&sds, "shop", "waiting for the HelmRelease", |sd| {
        ready_with(sd, "False", "waiting for the HelmRelease")
    })
    .await
    .unwrap();
    assert!(
        sd.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&"styrmin.io/cleanup".into())
    );
    let release = releases.get("shop").await.unwrap();
    assert_eq!(
        release.data["spec"]["values"], values,
        "the server's values, as sent"
    );
    assert_eq!(release.data["spec"]["chart"]["spec"]["chart"], "my-app");
    for name in ["shop-my-app", "shop-my-app-db"] {
        services.get(name).await.unwrap();
    }
    policies.get("shop-environment-only").await.unwrap();

    // The chart's server Deployment, not ready yet; the release turns Ready: the
    // operator notices at once and waits for the pods.
    let workload = json!({
        "metadata": {"name": "shop-server", "labels": {
            "app.kubernetes.io/name": "my-app", "app.kubernetes.io/component": "server",
            "app.kubernetes.io/instance": "shop"}},
        "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "my-app", "app.kubernetes.io/component": "server"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "my-app", "app.kubernetes.io/component": "server"}},
                "spec": {"containers": [{"name": "server", "image": "my-app:2.3.1"}]}}},
    });
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(workload).unwrap(),
        )
        .await
        .unwrap();
    workload_status(&deployments, 0).await;
    release_ready(&releases).await;
    until(&sds, "shop", "waiting for component pods", |sd| {
        ready_with(sd, "False", "waiting for component pods")
    })
    .await;

    // A Service edited by hand (no generation to show it) is left alone by passes that
    // change nothing in the render: unchanged children are not applied again.
    services
        .patch(
            "shop-my-app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ports": [{"name": "http", "port": 8001, "targetPort": 8000, "protocol": "TCP"}]}})),
        )
        .await
        .unwrap();

    // The pods turn ready (a workload watch event): Ready, with the counts.
    workload_status(&deployments, 1).await;
    let sd = until(&sds, "shop", "Ready", |sd| {
        ready_with(sd, "True", "every component is ready")
    })
    .await
    .unwrap();
    let status = sd.status.unwrap();
    assert_eq!(status.components["server"].ready, 1);
    assert_eq!(status.helm_release_ready, Some(true));
    assert_eq!(status.observed_generation, sd.metadata.generation);
    assert_eq!(
        services
            .get("shop-my-app")
            .await
            .unwrap()
            .spec
            .unwrap()
            .ports
            .unwrap()[0]
            .port,
        8001,
        "a pass with an unchanged render applied the Service again"
    );

    // A NetworkPolicy changed by someone else (its generation moves) is put back; a
    // deleted Service is made again.
    policies
        .patch(
            "shop-environment-only",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policyTypes": ["Ingress", "Egress"]}})),
        )
        .await
        .unwrap();
    until(
        &policies,
        "shop-environment-only",
        "the NetworkPolicy put back",
        |p| p.and_then(|p| p.spec.as_ref()?.policy_types.clone()) == Some(vec!["Ingress".into()]),
    )
    .await;
    services
        .delete("shop-my-app-db", &DeleteParams::default())
        .await
        .unwrap();
    until(
        &services,
        "shop-my-app-db",
        "the deleted Service made again",
        |s| s.is_some(),
    )
    .await;

    // Values that do not hash to their digest: Stalled, naming both, and nothing applied.
    let tampered = json!({"server": {"replicas": 5}});
    sds.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": tampered}})),
    )
    .await
    .unwrap();
    let sd = until(&sds, "shop", "Stalled on the digest", |sd| {
        sd.and_then(|sd| sd.status.as_ref())
            .and_then(|s| s.condition("Stalled"))
            .is_some_and(|c| c.status == "True" && c.reason == "ValuesDigestMismatch")
    })
    .await
    .unwrap();
    let error = sd.status.unwrap().last_error.unwrap();
    assert!(
        error.contains(&values_digest(&tampered)) && error.contains(&values_digest(&values)),
        "{error}"
    );
    assert_eq!(
        releases.get("shop").await.unwrap().data["spec"]["values"],
        values,
        "values that fail their digest are not applied"
    );

    // With their digest they are applied: the release's new generation is not Ready
    // until helm-controller says so, however Ready the cached release looked before.
    sds.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"valuesDigest": values_digest(&tampered)}})),
    )
    .await
    .unwrap();
    let sd = until(
        &sds,
        "shop",
        "the new values waiting for the release",
        |sd| {
            ready_with(sd, "False", "waiting for the HelmRelease")
                && sd
                    .and_then(|sd| sd.status.as_ref())
                    .and_then(|s| s.condition("Stalled"))
                    .is_some_and(|c| c.status == "False")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        sd.status.unwrap().last_error,
        Some(error),
        "kept until Ready"
    );
    assert_eq!(
        releases.get("shop").await.unwrap().data["spec"]["values"],
        tampered
    );
    release_ready(&releases).await;
    let sd = until(&sds, "shop", "Ready again", |sd| {
        ready_with(sd, "True", "every component is ready")
    })
    .await
    .unwrap();
    assert_eq!(sd.status.unwrap().last_error, None, "cleared once Ready");

    // A render without the database service: its Service is pruned.
    sds.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"context": {"services": {"my-app-db": null}}}})),
    )
    .await
    .unwrap();
    until(&services, "shop-my-app-db", "the Service pruned", |s| {
        s.is_none()
    })
    .await;
    services.get("shop-my-app").await.unwrap();

    // Stopped: the release suspended, the server scaled to 0 with its replicas
    // remembered; Ready (stopped) once its pods are gone.
    sds.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"phase": "stopped"}})),
    )
    .await
    .unwrap();
    let d = until(&deployments, "shop-server", "scaled to 0", |d| {
        d.and_then(|d| d.spec.as_ref()?.replicas) == Some(0)
    })
    .await
    .unwrap();
    assert_eq!(d.metadata.annotations.unwrap()["styrmin.io/replicas"], "1");
    assert_eq!(
        releases.get("shop").await.unwrap().data["spec"]["suspend"],
        true
    );
    workload_status(&deployments, 0).await;
    until(&sds, "shop", "stopped", |sd| {
        ready_with(sd, "True", "stopped")
    })
    .await;

    // Running again: the replicas come back and the annotation goes.
    sds.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"phase": "running"}})),
    )
    .await
    .unwrap();
    let d = until(&deployments, "shop-server", "scaled back to 1", |d| {
        d.and_then(|d| d.spec.as_ref()?.replicas) == Some(1)
    })
    .await
    .unwrap();
    assert!(
        !d.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("styrmin.io/replicas")
    );

    // Deleted: every child goes, then the finalizer, then the object.
    sds.delete("shop", &DeleteParams::background())
        .await
        .unwrap();
    until(&sds, "shop", "the StyrminDeployment gone", |sd| {
        sd.is_none()
    })
    .await;
    assert!(releases.get_opt("shop").await.unwrap().is_none());
    assert!(services.get_opt("my-app").await.unwrap().is_none());
    assert!(
        policies
            .get_opt("shop-environment-only")
            .await
            .unwrap()
            .is_none()
    );
    let repositories: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &gvk("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
    );
    assert!(repositories.get_opt("shop").await.unwrap().is_none());

    operator.abort();
    cluster.stop().await;
}

/// A StyrminDeployment written by an older agent (no `spec.values`) is not applied: it is
/// Stalled with a reason saying why and what brings the values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_without_values_is_stalled_and_nothing_is_applied() {
    let (cluster, client) = start().await;
    let operator = tokio::spawn(styrmin_agent::operator::run(client.clone()));
    let sds: Api<StyrminDeployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut object =
        serde_json::to_value(StyrminDeployment::new("shop", spec(context(), json!({})))).unwrap();
    object["spec"].as_object_mut().unwrap().remove("values");
    sds.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap();
    let sd = until(&sds, "shop", "Stalled without values", |sd| {
        sd.and_then(|sd| sd.status.as_ref())
            .and_then(|s| s.condition("Stalled"))
            .is_some_and(|c| c.status == "True" && c.reason == "ValuesMissing")
    })
    .await
    .unwrap();
    assert!(
        sd.status
            .unwrap()
            .last_error
            .unwrap()
            .contains("the next flow run writes the values")
    );
    let releases: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
    );
    assert!(
        releases.get_opt("shop").await.unwrap().is_none(),
        "nothing applied"
    );
    operator.abort();
    cluster.stop().await;
}
