//! The deployment page, its buttons, and the diff of two of its Instances.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use styrmin_core::planner::diff_values;

use super::views::pretty;
use super::{CsrfForm, PageResult, SharedUi, checked_form, signed_in};
use crate::ui::fields;
use crate::ui::session::Session;

const DEPLOYMENT: &str = "query($id: ID!) { me { name role } deployment(id: $id) { id name environmentId environment { name } clusterId appVersion phase lastError parameters driverVersion { driverName version spec } status { status message urls components reportedAt } activeInstance { id } instances { id state appVersion driverVersion { version } contextDigest createdAt } pods { name component phase ready restarts node } flowRuns(first: 10) { id kind state attempt createdAt finishedAt error } } }";
const DEPLOYMENT_BACKUPS: &str = "query($id: ID!) { backups(deployment: $id, first: 20) { id deploymentId deployment { name } parentId deleting state sizeBytes createdAt finishedAt errors components { component strategy bytes error } } }";
const RUN_LOG: &str = "query($id: ID!) { flowRun(id: $id) { logs(limit: 500) { level message } } }";

pub(super) async fn deployment_context(
    ui: &SharedUi,
    session: &Session,
    id: &str,
) -> Result<Value, Response> {
    let data = ui.query(session, DEPLOYMENT, json!({"id": id})).await?;
    let mut d = data["deployment"].clone();
    if let Some(latest) = d["flowRuns"][0]["id"].as_str()
        && let Ok(log) = ui.graphql(session, RUN_LOG, json!({"id": latest})).await
    {
        d["flowRuns"][0]["logs"] = log["flowRun"]["logs"].clone();
    }
    let backups = ui
        .graphql(session, DEPLOYMENT_BACKUPS, json!({"id": id}))
        .await
        .map(|v| v["backups"].clone())
        .unwrap_or_default();
    let declared = fields::declared(&d["driverVersion"]["spec"]);
    let parameters = fields::effective(&declared, &d["parameters"]);
    let components = d["status"]["components"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, c)| json!({"name": name, "ready": c["ready"], "desired": c["desired"]}))
        .collect::<Vec<_>>();
    // Compare the active Instance with the one before it unless the user picks others.
    let instances = d["instances"].as_array().cloned().unwrap_or_default();
    let compare_to = instances.first().map(|i| i["id"].clone());
    let compare_from = instances.get(1).map(|i| i["id"].clone());
    Ok(ui.page_context(
        session,
        json!({
            "me": data["me"],
            "d": d,
            "parameters": parameters,
            "components": components,
            "compare_from": compare_from,
            "compare_to": compare_to,
            "backups": backups,
            "show_environment": false,
        }),
    ))
}

pub async fn deployment(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let context = deployment_context(&ui, &session, &id).await?;
    Ok(ui.render("deployment.html", context))
}

/// A button on the deployment page: the matching mutation, then back to the page (or
/// the page again with the refusal).
pub async fn operate(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, &form.csrf)?;
    let mutation = match op.as_str() {
        "stop" => "mutation($id: ID!) { stopDeployment(id: $id) { deployment { environmentId } } }",
        "start" => {
            "mutation($id: ID!) { startDeployment(id: $id) { deployment { environmentId } } }"
        }
        "retry" => {
            "mutation($id: ID!) { retryDeployment(id: $id) { deployment { environmentId } } }"
        }
        "delete" => {
            "mutation($id: ID!) { deleteDeployment(id: $id) { deployment { environmentId } } }"
        }
        "backup" => "mutation($id: ID!) { createBackup(deploymentId: $id) { id } }",
        _ => return Err((StatusCode::NOT_FOUND, format!("no operation `{op}`")).into_response()),
    };
    match ui.graphql(&session, mutation, json!({"id": id})).await {
        // A deleted deployment's page goes away with it: its environment is where to look.
        Ok(done) if op == "delete" => {
            let env = done["deleteDeployment"]["deployment"]["environmentId"]
                .as_str()
                .unwrap_or_default();
            Ok(Redirect::to(&format!("/environments/{env}")).into_response())
        }
        Ok(_) => Ok(Redirect::to(&format!("/deployments/{id}")).into_response()),
        Err(refusal) => {
            let mut context = deployment_context(&ui, &session, &id).await?;
            context["flash"] = json!(format!("{op}: {}", refusal.message));
            Ok((StatusCode::CONFLICT, ui.render("deployment.html", context)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct Compare {
    from: String,
    to: String,
}

const DIFFED: &str = "query($id: ID!) { me { name role } deployment(id: $id) { id name } }";
const INSTANCE: &str = "query($id: ID!) { instance(id: $id) { id deploymentId state appVersion driverVersion { version } contextDigest createdAt renderedValues } }";

/// The rendered Helm values of two Instances of one deployment, leaf by leaf.
pub async fn diff(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(compare): Query<Compare>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let d = ui.query(&session, DIFFED, json!({"id": id})).await?;
    let deployment = &d["deployment"];
    let mut sides = Vec::new();
    for instance in [&compare.from, &compare.to] {
        let i = ui
            .query(&session, INSTANCE, json!({"id": instance}))
            .await?;
        if i["instance"]["deploymentId"] != deployment["id"] {
            return Err((
                StatusCode::NOT_FOUND,
                format!("instance `{instance}` is not one of this deployment's"),
            )
                .into_response());
        }
        sides.push(i["instance"].clone());
    }
    let changes: Vec<Value> = diff_values(&sides[0]["renderedValues"], &sides[1]["renderedValues"])
        .into_iter()
        .map(|c| {
            json!({
                "path": c.path,
                "before": c.before.as_ref().map(pretty),
                "after": c.after.as_ref().map(pretty),
            })
        })
        .collect();
    let context = json!({
        "me": d["me"],
        "d": deployment,
        "from": sides[0],
        "to": sides[1],
        "changes": changes,
    });
    Ok(ui.render("diff.html", ui.page_context(&session, context)))
}
