//! The agent's own small HTTP listener (`--metrics-listen`): `GET /metrics` (Prometheus
//! text format) and `GET /healthz`. No token: it is meant for the pod network, where
//! Prometheus scrapes it, not for the internet (docs/operations.md#metrics).

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{CONTENT_TYPE, Metrics};

pub fn router(metrics: &'static Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }),
        )
        .route("/healthz", get(|| async { "ok".into_response() }))
}

/// Binds `addr` now, so that a taken port stops the agent at start rather than later.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for /metrics"))
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: &'static Metrics) {
    let addr = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, router(metrics)).await {
        tracing::warn!(?addr, error = %e, "the metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One HTTP/1.1 GET over a plain socket: (status, Content-Type, body).
    async fn get(url: &str, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut socket = tokio::net::TcpStream::connect(url).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body.to_owned())
    }

    /// `/metrics` answers with the registry's text in Prometheus text format, `/healthz`
    /// with `ok`, and other paths with 404.
    #[tokio::test]
    async fn serves_metrics_and_health() {
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        metrics.reported(4, 2);
        let listener = bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(serve(listener, metrics));

        let (status, content_type, body) = get(&addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            body.lines()
                .any(|l| l == "styrmin_agent_reported_pods_sum 4.0"),
            "{body}"
        );
        let (status, _, body) = get(&addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        assert_eq!(get(&addr, "/graphql").await.0, 404);
        server.abort();
    }

    /// A port already taken is refused with the address in the message.
    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_it() {
        let taken = bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr).await.unwrap_err();
        assert!(
            format!("{error:#}").contains(&addr.to_string()),
            "{error:#}"
        );
    }
}
