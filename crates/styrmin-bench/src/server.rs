//! The server's hot paths for agents: how soon a long-polling agent gets a run after it is
//! scheduled, and how fast one `reportPodStatuses` of a large cluster is taken in. Each on
//! SQLite and, when a PostgreSQL URL is given, on PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;
use styrmin_client::Client;
use styrmin_server::{RunningServer, ServerOptions, start};
use tempfile::TempDir;

use crate::report::{median, percentile};

pub(crate) const ADMIN: &str = "stm_bench-admin-token";

pub(crate) struct Bench {
    pub(crate) server: RunningServer,
    pub(crate) admin: Client,
    pub(crate) agent: Client,
    pub(crate) cluster_id: String,
    pub(crate) environment_id: String,
    _dir: TempDir,
}

/// A fresh database: a SQLite file, or a new database on the PostgreSQL server.
pub(crate) async fn database(postgres: Option<&str>, dir: &TempDir) -> Result<String> {
    match postgres {
        None => Ok(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )),
        Some(base) => {
            let mut admin = sqlx::PgConnection::connect(base)
                .await
                .with_context(|| format!("cannot connect to {base}"))?;
            let name = format!("styrmin_bench_{}", std::process::id());
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            Ok(format!(
                "{}/{name}",
                base.rsplit_once('/').context("a database URL")?.0
            ))
        }
    }
}

pub(crate) async fn data(client: &Client, query: &str, vars: Value) -> Result<Value> {
    client
        .request(query, vars)
        .await
        .map_err(|e| anyhow::anyhow!("{query}: {e}"))
}

