//! A typed client of the Styrmin GraphQL API, shared by styrminctl, the agent and tests.
//! Errors keep the server's `code` so callers can tell bad input from a missing object, a
//! conflict or a refused token.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub mod config;
mod operation;
pub mod ops;

pub use operation::{Document, NoVariables, Operation};

/// What kind of failure an error is; styrminctl maps each to its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input was wrong (bad JSON, unknown field value, failed validation).
    Validation,
    NotFound,
    Conflict,
    /// No token, or an unknown one.
    Unauthorized,
    /// The token's role may not do this.
    Forbidden,
    /// The server could not be reached or answered something unreadable.
    Transport,
    /// The server failed.
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub fields: Vec<FieldProblem>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fields.is_empty() {
            return f.write_str(&self.message);
        }
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Error {}

impl Error {
    fn transport(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Transport,
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// `server` is the base URL (`http://127.0.0.1:8080`); `/graphql` is added.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, Error> {
        install_crypto_provider();
        let base = server.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error {
                kind: ErrorKind::Validation,
                message: format!("server address `{server}` must start with http:// or https://"),
                fields: Vec::new(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            endpoint: format!("{base}/graphql"),
            token,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs a named operation and returns its root field, typed.
    pub async fn run<O: Operation>(&self, variables: &O::Variables) -> Result<O::Output, Error> {
        let variables = serde_json::to_value(variables).map_err(|e| Error {
            kind: ErrorKind::Validation,
            message: format!("the variables of {} do not serialise: {e}", O::NAME),
            fields: Vec::new(),
        })?;
        self.field(O::DOCUMENT, variables, O::FIELD).await
    }

    /// Runs one document and returns its `data`: for tests and tools that probe the API
    /// itself. Product code uses [`Client::run`] with a named operation.
    pub async fn request(&self, query: &str, variables: Value) -> Result<Value, Error> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.map_err(|e| {
            Error::transport(format!(
                "cannot reach the Styrmin server at {}: {}",
                self.endpoint,
                root_cause(&e)
            ))
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            Error::transport(format!(
                "the server at {} answered {status} with an unreadable body: {e}",
                self.endpoint
            ))
        })?;
        if let Some(error) = body
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return Err(api_error(error));
        }
        if !status.is_success() {
            return Err(Error::transport(format!("the server answered {status}")));
        }
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Runs one document and decodes the field `field` of its data.
    pub async fn field<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Result<T, Error> {
        let mut data = self.request(query, variables).await?;
        let value = data.get_mut(field).map(Value::take).unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| {
            Error::transport(format!(
                "unexpected shape of `{field}` in the server's answer: {e}"
            ))
        })
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn api_error(error: &Value) -> Error {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("unknown error")
        .to_owned();
    let ext = error.get("extensions");
    let code = ext.and_then(|e| e.get("code")).and_then(Value::as_str);
    let kind = match code {
        Some("VALIDATION") => ErrorKind::Validation,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("CONFLICT") => ErrorKind::Conflict,
        Some("UNAUTHORIZED") => ErrorKind::Unauthorized,
        Some("FORBIDDEN") => ErrorKind::Forbidden,
        Some(_) => ErrorKind::Server,
        // GraphQL's own errors (unknown argument, wrong type) are bad input.
        None => ErrorKind::Validation,
    };
    let fields = ext
        .and_then(|e| e.get("fields"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| FieldProblem {
                    field: f
                        .get("field")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    message: f
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Error {
        kind,
        message,
        fields,
    }
}
