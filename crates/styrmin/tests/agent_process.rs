//! Fault test: the agent process is killed (SIGKILL) in the middle of a flow run. Its lease
//! runs out, the server schedules the run again as attempt 2, a new agent process runs it
//! to completion, and nothing was applied twice (Helm ran once).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_localkube::{LocalCluster, Options};
use styrmin_server::server::{ServerOptions, start};
use styrmin_server::state::Settings;
use tokio::process::{Child, Command};

const ADMIN: &str = "stm_fault-admin";

async fn call(client: &Client, query: &str, vars: Value) -> Value {
    client
        .request(query, vars)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn agent(server: &str, token: &str, kubeconfig: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_styrmin"))
        .args([
            "agent",
            "--server",
            server,
            "--token",
            token,
            "--snapshot-interval",
            "2",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("styrmin agent starts")
}

async fn run_state(admin: &Client, id: &str) -> Value {
    call(admin, "query($id: ID!) { deployment(id: $id) { flowRuns { id state attempt logs { message } } status { status } } }", json!({"id": id})).await["deployment"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_s_run_is_retried_under_a_new_attempt_and_converges() {
    let cluster = LocalCluster::start(Options::default())
        .await
        .expect("the local cluster starts");
    let data = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(data.path().to_owned());
    options.listen = ([127, 0, 0, 1], 0).into();
    options.admin_token = Some(ADMIN.into());
    options.settings = Settings {
        lease: Duration::from_secs(2),
        ..Settings::default()
    };
    let server = start(options).await.expect("the server starts");
    let admin = Client::new(&server.url(), Some(ADMIN.into())).unwrap();
    let v = call(
        &admin,
        "mutation { createCluster(name: \"local\") { agentToken } }",
        json!({}),
    )
    .await;
    let token = v["createCluster"]["agentToken"]
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

    let mut first = agent(&server.url(), &token, cluster.kubeconfig());
    let created = call(&admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({})).await;
    let id = created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Kill it once it has applied the StyrminDeployment and is waiting for the result.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = run_state(&admin, &id).await;
        if d.to_string()
            .contains("StyrminDeployment styrmin-dev/shop applied")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first agent never applied: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval within a deadline
    }
    first.kill().await.expect("SIGKILL");
    let _ = first.wait().await;

    let mut second = agent(&server.url(), &token, cluster.kubeconfig());
    let deadline = Instant::now() + Duration::from_secs(120);
    let d = loop {
        let d = run_state(&admin, &id).await;
        if d["flowRuns"][0]["state"] == "completed" && d["status"]["status"] == "RUNNING" {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not converge after the restart: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval within a deadline
    };
    let run = &d["flowRuns"][0];
    assert_eq!(run["attempt"], 2, "{d}");
    assert!(
        run.to_string().contains("lease of attempt 1 expired"),
        "{run}"
    );

    // Helm ran once: the re-applied spec was the same, so the release was not upgraded.
    let releases: Api<DynamicObject> = Api::namespaced_with(
        cluster.client(),
        "styrmin-dev",
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        )),
    );
    let release = releases.get("shop").await.unwrap();
    assert_eq!(
        release.metadata.generation,
        Some(1),
        "the HelmRelease was written once"
    );
    assert_eq!(
        release.data["status"]["history"].as_array().map(Vec::len),
        Some(1),
        "{}",
        release.data["status"]
    );

    second.kill().await.ok();
    server.stop().await.unwrap();
    cluster.stop().await;
}
