//! The web UI's pages with many deployments: each page fetched over HTTP with a bearer
//! token, `rounds` times, against a server holding `deployments` deployments that the
//! agent has reported RUNNING with two pods each. Loopback request to last byte: the
//! server's rendering plus a little HTTP.

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::report::{median, percentile};
use crate::server::{ADMIN, Bench, data};

/// The target of ARCHITECTURE.md / the UI issue for every page.
const TARGET_MS: f64 = 50.0;

pub async fn measure(
    repo: &std::path::Path,
    postgres: Option<&str>,
    deployments: usize,
    rounds: usize,
) -> Result<String> {
    let bench = Bench::start(repo, postgres).await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(deployments);
    for i in 0..deployments {
        ids.push(bench.create(&format!("app-{i:04}")).await?);
    }
    let setup_s = started.elapsed().as_secs_f64();
    report_running(&bench, &ids).await?;
    let one = &ids[ids.len() / 2];
    // A second Instance for the diff page.
    data(&bench.admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {replicas: 3}) { flowRun { id } } }", json!({"id": one})).await?;
    let detail = data(
        &bench.admin,
        "query($id: ID!) { deployment(id: $id) { instances { id } flowRuns { id } } }",
        json!({"id": one}),
    )
    .await?;
    let instance = |i: usize| {
        detail["deployment"]["instances"][i]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let run = detail["deployment"]["flowRuns"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pages = [
        ("overview", "/".to_owned()),
        (
            "overview, last page",
            format!("/?offset={}", (deployments / 100).saturating_sub(1) * 100),
        ),
        ("cluster", format!("/clusters/{}", bench.cluster_id)),
        (
            "environment",
            format!("/environments/{}", bench.environment_id),
        ),
        ("deployment", format!("/deployments/{one}")),
        (
            "values diff",
            format!(
                "/deployments/{one}/diff?from={}&to={}",
                instance(1),
                instance(0)
            ),
        ),
        ("update form", format!("/deployments/{one}/edit")),
        ("upgrade form", format!("/deployments/{one}/upgrade")),
        (
            "create form",
            format!(
                "/deployments/new?driver=my-app&environment={}",
                bench.environment_id
            ),
        ),
        ("drivers", "/drivers".to_owned()),
        ("driver", "/drivers/my-app".to_owned()),
        ("flow runs", "/runs".to_owned()),
        ("flow run", format!("/runs/{run}")),
        ("backups", "/backups".to_owned()),
    ];
    let http = reqwest::Client::new();
    let base = bench.server.url();
    let mut rows = String::new();
    let mut slowest = (0.0_f64, "");
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let sent = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .with_context(|| format!("GET {path}"))?;
            let status = response.status();
            let body = response.bytes().await?;
            times.push(sent.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
            }
            bytes = body.len();
        }
        let p50 = median(&mut times);
        let p95 = percentile(&times, 95.0);
        if p50 > slowest.0 {
            slowest = (p50, name);
        }
        let verdict = if p95 < TARGET_MS { "yes" } else { "**no**" };
        rows.push_str(&format!(
            "| {name} | `{path}` | {p50:.1} | {p95:.1} | {} | {verdict} |\n",
            bytes / 1024
        ));
    }
    let database = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let command = format!(
        "cargo run --release -p styrmin-bench -- ui --deployments {deployments} --rounds {rounds}{}",
        if postgres.is_some() {
            " --postgres URL"
        } else {
            ""
        }
    );
    Ok(format!(
        "## Web UI: pages with {deployments} deployments\n\n\
         `{command}`\n\n\
         {deployments} deployments of the example driver in one environment ({database}), each \
         reported RUNNING with two pods by the agent API; every page fetched {rounds} times \
         with a bearer token over loopback, request to last byte. Target: every page under \
         {TARGET_MS:.0} ms. Lists show 100 rows a page; the counts by status cover every \
         deployment. Setting up the {deployments} deployments through the API took \
         {setup_s:.1} s.\n\n\
         | page | path | median ms | p95 ms | KiB | p95 < {TARGET_MS:.0} ms |\n\
         |---|---|---|---|---|---|\n\
         {rows}\n\
         Slowest median: {} ({:.1} ms).\n",
        slowest.1, slowest.0
    ))
}

/// The agent's reports: every deployment RUNNING with a server and a database pod.
async fn report_running(bench: &Bench, ids: &[String]) -> Result<()> {
    for chunk in ids.chunks(200) {
        let statuses: Vec<Value> = chunk
            .iter()
            .map(|id| {
                json!({"deploymentId": id, "status": "RUNNING", "message": "every component is ready",
                       "components": {"server": {"ready": 2, "desired": 2}, "postgresql": {"ready": 1, "desired": 1}},
                       "urls": [format!("https://{id}.apps.example.test")]})
            })
            .collect();
        data(&bench.agent, "mutation($c: ID!, $s: [DeploymentStatusInput!]!) { reportDeploymentStatuses(clusterId: $c, statuses: $s) }", json!({"c": bench.cluster_id, "s": statuses})).await?;
    }
    let pods: Vec<Value> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| {
            ["server", "postgresql"].map(|component| {
                json!({"namespace": "styrmin-prod", "name": format!("app-{i:04}-{component}-0"),
                       "deploymentId": id, "component": component, "phase": "Running",
                       "ready": true, "node": "node-1"})
            })
        })
        .collect();
    data(&bench.agent, "mutation($c: ID!, $p: [PodStatusInput!]!) { reportPodStatuses(clusterId: $c, pods: $p, snapshot: true) }", json!({"c": bench.cluster_id, "p": pods})).await?;
    Ok(())
}
