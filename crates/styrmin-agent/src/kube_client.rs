//! The agent's Kubernetes client: the usual one, with every request it sends to the API
//! server counted by verb (`styrmin_agent_kube_requests_total`), so what the agent costs
//! the API server, converging and idle, is measured rather than guessed.

use std::task::{Context, Poll};

use anyhow::Result;
use kube::Client;
use kube::client::ClientBuilder;

/// A client for `config` whose requests are counted in the agent's metrics.
pub fn counted(config: kube::Config) -> Result<Client> {
    Ok(ClientBuilder::try_from(config)?.with_layer(&Count).build())
}

/// The verb a request stands for, as the API server's own metrics name them.
pub fn verb<B>(request: &http::Request<B>) -> &'static str {
    let query = request.uri().query().unwrap_or_default();
    let watching = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    match *request.method() {
        _ if watching => "watch",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

struct Count;

impl<S> tower_layer::Layer<S> for Count {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted(inner)
    }
}

#[derive(Clone)]
pub struct Counted<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for Counted<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        crate::metrics::global().kube_request(verb(&request));
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Watches are told from lists by their query; the rest by method.
    #[test]
    fn verbs_follow_the_api_servers_names() {
        let request = |method: http::Method, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
        };
        assert_eq!(
            verb(&request(
                http::Method::GET,
                "/api/v1/pods?watch=true&resourceVersion=1"
            )),
            "watch"
        );
        assert_eq!(verb(&request(http::Method::GET, "/api/v1/pods")), "get");
        assert_eq!(
            verb(&request(http::Method::PATCH, "/api/v1/namespaces/a")),
            "patch"
        );
    }
}
