//! Component workloads (the Deployments and StatefulSets a chart makes), as far as Styrmin
//! changes them: how a component's workloads are found (its identifier labels) and how
//! `stopped` and `running` scale them, remembering the replicas in an annotation. Pure: the
//! agent reads the workloads and sends the patches.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::planner::Phase;

/// On a workload the operator stopped (`stopped` phase): the replicas to restore.
pub const REPLICAS_ANNOTATION: &str = "styrmin.io/replicas";
/// On a workload an action stopped: the replicas to restore. The operator keeps such a
/// workload at 0 (a Helm upgrade sets replicas again) until an action starts it.
pub const ACTION_STOPPED_ANNOTATION: &str = "styrmin.io/stopped-by-action";

/// A component's identifier labels as a Kubernetes label selector (`k=v,k2=v2`).
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether an object with `labels` belongs to the component identified by `identifier`:
/// it carries every identifier label with the same value (what the selector selects).
pub fn matches(identifier: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    identifier.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The merge patch that brings one workload in line with the deployment's `phase`, or
/// `None` when it already is. `replicas` is the workload's `spec.replicas` (1 when unset,
/// as Kubernetes defaults it), `annotations` its annotations.
///
/// - `stopped`: to 0, the replicas remembered in [`REPLICAS_ANNOTATION`];
/// - `running` after `stopped`: the remembered replicas restored, the annotation removed;
/// - `running` with a workload an action stopped ([`ACTION_STOPPED_ANNOTATION`]) that a
///   Helm upgrade scaled up again: back to 0, the count the chart asks for now remembered
///   for the action that starts it.
pub fn scale_patch(
    phase: Phase,
    replicas: i32,
    annotations: &BTreeMap<String, String>,
) -> Option<Value> {
    let remembered = annotations.get(REPLICAS_ANNOTATION);
    let stopped_by_action = annotations.contains_key(ACTION_STOPPED_ANNOTATION);
    match (phase, remembered) {
        (Phase::Running, None) if stopped_by_action && replicas > 0 => Some(json!({
            "metadata": {"annotations": {ACTION_STOPPED_ANNOTATION: replicas.to_string()}},
            "spec": {"replicas": 0},
        })),
        (Phase::Stopped, None) if replicas > 0 => Some(json!({
            "metadata": {"annotations": {REPLICAS_ANNOTATION: replicas.to_string()}},
            "spec": {"replicas": 0},
        })),
        (Phase::Running, Some(n)) => {
            // An annotation someone mangled: one replica rather than none.
            let n: i32 = n.parse().unwrap_or(1);
            Some(json!({
                "metadata": {"annotations": {REPLICAS_ANNOTATION: null}},
                "spec": {"replicas": n},
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Every combination of phase, replicas and annotations that matters, case by case:
    /// which patch (if any) the operator sends.
    #[test]
    fn scale_patch_cases() {
        struct Case {
            name: &'static str,
            phase: Phase,
            replicas: i32,
            annotations: &'static [(&'static str, &'static str)],
            patch: Option<Value>,
        }
        let cases = [
            Case {
                name: "running, nothing remembered: left alone",
                phase: Phase::Running,
                replicas: 2,
                annotations: &[],
                patch: None,
            },
            Case {
                name: "stopped, running workload: to 0, replicas remembered",
                phase: Phase::Stopped,
                replicas: 3,
                annotations: &[],
                patch: Some(json!({
                    "metadata": {"annotations": {REPLICAS_ANNOTATION: "3"}},
                    "spec": {"replicas": 0}
                })),
            },
            Case {
                name: "stopped, already at 0 and remembered: left alone",
                phase: Phase::Stopped,
                replicas: 0,
                annotations: &[(REPLICAS_ANNOTATION, "3")],
                patch: None,
            },
            Case {
                name: "stopped, at 0 with nothing remembered (the chart asks for 0): left alone",
                phase: Phase::Stopped,
                replicas: 0,
                annotations: &[],
                patch: None,
            },
            Case {
                name: "stopped, scaled up again by someone while remembered: left alone (the first count is the one to restore)",
                phase: Phase::Stopped,
                replicas: 2,
                annotations: &[(REPLICAS_ANNOTATION, "3")],
                patch: None,
            },
            Case {
                name: "running after stopped: remembered replicas restored, annotation removed",
                phase: Phase::Running,
                replicas: 0,
                annotations: &[(REPLICAS_ANNOTATION, "3")],
                patch: Some(json!({
                    "metadata": {"annotations": {REPLICAS_ANNOTATION: null}},
                    "spec": {"replicas": 3}
                })),
            },
            Case {
                name: "running after stopped, mangled annotation: one replica",
                phase: Phase::Running,
                replicas: 0,
                annotations: &[(REPLICAS_ANNOTATION, "three")],
                patch: Some(json!({
                    "metadata": {"annotations": {REPLICAS_ANNOTATION: null}},
                    "spec": {"replicas": 1}
                })),
            },
            Case {
                name: "running, stopped by an action and still at 0: left alone",
                phase: Phase::Running,
                replicas: 0,
                annotations: &[(ACTION_STOPPED_ANNOTATION, "2")],
                patch: None,
            },
            Case {
                name: "running, stopped by an action but scaled up by a Helm upgrade: back to 0, the chart's count remembered",
                phase: Phase::Running,
                replicas: 4,
                annotations: &[(ACTION_STOPPED_ANNOTATION, "2")],
                patch: Some(json!({
                    "metadata": {"annotations": {ACTION_STOPPED_ANNOTATION: "4"}},
                    "spec": {"replicas": 0}
                })),
            },
            Case {
                name: "stopped, a workload an action stopped (already at 0): left alone",
                phase: Phase::Stopped,
                replicas: 0,
                annotations: &[(ACTION_STOPPED_ANNOTATION, "2")],
                patch: None,
            },
            Case {
                name: "deleting: workloads are left to go with the release",
                phase: Phase::Deleting,
                replicas: 2,
                annotations: &[(REPLICAS_ANNOTATION, "3")],
                patch: None,
            },
        ];
        for case in cases {
            assert_eq!(
                scale_patch(case.phase, case.replicas, &annotations(case.annotations)),
                case.patch,
                "{}",
                case.name
            );
        }
    }

    /// A workload belongs to a component when it carries all of its identifier labels;
    /// extra labels do not matter, a missing or different one does.
    #[test]
    fn workloads_match_their_components_identifier_labels() {
        let identifier = annotations(&[
            ("app.kubernetes.io/name", "my-app"),
            ("app.kubernetes.io/component", "server"),
        ]);
        let mut labels = identifier.clone();
        labels.insert("app.kubernetes.io/instance".into(), "shop".into());
        assert!(matches(&identifier, &labels));
        labels.insert("app.kubernetes.io/component".into(), "postgresql".into());
        assert!(!matches(&identifier, &labels));
        labels.remove("app.kubernetes.io/component");
        assert!(!matches(&identifier, &labels));
        assert_eq!(
            selector(&identifier),
            "app.kubernetes.io/component=server,app.kubernetes.io/name=my-app"
        );
    }
}
