//! Backups and restores (SPEC §9): taking, restoring and deleting them, and reading how
//! they went, per component.

use async_graphql::{Context, ID, Object, SimpleObject};
use serde_json::Value;
use styrmin_core::backup::ComponentResult;

use super::deployments::Deployment;
use super::environments::Environment;
use super::flow_runs::FlowRun;
use super::loaders::{DeploymentId, EnvironmentId, loader};
use super::{page, reader, state, time, time_opt, who};
use crate::error::{ApiError, IntoGql as _};
use crate::resolve;
use crate::services::backups::{self as service, Scope};
use crate::store::backups::{self, BackupRow, RestoreRow};
use crate::store::flow_runs;

/// One component's part of a backup or restore, as the agent reported it.
#[derive(SimpleObject)]
pub struct BackupComponentResult {
    component: String,
    /// The strategy (`backup.kind`): `disk`, `postgres`, `mariadb`, `mongodb`, `neo4j` or
    /// `action`.
    strategy: String,
    /// Bytes the strategy wrote or read back.
    bytes: Option<i64>,
    duration_ms: i64,
    /// Why this component failed; null when it succeeded.
    error: Option<String>,
}

fn component_results(value: &Value) -> Vec<BackupComponentResult> {
    // Written from `ComponentResult` by the server itself; a row that does not read shows
    // no components.
    serde_json::from_value::<Vec<ComponentResult>>(value.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| BackupComponentResult {
            component: c.component,
            strategy: c.kind.as_str().to_owned(),
            bytes: c.bytes.and_then(|b| i64::try_from(b).ok()),
            duration_ms: i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
            error: c.error,
        })
        .collect()
}

async fn run_of(ctx: &Context<'_>, id: &Option<String>) -> async_graphql::Result<Option<FlowRun>> {
    let Some(id) = id else { return Ok(None) };
    let mut c = state(ctx).db.read().await?;
    Ok(flow_runs::get(&mut c, id).await?.map(FlowRun))
}

async fn deployment_of(
    ctx: &Context<'_>,
    id: &Option<String>,
) -> async_graphql::Result<Option<Deployment>> {
    let Some(id) = id else { return Ok(None) };
    Ok(loader(ctx)
        .load_one(DeploymentId(id.clone()))
        .await?
        .map(Deployment))
}

