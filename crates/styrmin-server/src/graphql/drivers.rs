//! Application drivers and their versions.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::{reader, state, time, who};
use crate::driver_versions::{self, LoadOutcome};
use crate::error::IntoGql as _;
use crate::resolve;
use crate::store::drivers::{self, DriverRow, DriverVersionRow, Source};

pub struct ApplicationDriver(pub DriverRow);

/// A named deployment specification for one application.
#[Object]
impl ApplicationDriver {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    /// Newest load first.
    async fn versions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ApplicationDriverVersion>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(drivers::versions_of(&mut c, &self.0.id)
            .await?
            .into_iter()
            .map(ApplicationDriverVersion)
            .collect())
    }
    /// The version new deployments get: highest `spec.version`, latest load on a tie.
    async fn latest_version(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ApplicationDriverVersion>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(
            driver_versions::latest(drivers::versions_of(&mut c, &self.0.id).await?)
                .map(ApplicationDriverVersion),
        )
    }
}

/// Where a driver version was loaded from.
#[derive(SimpleObject)]
pub struct DriverSource {
    /// `local` or `git`.
    kind: String,
    path: Option<String>,
    url: Option<String>,
    branch: Option<String>,
    commit: Option<String>,
}

pub struct ApplicationDriverVersion(pub DriverVersionRow);

/// One immutable, loaded revision of a driver.
#[Object]
impl ApplicationDriverVersion {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn driver_name(&self) -> &str {
        &self.0.driver_name
    }
    /// `spec.version` of the driver file.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// sha256 of every file of the bundle.
    async fn digest(&self) -> &str {
        &self.0.digest
    }
    /// The parsed `driver.styrmin.yml`.
    async fn spec(&self) -> async_graphql::Result<Json<Value>> {
        Ok(Json(serde_json::from_str(&self.0.spec)?))
    }
    async fn source(&self) -> DriverSource {
        match &self.0.source {
            Source::Local { path } => DriverSource {
                kind: "local".into(),
                path: Some(path.clone()),
                url: None,
                branch: None,
                commit: None,
            },
            Source::Git {
                url,
                branch,
                commit,
            } => DriverSource {
                kind: "git".into(),
                path: None,
                url: Some(url.clone()),
                branch: Some(branch.clone()),
                commit: Some(commit.clone()),
            },
        }
    }
    async fn loaded_at(&self) -> String {
        time(self.0.loaded_at)
    }
}

#[derive(SimpleObject)]
pub struct LoadDriverPayload {
    version: ApplicationDriverVersion,
    /// False when the same content was already loaded (nothing changed).
    created: bool,
    /// Lint warnings of the driver.
    warnings: Vec<String>,
}

impl From<LoadOutcome> for LoadDriverPayload {
    fn from(o: LoadOutcome) -> Self {
        LoadDriverPayload {
            version: ApplicationDriverVersion(o.version),
            created: o.created,
            warnings: o.warnings,
        }
    }
}

#[derive(Default)]
pub struct DriverQuery;

#[Object]
impl DriverQuery {
    async fn application_drivers(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ApplicationDriver>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(drivers::list_drivers(&mut c)
            .await?
            .into_iter()
            .map(ApplicationDriver)
            .collect())
    }

    /// By id or name.
    async fn application_driver(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ApplicationDriver> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(ApplicationDriver(resolve::driver(&mut c, &id).await.gql()?))
    }

    /// A driver's version by `spec.version`, id or digest prefix; the latest without one.
    async fn application_driver_version(
        &self,
        ctx: &Context<'_>,
        driver: ID,
        version: Option<String>,
    ) -> async_graphql::Result<ApplicationDriverVersion> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(ApplicationDriverVersion(
            driver_versions::resolve_version(&mut c, &driver, version.as_deref())
                .await
                .gql()?,
        ))
    }
}

#[derive(Default)]
pub struct DriverMutation;

#[Object]
impl DriverMutation {
    /// Loads the driver in a directory on the server's file system.
    async fn load_local_application_driver_version(
        &self,
        ctx: &Context<'_>,
        path: String,
    ) -> async_graphql::Result<LoadDriverPayload> {
        driver_versions::load_local(state(ctx), who(ctx)?, &path)
            .await
            .gql()
            .map(Into::into)
    }

    /// Loads the tip of a git branch (pinned to its commit). `path` names a subdirectory
    /// when the driver is not at the repository's root.
    async fn load_application_driver_version(
        &self,
        ctx: &Context<'_>,
        repo_url: String,
        branch: String,
        path: Option<String>,
    ) -> async_graphql::Result<LoadDriverPayload> {
        driver_versions::load_git(state(ctx), who(ctx)?, &repo_url, &branch, path.as_deref())
            .await
            .gql()
            .map(Into::into)
    }
}
