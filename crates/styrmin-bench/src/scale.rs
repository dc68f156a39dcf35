//! `scale`: many deployments across environments (and clusters), created, then all changed
//! at once, with the server and each agent as their own `styrmin` processes so that each
//! one's memory and CPU are its own. Measures convergence, intent → applied, pod ready →
//! visible, peak RSS, the agent's API-server requests, and the idle cost afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_core::crd::StyrminDeployment;
use styrmin_localkube::LocalCluster;
use styrmin_localkube::flux::ReleaseMode;

use crate::report::percentile;

const ADMIN: &str = "stm_bench-scale-admin-token";
/// Requests the bench keeps in flight while creating or changing deployments.
const CONCURRENT_REQUESTS: usize = 8;
/// How often the bench samples the API for pods shown ready.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ScaleArgs {
    pub deployments: usize,
    pub environments: usize,
    pub clusters: usize,
    /// The Flux stand-in's scale mode: `helm template` and apply, no `helm --wait`.
    pub no_helm: bool,
    pub idle_seconds: u64,
    pub timeout: Duration,
    /// A PostgreSQL URL for the server (a database the bench may use); SQLite without.
    pub postgres: Option<String>,
    /// The `styrmin` binary; by default the one beside this bench's own binary.
    pub styrmin: Option<PathBuf>,
}

/// What one run measured.
pub struct Figures {
    pub line: String,
    pub markdown: String,
}

/// A child process killed when dropped.
struct Child {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Child {
    fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited; see {}", self.name, self.log.display()))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn styrmin_binary(args: &ScaleArgs) -> Result<PathBuf> {
    let path = match &args.styrmin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("styrmin"),
    };
    if !path.is_file() {
        bail!(
            "no styrmin binary at {}: build it first (`cargo build --release -p styrmin`) or name it with --styrmin",
            path.display()
        );
    }
    Ok(path)
}

fn spawn(
    name: &str,
    binary: &Path,
    args: &[String],
    env: &[(&str, &str)],
    dir: &Path,
) -> Result<Child> {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Child {
        name: name.to_owned(),
        child,
        log,
    })
}

/// `(peak RSS in MiB, CPU seconds)` of a process, from /proc.
fn usage(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((peak_kib / 1024.0, ticks / per_second.max(1.0)))
}

/// The agent's API-server requests so far (`styrmin_agent_kube_requests_total`).
async fn kube_requests(metrics: &str) -> Result<f64> {
    let body = reqwest::get(format!("http://{metrics}/metrics"))
        .await?
        .text()
        .await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("styrmin_agent_kube_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn call(admin: &Client, query: &str, variables: Value) -> Result<Value> {
    admin
        .request(query, variables)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", query.chars().take(60).collect::<String>()))
}

/// A TCP port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every page of a list field (`$offset`, plus `variables`).
async fn all_pages(
    admin: &Client,
    query: &str,
    field: &str,
    variables: Value,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    for offset in (0..).step_by(1000) {
        let mut variables = variables.clone();
        variables["offset"] = json!(offset);
        let page = call(admin, query, variables).await?;
        let got = page[field].as_array().cloned().unwrap_or_default();
        let done = got.len() < 1000;
        items.extend(got);
        if done {
            break;
        }
    }
    Ok(items)
}

/// Deployments whose agent reports the Instance the server wants, RUNNING.
async fn converged(admin: &Client, wanted: &HashMap<String, String>) -> Result<usize> {
    let list = all_pages(
        admin,
        "query($offset: Int) { deployments(first: 1000, offset: $offset) { id status { status instanceId } } }",
        "deployments",
        json!({}),
    )
    .await?;
    Ok(list
        .iter()
        .filter(|d| {
            let id = d["id"].as_str().unwrap_or_default();
            d["status"]["status"] == "RUNNING"
                && wanted.get(id).map(String::as_str) == d["status"]["instanceId"].as_str()
        })
        .count())
}

/// Watches of the bench's own: when each StyrminDeployment generation is applied (by
/// deployment id and generation) and when each pod turned ready.
struct Watches {
    applied: Arc<Mutex<HashMap<(String, i64), Instant>>>,
    ready: Arc<Mutex<HashMap<String, Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn watch(clusters: &[LocalCluster]) -> Result<Watches> {
    let applied: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let kube = cluster.client();
        styrmin_agent::ensure_crd(&kube).await?;
        let sds = watcher(
            Api::<StyrminDeployment>::all(kube.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects();
        let seen = applied.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(sds);
            while let Some(Ok(sd)) = stream.next().await {
                let key = (
                    sd.spec.deployment_id.clone(),
                    sd.metadata.generation.unwrap_or(0),
                );
                seen.lock().unwrap().entry(key).or_insert_with(Instant::now);
            }
        }));
        let pods = watcher(Api::<Pod>::all(kube), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let seen = ready.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(pods);
            while let Some(Ok(pod)) = stream.next().await {
                let is_ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if is_ready {
                    let key = format!(
                        "c{i}/{}/{}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    );
                    seen.lock().unwrap().entry(key).or_insert_with(Instant::now);
                }
            }
        }));
    }
    Ok(Watches {
        applied,
        ready,
        tasks,
    })
}

