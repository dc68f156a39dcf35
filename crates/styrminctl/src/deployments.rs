//! `styrminctl deployments …` and `styrminctl flow-runs …`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::Value;
use styrmin_client::Client;
use styrmin_client::ops::deployments::{
    CreateDeployment, DeleteDeployment, Deployment, DeploymentChange, DeploymentEdit,
    DeploymentFilter, DeploymentId, DeploymentInstanceList, DeploymentLatestRun, DeploymentPodList,
    DeploymentRunList, DeploymentSettings, GetDeployment, Instance, ListDeployments, NewDeployment,
    Plan, PlanDeployment, Pod, PodSummary, RetryDeployment, StartDeployment, StopDeployment,
    UpdateDeployment, Upgrade, UpgradeDeployment,
};
use styrmin_client::ops::flow_runs::{
    FlowRun, FlowRunLog, GetFlowRun, ListFlowRuns, LogPage, RunFilter, RunId,
};

use crate::api::Connection;
use crate::clusters::config_arg;
use crate::input::{component_settings, parse_assignments, read_mapping};
use crate::output::{Format, json_line, print_value, show_list};
use crate::table::{Table, cell, print_fields};
use crate::{ExitCode, InvalidInput};

/// Parameter and component settings a create or update takes.
#[derive(Args, Clone, Default)]
pub struct Settings {
    /// A parameter value, NAME=VALUE (repeatable); typed against the driver by the server.
    /// NAME=@secret:VALUE gives a `secret` parameter: stored encrypted, never shown.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A `secret` parameter's value from a file, NAME=PATH (repeatable; the file's bytes as
    /// they are, a final newline included).
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    secret_files: Vec<String>,
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

/// The value of `-p NAME=@secret:VALUE`.
fn secret_value(value: &Value) -> Option<&str> {
    value.as_str()?.strip_prefix("@secret:")
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
        let assigned =
            parse_assignments(&self.params, "-p").map_err(|e| InvalidInput(e.to_string()))?;
        parameters.extend(
            assigned
                .into_iter()
                .filter(|(_, v)| secret_value(v).is_none()),
        );
        Ok(serde_json::to_value(parameters)?)
    }

    /// The `secret` parameters given (`-p NAME=@secret:VALUE`, `--secret-file`); `None`
    /// when there are none. A name given twice is refused.
    fn secret_parameters(&self) -> Result<Option<Value>> {
        let mut secrets = serde_json::Map::new();
        let assigned =
            parse_assignments(&self.params, "-p").map_err(|e| InvalidInput(e.to_string()))?;
        for (name, value) in assigned {
            if let Some(secret) = secret_value(&value) {
                secrets.insert(name, Value::String(secret.to_owned()));
            }
        }
        for pair in &self.secret_files {
            let (name, path) = pair
                .split_once('=')
                .ok_or_else(|| InvalidInput(format!("--secret-file {pair}: expected NAME=PATH")))?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                InvalidInput(format!("--secret-file {name}: cannot read {path}: {e}"))
            })?;
            if secrets
                .insert(name.to_owned(), Value::String(text))
                .is_some()
            {
                return Err(InvalidInput(format!("secret parameter {name} is given twice")).into());
            }
        }
        Ok((!secrets.is_empty()).then_some(Value::Object(secrets)))
    }

    /// `None` when no component flag was given, so an update keeps the current settings.
    fn components(&self) -> Result<Option<Value>> {
        if self.env.is_empty() && self.command.is_empty() && self.args.is_empty() {
            return Ok(None);
        }
        let settings = component_settings(&self.env, &self.command, &self.args)
            .map_err(|e| InvalidInput(e.to_string()))?;
        Ok(Some(serde_json::to_value(settings)?))
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

fn deployment_table(list: &[Deployment]) {
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
        let driver = d.driver_version.as_ref();
        t.row(vec![
            d.id.clone(),
            d.name.clone(),
            d.environment_id.clone(),
            format!(
                "{} {}",
                cell(&driver.map(|v| &v.driver_name)),
                cell(&driver.map(|v| &v.version))
            ),
            d.app_version.clone(),
            d.phase.clone(),
            d.status.status.clone(),
            cell(&d.last_error),
        ]);
    }
    t.print();
}

pub fn run_table(list: &[FlowRun]) {
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
            r.id.clone(),
            cell(&r.deployment_id),
            r.kind.clone(),
            r.state.clone(),
            format!("{}/{}", r.attempt, r.max_attempts),
            r.created_at.clone(),
            cell(&r.finished_at),
            cell(&r.error),
        ]);
    }
    t.print();
}

