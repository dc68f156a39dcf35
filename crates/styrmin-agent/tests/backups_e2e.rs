//! Backups through the whole product (SPEC §9): the server, the agent and the local
//! cluster with its Velero stand-in, a real S3 server and the example app, whose database
//! pod is a real PostgreSQL database on this machine. Everything is asked through the
//! GraphQL API, as `styrminctl` and the UI ask it.
//!
//! It proves: a location assigned to `dev` becomes a Velero BackupStorageLocation the agent
//! reports Available; `createBackup` of the example app completes with the `postgresql`
//! component's `postgres` dump recorded (bytes, duration) and its objects listed in the
//! bucket by an S3 client; after rows are changed and deleted, `restoreBackup` brings back
//! exactly the backed-up rows, compared row by row, and the app runs again;
//! `cloneEnvironment` with data makes a rehearsal environment whose own database serves
//! the backup's rows while its writes do not reach the source; `deleteBackup` removes the
//! backup's data from the bucket.
//!
//! Needs the kube binaries, helm, rclone and PostgreSQL, all installed by scripts/test.sh.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_localkube::s3::S3Server;
use styrmin_testkit::cluster::LocalStack;
use styrmin_testkit::{fast_settings, ok, wait_until};
use tokio::io::AsyncReadExt as _;

const WAIT: Duration = Duration::from_secs(300);
const BUCKET: &str = "styrmin-backups";
const ROWS: &str = "SELECT id, name, price FROM orders ORDER BY id";

fn rclone() -> PathBuf {
    std::env::var_os("STYRMIN_RCLONE")
        .map(PathBuf::from)
        .expect("STYRMIN_RCLONE must name the rclone binary (scripts/test.sh installs it)")
}

/// Waits until `query`'s `field` has left `scheduled`/`running`; returns it.
async fn finished(admin: &Client, what: &str, query: &str, field: &str, id: &str) -> Value {
    wait_until(what, WAIT, Duration::from_millis(250), || async {
        let v = ok(admin, query, json!({"id": id})).await[field].clone();
        match v["state"].as_str() {
            Some("scheduled" | "running") => Err(v),
            _ => Ok(v),
        }
    })
    .await
}

async fn running(admin: &Client, id: &str) {
    wait_until(
        "the deployment RUNNING",
        WAIT,
        Duration::from_millis(250),
        || async {
            let d = ok(
                admin,
                "query($id: ID!) { deployment(id: $id) { status { status } flowRuns(first: 1) { kind state error } } }",
                json!({"id": id}),
            )
            .await["deployment"]
                .clone();
            assert_ne!(d["flowRuns"][0]["state"], "failed", "{d}");
            (d["status"]["status"] == "RUNNING" && d["flowRuns"][0]["state"] == "completed")
                .then_some(())
                .ok_or(d)
        },
    )
    .await
}

/// `psql` in the `dev` example app's database pod.
async fn psql(kube: &kube::Client, sql: &str) -> Vec<String> {
    psql_in(kube, "styrmin-dev", sql).await
}