pub async fn measure(repo: &Path, args: ScaleArgs) -> Result<Figures> {
    anyhow::ensure!(args.deployments > 0, "--deployments must be at least 1");
    anyhow::ensure!(
        (1..=args.deployments).contains(&args.environments),
        "--environments must be between 1 and --deployments"
    );
    anyhow::ensure!(
        (1..=args.environments).contains(&args.clusters),
        "--clusters must be between 1 and --environments"
    );
    let styrmin = styrmin_binary(&args)?;
    let work = tempfile::tempdir()?;
    let mut options = crate::tools::options().await?;
    options.flux_mode = if args.no_helm {
        ReleaseMode::Template
    } else {
        ReleaseMode::Install
    };
    let mut clusters = Vec::new();
    for _ in 0..args.clusters {
        clusters.push(LocalCluster::start(options.clone()).await?);
    }

    // The server.
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut server_args = vec![
        "server".to_owned(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--data-dir".to_owned(),
        work.path().join("server").display().to_string(),
    ];
    if let Some(postgres) = &args.postgres {
        server_args.extend(["--database".to_owned(), postgres.clone()]);
    }
    let server = spawn(
        "server",
        &styrmin,
        &server_args,
        &[("STYRMIN_ADMIN_TOKEN", ADMIN)],
        work.path(),
    )?;
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/readyz"))
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        if Instant::now() > ready_deadline {
            bail!(
                "the server did not become ready within 60 s; see {}",
                server.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the server's readiness, bounded
    }
    let admin = Client::new(&url, Some(ADMIN.into()))?;

    // Clusters, agents, the driver, environments.
    let mut agents = Vec::new();
    let mut agent_metrics = Vec::new();
    let mut cluster_ids = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let v = call(
            &admin,
            "mutation($n: String!) { createCluster(name: $n) { agentToken cluster { id } } }",
            json!({"n": format!("c{i}")}),
        )
        .await?;
        cluster_ids.push(
            v["createCluster"]["cluster"]["id"]
                .as_str()
                .context("cluster id")?
                .to_owned(),
        );
        let token = v["createCluster"]["agentToken"]
            .as_str()
            .context("agentToken")?
            .to_owned();
        let metrics = format!("127.0.0.1:{}", free_port()?);
        agents.push(spawn(
            &format!("agent-c{i}"),
            &styrmin,
            &[
                "agent".into(),
                "--server".into(),
                url.clone(),
                "--kubeconfig".into(),
                cluster.kubeconfig().display().to_string(),
                "--metrics-listen".into(),
                metrics.clone(),
            ],
            &[("STYRMIN_AGENT_TOKEN", token.as_str())],
            work.path(),
        )?);
        agent_metrics.push(metrics);
    }
    let driver = crate::agent::driver_without_actions(repo)?;
    call(
        &admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await?;
    let mut environments = Vec::new();
    for j in 0..args.environments {
        let v = call(
            &admin,
            "mutation($n: String!, $c: ID!) { createEnvironment(name: $n, clusterId: $c) { id } }",
            json!({"n": format!("env-{j}"), "c": format!("c{}", j % args.clusters)}),
        )
        .await?;
        environments.push(
            v["createEnvironment"]["id"]
                .as_str()
                .context("id")?
                .to_owned(),
        );
    }
    let watches = watch(&clusters).await?;

    // Create every deployment.
    let started = Instant::now();
    let created: Vec<(String, String, Instant)> = futures::stream::iter(0..args.deployments)
        .map(|i| {
            let admin = admin.clone();
            let environment = environments[i % environments.len()].clone();
            async move {
                let sent = Instant::now();
                let v = call(&admin, "mutation($e: ID!, $n: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $e, name: $n, parameters: {admin_email: \"a@b.c\", replicas: 1}) { deployment { id } instance { id } } }", json!({"e": environment, "n": format!("app-{i}")})).await?;
                let id = v["createDeployment"]["deployment"]["id"].as_str().context("id")?.to_owned();
                let instance = v["createDeployment"]["instance"]["id"].as_str().context("instance")?.to_owned();
                Ok::<_, anyhow::Error>((id, instance, sent))
            }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .try_collect()
        .await?;
    let wanted: HashMap<String, String> = created
        .iter()
        .map(|(d, i, _)| (d.clone(), i.clone()))
        .collect();
    let mut visible = HashMap::new();
    let converge = wait_converged(
        &admin,
        &cluster_ids,
        &wanted,
        started,
        args.timeout,
        &mut visible,
    )
    .await?;
    let requests_converged: f64 = sum_requests(&agent_metrics).await?;
    let to_applied = latencies(&watches, &created, 1);
    let ready = watches.ready.lock().unwrap().clone();
    let mut to_visible: Vec<f64> = visible
        .iter()
        .filter_map(|(pod, seen): (&String, &Instant)| {
            ready
                .get(pod)
                .map(|r| seen.saturating_duration_since(*r).as_secs_f64() * 1000.0)
        })
        .collect();
    to_visible.sort_by(f64::total_cmp);

    // Change a parameter on every deployment.
    let change_started = Instant::now();
    let changed: Vec<(String, String, Instant)> = futures::stream::iter(created.iter().map(|(id, _, _)| id.clone()))
        .map(|id| {
            let admin = admin.clone();
            async move {
                let sent = Instant::now();
                let v = call(&admin, "mutation($id: ID!) { updateDeployment(id: $id, parameters: {log_level: \"debug\"}) { instance { id } } }", json!({"id": id})).await?;
                let instance = v["updateDeployment"]["instance"]["id"].as_str().context("instance")?.to_owned();
                Ok::<_, anyhow::Error>((id, instance, sent))
            }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .try_collect()
        .await?;
    let wanted: HashMap<String, String> = changed
        .iter()
        .map(|(d, i, _)| (d.clone(), i.clone()))
        .collect();
    let mut ignored = HashMap::new();
    let change = wait_converged(
        &admin,
        &cluster_ids,
        &wanted,
        change_started,
        args.timeout,
        &mut ignored,
    )
    .await?;
    let requests_changed = sum_requests(&agent_metrics).await? - requests_converged;

    // Idle: nothing changes for a while.
    let server_pid = server.pid()?;
    let agent_pids: Vec<u32> = agents.iter().map(Child::pid).collect::<Result<_>>()?;
    let (_, server_cpu_0) = usage(server_pid)?;
    let agent_cpu_0: f64 = agent_pids
        .iter()
        .map(|p| usage(*p).map(|u| u.1))
        .sum::<Result<f64>>()?;
    let idle_requests_0 = sum_requests(&agent_metrics).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await; // the idle period being measured
    let idle_requests = sum_requests(&agent_metrics).await? - idle_requests_0;
    let (server_rss, server_cpu_1) = usage(server_pid)?;
    let mut agent_rss: f64 = 0.0;
    let mut agent_cpu_1 = 0.0;
    for pid in &agent_pids {
        let (rss, cpu) = usage(*pid)?;
        agent_rss = agent_rss.max(rss);
        agent_cpu_1 += cpu;
    }
    let idle = args.idle_seconds.max(1) as f64;
    let per_agent = args.clusters as f64;
    let idle_agent_cpu = (agent_cpu_1 - agent_cpu_0) / per_agent / idle * 100.0;
    let idle_server_cpu = (server_cpu_1 - server_cpu_0) / idle * 100.0;
    let idle_rate = idle_requests / per_agent / idle;

    drop(watches);
    drop(agents);
    drop(server);
    for cluster in clusters {
        cluster.stop().await;
    }

    let n = args.deployments;
    let (a50, a99) = (percentile(&to_applied, 50.0), percentile(&to_applied, 99.0));
    let (v50, v99) = if to_visible.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (percentile(&to_visible, 50.0), percentile(&to_visible, 99.0))
    };
    let line = format!(
        "scale: {n} deployments, converged in {:.1} s, change converged in {:.1} s, intent→applied p50 {a50:.0} ms p99 {a99:.0} ms, ready→visible p50 {v50:.0} ms p99 {v99:.0} ms, agent peak RSS {agent_rss:.0} MiB, server peak RSS {server_rss:.0} MiB",
        converge.as_secs_f64(),
        change.as_secs_f64(),
    );
    let mode = if args.no_helm {
        "scale mode (`--no-helm`: the Flux stand-in renders each release with `helm template` and applies it, no `helm --wait`)"
    } else {
        "default mode (the Flux stand-in runs `helm upgrade --install --wait` per release, 4 at a time)"
    };
    let database = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut command = format!(
        "cargo run --release -p styrmin-bench -- scale --deployments {n} --environments {} --clusters {} --idle-seconds {}",
        args.environments, args.clusters, args.idle_seconds
    );
    if args.no_helm {
        command.push_str(" --no-helm");
    }
    let markdown = format!(
        "## Scale: {n} deployments, {} environments, {} cluster(s)\n\n\
         Command: `{command}` (after `cargo build --release -p styrmin`)\n\n\
         Local cluster in {mode}. Server ({database}) and one agent per cluster run as their own \
         `styrmin` processes; the example driver without its actions, 2 pods per deployment. \
         **Converged**: every deployment reported RUNNING with the Instance the server wants. \
         **Change**: `log_level` changed on every deployment (a new pod template). \
         **Intent → applied**: `createDeployment` sent → the bench's watch sees the \
         StyrminDeployment. **Ready → visible**: the bench's watch sees a pod Ready → \
         `podStatuses` (sampled every 250 ms) shows it.\n\n\
         {line}\n\n\
         | measure | value | target |\n\
         |---|---|---|\n\
         | converged | {:.1} s | < 60 s at 2,000 |\n\
         | change converged | {:.1} s | < 60 s at 2,000 |\n\
         | intent → applied p50 / p99 | {a50:.0} / {a99:.0} ms | < 50 / < 250 ms |\n\
         | ready → visible p50 / p99 | {v50:.0} / {v99:.0} ms | p99 < 1 s |\n\
         | agent peak RSS | {agent_rss:.0} MiB | < 200 MiB |\n\
         | server peak RSS | {server_rss:.0} MiB | < 150 MiB |\n\
         | agent API-server requests while converging | {:.1} per deployment | a few per state change |\n\
         | agent API-server requests for the change | {:.1} per deployment | a few per state change |\n\
         | idle over {}s: agent CPU | {idle_agent_cpu:.2} % of a core | < 1 % |\n\
         | idle: server CPU | {idle_server_cpu:.2} % of a core | < 1 % |\n\
         | idle: agent API-server requests | {idle_rate:.2} per second | < 1 per second |\n",
        args.environments,
        args.clusters,
        converge.as_secs_f64(),
        change.as_secs_f64(),
        requests_converged / n as f64,
        requests_changed / n as f64,
        args.idle_seconds,
    );
    Ok(Figures { line, markdown })
}

async fn sum_requests(metrics: &[String]) -> Result<f64> {
    let mut total = 0.0;
    for m in metrics {
        total += kube_requests(m).await?;
    }
    Ok(total)
}

/// Milliseconds from each create to the bench seeing the StyrminDeployment's generation.
fn latencies(watches: &Watches, sent: &[(String, String, Instant)], generation: i64) -> Vec<f64> {
    let applied = watches.applied.lock().unwrap();
    let mut values: Vec<f64> = sent
        .iter()
        .filter_map(|(id, _, t0)| {
            applied
                .get(&(id.clone(), generation))
                .map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        values.push(f64::NAN);
    }
    values
}

/// Polls until every deployment runs its wanted Instance; records when each pod was
/// first shown ready. Returns the time from `started`.
async fn wait_converged(
    admin: &Client,
    cluster_ids: &[String],
    wanted: &HashMap<String, String>,
    started: Instant,
    timeout: Duration,
    visible: &mut HashMap<String, Instant>,
) -> Result<Duration> {
    let deadline = started + timeout;
    let mut last_check = Instant::now() - Duration::from_secs(1);
    loop {
        for (i, cluster) in cluster_ids.iter().enumerate() {
            let pods = all_pages(
                admin,
                "query($offset: Int, $c: ID) { podStatuses(cluster: $c, first: 1000, offset: $offset) { namespace name ready } }",
                "podStatuses",
                json!({"c": cluster}),
            )
            .await?;
            let now = Instant::now();
            for p in pods.iter().filter(|p| p["ready"] == true) {
                visible.entry(pod_key(i, p)).or_insert(now);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_check) >= Duration::from_secs(1) {
            last_check = now;
            let done = converged(admin, wanted).await?;
            if done == wanted.len() {
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {done} of {} deployments converged within {timeout:?}",
                    wanted.len()
                );
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await; // the bench's sampling interval
    }
}

/// `c<cluster index>/<namespace>/<pod>`, the key the bench's pod watch uses.
fn pod_key(cluster: usize, pod: &Value) -> String {
    format!(
        "c{cluster}/{}/{}",
        pod["namespace"].as_str().unwrap_or_default(),
        pod["name"].as_str().unwrap_or_default()
    )
}
