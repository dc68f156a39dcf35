//! The read-only pages: overview, cluster, environment, drivers, flow runs, backups.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageResult, SharedUi, signed_in};
use crate::ui::session::Session;

/// Rows per page of the long lists (deployments, flow runs).
const PAGE_SIZE: i64 = 100;

/// What a page's query string may say: where a list starts, a run state to filter by,
/// a driver version to show.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// Previous/next links of a paged list that returned `shown` rows from `offset`.
fn paging(offset: i64, shown: usize) -> Value {
    json!({
        "offset": offset,
        "previous": (offset > 0).then(|| (offset - PAGE_SIZE).max(0)),
        "next": (shown as i64 == PAGE_SIZE).then_some(offset + PAGE_SIZE),
    })
}

const OVERVIEW: &str = "query($first: Int!, $offset: Int!) { me { name role } clusters(first: 1000) { id name agentOnline agentLastSeen agentVersion environments { id } } environments(first: 1000) { id name clusterId cluster { name } namespace statusCounts { status count } } deployments(first: $first, offset: $offset) { id name environmentId environment { name } appVersion driverVersion { driverName version } status { status urls } } }";
pub async fn overview(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Query(paged): Query<PageQuery>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let offset = paged.offset.max(0);
    let mut data = ui
        .query(
            &session,
            OVERVIEW,
            json!({"first": PAGE_SIZE, "offset": offset}),
        )
        .await?;
    let shown = data["deployments"].as_array().map_or(0, Vec::len);
    data["paging"] = paging(offset, shown);
    Ok(ui.render("overview.html", ui.page_context(&session, data)))
}

const CLUSTER: &str = "query($id: ID!) { me { name role } cluster(id: $id) { id name config agentOnline agentLastSeen agentVersion agentProtocolVersion agentRefusal createdAt environments { id name namespace backupStorageLocation { name } statusCounts { status count } } } }";

pub async fn cluster(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let mut data = ui.query(&session, CLUSTER, json!({"id": id})).await?;
    data["config_json"] = json!(pretty(&data["cluster"]["config"]));
    Ok(ui.render("cluster.html", ui.page_context(&session, data)))
}

const ENVIRONMENT: &str = "query($id: ID!) { me { name role } environment(id: $id) { id name namespace config cluster { id name config agentOnline } backupStorageLocation { name endpoint bucket region } backupSchedule backupKeep backupNextAt backupLocationStatus { phase message } statusCounts { status count } } applicationDrivers { name } }";
const ENV_DEPLOYMENTS: &str = "query($id: ID!, $first: Int!, $offset: Int!) { deployments(environment: $id, first: $first, offset: $offset) { id name appVersion driverVersion { driverName version } status { status urls } } }";
const ENV_BACKUPS: &str = "query($id: ID!) { backups(environment: $id) { id deploymentId deployment { name } parentId deleting state sizeBytes createdAt finishedAt errors components { component strategy bytes error } } }";

/// The ingress settings in effect: the environment's own over its cluster's.
fn ingress(environment: &Value) -> Value {
    let mut effective = serde_json::Map::new();
    for scope in [&environment["cluster"]["config"], &environment["config"]] {
        for key in [
            "fqdn_suffix",
            "ingress_class",
            "dedicated_ingress",
            "ip_whitelist",
        ] {
            if let Some(value) = scope.get(key) {
                effective.insert(key.to_owned(), value.clone());
            }
        }
    }
    if effective.contains_key("dedicated_ingress") {
        effective.remove("ingress_class");
    }
    effective
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": pretty(&v)}))
        .collect()
}

pub async fn environment(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paged): Query<PageQuery>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let data = environment_context(&ui, &session, &id, paged.offset).await?;
    Ok(ui.render("environment.html", data))
}

/// The environment page's context, its deployments from `offset`.
pub(super) async fn environment_context(
    ui: &SharedUi,
    session: &Session,
    id: &str,
    offset: i64,
) -> Result<Value, Response> {
    let mut data = ui.query(session, ENVIRONMENT, json!({"id": id})).await?;
    let env_id = data["environment"]["id"].clone();
    let offset = offset.max(0);
    let listed = ui
        .query(
            session,
            ENV_DEPLOYMENTS,
            json!({"id": env_id, "first": PAGE_SIZE, "offset": offset}),
        )
        .await?;
    data["deployments"] = listed["deployments"].clone();
    let shown = data["deployments"].as_array().map_or(0, Vec::len);
    data["paging"] = paging(offset, shown);
    data["ingress"] = ingress(&data["environment"]);
    let backups = ui
        .query(session, ENV_BACKUPS, json!({"id": env_id}))
        .await?;
    data["backups"] = backups["backups"].clone();
    Ok(ui.page_context(session, data))
}

