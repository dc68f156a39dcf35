//! Flow runs and their logs.

use async_graphql::{Context, Enum, ID, Json, Object, SimpleObject};
use serde_json::Value;
use styrmin_core::planner::FlowKind;

use super::{page, reader, state, time, time_opt};
use crate::error::{ApiError, IntoGql as _};
use crate::queue;
use crate::resolve;
use crate::store::flow_runs::{self, FlowRunRow, LogLine, RunState};

/// What a flow run does on the agent.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(rename_items = "lowercase")]
pub enum FlowRunKind {
    Create,
    Update,
    Upgrade,
    Stop,
    Start,
    Delete,
    Backup,
    Restore,
    #[graphql(name = "delete_backup")]
    DeleteBackup,
}

impl From<FlowKind> for FlowRunKind {
    fn from(k: FlowKind) -> Self {
        match k {
            FlowKind::Create => FlowRunKind::Create,
            FlowKind::Update => FlowRunKind::Update,
            FlowKind::Upgrade => FlowRunKind::Upgrade,
            FlowKind::Stop => FlowRunKind::Stop,
            FlowKind::Start => FlowRunKind::Start,
            FlowKind::Delete => FlowRunKind::Delete,
            FlowKind::Backup => FlowRunKind::Backup,
            FlowKind::Restore => FlowRunKind::Restore,
            FlowKind::DeleteBackup => FlowRunKind::DeleteBackup,
        }
    }
}

pub struct FlowRun(pub FlowRunRow);

/// A unit of recorded intent the agent executes.
#[Object]
impl FlowRun {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn deployment_id(&self) -> Option<ID> {
        self.0.deployment_id.clone().map(ID)
    }
    /// The deployment the run acts on, deleted or not.
    async fn deployment(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::deployments::Deployment>> {
        let Some(id) = &self.0.deployment_id else {
            return Ok(None);
        };
        Ok(super::loaders::loader(ctx)
            .load_one(super::loaders::DeploymentId(id.clone()))
            .await?
            .map(super::deployments::Deployment))
    }
    async fn cluster_id(&self) -> ID {
        ID(self.0.cluster_id.clone())
    }
    async fn kind(&self) -> FlowRunKind {
        self.0.kind.into()
    }
    async fn state(&self) -> RunState {
        self.0.state
    }
    /// 1 for the first try; each expired lease or retry adds one.
    async fn attempt(&self) -> i64 {
        self.0.attempt
    }
    async fn max_attempts(&self) -> i64 {
        self.0.max_attempts
    }
    /// The Instance a create, update or upgrade run makes active.
    async fn instance_id(&self) -> Option<ID> {
        self.0.instance_id.clone().map(ID)
    }
    /// What the agent needs: the frozen Context, versions, driver digest, rendered values.
    #[graphql(complexity = 10)]
    async fn payload(&self) -> Json<&Value> {
        Json(&self.0.payload)
    }
    #[graphql(complexity = 10)]
    async fn result(&self) -> Option<Json<&Value>> {
        self.0.result.as_ref().map(Json)
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn lease_expires_at(&self) -> Option<String> {
        time_opt(self.0.lease_expires_at)
    }
    /// How long a lease lasts without a heartbeat, in seconds: an agent heartbeats well
    /// within it (a server setting, so the agent need not trust its own clock).
    async fn lease_seconds(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(state(ctx).settings.lease.as_secs_f64())
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn started_at(&self) -> Option<String> {
        time_opt(self.0.started_at)
    }
    async fn finished_at(&self) -> Option<String> {
        time_opt(self.0.finished_at)
    }
    async fn logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after: i64,
        #[graphql(default = 1000)] limit: i64,
        #[graphql(
            default = 0.0,
            desc = "When no line follows `after` and the run is still open, wait this long for one."
        )]
        wait_seconds: f64,
    ) -> async_graphql::Result<Vec<FlowRunLogLine>> {
        let wait = std::time::Duration::from_secs_f64(wait_seconds.clamp(0.0, 3600.0));
        let lines = queue::logs_wait(state(ctx), &self.0.id, after, limit, wait)
            .await
            .gql()?;
        Ok(lines.into_iter().map(FlowRunLogLine::from).collect())
    }
}

#[derive(SimpleObject, Clone)]
pub struct FlowRunLogLine {
    /// Position in the run's log, from 1; pass the last one seen as `after` to resume.
    pub seq: i64,
    pub attempt: i64,
    pub at: String,
    pub level: String,
    pub message: String,
}

impl From<LogLine> for FlowRunLogLine {
    fn from(l: LogLine) -> Self {
        FlowRunLogLine {
            seq: l.seq,
            attempt: l.attempt,
            at: time(l.at),
            level: l.level,
            message: l.message,
        }
    }
}

#[derive(Default)]
pub struct FlowRunQuery;

#[Object]
impl FlowRunQuery {
    /// Newest first.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn flow_runs(
        &self,
        ctx: &Context<'_>,
        deployment: Option<ID>,
        cluster: Option<ID>,
        state: Option<RunState>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<FlowRun>> {
        reader(ctx)?;
        let mut c = super::state(ctx).db.read().await?;
        let deployment_id = match deployment {
            Some(r) => Some(resolve::deployment(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let cluster_id = match cluster {
            Some(r) => Some(resolve::cluster(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let filter = flow_runs::Filter {
            deployment_id,
            cluster_id,
            state,
        };
        Ok(flow_runs::list(&mut c, &filter, page(first, offset))
            .await?
            .into_iter()
            .map(FlowRun)
            .collect())
    }

    async fn flow_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<FlowRun> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        flow_runs::get(&mut c, &id)
            .await?
            .map(FlowRun)
            .ok_or(ApiError::not_found("flow run", id.to_string()))
            .gql()
    }
}
