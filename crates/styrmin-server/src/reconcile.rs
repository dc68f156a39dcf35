//! The reconciliation planner's persistence (SPEC §4). A user's change is validated, the
//! deployment row (desired state) saved, a new Instance frozen, and the Remediation the pure
//! planner (`styrmin_core::planner`) chooses recorded as a flow run — all in one
//! transaction, or nothing at all when anything is wrong.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use styrmin_core::context::{self, ComponentSettings, ContextInput, GlobalContext, Scope};
use styrmin_core::driver::ParameterKind;
use styrmin_core::planner::{self, FlowKind, InstanceKey, Phase, Queued, ValueChange};
use styrmin_core::protocol::{DeploymentRef, FlowRunPayload, InstancePayload};
use styrmin_core::{FieldError, FieldErrors, parameters};

use crate::auth::Principal;
use crate::crypto::SecretKey;
use crate::driver_versions::{self, resolve_version};
use crate::error::{ApiError, ApiResult};
use crate::events::Event;
use crate::ids::{new_id, now_ms};
use crate::resolve;
use crate::state::AppState;
use crate::store::deployments::{self, DeploymentRow, InstanceRow, InstanceState};
use crate::store::drivers::{self, DriverVersionRow};
use crate::store::flow_runs::{self, FlowRunRow, RunState};
use crate::store::{Conn, Tx, audit, clusters, environments, is_unique_violation};

/// What a change did.
#[derive(Debug, Clone)]
pub struct Change {
    pub deployment: DeploymentRow,
    /// The new Instance, when the change made one.
    pub instance: Option<InstanceRow>,
    /// The flow run scheduled, when one was needed.
    pub run: Option<FlowRunRow>,
}

/// A frozen Instance before it is stored.
struct Snapshot {
    instance_id: String,
    /// The Context as the agent receives it; `context` is the same, as stored.
    global: GlobalContext,
    context: Value,
    context_digest: String,
    values: Value,
    driver_version: DriverVersionRow,
    /// The chart ships inside the driver and is served from `/charts/`.
    chart_bundled: bool,
}

/// What a render of the Instance the desired state asks for reads, gathered from the
/// store. Every problem is a field error; nothing is written.
struct Inputs {
    instance_id: String,
    global: GlobalContext,
    context: Value,
    context_digest: String,
    driver_version: DriverVersionRow,
    values_template: Option<String>,
    chart_bundled: bool,
}

impl Inputs {
    fn with_values(self, values: Value) -> Snapshot {
        Snapshot {
            instance_id: self.instance_id,
            global: self.global,
            context: self.context,
            context_digest: self.context_digest,
            values,
            driver_version: self.driver_version,
            chart_bundled: self.chart_bundled,
        }
    }
}

/// Values rendered outside a transaction, and what they were rendered from.
struct Rendered {
    driver_version_id: String,
    context: Value,
    values: Value,
}

impl Rendered {
    /// True when `inputs` (read again inside the transaction) would render the same.
    fn still_fits(&self, inputs: &Inputs) -> bool {
        self.driver_version_id == inputs.driver_version.id && self.context == inputs.context
    }
}

/// How often a change re-reads its inputs when they changed while its values rendered.
const RENDER_ATTEMPTS: usize = 3;

async fn inputs(c: &mut Conn, d: &DeploymentRow, instance_id: &str) -> ApiResult<Inputs> {
    let env = environments::get(c, &d.environment_id)
        .await?
        .ok_or_else(|| ApiError::not_found("environment", &d.environment_id))?;
    let cluster = clusters::find(c, &env.cluster_id)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", &env.cluster_id))?;
    let driver_version = drivers::version(c, &d.driver_version_id)
        .await?
        .ok_or_else(|| ApiError::not_found("driver version", &d.driver_version_id))?;
    let parsed = driver_versions::parsed(c, &driver_version).await?;
    let empty = serde_json::Map::new();
    let as_map = |v: &Value| v.as_object().cloned().unwrap_or_else(|| empty.clone());
    let (cluster_config, env_config, deployment_config) = (
        as_map(&cluster.config),
        as_map(&env.config),
        as_map(&d.config),
    );
    let mut env_config = env_config;
    // The namespace is fixed when the environment is created.
    env_config.insert("namespace".into(), Value::String(env.namespace.clone()));
    let parameters = with_secret_refs(d, &parsed.spec)?;
    let built = context::build(&ContextInput {
        cluster: Scope {
            id: &cluster.id,
            name: &cluster.name,
            config: &cluster_config,
        },
        environment: Scope {
            id: &env.id,
            name: &env.name,
            config: &env_config,
        },
        deployment: Scope {
            id: &d.id,
            name: &d.name,
            config: &deployment_config,
        },
        instance_id,
        driver: &parsed.spec,
        app_version: &d.app_version,
        parameters: &parameters,
        components: &d.components,
    })?;
    let chart_bundled = matches!(
        parsed.spec.spec.helm.main.source(),
        Some(styrmin_core::driver::ChartSource::Bundled(_))
    );
    Ok(Inputs {
        instance_id: instance_id.to_owned(),
        context: built.to_value(),
        context_digest: built.digest(),
        global: built,
        driver_version,
        values_template: parsed.values_template,
        chart_bundled,
    })
}

