//! The agent's backup engine against the local cluster, its Velero stand-in, a real S3
//! server (`rclone serve s3`) and real PostgreSQL and MariaDB databases behind the
//! "database pods" (one database per pod, made by the node simulator).
//!
//! Needs the kube binaries, rclone (STYRMIN_RCLONE), PostgreSQL (STYRMIN_TEST_POSTGRES_URL)
//! and MariaDB on 127.0.0.1:3306 (or STYRMIN_TEST_MARIADB_URL), as scripts/test.sh and
//! /work/helper-env.sh provide them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, AttachParams, DynamicObject, ListParams, PostParams};
use serde_json::json;
use styrmin_agent::backups::{self, Credentials};
use styrmin_agent::runlog::LogSink;
use styrmin_core::backup::{
    BackupPayload, BackupResult, BackupState, ComponentPlan, DeleteBackupPayload, LocationRef,
    RestorePayload, RestoreState, VELERO_NAMESPACE, velero_backup_name, velero_restore_name,
};
use styrmin_core::driver::BackupKind;
use styrmin_core::planner::Phase;
use styrmin_core::protocol::{BackupRun, DeploymentRef, RestoreRun};
use styrmin_localkube::LocalCluster;
use styrmin_localkube::s3::S3Server;
use styrmin_testkit::cluster::local_cluster;
use styrmin_testkit::wait_until;
use tokio::io::AsyncReadExt as _;

const BUCKET: &str = "backups";
const LOCATION: &str = "styrmin-dev";
const WAIT: Duration = Duration::from_secs(90);

fn rclone() -> PathBuf {
    std::env::var_os("STYRMIN_RCLONE")
        .map(PathBuf::from)
        .expect("STYRMIN_RCLONE must name the rclone binary (scripts/test.sh installs it)")
}

struct World {
    cluster: LocalCluster,
    client: Client,
    s3: S3Server,
}

async fn world() -> World {
    let cluster = local_cluster().await;
    let client = cluster.client();
    let s3 = S3Server::start(&rclone(), &cluster.dir().join("s3"))
        .await
        .unwrap();
    s3.create_bucket(BUCKET).unwrap();
    World {
        cluster,
        client,
        s3,
    }
}

impl World {
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.s3.target.access_key.clone(),
            secret_access_key: self.s3.target.secret_key.clone(),
        }
    }

    fn location(&self) -> LocationRef {
        LocationRef {
            location_id: "location-1".into(),
            name: LOCATION.into(),
            endpoint: self.s3.target.endpoint.clone(),
            bucket: BUCKET.into(),
            region: self.s3.target.region.clone(),
            path_style: true,
            checksum_algorithm: String::new(),
        }
    }

    async fn s3(&self, args: &[&str]) -> String {
        self.s3.target.run(&rclone(), args).await.unwrap()
    }
}

fn instance_labels(release: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_owned(), release.to_owned()),
        ("app.kubernetes.io/name".to_owned(), name.to_owned()),
    ])
}

/// A release of a small app: a PostgreSQL (StatefulSet), a MariaDB (Deployment) and a
/// file store whose claim comes from a volumeClaimTemplate.
async fn deploy(client: &Client, namespace: &str, release: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(namespace).await.unwrap().is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let db = instance_labels(release, "db");
    sets.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": format!("{release}-db"), "labels": db},
        "spec": {
            "replicas": 1, "serviceName": format!("{release}-db"),
            "selector": {"matchLabels": db},
            "template": {"metadata": {"labels": db}, "spec": {"containers": [{
                "name": "postgres", "image": "docker.io/library/postgres:16",
                "env": [{"name": "POSTGRES_USER", "value": "app"}, {"name": "POSTGRES_DB", "value": "app"}]
            }]}}
        }
    })).unwrap()).await.unwrap();
    let maria = instance_labels(release, "maria");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{release}-maria"), "labels": maria},
                "spec": {
                    "replicas": 1, "selector": {"matchLabels": maria},
                    "template": {"metadata": {"labels": maria}, "spec": {"containers": [{
                        "name": "mariadb", "image": "mariadb:11",
                        "env": [{"name": "MARIADB_DATABASE", "value": "app"}]
                    }]}}
                }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let files = instance_labels(release, "files");
    sets.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": format!("{release}-files"), "labels": files},
        "spec": {
            "replicas": 1, "serviceName": format!("{release}-files"),
            "selector": {"matchLabels": files},
            "template": {"metadata": {"labels": files}, "spec": {"containers": [{
                "name": "app", "image": "busybox:1.36",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"}]
            }], "volumes": [{"name": "cache", "emptyDir": {}}]}},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    })).unwrap()).await.unwrap();
    for component in ["db", "maria", "files"] {
        ready_pod(client, namespace, release, component).await;
    }
}

