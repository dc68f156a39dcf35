//! Backups, restores and backup deletions through the API (issue 15, the server's half),
//! with a fake agent that claims the runs, reads their payloads and completes them with
//! the `BackupResult` / `RestoreResult` JSON the real agent sends. Runs on SQLite and
//! PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};
use styrmin_client::{Client, ErrorKind};
use styrmin_testkit::*;

styrmin_testkit::on_both_databases!(
    a_deployment_backup_is_taken_restored_and_deleted_through_runs,
    an_environment_backup_is_one_operation_over_its_deployments,
    refusals_change_nothing,
    location_credentials_and_statuses_are_the_agents_own,
    retention_deletes_the_oldest_completed_backups,
    two_servers_take_each_scheduled_backup_once,
    an_environment_clone_with_data_restores_each_latest_backup,
    a_clone_keeps_secret_parameters_and_the_driver_version,
);

const BACKUP: &str = "id state sizeBytes deploymentId parentId environmentId deleting errors flowRunId components { component strategy bytes durationMs error } deployment { name } environment { name } parts { id state sizeBytes } createdAt finishedAt";
const RESTORE: &str = "id state backupId targetDeploymentId targetEnvironmentId flowRunId errors components { component strategy bytes durationMs error } finishedAt";

/// A cluster `c1` with environment `prod` whose backup location is `s3-main`, the example
/// driver, and the deployments `names` in `prod`, created (their create runs completed).
struct World {
    h: Harness,
    cluster: String,
    env: String,
    agent: Client,
    deployments: Vec<String>,
}

async fn world(kind: Kind, names: &[&str]) -> World {
    world_on(Harness::new(kind).await, names).await
}

async fn world_on(h: Harness, names: &[&str]) -> World {
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    ok(&h.admin, "mutation { createBackupStorageLocation(name: \"s3-main\", endpoint: \"http://127.0.0.1:9000\", bucket: \"backups\", region: \"us-east-1\", accessKeyId: \"AKIA1\", secretAccessKey: \"s3cr3t-key\") { id } }", json!({})).await;
    ok(&h.admin, "mutation($e: ID!) { assignBackupStorageLocation(environmentId: $e, backupStorageLocationId: \"s3-main\") { id } }", json!({"e": env})).await;
    h.load_example_driver().await;
    let mut deployments = Vec::new();
    for name in names {
        deployments.push(example_deployment(&h.admin, &env, name).await);
        finish(&agent, "create").await;
    }
    World {
        h,
        cluster,
        env,
        agent,
        deployments,
    }
}

async fn backup(client: &Client, id: &str) -> Value {
    ok(
        client,
        &format!("query($id: ID!) {{ backup(id: $id) {{ {BACKUP} }} }}"),
        json!({"id": id}),
    )
    .await["backup"]
        .clone()
}

async fn restore(client: &Client, id: &str) -> Value {
    ok(
        client,
        &format!("query($id: ID!) {{ restore(id: $id) {{ {RESTORE} }} }}"),
        json!({"id": id}),
    )
    .await["restore"]
        .clone()
}

async fn backup_deployment(client: &Client, deployment: &str) -> Value {
    ok(
        client,
        &format!("mutation($d: ID!) {{ createBackup(deploymentId: $d) {{ {BACKUP} }} }}"),
        json!({"d": deployment}),
    )
    .await["createBackup"]
        .clone()
}

/// Completes a run with `result` as the agent's result.
async fn complete_with(agent: &Client, run: &Value, result: Value) {
    ok(agent, "mutation($id: ID!, $a: Int!, $r: JSON) { completeFlowRun(id: $id, attempt: $a, result: $r) { state } }", json!({"id": run["id"], "a": run["attempt"], "r": result})).await;
}

fn backup_result(state: &str, size: u64, error: Option<&str>) -> Value {
    json!({
        "state": state,
        "sizeBytes": size,
        "components": [{"component": "postgresql", "kind": "postgres", "bytes": 2048, "durationMs": 150, "error": error}],
        "errors": [],
    })
}

