//! The HTTP surface: GraphQL (POST) with GraphiQL (GET) at `/graphql`, subscriptions over
//! WebSocket at `/graphql/ws`, and health endpoints, the only ones without a token.

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Http { state, schema })
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

async fn readyz(State(http): State<Http>) -> Response {
    match sqlx::query("SELECT 1").execute(http.state.db.pool()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}
