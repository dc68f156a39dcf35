//! `styrminctl drivers lint|render`, driven as a driver author drives them: through the
//! binary, on real directories, with exit codes and printed output checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use styrmin_testkit::{copy_dir, helm, repo_root};

fn styrminctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_styrminctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("styrminctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Each directory under fixtures/broken-drivers holds a driver with several mistakes and
/// `expected.txt`, the exact lint report (file:line:column, field, message) and exit code.
#[test]
fn lint_reports_every_mistake_of_each_broken_driver_with_its_position() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken-drivers");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "the fixture set shrank: {cases:?}");
    let mut mismatches = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let out = styrminctl(&fixtures, &["drivers", "lint", name]);
        let actual = format!("{}exit {}\n", stdout(&out), out.status.code().unwrap());
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        if actual != expected {
            mismatches.push(format!(
                "--- {name}: expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_bundled_drivers_lint_clean() {
    for driver in ["drivers/examples/my-app", "drivers/traefik"] {
        let out = styrminctl(&repo_root(), &["drivers", "lint", driver]);
        assert!(
            out.status.success(),
            "{driver}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).ends_with(": ok, 0 error(s), 0 warning(s)\n"),
            "{driver}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn lint_as_json_lists_diagnostics_with_fields_and_positions() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken-drivers");
    let out = styrminctl(&fixtures, &["drivers", "lint", "versions", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], json!(false));
    assert_eq!(
        report["diagnostics"][0],
        json!({"severity": "error", "file": "driver.styrmin.yml", "line": 5, "column": 12,
               "field": "spec.version", "message": "must not be empty"})
    );
}

#[test]
fn lint_strict_fails_on_warnings_only() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken-drivers");
    let lenient = styrminctl(&fixtures, &["drivers", "lint", "template-references"]);
    let strict = styrminctl(
        &fixtures,
        &["drivers", "lint", "--strict", "template-references"],
    );
    assert_eq!(lenient.status.code(), Some(0));
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn lint_of_a_directory_without_a_driver_is_a_clear_failure_to_run() {
    let out = styrminctl(&repo_root(), &["drivers", "lint", "docs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: docs has no driver.styrmin.yml"),
        "{}",
        stderr(&out)
    );
}

fn render_example(extra: &[&str]) -> Output {
    let mut args = vec!["drivers", "render", "drivers/examples/my-app"];
    args.extend_from_slice(extra);
    styrminctl(&repo_root(), &args)
}

#[test]
fn render_builds_a_sample_context_from_parameters_and_config() {
    let out = render_example(&[
        "--app-version",
        "2.4.0",
        "-p",
        "admin_email=ops@example.com",
        "-p",
        "replicas=3",
        "--cluster-config",
        r#"{"fqdn_suffix": "apps.example.com", "standard_storage": {"storage_class": "fast"}}"#,
        "--environment",
        "prod",
        "--env",
        "server.FEATURE_FLAGS=a,b",
        "--command",
        r#"server=["my-app", "serve"]"#,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let values: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(values["server"]["replicas"], json!(3));
    assert_eq!(values["server"]["image"]["tag"], json!("2.4.0"));
    assert_eq!(
        values["server"]["extraEnv"],
        json!([{"name": "FEATURE_FLAGS", "value": "a,b"}])
    );
    assert_eq!(values["server"]["command"], json!(["my-app", "serve"]));
    assert_eq!(values["server"]["args"], json!([]));
    assert_eq!(
        values["postgresql"]["storage"]["storageClass"],
        json!("fast")
    );
    let hosts = values["ingress"]["hosts"].as_array().unwrap();
    assert!(
        hosts.contains(&json!("my-app-prod.apps.example.com")),
        "{hosts:?}"
    );
}

#[test]
fn render_with_a_context_file_uses_exactly_that_context() {
    let dir = std::env::temp_dir().join(format!("styrmin-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Take the sample context, change it, and render with the file.
    let shown = render_example(&[
        "-p",
        "admin_email=a@example.com",
        "--show-context",
        "-o",
        "json",
    ]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let mut context: Value = serde_json::from_slice(&shown.stdout).unwrap();
    context["parameters"]["replicas"] = json!(7);
    context["app"]["version"] = json!("2.9.9");
    let path = dir.join("context.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&context).unwrap()).unwrap();
    let out = render_example(&["--context", path.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let values: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(values["server"]["replicas"], json!(7));
    assert_eq!(values["server"]["image"]["tag"], json!("2.9.9"));

    // A context missing a key is refused, naming what is missing.
    context.as_object_mut().unwrap().remove("services");
    std::fs::write(&path, serde_json::to_string(&context).unwrap()).unwrap();
    let out = render_example(&["--context", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing field `services`"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A Context file's maps reach the template in the file's order, as Python's json.load
/// keeps them, not sorted.
#[test]
fn render_with_a_context_file_keeps_the_files_key_order() {
    let dir = std::env::temp_dir().join(format!("styrmin-render-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(
        &repo_root().join("drivers/examples/my-app"),
        &dir.join("driver"),
    );
    let template = dir.join("driver/values.j2.yml");
    let mut source = std::fs::read_to_string(&template).unwrap();
    source.push_str("\norder: \"{% for k in deployment.config %}{{ k }},{% endfor %}\"\n");
    std::fs::write(&template, source).unwrap();
    let shown = render_example(&[
        "-p",
        "admin_email=a@example.com",
        "--show-context",
        "-o",
        "json",
    ]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let mut context: Value = serde_json::from_slice(&shown.stdout).unwrap();
    // serde_json writes keys sorted: the unsorted map is spliced into the text.
    context["deployment"]["config"] = json!("SPLICE");
    let text = serde_json::to_string(&context)
        .unwrap()
        .replace("\"SPLICE\"", "{\"zeta\": 1, \"alpha\": 2, \"mid\": 3}");
    let path = dir.join("context.json");
    std::fs::write(&path, text).unwrap();
    let out = styrminctl(
        &dir,
        &[
            "drivers",
            "render",
            "driver",
            "--context",
            path.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let values: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(values["order"], json!("zeta,alpha,mid,"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn render_rejects_wrong_parameters_naming_each_one() {
    let out = render_example(&[
        "-p",
        "replicas=two",
        "-p",
        "log_level=loud",
        "-p",
        "replicsa=1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "parameters.replicsa: the driver declares no parameter `replicsa`; did you mean `replicas`?",
        "parameters.replicas: expected an integer, found \"two\"",
        "parameters.log_level: \"loud\" is not one of: debug, info, warning, error",
        "parameters.admin_email: required: the driver gives no default",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn render_refuses_an_application_version_outside_supported_versions() {
    let out = render_example(&["--app-version", "3.0.0", "-p", "admin_email=a@example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "app_version: 3.0.0 is outside the versions driver my-app 1 supports (>=2.0,<3.0)"
        ),
        "{}",
        stderr(&out)
    );
}

/// The driver ↔ chart contract: the rendered values drive the chart shipped with the driver.
#[test]
fn the_example_chart_renders_with_the_rendered_values_under_real_helm() {
    let helm = helm();
    let dir = std::env::temp_dir().join(format!("styrmin-helm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = render_example(&[
        "-p",
        "admin_email=ops@example.com",
        "-p",
        "replicas=3",
        "--cluster-config",
        r#"{"fqdn_suffix": "apps.example.com"}"#,
        "--environment-config",
        r#"{"ingress_class": "traefik-dev"}"#,
        "--env",
        "server.FEATURE_FLAGS=a,b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let values = dir.join("values.yaml");
    std::fs::write(&values, &out.stdout).unwrap();
    let chart = repo_root().join("drivers/examples/my-app/chart");
    let rendered = Command::new(&helm)
        .args([
            "template",
            "my-app",
            chart.to_str().unwrap(),
            "--namespace",
            "styrmin-dev",
            "-f",
        ])
        .arg(&values)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "helm template failed: {}",
        stderr(&rendered)
    );
    let manifests = stdout(&rendered);
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&manifests)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &serde_yaml_ng::Value| !d.is_null())
        .collect();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} in:\n{manifests}"))
    };
    let server = find("Deployment");
    assert_eq!(server["spec"]["replicas"].as_u64(), Some(3));
    assert_eq!(
        server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str(),
        Some("server")
    );
    let container = &server["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["image"].as_str().unwrap().ends_with(":2.3.1"),
        "{container:?}"
    );
    assert!(manifests.contains("FEATURE_FLAGS"), "{manifests}");
    let ingress = find("Ingress");
    assert_eq!(
        ingress["spec"]["ingressClassName"].as_str(),
        Some("traefik-dev")
    );
    assert!(manifests.contains("my-app-dev.apps.example.com"));
    let db = find("StatefulSet");
    assert_eq!(
        db["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str(),
        Some("postgresql")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
