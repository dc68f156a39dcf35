//! Reconciliation planning (SPEC §4) as pure functions: which flow run a change needs,
//! how a new run joins a deployment's queue, and what changes between two renders.
//! The server persists the decisions; nothing here touches a database.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::spelled::spelled_enum;

spelled_enum!(
    /// What a flow run does on the agent.
    FlowKind {
        Create = "create",
        Update = "update",
        Upgrade = "upgrade",
        Stop = "stop",
        Start = "start",
        Delete = "delete",
        Backup = "backup",
        Restore = "restore",
        DeleteBackup = "delete_backup",
    }
);

spelled_enum!(
    /// The lifecycle phase a user asks a deployment to be in.
    Phase { Running = "running", Stopped = "stopped", Deleting = "deleting" }
);

/// What identifies an Instance for planning: the pinned versions and the digest of its
/// frozen Context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceKey<'a> {
    /// The content digest of the Application Driver Version.
    pub driver_digest: &'a str,
    pub app_version: &'a str,
    pub context_digest: &'a str,
}

/// The remediation that moves the active Instance to a new one; `None` when nothing differs.
pub fn remediation(active: Option<&InstanceKey<'_>>, new: &InstanceKey<'_>) -> Option<FlowKind> {
    match active {
        None => Some(FlowKind::Create),
        Some(active)
            if active.driver_digest != new.driver_digest
                || active.app_version != new.app_version =>
        {
            Some(FlowKind::Upgrade)
        }
        Some(active) if active.context_digest != new.context_digest => Some(FlowKind::Update),
        Some(_) => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhaseError {
    #[error("the deployment is being deleted; it cannot be {0}")]
    Deleting(&'static str),
}

/// The flow run a phase change needs; `Ok(None)` when the deployment is already there.
pub fn phase_change(current: Phase, requested: Phase) -> Result<Option<FlowKind>, PhaseError> {
    match (current, requested) {
        (Phase::Deleting, Phase::Running) => Err(PhaseError::Deleting("started")),
        (Phase::Deleting, Phase::Stopped) => Err(PhaseError::Deleting("stopped")),
        (a, b) if a == b => Ok(None),
        (_, Phase::Running) => Ok(Some(FlowKind::Start)),
        (_, Phase::Stopped) => Ok(Some(FlowKind::Stop)),
        (_, Phase::Deleting) => Ok(Some(FlowKind::Delete)),
    }
}

/// A run of one deployment that has not started yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued<Id> {
    pub id: Id,
    pub kind: FlowKind,
}

/// How a new run joins a deployment's queue. At most one run per deployment executes; the
/// rest wait in order. A newer `update` replaces still-waiting `update`s (each Instance's
/// Context is complete, so only the latest matters); a `delete` makes every waiting run
/// pointless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue<Id> {
    /// Waiting runs to mark `cancelled` (superseded).
    pub supersede: Vec<Id>,
}

pub fn enqueue<Id: Clone>(waiting: &[Queued<Id>], new: FlowKind) -> Enqueue<Id> {
    let supersede = waiting
        .iter()
        .filter(|q| match new {
            FlowKind::Update => q.kind == FlowKind::Update,
            FlowKind::Delete => q.kind != FlowKind::Delete,
            _ => false,
        })
        .map(|q| q.id.clone())
        .collect();
    Enqueue { supersede }
}

/// One difference between two renders of Helm values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueChange {
    /// Dotted path, with `[i]` for list items: `server.extraEnv[0].value`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// Every leaf that differs between two value trees, in path order. Lists of different
/// lengths are compared item by item, the extra items added or removed.
pub fn diff_values(before: &Value, after: &Value) -> Vec<ValueChange> {
    let mut changes = Vec::new();
    walk("", Some(before), Some(after), &mut changes);
    changes
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<ValueChange>) {
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                let child = if path.is_empty() {
                    (*key).clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(&child, a.get(*key), b.get(*key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(ValueChange {
            path: path.to_owned(),
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key<'a>(driver: &'a str, app: &'a str, context: &'a str) -> InstanceKey<'a> {
        InstanceKey {
            driver_digest: driver,
            app_version: app,
            context_digest: context,
        }
    }

    #[test]
    fn the_first_instance_is_created() {
        assert_eq!(
            remediation(None, &key("d1", "2.3.1", "c1")),
            Some(FlowKind::Create)
        );
    }

    #[test]
    fn a_new_driver_or_application_version_is_an_upgrade() {
        let active = key("d1", "2.3.1", "c1");
        assert_eq!(
            remediation(Some(&active), &key("d2", "2.3.1", "c2")),
            Some(FlowKind::Upgrade)
        );
        assert_eq!(
            remediation(Some(&active), &key("d1", "2.4.0", "c2")),
            Some(FlowKind::Upgrade)
        );
        // Even when the resolved Context happens to be identical.
        assert_eq!(
            remediation(Some(&active), &key("d1", "2.4.0", "c1")),
            Some(FlowKind::Upgrade)
        );
    }

    #[test]
    fn a_changed_context_is_an_update_and_an_identical_one_needs_nothing() {
        let active = key("d1", "2.3.1", "c1");
        assert_eq!(
            remediation(Some(&active), &key("d1", "2.3.1", "c2")),
            Some(FlowKind::Update)
        );
        assert_eq!(remediation(Some(&active), &key("d1", "2.3.1", "c1")), None);
    }

    #[test]
    fn phase_changes_schedule_stop_start_and_delete() {
        assert_eq!(
            phase_change(Phase::Running, Phase::Stopped),
            Ok(Some(FlowKind::Stop))
        );
        assert_eq!(
            phase_change(Phase::Stopped, Phase::Running),
            Ok(Some(FlowKind::Start))
        );
        assert_eq!(
            phase_change(Phase::Running, Phase::Deleting),
            Ok(Some(FlowKind::Delete))
        );
        assert_eq!(phase_change(Phase::Stopped, Phase::Stopped), Ok(None));
        assert_eq!(phase_change(Phase::Deleting, Phase::Deleting), Ok(None));
        assert_eq!(
            phase_change(Phase::Deleting, Phase::Running)
                .unwrap_err()
                .to_string(),
            "the deployment is being deleted; it cannot be started"
        );
    }

    #[test]
    fn a_newer_update_supersedes_waiting_updates_only() {
        let waiting = vec![
            Queued {
                id: 1,
                kind: FlowKind::Update,
            },
            Queued {
                id: 2,
                kind: FlowKind::Stop,
            },
            Queued {
                id: 3,
                kind: FlowKind::Update,
            },
        ];
        assert_eq!(enqueue(&waiting, FlowKind::Update).supersede, vec![1, 3]);
        assert!(enqueue(&waiting, FlowKind::Upgrade).supersede.is_empty());
        assert!(enqueue(&waiting, FlowKind::Start).supersede.is_empty());
    }

    #[test]
    fn a_delete_supersedes_everything_still_waiting() {
        let waiting = vec![
            Queued {
                id: "a",
                kind: FlowKind::Upgrade,
            },
            Queued {
                id: "b",
                kind: FlowKind::Delete,
            },
            Queued {
                id: "c",
                kind: FlowKind::Backup,
            },
        ];
        assert_eq!(
            enqueue(&waiting, FlowKind::Delete).supersede,
            vec!["a", "c"]
        );
    }

    #[test]
    fn value_diffs_name_each_changed_leaf() {
        let before = json!({"server": {"replicas": 2, "extraEnv": [{"name": "A", "value": "1"}], "tag": "2.3.1"}, "old": true});
        let after = json!({"server": {"replicas": 3, "extraEnv": [{"name": "A", "value": "2"}, {"name": "B", "value": "x"}], "tag": "2.3.1"}, "new": 1});
        let changes = diff_values(&before, &after);
        let summary: Vec<(String, Option<Value>, Option<Value>)> = changes
            .into_iter()
            .map(|c| (c.path, c.before, c.after))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("new".into(), None, Some(json!(1))),
                ("old".into(), Some(json!(true)), None),
                (
                    "server.extraEnv[0].value".into(),
                    Some(json!("1")),
                    Some(json!("2"))
                ),
                (
                    "server.extraEnv[1]".into(),
                    None,
                    Some(json!({"name": "B", "value": "x"}))
                ),
                ("server.replicas".into(), Some(json!(2)), Some(json!(3))),
            ]
        );
        assert!(diff_values(&before, &before).is_empty());
    }

    #[test]
    fn kinds_and_phases_use_the_public_spellings() {
        assert_eq!(
            serde_json::to_string(&FlowKind::Upgrade).unwrap(),
            "\"upgrade\""
        );
        assert_eq!(
            serde_json::from_str::<Phase>("\"stopped\"").unwrap(),
            Phase::Stopped
        );
        assert_eq!(FlowKind::Restore.to_string(), "restore");
    }
}
