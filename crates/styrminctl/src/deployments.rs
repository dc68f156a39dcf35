//! `styrminctl deployments …` and `styrminctl flow-runs …`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use styrmin_client::Client;

use crate::api::{Connection, call};
use crate::clusters::config_arg;
use crate::input::{component_settings, parse_assignments, read_mapping};
use crate::output::{Format, print_value, show, show_value_list};
use crate::table::{Table, print_value_fields, text};
use crate::{ExitCode, InvalidInput};

const DEPLOYMENT: &str = "id name environmentId clusterId appVersion phase lastError parameters config components driverVersion { driverName version digest } status { status message urls reportedAt } activeInstance { id } createdAt updatedAt deletedAt";
const RUN: &str = "id deploymentId kind state attempt maxAttempts instanceId error createdAt startedAt finishedAt";
const CHANGE: &str = "noop instance { id state contextDigest } flowRun { id kind state attempt }";

/// Parameter and component settings a create or update takes.
#[derive(Args, Clone, Default)]
pub struct Settings {
    /// A parameter value, NAME=VALUE (repeatable); typed against the driver by the server.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A YAML or JSON file of parameter values; -p wins over it.
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    /// The deployment's config, a JSON object (overrides the environment's).
    #[arg(short = 'c', long = "config", value_name = "JSON")]
    config: Option<String>,
    /// A component environment variable, COMPONENT.NAME=VALUE (repeatable).
    #[arg(long, value_name = "COMPONENT.NAME=VALUE")]
    env: Vec<String>,
    /// A command override, COMPONENT=JSON_LIST (repeatable).
    #[arg(long, value_name = "COMPONENT=JSON")]
    command: Vec<String>,
    /// An args override, COMPONENT=JSON_LIST (repeatable).
    #[arg(long, value_name = "COMPONENT=JSON")]
    args: Vec<String>,
}

