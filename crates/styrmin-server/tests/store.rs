//! The store suite: every scenario runs once on SQLite and once on a real PostgreSQL,
//! through the GraphQL API as a client would, with a fake agent where runs must move.

use std::time::{Duration, Instant};

use serde_json::json;
use styrmin_client::ErrorKind;
use styrmin_server::Settings;
use styrmin_testkit::*;

on_both_databases!(
    catalogue_changes_are_validated_and_recorded,
    backup_location_secrets_are_sealed_and_never_returned,
    loading_a_driver_twice_is_a_no_op_and_the_latest_version_wins,
    a_deployment_moves_through_the_states_of_spec_4,
    one_run_per_deployment_executes_and_newer_updates_supersede,
    expired_leases_reschedule_then_fail_with_a_reason,
    a_long_poll_wakes_within_milliseconds_of_new_work,
    bad_input_is_refused_by_field_and_writes_nothing,
    agent_reports_become_the_observed_status,
);

async fn catalogue_changes_are_validated_and_recorded(kind: Kind) {
    let h = Harness::new(kind).await;
    let (cluster, env, _agent) = h.cluster_with_environment("prod-eu", "prod").await;
    let v = ok(&h.admin, "query($id: ID!) { cluster(id: $id) { name config agentOnline environments { name namespace } } }", json!({"id": "prod-eu"})).await;
    assert_eq!(
        v["cluster"]["config"],
        json!({"fqdn_suffix": "example.test"})
    );
    assert_eq!(
        v["cluster"]["agentOnline"], false,
        "no agent has called in yet"
    );
    assert_eq!(
        v["cluster"]["environments"],
        json!([{"name": "prod", "namespace": "styrmin-prod"}])
    );

    // Names are unique; a duplicate is a validation error on `name`.
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation { createCluster(name: \"prod-eu\") { agentToken } }",
        json!({}),
    )
    .await;
    assert_eq!(e.fields[0].field, "name");

    // An environment may set its namespace; a second one on it is refused.
    ok(&h.admin, "mutation($c: ID!) { createEnvironment(name: \"stage\", clusterId: $c, config: {namespace: \"team-stage\"}) { namespace } }", json!({"c": cluster})).await;
    let e = fails_with(&h.admin, ErrorKind::Validation, "mutation($c: ID!) { createEnvironment(name: \"other\", clusterId: $c, config: {namespace: \"team-stage\"}) { id } }", json!({"c": cluster})).await;
    assert!(e.message.contains("team-stage"), "{e}");

    // A cluster with environments cannot go.
    fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation { deleteCluster(id: \"prod-eu\") { id } }",
        json!({}),
    )
    .await;
    ok(&h.admin, "mutation($id: ID!) { updateEnvironment(id: $id, config: {ingress_class: \"nginx\"}) { config } }", json!({"id": env})).await;

    // Every mutation is in the audit log, with who did it.
    let log = ok(
        &h.admin,
        "{ auditLog { actor role action targetKind } }",
        json!({}),
    )
    .await;
    let actions: Vec<&str> = log["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for expected in ["createCluster", "createEnvironment", "updateEnvironment"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(
        log["auditLog"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["actor"] == "bootstrap-admin")
    );
}

async fn backup_location_secrets_are_sealed_and_never_returned(kind: Kind) {
    let h = Harness::new(kind).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let v = ok(&h.admin, "mutation($s: String!) { createBackupStorageLocation(name: \"s3-main\", endpoint: \"http://127.0.0.1:9000\", bucket: \"backups\", region: \"eu-1\", accessKeyId: \"AKIA1\", secretAccessKey: $s) { id name accessKeyId } }", json!({"s": secret})).await;
    assert!(!v.to_string().contains(secret));
    ok(&h.admin, "mutation($e: ID!) { assignBackupStorageLocation(environmentId: $e, backupStorageLocationId: \"s3-main\") { id } }", json!({"e": env})).await;
    let all = ok(&h.admin, "{ backupStorageLocations { id name endpoint bucket region accessKeyId } environments { backupStorageLocation { name } } }", json!({})).await;
    assert!(
        !all.to_string().contains(secret),
        "the secret must never be returned"
    );
    assert_eq!(
        all["environments"][0]["backupStorageLocation"]["name"],
        "s3-main"
    );

    // At rest it is sealed (that the server's key opens it again is a unit test of the
    // locations service, which holds the key).
    let (sealed,): (String,) =
        sqlx::query_as("SELECT secret_access_key_enc FROM backup_storage_locations")
            .fetch_one(&mut h.db.connect().await)
            .await
            .unwrap();
    assert!(!sealed.is_empty() && !sealed.contains(secret), "{sealed}");
    let audit = ok(&h.admin, "{ auditLog { detail } }", json!({})).await;
    assert!(!audit.to_string().contains(secret), "nor logged");

    // Assigned locations cannot be deleted.
    fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation { deleteBackupStorageLocation(id: \"s3-main\") { id } }",
        json!({}),
    )
    .await;
}

async fn loading_a_driver_twice_is_a_no_op_and_the_latest_version_wins(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = h.load_example_driver().await;
    assert_eq!(first["created"], true);
    let again = h.load_example_driver().await;
    assert_eq!(again["created"], false, "same content is the same version");
    assert_eq!(again["version"]["id"], first["version"]["id"]);

    // The same driver from a git branch: the commit is pinned; the same files are still
    // the same version; a new spec.version becomes the latest.
    let repo = example_driver_copy();
    commit_all(repo.path(), "driver");
    let url = format!("file://{}", repo.path().display());
    let load = "mutation($u: String!) { loadApplicationDriverVersion(repoUrl: $u, branch: \"main\") { created version { id version digest source { kind url branch commit } } } }";
    let same = ok(&h.admin, load, json!({"u": url})).await["loadApplicationDriverVersion"].clone();
    assert_eq!(same["created"], false);

    let spec = repo.path().join("driver.styrmin.yml");
    let text = std::fs::read_to_string(&spec).unwrap();
    let bumped = text.replacen("version: \"1\"", "version: \"2\"", 1);
    assert_ne!(text, bumped, "the example driver's spec.version is \"1\"");
    std::fs::write(&spec, bumped).unwrap();
    git(repo.path(), &["commit", "-qam", "driver 2"]);
    let v2 = ok(&h.admin, load, json!({"u": url})).await["loadApplicationDriverVersion"].clone();
    assert_eq!(v2["created"], true);
    assert_eq!(v2["version"]["version"], "2");
    assert_eq!(v2["version"]["source"]["kind"], "git");
    assert_eq!(
        v2["version"]["source"]["commit"].as_str().unwrap().len(),
        40
    );
    let latest = ok(
        &h.admin,
        "{ applicationDriver(id: \"my-app\") { latestVersion { version } versions { version } } }",
        json!({}),
    )
    .await;
    assert_eq!(latest["applicationDriver"]["latestVersion"]["version"], "2");
    assert_eq!(
        latest["applicationDriver"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // An unknown branch and a broken driver are field errors.
    let e = fails_with(&h.admin, ErrorKind::Validation, "mutation($u: String!) { loadApplicationDriverVersion(repoUrl: $u, branch: \"nope\") { created } }", json!({"u": url})).await;
    assert_eq!(e.fields[0].field, "repoUrl");
    std::fs::write(&spec, "apiVersion: styrmin.io/v1\nkind: ApplicationDriver\nmetadata: {name: my-app}\nspec: {version: \"3\"}\n").unwrap();
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": repo.path().display().to_string()}),
    )
    .await;
    assert!(
        e.fields
            .iter()
            .any(|f| f.field.starts_with("driver.styrmin.yml")),
        "{e}"
    );
}

async fn a_deployment_moves_through_the_states_of_spec_4(kind: Kind) {
    let h = Harness::new(kind).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let created = create_example(&h.admin, &env, "shop").await;
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["instance"]["state"], "pending");
    assert_eq!(created["flowRun"]["kind"], "create");

    // create: the agent gets the frozen Context and rendered values; success activates.
    let runs = claim(&agent, 5, 0.0).await;
    assert_eq!(runs.len(), 1);
    let payload = &runs[0]["payload"];
    assert_eq!(
        payload["context"]["parameters"]["admin_email"],
        "ops@example.com"
    );
    assert_eq!(payload["context"]["instance"]["release_name"], "shop");
    assert_eq!(payload["appVersion"], "2.3.1");
    assert!(payload["values"].is_object());
    // The render's digest travels with it, for the agent to check.
    assert_eq!(
        payload["valuesDigest"],
        styrmin_core::crd::values_digest(&payload["values"])
    );
    assert_eq!(payload["driverDigest"].as_str().unwrap().len(), 64);
    complete(&agent, &runs[0]).await;
    let d = deployment(&h.admin, &id).await;
    assert_eq!(d["activeInstance"]["id"], created["instance"]["id"]);
    assert_eq!(d["instances"][0]["state"], "active");

    // The same parameters again: no-op, nothing scheduled.
    let same = ok(&h.admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {admin_email: \"ops@example.com\"}) { noop flowRun { id } } }", json!({"id": id})).await;
    assert_eq!(same["updateDeployment"]["noop"], true);

    // A parameter change is an update; the old Instance is superseded on success.
    let upd = ok(&h.admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {replicas: 3}) { noop flowRun { kind } instance { id } } }", json!({"id": id})).await;
    assert_eq!(upd["updateDeployment"]["flowRun"]["kind"], "update");
    let run = claim(&agent, 1, 0.0).await.remove(0);
    assert_eq!(run["payload"]["context"]["parameters"]["replicas"], 3);
    complete(&agent, &run).await;
    let d = deployment(&h.admin, &id).await;
    let states: Vec<&str> = d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "superseded"]);

    // An upgrade that fails leaves the previous Instance active and shows the error.
    let up = ok(&h.admin, "mutation($id: ID!) { upgradeDeployment(id: $id, appVersion: \"2.4.0\") { flowRun { kind } } }", json!({"id": id})).await;
    assert_eq!(up["upgradeDeployment"]["flowRun"]["kind"], "upgrade");
    let run = claim(&agent, 1, 0.0).await.remove(0);
    fail(&agent, &run, "helm: values don't meet the chart's schema").await;
    let d = deployment(&h.admin, &id).await;
    assert_eq!(d["activeInstance"]["appVersion"], "2.3.1");
    assert_eq!(d["instances"][0]["state"], "failed");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("upgrade failed: helm: values")
    );
    assert_eq!(
        d["appVersion"], "2.4.0",
        "the desired state keeps what the user asked for"
    );

    // retry re-runs it as attempt 2; success activates the new Instance.
    let retried = ok(
        &h.admin,
        "mutation($id: ID!) { retryDeployment(id: $id) { flowRun { id kind state attempt } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(retried["retryDeployment"]["flowRun"]["attempt"], 2);
    assert_eq!(retried["retryDeployment"]["flowRun"]["id"], run["id"]);
    let run = claim(&agent, 1, 0.0).await.remove(0);
    assert_eq!(run["attempt"], 2);
    complete(&agent, &run).await;
    let d = deployment(&h.admin, &id).await;
    assert_eq!(d["activeInstance"]["appVersion"], "2.4.0");
    assert!(d["lastError"].is_null());
    fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($id: ID!) { retryDeployment(id: $id) { noop } }",
        json!({"id": id}),
    )
    .await;

    // stop, start, delete are runs too; after delete the deployment is gone from lists.
    for (mutation, kind) in [("stopDeployment", "stop"), ("startDeployment", "start")] {
        let v = ok(&h.admin, &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ flowRun {{ kind }} deployment {{ phase }} }} }}"), json!({"id": id})).await;
        assert_eq!(v[mutation]["flowRun"]["kind"], kind);
        complete(&agent, &claim(&agent, 1, 0.0).await[0]).await;
    }
    let stopped_again = ok(
        &h.admin,
        "mutation($id: ID!) { startDeployment(id: $id) { noop } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        stopped_again["startDeployment"]["noop"], true,
        "already running"
    );
    ok(
        &h.admin,
        "mutation($id: ID!) { deleteDeployment(id: $id) { flowRun { kind } } }",
        json!({"id": id}),
    )
    .await;
    fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($id: ID!) { stopDeployment(id: $id) { noop } }",
        json!({"id": id}),
    )
    .await;
    complete(&agent, &claim(&agent, 1, 0.0).await[0]).await;
    let live = ok(&h.admin, "{ deployments { id } }", json!({})).await;
    assert_eq!(live["deployments"], json!([]));
    let all = ok(
        &h.admin,
        "{ deployments(includeDeleted: true) { id deletedAt } }",
        json!({}),
    )
    .await;
    assert!(all["deployments"][0]["deletedAt"].is_string());
    // The name is free again.
    create_example(&h.admin, &env, "shop").await;
}

