//! Environments.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::clusters::Cluster;
use super::deployments::{Deployment, ObservedStatus};
use super::loaders::{ClusterId, loader};
use super::locations::BackupStorageLocation;
use super::{page, reader, state, time, who};
use crate::error::IntoGql as _;
use crate::reports::agent_online;
use crate::resolve;
use crate::services::environments as service;
use crate::store::environments::{self, EnvironmentRow};
use crate::store::{Page, clusters, deployments, locations, statuses};

pub struct Environment(pub EnvironmentRow);

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
    ) -> async_graphql::Result<Environment> {
        service::update_environment(
            state(ctx),
            who(ctx)?,
            &id,
            name.as_deref(),
            config.map(|c| c.0),
        )
        .await
        .gql()
        .map(Environment)
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
