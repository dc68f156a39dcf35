//! Server + agent + local cluster (a real kube-apiserver; simulated nodes; the Flux
//! stand-in running the real helm): the project's chart (deploy/helm/styrmin) installs with
//! the real helm, and the agent runs with the RBAC it grants; the example deployment is
//! created (hook `setup`: its Python actions run pre → core → post, the post one execs in
//! the server pod), becomes RUNNING with its pods listed through the API, is updated,
//! fails on a chart values error (keeping its Instance) and is fixed, is upgraded (hook
//! `upgrade`: a failing smoke test keeps the old Instance active until `retry` after the
//! fix), stopped, started and deleted.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt as _;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_core::crd::StyrminDeployment;
use styrmin_localkube::LocalCluster;
use styrmin_server::Settings;
use styrmin_testkit::cluster::{LocalStack, helm_releases};
use styrmin_testkit::{helm, ok, repo_root, wait_until};

/// Polls the API until `check` holds for the deployment, or fails after `limit`.
async fn until(
    client: &Client,
    id: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, limit, Duration::from_millis(200), || async {
        let d = ok(client, "query($id: ID!) { deployment(id: $id) { phase lastError status { status message urls } pods { name component ready phase } flowRuns { kind state error } } }", json!({"id": id})).await["deployment"].clone();
        if check(&d) { Ok(d) } else { Err(d) }
    })
    .await
}

/// Installs deploy/helm/styrmin with the real helm (both server and agent, as on a real
/// cluster; their pods run on the simulated nodes) and returns a client acting as the
/// agent's service account, so the agent under test has exactly the chart's RBAC.
async fn install_chart(cluster: &LocalCluster) -> kube::Client {
    let kube = cluster.client();
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "styrmin"}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), "styrmin");
    for (name, data) in [
        (
            "styrmin-db",
            json!({"url": "postgres://styrmin:secret@db/styrmin"}),
        ),
        (
            "styrmin-credentials",
            json!({"admin-token": "stm_e2e_admin_token_0123", "secret-key": "k"}),
        ),
        ("styrmin-agent-token", json!({"token": "stm_y"})),
    ] {
        let secret = json!({"metadata": {"name": name}, "stringData": data});
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(secret).unwrap(),
            )
            .await
            .unwrap();
    }
    let chart = repo_root().join("deploy/helm/styrmin");
    let output = tokio::process::Command::new(helm())
        .args(["install", "styrmin"])
        .arg(&chart)
        .args(["--namespace", "styrmin", "--wait", "--timeout", "2m"])
        .args(["--set", "server.database.existingSecret=styrmin-db"])
        .args([
            "--set",
            "server.credentials.existingSecret=styrmin-credentials",
        ])
        .args(["--set", "agent.token.existingSecret=styrmin-agent-token"])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["styrmin-server", "styrmin-agent"] {
        let deployments: Api<Deployment> = Api::namespaced(kube.clone(), "styrmin");
        let d = deployments.get(name).await.unwrap();
        assert_eq!(
            d.status.and_then(|s| s.available_replicas),
            Some(1),
            "{name} is available"
        );
    }
    // The service account's token, as the tokens controller writes it (Kubernetes 1.20).
    let token = wait_until(
        "a token for the agent's service account",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let found = secrets.list(&Default::default()).await.unwrap();
            found
                .items
                .into_iter()
                .find_map(|s| {
                    let sa = s.annotations().get("kubernetes.io/service-account.name")?;
                    (sa == "styrmin-agent").then_some(())?;
                    Some(String::from_utf8(s.data?.get("token")?.0.clone()).unwrap())
                })
                .ok_or("none yet")
        },
    )
    .await;
    styrmin_localkube::cluster::client_for(cluster.server_url(), &token).unwrap()
}

