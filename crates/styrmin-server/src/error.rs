//! The errors the API reports. Each has a stable `code` in the GraphQL error extensions so
//! clients (styrminctl, the agent, scripts) can act on the kind, and validation errors carry
//! the field each problem belongs to.

use styrmin_core::{FieldError, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{}", FieldErrors(.0.clone()))]
    Validation(Vec<FieldError>),
    #[error("{kind} `{reference}` not found")]
    NotFound {
        kind: &'static str,
        reference: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The database is busy or unreachable for now: the caller may retry (HTTP 503 with
    /// `Retry-After`).
    #[error("the database is busy or unreachable, try again shortly: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(kind: &'static str, reference: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            kind,
            reference: reference.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "VALIDATION",
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::Validation(e.0)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(anyhow::Error::new(e).context("database"))
        }
    }
}

/// The text sqlx gives a transient error (see [`is_transient`]), for errors that reached
/// GraphQL without passing through [`ApiError`] (a resolver's `?` on a database call).
pub fn is_transient_message(message: &str) -> bool {
    [
        "pool timed out",
        "closed pool",
        "error communicating with database",
        "database is locked",
        "terminating connection",
        "the database system is starting up",
        "the database system is shutting down",
        "connection refused",
        "Connection reset",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Errors that pass on their own: SQLite's lock held past the busy timeout, no connection
/// free in time, PostgreSQL restarting or unreachable.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let message = db.message();
            let code = db.code().unwrap_or_default();
            message.contains("database is locked")
                || message.contains("database table is locked")
                || message.contains("busy")
                || matches!(
                    code.as_ref(),
                    "5" | "6" | "517" | "57P01" | "57P02" | "57P03"
                )
                || code.starts_with("08")
        }
        _ => false,
    }
}

/// GraphQL resolvers return `async_graphql::Result`; `.gql()` turns our error into one that
/// carries `code` (and `fields`) in its extensions.
pub trait IntoGql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGql<T> for ApiResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}

pub fn to_graphql(e: ApiError) -> async_graphql::Error {
    use async_graphql::ErrorExtensions as _;
    {
        if let ApiError::Internal(inner) = &e {
            tracing::error!(error = format!("{inner:#}"), "internal error");
        }
        let error = async_graphql::Error::new(e.to_string());
        let code = e.code();
        let fields = match &e {
            ApiError::Validation(fields) => fields.clone(),
            _ => Vec::new(),
        };
        error.extend_with(|_, ext| {
            ext.set("code", code);
            if !fields.is_empty() {
                let list: Vec<async_graphql::Value> = fields
                    .iter()
                    .map(|f| {
                        let mut m = async_graphql::indexmap::IndexMap::new();
                        m.insert(
                            async_graphql::Name::new("field"),
                            async_graphql::Value::from(f.field.clone()),
                        );
                        m.insert(
                            async_graphql::Name::new("message"),
                            async_graphql::Value::from(f.message.clone()),
                        );
                        async_graphql::Value::Object(m)
                    })
                    .collect();
                ext.set("fields", async_graphql::Value::List(list));
            }
        })
    }
}
