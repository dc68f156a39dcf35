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
        ApiError::Internal(anyhow::Error::new(e).context("database"))
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
