//! What the operator makes for one `StyrminDeployment` (SPEC §6 "Render"), as plain
//! Kubernetes objects: the chart source (`HelmRepository`), the `HelmRelease` with the
//! rendered values, one discovery `Service` per declared service (named and selecting by
//! the release), a `NetworkPolicy` over every pod of the namespace that keeps other
//! environments out, and an `Ingress` (with a Traefik IP allow-list when
//! `ip_whitelist` is set) for each external service once the cluster has an `fqdn_suffix`.
//! Pure: the operator applies the result with server-side apply and prunes what a new
//! render no longer contains.

use serde_json::{Map, Value, json};

use crate::context::GlobalContext;
use crate::driver::{ChartSource, ServiceScope};

/// Labels on every object the operator makes; pruning finds its objects by them.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "styrmin");
pub const DEPLOYMENT_LABEL: &str = "styrmin.io/deployment";
/// Namespaces holding a shared ingress controller carry this label (`"true"`) so the
/// NetworkPolicy lets that controller in.
pub const INGRESS_NAMESPACE_LABEL: &str = "styrmin.io/ingress";
/// The namespace the agent runs in carries this label (`"true"`) so that its lifecycle
/// actions (`http_check`) reach the deployment's pods.
pub const AGENT_NAMESPACE_LABEL: &str = "styrmin.io/agent";
/// The Secret (made by the agent) with the credentials for the server's chart repository.
pub const CHART_CREDENTIALS_SECRET: &str = "styrmin-chart-repository";

/// The owner every child points at.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

pub struct RenderInput<'a> {
    pub owner: Owner<'a>,
    pub deployment_id: &'a str,
    pub context: &'a GlobalContext,
    pub values: &'a Map<String, Value>,
    /// The server's chart repository, for charts shipped inside the driver.
    pub chart_repository: Option<&'a str>,
    /// For a chart shipped inside the driver: its name, from its `Chart.yaml` (the name the
    /// server's repository serves it under).
    pub bundled_chart_name: Option<&'a str>,
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderChildrenError {
    #[error("helm.main.location `{0}` is not a chart location Styrmin understands")]
    UnknownChartSource(String),
    #[error("the chart ships inside the driver but the run names no chart repository")]
    NoChartRepository,
    #[error("the chart ships inside the driver but its name (from Chart.yaml) is not known")]
    NoChartName,
}

fn metadata(input: &RenderInput<'_>, name: &str, extra_labels: &Map<String, Value>) -> Value {
    let mut labels = Map::new();
    labels.insert(MANAGED_BY.0.into(), json!(MANAGED_BY.1));
    labels.insert(DEPLOYMENT_LABEL.into(), json!(input.deployment_id));
    labels.insert(
        crate::naming::INSTANCE_LABEL.into(),
        json!(input.context.instance.release_name),
    );
    labels.extend(extra_labels.clone());
    json!({
        "name": name,
        "namespace": input.context.instance.namespace,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": input.owner.api_version,
            "kind": input.owner.kind,
            "name": input.owner.name,
            "uid": input.owner.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    })
}

/// Every object, in apply order (the source before the release that reads it).
pub fn render(input: &RenderInput<'_>) -> Result<Vec<Value>, RenderChildrenError> {
    let mut objects = Vec::new();
    let (repository, chart) = chart_source(input)?;
    let release = &input.context.instance.release_name;
    objects.push(repository);
    objects.push(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": metadata(input, release, &Map::new()),
        "spec": {
            "releaseName": release,
            "interval": "10m",
            "timeout": "10m",
            "suspend": input.suspend,
            "chart": {"spec": {
                "chart": chart,
                "version": input.context.app.chart.version,
                "sourceRef": {"kind": "HelmRepository", "name": release},
            }},
            "install": {"remediation": {"retries": 0}},
            "upgrade": {"remediation": {"retries": 0}},
            "values": input.values,
        },
    }));
    for service in input.context.services.values() {
        let selector = input
            .context
            .components
            .get(&service.component)
            .map(|c| json!(c.labels))
            .unwrap_or_else(|| json!({}));
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(input, &service.name, &Map::new()),
            "spec": {
                "selector": selector,
                "ports": [{
                    "name": service.kind.as_str(),
                    "port": service.port,
                    "targetPort": service.port,
                    "protocol": "TCP",
                }],
            },
        }));
    }
    objects.push(network_policy(input));
    objects.extend(ingresses(input));
    Ok(objects)
}

