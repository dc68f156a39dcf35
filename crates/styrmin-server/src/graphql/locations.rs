//! Backup storage locations. The secret access key goes in and never comes out.

use async_graphql::{Context, ID, Object};

use super::environments::Environment;
use super::{page, reader, state, time, who};
use crate::error::IntoGql as _;
use crate::resolve;
use crate::services::locations::{self as service, NewLocation};
use crate::store::locations::{self, LocationRow};

pub struct BackupStorageLocation(pub LocationRow);

/// An S3-compatible bucket registered as a Velero destination.
#[Object]
impl BackupStorageLocation {
    async fn id(&self) -> async_graphql::ID {
        async_graphql::ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
    async fn bucket(&self) -> &str {
        &self.0.bucket
    }
    async fn region(&self) -> &str {
        &self.0.region
    }
    async fn access_key_id(&self) -> &str {
        &self.0.access_key_id
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
}

#[derive(Default)]
pub struct LocationQuery;

#[Object]
impl LocationQuery {
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn backup_storage_locations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<BackupStorageLocation>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(locations::list(&mut c, page(first, offset))
            .await?
            .into_iter()
            .map(BackupStorageLocation)
            .collect())
    }

    async fn backup_storage_location(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<BackupStorageLocation> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(BackupStorageLocation(
            resolve::location(&mut c, &id).await.gql()?,
        ))
    }
}

#[derive(Default)]
pub struct LocationMutation;

#[Object]
impl LocationMutation {
    #[allow(clippy::too_many_arguments)]
    async fn create_backup_storage_location(
        &self,
        ctx: &Context<'_>,
        name: String,
        endpoint: String,
        bucket: String,
        region: String,
        access_key_id: String,
        #[graphql(secret)] secret_access_key: String,
    ) -> async_graphql::Result<BackupStorageLocation> {
        service::create_location(
            state(ctx),
            who(ctx)?,
            NewLocation {
                name: &name,
                endpoint: &endpoint,
                bucket: &bucket,
                region: &region,
                access_key_id: &access_key_id,
                secret_access_key: &secret_access_key,
            },
        )
        .await
        .gql()
        .map(BackupStorageLocation)
    }

    async fn assign_backup_storage_location(
        &self,
        ctx: &Context<'_>,
        environment_id: ID,
        backup_storage_location_id: ID,
    ) -> async_graphql::Result<Environment> {
        service::assign_location(
            state(ctx),
            who(ctx)?,
            &environment_id,
            &backup_storage_location_id,
        )
        .await
        .gql()
        .map(Environment)
    }

    async fn delete_backup_storage_location(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<BackupStorageLocation> {
        service::delete_location(state(ctx), who(ctx)?, &id)
            .await
            .gql()
            .map(BackupStorageLocation)
    }
}
