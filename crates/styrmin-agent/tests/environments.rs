//! Environments side by side on the local cluster (a real kube-apiserver; simulated nodes;
//! the Flux stand-in running the real helm): the example driver deployed twice in `dev`
//! and once in `prod`.
//!
//! - Release-scoped objects: every deployment reaches RUNNING, and each discovery Service
//!   selects only the pods of its own release; a deployment whose Service name would take
//!   another's is refused at creation, naming both.
//! - Isolation: the NetworkPolicies of each namespace, listed through the API server,
//!   select every pod of every deployment in it; a NetworkPolicy evaluator (below, a pure
//!   function over the policies, the namespaces' labels and the pods' labels) admits
//!   exactly the pairs (source, destination) where the source is in the same namespace,
//!   in the agent's namespace or in a namespace holding a shared ingress controller.
//! - Chart pulls: each environment's chart credentials hold the cluster's chart-pull
//!   token, and no Secret in the cluster holds the agent's own token.
//!
//! The local cluster enforces no NetworkPolicy (it has no network plugin): the evaluator
//! applies the Kubernetes semantics to the objects the operator really made.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_core::children::{CHART_CREDENTIALS_SECRET, DEPLOYMENT_LABEL, INGRESS_NAMESPACE_LABEL};
use styrmin_server::Settings;
use styrmin_testkit::cluster::LocalStack;
use styrmin_testkit::{fails, ok, wait_until};

type Labels = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------
// The evaluator: Kubernetes NetworkPolicy ingress semantics, for pod sources.

fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    by_labels && by_expressions
}

/// A pod as the evaluator sees it: its namespace and labels.
#[derive(Debug, Clone)]
struct PodRef {
    namespace: String,
    name: String,
    labels: Labels,
}

/// Whether `from` may open a connection to `to`: allowed when no Ingress policy of `to`'s
/// namespace selects `to`, otherwise when a rule of a selecting policy admits `from`.
fn admits(
    policies: &[NetworkPolicy],
    namespaces: &BTreeMap<String, Labels>,
    from: &PodRef,
    to: &PodRef,
) -> bool {
    let selecting: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(to.namespace.as_str()))
        .filter(|p| {
            let spec = p.spec.as_ref().unwrap();
            let ingress_type = spec
                .policy_types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == "Ingress"));
            ingress_type && selects(&spec.pod_selector.clone().unwrap_or_default(), &to.labels)
        })
        .collect();
    if selecting.is_empty() {
        return true;
    }
    let from_ns_labels = namespaces.get(&from.namespace).cloned().unwrap_or_default();
    selecting.iter().any(|p| {
        let rules = p.spec.as_ref().unwrap().ingress.clone().unwrap_or_default();
        rules.iter().any(|rule| match &rule.from {
            None => true,
            Some(peers) if peers.is_empty() => true,
            Some(peers) => peers.iter().any(|peer| {
                match (&peer.namespace_selector, &peer.pod_selector) {
                    (None, None) => false, // an ipBlock: no pod source
                    (None, Some(pods)) => {
                        from.namespace == to.namespace && selects(pods, &from.labels)
                    }
                    (Some(ns), pods) => {
                        selects(ns, &from_ns_labels)
                            && pods.as_ref().is_none_or(|s| selects(s, &from.labels))
                    }
                }
            }),
        })
    })
}

fn label_selector_string(selector: &LabelSelector) -> String {
    assert!(
        selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty),
        "the operator's policies use matchLabels only"
    );
    selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------

const DEPLOYMENT_FIELDS: &str = "id name status { status } pods { name component } flowRuns { kind state } activeInstance { context }";

