//! Every role's boundary, through the API: what each token may and may not do, including
//! an agent token used on another cluster's data.

use serde_json::json;
use styrmin_client::ErrorKind;
use styrmin_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_refused_but_health_endpoints_answer() {
    let h = Harness::new(Kind::Sqlite).await;
    let anonymous = styrmin_client::Client::new(&h.server.url(), None).unwrap();
    let e = fails_with(
        &anonymous,
        ErrorKind::Unauthorized,
        "{ clusters { id } }",
        json!({}),
    )
    .await;
    assert!(e.message.contains("bearer token"), "{e}");
    fails_with(
        &h.client("stm_forged"),
        ErrorKind::Unauthorized,
        "{ clusters { id } }",
        json!({}),
    )
    .await;

    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = http
            .get(format!("{}{path}", h.server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = http
        .post(format!("{}/graphql", h.server.url()))
        .json(&json!({"query": "{ me { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Tokens are stored as hashes only.
    let (hashes,): (String,) =
        sqlx::query_as("SELECT hash FROM tokens WHERE name = 'bootstrap-admin'")
            .fetch_one(&mut h.db.connect().await)
            .await
            .unwrap();
    assert_ne!(hashes, ADMIN_TOKEN);
    assert_eq!(hashes.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_everything_and_changes_nothing() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    create_example(&h.admin, &env, "shop").await;
    let viewer = h.token("ci-reader", "viewer").await;
    let before = h.row_counts().await;

    let v = ok(&viewer, "{ clusters { name } deployments { name status { status } } flowRuns { kind } applicationDrivers { name } auditLog { action } }", json!({})).await;
    assert_eq!(v["deployments"][0]["name"], "shop");
    ok(
        &viewer,
        "mutation { planDeployment(id: \"shop\", change: {parameters: {replicas: 5}}) { kind } }",
        json!({}),
    )
    .await;

    for mutation in [
        "mutation { createCluster(name: \"x\") { agentToken } }",
        "mutation { updateDeployment(id: \"shop\", parameters: {replicas: 5}) { noop } }",
        "mutation { stopDeployment(id: \"shop\") { noop } }",
        "mutation { deleteDeployment(id: \"shop\") { noop } }",
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        "mutation { createToken(name: \"mine\", role: admin) { secret } }",
    ] {
        fails_with(
            &viewer,
            ErrorKind::Forbidden,
            mutation,
            json!({"p": example_driver().display().to_string()}),
        )
        .await;
    }
    fails_with(
        &viewer,
        ErrorKind::Forbidden,
        "{ tokens { name } }",
        json!({}),
    )
    .await;
    fails_with(
        &viewer,
        ErrorKind::Forbidden,
        "mutation { claimFlowRuns { id } }",
        json!({}),
    )
    .await;
    assert_eq!(h.row_counts().await, before, "a viewer changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_deploys_but_does_not_administer() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, env, _) = h.cluster_with_environment("c1", "prod").await;
    let operator = h.token("deployer", "operator").await;
    ok(
        &operator,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": example_driver().display().to_string()}),
    )
    .await;
    create_example(&operator, &env, "shop").await;
    ok(
        &operator,
        "mutation { updateDeployment(id: \"shop\", parameters: {replicas: 5}) { noop } }",
        json!({}),
    )
    .await;
    for (query, vars) in [
        (
            "mutation { createCluster(name: \"x\") { agentToken } }",
            json!({}),
        ),
        (
            "mutation($c: ID!) { createEnvironment(name: \"e\", clusterId: $c) { id } }",
            json!({"c": cluster}),
        ),
        (
            "mutation($c: ID!) { rotateAgentToken(id: $c) { agentToken } }",
            json!({"c": cluster}),
        ),
        (
            "mutation { createBackupStorageLocation(name: \"b\", endpoint: \"http://x\", bucket: \"b\", region: \"r\", accessKeyId: \"k\", secretAccessKey: \"s\") { id } }",
            json!({}),
        ),
        ("mutation { claimFlowRuns { id } }", json!({})),
    ] {
        fails_with(&operator, ErrorKind::Forbidden, query, vars).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_token_acts_for_its_own_cluster_only() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster_a, env_a, agent_a) = h.cluster_with_environment("cluster-a", "prod").await;
    let (cluster_b, env_b, agent_b) = h.cluster_with_environment("cluster-b", "prod").await;
    h.load_example_driver().await;
    let on_a = create_example(&h.admin, &env_a, "shop").await;
    let on_b = create_example(&h.admin, &env_b, "shop").await;
    let b_id = on_b["deployment"]["id"].as_str().unwrap().to_owned();

    // A claims only A's run.
    let runs = claim(&agent_a, 10, 0.0).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["deploymentId"], on_a["deployment"]["id"]);
    let b_run = claim(&agent_b, 10, 0.0).await.remove(0);

    // A may not touch B's run, report for B, or report B's deployment as its own.
    fails_with(
        &agent_a,
        ErrorKind::Forbidden,
        "mutation($id: ID!) { heartbeatFlowRun(id: $id, attempt: 1) { id } }",
        json!({"id": b_run["id"]}),
    )
    .await;
    fails_with(
        &agent_a,
        ErrorKind::Forbidden,
        "mutation($id: ID!) { completeFlowRun(id: $id, attempt: 1) { id } }",
        json!({"id": b_run["id"]}),
    )
    .await;
    fails_with(
        &agent_a,
        ErrorKind::Forbidden,
        "mutation($id: ID!) { appendFlowRunLogs(id: $id, attempt: 1, lines: [{message: \"x\"}]) }",
        json!({"id": b_run["id"]}),
    )
    .await;
    fails_with(
        &agent_a,
        ErrorKind::Forbidden,
        "mutation($c: ID!) { reportPodStatuses(clusterId: $c, pods: [], snapshot: true) }",
        json!({"c": cluster_b}),
    )
    .await;
    fails_with(&agent_a, ErrorKind::Forbidden, "mutation($c: ID!, $d: ID!) { reportPodStatuses(clusterId: $c, pods: [{namespace: \"x\", name: \"p\", deploymentId: $d, phase: \"Running\", ready: true}]) }", json!({"c": cluster_a, "d": b_id})).await;
    fails_with(&agent_a, ErrorKind::Forbidden, "mutation($c: ID!, $d: ID!) { reportDeploymentStatuses(clusterId: $c, statuses: [{deploymentId: $d, status: \"FAILED\"}]) }", json!({"c": cluster_a, "d": b_id})).await;
    let b = deployment(&h.admin, &b_id).await;
    assert_ne!(b["status"]["status"], "FAILED");

    // Agents do not browse the catalogue, but fetch driver bundles.
    fails_with(
        &agent_a,
        ErrorKind::Forbidden,
        "{ clusters { id } }",
        json!({}),
    )
    .await;
    fails_with(&agent_a, ErrorKind::Forbidden, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"x\") { noop } }", json!({})).await;
    let digest = runs[0]["payload"]["driverDigest"].as_str().unwrap();
    let bundle = ok(
        &agent_a,
        "query($d: String!) { driverBundle(digest: $d) { files { path } } }",
        json!({"d": digest}),
    )
    .await;
    let paths: Vec<&str> = bundle["driverBundle"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"driver.styrmin.yml") && paths.contains(&"values.j2.yml"),
        "{paths:?}"
    );

    // Rotating A's token locks the old one out at once.
    let rotated = ok(
        &h.admin,
        "mutation($c: ID!) { rotateAgentToken(id: $c) { agentToken } }",
        json!({"c": cluster_a}),
    )
    .await;
    fails_with(
        &agent_a,
        ErrorKind::Unauthorized,
        "mutation { claimFlowRuns { id } }",
        json!({}),
    )
    .await;
    let new_a = h.client(rotated["rotateAgentToken"]["agentToken"].as_str().unwrap());
    ok(
        &new_a,
        "mutation($id: ID!) { heartbeatFlowRun(id: $id, attempt: 1) { id } }",
        json!({"id": runs[0]["id"]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_and_agent_tokens_are_rotated_not_deleted() {
    let h = Harness::new(Kind::Sqlite).await;
    h.cluster_with_environment("c1", "prod").await;
    let temp = h.token("temp", "operator").await;
    ok(&temp, "{ me { name role } }", json!({})).await;
    ok(
        &h.admin,
        "mutation { deleteToken(id: \"temp\") { name } }",
        json!({}),
    )
    .await;
    fails_with(&temp, ErrorKind::Unauthorized, "{ me { name } }", json!({})).await;
    let tokens = ok(&h.admin, "{ tokens { name role clusterId } }", json!({})).await;
    let agent = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "agent")
        .unwrap();
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($n: ID!) { deleteToken(id: $n) { name } }",
        json!({"n": agent["name"]}),
    )
    .await;
    assert!(e.message.contains("rotateAgentToken"));
    fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation { createToken(name: \"x\", role: agent) { secret } }",
        json!({}),
    )
    .await;
}