/// A backup of one deployment: its run carries the plan built from the deployment's
/// active Instance (the driver's `postgres` component, selected within its release, and
/// the environment's location without its secret); claiming makes it running; the
/// agent's result gives its state, size and per-component results, and leaves the
/// deployment alone. A restore into the same deployment runs after it, and a delete
/// removes the data through a `delete_backup` run, then the row.
async fn a_deployment_backup_is_taken_restored_and_deleted_through_runs(kind: Kind) {
    let w = world(kind, &["shop"]).await;
    let shop = &w.deployments[0];
    let created = backup_deployment(&w.h.admin, shop).await;
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["deployment"]["name"], "shop");
    assert_eq!(created["environment"]["name"], "prod");
    let id = created["id"].as_str().unwrap().to_owned();

    let run = claim_one(&w.agent).await;
    assert_eq!(run["kind"], "backup");
    assert_eq!(run["id"], created["flowRunId"]);
    assert_eq!(run["deploymentId"], shop.as_str());
    let p = &run["payload"];
    assert_eq!(p["backupId"], id.as_str());
    assert_eq!(p["veleroBackup"], format!("styrmin-{id}"));
    assert_eq!(p["deploymentName"], "shop");
    assert_eq!(p["namespace"], "styrmin-prod");
    assert_eq!(p["releaseName"], "shop");
    assert_eq!(p["driverName"], "my-app");
    assert_eq!(p["location"]["name"], "styrmin-prod");
    assert_eq!(p["location"]["endpoint"], "http://127.0.0.1:9000");
    assert_eq!(p["location"]["bucket"], "backups");
    assert!(!p.to_string().contains("s3cr3t"), "{p}");
    assert_eq!(
        p["components"],
        json!([{
            "component": "postgresql",
            "kind": "postgres",
            "selector": {
                "app.kubernetes.io/name": "my-app",
                "app.kubernetes.io/component": "postgresql",
                "app.kubernetes.io/instance": "shop",
            },
            "volumes": [],
            "action": null,
            "restoreAction": null,
            "overrides": {},
        }])
    );
    assert_eq!(backup(&w.h.admin, &id).await["state"], "running");

    complete_with(&w.agent, &run, backup_result("completed", 12_345, None)).await;
    let done = backup(&w.h.admin, &id).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["sizeBytes"], 12_345);
    assert_eq!(
        done["components"],
        json!([{"component": "postgresql", "strategy": "postgres", "bytes": 2048, "durationMs": 150, "error": null}])
    );
    assert!(done["finishedAt"].is_string());
    let d = deployment(&w.h.admin, shop).await;
    assert_eq!(d["lastError"], Value::Null);
    assert_eq!(d["phase"], "running");

    // Restore into the same deployment: its run follows the deployment's queue.
    let r = ok(
        &w.h.admin,
        &format!("mutation($b: ID!) {{ restoreBackup(backupId: $b) {{ {RESTORE} }} }}"),
        json!({"b": id}),
    )
    .await["restoreBackup"]
        .clone();
    assert_eq!(r["state"], "scheduled");
    assert_eq!(r["targetDeploymentId"], shop.as_str());
    let rid = r["id"].as_str().unwrap().to_owned();
    let run = claim_one(&w.agent).await;
    assert_eq!(run["kind"], "restore");
    let p = &run["payload"];
    assert_eq!(p["restoreId"], rid.as_str());
    assert_eq!(p["backupId"], id.as_str());
    assert_eq!(p["veleroBackup"], format!("styrmin-{id}"));
    assert_eq!(p["veleroRestore"], format!("styrmin-restore-{rid}"));
    assert_eq!(p["sourceNamespace"], "styrmin-prod");
    assert_eq!(p["namespace"], "styrmin-prod");
    assert_eq!(p["components"][0]["kind"], "postgres");
    assert_eq!(restore(&w.h.admin, &rid).await["state"], "running");
    complete_with(
        &w.agent,
        &run,
        json!({"state": "partially_failed", "components": [{"component": "postgresql", "kind": "postgres", "bytes": 2048, "durationMs": 90, "error": "pg_restore exited 1"}], "errors": ["Velero skipped 2 existing objects"]}),
    )
    .await;
    let r = restore(&w.h.admin, &rid).await;
    assert_eq!(r["state"], "partially_failed");
    assert_eq!(r["components"][0]["error"], "pg_restore exited 1");
    assert_eq!(r["errors"], json!(["Velero skipped 2 existing objects"]));

    // Into another deployment of the same driver: the source's release maps onto the
    // target's, whose own pods are selected.
    let blog = example_deployment(&w.h.admin, &w.env, "blog").await;
    finish(&w.agent, "create").await;
    let r = ok(&w.h.admin, "mutation($b: ID!, $to: ID) { restoreBackup(backupId: $b, toDeploymentId: $to) { id targetDeploymentId } }", json!({"b": id, "to": "prod/blog"})).await["restoreBackup"].clone();
    assert_eq!(r["targetDeploymentId"], blog.as_str());
    let run = claim_one(&w.agent).await;
    assert_eq!(run["kind"], "restore");
    assert_eq!(run["deploymentId"], blog.as_str());
    assert_eq!(run["payload"]["sourceReleaseName"], "shop");
    assert_eq!(run["payload"]["releaseName"], "blog");
    assert_eq!(
        run["payload"]["components"][0]["selector"]["app.kubernetes.io/instance"],
        "blog"
    );
    complete_with(
        &w.agent,
        &run,
        json!({"state": "completed", "components": [], "errors": []}),
    )
    .await;

    // Delete: the data goes through a delete_backup run, the row when it completes.
    // Asked twice at once, one deletion run is queued.
    let delete = "mutation($b: ID!) { deleteBackup(id: $b) { id deleting } }";
    let (a, b) = tokio::join!(
        ok(&w.h.admin, delete, json!({"b": id})),
        ok(&w.h.admin, delete, json!({"b": id})),
    );
    assert_eq!(a["deleteBackup"]["deleting"], true);
    assert_eq!(b["deleteBackup"]["deleting"], true);
    let runs = claim(&w.agent, 5, 5.0).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["kind"], "delete_backup");
    assert_eq!(run["deploymentId"], Value::Null);
    assert_eq!(run["payload"]["backupId"], id.as_str());
    assert_eq!(run["payload"]["veleroBackup"], format!("styrmin-{id}"));
    assert_eq!(run["payload"]["location"]["name"], "styrmin-prod");
    complete(&w.agent, run).await;
    fails_with(
        &w.h.admin,
        ErrorKind::NotFound,
        "query($id: ID!) { backup(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let list = ok(&w.h.admin, "{ backups { id } restores { id } }", json!({})).await;
    assert_eq!(list, json!({"backups": [], "restores": []}));
}