async fn create(admin: &Client, env: &str, name: &str) -> String {
    let created = ok(admin, "mutation($env: ID!, $name: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: $name, parameters: {admin_email: \"ops@example.com\", replicas: 1}) { deployment { id } } }", json!({"env": env, "name": name})).await;
    created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the deployment is RUNNING, its create run completed and both its components
/// have reported pods.
async fn running(admin: &Client, id: &str) -> Value {
    wait_until(
        "the deployment RUNNING with pods of both components",
        Duration::from_secs(240),
        Duration::from_millis(250),
        || async {
            let d = ok(
                admin,
                &format!("query($id: ID!) {{ deployment(id: $id) {{ {DEPLOYMENT_FIELDS} }} }}"),
                json!({"id": id}),
            )
            .await["deployment"]
                .clone();
            let components: BTreeSet<&str> = d["pods"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["component"].as_str())
                .collect();
            let done = d["status"]["status"] == "RUNNING"
                && d["flowRuns"][0]["state"] == "completed"
                && components.len() == 2;
            if done { Ok(d) } else { Err(d) }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_isolated_and_deployments_of_one_driver_run_side_by_side() {
    let stack = LocalStack::start(Settings::default(), json!({})).await;
    let admin = stack.admin.clone();
    let kube = stack.cluster.client();
    ok(
        &admin,
        "mutation { createEnvironment(name: \"prod\", clusterId: \"local\") { id } }",
        json!({}),
    )
    .await;
    // The agent's own namespace, and one holding a shared ingress controller (labelled by
    // the cluster's administrator, as docs/agent.md says).
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    for (name, labels) in [
        ("styrmin-system", json!({})),
        ("shared-ingress", json!({INGRESS_NAMESPACE_LABEL: "true"})),
        ("elsewhere", json!({})),
    ] {
        let ns = json!({"metadata": {"name": name, "labels": labels}});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
            .await
            .unwrap();
    }
    let agent = stack.agent_in_process(kube.clone(), |config| {
        config.snapshot_interval = Duration::from_secs(2);
        config.core_timeout = Duration::from_secs(120);
        config.namespace = Some("styrmin-system".into());
    });

    // Two deployments of my-app in dev, one in prod.
    let dev_app = create(&admin, "dev", "my-app").await;
    let dev_shop = create(&admin, "dev", "shop").await;
    let prod_shop = create(&admin, "prod", "shop").await;

    // `my-app-db` would name its database service `my-app-db`, which `my-app` already
    // has in dev: refused, naming both, and nothing recorded.
    let refused = fails(&admin, "mutation { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"my-app-db\", parameters: {admin_email: \"ops@example.com\"}) { deployment { id } } }", json!({})).await;
    let message = refused.to_string();
    assert!(
        message.contains("`my-app-db`") && message.contains("deployment `my-app`"),
        "{message}"
    );
    let listed = ok(&admin, "{ deployments { name } }", json!({})).await;
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        3,
        "{listed}"
    );

    let mut deployments = Vec::new();
    for (namespace, id) in [
        ("styrmin-dev", &dev_app),
        ("styrmin-dev", &dev_shop),
        ("styrmin-prod", &prod_shop),
    ] {
        deployments.push((namespace, running(&admin, id).await));
    }

    // Release-scoped Services: each selects pods, all of them of its own release, and the
    // pods the server lists for the deployment are those pods.
    for (namespace, d) in &deployments {
        let release = d["name"].as_str().unwrap();
        let services: Api<Service> = Api::namespaced(kube.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
        let mine = services
            .list(
                &ListParams::default()
                    .labels(&format!("{DEPLOYMENT_LABEL}={}", d["id"].as_str().unwrap())),
            )
            .await
            .unwrap();
        let names: BTreeSet<String> = mine.items.iter().map(|s| s.name_any()).collect();
        let expected: BTreeSet<String> = if release == "my-app" {
            ["my-app", "my-app-db"].map(String::from).into()
        } else {
            [format!("{release}-my-app"), format!("{release}-my-app-db")].into()
        };
        assert_eq!(names, expected, "{namespace}/{release}");
        let reported: BTreeSet<&str> = d["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let mut selected_by_services = BTreeSet::new();
        for service in &mine.items {
            let selector: Labels = service.spec.clone().unwrap().selector.unwrap();
            assert_eq!(
                selector
                    .get("app.kubernetes.io/instance")
                    .map(String::as_str),
                Some(release)
            );
            let sel = selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let selected = pods
                .list(&ListParams::default().labels(&sel))
                .await
                .unwrap();
            assert!(
                !selected.items.is_empty(),
                "{} selects no pod",
                service.name_any()
            );
            for pod in &selected.items {
                assert!(
                    reported.contains(pod.name_any().as_str()),
                    "Service {} of {release} selects {}, not one of its pods {reported:?}",
                    service.name_any(),
                    pod.name_any()
                );
                selected_by_services.insert(pod.name_any());
            }
        }
        assert_eq!(
            selected_by_services.len(),
            reported.len(),
            "every pod of {release} is behind one of its Services"
        );
    }

    // Every pod of every deployment is selected by a policy of its namespace, as the API
    // server lists the pods each policy's selector selects.
    let policies: Api<NetworkPolicy> = Api::all(kube.clone());
    let policies = policies.list(&ListParams::default()).await.unwrap().items;
    for (namespace, d) in &deployments {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
        let mut covered = BTreeSet::new();
        for policy in policies
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(*namespace))
        {
            let selector = label_selector_string(
                &policy
                    .spec
                    .as_ref()
                    .unwrap()
                    .pod_selector
                    .clone()
                    .unwrap_or_default(),
            );
            let selected = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
            covered.extend(selected.items.iter().map(|p| p.name_any()));
        }
        for pod in d["pods"].as_array().unwrap() {
            let name = pod["name"].as_str().unwrap();
            assert!(
                covered.contains(name),
                "pod {namespace}/{name} is selected by no NetworkPolicy"
            );
        }
    }

    // The evaluator over every pod of both environments, a pod in the agent's namespace,
    // one in the shared ingress's namespace and one elsewhere.
    let namespace_labels: BTreeMap<String, Labels> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|ns| (ns.name_any(), ns.labels().clone()))
        .collect();
    assert_eq!(
        namespace_labels["styrmin-system"]
            .get("styrmin.io/agent")
            .map(String::as_str),
        Some("true"),
        "the agent labelled its namespace"
    );
    let mut environment_pods = Vec::new();
    for namespace in ["styrmin-dev", "styrmin-prod"] {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
        for pod in pods.list(&ListParams::default()).await.unwrap().items {
            environment_pods.push(PodRef {
                namespace: namespace.into(),
                name: pod.name_any(),
                labels: pod.labels().clone(),
            });
        }
    }
    assert_eq!(
        environment_pods.len(),
        6,
        "two pods per deployment: {environment_pods:?}"
    );
    let outsider = |namespace: &str| PodRef {
        namespace: namespace.into(),
        name: format!("{namespace}-pod"),
        labels: [("app".to_owned(), "anything".to_owned())].into(),
    };
    let mut sources = environment_pods.clone();
    sources.extend(["styrmin-system", "shared-ingress", "elsewhere"].map(outsider));
    let mut pairs = 0;
    for to in &environment_pods {
        for from in &sources {
            let expected = from.namespace == to.namespace
                || from.namespace == "styrmin-system"
                || from.namespace == "shared-ingress";
            assert_eq!(
                admits(&policies, &namespace_labels, from, to),
                expected,
                "{}/{} → {}/{}",
                from.namespace,
                from.name,
                to.namespace,
                to.name
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 6 * 9);

    // The chart pulls authenticate with the cluster's chart-pull token; no Secret
    // anywhere in the cluster holds the agent's own token.
    let secrets: Api<Secret> = Api::all(kube.clone());
    let mut chart_credentials = 0;
    for secret in secrets.list(&ListParams::default()).await.unwrap() {
        let values: Vec<String> = secret
            .data
            .iter()
            .flatten()
            .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned())
            .collect();
        assert!(
            !values.iter().any(|v| v.contains(&stack.agent_token)),
            "Secret {}/{} holds the agent token",
            secret.namespace().unwrap_or_default(),
            secret.name_any()
        );
        if secret.name_any() == CHART_CREDENTIALS_SECRET {
            chart_credentials += 1;
            let pull = styrmin_core::protocol::chart_pull_token(&stack.agent_token);
            assert!(values.contains(&pull), "{values:?}");
        }
    }
    assert_eq!(chart_credentials, 2, "one per environment namespace");

    agent.stop().await;
    stack.stop().await;
}
