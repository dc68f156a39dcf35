//! What the binary's cluster tests share: a local cluster, a server, the `local` cluster
//! with a `dev` environment, the example driver, and `styrmin agent` processes.

#![allow(dead_code)] // each test file uses its own part

pub mod webdriver;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_localkube::{LocalCluster, Options};
use styrmin_server::server::{ServerOptions, start};
use styrmin_server::state::Settings;
use tokio::process::{Child, Command};

pub const ADMIN: &str = "stm_fault-admin";

pub async fn call(client: &Client, query: &str, vars: Value) -> Value {
    client
        .request(query, vars)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

pub fn agent(server: &str, token: &str, kubeconfig: &Path, shutdown_grace: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_styrmin"))
        .args([
            "agent",
            "--server",
            server,
            "--token",
            token,
            "--snapshot-interval",
            "2",
            "--shutdown-grace",
            shutdown_grace,
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(Stdio::null())
        // STYRMIN_TEST_AGENT_LOG=1 shows the agent's log, for a failing test.
        .stderr(if std::env::var_os("STYRMIN_TEST_AGENT_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("styrmin agent starts")
}

pub struct Setup {
    pub cluster: LocalCluster,
    pub server: styrmin_server::server::RunningServer,
    pub admin: Client,
    pub agent_token: String,
    _data: tempfile::TempDir,
}

/// A local cluster, a server whose leases last `lease`, a `local` cluster with a `dev`
/// environment, and the example driver loaded.
pub async fn setup(lease: Duration) -> Setup {
    setup_with(lease, json!({})).await
}

/// As `setup`, the `local` cluster registered with `cluster_config`.
pub async fn setup_with(lease: Duration, cluster_config: Value) -> Setup {
    let cluster = LocalCluster::start(Options {
        image_path: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sim-image-bin")],
        ..Options::default()
    })
    .await
    .expect("the local cluster starts");
    let data = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(data.path().to_owned());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN.into());
    options.settings = Settings {
        lease,
        ..Settings::default()
    };
    let server = start(options).await.expect("the server starts");
    let admin = Client::new(&server.url(), Some(ADMIN.into())).unwrap();
    let v = call(
        &admin,
        "mutation($config: JSON) { createCluster(name: \"local\", config: $config) { agentToken } }",
        json!({"config": cluster_config}),
    )
    .await;
    let agent_token = v["createCluster"]["agentToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &admin,
        "mutation { createEnvironment(name: \"dev\", clusterId: \"local\") { id } }",
        json!({}),
    )
    .await;
    let driver = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../drivers/examples/my-app")
        .canonicalize()
        .unwrap();
    call(
        &admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.display().to_string()}),
    )
    .await;
    Setup {
        cluster,
        server,
        admin,
        agent_token,
        _data: data,
    }
}

impl Setup {
    pub fn agent_via(&self, server: &str) -> Child {
        agent(server, &self.agent_token, self.cluster.kubeconfig(), "20")
    }

    pub fn agent(&self, shutdown_grace: &str) -> Child {
        agent(
            &self.server.url(),
            &self.agent_token,
            self.cluster.kubeconfig(),
            shutdown_grace,
        )
    }

    pub async fn stop(self) {
        self.server.stop().await.unwrap();
        self.cluster.stop().await;
    }
}