fn instance_table(list: &[Instance]) {
    let mut t = Table::new(&["ID", "STATE", "APP", "DRIVER", "CONTEXT DIGEST", "CREATED"]);
    for i in list {
        let driver = i.driver_version.as_ref();
        t.row(vec![
            i.id.clone(),
            i.state.clone(),
            i.app_version.clone(),
            format!(
                "{} {}",
                cell(&driver.map(|v| &v.driver_name)),
                cell(&driver.map(|v| &v.version))
            ),
            i.context_digest.chars().take(12).collect(),
            i.created_at.clone(),
        ]);
    }
    t.print();
}

/// A pod's cells; `node` and `ip` are empty where the answer did not select them.
fn pod_table<'a>(list: impl IntoIterator<Item = (&'a PodSummary, Option<&'a Pod>)>) {
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
    for (p, placed) in list {
        t.row(vec![
            p.namespace.clone(),
            p.name.clone(),
            cell(&p.component),
            p.phase.clone(),
            p.ready.to_string(),
            p.restarts.to_string(),
            cell(&placed.and_then(|p| p.node.as_ref())),
            cell(&placed.and_then(|p| p.ip.as_ref())),
        ]);
    }
    t.print();
}

fn pods_table(list: &[Pod]) {
    pod_table(list.iter().map(|p| (&p.summary, Some(p))));
}

