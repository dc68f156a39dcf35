//! The generated StyrminDeployment CRD (deploy/crds/) is accepted by a real kube-apiserver:
//! it installs, its objects take a spec and a status (subresource), the printer columns
//! show, and the schema is enforced (an unknown phase is refused).

mod common;

use std::time::{Duration, Instant};

use common::create_namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use styrmin_core::crd::{
    ComponentStatus, DriverRef, StyrminDeployment, StyrminDeploymentSpec, StyrminDeploymentStatus,
};
use styrmin_core::planner::Phase;
use styrmin_localkube::{LocalCluster, Options, crds};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_crd_installs_and_its_objects_take_spec_and_status() {
    let cluster = LocalCluster::start(Options::default())
        .await
        .expect("the local cluster starts");
    let client = cluster.client();
    let yaml = styrmin_core::crd::crd_yaml();
    crds::install_all(
        &client,
        [("styrmindeployments.styrmin.io", yaml.as_str())].into_iter(),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .expect("the CRD installs and is established");
    create_namespace(&client, "styrmin-prod").await;

    let api: Api<StyrminDeployment> = Api::namespaced(client.clone(), "styrmin-prod");
    let object = StyrminDeployment::new(
        "shop",
        StyrminDeploymentSpec {
            deployment_id: "d-1".into(),
            driver: DriverRef {
                name: "my-app".into(),
                version: "1".into(),
                digest: "abc".into(),
            },
            app_version: "2.3.1".into(),
            phase: Phase::Running,
            context: json!({"instance": {"release_name": "shop"}, "parameters": {"replicas": 2}}),
            values: json!({"server": {"replicas": 2}}),
            values_digest: "v1".into(),
            instance_id: Some("i-1".into()),
            chart_repository: None,
        },
    );
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");

    let mut status = StyrminDeploymentStatus {
        phase: Some(Phase::Running),
        observed_generation: Some(1),
        helm_release_ready: Some(true),
        ..Default::default()
    };
    status.components.insert(
        "server".into(),
        ComponentStatus {
            ready: 2,
            desired: 2,
        },
    );
    status.set_condition(
        "Ready",
        true,
        "Ready",
        "all components ready",
        "2026-11-24T00:00:00Z",
    );
    api.patch_status(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("the status subresource takes a status");
    let read = api.get("shop").await.unwrap();
    assert_eq!(read.status.as_ref().unwrap().components["server"].ready, 2);
    assert_eq!(
        read.spec.context["parameters"]["replicas"], 2,
        "the Context is kept whole"
    );
    assert_eq!(
        read.spec.values["server"]["replicas"], 2,
        "the values are kept whole"
    );

    let wrong = Patch::Merge(json!({"spec": {"phase": "paused"}}));
    let refused = api.patch("shop", &PatchParams::default(), &wrong).await;
    assert!(refused.is_err(), "the schema refuses an unknown phase");

    let out = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(["get", "sdep", "-n", "styrmin-prod"])
        .output()
        .await
        .expect("kubectl runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("PHASE") && table.contains("running") && table.contains("2.3.1"),
        "{table}"
    );
    cluster.stop().await;
}
