//! TEST DOUBLE — the Flux stand-in: what source-controller and helm-controller do for
//! `HelmRepository` (source.toolkit.fluxcd.io/v1) and `HelmRelease`
//! (helm.toolkit.fluxcd.io/v2), done with the real `helm` binary against this API server.
//!
//! A HelmRelease is installed or upgraded once per generation with `helm upgrade --install
//! --wait`, and its status carries the conditions Flux writes: `Ready` and `Released`, with
//! Flux's reasons (`InstallSucceeded`, `UpgradeSucceeded`, `InstallFailed`, `UpgradeFailed`)
//! and helm's own message on failure. `spec.suspend` is honoured; deleting the object
//! uninstalls the release. Only HTTP chart repositories are supported (helm 3.6 cannot
//! install from OCI).
//!
//! In scale mode ([`ReleaseMode::Template`], module `template`) a release is rendered with
//! `helm template` and applied without `helm --wait`; every table that uses it says so.

mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

pub const FINALIZER: &str = "finalizers.fluxcd.io";
const RETRY_FAILED: Duration = Duration::from_secs(30);
/// Releases reconciled at once, as helm-controller's `--concurrent` (default 4): a hundred
/// helm processes at once would only fight over two cores and the API server.
const CONCURRENT_RELEASES: u16 = 4;
/// Beyond the release's own `--timeout`, how long a helm process may take before it is
/// killed and the attempt reported failed (a helm that hangs must not hold a slot forever).
const HELM_GRACE: Duration = Duration::from_secs(60);

pub fn helm_release_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ))
}

pub fn helm_repository_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmRepository",
    ))
}

/// How the stand-in turns a HelmRelease into objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReleaseMode {
    /// `helm upgrade --install --wait` per release, as helm-controller does.
    #[default]
    Install,
    /// Scale mode: the chart fetched once per version, each release rendered with
    /// `helm template` and applied, Ready once applied (no `helm --wait`, no helm release
    /// record). For benchmarks at scale; see the `template` module.
    Template,
}

impl std::str::FromStr for ReleaseMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "install" => Ok(ReleaseMode::Install),
            "template" => Ok(ReleaseMode::Template),
            other => Err(format!(
                "unknown Flux stand-in mode `{other}`: expected install or template"
            )),
        }
    }
}

pub struct Flux {
    pub client: Client,
    pub mode: ReleaseMode,
    pub helm: PathBuf,
    pub kubeconfig: PathBuf,
    /// Values files handed to helm.
    pub work_dir: PathBuf,
    /// The last failed attempt of each release (`namespace/name`): its generation and when.
    /// Retried after [`RETRY_FAILED`], as Flux's interval does, not on every status write.
    pub failures: std::sync::Mutex<std::collections::HashMap<String, (i64, std::time::Instant)>>,
    /// Scale mode's fetched charts and resolved kinds.
    pub templates: template::TemplateCache,
}

/// Runs both controllers until the returned tasks are aborted.
pub async fn start(flux: Arc<Flux>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    tokio::fs::create_dir_all(&flux.work_dir).await?;
    let releases = helm_release_resource();
    let repositories = helm_repository_resource();
    let release_api: Api<DynamicObject> = Api::all_with(flux.client.clone(), &releases);
    let repository_api: Api<DynamicObject> = Api::all_with(flux.client.clone(), &repositories);
    let release_task = Controller::new_with(release_api, watcher::Config::default(), releases)
        .with_config(controller::Config::default().concurrency(CONCURRENT_RELEASES))
        .run(reconcile_release, error_policy, flux.clone())
        .for_each(|_| async {});
    let repository_task =
        Controller::new_with(repository_api, watcher::Config::default(), repositories)
            .run(reconcile_repository, error_policy, flux)
            .for_each(|_| async {});
    Ok(vec![
        tokio::spawn(release_task),
        tokio::spawn(repository_task),
    ])
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FluxError(String);

impl From<kube::Error> for FluxError {
    fn from(e: kube::Error) -> Self {
        FluxError(e.to_string())
    }
}

fn error_policy(_: Arc<DynamicObject>, error: &FluxError, _: Arc<Flux>) -> Action {
    tracing::debug!(%error, "flux stand-in: retrying");
    Action::requeue(Duration::from_secs(1))
}

fn condition(kind: &str, ok: Option<bool>, reason: &str, message: &str, generation: i64) -> Value {
    let status = match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "observedGeneration": generation, "lastTransitionTime": Time(Timestamp::now())
    })
}