fn plans(release: &str) -> Vec<ComponentPlan> {
    let plan = |component: &str, kind, volumes: &[&str]| ComponentPlan {
        component: component.into(),
        kind,
        selector: instance_labels(release, component),
        volumes: volumes.iter().map(|v| (*v).to_owned()).collect(),
        action: None,
        restore_action: None,
        overrides: BTreeMap::new(),
    };
    vec![
        plan("db", BackupKind::Postgres, &[]),
        plan("maria", BackupKind::Mariadb, &[]),
        plan("files", BackupKind::Disk, &["data"]),
    ]
}

fn deployment_ref(id: &str) -> DeploymentRef {
    DeploymentRef {
        deployment_id: id.into(),
        deployment_name: id.into(),
        environment_id: "env-1".into(),
        phase: Phase::Running,
        active_instance_id: None,
    }
}

fn backup_run(
    w: &World,
    id: &str,
    namespace: &str,
    release: &str,
    components: Vec<ComponentPlan>,
) -> BackupRun {
    BackupRun {
        deployment: deployment_ref(release),
        backup: BackupPayload {
            backup_id: id.into(),
            velero_backup: velero_backup_name(id),
            namespace: namespace.into(),
            release_name: release.into(),
            location: w.location(),
            driver_digest: "digest".into(),
            driver_name: "my-app".into(),
            components,
            deadline_seconds: 120,
        },
    }
}

fn restore_run(
    w: &World,
    id: &str,
    backup_id: &str,
    (source_namespace, source_release): (&str, &str),
    (namespace, release): (&str, &str),
) -> RestoreRun {
    RestoreRun {
        deployment: deployment_ref(release),
        restore: RestorePayload {
            restore_id: id.into(),
            backup_id: backup_id.into(),
            velero_backup: velero_backup_name(backup_id),
            velero_restore: velero_restore_name(id),
            source_namespace: source_namespace.into(),
            source_release_name: source_release.into(),
            namespace: namespace.into(),
            release_name: release.into(),
            location: w.location(),
            driver_digest: "digest".into(),
            driver_name: "my-app".into(),
            components: plans(release),
            deadline_seconds: 120,
        },
    }
}

/// The name of a ready pod of the component.
async fn ready_pod(client: &Client, namespace: &str, release: &str, component: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/name={component}");
    wait_until(
        &format!("a ready {component} pod in {namespace}"),
        WAIT,
        Duration::from_millis(200),
        || async {
            let listed = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            listed
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .and_then(|p| p.metadata.name)
                .ok_or_else(|| "none ready yet".to_owned())
        },
    )
    .await
}

/// Runs `sh -c script` in the component's ready pod (through the API server's exec, as
/// `kubectl exec` does); returns stdout, panics with stderr on failure.
async fn exec(
    client: &Client,
    namespace: &str,
    release: &str,
    component: &str,
    script: &str,
) -> Vec<u8> {
    let pod = ready_pod(client, namespace, release, component).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut process = pods
        .exec(
            &pod,
            vec!["sh", "-c", script],
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
        "`{script}` in {namespace}/{pod}: {}",
        String::from_utf8_lossy(&err)
    );
    out
}

async fn psql(w: &World, namespace: &str, release: &str, sql: &str) -> Vec<String> {
    let script = format!("psql -v ON_ERROR_STOP=1 -qAt -F '|' -c {}", quote(sql));
    lines(exec(&w.client, namespace, release, "db", &script).await)
}

