//! The operator's children (what `styrmin_core::children` renders): one watch per kind,
//! limited by label to what Styrmin made, whose cache tells the operator what exists.
//! Children are applied only when the ledger says so, pruned and cleaned up from the
//! caches (no LIST per pass), and the HelmRelease's state is read from its cache.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Map, Value};
use styrmin_core::children::{DEPLOYMENT_LABEL, MANAGED_BY};
use styrmin_core::status::Release;

use super::FIELD_MANAGER;
use super::error::{OperatorError, is_not_found};
use super::ledger::{Applied, Cached, ChildKey, Decision, Ledger, decide};

/// A child applied longer ago than this is applied again on the next pass: drift the
/// cache cannot show (a Service has no generation) is corrected then.
pub const RESYNC: Duration = Duration::from_secs(600);

/// The kinds the operator makes, in no particular order.
const KINDS: [(&str, &str, &str); 6] = [
    ("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
    ("", "v1", "Service"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("traefik.io", "v1alpha1", "Middleware"),
];
const HELM_RELEASE: &str = "HelmRelease";

/// One watched kind and its cache.
struct Kind {
    resource: ApiResource,
    store: Store<DynamicObject>,
}

/// The children's caches and the ledger of what was applied.
pub struct Children {
    client: Client,
    kinds: Vec<Kind>,
    ledger: Mutex<Ledger>,
}

/// A child's watch, for `Controller::owns_stream_with`.
pub type ChildStream = BoxStream<'static, Result<DynamicObject, watcher::Error>>;

impl Children {
    /// Starts nothing yet: returns the caches and, per kind the cluster serves, the watch
    /// stream that fills its cache (the controller drives it). A kind the cluster does not
    /// serve (no Traefik CRDs, say) is not watched; applying one fails as before.
    pub async fn watch(client: &Client) -> (Children, Vec<(ChildStream, ApiResource)>) {
        let mut kinds = Vec::new();
        let mut streams = Vec::new();
        // Only what the operator made: its label and the deployment label.
        let config = watcher::Config::default().labels(&format!(
            "{}={},{DEPLOYMENT_LABEL}",
            MANAGED_BY.0, MANAGED_BY.1
        ));
        for (group, version, kind) in KINDS {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            if !served(client, &resource).await {
                tracing::info!(kind, "not served by this cluster: not watched");
                continue;
            }
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let keep_status = kind == HELM_RELEASE;
            let stream = watcher(api, config.clone())
                .default_backoff()
                .modify(move |o| slim(o, keep_status))
                .reflect(writer)
                .touched_objects()
                .filter_map(move |item| async move { quiet(kind, item) })
                .boxed();
            streams.push((stream, resource.clone()));
            kinds.push(Kind { resource, store });
        }
        let children = Children {
            client: client.clone(),
            kinds,
            ledger: Mutex::default(),
        };
        (children, streams)
    }

    fn kind(&self, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.resource.kind == kind)
    }

    fn cached(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<DynamicObject>> {
        let k = self.kind(kind)?;
        k.store
            .get(&ObjectRef::new_with(name, k.resource.clone()).within(namespace))
    }

    /// Applies each rendered object the ledger says to (server-side apply, one field
    /// manager), in order. Returns the API server's answer for each object applied now.
    pub async fn apply(
        &self,
        owner: &str,
        namespace: &str,
        objects: &[Value],
    ) -> Result<Vec<(ChildKey, DynamicObject)>, OperatorError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut answers = Vec::new();
        for object in objects {
            let key = key_of(object);
            let hash = styrmin_core::canonical::sha256_hex(object);
            let cached = self.cached(&key.kind, namespace, &key.name);
            let decision = {
                let ledger = self.ledger.lock().expect("not poisoned");
                decide(
                    ledger.get(owner, &key),
                    cached.as_deref().map(|o| Cached {
                        uid: o.metadata.uid.as_deref(),
                        generation: o.metadata.generation,
                        deleting: o.metadata.deletion_timestamp.is_some(),
                    }),
                    &hash,
                    Instant::now(),
                    RESYNC,
                )
            };
            let Decision::Apply(why) = decision else {
                continue;
            };
            tracing::debug!(kind = key.kind, name = key.name, ?why, "applying");
            let resource = resource_of(object);
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource);
            let answer = api
                .patch(&key.name, &params, &Patch::Apply(object))
                .await
                .map_err(|source| OperatorError::Apply {
                    kind: key.kind.clone(),
                    namespace: namespace.to_owned(),
                    name: key.name.clone(),
                    source,
                })?;
            self.ledger.lock().expect("not poisoned").record(
                owner,
                key.clone(),
                Applied {
                    hash,
                    uid: answer.metadata.uid.clone(),
                    generation: answer.metadata.generation,
                    at: Instant::now(),
                },
            );
            answers.push((key, answer));
        }
        Ok(answers)
    }

    /// Deletes the deployment's children that the render no longer makes, as the caches
    /// show them. Skipped while a cache has not listed yet (the next pass prunes).
    pub async fn prune(
        &self,
        owner: &str,
        namespace: &str,
        deployment_id: &str,
        keep: &BTreeSet<ChildKey>,
    ) -> Result<(), OperatorError> {
        if self.kinds.iter().any(|k| !is_ready(&k.store)) {
            return Ok(());
        }
        for (kind, object) in self.of_deployment(namespace, deployment_id) {
            let key = ChildKey {
                kind: kind.resource.kind.clone(),
                name: object.name_any(),
            };
            if keep.contains(&key) || object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            self.delete(kind, namespace, &key.name).await?;
            self.ledger
                .lock()
                .expect("not poisoned")
                .forget_child(owner, &key);
        }
        Ok(())
    }

    /// Deletes every child of the deployment; `Ok` once the caches show none left.
    pub async fn cleanup(
        &self,
        owner: &str,
        namespace: &str,
        name: &str,
        deployment_id: &str,
    ) -> Result<(), OperatorError> {
        // Right after start the caches may not have listed: nothing would look left.
        self.synced(Duration::from_secs(10)).await?;
        let left = self.of_deployment(namespace, deployment_id);
        for (kind, object) in &left {
            if object.metadata.deletion_timestamp.is_none() {
                self.delete(kind, namespace, &object.name_any()).await?;
            }
        }
        if !left.is_empty() {
            return Err(OperatorError::ChildrenLeft {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                left: left.len(),
            });
        }
        self.ledger.lock().expect("not poisoned").forget(owner);
        Ok(())
    }

    /// The HelmRelease's state: from this pass's apply when there was one (the freshest),
    /// else from the cache, which counts only once it has caught up with the last apply.
    pub fn release(
        &self,
        owner: &str,
        namespace: &str,
        name: &str,
        applied_now: Option<&DynamicObject>,
    ) -> Release {
        let key = ChildKey {
            kind: HELM_RELEASE.into(),
            name: name.into(),
        };
        let cached = self.cached(HELM_RELEASE, namespace, name);
        let Some(release) = applied_now.or(cached.as_deref()) else {
            return Release::Unseen;
        };
        let last = self
            .ledger
            .lock()
            .expect("not poisoned")
            .get(owner, &key)
            .and_then(|a| a.generation);
        let behind = matches!((release.metadata.generation, last), (Some(seen), Some(applied)) if seen < applied);
        if behind || release.metadata.deletion_timestamp.is_some() {
            return Release::Unseen;
        }
        Release::read(release.metadata.generation, &release.data["status"])
    }

    /// Waits (bounded) until every cache has listed, for a cleanup right after start.
    pub async fn synced(&self, within: Duration) -> Result<(), OperatorError> {
        for kind in &self.kinds {
            tokio::time::timeout(within, kind.store.wait_until_ready())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| OperatorError::NotSynced(kind.resource.kind.clone()))?;
        }
        Ok(())
    }

    fn of_deployment(
        &self,
        namespace: &str,
        deployment_id: &str,
    ) -> Vec<(&Kind, std::sync::Arc<DynamicObject>)> {
        self.kinds
            .iter()
            .flat_map(|kind| {
                kind.store
                    .state_filter(|o| {
                        o.metadata.namespace.as_deref() == Some(namespace)
                            && o.labels().get(DEPLOYMENT_LABEL).map(String::as_str)
                                == Some(deployment_id)
                    })
                    .into_iter()
                    .map(move |o| (kind, o))
            })
            .collect()
    }

    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<(), OperatorError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &kind.resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(OperatorError::Delete {
                kind: kind.resource.kind.clone(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }),
        }
    }
}