fn change_output(change: &DeploymentChange, format: Format) -> Result<ExitCode> {
    match format {
        Format::Table => {
            deployment_table(std::slice::from_ref(&change.deployment));
            println!();
            if change.noop {
                println!("No change: the deployment already is in that state; nothing scheduled.");
            } else {
                let run = change.flow_run.as_ref();
                print_fields(&[
                    ("flow run", cell(&run.map(|r| &r.id))),
                    ("kind", cell(&run.map(|r| &r.kind))),
                    ("state", cell(&run.map(|r| &r.state))),
                    ("attempt", cell(&run.map(|r| r.attempt))),
                    ("instance", cell(&change.instance.as_ref().map(|i| &i.id))),
                ]);
            }
        }
        _ => print_value(change, format)?,
    }
    Ok(ExitCode::Ok)
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
            let vars = NewDeployment {
                driver,
                app_version,
                environment_id: env_id,
                name,
                driver_version,
                parameters: Some(settings.parameters()?),
                secret_parameters: settings.secret_parameters()?,
                config: config_arg(&settings.config)?,
                components: settings.components()?,
            };
            change_output(&client.run::<CreateDeployment>(&vars).await?, format)
        }
        DeploymentsCommand::List {
            environment,
            cluster,
            all,
        } => {
            let vars = DeploymentFilter {
                environment,
                cluster,
                include_deleted: all,
            };
            show_list(
                &client.run::<ListDeployments>(&vars).await?,
                format,
                deployment_table,
            )
        }
        DeploymentsCommand::Show { id } => {
            let detail = client.run::<GetDeployment>(&DeploymentId { id }).await?;
            match format {
                Format::Table => {
                    let d = &detail.deployment;
                    let driver = d.driver_version.as_ref();
                    print_fields(&[
                        ("id", d.id.clone()),
                        ("name", d.name.clone()),
                        ("environment", d.environment_id.clone()),
                        ("driver", cell(&driver.map(|v| &v.driver_name))),
                        ("driver version", cell(&driver.map(|v| &v.version))),
                        ("app version", d.app_version.clone()),
                        ("phase", d.phase.clone()),
                        ("status", d.status.status.clone()),
                        ("message", cell(&d.status.message)),
                        ("urls", cell(&d.status.urls)),
                        ("last error", cell(&d.last_error)),
                        (
                            "active instance",
                            cell(&d.active_instance.as_ref().map(|i| &i.id)),
                        ),
                        ("parameters", cell(&d.parameters)),
                        ("secret parameters", cell(&d.secret_parameters)),
                        ("config", cell(&d.config)),
                    ]);
                    println!("\nPods:");
                    pod_table(detail.pods.iter().map(|p| (p, None)));
                    println!("\nLatest runs:");
                    run_table(&detail.flow_runs);
                }
                _ => print_value(&detail, format)?,
            }
            Ok(ExitCode::Ok)
        }
        DeploymentsCommand::Update { id, settings } => {
            let vars = DeploymentSettings {
                id,
                parameters: Some(settings.parameters()?),
                secret_parameters: settings.secret_parameters()?,
                config: config_arg(&settings.config)?,
                components: settings.components()?,
            };
            change_output(&client.run::<UpdateDeployment>(&vars).await?, format)
        }
        DeploymentsCommand::Upgrade {
            id,
            app_version,
            driver_version,
        } => {
            let vars = Upgrade {
                id,
                app_version,
                driver_version,
            };
            change_output(&client.run::<UpgradeDeployment>(&vars).await?, format)
        }
        DeploymentsCommand::Stop { id } => change_output(
            &client.run::<StopDeployment>(&DeploymentId { id }).await?,
            format,
        ),
        DeploymentsCommand::Start { id } => change_output(
            &client.run::<StartDeployment>(&DeploymentId { id }).await?,
            format,
        ),
        DeploymentsCommand::Delete { id } => change_output(
            &client.run::<DeleteDeployment>(&DeploymentId { id }).await?,
            format,
        ),
        DeploymentsCommand::Retry { id } => change_output(
            &client.run::<RetryDeployment>(&DeploymentId { id }).await?,
            format,
        ),
        DeploymentsCommand::Plan {
            id,
            app_version,
            driver_version,
            settings,
        } => {
            let change = DeploymentEdit {
                parameters: Some(settings.parameters()?),
                secret_parameters: settings.secret_parameters()?,
                config: config_arg(&settings.config)?,
                components: settings.components()?,
                app_version,
                driver_version,
            };
            let vars = Plan {
                id,
                change: Some(change),
            };
            let plan = client.run::<PlanDeployment>(&vars).await?;
            match format {
                Format::Table => {
                    match &plan.kind {
                        Some(kind) => println!("Remediation: {kind}"),
                        None => {
                            println!("Remediation: none (the change resolves to the current state)")
                        }
                    }
                    if !plan.changes.is_empty() {
                        let mut t = Table::new(&["VALUE", "BEFORE", "AFTER"]);
                        for c in &plan.changes {
                            t.row(vec![c.path.clone(), cell(&c.before), cell(&c.after)]);
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
            let d = client
                .run::<DeploymentInstanceList>(&DeploymentId { id })
                .await?;
            show_list(&d.instances, format, instance_table)
        }
        DeploymentsCommand::Runs { id } => {
            let d = client
                .run::<DeploymentRunList>(&DeploymentId { id })
                .await?;
            show_list(&d.flow_runs, format, run_table)
        }
        DeploymentsCommand::Pods { id } => {
            let d = client
                .run::<DeploymentPodList>(&DeploymentId { id })
                .await?;
            show_list(&d.pods, format, pods_table)
        }
        DeploymentsCommand::Logs { id, run, follow } => {
            let run_id = match run {
                Some(run) => run,
                None => {
                    let d = client
                        .run::<DeploymentLatestRun>(&DeploymentId { id })
                        .await?;
                    let Some(run) = d.flow_runs.into_iter().next() else {
                        anyhow::bail!("deployment `{}` has no flow runs yet", d.name);
                    };
                    run.id
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
            let vars = RunFilter {
                deployment,
                cluster,
                state,
                first: Some(first),
            };
            show_list(&client.run::<ListFlowRuns>(&vars).await?, format, run_table)
        }
        FlowRunsCommand::Show { id } => {
            let detail = client.run::<GetFlowRun>(&RunId { id }).await?;
            match format {
                Format::Table => run_table(std::slice::from_ref(&detail.run)),
                _ => print_value(&detail, format)?,
            }
            Ok(ExitCode::Ok)
        }
        FlowRunsCommand::Logs { id, follow } => logs(&client, &id, follow, format).await,
    }
}

/// Prints a run's log; with `follow`, long-polls for new lines until the run ends.
async fn logs(client: &Client, run_id: &str, follow: bool, format: Format) -> Result<ExitCode> {
    let mut after = 0i64;
    loop {
        let page = LogPage {
            id: run_id.to_owned(),
            after,
            wait_seconds: if follow { 20.0 } else { 0.0 },
        };
        let run = client.run::<FlowRunLog>(&page).await?;
        for line in &run.logs {
            after = line.seq;
            match format {
                Format::Table => println!(
                    "{} [{}] #{} {}",
                    line.at, line.level, line.attempt, line.message
                ),
                _ => println!("{}", json_line(line)?),
            }
        }
        let ended = matches!(run.state.as_str(), "completed" | "failed" | "cancelled");
        if !follow || (ended && run.logs.is_empty()) {
            if follow && run.state != "completed" {
                eprintln!("run {run_id} ended {}: {}", run.state, cell(&run.error));
                return Ok(ExitCode::RunFailed);
            }
            return Ok(ExitCode::Ok);
        }
    }
}
