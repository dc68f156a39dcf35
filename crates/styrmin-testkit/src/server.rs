//! A server in the test process on a throwaway database, its admin client, and the
//! catalogue the tests build on it (clusters, environments, tokens, the example driver).

use std::time::Duration;

use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_server::{RunningServer, ServerOptions, Settings, start};

use crate::api::ok;
use crate::db::{Kind, TestDb, database};
use crate::files::example_driver;

/// The bootstrap admin's token on every test server.
pub const ADMIN_TOKEN: &str = "stm_test-admin-token";

/// Leases, attempts and the offline threshold the server tests are written against; git
/// drivers may come from local repositories (`file://`), which the tests make.
pub fn fast_settings() -> Settings {
    Settings {
        lease: Duration::from_secs(30),
        max_attempts: 3,
        agent_offline_after: Duration::from_secs(60),
        allow_local_git: true,
        ..Settings::default()
    }
}

/// A server on `db` (its files in the database's directory) listening on a free port,
/// with [`ADMIN_TOKEN`] as the bootstrap admin's token.
pub async fn server_on(db: &TestDb, settings: Settings) -> RunningServer {
    let mut options = ServerOptions::new(db.dir.path().to_owned());
    options.database_url = Some(db.url.clone());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN_TOKEN.into());
    options.secret_key = Some("test secret key".into());
    options.settings = settings;
    start(options).await.expect("the server starts")
}

/// A database and a server on it, with a client acting as the admin.
pub struct Harness {
    pub server: RunningServer,
    pub db: TestDb,
    pub admin: Client,
}

/// Every table of the store, for [`Harness::row_counts`].
const TABLES: [&str; 15] = [
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
];

impl Harness {
    pub async fn new(kind: Kind) -> Harness {
        Harness::with(kind, fast_settings()).await
    }

    pub async fn with(kind: Kind, settings: Settings) -> Harness {
        let db = database(kind).await;
        let server = server_on(&db, settings).await;
        let admin = client(&server, ADMIN_TOKEN);
        Harness { server, db, admin }
    }

    /// A client of this server with `token`.
    pub fn client(&self, token: &str) -> Client {
        client(&self.server, token)
    }

    /// A token of `role` made through the API.
    pub async fn token(&self, name: &str, role: &str) -> Client {
        let v = ok(
            &self.admin,
            "mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret } }",
            json!({"n": name, "r": role}),
        )
        .await;
        self.client(v["createToken"]["secret"].as_str().expect("a secret"))
    }

    /// Registers the cluster `name` with `config`; returns its id and its agent's token.
    pub async fn create_cluster(&self, name: &str, config: Value) -> (String, String) {
        let v = ok(&self.admin, "mutation($n: String!, $config: JSON) { createCluster(name: $n, config: $config) { agentToken cluster { id } } }", json!({"n": name, "config": config})).await;
        let created = &v["createCluster"];
        (
            created["cluster"]["id"].as_str().expect("an id").to_owned(),
            created["agentToken"].as_str().expect("a token").to_owned(),
        )
    }

    /// Creates the environment `name` on `cluster`; returns its id.
    pub async fn create_environment(&self, name: &str, cluster: &str) -> String {
        let v = ok(
            &self.admin,
            "mutation($n: String!, $c: ID!) { createEnvironment(name: $n, clusterId: $c) { id } }",
            json!({"n": name, "c": cluster}),
        )
        .await;
        v["createEnvironment"]["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// A cluster (fqdn suffix `example.test`) and an environment on it; returns (cluster
    /// id, environment id, a client acting as the cluster's agent).
    pub async fn cluster_with_environment(
        &self,
        cluster: &str,
        env: &str,
    ) -> (String, String, Client) {
        let (cluster_id, token) = self
            .create_cluster(cluster, json!({"fqdn_suffix": "example.test"}))
            .await;
        let env_id = self.create_environment(env, &cluster_id).await;
        (cluster_id, env_id, self.client(&token))
    }

    /// A new agent token for `cluster` (the old one stops working); returns the secret.
    pub async fn agent_token(&self, cluster: &str) -> String {
        let v = ok(
            &self.admin,
            "mutation($c: ID!) { rotateAgentToken(id: $c) { agentToken } }",
            json!({"c": cluster}),
        )
        .await;
        v["rotateAgentToken"]["agentToken"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// Loads `drivers/examples/my-app`; returns `loadLocalApplicationDriverVersion`.
    pub async fn load_example_driver(&self) -> Value {
        ok(&self.admin, "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created version { id version digest } } }", json!({"p": example_driver().display().to_string()})).await["loadLocalApplicationDriverVersion"].clone()
    }

    /// Rows in every table: proof that a refused change wrote nothing.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let mut c = self.db.connect().await;
        let mut out = Vec::new();
        for table in TABLES {
            let (n,): (i64,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("counting {table}: {e}"));
            out.push((table.to_owned(), n));
        }
        out
    }
}

fn client(server: &RunningServer, token: &str) -> Client {
    Client::new(&server.url(), Some(token.into())).expect("a client")
}
