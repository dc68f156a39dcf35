//! The page handlers: each asks the GraphQL schema for what it shows, as the signed-in
//! principal, and renders a template.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::{Request, Variables};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SharedUi;
use super::session::{self, Session, Via};
use crate::auth::Role;

const OVERVIEW: &str = "{ me { name role } clusters { id name agentOnline agentLastSeen environments { id } } environments { id name clusterId cluster { name } namespace } deployments { id name environmentId environment { name } appVersion driverVersion { driverName version } status { status urls } } }";
const DEPLOYMENT: &str = "query($id: ID!) { me { name role } deployment(id: $id) { id name environmentId environment { name } appVersion phase lastError parameters driverVersion { driverName version } status { status message urls } pods { name component phase ready restarts } flowRuns(first: 10) { id kind state attempt createdAt error } } }";
const RUN_LOG: &str = "query($id: ID!) { flowRun(id: $id) { logs(limit: 500) { level message } } }";

impl super::Ui {
    /// Runs a GraphQL operation as the session's principal; errors as one message.
    async fn graphql(
        &self,
        session: &Session,
        query: &str,
        variables: Value,
    ) -> Result<Value, String> {
        let request = Request::new(query)
            .variables(Variables::from_json(variables))
            .data(session.principal.clone());
        let response = self.schema.execute(request).await;
        if !response.errors.is_empty() {
            return Err(response
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "));
        }
        response.data.into_json().map_err(|e| e.to_string())
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
    fn page_context(&self, session: &Session, mut data: Value) -> Value {
        data["csrf"] = json!(session::csrf_token(&self.state.key, &session.token));
        data["can_operate"] = json!(matches!(
            session.principal.role,
            Role::Admin | Role::Operator
        ));
        data["live"] = json!(true);
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

pub async fn login_page(State(ui): State<SharedUi>) -> Response {
    ui.render("login.html", json!({}))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(ui): State<SharedUi>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    if crate::auth::authenticate(&ui.state.db, token)
        .await
        .is_err()
    {
        let page = ui.render(
            "login.html",
            json!({"error": "That token was not accepted."}),
        );
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let secure = ui
        .state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::set_cookie(token, secure)),
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

/// The refusal of a cookie-authenticated form without this session's CSRF token.
fn csrf_refusal(ui: &SharedUi, session: &Session, presented: &str) -> Option<Response> {
    if session.via == Via::Bearer || session::csrf_ok(&ui.state.key, &session.token, presented) {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            "this form is stale or did not come from Styrmin (CSRF token missing or wrong); reload the page",
        )
            .into_response(),
    )
}

pub async fn logout(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match signed_in(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(refusal) = csrf_refusal(&ui, &session, &form.csrf) {
        return refusal;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie()),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response()
}

pub async fn overview(State(ui): State<SharedUi>, headers: HeaderMap) -> Response {
    let session = match signed_in(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut data = match ui.graphql(&session, OVERVIEW, json!({})).await {
        Ok(d) => d,
        Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
    };
    // Deployments by status, per environment.
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for d in data["deployments"].as_array().into_iter().flatten() {
        let env = d["environmentId"].as_str().unwrap_or_default().to_owned();
        let status = d["status"]["status"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned();
        *counts.entry(env).or_default().entry(status).or_default() += 1;
    }
    if let Some(envs) = data["environments"].as_array_mut() {
        for env in envs {
            let id = env["id"].as_str().unwrap_or_default().to_owned();
            env["counts"] = json!(counts.get(&id).cloned().unwrap_or_default());
        }
    }
    let context = ui.page_context(&session, data);
    ui.render("overview.html", context)
}

async fn deployment_context(ui: &SharedUi, session: &Session, id: &str) -> Result<Value, Response> {
    let data = ui
        .graphql(session, DEPLOYMENT, json!({"id": id}))
        .await
        .map_err(|e| (StatusCode::NOT_FOUND, e).into_response())?;
    let mut d = data["deployment"].clone();
    if let Some(latest) = d["flowRuns"][0]["id"].as_str()
        && let Ok(log) = ui.graphql(session, RUN_LOG, json!({"id": latest})).await
    {
        d["flowRuns"][0]["logs"] = log["flowRun"]["logs"].clone();
    }
    Ok(ui.page_context(session, json!({"me": data["me"], "d": d})))
}

pub async fn deployment(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match signed_in(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match deployment_context(&ui, &session, &id).await {
        Ok(context) => ui.render("deployment.html", context),
        Err(r) => r,
    }
}

/// A button on the deployment page: the matching mutation, then back to the page (or
/// the page again with the refusal).
pub async fn operate(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match signed_in(&ui, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(refusal) = csrf_refusal(&ui, &session, &form.csrf) {
        return refusal;
    }
    let mutation = match op.as_str() {
        "stop" => "mutation($id: ID!) { stopDeployment(id: $id) { flowRun { id } } }",
        "start" => "mutation($id: ID!) { startDeployment(id: $id) { flowRun { id } } }",
        "retry" => "mutation($id: ID!) { retryDeployment(id: $id) { flowRun { id } } }",
        "delete" => "mutation($id: ID!) { deleteDeployment(id: $id) { flowRun { id } } }",
        _ => return (StatusCode::NOT_FOUND, format!("no operation `{op}`")).into_response(),
    };
    match ui.graphql(&session, mutation, json!({"id": id})).await {
        Ok(_) => Redirect::to(&format!("/deployments/{id}")).into_response(),
        Err(message) => match deployment_context(&ui, &session, &id).await {
            Ok(mut context) => {
                context["flash"] = json!(format!("{op}: {message}"));
                (StatusCode::CONFLICT, ui.render("deployment.html", context)).into_response()
            }
            Err(r) => r,
        },
    }
}

/// `change` whenever something a page shows may have changed (a deployment, its runs or
/// their logs); pages fetch themselves again.
pub async fn events(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    signed_in(&ui, &headers).await?;
    let receiver = ui.state.events.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                Some((Ok(SseEvent::default().event("change").data("")), receiver))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
