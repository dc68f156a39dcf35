//! Batched lookups for fields that every row of a list asks for (a deployment's
//! environment, driver version, cluster and status; a run's deployment): the rows of one
//! list are fetched in one query instead of one each. Nothing is cached, so a lookup never
//! returns something older than the request.

use std::collections::HashMap;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};

use crate::store::statuses::{self, DeploymentStatusRow};
use crate::store::{
    Db, clusters, clusters::ClusterRow, deployments, deployments::DeploymentRow, drivers,
    drivers::DriverVersionRow, environments, environments::EnvironmentRow,
};

pub struct Store {
    pub db: Db,
}

pub type Loaders = DataLoader<Store>;

pub fn loaders(db: Db) -> Loaders {
    DataLoader::new(Store { db }, tokio::spawn)
}

pub(crate) fn loader<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClusterId(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EnvironmentId(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeploymentId(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DriverVersionId(pub String);
/// The latest status report of a deployment, by the deployment's id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StatusOf(pub String);

fn ids<K>(keys: &[K], id: impl Fn(&K) -> &String) -> Vec<String> {
    keys.iter().map(|k| id(k).clone()).collect()
}

/// Errors are shared by every waiting field, so they travel as text.
fn text(e: sqlx::Error) -> String {
    format!("database: {e}")
}

impl Loader<ClusterId> for Store {
    type Value = ClusterRow;
    type Error = String;
    async fn load(&self, keys: &[ClusterId]) -> Result<HashMap<ClusterId, ClusterRow>, String> {
        let mut c = self.db.read().await.map_err(text)?;
        let rows = clusters::get_many(&mut c, &ids(keys, |k| &k.0))
            .await
            .map_err(text)?;
        Ok(rows
            .into_iter()
            .map(|r| (ClusterId(r.id.clone()), r))
            .collect())
    }
}

impl Loader<EnvironmentId> for Store {
    type Value = EnvironmentRow;
    type Error = String;
    async fn load(
        &self,
        keys: &[EnvironmentId],
    ) -> Result<HashMap<EnvironmentId, EnvironmentRow>, String> {
        let mut c = self.db.read().await.map_err(text)?;
        let rows = environments::get_many(&mut c, &ids(keys, |k| &k.0))
            .await
            .map_err(text)?;
        Ok(rows
            .into_iter()
            .map(|r| (EnvironmentId(r.id.clone()), r))
            .collect())
    }
}

impl Loader<DeploymentId> for Store {
    type Value = DeploymentRow;
    type Error = String;
    async fn load(
        &self,
        keys: &[DeploymentId],
    ) -> Result<HashMap<DeploymentId, DeploymentRow>, String> {
        let mut c = self.db.read().await.map_err(text)?;
        let rows = deployments::get_many(&mut c, &ids(keys, |k| &k.0))
            .await
            .map_err(text)?;
        Ok(rows
            .into_iter()
            .map(|r| (DeploymentId(r.id.clone()), r))
            .collect())
    }
}

impl Loader<DriverVersionId> for Store {
    type Value = DriverVersionRow;
    type Error = String;
    async fn load(
        &self,
        keys: &[DriverVersionId],
    ) -> Result<HashMap<DriverVersionId, DriverVersionRow>, String> {
        let mut c = self.db.read().await.map_err(text)?;
        let rows = drivers::versions_by_ids(&mut c, &ids(keys, |k| &k.0))
            .await
            .map_err(text)?;
        Ok(rows
            .into_iter()
            .map(|r| (DriverVersionId(r.id.clone()), r))
            .collect())
    }
}

impl Loader<StatusOf> for Store {
    type Value = DeploymentStatusRow;
    type Error = String;
    async fn load(
        &self,
        keys: &[StatusOf],
    ) -> Result<HashMap<StatusOf, DeploymentStatusRow>, String> {
        let mut c = self.db.read().await.map_err(text)?;
        let rows = statuses::statuses_of(&mut c, &ids(keys, |k| &k.0))
            .await
            .map_err(text)?;
        Ok(rows
            .into_iter()
            .map(|r| (StatusOf(r.deployment_id.clone()), r))
            .collect())
    }
}