async fn set_status(api: &Api<DynamicObject>, name: &str, status: Value) -> Result<(), FluxError> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    Ok(())
}

async fn reconcile_repository(
    repo: Arc<DynamicObject>,
    flux: Arc<Flux>,
) -> Result<Action, FluxError> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        flux.client.clone(),
        &repo.namespace().unwrap_or_default(),
        &helm_repository_resource(),
    );
    let generation = repo.metadata.generation.unwrap_or(0);
    let url = repo.data["spec"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kind = repo.data["spec"]["type"].as_str().unwrap_or("default");
    let (ok, reason, message) = if kind == "oci" || url.starts_with("oci://") {
        (
            true,
            "Succeeded",
            format!("Helm repository {url} is of type oci"),
        )
    } else {
        match fetch_index(&url).await {
            Ok(()) => (
                true,
                "Succeeded",
                format!("stored artifact: index of {url}"),
            ),
            Err(e) => (
                false,
                "IndexationFailed",
                format!("failed to fetch Helm repository index: {e}"),
            ),
        }
    };
    set_status(
        &api,
        &repo.name_any(),
        json!({"observedGeneration": generation, "url": url, "conditions": [condition("Ready", Some(ok), reason, &message, generation)]}),
    )
    .await?;
    Ok(if ok {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(RETRY_FAILED)
    })
}

/// Plain-HTTP GET of `<url>/index.yaml` (the local chart repository is HTTP on loopback).
async fn fetch_index(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// repositories are reachable here")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = format!(
        "/{}",
        if path.is_empty() {
            "index.yaml".to_owned()
        } else {
            format!("{}/index.yaml", path.trim_end_matches('/'))
        }
    );
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    if status.contains(" 200 ") {
        Ok(())
    } else {
        Err(format!("GET {path}: {status}"))
    }
}

/// `username` and `password` of a Secret, as Flux reads a HelmRepository's `secretRef`.
async fn basic_auth(flux: &Flux, namespace: &str, name: &str) -> Option<(String, String)> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(flux.client.clone(), namespace);
    let secret = secrets.get_opt(name).await.ok()??;
    let data = secret.data?;
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    Some((text("username")?, text("password")?))
}

pub(crate) struct ReleaseSpec {
    release: String,
    namespace: String,
    chart: String,
    version: String,
    repository_url: Result<String, String>,
    /// From the HelmRepository's `secretRef` (`username`/`password` keys), as Flux reads it.
    credentials: Option<(String, String)>,
    values: Value,
    timeout: String,
}

