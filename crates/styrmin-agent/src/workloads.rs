//! Component workloads as both the operator and the actions see them: a component's
//! Deployments and StatefulSets are found by its identifier labels, their replicas are
//! summed into one count, and the scale-by-annotation rules are the core's
//! ([`styrmin_core::workloads`]). No API calls here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use serde_json::Value;

pub use styrmin_core::workloads::{
    ACTION_STOPPED_ANNOTATION, REPLICAS_ANNOTATION, matches, scale_patch, selector,
};

/// Desired and ready replicas over one component's workloads.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Replicas {
    pub desired: i32,
    pub ready: i32,
    pub workloads: usize,
    /// A workload whose controller has not seen its latest spec yet.
    pub stale: bool,
}

impl Replicas {
    fn add(&mut self, desired: Option<i32>, ready: Option<i32>, current: bool) {
        self.workloads += 1;
        self.desired += desired.unwrap_or(1);
        self.ready += ready.unwrap_or(0);
        self.stale |= !current;
    }

    pub fn add_deployment(&mut self, d: &Deployment) {
        let (spec, status) = (d.spec.as_ref(), d.status.as_ref());
        self.add(
            spec.and_then(|s| s.replicas),
            status.and_then(|s| s.ready_replicas),
            status.and_then(|s| s.observed_generation) == d.metadata.generation,
        );
    }

    pub fn add_stateful_set(&mut self, s: &StatefulSet) {
        let (spec, status) = (s.spec.as_ref(), s.status.as_ref());
        self.add(
            spec.and_then(|s| s.replicas),
            status.and_then(|s| s.ready_replicas),
            status.and_then(|s| s.observed_generation) == s.metadata.generation,
        );
    }
}

/// The identifier labels of each component declared in a frozen Context (JSON), read
/// without converting the whole Context. Components whose labels are not a map of
/// strings are left out.
pub fn component_labels(context: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let Some(components) = context["components"].as_object() else {
        return BTreeMap::new();
    };
    components
        .iter()
        .filter_map(|(name, component)| {
            let labels = component["labels"].as_object()?;
            let labels = labels
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<Option<BTreeMap<_, _>>>()?;
            Some((name.clone(), labels))
        })
        .collect()
}

/// Whether a workload with `labels` belongs to one of the components of `context`.
/// A component with no identifier labels claims nothing (it would match every workload).
pub fn belongs(context: &Value, labels: &BTreeMap<String, String>) -> bool {
    component_labels(context)
        .values()
        .any(|identifier| !identifier.is_empty() && matches(identifier, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        replicas: Option<i32>,
        ready: Option<i32>,
        generation: i64,
        seen: i64,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"readyReplicas": ready, "observedGeneration": seen},
        }))
        .unwrap()
    }

    /// Replicas add up over a component's workloads; unset replicas count as Kubernetes
    /// defaults them (1 desired, 0 ready), and a workload whose controller lags is stale.
    #[test]
    fn replicas_add_up_over_deployments_and_stateful_sets() {
        let mut r = Replicas::default();
        r.add_deployment(&deployment(Some(2), Some(2), 3, 3));
        r.add_deployment(&deployment(None, None, 1, 1));
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "s", "generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": "s"},
            "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1},
        }))
        .unwrap();
        r.add_stateful_set(&set);
        assert_eq!(
            r,
            Replicas {
                desired: 4,
                ready: 3,
                workloads: 3,
                stale: true
            }
        );
    }

    /// Components are read from the Context's JSON; a workload belongs to the deployment
    /// when it carries all identifier labels of one of its components.
    #[test]
    fn workloads_belong_to_the_deployment_whose_component_labels_they_carry() {
        let context = json!({"components": {
            "server": {"labels": {"app.kubernetes.io/name": "my-app", "app.kubernetes.io/component": "server"}},
            "broken": {"labels": {"x": 1}},
            "empty": {"labels": {}},
        }});
        let labels = component_labels(&context);
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["empty", "server"]);
        let workload: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "my-app"),
            ("app.kubernetes.io/component", "server"),
            ("app.kubernetes.io/instance", "shop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert!(belongs(&context, &workload));
        let other: BTreeMap<String, String> =
            [("app.kubernetes.io/name".to_owned(), "other".to_owned())].into();
        assert!(
            !belongs(&context, &other),
            "an empty identifier claims nothing"
        );
        assert!(!belongs(&json!({}), &workload));
    }
}
