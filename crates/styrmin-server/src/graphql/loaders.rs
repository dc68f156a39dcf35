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

/// Errors are shared by every waiting field, so they travel as text.
fn text(e: sqlx::Error) -> String {
    format!("database: {e}")
}

/// `Loader<$key>`: the rows whose `$row_id` is one of the keys, fetched by `$fetch`.
macro_rules! batched {
    ($key:ident => $row:ty, $fetch:path, $row_id:ident) => {
        impl Loader<$key> for Store {
            type Value = $row;
            type Error = String;
            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $row>, String> {
                let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                let mut c = self.db.read().await.map_err(text)?;
                let rows = $fetch(&mut c, &ids).await.map_err(text)?;
                Ok(rows
                    .into_iter()
                    .map(|r| ($key(r.$row_id.clone()), r))
                    .collect())
            }
        }
    };
}

batched!(ClusterId => ClusterRow, clusters::get_many, id);
batched!(EnvironmentId => EnvironmentRow, environments::get_many, id);
batched!(DeploymentId => DeploymentRow, deployments::get_many, id);
batched!(DriverVersionId => DriverVersionRow, drivers::versions_by_ids, id);
batched!(StatusOf => DeploymentStatusRow, statuses::statuses_of, deployment_id);
