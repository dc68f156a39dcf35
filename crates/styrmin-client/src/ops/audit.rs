//! The audit log: every mutation, who made it and on what.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operation::operations;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub detail: Value,
}

/// The newest `first` entries, about `target` only when it is set.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AuditFilter {
    pub target: Option<String>,
    pub first: Option<i32>,
}

operations! {
    /// The audit log, newest first.
    ListAuditLog: "auditLog" (AuditFilter) -> Vec<AuditEntry> =
        "query ListAuditLog($target: ID, $first: Int) { auditLog(target: $target, first: $first) { id at actor role action targetKind targetId detail } }";
}