/// Renders `inputs` on the server's render threads (no connection or transaction held).
async fn render(s: &AppState, inputs: &Inputs) -> ApiResult<Rendered> {
    let values = s
        .renderer
        .values(inputs.values_template.clone(), inputs.context.clone())
        .await?;
    Ok(Rendered {
        driver_version_id: inputs.driver_version.id.clone(),
        context: inputs.context.clone(),
        values: Value::Object(values),
    })
}

fn changed_while_rendering(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "deployment `{name}` kept changing while its values rendered; try again"
    ))
}

/// The Secret holding a deployment's secret parameter values: `<release>-secrets-<8 hex>`,
/// the hex from a digest of the sealed values. A new value is a new name, so a changed
/// secret changes the Context (and re-plans the deployment, and restarts the pods that
/// read it) while the name says nothing about the values. `None` without secrets.
pub fn secret_parameters_name(d: &DeploymentRow) -> Option<String> {
    if d.secret_parameters.is_empty() {
        return None;
    }
    let digest = styrmin_core::canonical::sha256_hex(&json!(d.secret_parameters));
    Some(format!("{}-secrets-{}", d.name, &digest[..8]))
}

/// The parameters the Context is built from: those set, plus a reference (the Secret's
/// name and key) for each secret parameter whose value the server holds. A value given
/// for a parameter that is not a declared `secret` is refused.
fn with_secret_refs(
    d: &DeploymentRow,
    driver: &styrmin_core::ApplicationDriver,
) -> ApiResult<BTreeMap<String, Value>> {
    let mut parameters = d.parameters.clone();
    let Some(secret) = secret_parameters_name(d) else {
        return Ok(parameters);
    };
    let mut errors = Vec::new();
    for name in d.secret_parameters.keys() {
        let field = format!("secretParameters.{name}");
        match driver.spec.parameters.iter().find(|p| &p.name == name) {
            Some(p) if p.kind == ParameterKind::Secret => {
                if parameters.contains_key(name) {
                    errors.push(FieldError::new(
                        field,
                        "is also given in parameters: give a secret once",
                    ));
                } else if let Some(problem) = parameters::secret_key_problem(name) {
                    errors.push(FieldError::new(
                        field,
                        format!("cannot be a key of a Secret: {problem}"),
                    ));
                } else {
                    let reference = parameters::SecretRef {
                        name: secret.clone(),
                        key: name.clone(),
                    };
                    parameters.insert(name.clone(), reference.to_value());
                }
            }
            Some(p) => errors.push(FieldError::new(
                field,
                format!(
                    "`{name}` is a {} parameter, not a secret one: give it in parameters",
                    p.kind
                ),
            )),
            None => errors.push(FieldError::new(
                field,
                format!("driver {} declares no parameter `{name}`", driver.name()),
            )),
        }
    }
    if errors.is_empty() {
        Ok(parameters)
    } else {
        Err(FieldErrors(errors).into())
    }
}

/// The Instance a new one is compared with: what the cluster was last asked to run. That
/// is the latest Instance not superseded — pending, active, or failed (a failed run may
/// have applied part of its Instance, so going back to the active state must re-apply).
/// With nothing active or pending there is no base: the change is a `create`, whose setup
/// never succeeded.
async fn tip(c: &mut Conn, deployment_id: &str) -> ApiResult<Option<(InstanceRow, String)>> {
    let instances = deployments::instances_of(c, deployment_id).await?;
    let started = instances
        .iter()
        .any(|i| matches!(i.state, InstanceState::Pending | InstanceState::Active));
    if !started {
        return Ok(None);
    }
    let Some(latest) = instances
        .into_iter()
        .find(|i| i.state != InstanceState::Superseded)
    else {
        return Ok(None);
    };
    let digest = drivers::version(c, &latest.driver_version_id)
        .await?
        .map(|v| v.digest)
        .unwrap_or_default();
    Ok(Some((latest, digest)))
}