/// Backing up an environment is one operation: a backup without a deployment whose parts
/// are one backup (and run) per deployment; it is running while a part runs, and then as
/// good as its parts, its size their sum. A part whose run fails is failed with the
/// agent's error; parts ending at the same moment are both counted.
async fn an_environment_backup_is_one_operation_over_its_deployments(kind: Kind) {
    let w = world(kind, &["shop", "blog"]).await;
    let created = ok(
        &w.h.admin,
        &format!("mutation($e: ID!) {{ createBackup(environmentId: $e) {{ {BACKUP} }} }}"),
        json!({"e": "prod"}),
    )
    .await["createBackup"]
        .clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["deploymentId"], Value::Null);
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["parts"].as_array().unwrap().len(), 2);

    let runs = claim(&w.agent, 2, 5.0).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["kind"] == "backup"));
    let mut released: Vec<&str> = runs
        .iter()
        .map(|r| r["payload"]["releaseName"].as_str().unwrap())
        .collect();
    released.sort();
    assert_eq!(released, ["blog", "shop"]);
    assert_eq!(backup(&w.h.admin, &id).await["state"], "running");

    complete_with(&w.agent, &runs[0], backup_result("completed", 100, None)).await;
    assert_eq!(backup(&w.h.admin, &id).await["state"], "running");
    fail(
        &w.agent,
        &runs[1],
        "velero: the BackupStorageLocation is Unavailable",
    )
    .await;
    let done = backup(&w.h.admin, &id).await;
    assert_eq!(done["state"], "partially_failed");
    assert_eq!(done["sizeBytes"], 100);
    let failed_part = runs[1]["payload"]["backupId"].as_str().unwrap();
    assert_eq!(
        done["errors"],
        json!([format!(
            "backup {failed_part}: velero: the BackupStorageLocation is Unavailable"
        )])
    );
    let part = backup(&w.h.admin, failed_part).await;
    assert_eq!(part["state"], "failed");
    assert_eq!(part["parentId"], id.as_str());
    // The parts show up per deployment too.
    let shop = ok(
        &w.h.admin,
        "{ backups(deployment: \"prod/shop\") { id parentId } }",
        json!({}),
    )
    .await;
    assert_eq!(shop["backups"][0]["parentId"], id.as_str());

    // Both parts ending at the same moment still make the whole backup completed: the
    // last to finish sees the other's outcome.
    let second = ok(
        &w.h.admin,
        "mutation($e: ID!) { createBackup(environmentId: $e) { id } }",
        json!({"e": "prod"}),
    )
    .await["createBackup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = claim(&w.agent, 2, 5.0).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    tokio::join!(
        complete_with(&w.agent, &runs[0], backup_result("completed", 1, None)),
        complete_with(&w.agent, &runs[1], backup_result("completed", 2, None)),
    );
    let done = backup(&w.h.admin, &second).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["sizeBytes"], 3);
}

