//! Shared by the server's tests: a fresh database of either kind, an in-process server on
//! it, GraphQL clients per role, and a fake agent.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;
use styrmin_client::{Client, ErrorKind};
use styrmin_server::server::{RunningServer, ServerOptions, start};
use styrmin_server::state::Settings;
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "stm_test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    postgres: Option<(String, String)>,
}

fn postgres_base_url() -> String {
    std::env::var("STYRMIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub async fn database(kind: Kind) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    match kind {
        Kind::Sqlite => TestDb {
            url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("styrmin.db").display()
            ),
            dir,
            postgres: None,
        },
        Kind::Postgres => {
            let base = postgres_base_url();
            let mut admin = sqlx::PgConnection::connect(&base)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "the PostgreSQL tests need a server: cannot connect to {base} ({e}); \
                     scripts/test.sh starts one and sets STYRMIN_TEST_POSTGRES_URL"
                    )
                });
            let (prefix, _) = base.rsplit_once('/').expect("a database URL");
            let run_db = base.rsplit('/').next().unwrap_or("postgres");
            let run_db = run_db.split('?').next().unwrap_or(run_db);
            let name = format!(
                "{}_t{}",
                if run_db == "postgres" {
                    "styrmin"
                } else {
                    run_db
                },
                &styrmin_server::ids::new_id()[..8]
            );
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create the test database");
            TestDb {
                url: format!("{prefix}/{name}"),
                dir,
                postgres: Some((base, name)),
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.postgres.take() {
            // Drop runs outside any runtime's async context: use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn fast_settings() -> Settings {
    Settings {
        lease: Duration::from_secs(30),
        max_attempts: 3,
        agent_offline_after: Duration::from_secs(60),
        ..Settings::default()
    }
}

pub async fn server_on(db: &TestDb, settings: Settings) -> RunningServer {
    let mut options = ServerOptions::new(db.dir.path().to_owned());
    options.database_url = Some(db.url.clone());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN_TOKEN.into());
    options.secret_key = Some("test secret key".into());
    options.settings = settings;
    start(options).await.expect("server starts")
}

/// A database and a server on it.
pub struct Harness {
    pub server: RunningServer,
    pub db: TestDb,
    pub admin: Client,
}

impl Harness {
    pub async fn new(kind: Kind) -> Harness {
        Harness::with(kind, fast_settings()).await
    }

