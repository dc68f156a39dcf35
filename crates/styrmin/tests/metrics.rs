//! `/metrics` of a real server and a real `styrmin agent --metrics-listen` process against a
//! local cluster: a deployment created and brought to RUNNING moves the series that describe
//! it, read from both scrapes with a strict reader of the exposition format.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use styrmin_server::Settings;
use styrmin_testkit::cluster::LocalStack;
use styrmin_testkit::exposition::{Exposition, parse};
use styrmin_testkit::{ADMIN_TOKEN as ADMIN, ok as call};

/// GET `url`: (status, body), or `None` while nothing listens there.
async fn get(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn scrape(url: &str, token: Option<&str>) -> Exposition {
    let (status, body) = get(url, token)
        .await
        .unwrap_or_else(|| panic!("{url} does not answer"));
    assert_eq!(status, 200, "{url}: {body}");
    parse(&body).unwrap_or_else(|e| panic!("{url} is not the exposition format: {e}\n{body}"))
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval within a deadline
    }
}

/// Before and after a deployment of the example driver reaches RUNNING: on the server, one
/// more `create` run completed and more pod and status reports received; on the agent,
/// reconciles of StyrminDeployments, one more `create` run succeeded, a claim that leased
/// work, snapshots reported, and nothing left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_brought_to_running_moves_server_and_agent_series() {
    let setup = LocalStack::start(
        Settings {
            lease: Duration::from_secs(30),
            ..Settings::default()
        },
        json!({}),
    )
    .await;
    let agent_metrics = format!("127.0.0.1:{}", styrmin_testkit::free_port());
    let mut agent = setup.agent_process_with(
        Path::new(env!("CARGO_BIN_EXE_styrmin")),
        &setup.server.url(),
        &["--metrics-listen", &agent_metrics],
    );
    let agent_url = format!("http://{agent_metrics}");
    until(
        "the agent's /healthz",
        Duration::from_secs(30),
        async || get(&format!("{agent_url}/healthz"), None).await == Some((200, "ok".into())),
    )
    .await;
    let server_url = format!("{}/metrics", setup.server.url());
    let agent_url = format!("{agent_url}/metrics");
    let server_before = scrape(&server_url, Some(ADMIN)).await;
    let agent_before = scrape(&agent_url, None).await;

    let created = call(&setup.admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({})).await;
    let id = created["createDeployment"]["deployment"]["id"].clone();
    let started = Instant::now();
    until(
        "the deployment to be RUNNING",
        Duration::from_secs(120),
        async || {
            let v = call(
                &setup.admin,
                "query($id: ID!) { deployment(id: $id) { flowRuns { state } status { status } } }",
                json!({"id": id}),
            )
            .await;
            v["deployment"]["flowRuns"][0]["state"] == "completed"
                && v["deployment"]["status"]["status"] == "RUNNING"
        },
    )
    .await;
    eprintln!("created → RUNNING in {:?}", started.elapsed());

    let server_after = scrape(&server_url, Some(ADMIN)).await;
    let agent_after = scrape(&agent_url, None).await;
    let moved = |before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]| {
        after.sum(name, labels) - before.sum(name, labels)
    };

    // The server.
    let runs = "styrmin_server_flow_runs";
    let completed_create = [("kind", "create"), ("state", "completed")];
    assert_eq!(
        moved(&server_before, &server_after, runs, &completed_create),
        1.0
    );
    assert_eq!(server_after.value(runs, &completed_create), Some(1.0));
    assert_eq!(
        server_after.value(
            "styrmin_server_flow_run_queue_depth",
            &[("cluster", "local")]
        ),
        Some(0.0)
    );
    for series in [
        "styrmin_server_reported_pods_count",
        "styrmin_server_reported_deployment_statuses_count",
    ] {
        assert!(
            moved(&server_before, &server_after, series, &[]) >= 1.0,
            "{series} did not grow"
        );
    }
    assert!(
        moved(
            &server_before,
            &server_after,
            "styrmin_server_claim_duration_seconds_count",
            &[("result", "runs")]
        ) >= 1.0
    );

    // The agent.
    let kind = [("kind", "StyrminDeployment")];
    assert!(
        agent_after
            .value("styrmin_agent_reconciles_total", &kind)
            .is_some_and(|n| n > 0.0),
        "no reconcile counted"
    );
    assert_eq!(
        agent_after.value("styrmin_agent_reconcile_duration_seconds_count", &kind),
        agent_after.value("styrmin_agent_reconciles_total", &kind),
        "every reconcile is timed"
    );
    assert_eq!(
        moved(
            &agent_before,
            &agent_after,
            "styrmin_agent_flow_runs_total",
            &[("kind", "create"), ("outcome", "succeeded")]
        ),
        1.0
    );
    assert!(
        moved(
            &agent_before,
            &agent_after,
            "styrmin_agent_claim_duration_seconds_count",
            &[("result", "runs")]
        ) >= 1.0
    );
    assert!(
        moved(
            &agent_before,
            &agent_after,
            "styrmin_agent_reported_pods_count",
            &[]
        ) >= 1.0
    );
    assert_eq!(
        agent_after.value("styrmin_agent_flow_runs_in_flight", &[]),
        Some(0.0)
    );

    agent.kill().await.ok();
    setup.stop().await;
}