async fn remediation_for(
    c: &mut Conn,
    d: &DeploymentRow,
    snap: &Snapshot,
) -> ApiResult<Option<FlowKind>> {
    let base = tip(c, &d.id).await?;
    let base_key = base.as_ref().map(|(i, digest)| InstanceKey {
        driver_digest: digest,
        app_version: &i.app_version,
        context_digest: &i.context_digest,
    });
    Ok(planner::remediation(
        base_key.as_ref(),
        &InstanceKey {
            driver_digest: &snap.driver_version.digest,
            app_version: &d.app_version,
            context_digest: &snap.context_digest,
        },
    ))
}

/// Adds a run to the deployment's queue, cancelling the waiting runs it supersedes.
pub(crate) async fn enqueue(
    tx: &mut Tx,
    s: &AppState,
    d: &DeploymentRow,
    kind: FlowKind,
    instance_id: Option<&str>,
    payload: Value,
) -> ApiResult<FlowRunRow> {
    let now = now_ms();
    let open = flow_runs::open_for_deployment(tx, &d.id).await?;
    let waiting: Vec<Queued<String>> = open
        .iter()
        .filter(|r| r.state == RunState::Scheduled)
        .map(|r| Queued {
            id: r.id.clone(),
            kind: r.kind,
        })
        .collect();
    for id in planner::enqueue(&waiting, kind).supersede {
        let reason = format!("superseded by a newer {kind}");
        flow_runs::cancel(tx, &id, &reason, now).await?;
        crate::services::backups::on_cancelled(tx, &id, &reason).await?;
        if let Some(run) = open.iter().find(|r| r.id == id)
            && let Some(instance) = &run.instance_id
        {
            deployments::set_instance_state(tx, instance, InstanceState::Superseded, now).await?;
        }
    }
    let run = FlowRunRow {
        id: new_id(),
        deployment_id: Some(d.id.clone()),
        cluster_id: d.cluster_id.clone(),
        position: deployments::take_position(tx, &d.id).await?,
        kind,
        state: RunState::Scheduled,
        attempt: 1,
        max_attempts: s.settings.max_attempts,
        instance_id: instance_id.map(str::to_owned),
        payload,
        result: None,
        error: None,
        lease_owner: None,
        lease_expires_at: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    };
    flow_runs::insert(tx, &run).await?;
    Ok(run)
}

fn payload_for(
    s: &AppState,
    d: &DeploymentRow,
    kind: FlowKind,
    snap: Option<&Snapshot>,
) -> ApiResult<Value> {
    let deployment = DeploymentRef {
        deployment_id: d.id.clone(),
        deployment_name: d.name.clone(),
        environment_id: d.environment_id.clone(),
        phase: d.phase,
        active_instance_id: d.active_instance_id.clone(),
    };
    let instance = snap.map(|snap| InstancePayload {
        instance_id: snap.instance_id.clone(),
        driver_name: snap.driver_version.driver_name.clone(),
        driver_version: snap.driver_version.version.clone(),
        driver_digest: snap.driver_version.digest.clone(),
        app_version: d.app_version.clone(),
        context: snap.global.clone(),
        values: snap.values.clone(),
        values_digest: styrmin_core::crd::values_digest(&snap.values),
        chart_repository: snap.chart_bundled.then(|| s.chart_repository_url()),
    });
    let payload = FlowRunPayload::new(kind, deployment, instance)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    Ok(payload.to_wire())
}

/// Freezes a new Instance for `d` and schedules its remediation, unless it changes nothing.
async fn record_change(
    tx: &mut Tx,
    s: &AppState,
    d: &DeploymentRow,
    snap: Snapshot,
) -> ApiResult<(Option<InstanceRow>, Option<FlowRunRow>)> {
    let Some(kind) = remediation_for(tx, d, &snap).await? else {
        return Ok((None, None));
    };
    let now = now_ms();
    let instance = InstanceRow {
        id: snap.instance_id.clone(),
        deployment_id: d.id.clone(),
        seq: deployments::take_position(tx, &d.id).await?,
        driver_version_id: snap.driver_version.id.clone(),
        app_version: d.app_version.clone(),
        context: snap.context.clone(),
        context_digest: snap.context_digest.clone(),
        rendered_values: snap.values.clone(),
        state: InstanceState::Pending,
        created_at: now,
        updated_at: now,
    };
    deployments::insert_instance(tx, &instance).await?;
    let run = enqueue(
        tx,
        s,
        d,
        kind,
        Some(&instance.id),
        payload_for(s, d, kind, Some(&snap))?,
    )
    .await?;
    Ok((Some(instance), Some(run)))
}

