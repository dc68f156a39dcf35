//! Who a token is.

use serde::{Deserialize, Serialize};

use crate::operation::{NoVariables, operations};

/// The caller, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub name: String,
    /// `ADMIN`, `OPERATOR`, `DEVELOPER`, `VIEWER` or `AGENT`.
    pub role: String,
    /// Set for an agent token: the cluster it acts for.
    pub cluster_id: Option<String>,
}

operations! {
    /// The caller's name, role and (for an agent) cluster.
    WhoAmI: "me" (NoVariables) -> Me = "query WhoAmI { me { name role clusterId } }";
    /// The server's version.
    ServerVersion: "serverVersion" (NoVariables) -> String = "query ServerVersion { serverVersion }";
}
