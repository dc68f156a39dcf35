//! The whole stack on this machine: the local cluster (a real control plane; simulated
//! nodes whose containers run the commands of `scripts/sim-image-bin`; the Flux and Velero
//! stand-ins), a server on SQLite with the `local` cluster and its `dev` environment
//! registered and the example driver loaded, and agents for it — in this process, or as
//! `styrmin agent` processes.

use std::path::Path;
use std::process::Stdio;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;
use styrmin_agent::AgentConfig;
use styrmin_client::Client;
use styrmin_localkube::{LocalCluster, Options};
use styrmin_server::{RunningServer, Settings};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Harness, Kind, TestDb, repo_root};

/// The local cluster, with the simulated images' commands on its containers' path, and
/// database pods backed by this machine's servers ([`database_options`]).
pub async fn local_cluster() -> LocalCluster {
    LocalCluster::start(database_options(Options {
        image_path: vec![repo_root().join("scripts/sim-image-bin")],
        ..Options::default()
    }))
    .await
    .expect("the local cluster starts")
}

/// `options` with the database servers behind "PostgreSQL" and "MariaDB" pods: the
/// server of `STYRMIN_TEST_POSTGRES_URL` (its `postgres` database as the administrator's,
/// pod databases named after the run's database, so the run's clean-up drops leftovers)
/// and `STYRMIN_TEST_MARIADB_URL`, by default `mysql://root@127.0.0.1:3306`.
pub fn database_options(mut options: Options) -> Options {
    if let Ok(url) = std::env::var("STYRMIN_TEST_POSTGRES_URL")
        && let Some((server, run_db)) = url.rsplit_once('/')
    {
        let run_db = run_db.split('?').next().unwrap_or_default();
        options.postgres = Some(format!("{server}/postgres"));
        options.database_prefix = format!("{run_db}_sim_");
    }
    options.mariadb = Some(
        std::env::var("STYRMIN_TEST_MARIADB_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
    );
    options
}

/// The Flux `HelmRelease`s of `namespace` (the stand-in's kind has no Rust type).
pub fn helm_releases(kube: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        kube.clone(),
        namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        )),
    )
}

/// A local cluster and a server that knows it as `local`, with a `dev` environment and
/// the example driver; no agent yet.
pub struct LocalStack {
    pub cluster: LocalCluster,
    pub server: RunningServer,
    pub admin: Client,
    /// The `local` cluster's agent token.
    pub agent_token: String,
    _db: TestDb,
}

impl LocalStack {
    /// Starts the local cluster and a server on SQLite with `settings`, registers the
    /// `local` cluster with `cluster_config`, creates `dev` on it and loads the example
    /// driver.
    pub async fn start(settings: Settings, cluster_config: Value) -> LocalStack {
        let cluster = local_cluster().await;
        let h = Harness::with(Kind::Sqlite, settings).await;
        let (cluster_id, agent_token) = h.create_cluster("local", cluster_config).await;
        h.create_environment("dev", &cluster_id).await;
        h.load_example_driver().await;
        let Harness { server, db, admin } = h;
        LocalStack {
            cluster,
            server,
            admin,
            agent_token,
            _db: db,
        }
    }

    /// Runs the agent of `local` in this process, on `kube` (the local cluster's admin
    /// client, or one with less rights), with `configure` adjusting its settings.
    pub fn agent_in_process(
        &self,
        kube: kube::Client,
        configure: impl FnOnce(&mut AgentConfig),
    ) -> InProcessAgent {
        let mut config = AgentConfig::new(&self.server.url(), &self.agent_token);
        configure(&mut config);
        InProcessAgent::spawn(config, kube)
    }

    /// Starts `styrmin agent` (the binary at `styrmin`) for `local`, reaching the server at
    /// `server_url`, with full reports every 2 s and `shutdown_grace` seconds to finish
    /// runs on SIGTERM. Its log goes to stderr when STYRMIN_TEST_AGENT_LOG is set.
    pub fn agent_process(&self, styrmin: &Path, server_url: &str, shutdown_grace: &str) -> Child {
        self.agent_process_with(styrmin, server_url, &["--shutdown-grace", shutdown_grace])
    }

    /// As [`LocalStack::agent_process`], with `extra` arguments instead of a grace period.
    pub fn agent_process_with(&self, styrmin: &Path, server_url: &str, extra: &[&str]) -> Child {
        Command::new(styrmin)
            .args([
                "agent",
                "--server",
                server_url,
                "--token",
                &self.agent_token,
                "--snapshot-interval",
                "2",
            ])
            .args(extra)
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("STYRMIN_TEST_AGENT_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} agent: {e}", styrmin.display()))
    }

    /// Stops the server, then the cluster.
    pub async fn stop(self) {
        self.server.stop().await.expect("the server stops");
        self.cluster.stop().await;
    }
}

/// An agent running in this process until [`InProcessAgent::stop`].
pub struct InProcessAgent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessAgent {
    pub fn spawn(config: AgentConfig, kube: kube::Client) -> InProcessAgent {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(styrmin_agent::run(config, kube, async {
            let _ = stopped.await;
        }));
        InProcessAgent { stop, task }
    }

    /// Asks the agent to stop and waits until it has; fails if it ended with an error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the agent's task")
            .expect("the agent ran without an error");
    }
}
