//! Environments.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::backups::Restore;
use super::clusters::Cluster;
use super::deployments::{Deployment, ObservedStatus};
use super::flow_runs::FlowRun;
use super::loaders::{ClusterId, loader};
use super::locations::BackupStorageLocation;
use super::{page, reader, state, time, time_opt, who};
use crate::error::IntoGql as _;
use crate::reports::agent_online;
use crate::resolve;
use crate::services::environments as service;
use crate::store::environments::{self, EnvironmentRow};
use crate::store::{Page, clusters, deployments, locations, statuses};

pub struct Environment(pub EnvironmentRow);

/// Velero's phase of a backup storage location (`Available`, `Unavailable`) and why.
#[derive(SimpleObject)]
pub struct BackupLocationStatus {
    pub phase: String,
    pub message: Option<String>,
    pub reported_at: String,
}

/// What `cloneEnvironment` made: the environment, its deployments (each with a `create`
/// run) and, with data, a restore into each.
#[derive(SimpleObject)]
pub struct EnvironmentClone {
    environment: Environment,
    deployments: Vec<Deployment>,
    /// The runs scheduled: each deployment's `create`, then its `restore`.
    flow_runs: Vec<FlowRun>,
    restores: Vec<Restore>,
}

/// How many deployments have one observed status.
#[derive(SimpleObject)]
pub struct StatusCount {
    pub status: ObservedStatus,
    pub count: i64,
}

/// A group of deployments in one namespace of one cluster.
#[Object]
impl Environment {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn cluster_id(&self) -> ID {
        ID(self.0.cluster_id.clone())
    }
    async fn cluster(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Cluster>> {
        reader(ctx)?;
        Ok(loader(ctx)
            .load_one(ClusterId(self.0.cluster_id.clone()))
            .await?
            .map(Cluster))
    }
    /// Overrides the cluster's config.
    async fn config(&self) -> Json<&Value> {
        Json(&self.0.config)
    }
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// Deleted with its deployments: it goes when their delete runs complete.
    async fn deleting(&self) -> bool {
        self.0.deleting_at.is_some()
    }
    async fn backup_storage_location(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<BackupStorageLocation>> {
        reader(ctx)?;
        let Some(id) = &self.0.bsl_id else {
            return Ok(None);
        };
        let mut c = state(ctx).db.read().await?;
        Ok(locations::find(&mut c, id)
            .await?
            .map(BackupStorageLocation))
    }
    /// Live deployments by observed status, counted in one query (all `UNKNOWN` while the
    /// cluster's agent is offline).
    async fn status_counts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<StatusCount>> {
        reader(ctx)?;
        let s = state(ctx);
        let mut c = s.db.read().await?;
        let counts = statuses::counts_in_environment(&mut c, &self.0.id).await?;
        let online = clusters::find(&mut c, &self.0.cluster_id)
            .await?
            .is_some_and(|cluster| agent_online(s, &cluster));
        if !online {
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            return Ok((total > 0)
                .then_some(StatusCount {
                    status: ObservedStatus::Unknown,
                    count: total,
                })
                .into_iter()
                .collect());
        }
        Ok(counts
            .into_iter()
            .map(|(status, count)| StatusCount {
                status: ObservedStatus::parse(&status),
                count,
            })
            .collect())
    }
    async fn deployments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Deployment>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let filter = deployments::Filter {
            environment_id: Some(self.0.id.clone()),
            ..Default::default()
        };
        Ok(deployments::list(
            &mut c,
            &filter,
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await?
        .into_iter()
        .map(Deployment)
        .collect())
    }
    /// A five-field cron expression (UTC) the server backs the environment up on.
    async fn backup_schedule(&self) -> Option<&str> {
        self.0.backup_schedule.as_deref()
    }
    /// Completed backups kept per deployment; older ones are deleted. Null keeps all.
    async fn backup_keep(&self) -> Option<i64> {
        self.0.backup_keep
    }
    /// When the schedule next takes a backup.
    async fn backup_next_at(&self) -> Option<String> {
        time_opt(self.0.backup_next_at)
    }
    /// Velero's view of the environment's backup storage location, as the agent last
    /// reported it.
    async fn backup_location_status(&self) -> Option<BackupLocationStatus> {
        self.0
            .backup_location_status
            .as_ref()
            .map(|l| BackupLocationStatus {
                phase: l.phase.clone(),
                message: l.message.clone(),
                reported_at: time(l.reported_at),
            })
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(self.0.updated_at)
    }
}

#[derive(Default)]
pub struct EnvironmentQuery;

#[Object]
impl EnvironmentQuery {
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn environments(
        &self,
        ctx: &Context<'_>,
        cluster: Option<ID>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Environment>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let cluster_id = match cluster {
            Some(r) => Some(resolve::cluster(&mut c, &r).await.gql()?.id),
            None => None,
        };
        Ok(
            environments::list(&mut c, cluster_id.as_deref(), page(first, offset))
                .await?
                .into_iter()
                .map(Environment)
                .collect(),
        )
    }

    /// By id, name, or CLUSTER/NAME.
    async fn environment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Environment> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(Environment(resolve::environment(&mut c, &id).await.gql()?))
    }
}

#[derive(Default)]
pub struct EnvironmentMutation;

#[Object]
impl EnvironmentMutation {
    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        name: String,
        cluster_id: ID,
        config: Option<Json<Value>>,
    ) -> async_graphql::Result<Environment> {
        let config = config
            .map(|c| c.0)
            .unwrap_or_else(|| Value::Object(Default::default()));
        service::create_environment(state(ctx), who(ctx)?, &name, &cluster_id, config)
            .await
            .gql()
            .map(Environment)
    }