    pub async fn with(kind: Kind, settings: Settings) -> Harness {
        let db = database(kind).await;
        let server = server_on(&db, settings).await;
        let admin = Client::new(&server.url(), Some(ADMIN_TOKEN.into())).unwrap();
        Harness { server, db, admin }
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.server.url(), Some(token.into())).unwrap()
    }

    /// A token of `role` made through the API.
    pub async fn token(&self, name: &str, role: &str) -> Client {
        let v = ok(
            &self.admin,
            "mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret } }",
            json!({"n": name, "r": role}),
        )
        .await;
        self.client(v["createToken"]["secret"].as_str().unwrap())
    }

    /// A cluster and an environment on it; returns (cluster id, environment id, agent).
    pub async fn cluster_with_environment(
        &self,
        cluster: &str,
        env: &str,
    ) -> (String, String, Client) {
        let v = ok(&self.admin, "mutation($n: String!) { createCluster(name: $n, config: {fqdn_suffix: \"example.test\"}) { agentToken cluster { id } } }", json!({"n": cluster})).await;
        let cluster_id = v["createCluster"]["cluster"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent = self.client(v["createCluster"]["agentToken"].as_str().unwrap());
        let v = ok(
            &self.admin,
            "mutation($n: String!, $c: ID!) { createEnvironment(name: $n, clusterId: $c) { id } }",
            json!({"n": env, "c": cluster_id}),
        )
        .await;
        let env_id = v["createEnvironment"]["id"].as_str().unwrap().to_owned();
        (cluster_id, env_id, agent)
    }

    pub async fn load_example_driver(&self) -> Value {
        ok(&self.admin, "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created version { id version digest } } }", json!({"p": example_driver().display().to_string()})).await["loadLocalApplicationDriverVersion"].clone()
    }

    /// Rows in every table: proof that a refused change wrote nothing.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for table in [
            "tokens",
            "clusters",
            "backup_storage_locations",
            "environments",
            "drivers",
            "driver_versions",
            "deployments",
            "instances",
            "flow_runs",
            "flow_run_logs",
            "pod_statuses",
            "deployment_statuses",
            "backups",
            "restores",
            "audit_log",
        ] {
            let row: (i64,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(self.server.state.db.pool())
                    .await
                    .unwrap();
            out.push((table.to_owned(), row.0));
        }
        out
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn example_driver() -> PathBuf {
    repo_root().join("drivers/examples/my-app")
}

/// Runs an operation that must succeed.
pub async fn ok(client: &Client, query: &str, vars: Value) -> Value {
    match client.request(query, vars).await {
        Ok(data) => data,
        Err(e) => panic!("{query} failed: {e} ({:?})", e.kind),
    }
}

/// Runs an operation that must fail, returning the error.
pub async fn fails(client: &Client, query: &str, vars: Value) -> styrmin_client::Error {
    match client.request(query, vars).await {
        Ok(data) => panic!("{query} should have failed, returned {data}"),
        Err(e) => e,
    }
}

pub async fn fails_with(
    client: &Client,
    kind: ErrorKind,
    query: &str,
    vars: Value,
) -> styrmin_client::Error {
    let e = fails(client, query, vars).await;
    assert_eq!(e.kind, kind, "{query}: {e}");
    e
}

pub const RUN: &str = "id kind state attempt instanceId error deploymentId payload";

/// Claims with a long-poll of `wait` seconds.
pub async fn claim(agent: &Client, max: i32, wait: f64) -> Vec<Value> {
    let v = ok(agent, &format!("mutation($m: Int!, $w: Float!) {{ claimFlowRuns(max: $m, waitSeconds: $w, agentVersion: \"test-agent\", protocolVersion: \"1.0\") {{ {RUN} }} }}"), json!({"m": max, "w": wait})).await;
    v["claimFlowRuns"].as_array().unwrap().clone()
}

pub async fn complete(agent: &Client, run: &Value) -> Value {
    ok(agent, "mutation($id: ID!, $a: Int!) { completeFlowRun(id: $id, attempt: $a, result: {ok: true}) { state } }", json!({"id": run["id"], "a": run["attempt"]})).await
}

pub async fn fail(agent: &Client, run: &Value, error: &str) -> Value {
    ok(agent, "mutation($id: ID!, $a: Int!, $e: String!) { failFlowRun(id: $id, attempt: $a, error: $e) { state } }", json!({"id": run["id"], "a": run["attempt"], "e": error})).await
}

pub const DEPLOYMENT: &str = "id name phase appVersion lastError activeInstance { id appVersion } instances { id state appVersion } flowRuns { id kind state attempt error } status { status message urls }";

pub async fn deployment(client: &Client, id: &str) -> Value {
    ok(
        client,
        &format!("query($id: ID!) {{ deployment(id: $id) {{ {DEPLOYMENT} }} }}"),
        json!({"id": id}),
    )
    .await["deployment"]
        .clone()
}

pub async fn create_example(client: &Client, env: &str, name: &str) -> Value {
    ok(client, "mutation($env: ID!, $name: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: $name, parameters: {admin_email: \"ops@example.com\"}) { noop deployment { id } instance { id state } flowRun { id kind state } } }", json!({"env": env, "name": name})).await["createDeployment"].clone()
}

/// Polls `check` every 50 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval within a deadline
    }
}

/// Generates one `#[tokio::test]` per database kind for a scenario `async fn(Kind)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Kind::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Kind::Postgres).await;
                }
            )+
        }
    };
}
