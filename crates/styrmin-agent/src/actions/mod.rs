//! Lifecycle hooks and actions (SPEC §5): a `create` runs hook `setup`, an `upgrade` hook
//! `upgrade` — every `pre` action, then the core, then every `post` action, strictly in
//! that order and in parallel within a stage. An action is Python (`actions.py::fn`, run
//! by [`python`]) or declarative steps ([`steps`]); both act through [`ActionHost`], the
//! primitives an action may use on its own deployment.

pub mod components;
pub mod http;
pub mod python;
pub mod steps;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::future::join_all;
use styrmin_core::context::GlobalContext;
use styrmin_core::driver::{Action, Hook};
use styrmin_core::protocol::ApplyPayload;

use crate::api::Run;
use crate::bundle::Files;
use crate::instance::Instances;
use crate::runlog::LogSink;
use components::Component;

/// A Kubernetes error as a person reads it: the API server's own message (a 403 says
/// which verb on which resource), not the whole status object.
pub fn api_error(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => anyhow!("{}", status.message),
        other => anyhow::Error::new(other),
    }
}

/// What an action may do, for the flow run it belongs to.
pub struct ActionHost {
    /// Applies this run's Instance for `upgrade_deployment_version`.
    pub instances: Arc<Instances>,
    /// The longest an action may run when the driver sets no `timeout_seconds`.
    pub action_timeout: Duration,
    pub run: Run,
    pub log: LogSink,
    pub context: GlobalContext,
    /// The Instance this run applies.
    pub apply: ApplyPayload,
    pub namespace: String,
    /// The driver version's files (actions.py among them).
    pub files: Arc<Files>,
    pub driver_digest: String,
}

impl ActionHost {
    fn component<'a>(&'a self, name: &'a str) -> Result<Component<'a>> {
        let component = self.context.components.get(name).with_context(|| {
            format!(
                "the driver has no component `{name}` (it has: {})",
                self.context
                    .components
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        Ok(Component {
            client: self.instances.client(),
            namespace: &self.namespace,
            name,
            labels: &component.labels,
        })
    }

    pub async fn stop_components(&self, names: &[String], deadline: Instant) -> Result<()> {
        for name in names {
            self.log.line("info", format!("stopping component {name}"));
            self.component(name)?.stop(deadline).await?;
            self.log.line("info", format!("component {name} stopped"));
        }
        Ok(())
    }

    pub async fn start_components(&self, names: &[String], deadline: Instant) -> Result<()> {
        for name in names {
            self.log.line("info", format!("starting component {name}"));
            self.component(name)?.start(deadline).await?;
            self.log
                .line("info", format!("component {name} started and ready"));
        }
        Ok(())
    }

    pub async fn wait_ready(&self, names: &[String], deadline: Instant) -> Result<()> {
        for name in names {
            self.component(name)?.wait_ready(deadline).await?;
            self.log.line("info", format!("component {name} is ready"));
        }
        Ok(())
    }

    /// Runs each command in a ready pod of the component, in order; the first failure
    /// stops. Returns each command's output.
    pub async fn execute_commands(
        &self,
        component: &str,
        commands: &[Vec<String>],
    ) -> Result<Vec<String>> {
        let target = self.component(component)?;
        let mut outputs = Vec::with_capacity(commands.len());
        for argv in commands {
            let shown = argv.join(" ");
            self.log
                .line("info", format!("exec in component {component}: {shown}"));
            let output = target.exec(argv).await?;
            for line in output.lines() {
                self.log.line("info", format!("  {line}"));
            }
            outputs.push(output);
        }
        Ok(outputs)
    }

    /// The default core, called by a driver's own core action: applies this run's Instance
    /// and waits until the operator reports it Ready.
    pub async fn upgrade_deployment_version(&self, version: &str) -> Result<()> {
        let target = &self.apply.instance.app_version;
        if version != target {
            bail!(
                "this run deploys application version {target}; upgrade_deployment_version was asked for {version}"
            );
        }
        self.instances.apply(&self.apply, &self.log).await?;
        Ok(())
    }

    pub async fn http_check(
        &self,
        service: &str,
        path: &str,
        expect_status: u16,
        deadline: Instant,
    ) -> Result<()> {
        let target = self
            .context
            .services
            .get(service)
            .with_context(|| format!("the driver has no service `{service}`"))?;
        let status = http::check(
            &self.component(&target.component)?,
            service,
            target.port,
            path,
            expect_status,
            deadline.min(Instant::now() + http::CHECK_WINDOW),
        )
        .await?;
        self.log.line(
            "info",
            format!("GET {path} on service {service} answered {status}"),
        );
        Ok(())
    }

    /// Runs one action within its timeout, logging its start, end, duration and outcome.
    pub async fn run_action(self: &Arc<Self>, hook: Hook, action: &Action) -> Result<()> {
        let timeout = action
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.action_timeout);
        let label = format!("action {} ({hook}/{})", action.name, action.mode);
        self.log.line("info", format!("{label} started"));
        let started = Instant::now();
        let deadline = started + timeout;
        let work = async {
            match (&action.location, action.steps.is_empty()) {
                (Some(location), _) => python::run(self, location, deadline).await,
                (None, false) => steps::run(self, &action.steps, deadline).await,
                (None, true) => Ok(()),
            }
        };
        let outcome = match tokio::time::timeout(timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow!("timed out after {timeout:?}")),
        };
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                self.log
                    .line("info", format!("{label} completed in {took:.1} s"));
                Ok(())
            }
            Err(e) => {
                self.log
                    .line("error", format!("{label} failed after {took:.1} s"));
                Err(e.context(format!("{label} failed")))
            }
        }
    }
}

/// Runs the actions of one stage side by side; fails with every failure when any fails.
pub async fn run_stage(host: &Arc<ActionHost>, hook: Hook, actions: &[&Action]) -> Result<()> {
    let outcomes = join_all(actions.iter().map(|a| host.run_action(hook, a))).await;
    let failures: Vec<String> = outcomes
        .into_iter()
        .filter_map(|o| o.err().map(|e| format!("{e:#}")))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("\n"))
    }
}
