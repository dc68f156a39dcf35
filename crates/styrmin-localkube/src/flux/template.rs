//! TEST DOUBLE — the Flux stand-in's scale mode ([`ReleaseMode::Template`]): each chart
//! version is fetched once (`helm pull`) and rendered with the real helm (`helm template`,
//! no cluster access, no release record), and each release's objects are applied by
//! server-side apply.
//!
//! Rendering is shared between releases whose values differ only by their release name
//! and namespace (N deployments of one driver with the same parameters): such a group is
//! rendered once with placeholder names, and each release gets that text with its own
//! names put back. The first release of each group is also rendered directly and the two
//! texts compared; a chart that transforms names (truncates or hashes them) fails the
//! comparison, and its releases are each rendered directly from then on. The release is Ready once its objects are applied: there is no
//! `helm --wait`, so a benchmark measures the product rather than a helm process per
//! release on two cores. Pods still become ready through the node simulator, and the
//! operator still waits for the workloads. What it applied is kept in the HelmRelease's
//! `status.inventory` (a stand-in field) so an upgrade prunes and an uninstall deletes it.
//!
//! [`ReleaseMode::Template`]: super::ReleaseMode::Template

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::discovery::{self, Scope};
use serde::Deserialize as _;
use serde_json::{Value, json};

use super::{Flux, ReleaseSpec, helm};

/// The field manager of the objects a release applies, as helm-controller's.
const FIELD_MANAGER: &str = "helm-controller";

/// The names that stand for a release's own in a shared render: valid release and
/// namespace names that no chart or value holds by chance.
const RELEASE_PLACEHOLDER: &str = "zzstmreleasezz";
const NAMESPACE_PLACEHOLDER: &str = "zzstmnamespacezz";

/// Charts fetched so far (`url chart version` → the `.tgz`), shared renders and resolved
/// kinds.
#[derive(Default)]
pub struct TemplateCache {
    charts: tokio::sync::Mutex<HashMap<String, PathBuf>>,
    /// By chart and values with the names replaced: the placeholder render, or `None`
    /// when that group's releases must be rendered one by one.
    renders: std::sync::Mutex<HashMap<String, Option<String>>>,
    kinds: std::sync::Mutex<HashMap<String, (ApiResource, bool)>>,
}

/// `text` with the release's names replaced by the placeholders (namespace first: it may
/// contain the release name).
fn generalise(text: &str, release: &str, namespace: &str) -> String {
    text.replace(namespace, NAMESPACE_PLACEHOLDER)
        .replace(release, RELEASE_PLACEHOLDER)
}

fn specialise(text: &str, release: &str, namespace: &str) -> String {
    text.replace(RELEASE_PLACEHOLDER, release)
        .replace(NAMESPACE_PLACEHOLDER, namespace)
}

/// One applied object, as `status.inventory` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({"apiVersion": self.api_version, "kind": self.kind,
               "namespace": self.namespace, "name": self.name})
    }

    fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            api_version: v["apiVersion"].as_str()?.to_owned(),
            kind: v["kind"].as_str()?.to_owned(),
            namespace: v["namespace"].as_str().map(str::to_owned),
            name: v["name"].as_str()?.to_owned(),
        })
    }
}

/// Renders and applies the release; returns the new inventory for its status, or helm's
/// or the API server's error.
pub async fn install(
    flux: &Flux,
    release_object: &DynamicObject,
    spec: &ReleaseSpec,
    url: &str,
) -> Result<Value, String> {
    let chart = fetch_chart(flux, spec, url).await?;
    let rendered = render(flux, &chart, spec).await?;
    let owner_name = release_object.metadata.name.clone().unwrap_or_default();
    let owner_namespace = release_object
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    // Read whole before any await: the YAML reader is not `Send`.
    let objects = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(Value::deserialize)
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| format!("helm template printed YAML that does not read: {e}"))?;
    let mut applied = BTreeSet::new();
    for object in objects {
        if !object.is_object() {
            continue;
        }
        let entry = apply(flux, object, spec, &owner_name, &owner_namespace).await?;
        applied.insert(entry);
    }
    let before: BTreeSet<Entry> = release_object.data["status"]["inventory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Entry::from_json)
        .collect();
    for gone in before.difference(&applied) {
        delete(flux, gone).await?;
    }
    Ok(Value::Array(applied.iter().map(Entry::to_json).collect()))
}

