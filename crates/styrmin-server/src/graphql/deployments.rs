//! Deployments, their Instances, observed status and pods, and the changes users make.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;
use styrmin_core::planner::Phase;

use super::drivers::ApplicationDriverVersion;
use super::environments::Environment;
use super::flow_runs::{FlowRun, FlowRunKind};
use super::loaders::{ClusterId, DriverVersionId, EnvironmentId, StatusOf, loader};
use super::{page, reader, state, time, time_opt, who};
use crate::error::{ApiError, IntoGql as _};
use crate::reconcile::{self, Change, Edit, NewDeployment};
use crate::reports::agent_online;
use crate::resolve;
use crate::store::deployments::{self, DeploymentRow, InstanceRow, InstanceState};
use crate::store::flow_runs;
use crate::store::statuses::{self, PodRow};

/// The lifecycle phase a user asks for.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(rename_items = "lowercase")]
pub enum DeploymentPhase {
    Running,
    Stopped,
    Deleting,
}

impl From<Phase> for DeploymentPhase {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Running => DeploymentPhase::Running,
            Phase::Stopped => DeploymentPhase::Stopped,
            Phase::Deleting => DeploymentPhase::Deleting,
        }
    }
}

/// What the agent last saw of a deployment (SPEC §7).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ObservedStatus {
    Pending,
    Deploying,
    Running,
    Degraded,
    Stopped,
    Failed,
    Deleting,
    /// The cluster's agent is offline: the last report cannot be trusted.
    Unknown,
}

impl ObservedStatus {
    pub(crate) fn parse(s: &str) -> ObservedStatus {
        match s {
            "DEPLOYING" => ObservedStatus::Deploying,
            "RUNNING" => ObservedStatus::Running,
            "DEGRADED" => ObservedStatus::Degraded,
            "STOPPED" => ObservedStatus::Stopped,
            "FAILED" => ObservedStatus::Failed,
            "DELETING" => ObservedStatus::Deleting,
            "UNKNOWN" => ObservedStatus::Unknown,
            _ => ObservedStatus::Pending,
        }
    }
}

#[derive(SimpleObject)]
pub struct DeploymentStatus {
    status: ObservedStatus,
    message: Option<String>,
    /// The Instance the agent saw running.
    instance_id: Option<ID>,
    /// Per component: ready and desired replicas, as the agent reported them.
    components: Json<Value>,
    urls: Vec<String>,
    reported_at: Option<String>,
}

pub struct PodStatus(pub PodRow);

#[Object]
impl PodStatus {
    async fn namespace(&self) -> &str {
        &self.0.pod.namespace
    }
    async fn name(&self) -> &str {
        &self.0.pod.name
    }
    async fn deployment_id(&self) -> Option<ID> {
        self.0.pod.deployment_id.clone().map(ID)
    }
    async fn component(&self) -> Option<&str> {
        self.0.pod.component.as_deref()
    }
    async fn phase(&self) -> &str {
        &self.0.pod.phase
    }
    async fn ready(&self) -> bool {
        self.0.pod.ready
    }
    async fn restarts(&self) -> i64 {
        self.0.pod.restarts
    }
    async fn node(&self) -> Option<&str> {
        self.0.pod.node.as_deref()
    }
    async fn ip(&self) -> Option<&str> {
        self.0.pod.ip.as_deref()
    }
    async fn containers(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.0.pod.containers).unwrap_or_default())
    }
    async fn started_at(&self) -> Option<&str> {
        self.0.pod.started_at.as_deref()
    }
    async fn reported_at(&self) -> String {
        time(self.0.reported_at)
    }
}

pub struct Instance(pub InstanceRow);