/// The HelmRepository and the chart's name in it.
fn chart_source(input: &RenderInput<'_>) -> Result<(Value, String), RenderChildrenError> {
    let chart = &input.context.app.chart;
    let release = &input.context.instance.release_name;
    let (spec, name) = match chart.source() {
        Some(ChartSource::Bundled(_)) => {
            let url = input
                .chart_repository
                .ok_or(RenderChildrenError::NoChartRepository)?;
            let name = input
                .bundled_chart_name
                .ok_or(RenderChildrenError::NoChartName)?
                .to_owned();
            (
                json!({"url": url, "interval": "10m", "secretRef": {"name": CHART_CREDENTIALS_SECRET}}),
                name,
            )
        }
        Some(ChartSource::Repository { url, chart }) => {
            (json!({"url": url, "interval": "10m"}), chart.to_owned())
        }
        Some(ChartSource::Oci(location)) => {
            let (base, name) = location
                .trim_end_matches('/')
                .rsplit_once('/')
                .ok_or_else(|| RenderChildrenError::UnknownChartSource(location.to_owned()))?;
            (
                json!({"url": base, "type": "oci", "interval": "10m"}),
                name.to_owned(),
            )
        }
        None => {
            return Err(RenderChildrenError::UnknownChartSource(
                chart.location.clone(),
            ));
        }
    };
    Ok((
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": metadata(input, release, &Map::new()),
            "spec": spec,
        }),
        name,
    ))
}

/// Selects every pod of the environment's namespace, whatever its labels (an empty pod
/// selector: charts label their pods as they like). In: everything from the same
/// namespace (its pods and its dedicated ingress controller), from namespaces labelled as
/// holding a shared ingress and from the agent's namespace; nothing from other
/// environments. Every deployment of the namespace renders the same rules under its own
/// name, so the namespace stays closed while any deployment is in it.
fn network_policy(input: &RenderInput<'_>) -> Value {
    let name = format!("{}-environment-only", input.context.instance.release_name);
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(input, &name, &Map::new()),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {INGRESS_NAMESPACE_LABEL: "true"}}},
                {"namespaceSelector": {"matchLabels": {AGENT_NAMESPACE_LABEL: "true"}}},
            ]}],
        },
    })
}

fn ingresses(input: &RenderInput<'_>) -> Vec<Value> {
    let context = input.context;
    let config = &context.instance.config;
    let has_suffix = config
        .get("fqdn_suffix")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_suffix {
        return Vec::new();
    }
    let class = config
        .get("ingress_class")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("traefik-{}", context.environment.name));
    let allow: Vec<Value> = config
        .get("ip_whitelist")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let namespace = &context.instance.namespace;
    let release = &context.instance.release_name;
    let mut objects = Vec::new();
    let middleware = format!("{release}-ip-allow-list");
    if !allow.is_empty() {
        objects.push(json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": metadata(input, &middleware, &Map::new()),
            "spec": {"ipAllowList": {"sourceRange": allow}},
        }));
    }
    for (declared, service) in &context.services {
        if service.scope != ServiceScope::External {
            continue;
        }
        let mut meta = metadata(input, &format!("{release}-{declared}"), &Map::new());
        if !allow.is_empty() {
            meta["annotations"] = json!({
                "traefik.ingress.kubernetes.io/router.middlewares":
                    format!("{namespace}-{middleware}@kubernetescrd"),
            });
        }
        let backend = json!({"service": {"name": service.name, "port": {"number": service.port}}});
        let rules: Vec<Value> = [&service.primary_fqdn, &service.human_readable_fqdn]
            .into_iter()
            .filter(|host| !host.is_empty())
            .map(|host| {
                json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}})
            })
            .collect();
        objects.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": {"ingressClassName": class, "rules": rules},
        }));
    }
    objects
}