/// After a change to an environment or a cluster (its name or config, which every
/// Context of its deployments holds): a new Instance and its remediation for each live
/// deployment of `filter` whose Context or values change, nothing for the others. A
/// deployment the change breaks (its Context or its template refuses the new config)
/// refuses the whole change, each error's field prefixed with `deployments.<name>.`.
pub async fn replan(
    tx: &mut Tx,
    s: &AppState,
    filter: &deployments::Filter,
) -> ApiResult<Vec<Change>> {
    let page = crate::store::Page {
        limit: 100_000,
        offset: 0,
    };
    let mut changes = Vec::new();
    for d in deployments::list(tx, filter, page).await? {
        if d.phase == Phase::Deleting {
            continue;
        }
        let under = |e: ApiError| match e {
            ApiError::Validation(errors) => ApiError::Validation(
                errors
                    .into_iter()
                    .map(|f| {
                        FieldError::new(format!("deployments.{}.{}", d.name, f.field), f.message)
                    })
                    .collect(),
            ),
            other => other,
        };
        let inputs = inputs(tx, &d, &new_id()).await.map_err(under)?;
        // The environment's change and its re-plans commit together, so these renders run
        // inside its transaction: on the render threads, each under the renderer's fuel
        // and time limits (an admin's change, not a user's request path).
        let rendered = render(s, &inputs).await.map_err(under)?;
        let snap = inputs.with_values(rendered.values);
        let (instance, run) = record_change(tx, s, &d, snap).await?;
        if instance.is_some() || run.is_some() {
            changes.push(Change {
                deployment: d,
                instance,
                run,
            });
        }
    }
    Ok(changes)
}

/// A deployment recreated in another environment by `cloneEnvironment`, with the Context
/// and driver version its first Instance was frozen from (a restore into it is planned
/// from them before it runs).
pub(crate) struct Cloned {
    pub change: Change,
    pub context: GlobalContext,
    pub version: DriverVersionRow,
}

/// Recreates `source` in `env` (same name, driver version, application version,
/// parameters — secret ones still sealed with the server key — config and component
/// settings): the row, its first Instance and its `create` run, in the caller's
/// transaction. As in [`replan`], the values render inside it (an admin's change); a
/// problem is a field error under `deployments.<name>.`.
pub(crate) async fn clone_into(
    tx: &mut Tx,
    s: &AppState,
    source: &DeploymentRow,
    env: &environments::EnvironmentRow,
) -> ApiResult<Cloned> {
    let now = now_ms();
    let d = DeploymentRow {
        id: new_id(),
        name: source.name.clone(),
        environment_id: env.id.clone(),
        cluster_id: env.cluster_id.clone(),
        driver_version_id: source.driver_version_id.clone(),
        app_version: source.app_version.clone(),
        parameters: source.parameters.clone(),
        secret_parameters: source.secret_parameters.clone(),
        config: source.config.clone(),
        components: source.components.clone(),
        phase: Phase::Running,
        active_instance_id: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    deployments::insert(tx, &d).await?;
    let under = |e: ApiError| match e {
        ApiError::Validation(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|f| FieldError::new(format!("deployments.{}.{}", d.name, f.field), f.message))
                .collect(),
        ),
        other => other,
    };
    let inputs = inputs(tx, &d, &new_id()).await.map_err(under)?;
    let rendered = render(s, &inputs).await.map_err(under)?;
    let snap = inputs.with_values(rendered.values);
    let (context, version) = (snap.global.clone(), snap.driver_version.clone());
    let (instance, run) = record_change(tx, s, &d, snap).await?;
    Ok(Cloned {
        change: Change {
            deployment: d,
            instance,
            run,
        },
        context,
        version,
    })
}