    async fn update_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        config: Option<Json<Value>>,
        #[graphql(
            desc = "A five-field cron expression in UTC (`0 3 * * *`): the server backs the environment up on it. Empty removes the schedule."
        )]
        backup_schedule: Option<String>,
        #[graphql(
            desc = "Completed backups to keep per deployment; older ones are deleted after each completed backup. 0 keeps all."
        )]
        backup_keep: Option<i64>,
    ) -> async_graphql::Result<Environment> {
        service::update_environment(
            state(ctx),
            who(ctx)?,
            &id,
            name.as_deref(),
            config.map(|c| c.0),
            service::BackupPolicy {
                schedule: backup_schedule,
                keep: backup_keep,
            },
        )
        .await
        .gql()
        .map(Environment)
    }

    /// A new environment `name` on the source's cluster with the source's config and
    /// backup location, and each of its deployments recreated (same driver version,
    /// application version and parameters). With `withData`, each deployment's latest
    /// completed backup is restored into its clone after the clone is created; a source
    /// deployment without one refuses the clone.
    async fn clone_environment(
        &self,
        ctx: &Context<'_>,
        source_id: ID,
        name: String,
        #[graphql(default = false)] with_data: bool,
    ) -> async_graphql::Result<EnvironmentClone> {
        let cloned =
            service::clone_environment(state(ctx), who(ctx)?, &source_id, &name, with_data)
                .await
                .gql()?;
        let mut flow_runs = Vec::new();
        let mut c = state(ctx).db.read().await?;
        for change in &cloned.changes {
            flow_runs.extend(change.run.clone().map(FlowRun));
        }
        for r in &cloned.restores {
            if let Some(id) = &r.flow_run_id
                && let Some(run) = crate::store::flow_runs::get(&mut c, id).await?
            {
                flow_runs.push(FlowRun(run));
            }
        }
        Ok(EnvironmentClone {
            environment: Environment(cloned.environment),
            deployments: cloned
                .changes
                .into_iter()
                .map(|c| Deployment(c.deployment))
                .collect(),
            flow_runs,
            restores: cloned.restores.into_iter().map(Restore).collect(),
        })
    }

    /// Deletes an environment. One with deployments is refused, unless `cascade`: then
    /// each deployment gets a `delete` run and the environment goes when they complete
    /// (`deleting` is true meanwhile).
    async fn delete_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = false)] cascade: bool,
    ) -> async_graphql::Result<Environment> {
        service::delete_environment(state(ctx), who(ctx)?, &id, cascade)
            .await
            .gql()
            .map(Environment)
    }
}