/// The key of a rendered object.
pub fn key_of(object: &Value) -> ChildKey {
    ChildKey {
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn resource_of(object: &Value) -> ApiResource {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// What the cache keeps of a child: its metadata (without managed fields) and, for the
/// HelmRelease, its status; the spec is the ledger's business.
fn slim(object: &mut DynamicObject, keep_status: bool) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
    let status = keep_status.then(|| object.data["status"].take());
    let mut data = Map::new();
    if let Some(status) = status {
        data.insert("status".into(), status);
    }
    object.data = Value::Object(data);
}

/// A watch error is logged and retried (with back-off) by the watch itself; it is not
/// passed on, since one failing watch would otherwise pause every trigger of the
/// controller.
pub(super) fn quiet<T>(
    kind: &str,
    item: Result<T, watcher::Error>,
) -> Option<Result<T, watcher::Error>> {
    match item {
        Ok(object) => Some(Ok(object)),
        Err(error) => {
            tracing::warn!(kind, %error, "watch failed; retrying");
            None
        }
    }
}

pub(super) fn is_ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// Whether the API server serves the kind (a missing group or version is a 404; any
/// other failure counts as served, so the watch reports it).
async fn served(client: &Client, resource: &ApiResource) -> bool {
    let listed = if resource.group.is_empty() {
        client.list_core_api_resources(&resource.version).await
    } else {
        client.list_api_group_resources(&resource.api_version).await
    };
    match listed {
        Ok(list) => list.resources.iter().any(|r| r.kind == resource.kind),
        Err(e) => !is_not_found(&e),
    }
}