async fn one_run_per_deployment_executes_and_newer_updates_supersede(kind: Kind) {
    let h = Harness::new(kind).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let a = example_deployment(&h.admin, &env, "a").await;
    let b = example_deployment(&h.admin, &env, "b").await;
    let update = "mutation($id: ID!, $r: Int!) { updateDeployment(id: $id, parameters: {replicas: $r}) { flowRun { id } } }";
    let first = ok(&h.admin, update, json!({"id": a, "r": 3})).await;
    ok(&h.admin, update, json!({"id": a, "r": 4})).await;

    // Both creates are claimable (different deployments); a's updates wait behind its create.
    let runs = claim(&agent, 10, 0.0).await;
    let kinds: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["deploymentId"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(runs.len(), 2, "{kinds:?}");
    assert!(kinds.iter().all(|(_, k)| *k == "create"));
    assert!(
        claim(&agent, 10, 0.0).await.is_empty(),
        "nothing else may start while they run"
    );

    // The newer update superseded the older one still waiting.
    let d = deployment(&h.admin, &a).await;
    let superseded = d["flowRuns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == first["updateDeployment"]["flowRun"]["id"])
        .unwrap();
    assert_eq!(superseded["state"], "cancelled");
    assert!(superseded["error"].as_str().unwrap().contains("superseded"));

    for run in &runs {
        complete(&agent, run).await;
    }
    let next = claim(&agent, 10, 0.0).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["kind"], "update");
    assert_eq!(next[0]["payload"]["context"]["parameters"]["replicas"], 4);

    // A delete supersedes everything still waiting for b.
    ok(&h.admin, update, json!({"id": b, "r": 5})).await;
    ok(
        &h.admin,
        "mutation($id: ID!) { deleteDeployment(id: $id) { flowRun { id } } }",
        json!({"id": b}),
    )
    .await;
    let d = deployment(&h.admin, &b).await;
    let states: Vec<(&str, &str)> = d["flowRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("delete", "scheduled"),
            ("update", "cancelled"),
            ("create", "completed")
        ]
    );
}