/// Each refusal says what is wrong and records nothing: no location (naming the
/// environment and the command that assigns one), neither or both scopes, unknown ids, a
/// viewer, a restore of a backup that did not complete or into another driver's
/// deployment, deleting a backup still running. A backup waiting behind a deployment's
/// delete is cancelled, and says so.
async fn refusals_change_nothing(kind: Kind) {
    let w = world(kind, &["shop"]).await;
    let h = &w.h;
    let shop = &w.deployments[0];
    let bare = h.create_environment("bare", &w.cluster).await;
    let lonely = example_deployment(&h.admin, &bare, "lonely").await;
    finish(&w.agent, "create").await;

    let before = h.row_counts().await;
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($d: ID!) { createBackup(deploymentId: $d) { id } }",
        json!({"d": lonely}),
    )
    .await;
    assert!(
        e.message
            .contains("environment `bare` has no backup storage location")
            && e.message
                .contains("styrminctl backup-locations assign bare LOCATION"),
        "{e}"
    );
    fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation { createBackup(environmentId: \"bare\") { id } }",
        json!({}),
    )
    .await;
    for q in [
        "mutation { createBackup { id } }",
        "mutation($d: ID!) { createBackup(deploymentId: $d, environmentId: \"prod\") { id } }",
    ] {
        let e = fails_with(&h.admin, ErrorKind::Validation, q, json!({"d": shop})).await;
        assert!(e.to_string().contains("exactly one"), "{e}");
    }
    for q in [
        "mutation { createBackup(deploymentId: \"nope\") { id } }",
        "mutation { createBackup(environmentId: \"nope\") { id } }",
        "mutation { restoreBackup(backupId: \"nope\") { id } }",
        "mutation { deleteBackup(id: \"nope\") { id } }",
        "{ backup(id: \"nope\") { id } }",
        "{ restore(id: \"nope\") { id } }",
    ] {
        fails_with(&h.admin, ErrorKind::NotFound, q, json!({})).await;
    }
    assert_eq!(h.row_counts().await, before);
    let viewer = h.token("ro", "viewer").await;
    let before = h.row_counts().await;
    fails_with(
        &viewer,
        ErrorKind::Forbidden,
        "mutation($d: ID!) { createBackup(deploymentId: $d) { id } }",
        json!({"d": shop}),
    )
    .await;
    assert_eq!(h.row_counts().await, before);

    // A backup still running can be neither restored nor deleted; the viewer can do
    // neither either.
    let b = backup_deployment(&h.admin, shop).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let run = claim_one(&w.agent).await;
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($b: ID!) { restoreBackup(backupId: $b) { id } }",
        json!({"b": id}),
    )
    .await;
    assert!(e.message.contains("is running"), "{e}");
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($b: ID!) { deleteBackup(id: $b) { id } }",
        json!({"b": id}),
    )
    .await;
    assert!(e.message.contains("wait for it to end"), "{e}");
    complete_with(&w.agent, &run, backup_result("completed", 5, None)).await;
    for q in [
        "mutation($b: ID!) { restoreBackup(backupId: $b) { id } }",
        "mutation($b: ID!) { deleteBackup(id: $b) { id } }",
    ] {
        fails_with(&viewer, ErrorKind::Forbidden, q, json!({"b": id})).await;
    }

    // Another driver's deployment is refused, naming both drivers.
    let other = example_driver_copy();
    let spec = other.path().join("driver.styrmin.yml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replacen("name: my-app\n", "name: other-app\n", 1),
    )
    .unwrap();
    ok(
        &h.admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": other.path().display().to_string()}),
    )
    .await;
    let foreign = ok(&h.admin, "mutation($env: ID!) { createDeployment(driver: \"other-app\", appVersion: \"2.3.1\", environmentId: $env, name: \"foreign\", parameters: {admin_email: \"a@b.c\"}) { deployment { id } } }", json!({"env": w.env})).await["createDeployment"]["deployment"]["id"].as_str().unwrap().to_owned();
    finish(&w.agent, "create").await;
    let before = h.row_counts().await;
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($b: ID!, $to: ID) { restoreBackup(backupId: $b, toDeploymentId: $to) { id } }",
        json!({"b": id, "to": foreign}),
    )
    .await;
    assert!(
        e.message.contains("driver `my-app`")
            && e.message.contains("driver `other-app`")
            && e.message.contains("deployment `foreign`"),
        "{e}"
    );
    assert_eq!(h.row_counts().await, before);

    // A backup waiting behind the deployment's delete is cancelled by it.
    let waiting = backup_deployment(&h.admin, &foreign).await;
    ok(
        &h.admin,
        "mutation($d: ID!) { deleteDeployment(id: $d) { deployment { id } } }",
        json!({"d": foreign}),
    )
    .await;
    let cancelled = backup(&h.admin, waiting["id"].as_str().unwrap()).await;
    assert_eq!(cancelled["state"], "failed");
    assert!(
        cancelled["errors"][0]
            .as_str()
            .unwrap()
            .contains("cancelled: superseded by a newer delete"),
        "{cancelled}"
    );
}

