//! Names are accepted wherever ids are: these turn a user's reference into one row, or a
//! clear error when it names nothing or more than one thing.

use crate::error::{ApiError, ApiResult};
use crate::store::clusters::{self, ClusterRow};
use crate::store::deployments::{self, DeploymentRow};
use crate::store::environments::{self, EnvironmentRow};
use crate::store::locations::{self, LocationRow};
use crate::store::{Conn, drivers};

pub async fn cluster(c: &mut Conn, reference: &str) -> ApiResult<ClusterRow> {
    clusters::find(c, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", reference))
}

pub async fn environment(c: &mut Conn, reference: &str) -> ApiResult<EnvironmentRow> {
    let (cluster_ref, env_ref) = match reference.split_once('/') {
        Some((cluster, env)) => (Some(cluster), env),
        None => (None, reference),
    };
    let mut found = environments::find(c, env_ref).await?;
    if let Some(cluster_ref) = cluster_ref {
        let cluster = cluster(c, cluster_ref).await?;
        found.retain(|e| e.cluster_id == cluster.id);
    }
    one(
        found,
        "environment",
        reference,
        |e| &e.id,
        "CLUSTER/ENVIRONMENT",
    )
}

pub async fn location(c: &mut Conn, reference: &str) -> ApiResult<LocationRow> {
    locations::find(c, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("backup storage location", reference))
}

pub async fn deployment(c: &mut Conn, reference: &str) -> ApiResult<DeploymentRow> {
    let found = deployments::find(c, reference).await?;
    one(
        found,
        "deployment",
        reference,
        |d| &d.id,
        "ENVIRONMENT/NAME",
    )
}

pub async fn driver(c: &mut Conn, reference: &str) -> ApiResult<drivers::DriverRow> {
    drivers::find_driver(c, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("application driver", reference))
}

fn one<T>(
    mut found: Vec<T>,
    kind: &'static str,
    reference: &str,
    id: impl Fn(&T) -> &String,
    qualified: &str,
) -> ApiResult<T> {
    // An exact id match sorts first and wins over equal names.
    if found.first().is_some_and(|f| id(f) == reference) {
        return Ok(found.swap_remove(0));
    }
    match found.len() {
        0 => Err(ApiError::not_found(kind, reference)),
        1 => Ok(found.pop().expect("one")),
        n => Err(ApiError::Validation(vec![styrmin_core::FieldError::new(
            kind,
            format!(
                "`{reference}` names {n} {kind}s ({}); use an id or {qualified}",
                found
                    .iter()
                    .map(|f| id(f).as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )])),
    }
}