async fn maria(w: &World, namespace: &str, release: &str, sql: &str) -> Vec<String> {
    let script = format!("mariadb -N -B -e {}", quote(sql));
    lines(exec(&w.client, namespace, release, "maria", &script).await)
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn lines(bytes: Vec<u8>) -> Vec<String> {
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

const PG_ROWS: &str = "SELECT id, name, price, tags FROM items ORDER BY id";
const MARIA_ROWS: &str = "SELECT id, name, HEX(payload) FROM notes ORDER BY id";

/// Tables with rows of every shape: quotes, new lines, unicode, nulls, binary.
async fn seed(w: &World, namespace: &str, release: &str) {
    psql(w, namespace, release, "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), tags text[]); \
        INSERT INTO items SELECT i, 'item ' || i || E' \\'q\\' åäö', i * 1.25, ARRAY['t' || (i % 3)] FROM generate_series(1, 300) i; \
        INSERT INTO items VALUES (1000, NULL, NULL, NULL)").await;
    maria(w, namespace, release, "CREATE TABLE notes (id INT PRIMARY KEY, name VARCHAR(200), payload BLOB); \
        INSERT INTO notes SELECT seq, CONCAT('note ', seq, ' \\'x\\' ü'), UNHEX(SHA2(seq, 256)) FROM seq_1_to_250; \
        INSERT INTO notes VALUES (999, NULL, NULL)").await;
}

fn assert_rows_equal(what: &str, expected: &[String], actual: &[String]) {
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        assert_eq!(e, a, "{what}: row {i} differs");
    }
    assert_eq!(expected.len(), actual.len(), "{what}: row counts differ");
}

fn binary_blob() -> Vec<u8> {
    (0..80_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Writes the file store's files through exec (a binary file and a text file).
async fn write_files(w: &World, namespace: &str, release: &str) {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, binary_blob()).unwrap();
    // The simulated container runs on this machine: it may read the host's file.
    exec(
        &w.client,
        namespace,
        release,
        "files",
        &format!(
            "mkdir -p /data/deep && cp {} /data/deep/blob.bin && printf 'hello, volume\\n' > /data/hello.txt && echo scratch > /cache/tmp.txt",
            blob.display()
        ),
    )
    .await;
}

async fn read_file(w: &World, namespace: &str, release: &str, path: &str) -> Vec<u8> {
    exec(
        &w.client,
        namespace,
        release,
        "files",
        &format!("cat {path}"),
    )
    .await
}

async fn take_backup(w: &World, run: &BackupRun) -> BackupResult {
    backups::backup(&w.client, run, &w.credentials(), &LogSink::detached()).await
}

/// Downloads the backup's archive from the bucket and unpacks it.
async fn fetch_archive(w: &World, backup: &str, into: &Path) {
    let key = format!("s3:{BUCKET}/{LOCATION}/backups/{backup}/{backup}.tar.gz");
    let archive = into.join("archive.tar.gz");
    w.s3(&["copyto", &key, &archive.display().to_string()])
        .await;
    let status = std::process::Command::new("tar")
        .args([
            "xzf",
            &archive.display().to_string(),
            "-C",
            &into.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Proves the whole round trip on one deployment: a PostgreSQL, a MariaDB and a disk
/// volume are backed up to the real S3 server (the archive is listed in the bucket with
/// an S3 client and holds dumps of exactly the recorded sizes, but not the unnamed
/// emptyDir or the database pods' other data); after rows are changed and deleted and
/// files overwritten, a restore brings back exactly the backed-up rows (compared row by
/// row) and files (byte for byte). Deleting the backup removes its data from the bucket
/// and its Velero Backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restores_databases_row_by_row_and_volumes_byte_for_byte() {
    let w = world().await;
    deploy(&w.client, "shop", "shop").await;
    seed(&w, "shop", "shop").await;
    write_files(&w, "shop", "shop").await;
    let pg_before = psql(&w, "shop", "shop", PG_ROWS).await;
    let maria_before = maria(&w, "shop", "shop", MARIA_ROWS).await;
    assert_eq!(pg_before.len(), 301);
    assert_eq!(maria_before.len(), 251);

    let run = backup_run(&w, "b1", "shop", "shop", plans("shop"));
    let result = take_backup(&w, &run).await;
    assert_eq!(result.state, BackupState::Completed, "{result:#?}");
    let bytes: BTreeMap<&str, Option<u64>> = result
        .components
        .iter()
        .map(|c| (c.component.as_str(), c.bytes))
        .collect();
    assert!(
        result.components.iter().all(|c| c.error.is_none()),
        "{result:#?}"
    );
    assert!(
        bytes["db"].unwrap() > 1000 && bytes["maria"].unwrap() > 1000,
        "{bytes:?}"
    );
    assert!(bytes["files"].unwrap() >= 80_000, "{bytes:?}");
    assert!(result.size_bytes.unwrap() >= bytes["db"].unwrap() + bytes["maria"].unwrap());

    // With an S3 client: the archive is in the bucket, under the location's prefix.
    let listing = w.s3(&["lsl", &format!("s3:{BUCKET}")]).await;
    let archive_line = listing
        .lines()
        .find(|l| l.ends_with(&format!("{LOCATION}/backups/styrmin-b1/styrmin-b1.tar.gz")))
        .unwrap_or_else(|| panic!("no archive in the bucket:\n{listing}"));
    let archive_size: u64 = archive_line
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(archive_size > 1000, "{archive_line}");
    let unpacked = tempfile::tempdir().unwrap();
    fetch_archive(&w, "styrmin-b1", unpacked.path()).await;
    let volumes = unpacked.path().join("volumes/shop");
    for (component, dump) in [("db", "db.dump"), ("maria", "maria.dump")] {
        let size = std::fs::metadata(volumes.join("styrmin-backup-shop").join(dump))
            .unwrap()
            .len();
        assert_eq!(
            Some(size),
            bytes[component],
            "{component}'s dump in the bucket"
        );
    }
    assert_eq!(
        std::fs::read(volumes.join("data-shop-files-0/deep/blob.bin")).unwrap(),
        binary_blob()
    );
    let held: Vec<String> = std::fs::read_dir(&volumes)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        held.len(),
        2,
        "only the named volume and the backup volume: {held:?}"
    );

    // Change everything.
    psql(
        &w,
        "shop",
        "shop",
        "UPDATE items SET name = 'changed' WHERE id % 2 = 0; DELETE FROM items WHERE id > 250; \
        INSERT INTO items VALUES (5000, 'new', 1, NULL); CREATE TABLE extra (x int)",
    )
    .await;
    maria(
        &w,
        "shop",
        "shop",
        "UPDATE notes SET payload = NULL WHERE id < 100; DELETE FROM notes WHERE id > 200",
    )
    .await;
    exec(
        &w.client,
        "shop",
        "shop",
        "files",
        "echo overwritten > /data/deep/blob.bin; rm /data/hello.txt; echo new > /data/new.txt",
    )
    .await;
    assert_ne!(psql(&w, "shop", "shop", PG_ROWS).await, pg_before);
    assert_ne!(maria(&w, "shop", "shop", MARIA_ROWS).await, maria_before);

    let restore = restore_run(&w, "r1", "b1", ("shop", "shop"), ("shop", "shop"));
    let restored =
        backups::restore(&w.client, &restore, &w.credentials(), &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Completed, "{restored:#?}");
    assert_rows_equal(
        "items",
        &pg_before,
        &psql(&w, "shop", "shop", PG_ROWS).await,
    );
    assert_rows_equal(
        "notes",
        &maria_before,
        &maria(&w, "shop", "shop", MARIA_ROWS).await,
    );
    assert_eq!(
        read_file(&w, "shop", "shop", "/data/deep/blob.bin").await,
        binary_blob()
    );
    assert_eq!(
        read_file(&w, "shop", "shop", "/data/hello.txt").await,
        b"hello, volume\n"
    );
    let listing = exec(&w.client, "shop", "shop", "files", "ls /data").await;
    assert_eq!(
        lines(listing),
        vec!["deep", "hello.txt"],
        "the volume is as it was backed up"
    );

    // Deleting the backup deletes its data.
    let delete = DeleteBackupPayload {
        backup_id: "b1".into(),
        velero_backup: velero_backup_name("b1"),
        location: w.location(),
    };
    let deadline = std::time::Instant::now() + WAIT;
    backups::delete_backup(&w.client, &delete, deadline, &LogSink::detached())
        .await
        .unwrap();
    let listing = w.s3(&["lsf", "-R", &format!("s3:{BUCKET}")]).await;
    assert!(!listing.contains("styrmin-b1"), "{listing}");
    let velero_backups: Api<DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        VELERO_NAMESPACE,
        &styrmin_localkube::velero::resource("Backup"),
    );
    assert!(
        velero_backups
            .get_opt("styrmin-b1")
            .await
            .unwrap()
            .is_none()
    );
    w.cluster.stop().await;
}

/// Proves a clone with data: the backup restored into another namespace (Velero's
/// namespaceMapping) serves the source's rows and files from databases and volumes of
/// its own; writes in the clone do not reach the source, and the source kept running
/// unchanged throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clone_in_another_namespace_has_the_data_and_stays_apart() {
    let w = world().await;
    deploy(&w.client, "prod", "shop").await;
    seed(&w, "prod", "shop").await;
    write_files(&w, "prod", "shop").await;
    let pg_source = psql(&w, "prod", "shop", PG_ROWS).await;
    let maria_source = maria(&w, "prod", "shop", MARIA_ROWS).await;
    let source_db_pod = ready_pod(&w.client, "prod", "shop", "db").await;
    let result = take_backup(&w, &backup_run(&w, "b1", "prod", "shop", plans("shop"))).await;
    assert_eq!(result.state, BackupState::Completed, "{result:#?}");

    // The clone: the same driver's deployment in its own namespace, empty.
    deploy(&w.client, "rehearsal", "shop").await;
    let restore = restore_run(&w, "r1", "b1", ("prod", "shop"), ("rehearsal", "shop"));
    let restored =
        backups::restore(&w.client, &restore, &w.credentials(), &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Completed, "{restored:#?}");
    assert_rows_equal(
        "clone items",
        &pg_source,
        &psql(&w, "rehearsal", "shop", PG_ROWS).await,
    );
    assert_rows_equal(
        "clone notes",
        &maria_source,
        &maria(&w, "rehearsal", "shop", MARIA_ROWS).await,
    );
    assert_eq!(
        read_file(&w, "rehearsal", "shop", "/data/deep/blob.bin").await,
        binary_blob()
    );

    // Writes in the clone stay in the clone.
    psql(
        &w,
        "rehearsal",
        "shop",
        "DELETE FROM items; INSERT INTO items VALUES (1, 'clone only', 0, NULL)",
    )
    .await;
    maria(&w, "rehearsal", "shop", "DELETE FROM notes").await;
    exec(
        &w.client,
        "rehearsal",
        "shop",
        "files",
        "echo clone > /data/hello.txt",
    )
    .await;
    assert_rows_equal(
        "source items",
        &pg_source,
        &psql(&w, "prod", "shop", PG_ROWS).await,
    );
    assert_rows_equal(
        "source notes",
        &maria_source,
        &maria(&w, "prod", "shop", MARIA_ROWS).await,
    );
    assert_eq!(
        read_file(&w, "prod", "shop", "/data/hello.txt").await,
        b"hello, volume\n"
    );
    assert_eq!(
        ready_pod(&w.client, "prod", "shop", "db").await,
        source_db_pod,
        "the source's database pod ran throughout"
    );
    w.cluster.stop().await;
}

/// Proves the failure paths end in a failed or partially failed result with a reason a
/// user can act on, and leave the source running with its data: wrong credentials (the
/// location turns Unavailable), an unreachable endpoint, a dump that fails (a database
/// that does not exist) beside one that works, a Velero backup that does not finish
/// within its deadline, a restore of a backup taken from another driver, a restore into
/// a release whose volumes are named otherwise, a restore with wrong credentials, and a
/// Velero restore that does not finish within its deadline (the components run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_end_with_reasons_and_leave_the_source_running() {
    let w = world().await;
    deploy(&w.client, "shop", "shop").await;
    seed(&w, "shop", "shop").await;
    let pg_before = psql(&w, "shop", "shop", PG_ROWS).await;
    let db_pod = ready_pod(&w.client, "shop", "shop", "db").await;

    // Wrong credentials: Velero says Unavailable, the backup fails saying so.
    let wrong = Credentials {
        access_key_id: w.s3.target.access_key.clone(),
        secret_access_key: "not-the-secret-key-0000000000000000000000".into(),
    };
    let run = backup_run(&w, "b-wrong", "shop", "shop", plans("shop"));
    let result = backups::backup(&w.client, &run, &wrong, &LogSink::detached()).await;
    assert_eq!(result.state, BackupState::Failed, "{result:#?}");
    let reason = result.errors.join("\n");
    assert!(
        reason.contains("Unavailable") && reason.contains("credentials"),
        "{reason}"
    );
    assert!(result.components.iter().all(|c| c.error.is_some()));
    let status = backups::velero::location_status(&w.client, LOCATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.phase, "Unavailable");
    assert!(status.message.is_some(), "{status:?}");

    // An unreachable endpoint: the same, with the endpoint named.
    let mut unreachable = backup_run(&w, "b-down", "shop", "shop", plans("shop"));
    unreachable.backup.location.endpoint = "http://127.0.0.1:9".into();
    let result = take_backup(&w, &unreachable).await;
    assert_eq!(result.state, BackupState::Failed, "{result:#?}");
    assert!(
        result.errors.join("\n").contains("127.0.0.1:9"),
        "{result:#?}"
    );

    // A failing dump beside a working one: partially failed, the dump's error kept.
    let mut components = plans("shop");
    components[0]
        .overrides
        .insert("database".into(), "no_such_database".into());
    let result = take_backup(&w, &backup_run(&w, "b-dump", "shop", "shop", components)).await;
    assert_eq!(result.state, BackupState::PartiallyFailed, "{result:#?}");
    let db = result
        .components
        .iter()
        .find(|c| c.component == "db")
        .unwrap();
    let error = db.error.as_deref().unwrap();
    assert!(
        error.contains("postgres dump") && error.contains("no_such_database"),
        "{error}"
    );
    assert!(
        result
            .components
            .iter()
            .filter(|c| c.component != "db")
            .all(|c| c.error.is_none()),
        "{result:#?}"
    );

    // Velero not finishing within the deadline: failed, with the deadline named.
    let mut stuck = backup_run(&w, "b-stuck", "shop", "shop", plans("shop"));
    stuck.backup.deadline_seconds = 0;
    let result = take_backup(&w, &stuck).await;
    assert_eq!(result.state, BackupState::Failed, "{result:#?}");
    assert!(
        result
            .errors
            .join("\n")
            .contains("after the deadline of 0 s"),
        "{result:#?}"
    );

    // A restore of a backup from another driver is refused before anything changes.
    let good = take_backup(&w, &backup_run(&w, "b-good", "shop", "shop", plans("shop"))).await;
    assert_eq!(good.state, BackupState::Completed, "{good:#?}");
    let mut other = restore_run(&w, "r-other", "b-good", ("shop", "shop"), ("shop", "shop"));
    other.restore.driver_name = "another-driver".into();
    let restored =
        backups::restore(&w.client, &other, &w.credentials(), &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Failed, "{restored:#?}");
    assert!(
        restored.errors.join("\n").contains("same driver"),
        "{restored:#?}"
    );

    // A restore into a release whose claims are named otherwise is refused before
    // anything changes (Velero would put the volumes beside the ones its pods use).
    deploy(&w.client, "other", "renamed").await;
    let renamed = restore_run(
        &w,
        "r-renamed",
        "b-good",
        ("shop", "shop"),
        ("other", "renamed"),
    );
    let restored =
        backups::restore(&w.client, &renamed, &w.credentials(), &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Failed, "{restored:#?}");
    assert!(
        restored.errors.join("\n").contains("data-renamed-files-0"),
        "{restored:#?}"
    );

    // A restore with wrong credentials is refused before anything changes.
    let restore = restore_run(&w, "r-wrong", "b-good", ("shop", "shop"), ("shop", "shop"));
    let restored = backups::restore(&w.client, &restore, &wrong, &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Failed, "{restored:#?}");
    assert!(
        restored.errors.join("\n").contains("Unavailable"),
        "{restored:#?}"
    );

    // The source ran throughout, with its rows.
    assert_eq!(ready_pod(&w.client, "shop", "shop", "db").await, db_pod);
    assert_rows_equal(
        "items",
        &pg_before,
        &psql(&w, "shop", "shop", PG_ROWS).await,
    );

    // A Velero restore that does not finish within its deadline: failed, with the
    // deadline named, and the components running again.
    let mut stuck = restore_run(&w, "r-stuck", "b-good", ("shop", "shop"), ("shop", "shop"));
    stuck.restore.deadline_seconds = 0;
    let restored =
        backups::restore(&w.client, &stuck, &w.credentials(), &LogSink::detached()).await;
    assert_eq!(restored.state, RestoreState::Failed, "{restored:#?}");
    assert!(
        restored
            .errors
            .join("\n")
            .contains("after the deadline of 0 s"),
        "{restored:#?}"
    );
    for component in ["db", "maria", "files"] {
        ready_pod(&w.client, "shop", "shop", component).await;
    }
    w.cluster.stop().await;
}