/// A cascading environment delete: a `delete` run for each live deployment of the
/// environment not being deleted already.
pub async fn delete_all(tx: &mut Tx, s: &AppState, environment_id: &str) -> ApiResult<Vec<Change>> {
    let filter = deployments::Filter {
        environment_id: Some(environment_id.to_owned()),
        ..Default::default()
    };
    let page = crate::store::Page {
        limit: 100_000,
        offset: 0,
    };
    let mut changes = Vec::new();
    for mut d in deployments::list(tx, &filter, page).await? {
        let Ok(Some(kind)) = planner::phase_change(d.phase, Phase::Deleting) else {
            continue;
        };
        d.phase = Phase::Deleting;
        d.updated_at = now_ms();
        deployments::save_desired(tx, &d).await?;
        let payload = payload_for(s, &d, kind, None)?;
        let run = enqueue(tx, s, &d, kind, None, payload).await?;
        changes.push(Change {
            deployment: d,
            instance: None,
            run: Some(run),
        });
    }
    Ok(changes)
}

/// Tells subscribers about changes made by [`replan`] and [`delete_all`], once committed.
pub async fn announce_all(s: &AppState, changes: &[Change]) {
    for change in changes {
        announce(s, change).await;
    }
}

async fn announce(s: &AppState, change: &Change) {
    let Ok(mut c) = s.db.read().await else { return };
    if change.run.is_some() {
        s.events
            .publish(
                &mut c,
                Event::RunsScheduled {
                    cluster_id: change.deployment.cluster_id.clone(),
                },
            )
            .await;
    }
    s.events
        .publish(
            &mut c,
            Event::Deployment {
                deployment_id: change.deployment.id.clone(),
            },
        )
        .await;
}

/// Refuses a new deployment whose discovery Services would take a name another
/// deployment of the environment already uses (its latest Instance's Services): the two
/// would overwrite each other's Service in the namespace.
async fn refuse_service_collisions(
    c: &mut Conn,
    d: &DeploymentRow,
    context: &GlobalContext,
) -> ApiResult<()> {
    let filter = deployments::Filter {
        environment_id: Some(d.environment_id.clone()),
        ..Default::default()
    };
    let page = crate::store::Page {
        limit: 100_000,
        offset: 0,
    };
    let names: Vec<&str> = context.services.values().map(|s| s.name.as_str()).collect();
    for other in deployments::list(c, &filter, page).await? {
        // A release's Services are named `<release>-…` (naming::service_name) and the
        // release is the deployment's name: only a deployment whose name begins one of
        // ours can hold one of our names. Reading just those keeps a create in a large
        // environment from reading every other deployment's Instances.
        if other.id == d.id || !names.iter().any(|n| n.starts_with(other.name.as_str())) {
            continue;
        }
        let Some(latest) = deployments::instances_of(c, &other.id)
            .await?
            .into_iter()
            .next()
        else {
            continue;
        };
        let taken = latest.context["services"]
            .as_object()
            .into_iter()
            .flat_map(|services| services.values())
            .filter_map(|service| service["name"].as_str());
        for name in taken {
            if let Some((declared, _)) = context.services.iter().find(|(_, s)| s.name == name) {
                return Err(ApiError::field(
                    format!("services.{declared}"),
                    format!(
                        "deployment `{}` would create the Service `{name}`, which deployment `{}` of this environment already has; choose another deployment name",
                        d.name, other.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn refuse_if_deleting(d: &DeploymentRow) -> ApiResult<()> {
    if d.phase == Phase::Deleting {
        Err(ApiError::Conflict(format!(
            "deployment `{}` is being deleted; it cannot change",
            d.name
        )))
    } else {
        Ok(())
    }
}

pub fn parse_components(value: Option<Value>) -> ApiResult<BTreeMap<String, ComponentSettings>> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::field("components", format!("invalid component settings: {e}"))),
    }
}

pub struct NewDeployment {
    pub name: Option<String>,
    pub environment: String,
    pub driver: String,
    pub driver_version: Option<String>,
    pub app_version: String,
    pub parameters: BTreeMap<String, Value>,
    /// Values of `secret` parameters, in plain text until sealed here.
    pub secret_parameters: BTreeMap<String, String>,
    pub config: Value,
    pub components: BTreeMap<String, ComponentSettings>,
}

/// `createDeployment`: the first Instance and its `create` run.
pub async fn create(s: &AppState, who: &Principal, new: NewDeployment) -> ApiResult<Change> {
    who.can_operate()?;
    if !new.config.is_object() {
        return Err(ApiError::field("config", "must be a JSON object"));
    }
    let (id, instance_id) = (new_id(), new_id());
    // Sealed once: a fresh seal each attempt would change the Secret's name, and so the
    // Context, between the render and the commit.
    let sealed: BTreeMap<String, String> = new
        .secret_parameters
        .iter()
        .map(|(name, value)| (name.clone(), s.key.encrypt(value)))
        .collect();
    let mut rendered: Option<Rendered> = None;
    for _ in 0..RENDER_ATTEMPTS {
        let mut tx = s.db.write().await?;
        let (d, inputs) = new_row(&mut tx, &new, &sealed, &id, &instance_id).await?;
        match &rendered {
            Some(r) if r.still_fits(&inputs) => {
                let values = r.values.clone();
                return create_with(s, who, tx, d, inputs.with_values(values)).await;
            }
            _ => {
                // Nothing is held while the template renders; the transaction is
                // taken again and the inputs compared.
                tx.rollback().await?;
                rendered = Some(render(s, &inputs).await?);
            }
        }
    }
    Err(changed_while_rendering(
        new.name.as_deref().unwrap_or(&new.driver),
    ))
}

/// The new deployment row, inserted in `tx`, and what its first Instance renders from.
async fn new_row(
    tx: &mut Tx,
    new: &NewDeployment,
    sealed: &BTreeMap<String, String>,
    id: &str,
    instance_id: &str,
) -> ApiResult<(DeploymentRow, Inputs)> {
    let env = resolve::environment(tx, &new.environment).await?;
    if env.deleting_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "environment `{}` is being deleted; it takes no new deployments",
            env.name
        )));
    }
    let version = resolve_version(tx, &new.driver, new.driver_version.as_deref()).await?;
    let now = now_ms();
    let d = DeploymentRow {
        id: id.to_owned(),
        name: new
            .name
            .clone()
            .unwrap_or_else(|| version.driver_name.clone()),
        environment_id: env.id.clone(),
        cluster_id: env.cluster_id.clone(),
        driver_version_id: version.id.clone(),
        app_version: new.app_version.clone(),
        parameters: new.parameters.clone(),
        secret_parameters: sealed.clone(),
        config: new.config.clone(),
        components: new.components.clone(),
        phase: Phase::Running,
        active_instance_id: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    deployments::insert(tx, &d).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::field(
                "name",
                format!(
                    "environment `{}` already has a deployment named `{}`",
                    env.name, d.name
                ),
            )
        } else {
            e.into()
        }
    })?;
    let inputs = inputs(tx, &d, instance_id).await?;
    Ok((d, inputs))
}

