//! Application drivers: loading versions onto the server and listing them.

use serde::{Deserialize, Serialize};

use crate::operation::{NoVariables, operations};

/// The fields of a driver version every driver operation selects.
macro_rules! version_fields {
    () => {
        "id driverName version digest loadedAt source { kind path url branch commit }"
    };
}

/// Where a driver version was loaded from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriverSource {
    /// `local` or `git`.
    pub kind: String,
    pub path: Option<String>,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
}

/// One loaded, immutable revision of a driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverVersion {
    pub id: String,
    pub driver_name: String,
    /// `spec.version` of the driver file.
    pub version: String,
    /// sha256 of every file of the bundle.
    pub digest: String,
    pub loaded_at: String,
    pub source: DriverSource,
}

/// What a load did: the version, whether it is new, and the driver's lint warnings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadedVersion {
    /// `false` when the same content was already loaded.
    pub created: bool,
    pub warnings: Vec<String>,
    pub version: DriverVersion,
}

/// A driver and the version new deployments get.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverLatest {
    pub name: String,
    pub latest_version: Option<DriverVersion>,
}

/// A driver and all its versions, newest load first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriverVersions {
    pub id: String,
    pub name: String,
    pub versions: Vec<DriverVersion>,
}

/// A driver directory on the server's file system.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LocalDriver {
    pub path: String,
}

/// The tip of a git branch, and the driver's directory in it when not the root.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitDriver {
    pub repo_url: String,
    pub branch: String,
    pub path: Option<String>,
}

/// Names one driver, by id or name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DriverId {
    pub id: String,
}

operations! {
    /// Loads the driver in a directory the server can read.
    LoadLocalDriverVersion: "loadLocalApplicationDriverVersion" (LocalDriver) -> LoadedVersion = concat!(
        "mutation LoadLocalDriverVersion($path: String!) { loadLocalApplicationDriverVersion(path: $path) { created warnings version { ",
        version_fields!(),
        " } } }"
    );
    /// Loads the tip of a git branch, pinned to its commit.
    LoadGitDriverVersion: "loadApplicationDriverVersion" (GitDriver) -> LoadedVersion = concat!(
        "mutation LoadGitDriverVersion($repoUrl: String!, $branch: String!, $path: String) { loadApplicationDriverVersion(repoUrl: $repoUrl, branch: $branch, path: $path) { created warnings version { ",
        version_fields!(),
        " } } }"
    );
    ListDrivers: "applicationDrivers" (NoVariables) -> Vec<DriverLatest> = concat!(
        "query ListDrivers { applicationDrivers { name latestVersion { ",
        version_fields!(),
        " } } }"
    );
    GetDriver: "applicationDriver" (DriverId) -> DriverVersions = concat!(
        "query GetDriver($id: ID!) { applicationDriver(id: $id) { id name versions { ",
        version_fields!(),
        " } } }"
    );
}
