//! API tokens for people, scripts and extra agents.

use serde::{Deserialize, Serialize};

use crate::operation::{NoVariables, operations};

/// The fields of a token every token operation selects (never its secret).
macro_rules! token_fields {
    () => {
        "id name role clusterId createdAt lastUsedAt"
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    /// `admin`, `operator`, `viewer` or `agent`.
    pub role: String,
    /// The cluster an agent token is bound to.
    pub cluster_id: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A new token and its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenWithSecret {
    pub secret: String,
    pub token: Token,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct NewToken {
    pub name: String,
    /// `admin`, `operator`, `viewer` or `agent`.
    pub role: String,
    /// The cluster an agent token is bound to.
    pub cluster: Option<String>,
}

/// Names one token, by id or name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TokenId {
    pub id: String,
}

operations! {
    CreateToken: "createToken" (NewToken) -> TokenWithSecret = concat!(
        "mutation CreateToken($name: String!, $role: Role!, $cluster: ID) { createToken(name: $name, role: $role, cluster: $cluster) { secret token { ",
        token_fields!(),
        " } } }"
    );
    ListTokens: "tokens" (NoVariables) -> Vec<Token> = concat!(
        "query ListTokens { tokens { ",
        token_fields!(),
        " } }"
    );
    /// Revokes a token.
    DeleteToken: "deleteToken" (TokenId) -> Token = concat!(
        "mutation DeleteToken($id: ID!) { deleteToken(id: $id) { ",
        token_fields!(),
        " } }"
    );
}