/// `psql` in the example app's ready database pod in `namespace`, through the API
/// server's exec as `kubectl exec` does; the rows it prints.
async fn psql_in(kube: &kube::Client, namespace: &str, sql: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
    let pod = wait_until(
        "a ready database pod",
        WAIT,
        Duration::from_millis(250),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/component=postgresql"))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .and_then(|p| p.metadata.name)
                .ok_or_else(|| "none ready".to_owned())
        },
    )
    .await;
    let script = format!(
        "psql -v ON_ERROR_STOP=1 -qAt -F '|' -c '{}'",
        sql.replace('\'', r"'\''")
    );
    let mut process = pods
        .exec(
            &pod,
            vec!["sh", "-c", &script],
            &AttachParams::default().stdout(true).stderr(true),
        )
        .await
        .unwrap();
    let status = process.take_status().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdout = process.stdout().unwrap();
    let mut stderr = process.stderr().unwrap();
    let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
    a.unwrap();
    b.unwrap();
    let status = status.await.unwrap();
    assert_eq!(
        status.status.as_deref(),
        Some("Success"),
        "`{sql}` in {pod}: {}",
        String::from_utf8_lossy(&err)
    );
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_apps_database_goes_to_s3_and_comes_back_row_by_row() {
    let stack = LocalStack::start(fast_settings(), json!({})).await;
    let kube = stack.cluster.client();
    let agent = stack.agent_in_process(kube.clone(), |_| {});
    let admin = &stack.admin;
    let s3 = S3Server::start(&rclone(), &stack.cluster.dir().join("s3"))
        .await
        .unwrap();
    s3.create_bucket(BUCKET).unwrap();
    let location = ok(
        admin,
        "mutation($e: String!, $b: String!, $r: String!, $k: String!, $s: String!) { createBackupStorageLocation(name: \"local\", endpoint: $e, bucket: $b, region: $r, accessKeyId: $k, secretAccessKey: $s) { id } }",
        json!({"e": s3.target.endpoint, "b": BUCKET, "r": s3.target.region, "k": s3.target.access_key, "s": s3.target.secret_key}),
    )
    .await["createBackupStorageLocation"]["id"]
        .clone();
    ok(
        admin,
        "mutation($l: ID!) { assignBackupStorageLocation(environmentId: \"dev\", backupStorageLocationId: $l) { id } }",
        json!({"l": location}),
    )
    .await;

    let created = ok(
        admin,
        "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }",
        json!({}),
    )
    .await;
    let id = created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    running(admin, &id).await;

    psql(
        &kube,
        "CREATE TABLE orders (id int PRIMARY KEY, name text, price numeric(10,2)); \
         INSERT INTO orders SELECT i, 'order ' || i || ' åäö ''q''', i * 2.5 FROM generate_series(1, 200) i",
    )
    .await;
    let before = psql(&kube, ROWS).await;
    assert_eq!(before.len(), 200);

    // Back up.
    let backup = ok(
        admin,
        "mutation($d: ID!) { createBackup(deploymentId: $d) { id state } }",
        json!({"d": id}),
    )
    .await["createBackup"]
        .clone();
    let backup_id = backup["id"].as_str().unwrap().to_owned();
    let done = finished(
        admin,
        "the backup finished",
        "query($id: ID!) { backup(id: $id) { state sizeBytes errors components { component strategy bytes durationMs error } } }",
        "backup",
        &backup_id,
    )
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    let database = &done["components"][0];
    assert_eq!(database["component"], "postgresql", "{done}");
    assert_eq!(database["strategy"], "postgres", "{done}");
    assert!(database["bytes"].as_i64().unwrap() > 0, "{done}");
    assert!(done["sizeBytes"].as_i64().unwrap() > 0, "{done}");

    // The agent made the location a Velero BackupStorageLocation and reported it.
    let env = wait_until(
        "the location's status reported",
        WAIT,
        Duration::from_millis(250),
        || async {
            let e = ok(
                admin,
                "{ environment(id: \"dev\") { backupLocationStatus { phase message } } }",
                json!({}),
            )
            .await["environment"]
                .clone();
            (e["backupLocationStatus"]["phase"] == "Available")
                .then_some(e.clone())
                .ok_or(e)
        },
    )
    .await;
    assert_eq!(env["backupLocationStatus"]["phase"], "Available");

    // The backup's objects are in the bucket, as an S3 client lists them.
    let listed = s3
        .target
        .run(
            &rclone(),
            &["lsjson", "--recursive", &format!("s3:{BUCKET}")],
        )
        .await
        .unwrap();
    let objects: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let stored: i64 = objects
        .iter()
        .filter(|o| o["IsDir"] == false)
        .map(|o| o["Size"].as_i64().unwrap_or(0))
        .sum();
    assert!(stored > 0, "nothing in the bucket: {listed}");

    // Change the data, then restore.
    psql(&kube, "DELETE FROM orders WHERE id > 150; UPDATE orders SET price = 0 WHERE id < 10; INSERT INTO orders VALUES (999, 'late', 1)").await;
    assert_ne!(psql(&kube, ROWS).await, before);
    let restore = ok(
        admin,
        "mutation($b: ID!) { restoreBackup(backupId: $b) { id } }",
        json!({"b": backup_id}),
    )
    .await["restoreBackup"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restored = finished(
        admin,
        "the restore finished",
        "query($id: ID!) { restore(id: $id) { state errors components { component strategy error } } }",
        "restore",
        &restore,
    )
    .await;
    assert_eq!(restored["state"], "completed", "{restored}");
    running(admin, &id).await;
    let after = psql(&kube, ROWS).await;
    assert_eq!(after.len(), before.len());
    for (row, (want, got)) in before.iter().zip(&after).enumerate() {
        assert_eq!(want, got, "row {row} differs after the restore");
    }

    // A clone with data: a rehearsal environment whose own database holds the backup's
    // rows, and whose writes stay there.
    let clone = ok(
        admin,
        "mutation { cloneEnvironment(sourceId: \"dev\", name: \"rehearsal\", withData: true) { environment { namespace } deployments { id } restores { id } } }",
        json!({}),
    )
    .await["cloneEnvironment"]
        .clone();
    let namespace = clone["environment"]["namespace"]
        .as_str()
        .unwrap()
        .to_owned();
    let cloned = clone["deployments"][0]["id"].as_str().unwrap().to_owned();
    let clone_restore = clone["restores"][0]["id"].as_str().unwrap().to_owned();
    let restored = finished(
        admin,
        "the clone's restore finished",
        "query($id: ID!) { restore(id: $id) { state errors components { component strategy error } } }",
        "restore",
        &clone_restore,
    )
    .await;
    assert_eq!(restored["state"], "completed", "{restored}");
    running(admin, &cloned).await;
    assert_eq!(
        psql_in(&kube, &namespace, ROWS).await,
        before,
        "the clone's rows"
    );
    psql_in(
        &kube,
        &namespace,
        "INSERT INTO orders VALUES (5000, 'rehearsal only', 1)",
    )
    .await;
    assert!(
        psql(&kube, "SELECT id FROM orders WHERE id = 5000")
            .await
            .is_empty(),
        "a write in the clone reached the source"
    );
    assert_eq!(psql(&kube, ROWS).await, before, "the source is untouched");

    // Deleting the backup deletes its data.
    ok(
        admin,
        "mutation($id: ID!) { deleteBackup(id: $id) { id } }",
        json!({"id": backup_id}),
    )
    .await;
    wait_until(
        "the backup and its data gone",
        WAIT,
        Duration::from_millis(250),
        || async {
            let gone = !ok(admin, "{ backups(first: 1000) { id } }", json!({})).await["backups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["id"] == backup_id.as_str());
            let listed = s3
                .target
                .run(
                    &rclone(),
                    &["lsjson", "--recursive", &format!("s3:{BUCKET}")],
                )
                .await
                .unwrap();
            let objects: Vec<Value> = serde_json::from_str(&listed).unwrap();
            let data_left = objects.iter().any(|o| {
                o["IsDir"] == false && o["Path"].as_str().unwrap_or("").contains("styrmin-")
            });
            (gone && !data_left).then_some(()).ok_or(listed)
        },
    )
    .await;

    agent.stop().await;
    stack.stop().await;
}
