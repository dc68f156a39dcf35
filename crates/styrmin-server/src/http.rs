//! The HTTP surface: GraphQL (POST) with a built-in console (GET) at `/graphql`, subscriptions over
//! WebSocket at `/graphql/ws`, the web UI at `/` ([`crate::ui`]), Prometheus metrics at
//! `/metrics` (for readers' tokens), and health endpoints, the only ones without a token.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
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
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            throttle_refused,
        ))
        // Forms and other extracted bodies: read up to the limit, a longer one is a 413.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY))
        // Matched routes only: a scan of made-up URLs adds no series.
        .route_layer(middleware::from_fn_with_state(state, track_request))
}

/// What every response carries: no framing by other sites, no content sniffing, and
/// (for pages) scripts, styles and connections from this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// Sign-in: an address refused too often in a minute (wrong tokens at `POST /login`) gets
/// `429` until the minute is over. (API tokens are 256-bit random values; the form is where
/// people type guessable ones.)
async fn throttle_refused(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let sign_in = request.method() == axum::http::Method::POST && request.uri().path() == "/login";
    let ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .filter(|_| sign_in);
    if let Some(wait) = ip.and_then(|ip| state.throttle.blocked(ip)) {
        let seconds = wait.as_secs().max(1).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds)],
            "too many refused sign-ins from this address: wait a minute",
        )
            .into_response();
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED
        && let Some(ip) = ip
    {
        state.throttle.failed(ip);
    }
    response
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

/// Why a request has no caller: no valid token (401), or the database could not say (503).
enum NoPrincipal {
    Unauthorized(String),
    Unavailable(String),
}

impl NoPrincipal {
    fn message(self) -> String {
        match self {
            NoPrincipal::Unauthorized(m) | NoPrincipal::Unavailable(m) => m,
        }
    }

    fn into_response(self) -> Response {
        match self {
            NoPrincipal::Unauthorized(m) => unauthorized(m),
            NoPrincipal::Unavailable(m) => unavailable(m),
        }
    }
}

/// A `503` the client may retry after a second.
fn unavailable(message: String) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": "UNAVAILABLE"}}]});
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(body),
    )
        .into_response()
}

async fn principal(state: &AppState, token: Option<&str>) -> Result<Principal, NoPrincipal> {
    let Some(token) = token else {
        return Err(NoPrincipal::Unauthorized(
            "a bearer token is required (Authorization: Bearer …)".into(),
        ));
    };
    match authenticate(&state.db, token).await {
        Ok(p) => Ok(p),
        Err(ApiError::Unauthorized(m)) => Err(NoPrincipal::Unauthorized(m)),
        Err(e) => Err(NoPrincipal::Unavailable(e.to_string())),
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
        .map_err(NoPrincipal::into_response)?;
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
        ApiError::Unavailable(m) => return unavailable(m),
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

/// The largest request body the server reads: GraphQL documents with their variables and
/// UI forms. Driver bundles are loaded from a directory or git, never uploaded.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// A `400`/`413` in GraphQL's error shape.
fn refused(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}

/// The token is checked before the body is read; the body is read up to
/// [`MAX_REQUEST_BODY`] (a longer one is refused with 413 without reading the rest), then
/// parsed.
async fn graphql_post(State(http): State<Http>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let who = match principal(&http.state, header_token(&parts.headers)).await {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!(
                "the request body is larger than the server's limit of {MAX_REQUEST_BODY} bytes"
            ),
        )
    };
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return too_large(),
    };
    // One operation a request: a batch would multiply the cost limits.
    let request = match serde_json::from_slice::<async_graphql::Request>(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request (JSON with a `query`): {e}"),
            );
        }
    };
    let response = http.schema.execute(request.data(who)).await;
    // The database was busy or unreachable for part of it: a 503 the client may retry.
    let busy = response.errors.iter().any(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some_and(|c| *c == async_graphql::Value::from("UNAVAILABLE"))
    });
    let mut http_response = GraphQLResponse::from(response).into_response();
    if busy {
        *http_response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        http_response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    http_response
}

/// The GraphQL console: a page and a script built into the binary (no CDN), which post
/// operations to `/graphql` with the token typed in.
async fn graphiql() -> Html<&'static str> {
    Html(include_str!("ui/static/console.html"))
}

/// Subscriptions take the token from the upgrade request's header, or from the
/// `connection_init` payload (`{"Authorization": "Bearer …"}` or `{"token": "…"}`), which
/// is all a browser can send. A socket without `connection_init` within
/// [`Settings::ws_init_timeout`](crate::state::Settings) is closed; each operation on it
/// checks again that its token was not revoked ([`graphql::guard`]).
async fn graphql_ws(
    State(http): State<Http>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = header_token(&headers).map(str::to_owned);
    let state = http.state.clone();
    let init_timeout = state.settings.ws_init_timeout;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_REQUEST_BODY)
        .on_upgrade(move |stream| async move {
            let initialised = std::sync::Arc::new(tokio::sync::Notify::new());
            let on_init = initialised.clone();
            let serve = GraphQLWebSocket::new(stream, http.schema.clone(), protocol)
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
                        .map_err(|e| async_graphql::Error::new(e.message()))?;
                    on_init.notify_one();
                    let mut data = Data::default();
                    data.insert(who);
                    data.insert(graphql::guard::SocketToken(token.unwrap_or_default()));
                    Ok(data)
                })
                .serve();
            tokio::pin!(serve);
            tokio::select! {
                () = &mut serve => return,
                () = initialised.notified() => {}
                () = tokio::time::sleep(init_timeout) => {
                    // Dropping the socket closes it.
                    tracing::debug!("closing a GraphQL WebSocket without connection_init");
                    return;
                }
            }
            serve.await;
        })
}

/// `/metrics` shows what the catalogue shows (cluster names, flow-run counts): the same
/// readers may scrape it (admin, operator, viewer); an agent token may not.
async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    let who = match principal(&http.state, header_token(&headers)).await {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
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
