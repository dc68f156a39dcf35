//! The contract between the server and its agents: every document that crosses the wire
//! between them, as serde types both sides compile against (docs/architecture.md).
//!
//! GraphQL carries these as its `JSON` scalar (the flow-run payload) or as input objects of
//! the same field names (the reports); the server's GraphQL layer converts at its edge and
//! the agent sends them through `styrmin-client`'s named operations. A change here is a
//! change of [`PROTOCOL_VERSION`]: a new optional field is a minor change, anything an older
//! peer would misread is a major one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backup::{BackupPayload, DeleteBackupPayload, RestorePayload};
use crate::context::GlobalContext;
use crate::crd::ComponentStatus;
use crate::planner::{FlowKind, Phase};
use crate::spelled::spelled_enum;

/// The chart-pull token of a cluster, derived from its agent token: the credential the
/// agent gives its cluster's Flux for the server's chart repository (`/charts/`). It can
/// fetch charts and nothing else, changes whenever the agent token is rotated, and does not
/// reveal the agent token (a one-way SHA-256 of it under a purpose string). The server
/// records its hash whenever it issues an agent token.
pub fn chart_pull_token(agent_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(b"styrmin chart pull token\n");
    digest.update(agent_token.as_bytes());
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("stm_{hex}")
}

/// The protocol this build speaks. The server refuses to hand runs to an agent whose major
/// version differs (`claimFlowRuns`), naming both versions.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// `MAJOR.MINOR`: peers of one major understand each other; a minor adds optional fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ProtocolVersion {
    type Err = ProtocolError;

    fn from_str(text: &str) -> Result<Self, ProtocolError> {
        let bad = || ProtocolError::Version(text.chars().take(40).collect());
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        Ok(ProtocolVersion {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }
}

impl ProtocolVersion {
    /// Whether a peer speaking `other` may work with this side; the error names both.
    pub fn accepts(self, other: Option<&str>) -> Result<ProtocolVersion, ProtocolError> {
        let Some(text) = other else {
            return Err(ProtocolError::Unspoken { ours: self });
        };
        let theirs: ProtocolVersion = text.parse()?;
        if theirs.major != self.major {
            return Err(ProtocolError::Incompatible { ours: self, theirs });
        }
        Ok(theirs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("`{0}` is not a protocol version (expected MAJOR.MINOR, e.g. 1.0)")]
    Version(String),
    #[error(
        "the agent speaks protocol {theirs} and this server speaks {ours}: \
         run an agent of the server's release (same major protocol version)"
    )]
    Incompatible {
        ours: ProtocolVersion,
        theirs: ProtocolVersion,
    },
    #[error(
        "the agent did not say which protocol it speaks (this server speaks {ours}): \
         run an agent of the server's release"
    )]
    Unspoken { ours: ProtocolVersion },
    #[error("the payload of a `{kind}` flow run does not read: {message}")]
    Payload { kind: FlowKind, message: String },
    #[error("the run's values are not the ones the server rendered: {0}; nothing was applied")]
    ValuesDigest(#[from] crate::crd::DigestMismatch),
    #[error("this agent does not run `{0}` flow runs yet")]
    UnsupportedKind(FlowKind),
}

/// The deployment a flow run acts on: part of every run's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRef {
    pub deployment_id: String,
    pub deployment_name: String,
    pub environment_id: String,
    /// The phase the user asked for when the run was recorded.
    pub phase: Phase,
    pub active_instance_id: Option<String>,
}

/// An Instance to apply: the frozen Context, the pinned versions and the values rendered
/// once, by the server, when the Instance was frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstancePayload {
    pub instance_id: String,
    pub driver_name: String,
    pub driver_version: String,
    /// The driver version's content digest: the agent fetches its files by it.
    pub driver_digest: String,
    pub app_version: String,
    pub context: GlobalContext,
    /// The Helm values, rendered by the server from the driver's `values.j2.yml`: the one
    /// render site; the agent applies them as they are.
    pub values: Value,
    /// `crd::values_digest(values)`, computed by the server; the agent refuses values that
    /// do not hash to it.
    pub values_digest: String,
    /// Where the cluster fetches a chart shipped inside the driver (the server's
    /// `/charts/`); absent for charts from elsewhere.
    pub chart_repository: Option<String>,
}

impl InstancePayload {
    /// The values' digest, once it is checked to be the one the server sent: values that
    /// changed on the way (or a server and agent that hash differently) are refused, and
    /// nothing is applied.
    pub fn checked_values_digest(&self) -> Result<String, ProtocolError> {
        crate::crd::verify_values_digest(&self.values, &self.values_digest)?;
        Ok(self.values_digest.clone())
    }
}