async fn expired_leases_reschedule_then_fail_with_a_reason(kind: Kind) {
    let settings = Settings {
        lease: Duration::from_millis(300),
        max_attempts: 2,
        ..fast_settings()
    };
    let h = Harness::with(kind, settings).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let id = example_deployment(&h.admin, &env, "shop").await;
    let run = claim(&agent, 1, 0.0).await.remove(0);
    assert_eq!(run["attempt"], 1);

    // The agent "dies": the lease runs out and the run comes back as attempt 2. The
    // long-poll returns as soon as that happens.
    let again = claim(&agent, 1, 10.0).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], run["id"]);
    assert_eq!(again[0]["attempt"], 2);

    // The first attempt lost its lease: whatever it says now is refused.
    fails_with(
        &agent,
        ErrorKind::Conflict,
        "mutation($id: ID!) { heartbeatFlowRun(id: $id, attempt: 1) { id } }",
        json!({"id": run["id"]}),
    )
    .await;
    fails_with(
        &agent,
        ErrorKind::Conflict,
        "mutation($id: ID!) { completeFlowRun(id: $id, attempt: 1) { id } }",
        json!({"id": run["id"]}),
    )
    .await;
    ok(
        &agent,
        "mutation($id: ID!) { heartbeatFlowRun(id: $id, attempt: 2) { leaseExpiresAt } }",
        json!({"id": run["id"]}),
    )
    .await;

    // The second attempt dies too: with attempts used up, the run fails with the reason.
    eventually(
        "the run to fail after its last lease",
        Duration::from_secs(10),
        || async {
            let d = deployment(&h.admin, &id).await;
            d["flowRuns"][0]["state"] == "failed"
        },
    )
    .await;
    let d = deployment(&h.admin, &id).await;
    assert!(
        d["flowRuns"][0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{d}"
    );
    assert_eq!(d["instances"][0]["state"], "failed");
    assert!(d["lastError"].as_str().unwrap().contains("create failed"));
    let logs = ok(
        &h.admin,
        "query($id: ID!) { flowRun(id: $id) { logs { attempt level message } } }",
        json!({"id": run["id"]}),
    )
    .await;
    assert!(logs.to_string().contains("scheduled attempt 2"), "{logs}");
}