/// A frozen snapshot of a deployment: the resolved Context and pinned versions.
#[Object]
impl Instance {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn deployment_id(&self) -> ID {
        ID(self.0.deployment_id.clone())
    }
    async fn state(&self) -> InstanceState {
        self.0.state
    }
    async fn app_version(&self) -> &str {
        &self.0.app_version
    }
    async fn driver_version(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ApplicationDriverVersion>> {
        Ok(loader(ctx)
            .load_one(DriverVersionId(self.0.driver_version_id.clone()))
            .await?
            .map(ApplicationDriverVersion))
    }
    async fn context_digest(&self) -> &str {
        &self.0.context_digest
    }
    /// The frozen `GlobalContext`.
    #[graphql(complexity = 10)]
    async fn context(&self) -> Json<&Value> {
        Json(&self.0.context)
    }
    /// The Helm values the driver's template rendered from the Context.
    #[graphql(complexity = 10)]
    async fn rendered_values(&self) -> Json<&Value> {
        Json(&self.0.rendered_values)
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
}

pub struct Deployment(pub DeploymentRow);

/// One application in one environment: the desired state.
#[Object]
impl Deployment {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn environment_id(&self) -> ID {
        ID(self.0.environment_id.clone())
    }
    async fn environment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Environment>> {
        Ok(loader(ctx)
            .load_one(EnvironmentId(self.0.environment_id.clone()))
            .await?
            .map(Environment))
    }
    async fn cluster_id(&self) -> ID {
        ID(self.0.cluster_id.clone())
    }
    async fn driver_version(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ApplicationDriverVersion>> {
        Ok(loader(ctx)
            .load_one(DriverVersionId(self.0.driver_version_id.clone()))
            .await?
            .map(ApplicationDriverVersion))
    }
    async fn app_version(&self) -> &str {
        &self.0.app_version
    }
    /// The values the user set (defaults are applied in each Instance's Context).
    async fn parameters(&self) -> Json<&BTreeMap<String, Value>> {
        Json(&self.0.parameters)
    }
    /// The names of the secret parameters whose values the server holds (encrypted);
    /// their values are never returned.
    async fn secret_parameters(&self) -> Vec<&str> {
        self.0
            .secret_parameters
            .keys()
            .map(String::as_str)
            .collect()
    }
    async fn config(&self) -> Json<&Value> {
        Json(&self.0.config)
    }
    async fn components(&self) -> async_graphql::Result<Json<Value>> {
        Ok(Json(serde_json::to_value(&self.0.components)?))
    }
    async fn phase(&self) -> DeploymentPhase {
        self.0.phase.into()
    }
    /// Why the latest run failed, until a later one succeeds.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn status(&self, ctx: &Context<'_>) -> async_graphql::Result<DeploymentStatus> {
        let s = state(ctx);
        let (cluster, report) = futures::try_join!(
            loader(ctx).load_one(ClusterId(self.0.cluster_id.clone())),
            loader(ctx).load_one(StatusOf(self.0.id.clone())),
        )?;
        let online = cluster.as_ref().is_some_and(|cl| agent_online(s, cl));
        Ok(match report {
            _ if !online => DeploymentStatus {
                status: ObservedStatus::Unknown,
                message: Some(match cluster.and_then(|c| c.agent_last_seen) {
                    Some(seen) => {
                        format!("the cluster's agent is offline (last seen {})", time(seen))
                    }
                    None => "the cluster's agent has never connected".into(),
                }),
                instance_id: None,
                components: Json(Value::Object(Default::default())),
                urls: Vec::new(),
                reported_at: None,
            },
            Some(r) => DeploymentStatus {
                status: ObservedStatus::parse(&r.status),
                message: r.message,
                instance_id: r.instance_id.map(ID),
                components: Json(r.components),
                urls: r.urls,
                reported_at: Some(time(r.reported_at)),
            },
            None => DeploymentStatus {
                status: if self.0.last_error.is_some() {
                    ObservedStatus::Failed
                } else {
                    ObservedStatus::Pending
                },
                message: self.0.last_error.clone(),
                instance_id: None,
                components: Json(Value::Object(Default::default())),
                urls: Vec::new(),
                reported_at: None,
            },
        })
    }
    async fn active_instance(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Instance>> {
        let Some(id) = &self.0.active_instance_id else {
            return Ok(None);
        };
        let mut c = state(ctx).db.read().await?;
        Ok(deployments::instance(&mut c, id).await?.map(Instance))
    }
    /// Newest first.
    async fn instances(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Instance>> {
        let mut c = state(ctx).db.read().await?;
        Ok(deployments::instances_of(&mut c, &self.0.id)
            .await?
            .into_iter()
            .map(Instance)
            .collect())
    }
    /// Newest first.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn flow_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<FlowRun>> {
        let mut c = state(ctx).db.read().await?;
        let filter = flow_runs::Filter {
            deployment_id: Some(self.0.id.clone()),
            ..Default::default()
        };
        Ok(flow_runs::list(&mut c, &filter, page(first, None))
            .await?
            .into_iter()
            .map(FlowRun)
            .collect())
    }
    async fn pods(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PodStatus>> {
        let mut c = state(ctx).db.read().await?;
        Ok(statuses::pods_of_deployment(&mut c, &self.0.id)
            .await?
            .into_iter()
            .map(PodStatus)
            .collect())
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(self.0.updated_at)
    }
    async fn deleted_at(&self) -> Option<String> {
        time_opt(self.0.deleted_at)
    }
}

/// What a change did: the new Instance and the run scheduled, both absent for a no-op.
#[derive(SimpleObject)]
pub struct DeploymentChange {
    deployment: Deployment,
    instance: Option<Instance>,
    flow_run: Option<FlowRun>,
    /// True when the change resolved to the state already wanted: nothing was scheduled.
    noop: bool,
}

impl From<Change> for DeploymentChange {
    fn from(c: Change) -> Self {
        DeploymentChange {
            noop: c.run.is_none(),
            deployment: Deployment(c.deployment),
            instance: c.instance.map(Instance),
            flow_run: c.run.map(FlowRun),
        }
    }
}

#[derive(SimpleObject)]
pub struct ValueChange {
    /// Dotted path with `[i]` for list items.
    path: String,
    before: Option<Json<Value>>,
    after: Option<Json<Value>>,
}

#[derive(SimpleObject)]
pub struct DeploymentPlan {
    /// The remediation the change would schedule; null when it changes nothing.
    kind: Option<FlowRunKind>,
    context_digest: String,
    /// Rendered Helm values that would change, against the active Instance.
    changes: Vec<ValueChange>,
}

/// A per-component setting: extra environment variables and command overrides the driver
/// allows.
#[derive(InputObject)]
pub struct DeploymentEdit {
    /// Merged into the current values; `null` removes a value so its default applies.
    parameters: Option<Json<Value>>,
    /// Values of `secret` parameters, name → text, merged into the current ones (`null`
    /// removes one): stored encrypted, never returned.
    secret_parameters: Option<Json<Value>>,
    config: Option<Json<Value>>,
    components: Option<Json<Value>>,
    app_version: Option<String>,
    /// `spec.version`, id or digest of a version of the same driver, or `latest`.
    driver_version: Option<String>,
}

fn object_param(
    field: &str,
    value: Option<Json<Value>>,
) -> Result<BTreeMap<String, Value>, ApiError> {
    match value.map(|v| v.0) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => Ok(map.into_iter().collect()),
        Some(other) => Err(ApiError::field(
            field,
            format!(
                "must be an object of name → value, found {}",
                crate::services::kind_of(&other)
            ),
        )),
    }
}

/// At most this many secret parameters in one call, each of at most this many bytes.
const MAX_SECRETS: usize = 64;
const MAX_SECRET_BYTES: usize = 64 * 1024;

/// `secretParameters`: name → text (or `null`, where `removable`, to remove one). Errors
/// name the parameter, never its value.
fn secret_params(
    value: Option<Json<Value>>,
    removable: bool,
) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    const FIELD: &str = "secretParameters";
    let map = object_param(FIELD, value)?;
    if map.len() > MAX_SECRETS {
        return Err(ApiError::field(
            FIELD,
            format!("at most {MAX_SECRETS} secret parameters at once"),
        ));
    }
    map.into_iter()
        .map(|(name, value)| {
            let field = format!("{FIELD}.{name}");
            match value {
                Value::String(text) if text.len() > MAX_SECRET_BYTES => Err(ApiError::field(
                    field,
                    format!("is longer than {MAX_SECRET_BYTES} bytes"),
                )),
                Value::String(text) => Ok((name, Some(text))),
                Value::Null if removable => Ok((name, None)),
                _ => Err(ApiError::field(field, "must be a string")),
            }
        })
        .collect()
}

impl DeploymentEdit {
    fn into_edit(self) -> Result<Edit, ApiError> {
        Ok(Edit {
            parameters: object_param("parameters", self.parameters)?,
            secret_parameters: secret_params(self.secret_parameters, true)?,
            config: self.config.map(|c| c.0),
            components: match self.components {
                Some(c) => Some(reconcile::parse_components(Some(c.0))?),
                None => None,
            },
            app_version: self.app_version,
            driver_version: self.driver_version,
        })
    }
}

#[derive(Default)]
pub struct DeploymentQuery;

#[Object]
impl DeploymentQuery {
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        environment: Option<ID>,
        cluster: Option<ID>,
        #[graphql(default = false)] include_deleted: bool,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Deployment>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let environment_id = match environment {
            Some(r) => Some(resolve::environment(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let cluster_id = match cluster {
            Some(r) => Some(resolve::cluster(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let filter = deployments::Filter {
            environment_id,
            cluster_id,
            include_deleted,
        };
        Ok(deployments::list(&mut c, &filter, page(first, offset))
            .await?
            .into_iter()
            .map(Deployment)
            .collect())
    }

    /// By id, name, or ENVIRONMENT/NAME.
    async fn deployment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Deployment> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(Deployment(resolve::deployment(&mut c, &id).await.gql()?))
    }

    async fn instance(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Instance> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        deployments::instance(&mut c, &id)
            .await?
            .map(Instance)
            .ok_or(ApiError::not_found("instance", id.to_string()))
            .gql()
    }

    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn pod_statuses(
        &self,
        ctx: &Context<'_>,
        cluster: Option<ID>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<PodStatus>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let cluster_id = match cluster {
            Some(r) => Some(resolve::cluster(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let p = page(first, offset);
        Ok(
            statuses::pods(&mut c, cluster_id.as_deref(), p.limit, p.offset)
                .await?
                .into_iter()
                .map(PodStatus)
                .collect(),
        )
    }
}

#[derive(Default)]
pub struct DeploymentMutation;

#[Object]
impl DeploymentMutation {
    /// A new deployment of a driver (its latest version unless `driverVersion` names one)
    /// in an environment; schedules its `create` run.
    #[allow(clippy::too_many_arguments)]
    async fn create_deployment(
        &self,
        ctx: &Context<'_>,
        driver: String,
        app_version: String,
        environment_id: ID,
        #[graphql(desc = "Defaults to the driver's name.")] name: Option<String>,
        driver_version: Option<String>,
        parameters: Option<Json<Value>>,
        #[graphql(
            desc = "Values of `secret` parameters, name → text: stored encrypted, never returned."
        )]
        secret_parameters: Option<Json<Value>>,
        config: Option<Json<Value>>,
        components: Option<Json<Value>>,
    ) -> async_graphql::Result<DeploymentChange> {
        let new = NewDeployment {
            name,
            environment: environment_id.to_string(),
            driver,
            driver_version,
            app_version,
            parameters: object_param("parameters", parameters).gql()?,
            secret_parameters: secret_params(secret_parameters, false)
                .gql()?
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?)))
                .collect(),
            config: config
                .map(|c| c.0)
                .unwrap_or_else(|| Value::Object(Default::default())),
            components: reconcile::parse_components(components.map(|c| c.0)).gql()?,
        };
        reconcile::create(state(ctx), who(ctx)?, new)
            .await
            .gql()
            .map(Into::into)
    }

    /// Changes parameters, config or component settings; schedules `update` unless
    /// nothing changes.
    async fn update_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        parameters: Option<Json<Value>>,
        #[graphql(
            desc = "Values of `secret` parameters, name → text (`null` removes one): stored encrypted, never returned."
        )]
        secret_parameters: Option<Json<Value>>,
        config: Option<Json<Value>>,
        components: Option<Json<Value>>,
    ) -> async_graphql::Result<DeploymentChange> {
        let edit = DeploymentEdit {
            parameters,
            secret_parameters,
            config,
            components,
            app_version: None,
            driver_version: None,
        }
        .into_edit()
        .gql()?;
        reconcile::edit(state(ctx), who(ctx)?, &id, edit)
            .await
            .gql()
            .map(Into::into)
    }

