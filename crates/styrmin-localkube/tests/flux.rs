//! The Flux stand-in: a HelmRelease of the example driver's chart, with the values the
//! driver renders, is installed by the real helm and reported the way Flux reports it.
//!
//! Needs the kube binaries and helm (STYRMIN_HELM), both installed by scripts/test.sh.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{create_namespace, eventually};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use styrmin_bundle::Bundle;
use styrmin_core::context::{self, SampleSettings};
use styrmin_core::driver;
use styrmin_localkube::flux::{helm_release_resource, helm_repository_resource};
use styrmin_localkube::{LocalCluster, Options};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn helm() -> PathBuf {
    let helm = std::env::var_os("STYRMIN_HELM").map(PathBuf::from).expect(
        "STYRMIN_HELM must name the helm binary: run scripts/test.sh, which installs helm 3.6.2",
    );
    assert!(
        helm.is_file(),
        "STYRMIN_HELM={} does not exist",
        helm.display()
    );
    helm
}

/// The example chart, packaged and indexed as a chart repository directory.
async fn chart_repository(dir: &Path) {
    let chart = repo().join("drivers/examples/my-app/chart");
    for args in [
        vec![
            "package".into(),
            chart.display().to_string(),
            "-d".into(),
            dir.display().to_string(),
        ],
        vec!["repo".into(), "index".into(), dir.display().to_string()],
    ] {
        let out = tokio::process::Command::new(helm())
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The Helm values the example driver renders for a deployment in `dev`.
fn rendered_values(replicas: i64) -> Value {
    let bundle = Bundle::read_dir(&repo().join("drivers/examples/my-app")).unwrap();
    let loaded = driver::load(&bundle.driver_files().unwrap());
    let driver = loaded.driver.expect("the example driver is valid");
    let settings = SampleSettings {
        parameters: BTreeMap::from([
            ("admin_email".to_owned(), json!("ops@example.com")),
            ("replicas".to_owned(), json!(replicas)),
        ]),
        ..SampleSettings::default()
    };
    let ctx = context::sample(&driver.spec, "2.3.1", &settings).unwrap();
    let rendered =
        styrmin_core::render_values(driver.values_template.as_deref(), &ctx.to_value()).unwrap();
    Value::Object(rendered.values)
}

fn condition<'a>(object: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn helm_release(name: &str, values: Value) -> DynamicObject {
    let mut object = DynamicObject::new(name, &helm_release_resource());
    object.data = json!({"spec": {
        "interval": "5m",
        "timeout": "60s",
        "chart": {"spec": {"chart": "my-app", "version": "1.4.0", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
        "values": values
    }});
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_release_installs_upgrades_suspends_fails_like_flux_and_uninstalls() {
    let mut cluster = LocalCluster::start(Options {
        helm: Some(helm()),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let charts = cluster.dir().join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    chart_repository(&charts).await;
    let url = cluster.serve_charts(charts).await.unwrap();

    let ns = "styrmin-dev";
    create_namespace(&client, ns).await;
    let repositories: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &helm_repository_resource());
    let mut repository = DynamicObject::new("charts", &helm_repository_resource());
    repository.data = json!({"spec": {"url": url, "interval": "5m"}});
    repositories
        .create(&PostParams::default(), &repository)
        .await
        .unwrap();
    eventually(
        "the HelmRepository Ready",
        Duration::from_secs(30),
        || async {
            let r = repositories.get("charts").await.ok()?;
            (condition(&r, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await;

    // Install: the chart's workloads run and the release reports Ready like Flux.
    let releases: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &helm_release_resource());
    releases
        .create(
            &PostParams::default(),
            &helm_release("my-app", rendered_values(2)),
        )
        .await
        .unwrap();
    let installed = eventually(
        "the HelmRelease Ready",
        Duration::from_secs(120),
        || async {
            let r = releases.get("my-app").await.ok()?;
            let ready = condition(&r, "Ready")?.clone();
            (ready["status"] != "Unknown").then_some(r)
        },
    )
    .await;
    let ready = condition(&installed, "Ready").unwrap();
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(ready["reason"], "InstallSucceeded");
    assert_eq!(condition(&installed, "Released").unwrap()["status"], "True");
    assert_eq!(installed.data["status"]["lastAppliedRevision"], "1.4.0");
    assert!(
        installed
            .finalizers()
            .iter()
            .any(|f| f == "finalizers.fluxcd.io")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let server = deployments.get("my-app-server").await.unwrap();
    assert_eq!(server.status.unwrap().ready_replicas, Some(2));
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    assert_eq!(
        statefulsets
            .get("my-app-postgresql")
            .await
            .unwrap()
            .status
            .unwrap()
            .ready_replicas,
        Some(1)
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let claim = &claims.list(&Default::default()).await.unwrap().items[0];
    assert_eq!(
        claim.status.as_ref().unwrap().phase.as_deref(),
        Some("Bound")
    );

    // Upgrade: new values, a new generation, the release follows.
    releases
        .patch(
            "my-app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": rendered_values(3)}})),
        )
        .await
        .unwrap();
    eventually("the upgrade applied", Duration::from_secs(120), || async {
        let r = releases.get("my-app").await.ok()?;
        let reason = condition(&r, "Ready")?["reason"].clone();
        (reason == "UpgradeSucceeded"
            && deployments
                .get("my-app-server")
                .await
                .ok()?
                .status?
                .ready_replicas
                == Some(3))
        .then_some(())
    })
    .await;

    // Suspended: changes wait. The suspend patch reaches the stand-in's watch before the
    // next release is created, so once that one has been handled, so has this.
    releases
        .patch(
            "my-app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true, "values": rendered_values(1)}})),
        )
        .await
        .unwrap();
    let generation = releases.get("my-app").await.unwrap().metadata.generation;

    // A values error: Ready=False with Flux's reason and helm's message.
    let mut broken = rendered_values(1);
    broken["server"]["replicas"] = json!("two");
    releases
        .create(&PostParams::default(), &helm_release("broken", broken))
        .await
        .unwrap();
    let failed = eventually(
        "the broken release failed",
        Duration::from_secs(120),
        || async {
            let r = releases.get("broken").await.ok()?;
            let ready = condition(&r, "Ready")?.clone();
            (ready["status"] == "False").then_some(ready)
        },
    )
    .await;
    assert_eq!(failed["reason"], "InstallFailed");
    assert!(
        failed["message"].as_str().unwrap().contains("replicas"),
        "{failed}"
    );

    let suspended = releases.get("my-app").await.unwrap();
    assert_ne!(
        suspended.data["status"]["lastAttemptedGeneration"].as_i64(),
        generation
    );
    assert_eq!(
        deployments
            .get("my-app-server")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );

    // Deleting the HelmRelease uninstalls the release.
    releases
        .delete("my-app", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the release uninstalled and the object gone",
        Duration::from_secs(60),
        || async {
            let gone = releases.get_opt("my-app").await.ok()?.is_none();
            let uninstalled = deployments.get_opt("my-app-server").await.ok()?.is_none();
            (gone && uninstalled).then_some(())
        },
    )
    .await;
    cluster.stop().await;
}

/// Scale mode: releases are rendered with `helm template` and applied without a helm
/// release record or `helm --wait`. Two releases of one chart with the same values in two
/// namespaces both become Ready with their own objects (the shared render gives each its
/// own names), an upgrade changes what was applied, and deleting a release
/// deletes its objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_mode_renders_applies_prunes_and_deletes_without_helm_releases() {
    let mut cluster = LocalCluster::start(Options {
        helm: Some(helm()),
        flux_mode: styrmin_localkube::flux::ReleaseMode::Template,
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let charts = cluster.dir().join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    chart_repository(&charts).await;
    let url = cluster.serve_charts(charts).await.unwrap();

    for ns in ["styrmin-a", "styrmin-b"] {
        create_namespace(&client, ns).await;
        let repositories: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &helm_repository_resource());
        let mut repository = DynamicObject::new("charts", &helm_repository_resource());
        repository.data = json!({"spec": {"url": url, "interval": "5m"}});
        repositories
            .create(&PostParams::default(), &repository)
            .await
            .unwrap();
        let releases: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &helm_release_resource());
        releases
            .create(
                &PostParams::default(),
                &helm_release("my-app", rendered_values(2)),
            )
            .await
            .unwrap();
    }
    for ns in ["styrmin-a", "styrmin-b"] {
        let releases: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &helm_release_resource());
        let installed = eventually("the release Ready", Duration::from_secs(120), || async {
            let r = releases.get("my-app").await.ok()?;
            (condition(&r, "Ready")?["status"] == "True").then_some(r)
        })
        .await;
        assert_eq!(
            condition(&installed, "Ready").unwrap()["reason"],
            "InstallSucceeded"
        );
        let inventory = installed.data["status"]["inventory"].as_array().unwrap();
        assert!(
            inventory.iter().any(|e| e["kind"] == "Deployment"
                && e["name"] == "my-app-server"
                && e["namespace"] == ns),
            "{inventory:?}"
        );
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let server = eventually("the server running", Duration::from_secs(60), || async {
            let d = deployments.get("my-app-server").await.ok()?;
            (d.status.as_ref()?.ready_replicas == Some(2)).then_some(d)
        })
        .await;
        assert_eq!(server.labels()["helm.toolkit.fluxcd.io/name"], "my-app");
        assert_eq!(
            server.annotations()["meta.helm.sh/release-namespace"],
            ns,
            "the shared render carries this release's own namespace"
        );
    }
    // No helm release record: helm itself knows of none.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "styrmin-a");
    let records = secrets
        .list(&kube::api::ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(
        records.items.is_empty(),
        "helm release records were written"
    );

    // Upgrade: new values reach the workload.
    let releases: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "styrmin-a", &helm_release_resource());
    releases
        .patch(
            "my-app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": rendered_values(3)}})),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "styrmin-a");
    eventually("the upgrade applied", Duration::from_secs(120), || async {
        let r = releases.get("my-app").await.ok()?;
        (condition(&r, "Ready")?["reason"] == "UpgradeSucceeded"
            && deployments.get("my-app-server").await.ok()?.spec?.replicas == Some(3))
        .then_some(())
    })
    .await;

    // Deleting the release deletes what it applied.
    releases
        .delete("my-app", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the objects gone", Duration::from_secs(60), || async {
        (deployments.get_opt("my-app-server").await.ok()?.is_none()
            && releases.get_opt("my-app").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    cluster.stop().await;
}
