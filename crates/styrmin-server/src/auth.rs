//! Who is calling: bearer tokens resolved to a [`Principal`] with a role, and the checks each
//! operation makes. An agent token is bound to one cluster.

use std::fmt;
use std::str::FromStr;

use crate::crypto::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::store::{Db, tokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "lowercase")]
pub enum Role {
    /// Everything, including clusters, environments, backup locations and tokens.
    Admin,
    /// Deploys and operates: drivers and deployments.
    Operator,
    /// Reads everything but secrets; changes nothing.
    Viewer,
    /// One cluster's agent: claims and reports for that cluster only.
    Agent,
    /// One cluster's chart pulls: reads the chart repository at `/charts/` and nothing
    /// else. Issued with the cluster's agent token and rotated with it.
    Charts,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Charts => "charts",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            "agent" => Ok(Role::Agent),
            "charts" => Ok(Role::Charts),
            other => Err(format!(
                "unknown role `{other}`: use admin, operator, viewer or agent"
            )),
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Set for agent tokens: the only cluster they act for.
    pub cluster_id: Option<String>,
}

impl Principal {
    /// Reading the catalogue: every human role. Agents read only what their work needs.
    pub fn can_read(&self) -> ApiResult<()> {
        match self.role {
            Role::Admin | Role::Operator | Role::Viewer => Ok(()),
            Role::Agent | Role::Charts => Err(self.refused("read the catalogue")),
        }
    }

    /// Deploying and operating deployments, loading drivers.
    pub fn can_operate(&self) -> ApiResult<()> {
        match self.role {
            Role::Admin | Role::Operator => Ok(()),
            _ => Err(self.refused("deploy or operate")),
        }
    }

    /// Clusters, environments, backup locations, tokens.
    pub fn can_administer(&self) -> ApiResult<()> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(self.refused("administer")),
        }
    }

    /// Agent work for `cluster_id`; any other cluster is refused.
    pub fn agent_for(&self, cluster_id: &str) -> ApiResult<()> {
        match (&self.role, &self.cluster_id) {
            (Role::Agent, Some(own)) if own == cluster_id => Ok(()),
            (Role::Agent, _) => Err(ApiError::Forbidden(format!(
                "the agent token `{}` is bound to another cluster",
                self.name
            ))),
            _ => Err(self.refused("act as an agent")),
        }
    }

    /// The cluster an agent token acts for.
    pub fn agent_cluster(&self) -> ApiResult<&str> {
        match (&self.role, &self.cluster_id) {
            (Role::Agent, Some(own)) => Ok(own),
            _ => Err(self.refused("act as an agent")),
        }
    }

    fn refused(&self, what: &str) -> ApiError {
        ApiError::Forbidden(format!(
            "token `{}` has role {}, which may not {what}",
            self.name, self.role
        ))
    }
}

/// Resolves a bearer token; unknown tokens are refused without saying more.
pub async fn authenticate(db: &Db, token: &str) -> ApiResult<Principal> {
    let mut c = db.read().await?;
    let Some(row) = tokens::by_hash(&mut c, &token_hash(token)).await? else {
        return Err(ApiError::Unauthorized("invalid or revoked token".into()));
    };
    // Use is recorded at most once a minute (a read stays a read, without SQLite's write
    // lock), and best effort: a busy database must not turn a valid token away.
    let now = now_ms();
    if row.last_used_at.is_none_or(|at| now - at >= 60_000)
        && let Err(e) = tokens::touch(&mut c, &row.id, now).await
    {
        tracing::warn!(token = row.name, error = %e, "cannot record the token's use");
    }
    Ok(Principal {
        name: row.name,
        role: row.role,
        cluster_id: row.cluster_id,
    })
}

/// The token from an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// The shortest `STYRMIN_ADMIN_TOKEN` the server accepts.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// An admin token chosen by the operator must be hard to guess: long enough, and not
/// one character repeated.
fn check_admin_token(token: &str) -> anyhow::Result<()> {
    let length = token.chars().count();
    let distinct = token
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if length < MIN_ADMIN_TOKEN || distinct < 4 || token.chars().any(char::is_whitespace) {
        anyhow::bail!(
            "STYRMIN_ADMIN_TOKEN is too weak ({length} characters, {distinct} different): use at least {MIN_ADMIN_TOKEN} characters without spaces, e.g. the output of `openssl rand -hex 24`, or leave it unset and the server makes one"
        );
    }
    Ok(())
}

/// Makes sure an admin can sign in. With `STYRMIN_ADMIN_TOKEN` set, that token becomes (or
/// stays) the bootstrap admin's; otherwise a token is made on the first start only and
/// returned so the caller can print it once.
pub async fn ensure_bootstrap_admin(
    db: &Db,
    from_env: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(token) = from_env {
        check_admin_token(token)?;
    }
    let mut tx = db.write().await?;
    let existing = tokens::by_name(&mut tx, BOOTSTRAP_TOKEN_NAME).await?;
    let printed = match (existing, from_env) {
        (Some(row), Some(token)) => {
            tokens::set_hash(&mut tx, &row.id, &token_hash(token)).await?;
            None
        }
        (Some(_), None) => None,
        (None, Some(token)) => {
            tokens::insert(
                &mut tx,
                &new_id(),
                BOOTSTRAP_TOKEN_NAME,
                Role::Admin,
                None,
                &token_hash(token),
            )
            .await?;
            None
        }
        (None, None) => {
            let token = new_token();
            tokens::insert(
                &mut tx,
                &new_id(),
                BOOTSTRAP_TOKEN_NAME,
                Role::Admin,
                None,
                &token_hash(&token),
            )
            .await?;
            Some(token)
        }
    };
    tx.commit().await?;
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_admin_tokens_are_refused() {
        for weak in [
            "x",
            "stm_x",
            "aaaaaaaaaaaaaaaaaaaa",
            "short token with spaces",
        ] {
            let e = check_admin_token(weak).unwrap_err().to_string();
            assert!(e.contains("STYRMIN_ADMIN_TOKEN is too weak"), "{e}");
        }
        assert!(check_admin_token("stm_test-admin-token").is_ok());
    }

    #[test]
    fn bearer_headers_are_read_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn an_agent_token_acts_only_for_its_cluster() {
        let agent = Principal {
            name: "agent-a".into(),
            role: Role::Agent,
            cluster_id: Some("a".into()),
        };
        assert!(agent.agent_for("a").is_ok());
        assert!(matches!(agent.agent_for("b"), Err(ApiError::Forbidden(_))));
        assert!(agent.can_read().is_err());
        let viewer = Principal {
            role: Role::Viewer,
            cluster_id: None,
            ..agent
        };
        assert!(viewer.can_read().is_ok());
        assert!(viewer.can_operate().is_err());
        assert!(viewer.agent_for("a").is_err());
    }
}