async fn create_with(
    s: &AppState,
    who: &Principal,
    mut tx: Tx,
    d: DeploymentRow,
    snap: Snapshot,
) -> ApiResult<Change> {
    refuse_service_collisions(&mut tx, &d, &snap.global).await?;
    let (instance, run) = record_change(&mut tx, s, &d, snap).await?;
    audit::commit(tx, who,
        "createDeployment",
        "deployment",
        &d.id,
        json!({"name": d.name, "environment": d.environment_id, "driverVersion": d.driver_version_id, "appVersion": d.app_version, "secretParameters": d.secret_parameters.keys().collect::<Vec<_>>()}),
    ).await?;
    let change = Change {
        deployment: d,
        instance,
        run,
    };
    announce(s, &change).await;
    Ok(change)
}

/// What `updateDeployment` and `planDeployment` may change.
#[derive(Debug, Default, Clone)]
pub struct Edit {
    /// Merged into the current parameters; a `null` value removes one (its default applies).
    pub parameters: BTreeMap<String, Value>,
    /// Merged into the current secret parameters, in plain text until sealed; `None`
    /// removes one.
    pub secret_parameters: BTreeMap<String, Option<String>>,
    pub config: Option<Value>,
    pub components: Option<BTreeMap<String, ComponentSettings>>,
    pub app_version: Option<String>,
    /// A version of the deployment's driver (`spec.version`, id or digest); `latest` for
    /// the newest.
    pub driver_version: Option<String>,
}

impl Edit {
    fn is_upgrade(&self) -> bool {
        self.app_version.is_some() || self.driver_version.is_some()
    }
}

impl Edit {
    /// The same edit with its secret values sealed with `key`, once: a fresh seal on each
    /// render attempt would rename the Secret, and so change the Context, every time.
    fn sealed(mut self, key: &SecretKey) -> Edit {
        for value in self.secret_parameters.values_mut().flatten() {
            *value = key.encrypt(value);
        }
        self
    }
}

