//! The forms that change deployments: create (fields generated from the driver's
//! parameters), update (parameters), upgrade (application and driver version). A refused
//! submission shows the form again with what was typed and each error next to its field.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{PageResult, Refusal, SharedUi, checked_form, signed_in};
use crate::ui::fields;
use crate::ui::session::Session;

type Submitted = BTreeMap<String, String>;

fn text<'a>(form: &'a Submitted, key: &str) -> &'a str {
    form.get(key).map_or("", |v| v.trim())
}

/// The form again, refused (422): each field error next to its field, the message on top
/// when no field took it.
fn refused(ui: &SharedUi, template: &str, mut context: Value, refusal: &Refusal) -> Response {
    context["errors"] = json!(refusal.fields);
    context["flash"] = json!(if refusal.fields.is_empty() {
        refusal.message.clone()
    } else {
        "The deployment was not changed: see the fields marked below.".to_owned()
    });
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        ui.render(template, context),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct Choice {
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    driver: Option<String>,
}

const NEW: &str = "{ me { name role } environments(first: 1000) { id name cluster { name } } applicationDrivers { name latestVersion { version spec } } }";

/// The create form's context: the environments and drivers to choose from and, once a
/// driver is chosen, the fields of its latest version's parameters.
async fn new_context(
    ui: &SharedUi,
    session: &Session,
    environment: Option<&str>,
    driver: Option<&str>,
    typed: &Submitted,
    errors: &BTreeMap<String, String>,
) -> Result<Value, Response> {
    let mut data = ui.query(session, NEW, json!({})).await?;
    let chosen = data["applicationDrivers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| Some(d["name"].as_str().unwrap_or_default()) == driver)
        .cloned();
    if let Some(chosen) = &chosen {
        let declared = fields::declared(&chosen["latestVersion"]["spec"]);
        let spec = &chosen["latestVersion"]["spec"]["spec"];
        let values: Map<String, Value> = fields::submitted(&declared, typed);
        let typed_any = !typed.is_empty();
        data["fields"] = json!(fields::form_fields(
            &declared,
            &if typed_any { values } else { Map::new() },
            errors,
        ));
        data["name"] = json!(if typed_any {
            text(typed, "name").to_owned()
        } else {
            chosen["name"].as_str().unwrap_or_default().to_owned()
        });
        data["app_version"] = json!(if typed_any {
            text(typed, "appVersion").to_owned()
        } else {
            spec["default_version"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        data["supported_versions"] = spec["supported_versions"].clone();
        data["description"] = spec["info"]["description"].clone();
    }
    data["chosen_driver"] = json!(driver);
    data["chosen_environment"] = json!(environment);
    data["errors"] = json!(errors);
    Ok(ui.form_context(session, data))
}

pub async fn new_page(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Query(choice): Query<Choice>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let context = new_context(
        &ui,
        &session,
        choice.environment.as_deref(),
        choice.driver.as_deref(),
        &Submitted::new(),
        &BTreeMap::new(),
    )
    .await?;
    Ok(ui.render("new.html", context))
}

const CREATE: &str = "mutation($driver: String!, $env: ID!, $name: String, $appVersion: String!, $parameters: JSON, $secretParameters: JSON) { createDeployment(driver: $driver, environmentId: $env, name: $name, appVersion: $appVersion, parameters: $parameters, secretParameters: $secretParameters) { deployment { id } } }";
const DECLARED: &str = "query($driver: ID!) { applicationDriverVersion(driver: $driver) { spec } }";

pub async fn new(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Form(form): Form<Submitted>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, text(&form, "csrf"))?;
    let (driver, environment) = (text(&form, "driver"), text(&form, "environment"));
    let spec = ui
        .query(&session, DECLARED, json!({"driver": driver}))
        .await?;
    let declared = fields::declared(&spec["applicationDriverVersion"]["spec"]);
    let variables = json!({
        "driver": driver,
        "env": environment,
        "name": Some(text(&form, "name")).filter(|n| !n.is_empty()),
        "appVersion": text(&form, "appVersion"),
        "parameters": fields::submitted(&declared, &form),
        "secretParameters": fields::submitted_secrets(&declared, &form),
    });
    match ui.graphql(&session, CREATE, variables).await {
        Ok(created) => {
            let id = created["createDeployment"]["deployment"]["id"]
                .as_str()
                .unwrap_or_default();
            Ok(Redirect::to(&format!("/deployments/{id}")).into_response())
        }
        Err(refusal) => {
            let context = new_context(
                &ui,
                &session,
                Some(environment),
                Some(driver),
                &form,
                &refusal.fields,
            )
            .await?;
            Ok(refused(&ui, "new.html", context, &refusal))
        }
    }
}

const EDITABLE: &str = "query($id: ID!) { me { name role } deployment(id: $id) { id name environmentId environment { name } appVersion parameters driverVersion { id driverName version spec } } }";

async fn edit_context(
    ui: &SharedUi,
    session: &Session,
    id: &str,
    typed: Option<&Submitted>,
    errors: &BTreeMap<String, String>,
) -> Result<Value, Response> {
    let data = ui.query(session, EDITABLE, json!({"id": id})).await?;
    let d = &data["deployment"];
    let declared = fields::declared(&d["driverVersion"]["spec"]);
    let values = match typed {
        Some(typed) => fields::submitted(&declared, typed),
        None => d["parameters"].as_object().cloned().unwrap_or_default(),
    };
    Ok(ui.form_context(
        session,
        json!({
            "me": data["me"],
            "d": d,
            "fields": fields::form_fields(&declared, &values, errors),
            "errors": errors,
        }),
    ))
}

pub async fn edit_page(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let context = edit_context(&ui, &session, &id, None, &BTreeMap::new()).await?;
    Ok(ui.render("edit.html", context))
}

const UPDATE: &str = "mutation($id: ID!, $parameters: JSON, $secretParameters: JSON) { updateDeployment(id: $id, parameters: $parameters, secretParameters: $secretParameters) { noop } }";

pub async fn edit(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Submitted>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, text(&form, "csrf"))?;
    let current = ui.query(&session, EDITABLE, json!({"id": id})).await?;
    let d = &current["deployment"];
    let declared = fields::declared(&d["driverVersion"]["spec"]);
    let changes = fields::changed(&declared, &d["parameters"], &form);
    let secrets = fields::submitted_secrets(&declared, &form);
    let target = format!("/deployments/{}", d["id"].as_str().unwrap_or(&id));
    if changes.is_empty() && secrets.is_empty() {
        return Ok(Redirect::to(&target).into_response());
    }
    let variables = json!({"id": d["id"], "parameters": changes, "secretParameters": secrets});
    match ui.graphql(&session, UPDATE, variables).await {
        Ok(_) => Ok(Redirect::to(&target).into_response()),
        Err(refusal) => {
            let context = edit_context(&ui, &session, &id, Some(&form), &refusal.fields).await?;
            Ok(refused(&ui, "edit.html", context, &refusal))
        }
    }
}

const VERSIONS: &str = "query($driver: ID!) { applicationDriver(id: $driver) { versions { id version loadedAt source { kind commit } } latestVersion { id spec } } }";

async fn upgrade_context(
    ui: &SharedUi,
    session: &Session,
    id: &str,
    typed: Option<&Submitted>,
    errors: &BTreeMap<String, String>,
) -> Result<Value, Response> {
    let data = ui.query(session, EDITABLE, json!({"id": id})).await?;
    let d = &data["deployment"];
    let driver = d["driverVersion"]["driverName"].clone();
    let versions = ui
        .query(session, VERSIONS, json!({"driver": driver}))
        .await?;
    let typed_or = |key: &str, current: &Value| match typed {
        Some(typed) => json!(text(typed, key)),
        None => current.clone(),
    };
    Ok(ui.form_context(
        session,
        json!({
            "me": data["me"],
            "d": d,
            "versions": versions["applicationDriver"]["versions"],
            "latest_spec": versions["applicationDriver"]["latestVersion"]["spec"]["spec"],
            "app_version": typed_or("appVersion", &d["appVersion"]),
            "driver_version": typed_or("driverVersion", &d["driverVersion"]["id"]),
            "errors": errors,
        }),
    ))
}

pub async fn upgrade_page(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let context = upgrade_context(&ui, &session, &id, None, &BTreeMap::new()).await?;
    Ok(ui.render("upgrade.html", context))
}

const UPGRADE: &str = "mutation($id: ID!, $appVersion: String, $driverVersion: String) { upgradeDeployment(id: $id, appVersion: $appVersion, driverVersion: $driverVersion) { noop } }";

pub async fn upgrade(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Submitted>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    checked_form(&ui, &session, text(&form, "csrf"))?;
    let current = ui.query(&session, EDITABLE, json!({"id": id})).await?;
    let d = &current["deployment"];
    let app_version = text(&form, "appVersion");
    let driver_version = text(&form, "driverVersion");
    let variables = json!({
        "id": d["id"],
        "appVersion": Some(app_version).filter(|v| !v.is_empty() && d["appVersion"] != *v),
        "driverVersion": Some(driver_version).filter(|v| !v.is_empty() && d["driverVersion"]["id"] != *v),
    });
    let target = format!("/deployments/{}", d["id"].as_str().unwrap_or(&id));
    match ui.graphql(&session, UPGRADE, variables).await {
        Ok(_) => Ok(Redirect::to(&target).into_response()),
        Err(refusal) => {
            let context = upgrade_context(&ui, &session, &id, Some(&form), &refusal.fields).await?;
            Ok(refused(&ui, "upgrade.html", context, &refusal))
        }
    }
}
