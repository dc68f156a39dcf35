//! The chart repository at /charts/: a chart shipped inside a driver is packaged when the
//! driver loads and installs with the real helm client from the server, as a cluster's
//! Flux will fetch it; its runs point at it.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use styrmin_client::ErrorKind;
use styrmin_testkit::*;

fn run_helm(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(helm())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundled_chart_is_served_as_a_helm_repository() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let repo = format!("{}/charts", h.server.url());

    // Without a token the repository answers 401; helm sends the token as a password.
    let anonymous = reqwest::get(format!("{repo}/index.yaml")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let agent_token = h.agent_token("c1").await;
    let agent = h.client(&agent_token);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let pulled = run_helm(
        home.path(),
        &[
            "pull",
            "my-app",
            "--repo",
            &repo,
            "--version",
            "1.4.0",
            "--username",
            "agent",
            "--password",
            &agent_token,
            "-d",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        pulled.status.success(),
        "helm pull: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let archive = out.join("my-app-1.4.0.tgz");
    let rendered = run_helm(
        home.path(),
        &[
            "template",
            "shop",
            archive.to_str().unwrap(),
            "--set",
            "server.adminEmail=a@b.c",
        ],
    );
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("name: shop-my-app-server"));

    // The index names the archive by digest, as helm checks it.
    let index = chart_index(&h).await;
    let digest = sha256_hex(&std::fs::read(&archive).unwrap());
    assert!(index.contains(&digest), "{index}");

    // The driver's runs tell the agent where the chart is.
    create_example(&h.admin, &env, "shop").await;
    let run = claim(&agent, 1, 0.0).await.remove(0);
    assert_eq!(run["payload"]["chartRepository"], json!(format!("{repo}/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_chart_needs_a_new_version() {
    let h = Harness::new(Kind::Sqlite).await;
    let driver = example_driver_copy();
    let load = "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }";
    let path = json!({"p": driver.path().display().to_string()});
    ok(&h.admin, load, path.clone()).await;

    // Same chart version, other content (and a new driver digest): refused, nothing stored.
    let notes = driver.path().join("chart/templates/NOTES.txt");
    std::fs::write(&notes, "changed notes\n").unwrap();
    let before = h.row_counts().await;
    let e = fails_with(&h.admin, ErrorKind::Validation, load, path.clone()).await;
    assert_eq!(e.fields[0].field, "spec.helm.main.version");
    assert!(e.fields[0].message.contains("new version"), "{e}");
    assert_eq!(h.row_counts().await, before);

    // A new chart version, in Chart.yaml and the driver: both versions are served.
    for file in ["chart/Chart.yaml", "driver.styrmin.yml"] {
        let p = driver.path().join(file);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("1.4.0", "1.4.1");
        std::fs::write(&p, text).unwrap();
    }
    ok(&h.admin, load, path.clone()).await;
    let index = chart_index(&h).await;
    assert!(
        index.contains("version: 1.4.0") && index.contains("version: 1.4.1"),
        "{index}"
    );

    // Chart.yaml and helm.main.version must agree.
    let p = driver.path().join("chart/Chart.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("1.4.1", "1.5.0");
    std::fs::write(&p, text).unwrap();
    let e = fails_with(&h.admin, ErrorKind::Validation, load, path).await;
    assert!(e.to_string().contains("must agree"), "{e}");
}

/// A cluster's chart-pull token (derived from its agent token, as the agent derives it)
/// reads the chart repository and nothing else: every GraphQL operation, an agent's
/// included, is refused; it cannot be made by hand; rotating the agent token replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_pull_token_reads_charts_and_nothing_else() {
    let h = Harness::new(Kind::Sqlite).await;
    h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let agent_token = h.agent_token("c1").await;
    let charts = styrmin_core::protocol::chart_pull_token(&agent_token);
    assert_ne!(charts, agent_token);
    let index = |token: String| {
        let url = format!("{}/charts/index.yaml", h.server.url());
        async move {
            reqwest::Client::new()
                .get(url)
                .basic_auth("styrmin-charts", Some(token))
                .send()
                .await
                .unwrap()
        }
    };
    let answer = index(charts.clone()).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains("my-app"));

    let puller = h.client(&charts);
    for query in [
        "{ clusters { id } }",
        "{ deployments { id } }",
        "{ tokens { name } }",
        "mutation { claimFlowRuns(max: 1, waitSeconds: 0, agentVersion: \"t\", protocolVersion: \"1.0\") { id } }",
    ] {
        fails_with(&puller, ErrorKind::Forbidden, query, json!({})).await;
    }
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation { createToken(name: \"mine\", role: charts) { secret } }",
        json!({}),
    )
    .await;
    assert_eq!(e.fields[0].field, "role");

    // Rotation: the old chart-pull token stops working, the new one works.
    let rotated = h.agent_token("c1").await;
    assert_eq!(index(charts).await.status(), 401);
    let fresh = styrmin_core::protocol::chart_pull_token(&rotated);
    assert_eq!(index(fresh).await.status(), 200);
}

/// The repository's `index.yaml`, as the admin reads it.
async fn chart_index(h: &Harness) -> String {
    reqwest::Client::new()
        .get(format!("{}/charts/index.yaml", h.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
