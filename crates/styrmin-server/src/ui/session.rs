//! Who is asking: the session cookie or a bearer token, and the CSRF token of a session.

use axum::http::{HeaderMap, header};

use crate::auth::{Principal, authenticate, bearer};
use crate::crypto::SecretKey;
use crate::state::AppState;

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

/// The caller's session, or `None` when there is no valid token.
pub async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let from_header = bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map(str::to_owned);
    let (token, via) = match from_header {
        Some(token) => (token, Via::Bearer),
        None => (cookie_token(headers)?, Via::Cookie),
    };
    let principal = authenticate(&state.db, &token).await.ok()?;
    Some(Session {
        principal,
        token,
        via,
    })
}

pub fn csrf_token(key: &SecretKey, session_token: &str) -> String {
    key.mac("ui-csrf", session_token)
}

/// True when `presented` is this session's CSRF token (compared in constant time).
pub fn csrf_ok(key: &SecretKey, session_token: &str, presented: &str) -> bool {
    key.verify_mac("ui-csrf", session_token, presented)
}

/// `Set-Cookie` for a new session; `Secure` when the server is reached over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}
