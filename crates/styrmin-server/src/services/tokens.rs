//! API tokens: creating one of a role (agent tokens are bound to a cluster) and revoking
//! it (extra agent tokens included); a cluster's own agent token is rotated through its
//! cluster instead.

use serde_json::json;

use super::duplicate;
use crate::auth::{Principal, Role};
use crate::crypto::{new_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::resolve;
use crate::state::AppState;
use crate::store::tokens::TokenRow;
use crate::store::{audit, tokens};

/// The longest token name.
const MAX_NAME: usize = 64;

/// A token's name is shown in lists, logs and the audit log: printable text of a bounded
/// length, without control characters or the bidirectional controls that can make one
/// name look like another.
fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::field(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if let Some(c) = name.chars().find(|&c| c.is_control() || bidi(c)) {
        return Err(ApiError::field(
            "name",
            format!(
                "must not contain control or text-direction characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

pub async fn create_token(
    s: &AppState,
    who: &Principal,
    name: &str,
    role: Role,
    cluster_ref: Option<&str>,
) -> ApiResult<(TokenRow, String)> {
    who.can_administer()?;
    check_name(name)?;
    if role == Role::Charts {
        return Err(ApiError::field(
            "role",
            "chart-pull tokens are issued with each cluster's agent token; they cannot be created",
        ));
    }
    let mut tx = s.db.write().await?;
    let cluster_id = match (role, cluster_ref) {
        (Role::Agent, Some(r)) => Some(resolve::cluster(&mut tx, r).await?.id),
        (Role::Agent, None) => {
            return Err(ApiError::field(
                "cluster",
                "an agent token is bound to a cluster: name it",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::field(
                "cluster",
                "only agent tokens are bound to a cluster",
            ));
        }
        (_, None) => None,
    };
    let token = new_token();
    let id = new_id();
    tokens::insert(
        &mut tx,
        &id,
        name,
        role,
        cluster_id.as_deref(),
        &token_hash(&token),
    )
    .await
    .map_err(duplicate("token", name))?;
    let row = tokens::by_name(&mut tx, &id).await?.expect("just inserted");
    audit::commit(
        tx,
        who,
        "createToken",
        "token",
        &id,
        json!({"name": name, "role": role.as_str()}),
    )
    .await?;
    Ok((row, token))
}

pub async fn delete_token(s: &AppState, who: &Principal, reference: &str) -> ApiResult<TokenRow> {
    who.can_administer()?;
    let mut tx = s.db.write().await?;
    let row = tokens::by_name(&mut tx, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("token", reference))?;
    // An extra agent token is revoked like any other; the cluster's own agent token and
    // its chart-pull token are replaced together (its agent keeps a way in).
    if row.role == Role::Charts
        || (row.role == Role::Agent && tokens::is_cluster_agent_token(&mut tx, &row.id).await?)
    {
        return Err(ApiError::Conflict(format!(
            "`{}` is a cluster's own agent or chart-pull token: rotate it with rotateAgentToken instead",
            row.name
        )));
    }
    tokens::delete(&mut tx, &row.id).await?;
    crate::store::sessions::delete_for_token(&mut tx, &row.id).await?;
    audit::commit(
        tx,
        who,
        "deleteToken",
        "token",
        &row.id,
        json!({"name": row.name}),
    )
    .await?;
    Ok(row)
}