/// Applies an edit whose secret values are already sealed ([`Edit::sealed`]).
async fn apply_edit(c: &mut Conn, d: &mut DeploymentRow, edit: &Edit) -> ApiResult<()> {
    for (name, value) in &edit.parameters {
        if value.is_null() {
            d.parameters.remove(name);
        } else {
            d.parameters.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in &edit.secret_parameters {
        match value {
            None => d.secret_parameters.remove(name),
            Some(sealed) => d.secret_parameters.insert(name.clone(), sealed.clone()),
        };
    }
    if let Some(config) = &edit.config {
        if !config.is_object() {
            return Err(ApiError::field("config", "must be a JSON object"));
        }
        d.config = config.clone();
    }
    if let Some(components) = &edit.components {
        d.components = components.clone();
    }
    if let Some(app_version) = &edit.app_version {
        d.app_version = app_version.clone();
    }
    if let Some(wanted) = &edit.driver_version {
        let current = drivers::version(c, &d.driver_version_id)
            .await?
            .ok_or_else(|| ApiError::not_found("driver version", &d.driver_version_id))?;
        let wanted = (wanted != "latest").then_some(wanted.as_str());
        d.driver_version_id = resolve_version(c, &current.driver_id, wanted).await?.id;
    }
    Ok(())
}

/// `updateDeployment` and `upgradeDeployment`: a new desired state, a new Instance, and its
/// remediation (`update`, `upgrade`, or nothing when the result is identical).
pub async fn edit(s: &AppState, who: &Principal, reference: &str, edit: Edit) -> ApiResult<Change> {
    who.can_operate()?;
    let edit = edit.sealed(&s.key);
    let instance_id = new_id();
    let mut rendered: Option<Rendered> = None;
    for _ in 0..RENDER_ATTEMPTS {
        let mut tx = s.db.write().await?;
        let mut d = resolve::deployment(&mut tx, reference).await?;
        refuse_if_deleting(&d)?;
        apply_edit(&mut tx, &mut d, &edit).await?;
        let inputs = inputs(&mut tx, &d, &instance_id).await?;
        match &rendered {
            Some(r) if r.still_fits(&inputs) => {
                let values = r.values.clone();
                return edit_with(s, who, tx, d, &edit, inputs.with_values(values)).await;
            }
            _ => {
                tx.rollback().await?;
                rendered = Some(render(s, &inputs).await?);
            }
        }
    }
    Err(changed_while_rendering(reference))
}

async fn edit_with(
    s: &AppState,
    who: &Principal,
    mut tx: Tx,
    mut d: DeploymentRow,
    edit: &Edit,
    snap: Snapshot,
) -> ApiResult<Change> {
    d.updated_at = now_ms();
    deployments::save_desired(&mut tx, &d).await?;
    let (instance, run) = record_change(&mut tx, s, &d, snap).await?;
    let action = if edit.is_upgrade() {
        "upgradeDeployment"
    } else {
        "updateDeployment"
    };
    audit::commit(tx, who,
        action,
        "deployment",
        &d.id,
        json!({"parameters": edit.parameters.keys().collect::<Vec<_>>(), "secretParameters": edit.secret_parameters.keys().collect::<Vec<_>>(), "config": edit.config.is_some(), "appVersion": edit.app_version, "driverVersion": d.driver_version_id, "run": run.as_ref().map(|r| r.kind.as_str())}),
    ).await?;
    let change = Change {
        deployment: d,
        instance,
        run,
    };
    announce(s, &change).await;
    Ok(change)
}

/// `stopDeployment`, `startDeployment`, `deleteDeployment`.
pub async fn set_phase(
    s: &AppState,
    who: &Principal,
    reference: &str,
    phase: Phase,
) -> ApiResult<Change> {
    who.can_operate()?;
    let mut tx = s.db.write().await?;
    let mut d = resolve::deployment(&mut tx, reference).await?;
    let kind = planner::phase_change(d.phase, phase)
        .map_err(|e| ApiError::Conflict(format!("deployment `{}`: {e}", d.name)))?;
    let Some(kind) = kind else {
        tx.rollback().await?;
        return Ok(Change {
            deployment: d,
            instance: None,
            run: None,
        });
    };
    d.phase = phase;
    d.updated_at = now_ms();
    deployments::save_desired(&mut tx, &d).await?;
    let run = enqueue(&mut tx, s, &d, kind, None, payload_for(s, &d, kind, None)?).await?;
    audit::commit(
        tx,
        who,
        &format!("{kind}Deployment"),
        "deployment",
        &d.id,
        json!({"phase": phase.as_str()}),
    )
    .await?;
    let change = Change {
        deployment: d,
        instance: None,
        run: Some(run),
    };
    announce(s, &change).await;
    Ok(change)
}

/// `retryDeployment`: the deployment's latest run failed; run it again as a new attempt.
pub async fn retry(s: &AppState, who: &Principal, reference: &str) -> ApiResult<Change> {
    who.can_operate()?;
    let mut tx = s.db.write().await?;
    let mut d = resolve::deployment(&mut tx, reference).await?;
    let latest = flow_runs::latest_for_deployment(&mut tx, &d.id).await?;
    let Some(run) = latest.filter(|r| r.state == RunState::Failed) else {
        return Err(ApiError::Conflict(format!(
            "deployment `{}` has no failed run to retry: its latest run did not fail",
            d.name
        )));
    };
    let now = now_ms();
    flow_runs::retry(&mut tx, &run.id, now).await?;
    if let Some(instance) = &run.instance_id {
        deployments::set_instance_state(&mut tx, instance, InstanceState::Pending, now).await?;
    }
    deployments::set_outcome(&mut tx, &d.id, None, None, now).await?;
    d.last_error = None;
    let retried = flow_runs::get(&mut tx, &run.id).await?;
    audit::commit(
        tx,
        who,
        "retryDeployment",
        "deployment",
        &d.id,
        json!({"run": run.id}),
    )
    .await?;
    let run = retried;
    let change = Change {
        deployment: d,
        instance: None,
        run,
    };
    announce(s, &change).await;
    Ok(change)
}

/// The dry run of an edit: which remediation it would schedule and how the rendered values
/// would change against the active Instance. Nothing is stored.
pub struct Plan {
    pub kind: Option<FlowKind>,
    pub context_digest: String,
    pub changes: Vec<ValueChange>,
}

pub async fn plan(s: &AppState, who: &Principal, reference: &str, edit: Edit) -> ApiResult<Plan> {
    who.can_read()?;
    let mut c = s.db.read().await?;
    let mut d = resolve::deployment(&mut c, reference).await?;
    apply_edit(&mut c, &mut d, &edit.sealed(&s.key)).await?;
    let inputs = inputs(&mut c, &d, &new_id()).await?;
    // No connection is held while the template renders.
    drop(c);
    let rendered = render(s, &inputs).await?;
    let snap = inputs.with_values(rendered.values);
    let mut c = s.db.read().await?;
    let kind = remediation_for(&mut c, &d, &snap).await?;
    let before = match &d.active_instance_id {
        Some(id) => deployments::instance(&mut c, id)
            .await?
            .map(|i| i.rendered_values)
            .unwrap_or(Value::Null),
        None => Value::Object(Default::default()),
    };
    Ok(Plan {
        kind,
        context_digest: snap.context_digest,
        changes: planner::diff_values(&before, &snap.values),
    })
}

/// Applies the outcome of a finished run to the deployment and its Instances (SPEC §4.4).
/// A backup leaves the deployment as it was: its outcome is the backup's
/// (`services::backups::on_finished`), not the deployment's.
pub async fn settle(tx: &mut Tx, run: &FlowRunRow, error: Option<&str>) -> ApiResult<()> {
    let Some(deployment_id) = &run.deployment_id else {
        return Ok(());
    };
    if matches!(run.kind, FlowKind::Backup | FlowKind::DeleteBackup) {
        return Ok(());
    }
    let Some(d) = deployments::get(tx, deployment_id).await? else {
        return Ok(());
    };
    let now = now_ms();
    match (error, &run.instance_id) {
        (None, Some(instance)) => {
            if let Some(previous) = &d.active_instance_id
                && previous != instance
            {
                deployments::set_instance_state(tx, previous, InstanceState::Superseded, now)
                    .await?;
            }
            deployments::set_instance_state(tx, instance, InstanceState::Active, now).await?;
            deployments::set_outcome(tx, &d.id, Some(instance), None, now).await?;
        }
        (None, None) => {
            deployments::set_outcome(tx, &d.id, None, None, now).await?;
            if run.kind == FlowKind::Delete {
                deployments::mark_deleted(tx, &d.id, now).await?;
                crate::services::environments::purge_if_emptied(tx, &d.environment_id).await?;
            }
        }
        (Some(message), instance) => {
            if let Some(instance) = instance {
                deployments::set_instance_state(tx, instance, InstanceState::Failed, now).await?;
            }
            let text = format!("{} failed: {message}", run.kind);
            deployments::set_outcome(tx, &d.id, None, Some(&text), now).await?;
        }
    }
    Ok(())
}
