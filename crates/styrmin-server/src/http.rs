//! The HTTP surface: GraphQL (POST) with GraphiQL (GET) at `/graphql`, subscriptions over
//! WebSocket at `/graphql/ws`, the web UI at `/` ([`crate::ui`]), Prometheus metrics at
//! `/metrics` (for readers' tokens), and health endpoints, the only ones without a token.

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::auth::{Principal, authenticate, bearer};
use crate::error::ApiError;
use crate::graphql::{self, StyrminSchema};
use crate::state::AppState;

#[derive(Clone)]
struct Http {
    state: AppState,
    schema: StyrminSchema,
}

pub fn router(state: AppState) -> Router {
    let schema = graphql::schema(state.clone());
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/charts/index.yaml", get(chart_index))
        .route("/charts/{file}", get(chart_archive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Http {
            state: state.clone(),
            schema: schema.clone(),
        })
        .merge(crate::ui::router(state.clone(), schema))
        // Matched routes only: a scan of made-up URLs adds no series.
        .route_layer(middleware::from_fn_with_state(state, track_request))
}

/// Counts and times each request under its route's pattern.
async fn track_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    state.metrics.http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn unauthorized(message: String) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": "UNAUTHORIZED"}}]});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

async fn principal(state: &AppState, token: Option<&str>) -> Result<Principal, String> {
    let Some(token) = token else {
        return Err("a bearer token is required (Authorization: Bearer …)".into());
    };
    match authenticate(&state.db, token).await {
        Ok(p) => Ok(p),
        Err(ApiError::Unauthorized(m)) => Err(m),
        Err(e) => Err(e.to_string()),
    }
}

fn header_token(headers: &HeaderMap) -> Option<&str> {
    bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The token of `Authorization: Bearer T`, or the password of `Authorization: Basic`, which
/// is what Helm and Flux's `HelmRepository` send to a chart repository.
fn bearer_or_basic(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = header_token(headers) {
        return Some(token.to_owned());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Charts are for clusters' Flux (chart-pull tokens; agent tokens as written by older
/// agents) and anyone who may read the catalogue.
async fn chart_reader(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let who = principal(state, bearer_or_basic(headers).as_deref())
        .await
        .map_err(unauthorized)?;
    use crate::auth::Role;
    if matches!(who.role, Role::Agent | Role::Charts) || who.can_read().is_ok() {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "this token may not read charts").into_response())
    }
}

fn api_failure(e: ApiError) -> Response {
    let status = match e {
        ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

async fn chart_index(State(http): State<Http>, headers: HeaderMap) -> Response {
    if let Err(refused) = chart_reader(&http.state, &headers).await {
        return refused;
    }
    match crate::charts::index_yaml(&http.state.db).await {
        Ok(yaml) => ([(header::CONTENT_TYPE, "application/x-yaml")], yaml).into_response(),
        Err(e) => api_failure(e),
    }
}

async fn chart_archive(
    State(http): State<Http>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    if let Err(refused) = chart_reader(&http.state, &headers).await {
        return refused;
    }
    match crate::charts::archive(&http.state.db, &file).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/gzip")], bytes).into_response(),
        Err(e) => api_failure(e),
    }
}

async fn graphql_post(
    State(http): State<Http>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> Response {
    let who = match principal(&http.state, header_token(&headers)).await {
        Ok(who) => who,
        Err(message) => return unauthorized(message),
    };
    let request = req.into_inner().data(who);
    GraphQLResponse::from(http.schema.execute(request).await).into_response()
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Styrmin GraphQL")
            .finish(),
    )
}

/// Subscriptions take the token from the upgrade request's header, or from the
/// `connection_init` payload (`{"Authorization": "Bearer …"}` or `{"token": "…"}`), which
/// is all a browser can send.
async fn graphql_ws(
    State(http): State<Http>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = header_token(&headers).map(str::to_owned);
    let state = http.state.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, http.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let from_payload = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .and_then(|v| bearer(Some(v)).map(str::to_owned))
                        .or_else(|| {
                            payload
                                .get("token")
                                .and_then(|v| v.as_str())
                                .map(str::to_owned)
                        });
                    let token = from_header.or(from_payload);
                    let who = principal(&state, token.as_deref())
                        .await
                        .map_err(async_graphql::Error::new)?;
                    let mut data = Data::default();
                    data.insert(who);
                    Ok(data)
                })
                .serve()
        })
}

/// `/metrics` shows what the catalogue shows (cluster names, flow-run counts): the same
/// readers may scrape it (admin, operator, viewer); an agent token may not.
async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    let who = match principal(&http.state, header_token(&headers)).await {
        Ok(who) => who,
        Err(message) => return unauthorized(message),
    };
    if let Err(refused) = who.can_read() {
        return (StatusCode::FORBIDDEN, refused.to_string()).into_response();
    }
    let counts = async {
        let mut c = http.state.db.read().await?;
        crate::store::flow_runs::counts(&mut c).await
    };
    match counts.await {
        Ok(counts) => (
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            http.state.metrics.render(&counts),
        )
            .into_response(),
        Err(e) => api_failure(e.into()),
    }
}

async fn readyz(State(http): State<Http>) -> Response {
    match sqlx::query("SELECT 1").execute(http.state.db.pool()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}
