//! Who is asking: a session (its secret in a cookie, the session a record of its own that
//! expires, ends at sign-out and with its token) or a bearer token, and the CSRF token of
//! a session.

use axum::http::{HeaderMap, header};

use crate::auth::{Principal, Role, authenticate, bearer};
use crate::crypto::{SecretKey, new_token, token_hash};
use crate::error::ApiResult;
use crate::ids::{new_id, now_ms};
use crate::state::AppState;
use crate::store::{sessions, tokens};

pub const COOKIE: &str = "styrmin_session";

/// How the caller proved who they are: a cookie is sent by the browser on its own, so
/// only cookie-authenticated forms need the CSRF token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

pub struct Session {
    pub principal: Principal,
    /// The session's secret (cookie) or the bearer token.
    pub token: String,
    pub via: Via,
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// How long a UI session lasts after sign-in.
pub const LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The caller's session, or `None` when there is no valid token or live session.
pub async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let from_header = bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map(str::to_owned);
    if let Some(token) = from_header {
        let principal = authenticate(&state.db, &token).await.ok()?;
        return Some(Session {
            principal,
            token,
            via: Via::Bearer,
        });
    }
    let secret = cookie_token(headers)?;
    let mut c = state.db.read().await.ok()?;
    let owner = sessions::live(&mut c, &token_hash(&secret), now_ms())
        .await
        .ok()??;
    Some(Session {
        principal: Principal {
            name: owner.name,
            role: owner.role,
            cluster_id: owner.cluster_id,
        },
        token: secret,
        via: Via::Cookie,
    })
}

/// Signs in with an API token: a new session whose secret goes in the cookie. `None` when
/// the token is not valid.
pub async fn start(state: &AppState, token: &str) -> ApiResult<Option<String>> {
    let mut tx = state.db.write().await?;
    let Some(row) = tokens::by_hash(&mut tx, &token_hash(token)).await? else {
        return Ok(None);
    };
    if row.role == Role::Agent {
        return Ok(None);
    }
    let secret = new_token();
    let now = now_ms();
    sessions::prune(&mut tx, now).await?;
    let lifetime = i64::try_from(LIFETIME.as_millis()).unwrap_or(i64::MAX);
    sessions::insert(
        &mut tx,
        &new_id(),
        &token_hash(&secret),
        &row.id,
        now,
        now + lifetime,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(secret))
}

/// Signs out: the session is deleted, its cookie worthless from now on.
pub async fn end(state: &AppState, secret: &str) -> ApiResult<()> {
    let mut c = state.db.write().await?;
    sessions::delete(&mut c, &token_hash(secret), now_ms()).await?;
    c.commit().await?;
    Ok(())
}

pub fn csrf_token(key: &SecretKey, session_token: &str) -> String {
    key.mac("ui-csrf", session_token)
}

/// True when `presented` is this session's CSRF token (compared in constant time).
pub fn csrf_ok(key: &SecretKey, session_token: &str, presented: &str) -> bool {
    key.verify_mac("ui-csrf", session_token, presented)
}

/// `Set-Cookie` for a new session (which expires with it); `Secure` when the server is
/// reached over HTTPS.
pub fn set_cookie(secret: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}
