//! The local cluster: a real control plane that real clients (kubectl, kube-rs) use
//! unchanged, with simulated nodes that make workloads run.
//!
//! Needs the binaries from scripts/kube-binaries.sh (scripts/test.sh builds them).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_namespace, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use styrmin_localkube::{LocalCluster, Options, nodes};

async fn cluster() -> LocalCluster {
    LocalCluster::start(Options::default())
        .await
        .expect("the local cluster starts")
}

/// The machine's real kubectl, run without blocking the runtime the simulators live on.
async fn kubectl_output(cluster: &LocalCluster, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(args)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 60 s"))
        .expect("kubectl is installed")
}

async fn kubectl(cluster: &LocalCluster, args: &[&str]) -> String {
    let out = kubectl_output(cluster, args).await;
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_reads_and_server_side_applies() {
    let cluster = cluster().await;
    let version = kubectl(&cluster, &["version", "-o", "json"]).await;
    assert!(version.contains("\"gitVersion\": \"v1.20.2\""), "{version}");
    assert!(
        kubectl(&cluster, &["get", "namespaces"])
            .await
            .contains("default")
    );

    let manifest = cluster.dir().join("cm.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting, namespace: default}\ndata: {hello: world}\n").unwrap();
    let applied = kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager=test",
            "-f",
            manifest.to_str().unwrap(),
        ],
    )
    .await;
    assert!(applied.contains("serverside-applied"), "{applied}");
    let value = kubectl(
        &cluster,
        &[
            "get",
            "configmap",
            "greeting",
            "-o",
            "jsonpath={.data.hello}",
        ],
    )
    .await;
    assert_eq!(value, "world");
    // The CRDs of Flux, Velero and Traefik are served.
    let resources = kubectl(&cluster, &["api-resources", "-o", "name"]).await;
    for crd in [
        "helmreleases.helm.toolkit.fluxcd.io",
        "backups.velero.io",
        "middlewares.traefik.io",
    ] {
        assert!(resources.contains(crd), "{crd} missing in:\n{resources}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_scales_to_zero_and_goes_with_its_namespace() {
    let cluster = cluster().await;
    let client = cluster.client();
    create_namespace(&client, "shop").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let deployment = json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}
            }
        }
    });
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();
    eventually("3 ready replicas", Duration::from_secs(60), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    for pod in &listed.items {
        let status = pod.status.clone().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.unwrap().starts_with("127."));
        assert!(
            pod.spec
                .as_ref()
                .unwrap()
                .node_name
                .as_deref()
                .unwrap()
                .starts_with("sim-node-")
        );
    }

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    eventually(
        "no pods after scaling to 0",
        Duration::from_secs(60),
        || async {
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            left.items.is_empty().then_some(())
        },
    )
    .await;

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("1 ready replica again", Duration::from_secs(60), || async {
        (deployments.get("web").await.ok()?.status?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the namespace and everything in it gone",
        Duration::from_secs(90),
        || async {
            match namespaces.get_opt("shop").await {
                Ok(None) => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let everywhere: Api<Pod> = Api::all(client);
    assert!(
        everywhere
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    cluster.stop().await;
}

fn pod(name: &str, annotations: serde_json::Value, restart_policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": "main", "image": "example/x:1"}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_annotations_steer_the_simulated_kubelet() {
    let cluster = cluster().await;
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = Instant::now();
    for p in [
        pod("late", json!({nodes::START_DELAY: "1500ms"}), "Always"),
        pod("stuck", json!({nodes::NEVER_READY: "true"}), "Always"),
        pod("crashy", json!({nodes::CRASH_LOOP: "true"}), "Always"),
        pod("fails", json!({nodes::EXIT_CODE: "3"}), "Never"),
    ] {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    eventually("the delayed pod ready", Duration::from_secs(30), || async {
        ready(&pods.get("late").await.ok()?).then_some(())
    })
    .await;
    assert!(
        created.elapsed() >= Duration::from_millis(1500),
        "started before its delay"
    );

    let stuck = eventually(
        "the never-ready pod running",
        Duration::from_secs(30),
        || async {
            let p = pods.get("stuck").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        },
    )
    .await;
    assert!(!ready(&stuck));

    eventually(
        "the crash-looping pod restarted twice",
        Duration::from_secs(30),
        || async {
            let p = pods.get("crashy").await.ok()?;
            let status = p.status?.container_statuses?.into_iter().next()?;
            let waiting = status.state?.waiting?.reason;
            (status.restart_count >= 2 && waiting.as_deref() == Some("CrashLoopBackOff"))
                .then_some(())
        },
    )
    .await;

    let failed = eventually(
        "the failing pod terminated",
        Duration::from_secs(30),
        || async {
            let p = pods.get("fails").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
        },
    )
    .await;
    let terminated = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(terminated.exit_code, 3);

    // A Job runs to completion through the real Job controller.
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let job = json!({
        "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "example/m:1"}]}}}
    });
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job).unwrap(),
    )
    .await
    .unwrap();
    eventually("the Job complete", Duration::from_secs(60), || async {
        (jobs.get("migrate").await.ok()?.status?.succeeded == Some(1)).then_some(())
    })
    .await;
    cluster.stop().await;
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.styrmin.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    size: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
struct WidgetStatus {
    doubled: u32,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_rs_controller_reconciles_a_crd_and_writes_its_status() {
    let cluster = cluster().await;
    let client = cluster.client();
    let crd = serde_yaml_ng::to_string(&Widget::crd()).unwrap();
    styrmin_localkube::crds::install_all(
        &client,
        [("widgets.test.styrmin.io", crd.as_str())].into_iter(),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .unwrap();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(
            |widget: Arc<Widget>, api: Arc<Api<Widget>>| async move {
                let status = json!({"status": {"doubled": widget.spec.size * 2}});
                api.patch_status(
                    &widget.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await?;
                Ok::<_, ReconcileError>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            Arc::new(widgets.clone()),
        )
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w", WidgetSpec { size: 21 }),
        )
        .await
        .unwrap();
    eventually(
        "the status written by the controller",
        Duration::from_secs(30),
        || async { (widgets.get("w").await.ok()?.status?.doubled == 42).then_some(()) },
    )
    .await;
    controller.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_run_side_by_side_and_leave_no_process_behind() {
    let options = Options {
        nodes: 0,
        controller_manager: false,
        ..Options::default()
    };
    let started = Instant::now();
    let (a, b) = tokio::join!(
        LocalCluster::start(options.clone()),
        LocalCluster::start(options)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    eprintln!("two clusters ready in {:?}", started.elapsed());
    assert_ne!(a.server_url(), b.server_url());
    create_namespace(&a.client(), "only-in-a").await;
    let in_b: Api<Namespace> = Api::all(b.client());
    assert!(in_b.get_opt("only-in-a").await.unwrap().is_none());

    let pids = a.pids();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    drop(a); // no graceful stop: dropping must not leave processes behind
    eventually(
        "the dropped cluster's processes gone",
        Duration::from_secs(10),
        || async {
            pids.iter()
                .all(|pid| {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    // gone, or a zombie awaiting its reaper
                    stat.is_empty() || stat.split(' ').nth(2) == Some("Z")
                })
                .then_some(())
        },
    )
    .await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_on_the_host_with_the_container_environment_for_kubectl_and_kube_rs() {
    use kube::api::AttachParams;
    use tokio::io::AsyncReadExt;

    let cluster = cluster().await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"containers": [{"name": "postgres", "image": "postgres:16", "env": [{"name": "GREETING", "value": "hello from the pod"}]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("the pod running", Duration::from_secs(30), || async {
        (pods.get("db").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    // kubectl: stdout, stderr, the exit code, and a side effect in the pod's directory.
    let out = kubectl_output(
        &cluster,
        &[
            "exec",
            "db",
            "-c",
            "postgres",
            "--",
            "sh",
            "-c",
            "echo \"$GREETING\" > note.txt; echo out; echo err >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = std::fs::read_to_string(cluster.pods_dir().join("default/db/note.txt")).unwrap();
    assert_eq!(note, "hello from the pod\n");

    // kube-rs: the same path, with stdin.
    let mut process = pods
        .exec(
            "db",
            ["sh", "-c", "cat; echo \" and $GREETING\""],
            &AttachParams::default().container("postgres").stdin(true),
        )
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"piped in")
        .await
        .unwrap();
    // kube-rs signals end of input (v5 close-channel) on shutdown, not on drop.
    tokio::io::AsyncWriteExt::shutdown(&mut stdin)
        .await
        .unwrap();
    let mut stdout = String::new();
    process
        .stdout()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = process.take_status().unwrap().await.unwrap();
    assert_eq!(stdout, "piped in and hello from the pod\n");
    assert_eq!(status.status.as_deref(), Some("Success"));
    cluster.stop().await;
}
