//! Fault tests on the agent process in the middle of a flow run, against server + local
//! cluster:
//! - SIGKILL during a Python action: its lease runs out, the server schedules the run
//!   again as attempt 2, a new agent process runs it to completion, and nothing was
//!   applied twice (Helm ran once);
//! - SIGTERM: the agent hands the run back at once (no lease left to expire) and exits;
//!   the next agent runs attempt 2 to completion;
//! - the agent↔server link cut (a proxy in between): what changes in the cluster meanwhile
//!   reaches the server once the link returns.

use std::path::Path;
use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_server::Settings;
use styrmin_testkit::cluster::{LocalStack, helm_releases};
use styrmin_testkit::{ok, wait_until};
use tokio::process::Child;

/// A TCP proxy to `target` that can be cut (live connections dropped, new ones refused
/// while cut) and restored.
struct Proxy {
    url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // refused: dropped at once
                }
                let mut cut_now = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_now.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { url, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

async fn run_state(admin: &Client, id: &str) -> Value {
    ok(admin, "query($id: ID!) { deployment(id: $id) { flowRuns { id state attempt logs { message } } status { status } } }", json!({"id": id})).await["deployment"].clone()
}

/// The local stack with flow-run leases of `lease`.
async fn setup(lease: Duration) -> LocalStack {
    let settings = Settings {
        lease,
        ..Settings::default()
    };
    LocalStack::start(settings, json!({})).await
}

/// `styrmin agent` for the stack's cluster, through `server_url`.
fn agent_via(stack: &LocalStack, server_url: &str, shutdown_grace: &str) -> Child {
    stack.agent_process(
        Path::new(env!("CARGO_BIN_EXE_styrmin")),
        server_url,
        shutdown_grace,
    )
}

/// `styrmin agent` for the stack's cluster.
fn agent(stack: &LocalStack, shutdown_grace: &str) -> Child {
    agent_via(stack, &stack.server.url(), shutdown_grace)
}

async fn create_shop(stack: &LocalStack) -> String {
    let created = ok(&stack.admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({})).await;
    created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the run's log has a line with `marker`.
async fn until_logged(stack: &LocalStack, id: &str, marker: &str) {
    wait_until(
        &format!("a log line with {marker:?}"),
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let d = run_state(&stack.admin, id).await;
            if d.to_string().contains(marker) {
                Ok(())
            } else {
                Err(d)
            }
        },
    )
    .await;
}

async fn until_converged(stack: &LocalStack, id: &str) -> Value {
    wait_until(
        "the run to converge after the restart",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            let d = run_state(&stack.admin, id).await;
            if d["flowRuns"][0]["state"] == "completed" && d["status"]["status"] == "RUNNING" {
                Ok(d)
            } else {
                Err(d)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_s_run_is_retried_under_a_new_attempt_and_converges() {
    let setup = setup(Duration::from_secs(2)).await;
    let mut first = agent(&setup, "20");
    let id = create_shop(&setup).await;
    // Killed while the setup hook's Python action runs.
    until_logged(
        &setup,
        &id,
        "action check_database_settings (setup/pre) started",
    )
    .await;
    first.kill().await.expect("SIGKILL");
    let _ = first.wait().await;

    let mut second = agent(&setup, "20");
    let d = until_converged(&setup, &id).await;
    let run = &d["flowRuns"][0];
    assert_eq!(run["attempt"], 2, "{d}");
    assert!(
        run.to_string().contains("lease of attempt 1 expired"),
        "{run}"
    );

    // Helm ran once: the re-applied spec was the same, so the release was not upgraded.
    let releases = helm_releases(&setup.cluster.client(), "styrmin-dev");
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
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_agent_hands_its_run_back_and_the_next_agent_finishes_it() {
    // A lease far longer than the test: only the hand-back can free the run.
    let setup = setup(Duration::from_secs(600)).await;
    let mut first = agent(&setup, "0");
    let id = create_shop(&setup).await;
    // Terminated while it waits for the operator's verdict.
    until_logged(&setup, &id, "StyrminDeployment styrmin-dev/shop applied").await;
    let pid = first.id().expect("the agent runs") as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exited = tokio::time::timeout(Duration::from_secs(30), first.wait())
        .await
        .expect("the agent exits within 30 s of SIGTERM")
        .unwrap();
    assert!(exited.success(), "{exited:?}");

    let d = run_state(&setup.admin, &id).await;
    let run = &d["flowRuns"][0];
    assert_eq!(run["state"], "scheduled", "handed back at once: {d}");
    assert_eq!(run["attempt"], 2, "{d}");
    assert!(
        run.to_string()
            .contains("attempt 1 handed back by the agent (agent shutting down)"),
        "{run}"
    );

    let mut second = agent(&setup, "20");
    let d = until_converged(&setup, &id).await;
    assert_eq!(d["flowRuns"][0]["attempt"], 2, "{d}");
    second.kill().await.ok();
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_link_is_cut_reach_the_server_when_it_returns() {
    let setup = setup(Duration::from_secs(600)).await;
    let proxy = Proxy::start(setup.server.addr).await;
    let mut agent = agent_via(&setup, &proxy.url, "20");
    let id = create_shop(&setup).await;
    until_converged(&setup, &id).await;
    let pods_seen = async || -> Vec<String> {
        let v = ok(
            &setup.admin,
            "query($id: ID!) { deployment(id: $id) { pods { name component ready } } }",
            json!({"id": id}),
        )
        .await;
        v["deployment"]["pods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["component"] == "server" && p["ready"] == true)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = pods_seen().await;
    assert_eq!(before.len(), 1, "{before:?}");

    // Cut the link, then replace the server pod: its ReplicaSet makes a new one.
    proxy.set_cut(true);
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(setup.cluster.client(), "styrmin-dev");
    pods.delete(&before[0], &Default::default()).await.unwrap();
    let replacement = wait_until(
        "a ready replacement pod",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let list = pods
                .list(
                    &kube::api::ListParams::default().labels("app.kubernetes.io/component=server"),
                )
                .await
                .unwrap();
            list.items
                .iter()
                .find(|p| {
                    p.metadata.name.as_deref() != Some(before[0].as_str())
                        && p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                })
                .map(|pod| pod.metadata.name.clone().unwrap())
                .ok_or("none yet")
        },
    )
    .await;
    assert_eq!(pods_seen().await, before, "the server cannot know yet");

    // The link returns: the reporter's latest state arrives without any new change.
    proxy.set_cut(false);
    wait_until(
        &format!("the server to show {replacement}"),
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let seen = pods_seen().await;
            if seen == [replacement.clone()] {
                Ok(())
            } else {
                Err(format!("it shows {seen:?}"))
            }
        },
    )
    .await;
    agent.kill().await.ok();
    setup.stop().await;
}
