//! The chart for real clusters (deploy/helm/styrmin) passes the real `helm lint`, renders
//! with `helm template`, refuses to render without the Secrets it needs (naming them),
//! grants the agent no more than it uses, and serves the agent's metrics on a pod port
//! that Prometheus finds by annotation. (The agent e2e installs it into the local cluster
//! and runs the agent with its service account.)

use std::path::{Path, PathBuf};
use std::process::Output;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/styrmin")
}

const REQUIRED: [&str; 6] = [
    "--set",
    "server.database.existingSecret=styrmin-db",
    "--set",
    "server.credentials.existingSecret=styrmin-credentials",
    "--set",
    "agent.token.existingSecret=styrmin-agent-token",
];

fn helm(args: &[&str]) -> Output {
    let helm = std::env::var("STYRMIN_HELM").expect("STYRMIN_HELM names the helm binary");
    std::process::Command::new(helm)
        .args(args)
        .output()
        .expect("helm runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` with the required Secrets and `extra` arguments: the rendered documents.
fn render(extra: &[&str]) -> Vec<serde_json::Value> {
    let chart = chart().display().to_string();
    let mut args = vec!["template", "styrmin", chart.as_str(), "--namespace", "ops"];
    args.extend(REQUIRED);
    args.extend(extra);
    let out = helm(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .split("\n---")
        .filter_map(|d| serde_yaml_ng::from_str::<serde_json::Value>(d).ok())
        .filter(|d| d.is_object())
        .collect()
}

#[test]
fn helm_lint_passes_with_the_required_secrets_named() {
    let chart = chart().display().to_string();
    let mut args = vec!["lint", "--strict", chart.as_str()];
    args.extend(REQUIRED);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn rendering_without_the_database_secret_says_what_is_missing() {
    let chart = chart().display().to_string();
    let out = helm(&["template", "styrmin", &chart]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("server.database.existingSecret must name a Secret"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_rendered_chart_wires_secrets_and_limits_the_agent() {
    let docs = render(&[]);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };

    let server = &find("Deployment", "styrmin-server")["spec"]["template"]["spec"];
    let env = server["containers"][0]["env"].as_array().unwrap();
    let from_secret = |var: &str| {
        env.iter().find(|e| e["name"] == var).unwrap()["valueFrom"]["secretKeyRef"]["name"].clone()
    };
    assert_eq!(from_secret("STYRMIN_DATABASE_URL"), "styrmin-db");
    assert_eq!(from_secret("STYRMIN_SECRET_KEY"), "styrmin-credentials");
    assert_eq!(server["securityContext"]["runAsNonRoot"], true);

    let agent = &find("Deployment", "styrmin-agent")["spec"]["template"]["spec"];
    let args = agent["containers"][0]["args"].to_string();
    assert!(
        args.contains("--server=http://styrmin-server.ops.svc:8080"),
        "{args}"
    );
    assert_eq!(agent["terminationGracePeriodSeconds"], 30);

    // No wildcard, and no deletes of namespaces or workloads.
    let role = find("ClusterRole", "styrmin-agent");
    for rule in role["rules"].as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(!rule[field].to_string().contains('*'), "{rule}");
        }
        let resources = rule["resources"].as_array().unwrap();
        if resources
            .iter()
            .any(|r| ["namespaces", "deployments", "statefulsets"].contains(&r.as_str().unwrap()))
        {
            assert!(!rule["verbs"].to_string().contains("delete"), "{rule}");
        }
    }
    assert_eq!(
        find("ClusterRoleBinding", "styrmin-agent")["subjects"][0]["namespace"],
        "ops"
    );
}

/// By default the agent serves `/metrics` on the pod's port 9090 (`--metrics-listen`), a
/// named container port that no Service exposes, with the prometheus.io annotations that
/// point a scraper at it; `agent.metrics.podAnnotations=false` leaves the annotations out,
/// `agent.metrics.enabled=false` all three.
#[test]
fn the_agent_serves_metrics_on_an_annotated_pod_port_unless_disabled() {
    let agent_pod = |docs: &[serde_json::Value]| {
        docs.iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "styrmin-agent")
            .expect("the agent's Deployment")["spec"]["template"]
            .clone()
    };
    let docs = render(&[]);
    let pod = agent_pod(&docs);
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--metrics-listen=0.0.0.0:9090"), "{args:?}");
    assert_eq!(
        container["ports"],
        serde_json::json!([{"name": "metrics", "containerPort": 9090}])
    );
    assert_eq!(
        pod["metadata"]["annotations"],
        serde_json::json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9090",
            "prometheus.io/path": "/metrics",
        })
    );
    for service in docs.iter().filter(|d| d["kind"] == "Service") {
        assert!(
            !service["spec"].to_string().contains("9090")
                && service["spec"]["selector"]["app.kubernetes.io/component"] != "agent",
            "{service}"
        );
    }

    let pod = agent_pod(&render(&["--set", "agent.metrics.podAnnotations=false"]));
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        9090
    );
    assert!(pod["metadata"]["annotations"].is_null(), "{pod}");

    let pod = agent_pod(&render(&["--set", "agent.metrics.enabled=false"]));
    let container = &pod["spec"]["containers"][0];
    assert!(
        !container["args"].to_string().contains("--metrics-listen"),
        "{}",
        container["args"]
    );
    assert!(container["ports"].is_null(), "{}", container["ports"]);
    assert!(pod["metadata"]["annotations"].is_null(), "{pod}");
}