async fn a_long_poll_wakes_within_milliseconds_of_new_work(kind: Kind) {
    let h = Harness::new(kind).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let waiting = tokio::spawn(async move {
        let runs = claim(&agent, 1, 20.0).await;
        (runs, Instant::now())
    });
    // Let the claim reach its wait: it has found nothing when the cluster's agentLastSeen
    // is set and no run exists.
    eventually("the agent to be waiting", Duration::from_secs(5), || async {
        ok(&h.admin, "{ clusters { agentOnline } }", json!({})).await["clusters"][0]["agentOnline"] == true
    })
    .await;
    let scheduled = Instant::now();
    create_example(&h.admin, &env, "shop").await;
    let (runs, woke) = waiting.await.unwrap();
    assert_eq!(runs.len(), 1);
    let latency = woke.duration_since(scheduled);
    assert!(
        latency < Duration::from_millis(500),
        "woke after {latency:?}"
    );
}

async fn bad_input_is_refused_by_field_and_writes_nothing(kind: Kind) {
    let h = Harness::new(kind).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    create_example(&h.admin, &env, "taken").await;
    let before = h.row_counts().await;
    let create = "mutation($driver: String!, $app: String!, $env: ID!, $name: String, $params: JSON, $config: JSON) { createDeployment(driver: $driver, appVersion: $app, environmentId: $env, name: $name, parameters: $params, config: $config) { noop } }";
    let good = json!({"driver": "my-app", "app": "2.3.1", "env": env, "name": "fresh", "params": {"admin_email": "a@b.c"}});
    let cases: Vec<(&str, serde_json::Value, ErrorKind, &str)> = vec![
        (
            "config is not an object",
            json!({"config": [1, 2]}),
            ErrorKind::Validation,
            "config",
        ),
        (
            "unknown driver",
            json!({"driver": "nope"}),
            ErrorKind::NotFound,
            "",
        ),
        (
            "version outside supported_versions",
            json!({"app": "9.0.0"}),
            ErrorKind::Validation,
            "app_version",
        ),
        (
            "wrong parameter type",
            json!({"params": {"admin_email": "a@b.c", "replicas": "two"}}),
            ErrorKind::Validation,
            "parameters.replicas",
        ),
        (
            "missing required parameter",
            json!({"params": {}}),
            ErrorKind::Validation,
            "parameters.admin_email",
        ),
        (
            "undeclared parameter",
            json!({"params": {"admin_email": "a@b.c", "colour": "red"}}),
            ErrorKind::Validation,
            "parameters.colour",
        ),
        (
            "duplicate name",
            json!({"name": "taken"}),
            ErrorKind::Validation,
            "name",
        ),
        (
            "release name too long",
            json!({"name": "a-very-long-deployment-name-that-does-not-fit-helm-limit"}),
            ErrorKind::Validation,
            "deployment.name",
        ),
        (
            "unknown environment",
            json!({"env": "nowhere"}),
            ErrorKind::NotFound,
            "",
        ),
    ];
    for (what, patch, kind, field) in cases {
        let mut vars = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            vars[k] = v.clone();
        }
        let e = fails(&h.admin, create, vars).await;
        assert_eq!(e.kind, kind, "{what}: {e}");
        if !field.is_empty() {
            assert!(
                e.fields.iter().any(|f| f.field == field),
                "{what}: expected field {field}, got {e}"
            );
        }
        assert_eq!(h.row_counts().await, before, "{what} wrote something");
    }
    let e = fails(
        &h.admin,
        "mutation { updateDeployment(id: \"taken\", parameters: {replicas: \"many\"}) { noop } }",
        json!({}),
    )
    .await;
    assert_eq!(e.fields[0].field, "parameters.replicas");
    fails_with(
        &h.admin,
        ErrorKind::NotFound,
        "mutation { upgradeDeployment(id: \"taken\", driverVersion: \"7\") { noop } }",
        json!({}),
    )
    .await;
    fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation { createCluster(name: \"Bad_Name\") { agentToken } }",
        json!({}),
    )
    .await;
    fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation { createCluster(name: \"ok\", config: {fqdn_suffix: 5}) { agentToken } }",
        json!({}),
    )
    .await;
    assert_eq!(
        h.row_counts().await,
        before,
        "refused changes wrote something"
    );
}

async fn agent_reports_become_the_observed_status(kind: Kind) {
    let settings = Settings {
        agent_offline_after: Duration::from_millis(1500),
        ..fast_settings()
    };
    let h = Harness::with(kind, settings).await;
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let id = example_deployment(&h.admin, &env, "shop").await;
    let pods = json!([
        {"namespace": "styrmin-prod", "name": "shop-server-1", "deploymentId": id, "component": "server", "phase": "Running", "ready": true, "restarts": 0, "containers": [{"name": "server", "ready": true}]},
        {"namespace": "styrmin-prod", "name": "shop-postgresql-0", "deploymentId": id, "component": "postgresql", "phase": "Running", "ready": true, "restarts": 1},
        {"namespace": "kube-system", "name": "unrelated", "phase": "Running", "ready": true}
    ]);
    let report = "mutation($c: ID!, $pods: [PodStatusInput!]!, $snap: Boolean) { reportPodStatuses(clusterId: $c, pods: $pods, snapshot: $snap) }";
    ok(
        &agent,
        report,
        json!({"c": cluster, "pods": pods, "snap": true}),
    )
    .await;
    ok(&agent, "mutation($c: ID!, $d: ID!) { reportDeploymentStatuses(clusterId: $c, statuses: [{deploymentId: $d, status: \"RUNNING\", urls: [\"https://web-prod.example.test\"], components: {server: {ready: 1, desired: 1}}}]) }", json!({"c": cluster, "d": id})).await;
    let d = ok(&h.admin, "query($id: ID!) { deployment(id: $id) { status { status urls } pods { name component ready restarts } } }", json!({"id": id})).await["deployment"].clone();
    assert_eq!(d["status"]["status"], "RUNNING");
    assert_eq!(
        d["status"]["urls"],
        json!(["https://web-prod.example.test"])
    );
    assert_eq!(d["pods"].as_array().unwrap().len(), 2);

    // A snapshot without the server pod forgets it.
    let fewer = json!([pods[1].clone()]);
    ok(
        &agent,
        report,
        json!({"c": cluster, "pods": fewer, "snap": true}),
    )
    .await;
    let d = ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { pods { name } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        d["deployment"]["pods"],
        json!([{"name": "shop-postgresql-0"}])
    );

    // A silent agent makes its deployments UNKNOWN.
    eventually(
        "the agent to be shown offline",
        Duration::from_secs(10),
        || async {
            let d = ok(
                &h.admin,
                "query($id: ID!) { deployment(id: $id) { status { status } } }",
                json!({"id": id}),
            )
            .await;
            d["deployment"]["status"]["status"] == "UNKNOWN"
        },
    )
    .await;
}
