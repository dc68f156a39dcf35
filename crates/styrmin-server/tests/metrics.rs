//! `/metrics` on the server: who may scrape it (readers' tokens; not agents, not anonymous
//! callers), that it is Prometheus text format, and that the series move with the work they
//! describe — a run scheduled, claimed and completed, reports received, requests served —
//! on SQLite and PostgreSQL alike (the store's counts are one SQL query).

use serde_json::json;
use styrmin_testkit::exposition::{Exposition, parse};
use styrmin_testkit::*;

/// One scrape of `/metrics` with `token`: (status, Content-Type, body).
async fn get_metrics(h: &Harness, token: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", h.server.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn scrape(h: &Harness, token: &str) -> Exposition {
    let (status, _, body) = get_metrics(h, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    parse(&body).unwrap_or_else(|e| panic!("not the exposition format: {e}\n{body}"))
}

async fn secret(h: &Harness, name: &str, role: &str) -> String {
    ok(
        &h.admin,
        "mutation($n: String!, $r: Role!) { createToken(name: $n, role: $r) { secret } }",
        json!({"n": name, "r": role}),
    )
    .await["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Anonymous and unknown callers get 401, an agent token 403 (an agent reads only what
/// its work needs); viewer, operator and admin tokens get the Prometheus text format, in
/// which a family without samples (no flow run yet) is absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_readers_tokens_may_scrape_metrics() {
    let h = Harness::new(Kind::Sqlite).await;
    let v = ok(
        &h.admin,
        "mutation { createCluster(name: \"c1\") { agentToken } }",
        json!({}),
    )
    .await;
    let agent_token = v["createCluster"]["agentToken"].as_str().unwrap();

    let (status, _, body) = get_metrics(&h, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    assert_eq!(get_metrics(&h, Some("stm_forged")).await.0, 401);
    let (status, _, body) = get_metrics(&h, Some(agent_token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not read"), "{body}");
    assert!(!body.contains("styrmin_"), "{body}");

    let viewer = secret(&h, "prometheus", "viewer").await;
    let operator = secret(&h, "ops", "operator").await;
    for token in [viewer.as_str(), operator.as_str(), ADMIN_TOKEN] {
        let (status, content_type, body) = get_metrics(&h, Some(token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let e = parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        assert_eq!(
            e.type_of("styrmin_server_flow_run_queue_depth"),
            Some("gauge")
        );
        assert_eq!(e.type_of("styrmin_server_flow_runs"), None, "{body}");
        assert_eq!(
            e.value("styrmin_server_flow_run_queue_depth", &[("cluster", "c1")]),
            Some(0.0),
            "{body}"
        );
    }
}

async fn scenario_series_follow_a_run_its_reports_and_requests(kind: Kind) {
    let h = Harness::new(kind).await;
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let viewer = secret(&h, "prometheus", "viewer").await;
    let runs = |e: &Exposition, kind: &str, state: &str| {
        e.value(
            "styrmin_server_flow_runs",
            &[("kind", kind), ("state", state)],
        )
        .unwrap_or(0.0)
    };
    let queue = |e: &Exposition| {
        e.value("styrmin_server_flow_run_queue_depth", &[("cluster", "c1")])
            .unwrap()
    };
    let graphql_posts = |e: &Exposition| {
        e.sum(
            "styrmin_server_http_requests_total",
            &[("method", "POST"), ("route", "/graphql"), ("status", "200")],
        )
    };

    let start = scrape(&h, &viewer).await;
    assert_eq!(queue(&start), 0.0);

    let created = create_example(&h.admin, &env, "shop").await;
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    let scheduled = scrape(&h, &viewer).await;
    assert_eq!(runs(&scheduled, "create", "scheduled"), 1.0);
    assert_eq!(queue(&scheduled), 1.0, "the cluster's queue depth");
    assert!(graphql_posts(&scheduled) > graphql_posts(&start));

    // Claimed, handed back, claimed again as attempt 2: the queue wait of the first
    // attempt is measured, the second's is not.
    let first = claim(&agent, 1, 0.0).await;
    assert_eq!(first.len(), 1);
    ok(&agent, "mutation($id: ID!, $a: Int!) { releaseFlowRun(id: $id, attempt: $a, reason: \"test\") { id } }", json!({"id": first[0]["id"], "a": first[0]["attempt"]})).await;
    let claimed = claim(&agent, 1, 0.0).await;
    assert_eq!(claimed[0]["attempt"], 2);
    let running = scrape(&h, &viewer).await;
    assert_eq!(runs(&running, "create", "scheduled"), 0.0);
    assert_eq!(runs(&running, "create", "running"), 1.0);
    assert_eq!(queue(&running), 0.0);
    let claims = |e: &Exposition, result: &str| {
        e.value(
            "styrmin_server_claim_duration_seconds_count",
            &[("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(claims(&running, "runs"), claims(&scheduled, "runs") + 2.0);
    assert_eq!(
        running.value(
            "styrmin_server_flow_run_queue_wait_seconds_count",
            &[("kind", "create")]
        ),
        Some(1.0)
    );
    // An empty long-poll is filed apart from claims that leased work.
    assert!(claim(&agent, 1, 0.0).await.is_empty());
    assert_eq!(
        claims(&scrape(&h, &viewer).await, "empty"),
        claims(&running, "empty") + 1.0
    );

    complete(&agent, &claimed[0]).await;
    ok(&agent, "mutation($c: ID!, $d: ID!) { reportPodStatuses(clusterId: $c, pods: [{namespace: \"prod\", name: \"web-1\", deploymentId: $d, phase: \"Running\", ready: true}, {namespace: \"prod\", name: \"web-2\", deploymentId: $d, phase: \"Pending\", ready: false}], snapshot: true) }", json!({"c": cluster, "d": id})).await;
    ok(&agent, "mutation($c: ID!, $d: ID!) { reportDeploymentStatuses(clusterId: $c, statuses: [{deploymentId: $d, status: \"RUNNING\"}]) }", json!({"c": cluster, "d": id})).await;
    let done = scrape(&h, &viewer).await;
    assert_eq!(runs(&done, "create", "running"), 0.0);
    assert_eq!(runs(&done, "create", "completed"), 1.0);
    for (series, count, sum) in [
        ("styrmin_server_reported_pods", 1.0, 2.0),
        ("styrmin_server_reported_deployment_statuses", 1.0, 1.0),
    ] {
        assert_eq!(
            done.value(&format!("{series}_count"), &[]).unwrap()
                - running.value(&format!("{series}_count"), &[]).unwrap(),
            count,
            "{series}"
        );
        assert_eq!(
            done.value(&format!("{series}_sum"), &[]).unwrap()
                - running.value(&format!("{series}_sum"), &[]).unwrap(),
            sum,
            "{series}"
        );
    }
    // Requests are filed under their route's pattern, not their URL; a URL that matches
    // no route adds nothing.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/deployments/{id}", h.server.url()))
        .send()
        .await
        .unwrap();
    let page_status = page.status().as_u16().to_string();
    let missing = http
        .get(format!("{}/no-such-page", h.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let done = scrape(&h, &viewer).await;
    assert_eq!(
        done.sum(
            "styrmin_server_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/deployments/{id}"),
                ("status", &page_status)
            ]
        ),
        1.0
    );
    assert!(
        done.series("styrmin_server_http_requests_total")
            .iter()
            .all(|l| !l["route"].contains("no-such") && !l["route"].contains(&id)),
        "no series for a URL"
    );
    // Scrapes are requests too.
    assert!(
        done.sum(
            "styrmin_server_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ) >= 4.0
    );
    assert!(
        done.series("styrmin_server_http_requests_total")
            .iter()
            .all(|l| !l["route"].is_empty()),
        "every request carries its route"
    );
}

on_both_databases!(scenario_series_follow_a_run_its_reports_and_requests);

/// The tests' reader takes escaped label values, histograms and timestamps, and refuses a
/// sample of an undeclared family, a repeated series and an unquoted label value.
#[test]
fn the_exposition_reader_refuses_what_prometheus_would() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"uote\\\\d\\n\",y=\"\"} 3 1700000000000\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n";
    let e = parse(text).unwrap();
    assert_eq!(
        e.value("a_total", &[("x", "q\"uote\\d\n"), ("y", "")]),
        Some(3.0)
    );
    assert_eq!(e.value("h_bucket", &[("le", "+Inf")]), Some(2.0));
    assert_eq!(e.sum("h_sum", &[]), 1.5);
    assert_eq!(e.type_of("h"), Some("histogram"));
    assert!(parse("b 1\n").unwrap_err().contains("no # TYPE"));
    assert!(
        parse("# TYPE b gauge\nb 1\nb 2\n")
            .unwrap_err()
            .contains("twice")
    );
    assert!(
        parse("# TYPE b gauge\nb{x=1} 2\n")
            .unwrap_err()
            .contains("quoted")
    );
}