impl Bench {
    pub(crate) async fn start(repo: &std::path::Path, postgres: Option<&str>) -> Result<Bench> {
        let dir = tempfile::tempdir()?;
        let mut options = ServerOptions::new(dir.path().to_owned());
        options.database_url = Some(database(postgres, &dir).await?);
        options.listen = ([127, 0, 0, 1], 0).into();
        options.admin_token = Some(ADMIN.into());
        let server = start(options).await?;
        let admin = Client::new(&server.url(), Some(ADMIN.into()))?;
        let v = data(
            &admin,
            "mutation { createCluster(name: \"bench\") { agentToken cluster { id } } }",
            json!({}),
        )
        .await?;
        let agent = Client::new(
            &server.url(),
            Some(
                v["createCluster"]["agentToken"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            ),
        )?;
        let cluster_id = v["createCluster"]["cluster"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let v = data(
            &admin,
            "mutation($c: ID!) { createEnvironment(name: \"prod\", clusterId: $c) { id } }",
            json!({"c": cluster_id}),
        )
        .await?;
        let environment_id = v["createEnvironment"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let driver = repo.join("drivers/examples/my-app").canonicalize()?;
        data(
            &admin,
            "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
            json!({"p": driver.display().to_string()}),
        )
        .await?;
        Ok(Bench {
            server,
            admin,
            agent,
            cluster_id,
            environment_id,
            _dir: dir,
        })
    }

    pub(crate) async fn create(&self, name: &str) -> Result<String> {
        let v = data(&self.admin, "mutation($e: ID!, $n: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $e, name: $n, parameters: {admin_email: \"a@b.c\"}) { deployment { id } } }", json!({"e": self.environment_id, "n": name})).await?;
        Ok(v["createDeployment"]["deployment"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

/// Scheduled → claimed: an agent long-polls; the bench schedules an `update` and times
/// until the agent's `claimFlowRuns` returns it. The agent completes each run and polls
/// again before the next update is sent.
pub async fn claim_latency(
    repo: &std::path::Path,
    postgres: Option<&str>,
    samples: usize,
) -> Result<Latency> {
    let bench = Bench::start(repo, postgres).await?;
    let id = bench.create("latency").await?;
    let agent = bench.agent.clone();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (got_tx, mut got_rx) = tokio::sync::mpsc::channel::<Instant>(1);
    let worker = tokio::spawn(async move {
        loop {
            if ready_tx.send(()).await.is_err() {
                return Ok::<(), anyhow::Error>(());
            }
            let v = data(
                &agent,
                "mutation { claimFlowRuns(max: 1, waitSeconds: 30, protocolVersion: \"1.0\") { id attempt } }",
                json!({}),
            )
            .await?;
            let at = Instant::now();
            let runs = v["claimFlowRuns"].as_array().cloned().unwrap_or_default();
            for run in &runs {
                data(
                    &agent,
                    "mutation($id: ID!, $a: Int!) { completeFlowRun(id: $id, attempt: $a) { id } }",
                    json!({"id": run["id"], "a": run["attempt"]}),
                )
                .await?;
            }
            if !runs.is_empty() && got_tx.send(at).await.is_err() {
                return Ok(());
            }
        }
    });
    // The create run first.
    ready_rx.recv().await;
    got_rx.recv().await.context("the create run was claimed")?;
    let mut latencies = Vec::with_capacity(samples);
    let mut mutation_times = Vec::with_capacity(samples);
    for i in 0..samples {
        ready_rx.recv().await.context("the agent stopped")?;
        let sent = Instant::now();
        data(&bench.admin, "mutation($id: ID!, $r: Int!) { updateDeployment(id: $id, parameters: {replicas: $r}) { flowRun { id } } }", json!({"id": id, "r": 3 + (i % 2)})).await?;
        mutation_times.push(sent.elapsed().as_secs_f64() * 1000.0);
        let claimed = tokio::time::timeout(Duration::from_secs(30), got_rx.recv())
            .await
            .context("a claim within 30 s")?
            .context("the agent stopped")?;
        latencies.push(claimed.duration_since(sent).as_secs_f64() * 1000.0);
    }
    drop(ready_rx);
    worker.abort();
    // The server's own view: from recording the run to leasing it (millisecond clock).
    let runs = data(
        &bench.admin,
        "query($id: ID!) { flowRuns(deployment: $id, first: 1000) { kind createdAt startedAt } }",
        json!({"id": id}),
    )
    .await?;
    let mut server_side = Vec::new();
    for run in runs["flowRuns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "update")
    {
        let at = |field: &str| -> Result<i64> {
            Ok(run[field]
                .as_str()
                .context("a time")?
                .parse::<jiff::Timestamp>()?
                .as_millisecond())
        };
        server_side.push((at("startedAt")? - at("createdAt")?) as f64);
    }
    bench.server.stop().await?;
    latencies.sort_by(f64::total_cmp);
    mutation_times.sort_by(f64::total_cmp);
    server_side.sort_by(f64::total_cmp);
    Ok(Latency {
        end_to_end: latencies,
        mutation: mutation_times,
        server_side,
    })
}

pub struct Latency {
    /// Sending the mutation → the agent's long-poll returned (ms).
    end_to_end: Vec<f64>,
    /// The mutation's round trip (ms).
    mutation: Vec<f64>,
    /// The run's `createdAt` → `startedAt`, by the server's clock (ms).
    server_side: Vec<f64>,
}

/// One `reportPodStatuses` snapshot of `pods` pods (spread over 50 deployments), timed
/// from the request to the answer, `rounds` times.
pub async fn pod_ingest(
    repo: &std::path::Path,
    postgres: Option<&str>,
    pods: usize,
    rounds: usize,
) -> Result<Vec<f64>> {
    let bench = Bench::start(repo, postgres).await?;
    let mut deployments = Vec::new();
    for i in 0..50 {
        deployments.push(bench.create(&format!("app-{i}")).await?);
    }
    let mut seconds = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let list: Vec<Value> = (0..pods)
            .map(|i| {
                json!({
                    "namespace": "styrmin-prod",
                    "name": format!("pod-{i}"),
                    "deploymentId": deployments[i % deployments.len()],
                    "component": if i % 2 == 0 { "server" } else { "postgresql" },
                    "phase": "Running",
                    "ready": (i + round) % 7 != 0,
                    "restarts": round,
                    "node": "node-1",
                    "ip": format!("10.0.{}.{}", i / 250, i % 250),
                    "containers": [{"name": "main", "ready": true, "restartCount": round}],
                    "startedAt": "2026-11-23T00:00:00Z",
                })
            })
            .collect();
        let started = Instant::now();
        let v = data(&bench.agent, "mutation($c: ID!, $p: [PodStatusInput!]!) { reportPodStatuses(clusterId: $c, pods: $p, snapshot: true) }", json!({"c": bench.cluster_id, "p": list})).await?;
        seconds.push(started.elapsed().as_secs_f64());
        if v["reportPodStatuses"].as_u64() != Some(pods as u64) {
            bail!("the server took {} of {pods} pods", v["reportPodStatuses"]);
        }
    }
    let count = data(
        &bench.admin,
        "query($c: ID!) { podStatuses(cluster: $c, first: 1000, offset: 0) { name } }",
        json!({"c": bench.cluster_id}),
    )
    .await?;
    if count["podStatuses"].as_array().map(Vec::len) != Some(pods.min(1000)) {
        bail!("the pods are not readable back");
    }
    bench.server.stop().await?;
    Ok(seconds)
}

pub async fn measure(
    repo: &std::path::Path,
    postgres: Option<&str>,
    samples: usize,
    pods: usize,
    rounds: usize,
) -> Result<String> {
    let mut rows_latency = String::new();
    let mut rows_ingest = String::new();
    let mut backends = vec![("SQLite", None)];
    if let Some(url) = postgres {
        backends.push(("PostgreSQL", Some(url)));
    }
    for (name, url) in backends {
        let l = claim_latency(repo, url, samples).await?;
        rows_latency.push_str(&format!(
            "| {name} | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            percentile(&l.server_side, 50.0),
            percentile(&l.server_side, 99.0),
            percentile(&l.end_to_end, 50.0),
            percentile(&l.end_to_end, 99.0),
            l.end_to_end[l.end_to_end.len() - 1],
            percentile(&l.mutation, 50.0),
        ));
        let mut ingest = pod_ingest(repo, url, pods, rounds).await?;
        let best = ingest.iter().copied().fold(f64::MAX, f64::min);
        let med = median(&mut ingest);
        rows_ingest.push_str(&format!(
            "| {name} | {med:.2} s | {best:.2} s | {:.0} pods/s |\n",
            pods as f64 / med
        ));
    }
    let pg_flag = if postgres.is_some() {
        " --postgres URL"
    } else {
        ""
    };
    Ok(format!(
        "## Server: claim latency and pod-status ingest\n\n\
         Command: `cargo run --release -p styrmin-bench -- server --samples {samples} --pods {pods} --rounds {rounds}{pg_flag}`\n\n\
         An in-process server (release build) and HTTP clients on loopback. **Claim latency**:\n\
         an agent holds a `claimFlowRuns` long-poll; the bench sends an `updateDeployment`\n\
         and the agent's long-poll returns the new run. Two views of the same {samples}\n\
         runs per database: the server's, from recording the run to leasing it (its\n\
         `createdAt` → `startedAt`, millisecond clock); and the client's, from sending the\n\
         mutation to the long-poll's answer — an upper bound, since it also includes\n\
         building, rendering and committing the new Instance (the mutation's own round\n\
         trip is the last column).\n\n\
         | database | recorded → leased p50 | p99 | sent → claimed p50 | p99 | max | updateDeployment round trip p50 |\n\
         |---|---|---|---|---|---|---|\n\
         {rows_latency}\n\
         Target: < 20 ms p99.\n\n\
         **`reportPodStatuses` ingest**: one snapshot report of {pods} pods (spread over 50\n\
         deployments, each pod checked to belong to the agent's cluster), upserted in\n\
         batches and the cluster's stale pods removed, request to answer; {rounds} rounds.\n\n\
         | database | median | fastest | throughput (median) |\n\
         |---|---|---|---|\n\
         {rows_ingest}"
    ))
}