const DRIVERS: &str = "{ me { name role } applicationDrivers { id name createdAt versions { id } latestVersion { version loadedAt source { kind path url branch commit } spec } } }";

pub async fn drivers(State(ui): State<SharedUi>, headers: HeaderMap) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let data = ui.query(&session, DRIVERS, json!({})).await?;
    Ok(ui.render("drivers.html", ui.page_context(&session, data)))
}

const DRIVER: &str = "query($id: ID!) { me { name role } applicationDriver(id: $id) { id name versions { id version digest loadedAt source { kind path url branch commit } } latestVersion { id } } }";
const DRIVER_VERSION: &str = "query($id: ID!, $version: String) { applicationDriverVersion(driver: $id, version: $version) { id version digest loadedAt source { kind path url branch commit } spec } }";

pub async fn driver(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paged): Query<PageQuery>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let mut data = ui.query(&session, DRIVER, json!({"id": id})).await?;
    let shown = ui
        .query(
            &session,
            DRIVER_VERSION,
            json!({"id": id, "version": paged.version}),
        )
        .await?;
    data["shown"] = shown["applicationDriverVersion"].clone();
    Ok(ui.render("driver.html", ui.page_context(&session, data)))
}

const RUNS: &str = "query($state: RunState, $first: Int!, $offset: Int!) { me { name role } flowRuns(state: $state, first: $first, offset: $offset) { id deploymentId deployment { name environment { name } } clusterId kind state attempt createdAt startedAt finishedAt error } }";
const RUN_STATES: [&str; 5] = ["scheduled", "running", "completed", "failed", "cancelled"];

pub async fn runs(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Query(paged): Query<PageQuery>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let state = paged.state.filter(|s| RUN_STATES.contains(&s.as_str()));
    let offset = paged.offset.max(0);
    let mut data = ui
        .query(
            &session,
            RUNS,
            json!({"state": state, "first": PAGE_SIZE, "offset": offset}),
        )
        .await?;
    let shown = data["flowRuns"].as_array().map_or(0, Vec::len);
    data["paging"] = paging(offset, shown);
    data["state"] = json!(state);
    data["states"] = json!(RUN_STATES);
    Ok(ui.render("runs.html", ui.page_context(&session, data)))
}

const RUN: &str = "query($id: ID!) { me { name role } flowRun(id: $id) { id deploymentId deployment { name } clusterId kind state attempt maxAttempts instanceId createdAt startedAt finishedAt error logs(limit: 5000) { seq attempt at level message } } }";

pub async fn run(
    State(ui): State<SharedUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let data = ui.query(&session, RUN, json!({"id": id})).await?;
    Ok(ui.render("run.html", ui.page_context(&session, data)))
}

const BACKUPS: &str = "{ me { name role } environments(first: 1000) { id name } backupStorageLocations(first: 1000) { id name endpoint bucket region } backups { id environmentId deploymentId deployment { name } parentId deleting backupStorageLocationId state sizeBytes createdAt finishedAt errors components { component strategy bytes error } } restores { id backupId targetEnvironmentId targetDeploymentId targetDeployment { name } state createdAt finishedAt errors components { component strategy bytes error } } }";

pub async fn backups(State(ui): State<SharedUi>, headers: HeaderMap) -> PageResult {
    let session = signed_in(&ui, &headers).await?;
    let data = backups_context(&ui, &session).await?;
    Ok(ui.render("backups.html", data))
}

/// The backups page's context.
pub(super) async fn backups_context(ui: &SharedUi, session: &Session) -> Result<Value, Response> {
    let mut data = ui.query(session, BACKUPS, json!({})).await?;
    let names: BTreeMap<String, Value> = data["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["name"].clone(),
            )
        })
        .collect();
    data["environment_names"] = json!(names);
    Ok(ui.page_context(session, data))
}

/// JSON for people: indented, `{}` for nothing.
pub(super) fn pretty(value: &Value) -> String {
    match value {
        Value::Null => "{}".into(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}
