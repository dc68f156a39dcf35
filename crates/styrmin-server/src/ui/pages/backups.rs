//! The backup buttons: back up an environment now, clone it (with its data), restore or
//! delete a backup. Each calls its mutation as the signed-in user and goes back to the
//! page it came from, or shows that page again with the refusal.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::json;

use super::views::{backups_context, environment_context};
use super::{PageResult, SharedUi, checked_form, signed_in};

#[derive(Deserialize)]
pub struct EnvironmentForm {
    #[serde(default)]
    csrf: String,
    /// For a clone: the new environment's name.
    #[serde(default)]
    name: String,
    /// For a clone: present when the data comes along.
    #[serde(default)]
    with_data: Option<String>,
}

/// `POST /environments/{id}/backup` and `/environments/{id}/clone`.
pub async fn environment_action(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    Form(form): Form<EnvironmentForm>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, &form.csrf)?;
    let done = match op.as_str() {
        "backup" => ui
            .graphql(
                &session,
                "mutation($id: ID!) { createBackup(environmentId: $id) { id } }",
                json!({"id": id}),
            )
            .await
            .map(|_| format!("/environments/{id}")),
        "clone" => ui
            .graphql(
                &session,
                "mutation($id: ID!, $name: String!, $data: Boolean!) { cloneEnvironment(sourceId: $id, name: $name, withData: $data) { environment { id } } }",
                json!({"id": id, "name": form.name.trim(), "data": form.with_data.is_some()}),
            )
            .await
            .map(|v| {
                format!(
                    "/environments/{}",
                    v["cloneEnvironment"]["environment"]["id"]
                        .as_str()
                        .unwrap_or_default()
                )
            }),
        _ => return Err((StatusCode::NOT_FOUND, format!("no operation `{op}`")).into_response()),
    };
    match done {
        Ok(to) => Ok(Redirect::to(&to).into_response()),
        Err(refusal) => {
            let mut context = environment_context(&ui, &session, &id, 0).await?;
            context["flash"] = json!(format!("{op}: {}", refusal.message));
            Ok((StatusCode::CONFLICT, ui.render("environment.html", context)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct BackupForm {
    #[serde(default)]
    csrf: String,
    /// Where the button was: the page to go back to (`/deployments/ID`, `/environments/ID`
    /// or `/backups`).
    #[serde(default)]
    back: String,
}

/// `POST /backups/{id}/restore` and `/backups/{id}/delete`.
pub async fn backup_action(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    Form(form): Form<BackupForm>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, &form.csrf)?;
    let mutation = match op.as_str() {
        "restore" => "mutation($id: ID!) { restoreBackup(backupId: $id) { id } }",
        "delete" => "mutation($id: ID!) { deleteBackup(id: $id) { id } }",
        _ => return Err((StatusCode::NOT_FOUND, format!("no operation `{op}`")).into_response()),
    };
    // Only this site's own pages: never an address given from elsewhere.
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") {
        form.back.as_str()
    } else {
        "/backups"
    };
    match ui.graphql(&session, mutation, json!({"id": id})).await {
        Ok(_) => Ok(Redirect::to(back).into_response()),
        Err(refusal) => {
            let mut context = backups_context(&ui, &session).await?;
            context["flash"] = json!(format!("{op} backup {id}: {}", refusal.message));
            Ok((StatusCode::CONFLICT, ui.render("backups.html", context)).into_response())
        }
    }
}
