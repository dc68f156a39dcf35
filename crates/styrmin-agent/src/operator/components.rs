//! Component workloads as the operator sees them: Deployments and StatefulSets watched
//! cluster-wide (charts put no Styrmin label on them, so no label selector can narrow the
//! watch) into slim caches, mapped back to the `StyrminDeployment`s whose components'
//! labels they carry, scaled for the phase and counted from the caches.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use styrmin_core::context::GlobalContext;
use styrmin_core::crd::{ComponentStatus, StyrminDeployment};
use styrmin_core::planner::Phase;

use super::children::quiet;
use super::error::OperatorError;
use crate::workloads::{Replicas, belongs, matches, scale_patch};

pub type WorkloadStream<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The caches of every Deployment and StatefulSet.
pub struct Workloads {
    client: Client,
    deployments: Store<Deployment>,
    sets: Store<StatefulSet>,
}

impl Workloads {
    /// The caches and the watch streams that fill them (the controller drives them).
    pub fn watch(
        client: &Client,
    ) -> (
        Workloads,
        WorkloadStream<Deployment>,
        WorkloadStream<StatefulSet>,
    ) {
        let (deployments, deployment_writer) = reflector::store();
        let (sets, set_writer) = reflector::store();
        let deployment_stream = watcher(Api::<Deployment>::all(client.clone()), Default::default())
            .default_backoff()
            .modify(slim_deployment)
            .reflect(deployment_writer)
            .touched_objects()
            .filter_map(|item| async move { quiet("Deployment", item) })
            .boxed();
        let set_stream = watcher(Api::<StatefulSet>::all(client.clone()), Default::default())
            .default_backoff()
            .modify(slim_stateful_set)
            .reflect(set_writer)
            .touched_objects()
            .filter_map(|item| async move { quiet("StatefulSet", item) })
            .boxed();
        let workloads = Workloads {
            client: client.clone(),
            deployments,
            sets,
        };
        (workloads, deployment_stream, set_stream)
    }

    /// Waits (bounded) until both caches have listed: before that, a component would
    /// look as if it had no workloads, and so as ready.
    pub async fn synced(&self, within: Duration) -> Result<(), OperatorError> {
        let listed = async {
            self.deployments.wait_until_ready().await.is_ok()
                && self.sets.wait_until_ready().await.is_ok()
        };
        match tokio::time::timeout(within, listed).await {
            Ok(true) => Ok(()),
            _ => Err(OperatorError::NotSynced(
                "Deployments and StatefulSets".into(),
            )),
        }
    }

    /// Brings each component's workloads in line with `phase` (see
    /// [`styrmin_core::workloads::scale_patch`]) and counts their replicas, as the caches
    /// show them or, for a workload scaled now, as the API server answered.
    pub async fn converge(
        &self,
        namespace: &str,
        context: &GlobalContext,
        phase: Phase,
    ) -> Result<BTreeMap<String, ComponentStatus>, OperatorError> {
        let mut components = BTreeMap::new();
        for (name, component) in &context.components {
            let of_component = |meta: &ObjectMeta| {
                meta.namespace.as_deref() == Some(namespace)
                    && matches(
                        &component.labels,
                        meta.labels.as_ref().unwrap_or(&BTreeMap::new()),
                    )
            };
            let mut replicas = Replicas::default();
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
            for d in self.deployments.state_filter(|d| of_component(&d.metadata)) {
                let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                match scale(&api, "Deployment", &d.metadata, desired, phase).await? {
                    Some(scaled) => replicas.add_deployment(&scaled),
                    None => replicas.add_deployment(&d),
                }
            }
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
            for s in self.sets.state_filter(|s| of_component(&s.metadata)) {
                let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                match scale(&api, "StatefulSet", &s.metadata, desired, phase).await? {
                    Some(scaled) => replicas.add_stateful_set(&scaled),
                    None => replicas.add_stateful_set(&s),
                }
            }
            components.insert(
                name.clone(),
                ComponentStatus {
                    desired: replicas.desired,
                    ready: replicas.ready,
                },
            );
        }
        Ok(components)
    }
}

/// Sends the workload's scale patch, if it needs one; returns the workload as patched.
async fn scale<K>(
    api: &Api<K>,
    kind: &'static str,
    meta: &ObjectMeta,
    replicas: i32,
    phase: Phase,
) -> Result<Option<K>, OperatorError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let empty = BTreeMap::new();
    let Some(patch) = scale_patch(phase, replicas, meta.annotations.as_ref().unwrap_or(&empty))
    else {
        return Ok(None);
    };
    let name = meta.name.clone().unwrap_or_default();
    let scaled = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| OperatorError::Scale {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name,
            source,
        })?;
    Ok(Some(scaled))
}

/// The `StyrminDeployment`s (in the workload's namespace) with a component whose labels
/// the workload carries: the ones to reconcile when it changes.
pub fn owners(
    deployments: &Store<StyrminDeployment>,
    namespace: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Vec<ObjectRef<StyrminDeployment>> {
    deployments
        .state_filter(|sd| {
            sd.metadata.namespace.as_deref() == namespace && belongs(&sd.spec.context, labels)
        })
        .iter()
        .map(|sd| ObjectRef::from_obj(sd.as_ref()))
        .collect()
}

/// The annotations the operator reads on a workload; the cache keeps only these.
fn ours(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k.starts_with("styrmin.io/"));
    }
}

/// What the cache keeps of a Deployment: metadata, replicas, ready replicas and the
/// generation its controller has seen.
fn slim_deployment(d: &mut Deployment) {
    ours(&mut d.metadata);
    d.spec = d.spec.take().map(|s| DeploymentSpec {
        replicas: s.replicas,
        ..Default::default()
    });
    d.status = d.status.take().map(|s| DeploymentStatus {
        ready_replicas: s.ready_replicas,
        observed_generation: s.observed_generation,
        ..Default::default()
    });
}

fn slim_stateful_set(s: &mut StatefulSet) {
    ours(&mut s.metadata);
    s.spec = s.spec.take().map(|spec| StatefulSetSpec {
        replicas: spec.replicas,
        ..Default::default()
    });
    s.status = s.status.take().map(|status| StatefulSetStatus {
        ready_replicas: status.ready_replicas,
        observed_generation: status.observed_generation,
        replicas: status.replicas,
        ..Default::default()
    });
}

/// A workload's namespace and labels, for [`owners`].
pub fn placement(meta: &ObjectMeta) -> (Option<&str>, &BTreeMap<String, String>) {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    (
        meta.namespace.as_deref(),
        meta.labels.as_ref().unwrap_or(&EMPTY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The cache keeps what the operator reads of a workload and drops the rest (the pod
    /// template, managed fields, other annotations).
    #[test]
    fn the_cache_keeps_replicas_labels_and_our_annotations() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "shop-server", "namespace": "styrmin-dev", "generation": 4,
                "labels": {"app.kubernetes.io/component": "server"},
                "annotations": {"styrmin.io/replicas": "2", "deployment.kubernetes.io/revision": "3"},
                "managedFields": [{"manager": "helm"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "server", "image": "x"}]}}},
            "status": {"readyReplicas": 1, "observedGeneration": 4, "replicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]},
        }))
        .unwrap();
        slim_deployment(&mut d);
        let kept = serde_json::to_value(&d).unwrap();
        assert_eq!(
            kept,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "shop-server", "namespace": "styrmin-dev", "generation": 4,
                    "labels": {"app.kubernetes.io/component": "server"},
                    "annotations": {"styrmin.io/replicas": "2"}},
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"readyReplicas": 1, "observedGeneration": 4},
            })
        );
    }
}
