//! API tokens: creating one of a role (agent tokens are bound to a cluster) and revoking
//! it; a cluster's agent token is rotated through its cluster instead.

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

pub async fn create_token(
    s: &AppState,
    who: &Principal,
    name: &str,
    role: Role,
    cluster_ref: Option<&str>,
) -> ApiResult<(TokenRow, String)> {
    who.can_administer()?;
    if name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
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
    if matches!(row.role, Role::Agent | Role::Charts) {
        return Err(ApiError::Conflict(format!(
            "`{}` is a cluster's agent or chart-pull token: rotate it with rotateAgentToken instead",
            row.name
        )));
    }
    tokens::delete(&mut tx, &row.id).await?;
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