async fn read_spec(release: &DynamicObject, flux: &Flux) -> ReleaseSpec {
    let namespace = release.namespace().unwrap_or_default();
    let spec = &release.data["spec"];
    let chart_spec = &spec["chart"]["spec"];
    let target = spec["targetNamespace"]
        .as_str()
        .unwrap_or(&namespace)
        .to_owned();
    let default_name = if target == namespace {
        release.name_any()
    } else {
        format!("{target}-{}", release.name_any())
    };
    let source = &chart_spec["sourceRef"];
    let source_namespace = source["namespace"]
        .as_str()
        .unwrap_or(&namespace)
        .to_owned();
    let source_name = source["name"].as_str().unwrap_or_default().to_owned();
    let repositories: Api<DynamicObject> = Api::namespaced_with(
        flux.client.clone(),
        &source_namespace,
        &helm_repository_resource(),
    );
    let mut credentials = None;
    let repository_url = match repositories.get_opt(&source_name).await {
        Ok(Some(repo)) => {
            if let Some(secret) = repo.data["spec"]["secretRef"]["name"].as_str() {
                credentials = basic_auth(flux, &source_namespace, secret).await;
            }
            let url = repo.data["spec"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if url.starts_with("oci://") {
                Err(format!(
                    "HelmRepository '{source_namespace}/{source_name}' is OCI, which this stand-in's helm 3.6 cannot install from"
                ))
            } else {
                Ok(url)
            }
        }
        Ok(None) => Err(format!(
            "HelmRepository '{source_namespace}/{source_name}' not found"
        )),
        Err(e) => Err(e.to_string()),
    };
    ReleaseSpec {
        release: spec["releaseName"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(default_name),
        namespace: target,
        chart: chart_spec["chart"].as_str().unwrap_or_default().to_owned(),
        version: chart_spec["version"].as_str().unwrap_or("*").to_owned(),
        repository_url,
        credentials,
        values: spec.get("values").cloned().unwrap_or(json!({})),
        timeout: spec["timeout"].as_str().unwrap_or("5m").to_owned(),
    }
}

/// Flux's finalizer, through kube-runtime's helper: added before the first install;
/// on deletion the release is uninstalled, then the finalizer goes.
async fn reconcile_release(
    release: Arc<DynamicObject>,
    flux: Arc<Flux>,
) -> Result<Action, FluxError> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        flux.client.clone(),
        &release.namespace().unwrap_or_default(),
        &helm_release_resource(),
    );
    finalizer(&api, FINALIZER, release, |event| async {
        match event {
            Event::Apply(release) => install_or_upgrade(&api, &release, &flux).await,
            Event::Cleanup(release) if flux.mode == ReleaseMode::Template => {
                // As Flux does: an uninstall that fails does not keep the object.
                if let Err(e) = template::uninstall(&flux, &release).await {
                    tracing::debug!(error = %e, "flux stand-in: uninstall");
                }
                Ok(Action::await_change())
            }
            Event::Cleanup(release) => {
                let spec = read_spec(&release, &flux).await;
                // As Flux does: an uninstall that fails does not keep the object.
                helm(
                    &flux,
                    &["uninstall", &spec.release, "--namespace", &spec.namespace],
                )
                .await
                .ok();
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| FluxError(e.to_string()))
}

async fn install_or_upgrade(
    api: &Api<DynamicObject>,
    release: &DynamicObject,
    flux: &Flux,
) -> Result<Action, FluxError> {
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    if release.data["spec"]["suspend"].as_bool() == Some(true) {
        return Ok(Action::await_change());
    }
    // The watch cache can lag behind our own status writes: a reconcile queued by the
    // "Progressing" write may see that status after the release was already Ready, and run
    // helm a second time for the same generation. Decide on the object as it is now.
    let release = api.get(&name).await?;
    let generation = release.metadata.generation.unwrap_or(0);
    let status = &release.data["status"];
    let attempted = status["lastAttemptedGeneration"].as_i64() == Some(generation);
    let ready = status["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    if attempted && ready {
        return Ok(Action::await_change());
    }

    let key = format!("{namespace}/{name}");
    let failed_recently = flux
        .failures
        .lock()
        .expect("not poisoned")
        .get(&key)
        .filter(|(failed_generation, _)| *failed_generation == generation)
        .map(|(_, at)| RETRY_FAILED.saturating_sub(at.elapsed()))
        .filter(|wait| !wait.is_zero());
    if let Some(wait) = failed_recently {
        // Our own status write brought us here: the retry waits for its interval.
        return Ok(Action::requeue(wait));
    }

    let spec = read_spec(&release, flux).await;
    let upgrading = status["history"].as_array().is_some_and(|h| !h.is_empty());
    let (verb, past) = if upgrading {
        ("Upgrade", "upgrade")
    } else {
        ("Install", "install")
    };
    set_status(
        api,
        &name,
        json!({"lastAttemptedGeneration": generation, "conditions": [
            condition("Ready", None, "Progressing", &format!("Running '{past}' action"), generation),
            condition("Reconciling", Some(true), "Progressing", &format!("Running '{past}' action"), generation)
        ]}),
    )
    .await?;

    let mut inventory = None;
    let result = match &spec.repository_url {
        Err(message) => Err(message.clone()),
        Ok(url) if flux.mode == ReleaseMode::Template => {
            template::install(flux, &release, &spec, url)
                .await
                .map(|applied| inventory = Some(applied))
                .map(|()| String::new())
        }
        Ok(url) => {
            let values_file = flux
                .work_dir
                .join(format!("{namespace}-{name}-values.json"));
            tokio::fs::write(&values_file, spec.values.to_string())
                .await
                .map_err(|e| FluxError(e.to_string()))?;
            let values_path = values_file.display().to_string();
            let mut args = vec![
                "upgrade",
                "--install",
                &spec.release,
                &spec.chart,
                "--repo",
                url,
                "--version",
                &spec.version,
                "--namespace",
                &spec.namespace,
                "--values",
                &values_path,
                "--wait",
                "--timeout",
                &spec.timeout,
            ];
            if let Some((username, password)) = &spec.credentials {
                args.extend(["--username", username, "--password", password]);
            }
            let limit = crate::nodes::parse_duration(&spec.timeout)
                .unwrap_or(Duration::from_secs(300))
                + HELM_GRACE;
            let run = async {
                match helm(flux, &args).await {
                    // A first install that failed leaves a release helm will not upgrade;
                    // Flux's install remediation uninstalls it, and so do we.
                    Err(stderr) if stderr.contains("has no deployed releases") => {
                        helm(
                            flux,
                            &["uninstall", &spec.release, "--namespace", &spec.namespace],
                        )
                        .await?;
                        helm(flux, &args).await
                    }
                    other => other,
                }
            };
            match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "helm did not finish within {limit:?} and was stopped"
                )),
            }
        }
    };
    let mut history: Vec<Value> = status["history"].as_array().cloned().unwrap_or_default();
    let (ok, reason, message) = match &result {
        Ok(_) => {
            history.insert(0, json!({"chartName": spec.chart, "chartVersion": spec.version, "status": "deployed", "version": history.len() + 1}));
            (
                true,
                format!("{verb}Succeeded"),
                format!(
                    "Helm {past} succeeded for release {}/{} with chart {}@{}",
                    spec.namespace, spec.release, spec.chart, spec.version
                ),
            )
        }
        Err(stderr) => (
            false,
            format!("{verb}Failed"),
            format!(
                "Helm {past} failed for release {}/{} with chart {}@{}: {}",
                spec.namespace,
                spec.release,
                spec.chart,
                spec.version,
                stderr.trim()
            ),
        ),
    };
    let mut new_status = json!({
        "observedGeneration": generation,
        "lastAttemptedGeneration": generation,
        "lastAttemptedRevision": spec.version,
        "conditions": [
            condition("Ready", Some(ok), &reason, &message, generation),
            condition("Released", Some(ok), &reason, &message, generation),
            condition("Reconciling", Some(false), &reason, &message, generation)
        ],
        "history": history,
    });
    if let Some(inventory) = inventory {
        new_status["inventory"] = inventory;
    } else if flux.mode == ReleaseMode::Template {
        // A failed render keeps what the last good one applied, to prune or delete later.
        new_status["inventory"] = status["inventory"].clone();
    }
    if ok {
        new_status["lastAppliedRevision"] = json!(spec.version);
        flux.failures.lock().expect("not poisoned").remove(&key);
    } else {
        flux.failures
            .lock()
            .expect("not poisoned")
            .insert(key, (generation, std::time::Instant::now()));
    }
    set_status(api, &name, new_status).await?;
    Ok(if ok {
        Action::await_change()
    } else {
        Action::requeue(RETRY_FAILED)
    })
}

/// Runs helm against this cluster; `Err` carries helm's stderr. The process is killed if
/// the caller stops waiting.
pub(crate) async fn helm(flux: &Flux, args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new(&flux.helm)
        .args(args)
        .arg("--kubeconfig")
        .arg(&flux.kubeconfig)
        .env("HELM_CACHE_HOME", flux.work_dir.join("cache"))
        .env("HELM_CONFIG_HOME", flux.work_dir.join("config"))
        .env("HELM_DATA_HOME", flux.work_dir.join("data"))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run helm ({}): {e}", flux.helm.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