/// A create, update or upgrade: the deployment and the Instance that becomes active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyPayload {
    #[serde(flatten)]
    pub deployment: DeploymentRef,
    #[serde(flatten)]
    pub instance: InstancePayload,
}

/// A backup of one deployment (`crate::backup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRun {
    #[serde(flatten)]
    pub deployment: DeploymentRef,
    #[serde(flatten)]
    pub backup: BackupPayload,
}

/// A restore into one deployment (`crate::backup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRun {
    #[serde(flatten)]
    pub deployment: DeploymentRef,
    #[serde(flatten)]
    pub restore: RestorePayload,
}

/// What a flow run asks of the agent, by kind. On the wire it is a flat JSON object (the
/// run's `kind` travels beside it), the shape stored with each run.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowRunPayload {
    Create(ApplyPayload),
    Update(ApplyPayload),
    Upgrade(ApplyPayload),
    Stop(DeploymentRef),
    Start(DeploymentRef),
    Delete(DeploymentRef),
    Backup(BackupRun),
    Restore(RestoreRun),
    /// Not tied to a deployment: the backup's deployment may be gone.
    DeleteBackup(DeleteBackupPayload),
}

impl FlowRunPayload {
    pub fn kind(&self) -> FlowKind {
        match self {
            FlowRunPayload::Create(_) => FlowKind::Create,
            FlowRunPayload::Update(_) => FlowKind::Update,
            FlowRunPayload::Upgrade(_) => FlowKind::Upgrade,
            FlowRunPayload::Stop(_) => FlowKind::Stop,
            FlowRunPayload::Start(_) => FlowKind::Start,
            FlowRunPayload::Delete(_) => FlowKind::Delete,
            FlowRunPayload::Backup(_) => FlowKind::Backup,
            FlowRunPayload::Restore(_) => FlowKind::Restore,
            FlowRunPayload::DeleteBackup(_) => FlowKind::DeleteBackup,
        }
    }

    /// The payload for `kind`: an Instance to apply for create/update/upgrade, the
    /// deployment alone for the phase changes. Backup, restore and backup deletion runs are
    /// built as their variants directly.
    pub fn new(
        kind: FlowKind,
        deployment: DeploymentRef,
        instance: Option<InstancePayload>,
    ) -> Result<FlowRunPayload, ProtocolError> {
        let apply = |instance: Option<InstancePayload>| {
            instance
                .map(|instance| ApplyPayload {
                    deployment: deployment.clone(),
                    instance,
                })
                .ok_or(ProtocolError::Payload {
                    kind,
                    message: "it needs an Instance".into(),
                })
        };
        Ok(match kind {
            FlowKind::Create => FlowRunPayload::Create(apply(instance)?),
            FlowKind::Update => FlowRunPayload::Update(apply(instance)?),
            FlowKind::Upgrade => FlowRunPayload::Upgrade(apply(instance)?),
            FlowKind::Stop => FlowRunPayload::Stop(deployment),
            FlowKind::Start => FlowRunPayload::Start(deployment),
            FlowKind::Delete => FlowRunPayload::Delete(deployment),
            FlowKind::Backup | FlowKind::Restore | FlowKind::DeleteBackup => {
                return Err(ProtocolError::Payload {
                    kind,
                    message: "it is built from its own payload type".into(),
                });
            }
        })
    }

    /// The deployment the run acts on; none for a backup deletion.
    pub fn deployment(&self) -> Option<&DeploymentRef> {
        match self {
            FlowRunPayload::Create(a) | FlowRunPayload::Update(a) | FlowRunPayload::Upgrade(a) => {
                Some(&a.deployment)
            }
            FlowRunPayload::Stop(d) | FlowRunPayload::Start(d) | FlowRunPayload::Delete(d) => {
                Some(d)
            }
            FlowRunPayload::Backup(b) => Some(&b.deployment),
            FlowRunPayload::Restore(r) => Some(&r.deployment),
            FlowRunPayload::DeleteBackup(_) => None,
        }
    }

    /// The Instance to apply, for create, update and upgrade.
    pub fn apply(&self) -> Option<&ApplyPayload> {
        match self {
            FlowRunPayload::Create(a) | FlowRunPayload::Update(a) | FlowRunPayload::Upgrade(a) => {
                Some(a)
            }
            _ => None,
        }
    }