async fn environment_of(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<Environment>> {
    Ok(loader(ctx)
        .load_one(EnvironmentId(id.to_owned()))
        .await?
        .map(Environment))
}

pub struct Backup(pub BackupRow);

/// A backup of one deployment, or of a whole environment (then its `parts` are the
/// deployments' backups and its state, size and errors come from theirs).
#[Object]
impl Backup {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn environment_id(&self) -> ID {
        ID(self.0.environment_id.clone())
    }
    async fn environment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Environment>> {
        environment_of(ctx, &self.0.environment_id).await
    }
    /// Null for an environment backup.
    async fn deployment_id(&self) -> Option<ID> {
        self.0.deployment_id.clone().map(ID)
    }
    /// The deployment backed up, deleted or not.
    async fn deployment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Deployment>> {
        deployment_of(ctx, &self.0.deployment_id).await
    }
    /// The environment backup this one is a part of.
    async fn parent_id(&self) -> Option<ID> {
        self.0.parent_id.clone().map(ID)
    }
    /// An environment backup's backups, one per deployment.
    async fn parts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Backup>> {
        if self.0.deployment_id.is_some() {
            return Ok(Vec::new());
        }
        let mut c = state(ctx).db.read().await?;
        Ok(backups::parts(&mut c, &self.0.id)
            .await?
            .into_iter()
            .map(Backup)
            .collect())
    }
    async fn backup_storage_location_id(&self) -> ID {
        ID(self.0.bsl_id.clone())
    }
    /// `scheduled`, `running`, `completed`, `partially_failed` or `failed`.
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    /// Bytes stored in the bucket (an environment backup: its parts' sum).
    async fn size_bytes(&self) -> Option<i64> {
        self.0.size_bytes
    }
    async fn components(&self) -> Vec<BackupComponentResult> {
        component_results(&self.0.components)
    }
    /// Errors not tied to one component.
    async fn errors(&self) -> &[String] {
        &self.0.errors
    }
    /// True while its `delete_backup` run is open.
    async fn deleting(&self) -> bool {
        self.0.deleting_at.is_some()
    }
    /// The `backup` run that takes it (none for an environment backup).
    async fn flow_run_id(&self) -> Option<ID> {
        self.0.flow_run_id.clone().map(ID)
    }
    async fn flow_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<FlowRun>> {
        run_of(ctx, &self.0.flow_run_id).await
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn finished_at(&self) -> Option<String> {
        time_opt(self.0.finished_at)
    }
}

pub struct Restore(pub RestoreRow);

/// A backup's data brought back into a deployment.
#[Object]
impl Restore {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn backup_id(&self) -> ID {
        ID(self.0.backup_id.clone())
    }
    async fn backup(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Backup>> {
        let mut c = state(ctx).db.read().await?;
        Ok(backups::get(&mut c, &self.0.backup_id).await?.map(Backup))
    }
    async fn target_environment_id(&self) -> ID {
        ID(self.0.target_environment_id.clone())
    }
    async fn target_deployment_id(&self) -> Option<ID> {
        self.0.target_deployment_id.clone().map(ID)
    }
    async fn target_deployment(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Deployment>> {
        deployment_of(ctx, &self.0.target_deployment_id).await
    }
    /// `scheduled`, `running`, `completed`, `partially_failed` or `failed`.
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    async fn components(&self) -> Vec<BackupComponentResult> {
        component_results(&self.0.components)
    }
    async fn errors(&self) -> &[String] {
        &self.0.errors
    }
    async fn flow_run_id(&self) -> Option<ID> {
        self.0.flow_run_id.clone().map(ID)
    }
    async fn flow_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<FlowRun>> {
        run_of(ctx, &self.0.flow_run_id).await
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn finished_at(&self) -> Option<String> {
        time_opt(self.0.finished_at)
    }
}

#[derive(Default)]
pub struct BackupQuery;

#[Object]
impl BackupQuery {
    /// Newest first: deployments' backups and environment backups alike.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn backups(
        &self,
        ctx: &Context<'_>,
        environment: Option<ID>,
        deployment: Option<ID>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Backup>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let environment_id = match environment {
            Some(r) => Some(resolve::environment(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let deployment_id = match deployment {
            Some(r) => Some(resolve::deployment(&mut c, &r).await.gql()?.id),
            None => None,
        };
        let filter = backups::Filter {
            environment_id,
            deployment_id,
            parent_id: None,
        };
        Ok(backups::list(&mut c, &filter, page(first, offset))
            .await?
            .into_iter()
            .map(Backup)
            .collect())
    }

    async fn backup(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Backup> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        service::find_backup(&mut c, &id).await.gql().map(Backup)
    }

    /// Newest first.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn restores(
        &self,
        ctx: &Context<'_>,
        environment: Option<ID>,
        backup: Option<ID>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Restore>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        let environment_id = match environment {
            Some(r) => Some(resolve::environment(&mut c, &r).await.gql()?.id),
            None => None,
        };
        Ok(backups::restores(
            &mut c,
            environment_id.as_deref(),
            backup.as_ref().map(|b| b.as_str()),
            page(first, offset),
        )
        .await?
        .into_iter()
        .map(Restore)
        .collect())
    }

    async fn restore(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Restore> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        backups::get_restore(&mut c, &id)
            .await?
            .map(Restore)
            .ok_or(ApiError::not_found("restore", id.to_string()))
            .gql()
    }
}

#[derive(Default)]
pub struct BackupMutation;

#[Object]
impl BackupMutation {
    /// Backs up one deployment (`deploymentId`) or every deployment of an environment as
    /// one operation (`environmentId`): give exactly one. Refused when the environment has
    /// no backup storage location.
    async fn create_backup(
        &self,
        ctx: &Context<'_>,
        deployment_id: Option<ID>,
        environment_id: Option<ID>,
    ) -> async_graphql::Result<Backup> {
        let scope = match (&deployment_id, &environment_id) {
            (Some(d), None) => Scope::Deployment(d),
            (None, Some(e)) => Scope::Environment(e),
            _ => {
                return Err(ApiError::field(
                    "deploymentId",
                    "give exactly one of deploymentId and environmentId",
                ))
                .gql();
            }
        };
        service::create_backup(state(ctx), who(ctx)?, scope)
            .await
            .gql()
            .map(Backup)
    }

    /// Deletes a backup's data from its bucket (a `delete_backup` run); the backup goes when
    /// the run completes. An environment backup deletes each of its parts.
    async fn delete_backup(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Backup> {
        service::delete_backup(state(ctx), who(ctx)?, &id)
            .await
            .gql()
            .map(Backup)
    }

    /// Restores a deployment's backup into the deployment it was taken of, or into
    /// `toDeploymentId`: another deployment of the same driver on the same cluster. Its
    /// data is overwritten.
    async fn restore_backup(
        &self,
        ctx: &Context<'_>,
        backup_id: ID,
        to_deployment_id: Option<ID>,
    ) -> async_graphql::Result<Restore> {
        service::restore_backup(
            state(ctx),
            who(ctx)?,
            &backup_id,
            to_deployment_id.as_ref().map(|d| d.as_str()),
        )
        .await
        .gql()
        .map(Restore)
    }
}
