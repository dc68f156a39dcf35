//! `StyrminDeployment` (group `styrmin.io`, version `v1`): the one custom resource, one per
//! deployment in its environment's namespace (SPEC §6). The worker writes its spec from a
//! flow run; the operator renders its children, applies and observes them and writes its status. The CRD
//! manifest is generated from these types (`deploy/crds/`).

use std::collections::BTreeMap;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::planner::Phase;

/// Which driver version renders the deployment; the operator reads the bundle from the
/// ConfigMap `styrmin-driver-<name>-<digest12>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriverRef {
    pub name: String,
    pub version: String,
    pub digest: String,
}

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "styrmin.io",
    version = "v1",
    kind = "StyrminDeployment",
    namespaced,
    status = "StyrminDeploymentStatus",
    shortname = "sdep",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".spec.phase"}"#,
    printcolumn = r#"{"name":"Observed","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.appVersion"}"#,
    printcolumn = r#"{"name":"Driver","type":"string","jsonPath":".spec.driver.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StyrminDeploymentSpec {
    /// The server's deployment id.
    pub deployment_id: String,
    pub driver: DriverRef,
    pub app_version: String,
    pub phase: Phase,
    /// The frozen Context of the Instance this spec runs.
    #[schemars(schema_with = "any_object")]
    pub context: Value,
    /// The Helm values the server rendered and froze in the Instance: the operator applies
    /// these as they are (it renders no template). Absent (null) on objects written by an
    /// older agent; the operator then applies nothing and says so in the status.
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    pub values: Value,
    /// sha256 of the canonical JSON of `values` (keys sorted), as the server computed it;
    /// the operator applies the values only when they hash to this.
    pub values_digest: String,
    /// The Instance the spec was written from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The server's chart repository, when the chart ships inside the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_repository: Option<String>,
}

/// sha256 (hex) of the canonical JSON of rendered values (keys sorted at every level), so
/// the server, the worker and the operator agree on it whatever the map order.
pub fn values_digest(values: &Value) -> String {
    crate::canonical::sha256_hex(values)
}

/// Values that do not hash to the digest recorded with them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the values hash to {computed} but their digest is {recorded}")]
pub struct DigestMismatch {
    pub computed: String,
    pub recorded: String,
}

/// Checks `values` against the digest recorded with them (the server's).
pub fn verify_values_digest(values: &Value, recorded: &str) -> Result<(), DigestMismatch> {
    let computed = values_digest(values);
    if computed == recorded {
        Ok(())
    } else {
        Err(DigestMismatch {
            computed,
            recorded: recorded.to_owned(),
        })
    }
}

/// Kubernetes stores any JSON object here (the Context's shape is the Context's business).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// An optional phase is left out rather than null: Kubernetes 1.20 cannot hold a `null` in
/// an enum (the CRD is then refused with a misleading message about per-version schemas).
fn phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let values: Vec<&str> = Phase::ALL.iter().map(|(text, _)| *text).collect();
    schemars::json_schema!({ "type": "string", "enum": values })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StyrminDeploymentStatus {
    /// The phase the operator last brought about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "phase_schema")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready and desired replicas per component.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_release_ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentStatus {
    pub ready: i32,
    pub desired: i32,
}

/// A condition in the usual Kubernetes shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

impl StyrminDeploymentStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition is there and `True`.
    pub fn is(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// Sets a condition, keeping its transition time when its status did not change. An
    /// empty message becomes the reason: Kubernetes 1.20 takes an empty string in a custom
    /// resource for null and refuses it.
    pub fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
        now: &str,
    ) {
        let status = if status { "True" } else { "False" };
        let message = if message.is_empty() { reason } else { message };
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now.to_owned();
                }
                c.status = status.to_owned();
                c.reason = reason.to_owned();
                c.message = message.to_owned();
            }
            None => self.conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now.to_owned(),
            }),
        }
    }
}

/// The CRD, as the agent installs it.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube_core::CustomResourceExt as _;
    StyrminDeployment::crd()
}

/// The CRD manifest as YAML, as installed from `deploy/crds/`.
pub fn crd_yaml() -> String {
    serde_yaml_ng::to_string(&crd()).expect("the CRD serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time_until_the_status_changes() {
        let mut s = StyrminDeploymentStatus::default();
        s.set_condition("Ready", false, "Reconciling", "applying", "t1");
        s.set_condition("Ready", false, "Reconciling", "waiting for pods", "t2");
        assert_eq!(s.condition("Ready").unwrap().last_transition_time, "t1");
        assert_eq!(s.condition("Ready").unwrap().message, "waiting for pods");
        s.set_condition("Ready", true, "Ready", "", "t3");
        assert_eq!(s.condition("Ready").unwrap().last_transition_time, "t3");
        assert_eq!(s.conditions.len(), 1);
    }

    /// The digest is that of the canonical JSON: the same values in another key order
    /// hash the same, other values do not.
    #[test]
    fn the_values_digest_ignores_key_order() {
        let a: Value = serde_json::from_str(
            r#"{"server": {"replicas": 2, "image": {"tag": "1"}}, "ingress": {"enabled": false}}"#,
        )
        .unwrap();
        let b = serde_json::json!({"ingress": {"enabled": false}, "server": {"image": {"tag": "1"}, "replicas": 2}});
        assert_eq!(values_digest(&a), values_digest(&b));
        assert_ne!(
            values_digest(&a),
            values_digest(&serde_json::json!({"server": {"replicas": 3}}))
        );
    }

    /// Values are accepted with their own digest and refused with another one, the
    /// refusal naming both digests.
    #[test]
    fn values_are_verified_against_their_recorded_digest() {
        let values = serde_json::json!({"server": {"replicas": 2}});
        let digest = values_digest(&values);
        assert_eq!(verify_values_digest(&values, &digest), Ok(()));
        let refused = verify_values_digest(&values, "0000").unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!("the values hash to {digest} but their digest is 0000")
        );
    }

    /// An object written before the spec carried `values` still reads (values null), so
    /// the operator can say what is missing instead of failing its whole watch.
    #[test]
    fn a_spec_without_values_reads_with_null_values() {
        let spec: StyrminDeploymentSpec = serde_json::from_value(serde_json::json!({"deploymentId": "d1", "driver": {"name": "my-app", "version": "1", "digest": "abc"}, "appVersion": "2.3.1", "phase": "running", "context": {}, "valuesDigest": "v"})).unwrap();
        assert_eq!(spec.values, Value::Null);
    }

    #[test]
    fn the_spec_serialises_with_the_public_field_names() {
        let spec = StyrminDeploymentSpec {
            deployment_id: "d1".into(),
            driver: DriverRef {
                name: "my-app".into(),
                version: "1".into(),
                digest: "abc".into(),
            },
            app_version: "2.3.1".into(),
            phase: Phase::Running,
            context: serde_json::json!({"app": {"name": "my-app"}}),
            values: serde_json::json!({"replicas": 2}),
            values_digest: "v".into(),
            instance_id: None,
            chart_repository: None,
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"deploymentId": "d1", "driver": {"name": "my-app", "version": "1", "digest": "abc"}, "appVersion": "2.3.1", "phase": "running", "context": {"app": {"name": "my-app"}}, "values": {"replicas": 2}, "valuesDigest": "v"})
        );
    }
}