    /// The JSON stored with the run and sent to the agent.
    pub fn to_wire(&self) -> Value {
        let value = match self {
            FlowRunPayload::Create(a) | FlowRunPayload::Update(a) | FlowRunPayload::Upgrade(a) => {
                serde_json::to_value(a)
            }
            FlowRunPayload::Stop(d) | FlowRunPayload::Start(d) | FlowRunPayload::Delete(d) => {
                serde_json::to_value(d)
            }
            FlowRunPayload::Backup(b) => serde_json::to_value(b),
            FlowRunPayload::Restore(r) => serde_json::to_value(r),
            FlowRunPayload::DeleteBackup(d) => serde_json::to_value(d),
        };
        value.expect("protocol types serialise to JSON")
    }

    /// Reads the payload of a run of `kind`; the error names the kind and the field.
    pub fn from_wire(kind: FlowKind, payload: &Value) -> Result<FlowRunPayload, ProtocolError> {
        let bad = |e: serde_json::Error| ProtocolError::Payload {
            kind,
            message: e.to_string(),
        };
        match kind {
            FlowKind::Create | FlowKind::Update | FlowKind::Upgrade => {
                let apply = ApplyPayload::deserialize(payload).map_err(bad)?;
                FlowRunPayload::new(kind, apply.deployment, Some(apply.instance))
            }
            FlowKind::Backup => Ok(FlowRunPayload::Backup(
                BackupRun::deserialize(payload).map_err(bad)?,
            )),
            FlowKind::Restore => Ok(FlowRunPayload::Restore(
                RestoreRun::deserialize(payload).map_err(bad)?,
            )),
            FlowKind::DeleteBackup => Ok(FlowRunPayload::DeleteBackup(
                DeleteBackupPayload::deserialize(payload).map_err(bad)?,
            )),
            FlowKind::Stop | FlowKind::Start | FlowKind::Delete => {
                let deployment = DeploymentRef::deserialize(payload).map_err(bad)?;
                FlowRunPayload::new(kind, deployment, None)
            }
        }
    }
}

/// A run the agent has leased (`claimFlowRuns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedRun {
    pub id: String,
    pub kind: FlowKind,
    pub attempt: i64,
    pub deployment_id: Option<String>,
    /// Read with [`ClaimedRun::payload`]: a payload that does not read fails that run, not
    /// the whole claim.
    pub payload: Value,
    /// How long the lease lasts without a heartbeat.
    pub lease_seconds: f64,
}

impl ClaimedRun {
    pub fn payload(&self) -> Result<FlowRunPayload, ProtocolError> {
        FlowRunPayload::from_wire(self.kind, &self.payload)
    }
}

spelled_enum!(
    /// A deployment's observed status, as agents report it and the API shows it.
    DeploymentStatus {
        Pending = "PENDING",
        Deploying = "DEPLOYING",
        Running = "RUNNING",
        Degraded = "DEGRADED",
        Stopped = "STOPPED",
        Failed = "FAILED",
        Deleting = "DELETING",
        Unknown = "UNKNOWN",
    }
);

/// One container of a reported pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
}

/// One pod of a deployment, as the agent sees it (`reportPodStatuses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub deployment_id: Option<String>,
    pub component: Option<String>,
    /// The pod's phase as Kubernetes spells it (`Running`, `Pending`…).
    pub phase: String,
    pub ready: bool,
    #[serde(default)]
    pub restarts: i64,
    pub node: Option<String>,
    pub ip: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerReport>,
    /// RFC 3339.
    pub started_at: Option<String>,
}

/// A deployment's observed state (`reportDeploymentStatuses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatusReport {
    pub deployment_id: String,
    pub status: DeploymentStatus,
    pub message: Option<String>,
    pub instance_id: Option<String>,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentStatus>,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// A line of a run's log (`appendFlowRunLogs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// RFC 3339; the server's time when absent.
    pub at: Option<String>,
    pub level: String,
    pub message: String,
}

/// A primitive a Python action asks of the agent (one JSON line over the action's private
/// Unix socket, next to the action's own `token`; `styrmin_backend.actions` sends it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ActionCall {
    Log {
        #[serde(default = "info")]
        level: LogLevel,
        message: String,
    },
    StopComponents {
        components: Vec<String>,
    },
    StartComponents {
        components: Vec<String>,
    },
    WaitReady {
        components: Vec<String>,
    },
    /// Each command runs with `sh -c` in a ready pod of the component.
    ExecuteCommands {
        component: String,
        commands: Vec<String>,
    },
    UpgradeDeploymentVersion {
        version: String,
    },
    HttpCheck {
        service: String,
        #[serde(default = "root_path")]
        path: String,
        #[serde(default = "ok_status")]
        expect_status: u16,
    },
}

