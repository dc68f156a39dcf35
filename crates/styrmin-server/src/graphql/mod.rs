//! The GraphQL API (SPEC §10): one file per noun, each with its types, queries and
//! mutations, merged into one schema. Resolvers only check the caller, call the service
//! modules and map rows to API types.

mod agent;
mod backups;
mod clusters;
mod deployments;
mod drivers;
mod environments;
mod flow_runs;
pub(crate) mod guard;
mod loaders;
mod locations;
mod subscriptions;
mod tokens;

use async_graphql::{Context, MergedObject, Schema};

use crate::auth::Principal;
use crate::error::{ApiError, IntoGql as _};
use crate::ids::rfc3339;
use crate::state::AppState;
use crate::store::Page;

pub use subscriptions::Subscription;

#[derive(MergedObject, Default)]
pub struct Query(
    clusters::ClusterQuery,
    environments::EnvironmentQuery,
    locations::LocationQuery,
    drivers::DriverQuery,
    deployments::DeploymentQuery,
    flow_runs::FlowRunQuery,
    backups::BackupQuery,
    tokens::TokenQuery,
    agent::AgentQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    clusters::ClusterMutation,
    environments::EnvironmentMutation,
    locations::LocationMutation,
    drivers::DriverMutation,
    deployments::DeploymentMutation,
    backups::BackupMutation,
    tokens::TokenMutation,
    agent::AgentMutation,
);

/// The most a query may cost: each field 1, a list field its items' cost times the items
/// asked for (`first`), a JSON document (a run's payload) 10.
pub const MAX_COMPLEXITY: usize = 100_000;

pub type StyrminSchema = Schema<Query, Mutation, Subscription>;

/// The schema with the shared state attached; each request adds its [`Principal`].
pub fn schema(state: AppState) -> StyrminSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .data(loaders::loaders(state.db.clone()))
        .data(state)
        .limit_depth(16)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(guard::Guard)
        .finish()
}

/// The SDL of the schema, as committed in docs/schema.graphql.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .finish()
        .sdl()
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The caller; every request through the HTTP layer carries one.
pub(crate) fn who<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    ctx.data_opt::<Principal>()
        .ok_or(ApiError::Unauthorized("a bearer token is required".into()))
        .map_err(crate::error::to_graphql)
}

pub(crate) fn reader<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    let who = who(ctx)?;
    who.can_read().gql()?;
    Ok(who)
}

/// The items a list field returns: `first`, 100 when not given, at most 1000.
fn page_size(first: Option<i32>) -> i32 {
    first.unwrap_or(100).clamp(1, 1000)
}

/// The query cost of a list field: what one item costs times the items `first` asks for,
/// so many aliases of a long list cannot hide from the complexity limit.
pub(crate) fn list_cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(page_size(first))
        .unwrap_or(1)
        .saturating_mul(child_complexity.max(1))
}

pub(crate) fn page(first: Option<i32>, offset: Option<i32>) -> Page {
    Page {
        limit: i64::from(page_size(first)),
        offset: i64::from(offset.unwrap_or(0).max(0)),
    }
}

pub(crate) fn time(ms: i64) -> String {
    rfc3339(ms)
}

pub(crate) fn time_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}
