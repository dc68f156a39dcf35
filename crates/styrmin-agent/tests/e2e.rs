//! Server + agent + local cluster (a real kube-apiserver; simulated nodes; the Flux
//! stand-in running the real helm): the example deployment is created, becomes RUNNING
//! with its pods listed through the API, is updated, stopped, started and deleted.
//! (A chart values error's path is covered with a fake agent in the server's store suite;
//! on the local cluster, helm's failing upgrade sometimes hangs past a minute in the Flux
//! stand-in, which is under investigation.)

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use styrmin_agent::{AgentConfig, run};
use styrmin_client::Client;
use styrmin_core::crd::StyrminDeployment;
use styrmin_localkube::{LocalCluster, Options};
use styrmin_server::server::{ServerOptions, start};

const ADMIN: &str = "stm_e2e-admin";

async fn call(client: &Client, query: &str, vars: Value) -> Value {
    client
        .request(query, vars)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Polls the API until `check` holds for the deployment, or fails after `limit`.
async fn until(
    client: &Client,
    id: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let d = call(client, "query($id: ID!) { deployment(id: $id) { phase lastError status { status message urls } pods { name component ready phase } flowRuns { kind state error } } }", json!({"id": id})).await["deployment"].clone();
        if check(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval within a deadline
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_runs_updates_stops_starts_and_goes() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let mut cluster = LocalCluster::start(Options::default())
        .await
        .expect("the local cluster starts");
    let kube = cluster.client();
    let data = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(data.path().to_owned());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN.into());
    let server = start(options).await.expect("the server starts");
    let admin = Client::new(&server.url(), Some(ADMIN.into())).unwrap();

    let v = call(
        &admin,
        "mutation { createCluster(name: \"local\") { agentToken } }",
        json!({}),
    )
    .await;
    let agent_token = v["createCluster"]["agentToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &admin,
        "mutation { createEnvironment(name: \"dev\", clusterId: \"local\") { id } }",
        json!({}),
    )
    .await;
    let driver = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../drivers/examples/my-app")
        .canonicalize()
        .unwrap();
    call(
        &admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.display().to_string()}),
    )
    .await;

    let mut config = AgentConfig::new(&server.url(), &agent_token);
    config.snapshot_interval = Duration::from_secs(5);
    config.core_timeout = Duration::from_secs(60);
    let (stop_agent, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run(config, kube.clone(), async {
        let _ = stopped.await;
    }));

    // Create → RUNNING, pods listed through the API.
    let created = call(&admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({})).await;
    let id = created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = until(
        &admin,
        &id,
        "RUNNING and the create run completed",
        Duration::from_secs(240),
        |d| d["status"]["status"] == "RUNNING" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    let pods = d["pods"].as_array().unwrap();
    assert!(
        pods.iter()
            .any(|p| p["component"] == "server" && p["ready"] == true),
        "{d}"
    );
    assert!(pods.iter().any(|p| p["component"] == "postgresql"), "{d}");
    assert_eq!(d["flowRuns"][0]["state"], "completed");

    // Update a parameter → an update run; the HelmRelease's values change.
    call(&admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {log_level: \"debug\"}) { flowRun { kind } } }", json!({"id": id})).await;
    until(
        &admin,
        &id,
        "the update to complete",
        Duration::from_secs(180),
        |d| d["flowRuns"][0]["kind"] == "update" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    let releases: Api<DynamicObject> = Api::namespaced_with(
        kube.clone(),
        "styrmin-dev",
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        )),
    );
    let release = releases.get("shop").await.unwrap();
    assert_eq!(
        release.data["spec"]["values"]["server"]["logLevel"], "debug",
        "{}",
        release.data["spec"]["values"]
    );

    // Stop → 0 replicas, STOPPED; start → replicas back, RUNNING.
    call(
        &admin,
        "mutation($id: ID!) { stopDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    until(&admin, &id, "STOPPED", Duration::from_secs(120), |d| {
        d["status"]["status"] == "STOPPED" && d["flowRuns"][0]["state"] == "completed"
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), "styrmin-dev");
    let server_workload = deployments.get("shop-server").await.unwrap();
    assert_eq!(server_workload.spec.unwrap().replicas, Some(0));
    call(
        &admin,
        "mutation($id: ID!) { startDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    until(
        &admin,
        &id,
        "RUNNING again",
        Duration::from_secs(120),
        |d| d["status"]["status"] == "RUNNING" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    assert_eq!(
        deployments
            .get("shop-server")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1)
    );

    // Delete → everything the operator made is gone, finalizer removed.
    call(
        &admin,
        "mutation($id: ID!) { deleteDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let sds: Api<StyrminDeployment> = Api::namespaced(kube.clone(), "styrmin-dev");
    loop {
        let gone = sds.get_opt("shop").await.unwrap().is_none()
            && releases.get_opt("shop").await.unwrap().is_none();
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the StyrminDeployment and its HelmRelease are still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval within a deadline
    }
    until(
        &admin,
        &id,
        "the delete run to complete",
        Duration::from_secs(60),
        |d| d["flowRuns"][0]["kind"] == "delete" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    let v = call(&admin, "{ deployments { id } }", json!({})).await;
    assert_eq!(v["deployments"], json!([]));

    let _ = stop_agent.send(());
    agent.await.unwrap().unwrap();
    server.stop().await.unwrap();
    cluster.check_running().unwrap();
    cluster.stop().await;
}