/// Deletes what the release applied (its `status.inventory`).
pub async fn uninstall(flux: &Flux, release_object: &DynamicObject) -> Result<(), String> {
    for entry in release_object.data["status"]["inventory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Entry::from_json)
    {
        delete(flux, &entry).await?;
    }
    Ok(())
}

/// The release's manifests: from its group's shared render when there is one, else
/// rendered now (and, for a new group, shared if the comparison allows).
async fn render(flux: &Flux, chart: &Path, spec: &ReleaseSpec) -> Result<String, String> {
    let values = spec.values.to_string();
    let group = format!(
        "{} {}",
        chart.display(),
        generalise(&values, &spec.release, &spec.namespace)
    );
    let shared = flux
        .templates
        .renders
        .lock()
        .expect("not poisoned")
        .get(&group)
        .cloned();
    match shared {
        Some(Some(text)) => return Ok(specialise(&text, &spec.release, &spec.namespace)),
        Some(None) => {
            return helm_template(flux, chart, &spec.release, &spec.namespace, &values).await;
        }
        None => {}
    }
    let direct = helm_template(flux, chart, &spec.release, &spec.namespace, &values).await?;
    let generic_values = generalise(&values, &spec.release, &spec.namespace);
    let generic = helm_template(
        flux,
        chart,
        RELEASE_PLACEHOLDER,
        NAMESPACE_PLACEHOLDER,
        &generic_values,
    )
    .await
    .ok()
    .filter(|text| specialise(text, &spec.release, &spec.namespace) == direct);
    flux.templates
        .renders
        .lock()
        .expect("not poisoned")
        .insert(group, generic);
    Ok(direct)
}

async fn helm_template(
    flux: &Flux,
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &str,
) -> Result<String, String> {
    // A file of its own: renders of one placeholder group may run side by side.
    let values_file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile_in(&flux.work_dir)
        .and_then(|file| {
            std::fs::write(file.path(), values)?;
            Ok(file)
        })
        .map_err(|e| format!("cannot write values in {}: {e}", flux.work_dir.display()))?;
    helm(
        flux,
        &[
            "template",
            release,
            &chart.display().to_string(),
            "--namespace",
            namespace,
            "--values",
            &values_file.path().display().to_string(),
        ],
    )
    .await
}

async fn fetch_chart(flux: &Flux, spec: &ReleaseSpec, url: &str) -> Result<PathBuf, String> {
    let key = format!("{url} {} {}", spec.chart, spec.version);
    // Held while fetching: two releases of one chart version wait for one `helm pull`.
    let mut charts = flux.templates.charts.lock().await;
    if let Some(path) = charts.get(&key) {
        return Ok(path.clone());
    }
    let dir = flux
        .work_dir
        .join("charts")
        .join(format!("{}", charts.len()));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir_text = dir.display().to_string();
    let mut args = vec![
        "pull",
        &spec.chart,
        "--repo",
        url,
        "--version",
        &spec.version,
        "--destination",
        &dir_text,
    ];
    if let Some((username, password)) = &spec.credentials {
        args.extend(["--username", username, "--password", password]);
    }
    helm(flux, &args).await?;
    let mut entries = tokio::fs::read_dir(&dir)
        .await
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut archive = None;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.path().extension().is_some_and(|e| e == "tgz") {
            archive = Some(entry.path());
        }
    }
    let archive = archive.ok_or_else(|| format!("helm pull left no chart in {dir_text}"))?;
    charts.insert(key, archive.clone());
    Ok(archive)
}

/// The API resource of a kind and whether it is namespaced, asked once per kind.
async fn resource(
    flux: &Flux,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, bool), String> {
    let key = format!("{api_version}/{kind}");
    if let Some(found) = flux.templates.kinds.lock().expect("not poisoned").get(&key) {
        return Ok(found.clone());
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = discovery::pinned_kind(&flux.client, &gvk)
        .await
        .map_err(|e| format!("the cluster does not serve {key}: {e}"))?;
    let found = (resource, capabilities.scope == Scope::Namespaced);
    flux.templates
        .kinds
        .lock()
        .expect("not poisoned")
        .insert(key, found.clone());
    Ok(found)
}

async fn apply(
    flux: &Flux,
    mut object: Value,
    spec: &ReleaseSpec,
    owner_name: &str,
    owner_namespace: &str,
) -> Result<Entry, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(format!(
            "the chart rendered an object without apiVersion, kind or name: {}",
            object.to_string().chars().take(200).collect::<String>()
        ));
    }
    let (resource, namespaced) = resource(flux, &api_version, &kind).await?;
    let metadata = &mut object["metadata"];
    // As helm and helm-controller mark what a release owns.
    metadata["labels"]["helm.toolkit.fluxcd.io/name"] = json!(owner_name);
    metadata["labels"]["helm.toolkit.fluxcd.io/namespace"] = json!(owner_namespace);
    metadata["annotations"]["meta.helm.sh/release-name"] = json!(spec.release);
    metadata["annotations"]["meta.helm.sh/release-namespace"] = json!(spec.namespace);
    let namespace = namespaced.then(|| {
        metadata["namespace"]
            .as_str()
            .unwrap_or(&spec.namespace)
            .to_owned()
    });
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(flux.client.clone(), ns, &resource),
        None => Api::all_with(flux.client.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(|e| format!("cannot apply {kind} {name}: {e}"))?;
    Ok(Entry {
        api_version,
        kind,
        namespace,
        name,
    })
}

async fn delete(flux: &Flux, entry: &Entry) -> Result<(), String> {
    let (resource, _) = resource(flux, &entry.api_version, &entry.kind).await?;
    let api: Api<DynamicObject> = match &entry.namespace {
        Some(ns) => Api::namespaced_with(flux.client.clone(), ns, &resource),
        None => Api::all_with(flux.client.clone(), &resource),
    };
    match api.delete(&entry.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(format!("cannot delete {} {}: {e}", entry.kind, entry.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release's names go out and come back; the namespace is replaced first, so a
    /// release name inside it does not split it.
    #[test]
    fn names_round_trip_through_the_placeholders() {
        let text =
            r#"{"host":"app-3.styrmin-app-3.local","ns":"styrmin-app-3","name":"app-3-web"}"#;
        let generic = generalise(text, "app-3", "styrmin-app-3");
        assert!(!generic.contains("app-3"), "{generic}");
        assert_eq!(specialise(&generic, "app-3", "styrmin-app-3"), text);
        // Two releases of one group share the generic text.
        let other =
            r#"{"host":"app-4.styrmin-app-4.local","ns":"styrmin-app-4","name":"app-4-web"}"#;
        assert_eq!(generalise(other, "app-4", "styrmin-app-4"), generic);
    }
}
