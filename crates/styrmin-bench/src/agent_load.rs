//! The server under its agents' load: many agents, each reporting a snapshot of its
//! cluster's pods and deployment statuses every few seconds, while a user loads the UI
//! overview and the GraphQL `deployments` query. On SQLite, on PostgreSQL, and with two
//! server processes sharing one PostgreSQL database.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_server::{RunningServer, ServerOptions, start};

use crate::report::percentile;
use crate::server::{ADMIN, data, database};

#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub agents: usize,
    pub pods: usize,
    pub deployments_per_agent: usize,
    pub every: Duration,
    pub seconds: u64,
}

struct Agent {
    client_per_server: Vec<Client>,
    cluster_id: String,
    deployments: Vec<String>,
}

/// Latencies of one run, in milliseconds.
struct Run {
    overview: Vec<f64>,
    query: Vec<f64>,
    report: Vec<f64>,
    reports: usize,
}

async fn setup(
    servers: &[RunningServer],
    repo: &std::path::Path,
    args: &LoadArgs,
) -> Result<Vec<Agent>> {
    let admin = Client::new(&servers[0].url(), Some(ADMIN.into()))?;
    let driver = repo.join("drivers/examples/my-app").canonicalize()?;
    data(
        &admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.display().to_string()}),
    )
    .await?;
    let mut agents = Vec::new();
    for a in 0..args.agents {
        let v = data(
            &admin,
            "mutation($n: String!) { createCluster(name: $n) { agentToken cluster { id } } }",
            json!({"n": format!("c{a}")}),
        )
        .await?;
        let token = v["createCluster"]["agentToken"]
            .as_str()
            .context("token")?
            .to_owned();
        let cluster_id = v["createCluster"]["cluster"]["id"]
            .as_str()
            .context("id")?
            .to_owned();
        let v = data(
            &admin,
            "mutation($c: ID!) { createEnvironment(name: \"prod\", clusterId: $c) { id } }",
            json!({"c": cluster_id}),
        )
        .await?;
        let environment = v["createEnvironment"]["id"]
            .as_str()
            .context("id")?
            .to_owned();
        let deployments: Vec<String> = futures::stream::iter(0..args.deployments_per_agent)
            .map(|d| {
                let admin = admin.clone();
                let environment = environment.clone();
                async move {
                    let v = data(&admin, "mutation($e: ID!, $n: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $e, name: $n, parameters: {admin_email: \"a@b.c\"}) { deployment { id } } }", json!({"e": environment, "n": format!("app-{d}")})).await?;
                    Ok::<_, anyhow::Error>(v["createDeployment"]["deployment"]["id"].as_str().context("id")?.to_owned())
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let client_per_server = servers
            .iter()
            .map(|s| Client::new(&s.url(), Some(token.clone())))
            .collect::<Result<_, _>>()?;
        agents.push(Agent {
            client_per_server,
            cluster_id,
            deployments,
        });
    }
    Ok(agents)
}

/// One agent's snapshot: its pods (spread over its deployments) and their statuses.
async fn report(agent: &Agent, server: usize, pods: usize, round: usize) -> Result<()> {
    let client = &agent.client_per_server[server % agent.client_per_server.len()];
    let list: Vec<Value> = (0..pods)
        .map(|i| {
            json!({
                "namespace": "styrmin-prod",
                "name": format!("pod-{i}"),
                "deploymentId": agent.deployments[i % agent.deployments.len()],
                "component": if i % 2 == 0 { "server" } else { "postgresql" },
                "phase": "Running",
                "ready": !(i + round).is_multiple_of(11),
                "restarts": 0,
                "node": "node-1",
                "containers": [{"name": "main", "ready": true, "restartCount": 0}],
            })
        })
        .collect();
    data(client, "mutation($c: ID!, $p: [PodStatusInput!]!) { reportPodStatuses(clusterId: $c, pods: $p, snapshot: true) }", json!({"c": agent.cluster_id, "p": list})).await?;
    let statuses: Vec<Value> = agent
        .deployments
        .iter()
        .map(|id| json!({"deploymentId": id, "status": if round.is_multiple_of(2) { "RUNNING" } else { "DEGRADED" }, "components": {}}))
        .collect();
    data(client, "mutation($c: ID!, $s: [DeploymentStatusInput!]!) { reportDeploymentStatuses(clusterId: $c, statuses: $s) }", json!({"c": agent.cluster_id, "s": statuses})).await?;
    Ok(())
}

async fn run(servers: &[RunningServer], agents: Vec<Agent>, args: &LoadArgs) -> Result<Run> {
    let agents = std::sync::Arc::new(agents);
    let stop = Instant::now() + Duration::from_secs(args.seconds);
    let mut reporters = Vec::new();
    for a in 0..agents.len() {
        let agents = agents.clone();
        let args = args.clone();
        reporters.push(tokio::spawn(async move {
            // Spread over the period, as agents started at different times are.
            tokio::time::sleep(args.every.mul_f64(a as f64 / args.agents as f64)).await; // staggered start
            let mut tick = tokio::time::interval(args.every);
            let mut times = Vec::new();
            let mut round = 0;
            while Instant::now() < stop {
                tick.tick().await;
                let sent = Instant::now();
                report(&agents[a], a + round, args.pods, round).await?;
                times.push(sent.elapsed().as_secs_f64() * 1000.0);
                round += 1;
            }
            Ok::<_, anyhow::Error>(times)
        }));
    }
    let http = reqwest::Client::new();
    let mut overview = Vec::new();
    let mut query = Vec::new();
    let mut turn = 0usize;
    while Instant::now() < stop {
        let base = servers[turn % servers.len()].url();
        turn += 1;
        let sent = Instant::now();
        let response = http
            .get(format!("{base}/"))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("GET / on {base}: {status}");
        }
        overview.push(sent.elapsed().as_secs_f64() * 1000.0);
        let admin = Client::new(&base, Some(ADMIN.into()))?;
        let sent = Instant::now();
        data(&admin, "{ deployments(first: 100) { id name status { status reportedAt } pods { name ready } } }", json!({})).await?;
        query.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await; // a user's pace between loads
    }
    let mut report_times = Vec::new();
    for reporter in reporters {
        report_times.extend(reporter.await??);
    }
    overview.sort_by(f64::total_cmp);
    query.sort_by(f64::total_cmp);
    report_times.sort_by(f64::total_cmp);
    Ok(Run {
        overview,
        query,
        reports: report_times.len(),
        report: report_times,
    })
}

async fn start_servers(
    postgres: Option<&str>,
    count: usize,
    dir: &tempfile::TempDir,
) -> Result<Vec<RunningServer>> {
    let url = database(postgres, dir).await?;
    let mut servers = Vec::new();
    for i in 0..count {
        let mut options = ServerOptions::new(dir.path().join(format!("server-{i}")));
        options.database_url = Some(url.clone());
        options.listen = ([127, 0, 0, 1], 0).into();
        options.admin_token = Some(ADMIN.into());
        // Both servers must open the same secrets: the second reads the first's key file.
        options.secret_key = Some("bench-agent-load-secret-key-0123456789".into());
        servers.push(start(options).await?);
    }
    Ok(servers)
}

pub async fn measure(
    repo: &std::path::Path,
    postgres: Option<&str>,
    args: LoadArgs,
) -> Result<String> {
    let mut setups: Vec<(&str, Option<&str>, usize)> = vec![("SQLite", None, 1)];
    if let Some(url) = postgres {
        setups.push(("PostgreSQL", Some(url), 1));
        setups.push(("PostgreSQL, two servers", Some(url), 2));
    }
    let mut rows = String::new();
    for (name, url, count) in setups {
        let dir = tempfile::tempdir()?;
        let servers = start_servers(url, count, &dir).await?;
        let agents = setup(&servers, repo, &args).await?;
        let result = run(&servers, agents, &args).await?;
        for server in servers {
            server.stop().await?;
        }
        let p = |v: &[f64], q: f64| {
            if v.is_empty() {
                f64::NAN
            } else {
                percentile(v, q)
            }
        };
        rows.push_str(&format!(
            "| {name} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} |\n",
            p(&result.overview, 50.0),
            p(&result.overview, 99.0),
            p(&result.query, 50.0),
            p(&result.query, 99.0),
            p(&result.report, 50.0),
            p(&result.report, 99.0),
            result.reports as f64 / args.seconds.max(1) as f64,
        ));
    }
    let command = format!(
        "cargo run --release -p styrmin-bench -- agent-load --agents {} --pods {} --deployments-per-agent {} --every-seconds {} --seconds {}{}",
        args.agents,
        args.pods,
        args.deployments_per_agent,
        args.every.as_secs(),
        args.seconds,
        if postgres.is_some() {
            " --postgres URL"
        } else {
            ""
        }
    );
    Ok(format!(
        "## Server under agent load: {} agents × {} pods every {} s\n\n\
         Command: `{command}`\n\n\
         In-process servers (release build) on loopback. {} clusters, each with {} deployments \
         of the example driver; each cluster's agent sends a snapshot of its {} pods \
         (`reportPodStatuses`) and its deployments' statuses (`reportDeploymentStatuses`) \
         every {} s, the agents spread over the period. Meanwhile a user loads the UI overview \
         (`GET /`) and the GraphQL `deployments(first: 100)` query with statuses and pods, one \
         after the other with 100 ms between, for {} s. With two servers, agents and the user \
         alternate between them.\n\n\
         | database | overview p50 / p99 | `deployments` query p50 / p99 | agent report p50 / p99 | reports per second |\n\
         |---|---|---|---|---|\n\
         {rows}",
        args.agents,
        args.pods,
        args.every.as_secs(),
        args.agents,
        args.deployments_per_agent,
        args.pods,
        args.every.as_secs(),
        args.seconds,
    ))
}
