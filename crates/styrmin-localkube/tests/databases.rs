//! Database pods (a test double): a "PostgreSQL" and a "MariaDB" pod are each backed by a
//! real database on this machine, made when the pod starts and dropped when it goes.
//!
//! Needs the kube binaries, kubectl, PostgreSQL (STYRMIN_TEST_POSTGRES_URL) and MariaDB on
//! 127.0.0.1:3306 (or STYRMIN_TEST_MARIADB_URL), as scripts/test.sh provides them.

mod common;

use std::time::Duration;

use common::{create_namespace, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use styrmin_localkube::{LocalCluster, Options};

/// The administrator's URL of the test PostgreSQL server, and the run's database name.
fn postgres() -> (String, String) {
    let url = std::env::var("STYRMIN_TEST_POSTGRES_URL").expect(
        "STYRMIN_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test.sh sets it)",
    );
    let (server, db) = url.rsplit_once('/').unwrap();
    (format!("{server}/postgres"), db.to_owned())
}

fn mariadb() -> String {
    std::env::var("STYRMIN_TEST_MARIADB_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The machine's kubectl; stdout, or a panic with stderr.
async fn kubectl(cluster: &LocalCluster, args: &[&str]) -> String {
    let run = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(args)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("kubectl finished in 60 s")
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `psql` on the host, straight to the server (not through the cluster).
async fn host_psql(url: &str, sql: &str) -> String {
    let out = tokio::process::Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn host_mariadb(sql: &str) -> String {
    let out = tokio::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn running(pods: &Api<Pod>, name: &str) {
    eventually(
        &format!("pod {name} running"),
        Duration::from_secs(30),
        || async {
            (pods.get(name).await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
        },
    )
    .await;
}

/// Proves that `kubectl exec POD -- psql …` and `mariadb …` in database pods reach a real
/// database of their own on this machine (rows written through exec are read back by a
/// client on the host, straight from the server), that a bare `mariadb-dump` finds it,
/// that other pods get no database, and that the database is dropped with its pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_pods_have_a_real_database_of_their_own_for_as_long_as_they_live() {
    let (admin, run_db) = postgres();
    let cluster = LocalCluster::start(Options {
        postgres: Some(admin.clone()),
        mariadb: Some(mariadb()),
        database_prefix: format!("{run_db}_sim_"),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    create_namespace(&client, "shop").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    for (name, container, image) in [
        ("pg", "postgres", "docker.io/library/postgres:16"),
        ("maria", "mariadb", "mariadb:11"),
        ("web", "web", "my-app:1.0"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": container, "image": image,
                "env": [{"name": "PGDATABASE", "value": "what-the-spec-says"}]}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        running(&pods, name).await;
    }

    // PostgreSQL: through kubectl exec, then from the host.
    let database = kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "pg",
            "--",
            "psql",
            "-qAtc",
            "SELECT current_database()",
        ],
    )
    .await;
    let database = database.trim().to_owned();
    assert!(
        database.starts_with(&format!("{run_db}_sim_")) && database.ends_with("_shop_pg"),
        "{database}"
    );
    kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "pg",
            "--",
            "psql",
            "-qc",
            "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 42)",
        ],
    )
    .await;
    let server = admin.rsplit_once('/').unwrap().0;
    assert_eq!(
        host_psql(&format!("{server}/{database}"), "SELECT sum(x) FROM t").await,
        "903"
    );
    let dump = kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "pg",
            "--",
            "sh",
            "-c",
            "pg_dump | grep -c 'CREATE TABLE public.t'",
        ],
    )
    .await;
    assert_eq!(dump.trim(), "1");

    // MariaDB: the bare client finds its database; the dump tool too.
    let maria_db = kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "maria",
            "--",
            "mariadb",
            "-N",
            "-B",
            "-e",
            "CREATE TABLE n (x INT); INSERT INTO n VALUES (7), (8); SELECT DATABASE()",
        ],
    )
    .await;
    let maria_db = maria_db.trim().to_owned();
    assert!(maria_db.ends_with("_shop_maria"), "{maria_db}");
    assert_eq!(
        host_mariadb(&format!("SELECT SUM(x) FROM {maria_db}.n")).await,
        "15"
    );
    let dump = kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "maria",
            "--",
            "sh",
            "-c",
            "mariadb-dump --single-transaction \"$MARIADB_DATABASE\" | grep -c 'CREATE TABLE `n`'",
        ],
    )
    .await;
    assert_eq!(dump.trim(), "1");

    // Another pod: no database, its own env as the spec says.
    let env = kubectl(
        &cluster,
        &[
            "exec",
            "-n",
            "shop",
            "web",
            "--",
            "sh",
            "-c",
            "echo \"$PGDATABASE ${MYSQL_HOME:-none}\"",
        ],
    )
    .await;
    assert_eq!(env, "what-the-spec-says none\n");

    // Gone with their pods.
    for name in ["pg", "maria"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{database}'");
    eventually(
        "the PostgreSQL database dropped",
        Duration::from_secs(30),
        || async { (host_psql(&admin, &exists).await == "0").then_some(()) },
    )
    .await;
    let exists = format!(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{maria_db}'"
    );
    eventually(
        "the MariaDB database dropped",
        Duration::from_secs(30),
        || async { (host_mariadb(&exists).await == "0").then_some(()) },
    )
    .await;
    cluster.stop().await;
}
