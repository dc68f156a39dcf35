//! The page handlers: each asks the GraphQL schema for what it shows, as the signed-in
//! principal, and renders a template. Handlers return `Result<Response, Response>` so a
//! refusal (not signed in, a stale form, an unknown object) is one `?`.

// A refusal is the page's whole answer, made once per request: its size does not matter.
#![allow(clippy::result_large_err)]

mod backups;
mod deployment;
mod forms;
mod views;

pub use backups::{backup_action, environment_action};
pub use deployment::{deployment, diff, operate};
pub use forms::{edit, edit_page, new, new_page, upgrade, upgrade_page};
pub use views::{backups, cluster, driver, drivers, environment, overview, run, runs};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::{Request, Variables};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SharedUi;
use super::session::{self, Session, Via};
use crate::auth::Role;

/// Why the API refused an operation: its message, and each field's own message when it
/// was a validation error (shown next to the field).
#[derive(Debug, Default)]
pub struct Refusal {
    pub message: String,
    /// The API's `extensions.code` of the first error (`NOT_FOUND`, `VALIDATION`, …).
    pub code: String,
    pub fields: BTreeMap<String, String>,
}

type PageResult = Result<Response, Response>;

impl super::Ui {
    /// Runs a GraphQL operation as the session's principal.
    async fn graphql(
        &self,
        session: &Session,
        query: &str,
        variables: Value,
    ) -> Result<Value, Refusal> {
        let request = Request::new(query)
            .variables(Variables::from_json(variables))
            .data(session.principal.clone());
        let response = self.schema.execute(request).await;
        if !response.errors.is_empty() {
            let mut refusal = Refusal::default();
            let mut messages = Vec::new();
            for error in &response.errors {
                messages.push(error.message.clone());
                if refusal.code.is_empty()
                    && let Some(async_graphql::Value::String(code)) =
                        error.extensions.as_ref().and_then(|ext| ext.get("code"))
                {
                    refusal.code = code.clone();
                }
                let fields = error
                    .extensions
                    .as_ref()
                    .and_then(|ext| ext.get("fields"))
                    .and_then(|v| v.clone().into_json().ok());
                for f in fields
                    .iter()
                    .flat_map(|f| f.as_array().into_iter().flatten())
                {
                    if let (Some(field), Some(message)) =
                        (f["field"].as_str(), f["message"].as_str())
                    {
                        refusal.fields.insert(field.to_owned(), message.to_owned());
                    }
                }
            }
            refusal.message = messages.join("; ");
            return Err(refusal);
        }
        response.data.into_json().map_err(|e| Refusal {
            message: e.to_string(),
            ..Refusal::default()
        })
    }

    /// A query a page cannot do without: its refusal becomes the page's answer (404 for
    /// an unknown object, 502 otherwise).
    async fn query(
        &self,
        session: &Session,
        query: &str,
        variables: Value,
    ) -> Result<Value, Response> {
        self.graphql(session, query, variables)
            .await
            .map_err(|refusal| {
                let status = if refusal.code == "NOT_FOUND" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_GATEWAY
                };
                (status, refusal.message).into_response()
            })
    }

    fn render(&self, template: &str, context: Value) -> Response {
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(minijinja::value::Serde(&context)));
        match rendered {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "cannot render a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }

    /// What every signed-in page gets: who, their CSRF token, whether they may operate.
    /// Pages are live (refreshed on every change) unless `form_context` says otherwise.
    fn page_context(&self, session: &Session, mut data: Value) -> Value {
        data["csrf"] = json!(session::csrf_token(&self.state.key, &session.token));
        data["can_operate"] = json!(matches!(
            session.principal.role,
            Role::Admin | Role::Operator
        ));
        data["live"] = json!(true);
        data
    }

    /// A form's page: not live, so a refresh never wipes what the user is typing.
    fn form_context(&self, session: &Session, data: Value) -> Value {
        let mut data = self.page_context(session, data);
        data["live"] = json!(false);
        data
    }
}

/// The session, or the sign-in page for a browser.
async fn signed_in(ui: &SharedUi, headers: &HeaderMap) -> Result<Session, Response> {
    match session::session(&ui.state, headers).await {
        Some(session) => Ok(session),
        None if headers.contains_key(header::AUTHORIZATION) => {
            Err((StatusCode::UNAUTHORIZED, "the token was refused").into_response())
        }
        None => Err(Redirect::to("/login").into_response()),
    }
}

/// A form is posted by a signed-in session (the sign-in form aside): without one the
/// request is answered before its body is read.
pub async fn posts_need_a_session(
    State(ui): State<SharedUi>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST
        && request.uri().path() != "/login"
        && let Err(refused) = signed_in(&ui, request.headers()).await
    {
        return refused;
    }
    next.run(request).await
}

pub async fn login_page(State(ui): State<SharedUi>) -> Response {
    ui.render("login.html", json!({}))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(ui): State<SharedUi>, Form(form): Form<LoginForm>) -> Response {
    let secret = match session::start(&ui.state, form.token.trim()).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            let page = ui.render(
                "login.html",
                json!({"error": "That token was not accepted."}),
            );
            return (StatusCode::UNAUTHORIZED, page).into_response();
        }
        Err(e) => {
            let status = match e {
                crate::error::ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let page = ui.render(
                "login.html",
                json!({"error": "Signing in failed for now; try again shortly."}),
            );
            return (status, [(header::RETRY_AFTER, "1")], page).into_response();
        }
    };
    let secure = ui
        .state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::set_cookie(&secret, secure)),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Refuses a cookie-authenticated form without this session's CSRF token.
fn checked_form(ui: &SharedUi, session: &Session, presented: &str) -> Result<(), Response> {
    if session.via == Via::Bearer || session::csrf_ok(&ui.state.key, &session.token, presented) {
        return Ok(());
    }
    Err((
        StatusCode::FORBIDDEN,
        "this form is stale or did not come from Styrmin (CSRF token missing or wrong); reload the page",
    )
        .into_response())
}

pub async fn logout(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, &form.csrf)?;
    if session.via == Via::Cookie {
        session::end(&ui.state, &session.token)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response())?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie()),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response())
}

/// `change` whenever something a page shows may have changed (a deployment, its runs or
/// their logs); pages fetch themselves again. The event carries data because a browser
/// drops an event without any.
pub async fn events(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    signed_in(&ui, &headers).await?;
    let receiver = ui.state.events.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((
                Ok(SseEvent::default().event("change").data("changed")),
                receiver,
            )),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