    /// Moves to another application version and/or driver version (`latest` for the
    /// driver's newest); schedules `upgrade`.
    async fn upgrade_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        app_version: Option<String>,
        driver_version: Option<String>,
    ) -> async_graphql::Result<DeploymentChange> {
        if app_version.is_none() && driver_version.is_none() {
            return Err(ApiError::field(
                "appVersion",
                "name an application version, a driver version, or both",
            ))
            .gql();
        }
        let edit = Edit {
            app_version,
            driver_version,
            ..Default::default()
        };
        reconcile::edit(state(ctx), who(ctx)?, &id, edit)
            .await
            .gql()
            .map(Into::into)
    }

    async fn stop_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeploymentChange> {
        reconcile::set_phase(state(ctx), who(ctx)?, &id, Phase::Stopped)
            .await
            .gql()
            .map(Into::into)
    }

    async fn start_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeploymentChange> {
        reconcile::set_phase(state(ctx), who(ctx)?, &id, Phase::Running)
            .await
            .gql()
            .map(Into::into)
    }

    async fn delete_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeploymentChange> {
        reconcile::set_phase(state(ctx), who(ctx)?, &id, Phase::Deleting)
            .await
            .gql()
            .map(Into::into)
    }

    /// Runs the deployment's failed latest run again, as a new attempt.
    async fn retry_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeploymentChange> {
        reconcile::retry(state(ctx), who(ctx)?, &id)
            .await
            .gql()
            .map(Into::into)
    }

    /// Dry run of a change: the remediation it would schedule and the values it would
    /// change. Stores nothing.
    async fn plan_deployment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        change: Option<DeploymentEdit>,
    ) -> async_graphql::Result<DeploymentPlan> {
        let edit = match change {
            Some(c) => c.into_edit().gql()?,
            None => Edit::default(),
        };
        let plan = reconcile::plan(state(ctx), who(ctx)?, &id, edit)
            .await
            .gql()?;
        Ok(DeploymentPlan {
            kind: plan.kind.map(Into::into),
            context_digest: plan.context_digest,
            changes: plan
                .changes
                .into_iter()
                .map(|c| ValueChange {
                    path: c.path,
                    before: c.before.map(Json),
                    after: c.after.map(Json),
                })
                .collect(),
        })
    }
}