fn root_path() -> String {
    "/".into()
}

fn ok_status() -> u16 {
    200
}

spelled_enum!(
    /// How loud a log line an action sends is.
    LogLevel { Debug = "debug", Info = "info", Warning = "warning", Error = "error" }
);

fn info() -> LogLevel {
    LogLevel::Info
}

/// The agent's answer to an [`ActionCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ActionReply {
    pub fn done(result: Value) -> ActionReply {
        ActionReply {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn refused(error: impl Into<String>) -> ActionReply {
        ActionReply {
            ok: false,
            result: None,
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_context() -> Value {
        let scope = json!({"id": "x", "name": "x", "config": {}});
        json!({
            "cluster": scope, "deployment": scope,
            "environment": {"id": "e1", "name": "dev", "namespace": "styrmin-dev", "config": {}},
            "instance": {"id": "i1", "namespace": "styrmin-dev", "release_name": "shop", "config": {}},
            "app": {"name": "my-app", "version": "2.3.1", "chart": {"location": "./chart", "version": "1.4.0"}},
            "components": {}, "parameters": {}, "services": {},
        })
    }

    fn deployment() -> DeploymentRef {
        DeploymentRef {
            deployment_id: "d1".into(),
            deployment_name: "shop".into(),
            environment_id: "e1".into(),
            phase: Phase::Running,
            active_instance_id: None,
        }
    }

    /// Same major version: accepted whatever the minor; another major or none: refused,
    /// and the message names both versions.
    #[test]
    fn versions_of_one_major_work_together() {
        let ours = ProtocolVersion { major: 1, minor: 2 };
        assert_eq!(
            ours.accepts(Some("1.0")),
            Ok(ProtocolVersion { major: 1, minor: 0 })
        );
        let refused = ours.accepts(Some("2.0")).unwrap_err().to_string();
        assert!(refused.contains("protocol 2.0") && refused.contains("speaks 1.2"));
        assert!(matches!(
            ours.accepts(None),
            Err(ProtocolError::Unspoken { .. })
        ));
        assert!(matches!(
            ours.accepts(Some("one")),
            Err(ProtocolError::Version(_))
        ));
    }

    /// A phase change travels as the deployment alone and reads back as its kind.
    #[test]
    fn phase_payloads_round_trip() {
        for kind in [FlowKind::Stop, FlowKind::Start, FlowKind::Delete] {
            let payload = FlowRunPayload::new(kind, deployment(), None).unwrap();
            let wire = payload.to_wire();
            assert_eq!(wire["deploymentName"], "shop");
            assert_eq!(wire["phase"], "running");
            assert_eq!(FlowRunPayload::from_wire(kind, &wire).unwrap(), payload);
        }
    }

    /// An apply run without its Instance, or with a field of the wrong type, is refused
    /// with the kind and the serde message naming the field.
    #[test]
    fn an_apply_payload_without_its_instance_is_refused() {
        let wire = FlowRunPayload::Stop(deployment()).to_wire();
        let e = FlowRunPayload::from_wire(FlowKind::Upgrade, &wire).unwrap_err();
        assert!(e.to_string().contains("`upgrade`"), "{e}");
        assert!(e.to_string().contains("instanceId"), "{e}");
        let e = FlowRunPayload::from_wire(FlowKind::Stop, &json!({"deploymentId": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`stop`"), "{e}");
        assert!(matches!(
            FlowRunPayload::new(FlowKind::Backup, deployment(), None),
            Err(ProtocolError::Payload {
                kind: FlowKind::Backup,
                ..
            })
        ));
    }

    /// A backup run travels as the deployment and the backup side by side, and reads back
    /// as its kind; a delete_backup run has no deployment.
    #[test]
    fn backup_payloads_round_trip() {
        use crate::backup::{ComponentPlan, LocationRef};
        use crate::driver::BackupKind;
        let location = LocationRef {
            location_id: "l1".into(),
            name: "styrmin-dev".into(),
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "backups".into(),
            region: "us-east-1".into(),
            path_style: true,
            checksum_algorithm: String::new(),
        };
        let payload = FlowRunPayload::Backup(BackupRun {
            deployment: deployment(),
            backup: BackupPayload {
                backup_id: "b1".into(),
                velero_backup: "styrmin-b1".into(),
                namespace: "styrmin-dev".into(),
                release_name: "shop".into(),
                location: location.clone(),
                driver_digest: "d".into(),
                driver_name: "my-app".into(),
                components: vec![ComponentPlan {
                    component: "db".into(),
                    kind: BackupKind::Postgres,
                    selector: BTreeMap::from([("app".into(), "db".into())]),
                    volumes: vec![],
                    action: None,
                    restore_action: None,
                    overrides: BTreeMap::new(),
                }],
                deadline_seconds: 60,
            },
        });
        let wire = payload.to_wire();
        assert_eq!(wire["deploymentName"], "shop");
        assert_eq!(wire["veleroBackup"], "styrmin-b1");
        assert_eq!(wire["components"][0]["kind"], "postgres");
        assert_eq!(
            FlowRunPayload::from_wire(FlowKind::Backup, &wire).unwrap(),
            payload
        );
        let delete = FlowRunPayload::DeleteBackup(DeleteBackupPayload {
            backup_id: "b1".into(),
            velero_backup: "styrmin-b1".into(),
            location,
        });
        assert!(delete.deployment().is_none());
        assert_eq!(
            FlowRunPayload::from_wire(FlowKind::DeleteBackup, &delete.to_wire()).unwrap(),
            delete
        );
    }

    /// The calls read as `styrmin_backend.actions` writes them (extra keys such as the
    /// token are ignored; defaults as the Python signatures have them), and an unknown
    /// primitive is named in the error.
    #[test]
    fn action_calls_read_as_python_sends_them() {
        let call: ActionCall = serde_json::from_value(json!({
            "op": "http_check", "token": "t", "service": "web"
        }))
        .unwrap();
        assert_eq!(
            call,
            ActionCall::HttpCheck {
                service: "web".into(),
                path: "/".into(),
                expect_status: 200
            }
        );
        let call: ActionCall =
            serde_json::from_value(json!({"op": "log", "message": "hi"})).unwrap();
        assert_eq!(
            call,
            ActionCall::Log {
                level: LogLevel::Info,
                message: "hi".into()
            }
        );
        let e = serde_json::from_value::<ActionCall>(json!({"op": "drop_database"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop_database"), "{e}");
        assert_eq!(
            serde_json::to_value(ActionReply::refused("no")).unwrap(),
            json!({"ok": false, "error": "no"})
        );
    }

    /// Values that hash to the digest the server sent pass; changed values are refused
    /// with both digests named; the digest does not depend on map order.
    #[test]
    fn values_are_checked_against_the_servers_digest() {
        let values = json!({"server": {"replicas": 2, "image": "a"}});
        let reordered: Value =
            serde_json::from_str(r#"{"server": {"image": "a", "replicas": 2}}"#).unwrap();
        let mut instance = InstancePayload {
            instance_id: "i1".into(),
            driver_name: "my-app".into(),
            driver_version: "1".into(),
            driver_digest: "d".into(),
            app_version: "2.3.1".into(),
            context: serde_json::from_value(sample_context()).unwrap(),
            values: reordered,
            values_digest: crate::crd::values_digest(&values),
            chart_repository: None,
        };
        assert_eq!(
            instance.checked_values_digest().unwrap(),
            instance.values_digest
        );
        instance.values["server"]["replicas"] = json!(3);
        let e = instance.checked_values_digest().unwrap_err().to_string();
        assert!(
            e.contains(&instance.values_digest) && e.contains("nothing was applied"),
            "{e}"
        );
    }

    /// The reports' JSON uses the GraphQL input objects' field names.
    #[test]
    fn reports_use_the_api_spelling() {
        let pod = PodReport {
            namespace: "ns".into(),
            name: "p".into(),
            deployment_id: Some("d1".into()),
            component: Some("server".into()),
            phase: "Running".into(),
            ready: true,
            restarts: 2,
            node: None,
            ip: None,
            containers: vec![ContainerReport {
                name: "app".into(),
                ready: true,
                restart_count: 2,
            }],
            started_at: None,
        };
        let wire = serde_json::to_value(&pod).unwrap();
        assert_eq!(wire["deploymentId"], "d1");
        assert_eq!(wire["containers"][0]["restartCount"], 2);
        let status = DeploymentStatusReport {
            deployment_id: "d1".into(),
            status: DeploymentStatus::Running,
            message: None,
            instance_id: None,
            components: BTreeMap::new(),
            urls: vec![],
        };
        assert_eq!(serde_json::to_value(&status).unwrap()["status"], "RUNNING");
    }
}