/// Each of `lines` is in `log`, in this order.
fn assert_in_order(log: &[String], lines: &[&str]) {
    let positions: Vec<usize> = lines
        .iter()
        .map(|line| {
            log.iter()
                .position(|l| l.contains(line))
                .unwrap_or_else(|| panic!("no log line with {line:?} in {log:#?}"))
        })
        .collect();
    assert!(positions.is_sorted(), "{positions:?} in {log:#?}");
}

/// Every log line of the deployment's latest run.
async fn run_log(client: &Client, id: &str) -> Vec<String> {
    let v = ok(
        client,
        "query($id: ID!) { deployment(id: $id) { flowRuns { logs { message } } } }",
        json!({"id": id}),
    )
    .await;
    v["deployment"]["flowRuns"][0]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

async fn active_version(client: &Client, id: &str) -> String {
    let v = ok(
        client,
        "query($id: ID!) { deployment(id: $id) { activeInstance { appVersion } } }",
        json!({"id": id}),
    )
    .await;
    v["deployment"]["activeInstance"]["appVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_runs_updates_stops_starts_and_goes() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let mut stack = LocalStack::start(Settings::default(), json!({})).await;
    let admin = stack.admin.clone();
    let kube = stack.cluster.client();
    let as_agent = install_chart(&stack.cluster).await;
    let agent = stack.agent_in_process(as_agent, |config| {
        config.snapshot_interval = Duration::from_secs(5);
        config.core_timeout = Duration::from_secs(60);
    });

    // Create → RUNNING, pods listed through the API.
    let created = ok(&admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({})).await;
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

    // Hook `setup` ran pre → core → post, and the post action's exec really ran in the
    // server pod (the simulated container runs it in the pod's directory).
    let log = run_log(&admin, &id).await;
    assert_in_order(
        &log,
        &[
            "action check_database_settings (setup/pre) started",
            "database name myapp accepted",
            "action check_database_settings (setup/pre) completed",
            "StyrminDeployment styrmin-dev/shop applied",
            "action migrate_after_setup (setup/post) started",
            "exec in component server: sh -c my-app migrate",
            "my-app: database schema is up to date",
            "my-app: admin ops@example.com seeded",
            "action migrate_after_setup (setup/post) completed",
        ],
    );
    let server_pod = pods.iter().find(|p| p["component"] == "server").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let calls = std::fs::read_to_string(
        stack
            .cluster
            .pods_dir()
            .join("styrmin-dev")
            .join(&server_pod)
            .join("my-app.calls"),
    )
    .expect("the exec ran in the server pod's directory");
    assert_eq!(calls, "migrate\nseed-admin\n");

    // Update a parameter → an update run; the HelmRelease's values change.
    ok(&admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {log_level: \"debug\"}) { flowRun { kind } } }", json!({"id": id})).await;
    until(
        &admin,
        &id,
        "the update to complete",
        Duration::from_secs(180),
        |d| d["flowRuns"][0]["kind"] == "update" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    let releases = helm_releases(&kube, "styrmin-dev");
    let release = releases.get("shop").await.unwrap();
    assert_eq!(
        release.data["spec"]["values"]["server"]["logLevel"], "debug",
        "{}",
        release.data["spec"]["values"]
    );

    // A values error: helm fails, the run fails with helm's message, the previous Instance
    // stays active; fixing the value converges again.
    ok(&admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {replicas: -1}) { flowRun { kind } } }", json!({"id": id})).await;
    let failed = until(
        &admin,
        &id,
        "the bad update to fail",
        Duration::from_secs(120),
        |d| d["flowRuns"][0]["state"] == "failed" && !d["lastError"].is_null(),
    )
    .await;
    let error = failed["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("Helm upgrade failed") && error.contains("replicas"),
        "{failed}"
    );
    let active = ok(
        &admin,
        "query($id: ID!) { deployment(id: $id) { activeInstance { context } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        active["deployment"]["activeInstance"]["context"]["parameters"]["replicas"],
        1
    );
    ok(&admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {replicas: 1}) { flowRun { kind } } }", json!({"id": id})).await;
    until(
        &admin,
        &id,
        "the fixed update to converge",
        Duration::from_secs(120),
        |d| {
            d["flowRuns"][0]["state"] == "completed"
                && d["status"]["status"] == "RUNNING"
                && d["lastError"].is_null()
        },
    )
    .await;

    // Upgrade while the environment's apps answer 503: hook `upgrade` stops the server
    // (pre), the driver's Python core upgrades and starts it again, and the smoke test
    // (post) fails. The run fails naming the action; the previous Instance stays active.
    let http_status = stack
        .cluster
        .pods_dir()
        .join("styrmin-dev")
        .join("http-status");
    std::fs::write(&http_status, "503").unwrap();
    ok(&admin, "mutation($id: ID!) { upgradeDeployment(id: $id, appVersion: \"2.4.0\") { flowRun { kind } } }", json!({"id": id})).await;
    let failed = until(
        &admin,
        &id,
        "the upgrade's smoke test to fail",
        Duration::from_secs(180),
        // The deployment row and its runs are separate reads of one answer: wait until
        // both show the failure, not only the run.
        |d| {
            d["flowRuns"][0]["kind"] == "upgrade"
                && d["flowRuns"][0]["state"] == "failed"
                && !d["lastError"].is_null()
        },
    )
    .await;
    let error = failed["flowRuns"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("action smoke_test (upgrade/post) failed")
            && error.contains("answered 503, expected 200"),
        "{failed}"
    );
    assert!(
        failed["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("smoke_test")),
        "{failed}"
    );
    assert_eq!(active_version(&admin, &id).await, "2.3.1");
    let log = run_log(&admin, &id).await;
    assert_in_order(
        &log,
        &[
            "action stop_server_before_upgrade (upgrade/pre) started",
            "component server stopped",
            "action upgrade (upgrade/core) started",
            "upgrading",
            "StyrminDeployment styrmin-dev/shop applied",
            "component server started and ready",
            "action upgrade (upgrade/core) completed",
            "action smoke_test (upgrade/post) started",
            "action smoke_test (upgrade/post) failed",
        ],
    );

    // The fix (the apps answer again), then `retry`: the new Instance becomes active.
    std::fs::remove_file(&http_status).unwrap();
    ok(
        &admin,
        "mutation($id: ID!) { retryDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    until(
        &admin,
        &id,
        "the retried upgrade to complete",
        Duration::from_secs(180),
        |d| {
            d["flowRuns"][0]["kind"] == "upgrade"
                && d["flowRuns"][0]["state"] == "completed"
                && d["status"]["status"] == "RUNNING"
        },
    )
    .await;
    assert_eq!(active_version(&admin, &id).await, "2.4.0");

    // Stop → 0 replicas, STOPPED; start → replicas back, RUNNING.
    ok(
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
    ok(
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
    ok(
        &admin,
        "mutation($id: ID!) { deleteDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    let sds: Api<StyrminDeployment> = Api::namespaced(kube.clone(), "styrmin-dev");
    wait_until(
        "the StyrminDeployment and its HelmRelease to go",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            let sd = sds.get_opt("shop").await.unwrap();
            let release = releases.get_opt("shop").await.unwrap();
            match (sd, release) {
                (None, None) => Ok(()),
                (sd, release) => Err(format!(
                    "still there: StyrminDeployment {}, HelmRelease {}",
                    sd.is_some(),
                    release.is_some()
                )),
            }
        },
    )
    .await;
    until(
        &admin,
        &id,
        "the delete run to complete",
        Duration::from_secs(60),
        |d| d["flowRuns"][0]["kind"] == "delete" && d["flowRuns"][0]["state"] == "completed",
    )
    .await;
    let v = ok(&admin, "{ deployments { id } }", json!({})).await;
    assert_eq!(v["deployments"], json!([]));

    agent.stop().await;
    stack.cluster.check_running().unwrap();
    stack.stop().await;
}