/// Only the agent of an environment's cluster lists its cluster's locations, reads a
/// location's credentials (the secret key, stored sealed) and reports Velero's phase of
/// it, which the environment then shows; admins and other clusters' agents are refused.
async fn location_credentials_and_statuses_are_the_agents_own(kind: Kind) {
    let w = world(kind, &[]).await;
    let h = &w.h;
    let (_, other_token) = h.create_cluster("c2", json!({})).await;
    let other_agent = h.client(&other_token);
    let q = "query($e: ID!) { backupLocationCredentials(environmentId: $e) { accessKeyId secretAccessKey } }";
    let creds = ok(&w.agent, q, json!({"e": w.env})).await;
    assert_eq!(
        creds["backupLocationCredentials"],
        json!({"accessKeyId": "AKIA1", "secretAccessKey": "s3cr3t-key"})
    );
    fails_with(&other_agent, ErrorKind::Forbidden, q, json!({"e": w.env})).await;
    fails_with(&h.admin, ErrorKind::Forbidden, q, json!({"e": w.env})).await;

    // The agent lists its cluster's environments that have a location, to keep Velero's
    // BackupStorageLocations in line; an environment without one is left out.
    h.create_environment("bare", &w.cluster).await;
    let list = "query($c: ID!) { clusterBackupLocations(clusterId: $c) { environmentId environmentName namespace deleting location { locationId name endpoint bucket region pathStyle checksumAlgorithm } } }";
    let locations = ok(&w.agent, list, json!({"c": w.cluster})).await;
    let all = locations["clusterBackupLocations"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["environmentId"], w.env.as_str());
    assert_eq!(all[0]["namespace"], "styrmin-prod");
    assert_eq!(all[0]["deleting"], false);
    assert_eq!(all[0]["location"]["name"], "styrmin-prod");
    assert_eq!(all[0]["location"]["bucket"], "backups");
    assert_eq!(all[0]["location"]["pathStyle"], true);
    assert!(!locations.to_string().contains("s3cr3t"));
    fails_with(
        &h.admin,
        ErrorKind::Forbidden,
        list,
        json!({"c": w.cluster}),
    )
    .await;
    fails_with(
        &other_agent,
        ErrorKind::Forbidden,
        list,
        json!({"c": w.cluster}),
    )
    .await;

    // The same through the client's typed operations, as the agent calls them.
    use styrmin_client::ops::agent::{
        ClusterOf, FetchBackupLocationCredentials, FetchClusterBackupLocations, LocationOf,
        ReportBackupLocationStatuses, ReportLocationStatuses,
    };
    let typed = w
        .agent
        .run::<FetchClusterBackupLocations>(&ClusterOf {
            cluster_id: w.cluster.clone(),
        })
        .await
        .unwrap();
    assert_eq!(typed[0].location.name, "styrmin-prod");
    assert_eq!(typed[0].location.endpoint, "http://127.0.0.1:9000");
    let creds = w
        .agent
        .run::<FetchBackupLocationCredentials>(&LocationOf {
            environment_id: w.env.clone(),
            location_id: None,
        })
        .await
        .unwrap();
    assert_eq!(creds.secret_access_key, "s3cr3t-key");
    assert!(!format!("{creds:?}").contains("s3cr3t"), "{creds:?}");
    // Naming its own location is the same; a location that holds none of this cluster's
    // backups is refused.
    let own = w
        .agent
        .run::<FetchBackupLocationCredentials>(&LocationOf {
            environment_id: w.env.clone(),
            location_id: Some(typed[0].location.location_id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(own.secret_access_key, "s3cr3t-key");
    let refused = w
        .agent
        .run::<FetchBackupLocationCredentials>(&LocationOf {
            environment_id: w.env.clone(),
            location_id: Some("no-such-location".into()),
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("holds no backup"), "{refused}");
    let stored = w
        .agent
        .run::<ReportBackupLocationStatuses>(&ReportLocationStatuses {
            cluster_id: w.cluster.clone(),
            statuses: vec![styrmin_core::backup::LocationStatusReport {
                environment_id: w.env.clone(),
                phase: "Available".into(),
                message: None,
            }],
        })
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let report = "mutation($c: ID!, $s: [BackupLocationStatusInput!]!) { reportBackupLocationStatuses(clusterId: $c, statuses: $s) }";
    let statuses = json!([{"environmentId": w.env, "phase": "Unavailable", "message": "BackupStorageLocation \"styrmin-prod\" is unavailable: connection refused"}]);
    let n = ok(&w.agent, report, json!({"c": w.cluster, "s": statuses})).await;
    assert_eq!(n["reportBackupLocationStatuses"], 1);
    let env = ok(
        &h.admin,
        "query($e: ID!) { environment(id: $e) { backupLocationStatus { phase message reportedAt } } }",
        json!({"e": w.env}),
    )
    .await;
    let status = &env["environment"]["backupLocationStatus"];
    assert_eq!(status["phase"], "Unavailable");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert!(status["reportedAt"].is_string());
    // Another cluster's agent may not report on this environment.
    let other_cluster = ok(&h.admin, "{ clusters { id name } }", json!({})).await["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "c2")
        .unwrap()["id"]
        .clone();
    fails_with(
        &other_agent,
        ErrorKind::Forbidden,
        report,
        json!({"c": other_cluster, "s": statuses}),
    )
    .await;
    fails_with(
        &w.agent,
        ErrorKind::Forbidden,
        report,
        json!({"c": other_cluster, "s": statuses}),
    )
    .await;
}

/// With `backupKeep: 1`, each completed backup of a deployment deletes the older
/// completed ones through `delete_backup` runs; a failed backup does not count. A bad
/// schedule or keep is refused naming its field.
async fn retention_deletes_the_oldest_completed_backups(kind: Kind) {
    let w = world(kind, &["shop"]).await;
    let h = &w.h;
    let update = "mutation($e: ID!, $s: String, $k: Int) { updateEnvironment(id: $e, backupSchedule: $s, backupKeep: $k) { backupSchedule backupKeep backupNextAt } }";
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        update,
        json!({"e": w.env, "s": "61 * * * *"}),
    )
    .await;
    assert_eq!(e.fields[0].field, "backupSchedule");
    assert!(e.fields[0].message.contains("minute: 61"), "{e}");
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        update,
        json!({"e": w.env, "k": -1}),
    )
    .await;
    assert_eq!(e.fields[0].field, "backupKeep");
    let set = ok(
        &h.admin,
        update,
        json!({"e": w.env, "s": "0 3 * * *", "k": 1}),
    )
    .await;
    assert_eq!(set["updateEnvironment"]["backupSchedule"], "0 3 * * *");
    assert_eq!(set["updateEnvironment"]["backupKeep"], 1);
    assert!(
        set["updateEnvironment"]["backupNextAt"]
            .as_str()
            .unwrap()
            .contains("T03:00:00")
    );

    let shop = &w.deployments[0];
    let first = backup_deployment(&h.admin, shop).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = claim_one(&w.agent).await;
    complete_with(&w.agent, &run, backup_result("completed", 1, None)).await;
    let failed = backup_deployment(&h.admin, shop).await;
    let run = claim_one(&w.agent).await;
    complete_with(
        &w.agent,
        &run,
        backup_result("failed", 0, Some("pg_dump: connection refused")),
    )
    .await;
    assert_eq!(
        backup(&h.admin, failed["id"].as_str().unwrap()).await["state"],
        "failed"
    );
    assert!(
        claim(&w.agent, 1, 0.0).await.is_empty(),
        "nothing to delete yet"
    );

    let second = backup_deployment(&h.admin, shop).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = claim_one(&w.agent).await;
    complete_with(&w.agent, &run, backup_result("completed", 2, None)).await;
    assert_eq!(backup(&h.admin, &first).await["deleting"], true);
    let run = claim_one(&w.agent).await;
    assert_eq!(run["kind"], "delete_backup");
    assert_eq!(run["payload"]["backupId"], first.as_str());
    complete(&w.agent, &run).await;
    let left: Vec<String> = ok(&h.admin, "{ backups { id state } }", json!({})).await["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&second) && !left.contains(&first), "{left:?}");
}

/// Two servers on one database both watch the schedule; each time it falls due exactly
/// one of them takes the environment backup (the due time is moved on by a conditional
/// UPDATE in the backup's own transaction).
async fn two_servers_take_each_scheduled_backup_once(kind: Kind) {
    let settings = styrmin_server::Settings {
        schedule_tick: Duration::from_millis(20),
        ..fast_settings()
    };
    let h = Harness::with(kind, settings.clone()).await;
    let two = server_on(&h.db, settings).await;
    let w = world_on(h, &["shop"]).await;
    let h = &w.h;
    ok(
        &h.admin,
        "mutation($e: ID!) { updateEnvironment(id: $e, backupSchedule: \"0 3 * * *\") { id } }",
        json!({"e": w.env}),
    )
    .await;
    const ROUNDS: usize = 4;
    for round in 1..=ROUNDS {
        // The schedule falls due: its next time is moved into the past, as if the clock
        // had passed it.
        let mut c = h.db.connect().await;
        sqlx::query("UPDATE environments SET backup_next_at = $1 WHERE id = $2")
            .bind(1_000_i64)
            .bind(&w.env)
            .execute(&mut c)
            .await
            .unwrap();
        let env = w.env.clone();
        eventually(
            "a server to take the due backup",
            Duration::from_secs(10),
            || {
                let admin = h.admin.clone();
                let env = env.clone();
                async move {
                    let v = ok(
                        &admin,
                        "query($e: ID!) { environment(id: $e) { backupNextAt } }",
                        json!({"e": env}),
                    )
                    .await;
                    v["environment"]["backupNextAt"] != "1970-01-01T00:00:01Z"
                }
            },
        )
        .await;
        let parents = ok(&h.admin, "{ backups { deploymentId } }", json!({})).await["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["deploymentId"].is_null())
            .count();
        assert_eq!(parents, round, "one environment backup per due time");
    }
    let audit = ok(
        &h.admin,
        "{ auditLog(first: 500) { actor action } }",
        json!({}),
    )
    .await;
    let by_scheduler = audit["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["actor"] == "scheduler" && a["action"] == "createBackup")
        .count();
    assert_eq!(by_scheduler, ROUNDS);
    two.stop().await.unwrap();
}

/// Cloning an environment with data makes a new environment on the same cluster with the
/// source's config and location, recreates each deployment (same driver version,
/// application version and parameters) with its create run, and queues a restore of its
/// latest completed backup right behind it, mapped from the source's namespace to the
/// clone's. Without a completed backup the clone is refused naming the deployment, and
/// nothing is made.
async fn an_environment_clone_with_data_restores_each_latest_backup(kind: Kind) {
    let w = world(kind, &["shop"]).await;
    let h = &w.h;
    let clone = "mutation($s: ID!, $n: String!, $d: Boolean) { cloneEnvironment(sourceId: $s, name: $n, withData: $d) { environment { id name namespace clusterId backupStorageLocation { name } } deployments { id name appVersion } flowRuns { id kind deploymentId } restores { id backupId state targetDeploymentId } } }";
    let before = h.row_counts().await;
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        clone,
        json!({"s": "prod", "n": "rehearsal", "d": true}),
    )
    .await;
    assert!(
        e.message
            .contains("deployment `shop` of environment `prod` has no completed backup"),
        "{e}"
    );
    assert_eq!(h.row_counts().await, before);

    let shop = &w.deployments[0];
    let older = backup_deployment(&h.admin, shop).await;
    complete_with(
        &w.agent,
        &claim_one(&w.agent).await,
        backup_result("completed", 1, None),
    )
    .await;
    let latest = backup_deployment(&h.admin, shop).await;
    let latest_id = latest["id"].as_str().unwrap();
    complete_with(
        &w.agent,
        &claim_one(&w.agent).await,
        backup_result("completed", 2, None),
    )
    .await;
    assert_ne!(older["id"], latest["id"]);

    let made = ok(
        &h.admin,
        clone,
        json!({"s": "prod", "n": "rehearsal", "d": true}),
    )
    .await["cloneEnvironment"]
        .clone();
    let env = &made["environment"];
    assert_eq!(env["name"], "rehearsal");
    assert_eq!(env["namespace"], "styrmin-rehearsal");
    assert_eq!(env["clusterId"], w.cluster.as_str());
    assert_eq!(env["backupStorageLocation"]["name"], "s3-main");
    assert_eq!(made["deployments"][0]["name"], "shop");
    assert_eq!(made["deployments"][0]["appVersion"], "2.3.1");
    let copy = made["deployments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["restores"][0]["backupId"], latest_id);
    assert_eq!(made["restores"][0]["targetDeploymentId"], copy.as_str());
    let kinds: Vec<&str> = made["flowRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["create", "restore"]);

    // The clone's create runs first; its restore waits behind it.
    let runs = claim(&w.agent, 5, 5.0).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["kind"], "create");
    assert_eq!(runs[0]["deploymentId"], copy.as_str());
    let context = &runs[0]["payload"]["context"];
    assert_eq!(context["environment"]["namespace"], "styrmin-rehearsal");
    assert_eq!(context["parameters"]["admin_email"], "ops@example.com");
    complete(&w.agent, &runs[0]).await;
    let run = claim_one(&w.agent).await;
    assert_eq!(run["kind"], "restore");
    let p = &run["payload"];
    assert_eq!(p["backupId"], latest_id);
    assert_eq!(p["sourceNamespace"], "styrmin-prod");
    assert_eq!(p["namespace"], "styrmin-rehearsal");
    assert_eq!(p["location"]["name"], "styrmin-prod");
    assert_eq!(
        p["components"][0]["selector"]["app.kubernetes.io/instance"],
        "shop"
    );
    complete_with(
        &w.agent,
        &run,
        json!({"state": "completed", "components": [], "errors": []}),
    )
    .await;
    let rid = made["restores"][0]["id"].as_str().unwrap();
    assert_eq!(restore(&h.admin, rid).await["state"], "completed");

    // Without data: the deployments only.
    let bare = ok(
        &h.admin,
        clone,
        json!({"s": "prod", "n": "empty-copy", "d": false}),
    )
    .await["cloneEnvironment"]
        .clone();
    assert_eq!(bare["restores"], json!([]));
    assert_eq!(bare["flowRuns"][0]["kind"], "create");
}

/// A clone recreates each deployment with its driver version and its secret parameters:
/// the clone's agent reads the same secret value back, and the clone's Context refers to
/// it the same way, in the clone's own namespace.
async fn a_clone_keeps_secret_parameters_and_the_driver_version(kind: Kind) {
    let w = world(kind, &[]).await;
    let h = &w.h;
    let driver = secret_driver_copy();
    ok(
        &h.admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await;
    let created = ok(&h.admin, "mutation($s: JSON) { createDeployment(driver: \"my-app-secret\", appVersion: \"2.3.1\", environmentId: \"prod\", name: \"vault\", parameters: {admin_email: \"ops@example.com\"}, secretParameters: $s) { deployment { id driverVersion { id } } } }", json!({"s": {"password": "hunter2-clone"}})).await;
    let source_version = created["createDeployment"]["deployment"]["driverVersion"]["id"].clone();
    finish(&w.agent, "create").await;

    let made = ok(&h.admin, "mutation { cloneEnvironment(sourceId: \"prod\", name: \"copy\", withData: false) { deployments { id name driverVersion { id } } } }", json!({})).await;
    let copy = &made["cloneEnvironment"]["deployments"][0];
    assert_eq!(copy["name"], "vault");
    assert_eq!(copy["driverVersion"]["id"], source_version);
    let copy_id = copy["id"].as_str().unwrap();
    let run = claim_one(&w.agent).await;
    assert_eq!(run["deploymentId"], copy_id);
    let reference = &run["payload"]["context"]["parameters"]["password"]["secretRef"];
    assert_eq!(reference["key"], "password");
    assert_eq!(
        run["payload"]["context"]["instance"]["namespace"],
        "styrmin-copy"
    );
    let values = ok(
        &w.agent,
        "query($d: ID!) { secretParameterValues(deploymentId: $d) { secretName values } }",
        json!({"d": copy_id}),
    )
    .await;
    assert_eq!(
        values["secretParameterValues"]["values"],
        json!({"password": "hunter2-clone"})
    );
    assert_eq!(
        values["secretParameterValues"]["secretName"],
        reference["name"]
    );
}