impl Settings {
    fn parameters(&self) -> Result<Value> {
        let mut parameters: BTreeMap<String, Value> = match &self.values {
            Some(path) => read_mapping(path)
                .map_err(|e| InvalidInput(format!("--values: {e:#}")))?
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        parameters.extend(
            parse_assignments(&self.params, "-p").map_err(|e| InvalidInput(e.to_string()))?,
        );
        Ok(serde_json::to_value(parameters)?)
    }

    /// `null` when no component flag was given, so an update keeps the current settings.
    fn components(&self) -> Result<Value> {
        if self.env.is_empty() && self.command.is_empty() && self.args.is_empty() {
            return Ok(Value::Null);
        }
        let settings = component_settings(&self.env, &self.command, &self.args)
            .map_err(|e| InvalidInput(e.to_string()))?;
        Ok(serde_json::to_value(settings)?)
    }
}

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Deploy a driver's application into an environment (the driver's latest version
    /// unless --driver-version names one).
    Create {
        driver: String,
        app_version: String,
        env_id: String,
        /// The deployment's name (and Helm release); defaults to the driver's name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        driver_version: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    List {
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        /// Include deleted deployments.
        #[arg(long)]
        all: bool,
    },
    /// A deployment: desired state, observed status, active Instance, pods, latest runs.
    Show {
        id: String,
    },
    /// Change parameters, config or component settings.
    Update {
        id: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Move to another application version and/or driver version (`latest`).
    Upgrade {
        id: String,
        #[arg(long)]
        app_version: Option<String>,
        #[arg(long)]
        driver_version: Option<String>,
    },
    Stop {
        id: String,
    },
    Start {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Run the failed latest flow run again.
    Retry {
        id: String,
    },
    /// Dry run: which remediation a change would schedule and how the values change.
    Plan {
        id: String,
        #[arg(long)]
        app_version: Option<String>,
        #[arg(long)]
        driver_version: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// The deployment's Instances, newest first.
    Instances {
        id: String,
    },
    /// The deployment's flow runs, newest first.
    Runs {
        id: String,
    },
    /// Pods the agent reports for the deployment.
    Pods {
        id: String,
    },
    /// The log of the deployment's latest flow run (or --run).
    Logs {
        id: String,
        #[arg(long)]
        run: Option<String>,
        /// Keep printing until the run ends; exits 6 when it did not complete.
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
pub enum FlowRunsCommand {
    List {
        #[arg(long)]
        deployment: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        /// scheduled, running, completed, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        first: i32,
    },
    Show {
        id: String,
    },
    Logs {
        id: String,
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

fn deployment_table(list: &[Value]) {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "ENVIRONMENT",
        "DRIVER",
        "APP",
        "PHASE",
        "STATUS",
        "ERROR",
    ]);
    for d in list {
        t.row(vec![
            text(d, "id"),
            text(d, "name"),
            text(d, "environmentId"),
            format!(
                "{} {}",
                text(d, "driverVersion.driverName"),
                text(d, "driverVersion.version")
            ),
            text(d, "appVersion"),
            text(d, "phase"),
            text(d, "status.status"),
            text(d, "lastError"),
        ]);
    }
    t.print();
}

pub fn run_table(list: &[Value]) {
    let mut t = Table::new(&[
        "ID",
        "DEPLOYMENT",
        "KIND",
        "STATE",
        "ATTEMPT",
        "CREATED",
        "FINISHED",
        "ERROR",
    ]);
    for r in list {
        t.row(vec![
            text(r, "id"),
            text(r, "deploymentId"),
            text(r, "kind"),
            text(r, "state"),
            format!("{}/{}", text(r, "attempt"), text(r, "maxAttempts")),
            text(r, "createdAt"),
            text(r, "finishedAt"),
            text(r, "error"),
        ]);
    }
    t.print();
}

fn instance_table(list: &[Value]) {
    let mut t = Table::new(&["ID", "STATE", "APP", "DRIVER", "CONTEXT DIGEST", "CREATED"]);
    for i in list {
        t.row(vec![
            text(i, "id"),
            text(i, "state"),
            text(i, "appVersion"),
            format!(
                "{} {}",
                text(i, "driverVersion.driverName"),
                text(i, "driverVersion.version")
            ),
            text(i, "contextDigest").chars().take(12).collect(),
            text(i, "createdAt"),
        ]);
    }
    t.print();
}

fn pod_table(list: &[Value]) {
    let mut t = Table::new(&[
        "NAMESPACE",
        "NAME",
        "COMPONENT",
        "PHASE",
        "READY",
        "RESTARTS",
        "NODE",
        "IP",
    ]);
    for p in list {
        t.row(vec![
            text(p, "namespace"),
            text(p, "name"),
            text(p, "component"),
            text(p, "phase"),
            text(p, "ready"),
            text(p, "restarts"),
            text(p, "node"),
            text(p, "ip"),
        ]);
    }
    t.print();
}

fn change_output(v: &Value, format: Format) -> Result<ExitCode> {
    match format {
        Format::Table => {
            deployment_table(std::slice::from_ref(&v["deployment"]));
            println!();
            if v["noop"] == Value::Bool(true) {
                println!("No change: the deployment already is in that state; nothing scheduled.");
            } else {
                print_value_fields(
                    v,
                    &[
                        ("flow run", "flowRun.id"),
                        ("kind", "flowRun.kind"),
                        ("state", "flowRun.state"),
                        ("attempt", "flowRun.attempt"),
                        ("instance", "instance.id"),
                    ],
                );
            }
        }
        _ => print_value(v, format)?,
    }
    Ok(ExitCode::Ok)
}

async fn change(client: &Client, mutation: &str, id: &str) -> Result<Value> {
    let q = format!(
        "mutation($id: ID!) {{ {mutation}(id: $id) {{ {CHANGE} deployment {{ {DEPLOYMENT} }} }} }}"
    );
    call(client, &q, json!({"id": id}), mutation).await
}

pub async fn deployments(
    command: DeploymentsCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        DeploymentsCommand::Create {
            driver,
            app_version,
            env_id,
            name,
            driver_version,
            settings,
        } => {
            let q = format!(
                "mutation($driver: String!, $app: String!, $env: ID!, $name: String, $dv: String, $params: JSON, $config: JSON, $components: JSON) {{ createDeployment(driver: $driver, appVersion: $app, environmentId: $env, name: $name, driverVersion: $dv, parameters: $params, config: $config, components: $components) {{ {CHANGE} deployment {{ {DEPLOYMENT} }} }} }}"
            );
            let vars = json!({
                "driver": driver, "app": app_version, "env": env_id, "name": name,
                "dv": driver_version, "params": settings.parameters()?,
                "config": config_arg(&settings.config)?, "components": settings.components()?,
            });
            change_output(&call(&client, &q, vars, "createDeployment").await?, format)
        }
        DeploymentsCommand::List {
            environment,
            cluster,
            all,
        } => {
            let q = format!(
                "query($env: ID, $cluster: ID, $all: Boolean) {{ deployments(environment: $env, cluster: $cluster, includeDeleted: $all) {{ {DEPLOYMENT} }} }}"
            );
            let vars = json!({"env": environment, "cluster": cluster, "all": all});
            show_value_list(
                &call(&client, &q, vars, "deployments").await?,
                format,
                deployment_table,
            )
        }
        DeploymentsCommand::Show { id } => {
            let q = format!(
                "query($id: ID!) {{ deployment(id: $id) {{ {DEPLOYMENT} pods {{ namespace name component phase ready restarts }} flowRuns(first: 5) {{ {RUN} }} }} }}"
            );
            let d = call(&client, &q, json!({"id": id}), "deployment").await?;
            match format {
                Format::Table => {
                    print_value_fields(
                        &d,
                        &[
                            ("id", "id"),
                            ("name", "name"),
                            ("environment", "environmentId"),
                            ("driver", "driverVersion.driverName"),
                            ("driver version", "driverVersion.version"),
                            ("app version", "appVersion"),
                            ("phase", "phase"),
                            ("status", "status.status"),
                            ("message", "status.message"),
                            ("urls", "status.urls"),
                            ("last error", "lastError"),
                            ("active instance", "activeInstance.id"),
                            ("parameters", "parameters"),
                            ("config", "config"),
                        ],
                    );
                    println!("\nPods:");
                    pod_table(d["pods"].as_array().map(Vec::as_slice).unwrap_or_default());
                    println!("\nLatest runs:");
                    run_table(
                        d["flowRuns"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                    );
                }
                _ => print_value(&d, format)?,
            }
            Ok(ExitCode::Ok)
        }
        DeploymentsCommand::Update { id, settings } => {
            let q = format!(
                "mutation($id: ID!, $params: JSON, $config: JSON, $components: JSON) {{ updateDeployment(id: $id, parameters: $params, config: $config, components: $components) {{ {CHANGE} deployment {{ {DEPLOYMENT} }} }} }}"
            );
            let vars = json!({"id": id, "params": settings.parameters()?, "config": config_arg(&settings.config)?, "components": settings.components()?});
            change_output(&call(&client, &q, vars, "updateDeployment").await?, format)
        }
        DeploymentsCommand::Upgrade {
            id,
            app_version,
            driver_version,
        } => {
            let q = format!(
                "mutation($id: ID!, $app: String, $dv: String) {{ upgradeDeployment(id: $id, appVersion: $app, driverVersion: $dv) {{ {CHANGE} deployment {{ {DEPLOYMENT} }} }} }}"
            );
            let vars = json!({"id": id, "app": app_version, "dv": driver_version});
            change_output(&call(&client, &q, vars, "upgradeDeployment").await?, format)
        }
        DeploymentsCommand::Stop { id } => {
            change_output(&change(&client, "stopDeployment", &id).await?, format)
        }
        DeploymentsCommand::Start { id } => {
            change_output(&change(&client, "startDeployment", &id).await?, format)
        }
        DeploymentsCommand::Delete { id } => {
            change_output(&change(&client, "deleteDeployment", &id).await?, format)
        }
        DeploymentsCommand::Retry { id } => {
            change_output(&change(&client, "retryDeployment", &id).await?, format)
        }
        DeploymentsCommand::Plan {
            id,
            app_version,
            driver_version,
            settings,
        } => {
            let q = "mutation($id: ID!, $change: DeploymentEdit) { planDeployment(id: $id, change: $change) { kind contextDigest changes { path before after } } }";
            let mut change = json!({"appVersion": app_version, "driverVersion": driver_version, "parameters": settings.parameters()?, "components": settings.components()?});
            if let Some(config) = config_arg(&settings.config)? {
                change["config"] = config;
            }
            let plan = call(
                &client,
                q,
                json!({"id": id, "change": change}),
                "planDeployment",
            )
            .await?;
            match format {
                Format::Table => {
                    match plan["kind"].as_str() {
                        Some(kind) => println!("Remediation: {kind}"),
                        None => {
                            println!("Remediation: none (the change resolves to the current state)")
                        }
                    }
                    let changes = plan["changes"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    if !changes.is_empty() {
                        let mut t = Table::new(&["VALUE", "BEFORE", "AFTER"]);
                        for c in changes {
                            t.row(vec![text(c, "path"), text(c, "before"), text(c, "after")]);
                        }
                        println!();
                        t.print();
                    }
                }
                _ => print_value(&plan, format)?,
            }
            Ok(ExitCode::Ok)
        }
        DeploymentsCommand::Instances { id } => {
            let q = "query($id: ID!) { deployment(id: $id) { instances { id state appVersion contextDigest createdAt driverVersion { driverName version } } } }";
            let d = call(&client, q, json!({"id": id}), "deployment").await?;
            show_value_list(&d["instances"], format, instance_table)
        }
        DeploymentsCommand::Runs { id } => {
            let q = format!(
                "query($id: ID!) {{ deployment(id: $id) {{ flowRuns(first: 100) {{ {RUN} }} }} }}"
            );
            let d = call(&client, &q, json!({"id": id}), "deployment").await?;
            show_value_list(&d["flowRuns"], format, run_table)
        }
        DeploymentsCommand::Pods { id } => {
            let q = "query($id: ID!) { deployment(id: $id) { pods { namespace name component phase ready restarts node ip startedAt } } }";
            let d = call(&client, q, json!({"id": id}), "deployment").await?;
            show_value_list(&d["pods"], format, pod_table)
        }
        DeploymentsCommand::Logs { id, run, follow } => {
            let run_id = match run {
                Some(run) => run,
                None => {
                    let q = "query($id: ID!) { deployment(id: $id) { name flowRuns(first: 1) { id } } }";
                    let d = call(&client, q, json!({"id": id}), "deployment").await?;
                    let Some(run) = d["flowRuns"][0]["id"].as_str() else {
                        anyhow::bail!("deployment `{}` has no flow runs yet", text(&d, "name"));
                    };
                    run.to_owned()
                }
            };
            logs(&client, &run_id, follow, format).await
        }
    }
}

pub async fn flow_runs(
    command: FlowRunsCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        FlowRunsCommand::List {
            deployment,
            cluster,
            state,
            first,
        } => {
            let q = format!(
                "query($d: ID, $c: ID, $s: RunState, $first: Int) {{ flowRuns(deployment: $d, cluster: $c, state: $s, first: $first) {{ {RUN} }} }}"
            );
            let vars = json!({"d": deployment, "c": cluster, "s": state, "first": first});
            show_value_list(
                &call(&client, &q, vars, "flowRuns").await?,
                format,
                run_table,
            )
        }
        FlowRunsCommand::Show { id } => {
            let q = format!("query($id: ID!) {{ flowRun(id: $id) {{ {RUN} payload result }} }}");
            show(
                &call(&client, &q, json!({"id": id}), "flowRun").await?,
                format,
                run_table,
            )
        }
        FlowRunsCommand::Logs { id, follow } => logs(&client, &id, follow, format).await,
    }
}

/// Prints a run's log; with `follow`, long-polls for new lines until the run ends.
async fn logs(client: &Client, run_id: &str, follow: bool, format: Format) -> Result<ExitCode> {
    let q = "query($id: ID!, $after: Int!, $wait: Float!) { flowRun(id: $id) { state error logs(after: $after, waitSeconds: $wait) { seq attempt at level message } } }";
    let mut after = 0i64;
    loop {
        let wait = if follow { 20.0 } else { 0.0 };
        let run = call(
            client,
            q,
            json!({"id": run_id, "after": after, "wait": wait}),
            "flowRun",
        )
        .await?;
        let lines = run["logs"].as_array().cloned().unwrap_or_default();
        for line in &lines {
            after = line["seq"].as_i64().unwrap_or(after);
            match format {
                Format::Table => println!(
                    "{} [{}] #{} {}",
                    text(line, "at"),
                    text(line, "level"),
                    text(line, "attempt"),
                    text(line, "message")
                ),
                _ => println!("{}", serde_json::to_string(line)?),
            }
        }
        let state = text(&run, "state");
        let ended = matches!(state.as_str(), "completed" | "failed" | "cancelled");
        if !follow || (ended && lines.is_empty()) {
            if follow && state != "completed" {
                eprintln!("run {run_id} ended {state}: {}", text(&run, "error"));
                return Ok(ExitCode::RunFailed);
            }
            return Ok(ExitCode::Ok);
        }
    }
}