/// The URLs the external services answer on, for the status and the UI.
pub fn urls(context: &GlobalContext) -> Vec<String> {
    context
        .services
        .values()
        .filter(|s| s.scope == ServiceScope::External)
        .flat_map(|s| [&s.primary_fqdn, &s.human_readable_fqdn])
        .filter(|host| !host.is_empty())
        .map(|host| format!("https://{host}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SampleSettings, sample};
    use crate::driver::{DriverFiles, load};

    fn example(cluster: Value, environment: Value) -> GlobalContext {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/examples/my-app");
        let files = DriverFiles {
            spec: std::fs::read_to_string(dir.join("driver.styrmin.yml")).unwrap(),
            values_template: None,
            actions: std::fs::read_to_string(dir.join("actions.py")).ok(),
            files: ["driver.styrmin.yml", "actions.py", "chart/Chart.yaml"]
                .map(String::from)
                .into(),
        };
        let driver = load(&files).driver.expect("the example driver is valid");
        let mut parameters = std::collections::BTreeMap::new();
        parameters.insert("admin_email".to_owned(), json!("ops@example.com"));
        let settings = SampleSettings {
            cluster_config: cluster.as_object().cloned().unwrap_or_default(),
            environment_config: environment.as_object().cloned().unwrap_or_default(),
            deployment_config: Default::default(),
            environment: Some("prod".into()),
            deployment: Some("shop".into()),
            parameters,
            components: Default::default(),
        };
        sample(&driver.spec, "2.3.1", &settings).unwrap()
    }

    fn input<'a>(context: &'a GlobalContext, values: &'a Map<String, Value>) -> RenderInput<'a> {
        RenderInput {
            owner: Owner {
                api_version: "styrmin.io/v1",
                kind: "StyrminDeployment",
                name: "shop",
                uid: "uid-1",
            },
            deployment_id: "d-1",
            context,
            values,
            chart_repository: Some("http://styrmin:8080/charts/"),
            bundled_chart_name: Some("my-app"),
            suspend: false,
        }
    }

    fn kinds(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn a_bundled_chart_is_released_from_the_servers_repository() {
        let context = example(json!({}), json!({}));
        let values = json!({"server": {"replicas": 2}})
            .as_object()
            .cloned()
            .unwrap();
        let objects = render(&input(&context, &values)).unwrap();
        assert_eq!(
            kinds(&objects),
            [
                "HelmRepository/shop",
                "HelmRelease/shop",
                "Service/shop-my-app",
                "Service/shop-my-app-db",
                "NetworkPolicy/shop-environment-only"
            ]
        );
        let repo = &objects[0];
        assert_eq!(repo["spec"]["url"], "http://styrmin:8080/charts/");
        assert_eq!(repo["spec"]["secretRef"]["name"], CHART_CREDENTIALS_SECRET);
        let release = &objects[1];
        assert_eq!(release["spec"]["chart"]["spec"]["chart"], "my-app");
        assert_eq!(release["spec"]["chart"]["spec"]["version"], "1.4.0");
        assert_eq!(
            release["spec"]["values"],
            json!({"server": {"replicas": 2}})
        );
        assert_eq!(release["metadata"]["namespace"], "styrmin-prod");
        assert_eq!(release["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(release["metadata"]["labels"][DEPLOYMENT_LABEL], "d-1");
        // No fqdn_suffix: nothing is published.
        assert!(urls(&context).is_empty());
    }

    #[test]
    fn services_select_their_component_on_the_declared_port() {
        let context = example(json!({}), json!({}));
        let objects = render(&input(&context, &Map::new())).unwrap();
        let service = &context.services["my-app-db"];
        assert_eq!(service.name, "shop-my-app-db");
        let web = objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "shop-my-app-db")
            .unwrap();
        assert_eq!(web["spec"]["ports"][0]["port"], service.port);
        assert_eq!(web["spec"]["ports"][0]["targetPort"], service.port);
        assert_eq!(
            web["spec"]["selector"],
            json!(context.components[&service.component].labels)
        );
        // The selector holds the release: another deployment's pods are not selected.
        assert_eq!(
            web["spec"]["selector"][crate::naming::INSTANCE_LABEL],
            "shop"
        );
        assert_eq!(
            web["metadata"]["labels"][crate::naming::INSTANCE_LABEL],
            "shop"
        );
    }

    /// The policy selects every pod of the namespace (an empty pod selector, whatever
    /// labels the chart gives its pods) and admits the namespace itself, shared-ingress
    /// namespaces and the agent's namespace, nothing else.
    #[test]
    fn the_network_policy_covers_every_pod_of_the_namespace() {
        let context = example(json!({}), json!({}));
        let objects = render(&input(&context, &Map::new())).unwrap();
        let policy = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy")
            .unwrap();
        assert_eq!(
            policy["spec"],
            json!({
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [
                    {"podSelector": {}},
                    {"namespaceSelector": {"matchLabels": {INGRESS_NAMESPACE_LABEL: "true"}}},
                    {"namespaceSelector": {"matchLabels": {AGENT_NAMESPACE_LABEL: "true"}}},
                ]}],
            })
        );
    }

    #[test]
    fn external_services_get_ingresses_on_both_hosts_with_the_ip_allow_list() {
        let context = example(
            json!({"fqdn_suffix": "apps.example.com"}),
            json!({"ip_whitelist": ["10.0.0.0/8"]}),
        );
        let objects = render(&input(&context, &Map::new())).unwrap();
        let ingresses: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Ingress").collect();
        let external = context
            .services
            .values()
            .filter(|s| s.scope == ServiceScope::External)
            .count();
        assert_eq!(ingresses.len(), external);
        let ingress = ingresses[0];
        assert_eq!(ingress["spec"]["ingressClassName"], "traefik-prod");
        let hosts: Vec<&str> = ingress["spec"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["host"].as_str().unwrap())
            .collect();
        assert_eq!(hosts.len(), 2);
        assert!(
            hosts.iter().all(|h| h.ends_with(".apps.example.com")),
            "{hosts:?}"
        );
        let middleware = objects.iter().find(|o| o["kind"] == "Middleware").unwrap();
        assert_eq!(
            middleware["spec"]["ipAllowList"]["sourceRange"],
            json!(["10.0.0.0/8"])
        );
        assert_eq!(
            ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
            "styrmin-prod-shop-ip-allow-list@kubernetescrd"
        );
        assert_eq!(urls(&context).len(), 2 * external);

        // A shared ingress class instead of the environment's own controller.
        let shared = example(
            json!({"fqdn_suffix": "apps.example.com"}),
            json!({"ingress_class": "nginx"}),
        );
        let objects = render(&input(&shared, &Map::new())).unwrap();
        let ingress = objects.iter().find(|o| o["kind"] == "Ingress").unwrap();
        assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
        assert!(ingress["metadata"].get("annotations").is_none());
    }

    #[test]
    fn a_stopped_deployment_suspends_its_release_and_a_bundled_chart_needs_a_repository() {
        let context = example(json!({}), json!({}));
        let values = Map::new();
        let mut stopped = input(&context, &values);
        stopped.suspend = true;
        assert_eq!(render(&stopped).unwrap()[1]["spec"]["suspend"], true);
        stopped.chart_repository = None;
        assert_eq!(
            render(&stopped).unwrap_err(),
            RenderChildrenError::NoChartRepository
        );
    }
}
