//! Clusters.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::environments::Environment;
use super::{page, reader, state, time, time_opt, who};
use crate::error::IntoGql as _;
use crate::reports::agent_online;
use crate::resolve;
use crate::services::clusters as service;
use crate::store::clusters::{self, ClusterRow};
use crate::store::{Page, environments};

pub struct Cluster(pub ClusterRow);

/// A registered Kubernetes cluster and its agent.
#[Object]
impl Cluster {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Inherited by its environments and deployments.
    async fn config(&self) -> Json<&Value> {
        Json(&self.0.config)
    }
    /// Whether the agent called in within the offline threshold.
    async fn agent_online(&self, ctx: &Context<'_>) -> bool {
        agent_online(state(ctx), &self.0)
    }
    async fn agent_last_seen(&self) -> Option<String> {
        time_opt(self.0.agent_last_seen)
    }
    async fn agent_version(&self) -> Option<&str> {
        self.0.agent_version.as_deref()
    }
    /// The server↔agent protocol version the agent last spoke.
    async fn agent_protocol_version(&self) -> Option<&str> {
        self.0.agent_protocol.as_deref()
    }
    /// Why the server refused the agent's last call (e.g. an incompatible protocol
    /// version); empty while the agent is accepted.
    async fn agent_refusal(&self) -> Option<&str> {
        self.0.agent_refusal.as_deref()
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(self.0.updated_at)
    }
    async fn environments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Environment>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let rows = environments::list(
            &mut c,
            Some(&self.0.id),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await?;
        Ok(rows.into_iter().map(Environment).collect())
    }
}

/// A new cluster with the token its agent authenticates with: shown this once.
#[derive(SimpleObject)]
pub struct CreateClusterPayload {
    cluster: Cluster,
    agent_token: String,
}

#[derive(Default)]
pub struct ClusterQuery;

#[Object]
impl ClusterQuery {
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn clusters(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Cluster>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(clusters::list(&mut c, page(first, offset))
            .await?
            .into_iter()
            .map(Cluster)
            .collect())
    }

    /// By id or name.
    async fn cluster(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Cluster> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(Cluster(resolve::cluster(&mut c, &id).await.gql()?))
    }
}

#[derive(Default)]
pub struct ClusterMutation;

#[Object]
impl ClusterMutation {
    async fn create_cluster(
        &self,
        ctx: &Context<'_>,
        name: String,
        config: Option<Json<Value>>,
    ) -> async_graphql::Result<CreateClusterPayload> {
        let config = config
            .map(|c| c.0)
            .unwrap_or_else(|| Value::Object(Default::default()));
        let (cluster, token) = service::create_cluster(state(ctx), who(ctx)?, &name, config)
            .await
            .gql()?;
        Ok(CreateClusterPayload {
            cluster: Cluster(cluster),
            agent_token: token,
        })
    }

    async fn update_cluster(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        config: Option<Json<Value>>,
    ) -> async_graphql::Result<Cluster> {
        service::update_cluster(
            state(ctx),
            who(ctx)?,
            &id,
            name.as_deref(),
            config.map(|c| c.0),
        )
        .await
        .gql()
        .map(Cluster)
    }

    async fn delete_cluster(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Cluster> {
        service::delete_cluster(state(ctx), who(ctx)?, &id)
            .await
            .gql()
            .map(Cluster)
    }

    /// A new agent token for the cluster; the old one stops working at once.
    async fn rotate_agent_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CreateClusterPayload> {
        let (cluster, token) = service::rotate_agent_token(state(ctx), who(ctx)?, &id)
            .await
            .gql()?;
        Ok(CreateClusterPayload {
            cluster: Cluster(cluster),
            agent_token: token,
        })
    }
}
