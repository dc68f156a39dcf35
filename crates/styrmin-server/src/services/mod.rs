//! The services: what the API asks of the server, one module per noun, between the
//! GraphQL resolvers and the UI (which call them) and the store (which they call). A
//! service checks the caller's role, validates everything first, writes in one
//! transaction with its audit row, and writes nothing when anything is wrong.
//!
//! Loading drivers ([`crate::driver_versions`]) and changing deployments
//! ([`crate::reconcile`]) are services of the same kind that live beside this module.

pub mod backups;
pub mod clusters;
pub mod environments;
pub mod locations;
pub mod schedules;
pub mod tokens;

use serde_json::Value;
use styrmin_core::FieldError;
use styrmin_core::context::check_config;
use styrmin_core::naming;

use crate::error::{ApiError, ApiResult};
use crate::store::is_unique_violation;

fn check_name(field: &str, name: &str) -> Vec<FieldError> {
    naming::dns1123_label_problem(name)
        .map(|p| vec![FieldError::new(field, format!("`{name}` {p}"))])
        .unwrap_or_default()
}

fn check_object(scope: &str, config: &Value) -> Vec<FieldError> {
    if config.is_object() {
        check_config(scope, config.as_object().expect("object"))
    } else {
        vec![FieldError::new(
            "config",
            format!("must be a JSON object, found {}", kind_of(config)),
        )]
    }
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn fail_if(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn duplicate(kind: &str, name: &str) -> impl FnOnce(sqlx::Error) -> ApiError {
    let message = format!("a {kind} named `{name}` already exists");
    move |e| {
        if is_unique_violation(&e) {
            ApiError::Validation(vec![FieldError::new("name", message)])
        } else {
            e.into()
        }
    }
}
