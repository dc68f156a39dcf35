//! The Application Driver specification (`driver.styrmin.yml`) as typed values. Field names
//! serialise exactly as the public format spells them, so a stored spec reads like the file.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spelled::spelled_enum;
use crate::version::VersionSpec;

pub const API_VERSION: &str = "styrmin.io/v1";
pub const KIND: &str = "ApplicationDriver";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDriver {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: DriverSpec,
}

impl ApplicationDriver {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverSpec {
    /// The Driver Version: latest wins when a driver is resolved by name.
    pub version: String,
    pub supported_versions: VersionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,
    #[serde(default)]
    pub info: Info,
    pub helm: Helm,
    pub components: BTreeMap<String, Component>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub env_vars: Vec<EnvVarDecl>,
    #[serde(default)]
    pub container_overrides: Vec<ContainerOverride>,
    #[serde(default)]
    pub actions: Vec<Action>,
}

impl DriverSpec {
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The actions of one hook and mode, in declaration order.
    pub fn actions_for(&self, hook: Hook, mode: Mode) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(move |a| a.hook == hook && a.mode == mode)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Info {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub link: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Helm {
    pub main: ChartRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartRef {
    pub location: String,
    pub version: String,
}

/// Where a chart comes from, read from `helm.main.location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource<'a> {
    /// `oci://registry/path/chart`
    Oci(&'a str),
    /// `https://charts.example.com/chart`: a chart repository URL ending in the chart name.
    Repository { url: &'a str, chart: &'a str },
    /// `./chart`: a chart shipped inside the driver.
    Bundled(&'a str),
}

impl ChartRef {
    pub fn source(&self) -> Option<ChartSource<'_>> {
        let loc = self.location.as_str();
        if loc.starts_with("oci://") {
            return Some(ChartSource::Oci(loc));
        }
        if loc.starts_with("https://") || loc.starts_with("http://") {
            let (url, chart) = loc.trim_end_matches('/').rsplit_once('/')?;
            if chart.is_empty() || url.ends_with(':') || url.ends_with('/') {
                return None;
            }
            return Some(ChartSource::Repository { url, chart });
        }
        let path = loc.strip_prefix("./")?;
        let path = path.trim_end_matches('/');
        let safe = !path.is_empty() && path.split('/').all(|p| !p.is_empty() && p != "..");
        safe.then_some(ChartSource::Bundled(path))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub identifier: Identifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identifier {
    /// The label selector that finds the component's pods and workloads.
    pub label: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub kind: BackupKind,
    /// Pod-template volume names, for `disk` (`volume: NAME` is read into this list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// For `action`: the function that takes the backup (`actions.py::fn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// For `action`: the function that restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_location: Option<Location>,
}

spelled_enum!(BackupKind {
    Disk = "disk",
    Postgres = "postgres",
    Mariadb = "mariadb",
    Mongodb = "mongodb",
    Neo4j = "neo4j",
    Action = "action",
});

spelled_enum!(ServiceKind { Http = "http", Grpc = "grpc", Tcp = "tcp" });

spelled_enum!(
    /// `external` services are published on the environment's ingress; `internal` ones are
    /// reachable inside the environment only.
    ServiceScope { External = "external", Internal = "internal" }
);

spelled_enum!(ParameterKind {
    String = "string",
    Integer = "integer",
    Boolean = "boolean",
    Enum = "enum",
    Secret = "secret",
});

spelled_enum!(
    /// `setup` runs on first creation, `upgrade` on a new application or driver version.
    Hook { Setup = "setup", Upgrade = "upgrade" }
);

spelled_enum!(Mode { Pre = "pre", Core = "core", Post = "post" });

spelled_enum!(
    /// `component`: the variable may be set on the listed components; `deployment`: on all.
    EnvVarLevel { Component = "component", Deployment = "deployment" }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub kind: ServiceKind,
    pub scope: ServiceScope,
    /// The container port; the discovery Service uses it as both port and targetPort.
    pub port: u16,
    pub component: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub kind: ParameterKind,
    /// The allowed values of an `enum` parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<serde_json::Value>,
    /// No default means the parameter is required when a deployment is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

impl Parameter {
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVarDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub level: EnvVarLevel,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

impl EnvVarDecl {
    pub fn allowed_on(&self, component: &str) -> bool {
        self.level == EnvVarLevel::Deployment || self.components.iter().any(|c| c == component)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerOverride {
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default)]
    pub command: bool,
    #[serde(default)]
    pub args: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub name: String,
    pub hook: Hook,
    pub mode: Mode,
    /// A Python function (`actions.py::fn`); exclusive with `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Declarative steps for actions that need no code; exclusive with `location`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Upper bound on the action's run time; the agent's default applies when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// `file.py::function`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub function: String,
}

impl Location {
    pub fn parse(text: &str) -> Option<Location> {
        let (file, function) = text.split_once("::")?;
        let identifier = |s: &str| {
            let mut chars = s.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        (file.ends_with(".py") && identifier(function)).then(|| Location {
            file: file.trim_start_matches("./").to_owned(),
            function: function.to_owned(),
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.file, self.function)
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Location::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not file.py::function")))
    }
}

/// A declarative action step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Scale the components' workloads to zero, remembering their replicas.
    Stop(Vec<String>),
    /// Restore the remembered replicas.
    Start(Vec<String>),
    /// Run a command in a ready pod of the component; a non-zero exit fails the action.
    Exec {
        component: String,
        command: ExecCommand,
    },
    /// Wait until every pod of the components is ready.
    WaitReady(Vec<String>),
    /// Call a service inside the environment and expect a status code.
    HttpCheck {
        service: String,
        path: String,
        expect_status: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExecCommand {
    /// Run through `sh -c`.
    Shell(String),
    /// Run as an argument vector.
    Argv(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_locations_name_their_source() {
        let chart = |location: &str| ChartRef {
            location: location.into(),
            version: "1.0.0".into(),
        };
        assert_eq!(
            chart("oci://ghcr.io/x/charts/app").source(),
            Some(ChartSource::Oci("oci://ghcr.io/x/charts/app"))
        );
        assert_eq!(
            chart("https://charts.example.com/stable/app").source(),
            Some(ChartSource::Repository {
                url: "https://charts.example.com/stable",
                chart: "app"
            })
        );
        assert_eq!(
            chart("./chart").source(),
            Some(ChartSource::Bundled("chart"))
        );
        assert_eq!(chart("./../etc").source(), None);
        assert_eq!(chart("chart").source(), None);
        assert_eq!(chart("https://").source(), None);
    }

    #[test]
    fn locations_are_file_double_colon_function() {
        let loc = Location::parse("actions.py::migrate").unwrap();
        assert_eq!(
            (loc.file.as_str(), loc.function.as_str()),
            ("actions.py", "migrate")
        );
        assert!(Location::parse("actions.py:migrate").is_none());
        assert!(Location::parse("actions.py::1x").is_none());
        assert!(Location::parse("actions.rb::x").is_none());
    }

    #[test]
    fn steps_serialise_in_the_driver_file_shape() {
        let steps = vec![
            Step::Stop(vec!["server".into()]),
            Step::Exec {
                component: "server".into(),
                command: ExecCommand::Shell("migrate".into()),
            },
        ];
        assert_eq!(
            serde_json::to_string(&steps).unwrap(),
            r#"[{"stop":["server"]},{"exec":{"component":"server","command":"migrate"}}]"#
        );
    }
}
