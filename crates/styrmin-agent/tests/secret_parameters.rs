//! Secret parameters on the local cluster (SPEC §8): a deployment of a driver with a
//! `secret` parameter reaches RUNNING with its value in a Secret the agent wrote in the
//! namespace, which the chart reads by reference; a new value re-plans the deployment into
//! a new Secret and the old one goes. The values are then searched for everywhere a person
//! or a cluster reader could see them: every API answer about the deployment (its
//! Instances, runs, payloads and run logs), the audit log, every log line this process
//! wrote (server and agent), and every object of every kind in the cluster except Secrets
//! (as `kubectl get -o yaml` would show them), in plain text and in base64. Found nowhere.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, verbs};
use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_server::Settings;
use styrmin_testkit::cluster::{LocalStack, helm_releases};
use styrmin_testkit::{ok, secret_driver_copy, wait_until};

/// Every log line of the process, kept to be searched.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn settled(admin: &Client, id: &str, kind: &str) -> Value {
    wait_until(
        &format!("the {kind} run completed and the deployment RUNNING"),
        Duration::from_secs(240),
        Duration::from_millis(250),
        || async {
            let d = ok(admin, "query($id: ID!) { deployment(id: $id) { status { status } flowRuns { kind state error } activeInstance { context } } }", json!({"id": id})).await["deployment"].clone();
            let run = &d["flowRuns"][0];
            assert_ne!(run["state"], "failed", "{d}");
            if run["kind"] == kind && run["state"] == "completed" && d["status"]["status"] == "RUNNING" {
                Ok(d)
            } else {
                Err(d)
            }
        },
    )
    .await
}

/// The Secret the active Instance refers to for `password`.
fn secret_name(d: &Value) -> String {
    d["activeInstance"]["context"]["parameters"]["password"]["secretRef"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret reference in {d}"))
        .to_owned()
}

async fn secret_value(secrets: &Api<Secret>, name: &str) -> String {
    let secret = secrets.get(name).await.unwrap();
    String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap()
}

/// Every object of every listable kind in the cluster but Secrets, as JSON text.
async fn every_non_secret_object(kube: &kube::Client) -> Vec<(String, String)> {
    let discovery = Discovery::new(kube.clone()).run().await.unwrap();
    let mut objects = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if resource.kind == "Secret" || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(kube.clone(), &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for object in list {
                let name = format!(
                    "{}/{}/{}",
                    resource.kind,
                    object.metadata.namespace.clone().unwrap_or_default(),
                    object.metadata.name.clone().unwrap_or_default()
                );
                objects.push((name, serde_json::to_string(&object).unwrap()));
            }
        }
    }
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_parameter_reaches_the_cluster_as_a_secret_and_nowhere_else() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test owns the process's log");
    let stack = LocalStack::start(Settings::default(), json!({})).await;
    let admin = stack.admin.clone();
    let kube = stack.cluster.client();
    let driver = secret_driver_copy();
    ok(
        &admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await;
    let agent = stack.agent_in_process(kube.clone(), |config| {
        config.snapshot_interval = Duration::from_secs(2);
        config.core_timeout = Duration::from_secs(120);
    });
    let (first, second) = ("first-Secret-5d0c2e", "second-Secret-a47f19");

    let created = ok(&admin, "mutation($s: JSON) { createDeployment(driver: \"my-app-secret\", appVersion: \"2.3.1\", environmentId: \"dev\", name: \"shop\", parameters: {admin_email: \"ops@example.com\", replicas: 1}, secretParameters: $s) { deployment { id } } }", json!({"s": {"password": first}})).await;
    let id = created["createDeployment"]["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = settled(&admin, &id, "create").await;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), "styrmin-dev");
    let first_secret = secret_name(&d);
    assert_eq!(secret_value(&secrets, &first_secret).await, first);
    // The chart reads the value by reference.
    let release = helm_releases(&kube, "styrmin-dev")
        .get("shop")
        .await
        .unwrap();
    assert_eq!(
        release.data["spec"]["values"]["postgresql"]["existingSecret"],
        first_secret.as_str()
    );

    // A new value: an update, a new Secret, the old one gone.
    ok(&admin, "mutation($id: ID!, $s: JSON) { updateDeployment(id: $id, secretParameters: $s) { flowRun { kind } } }", json!({"id": id, "s": {"password": second}})).await;
    let d = settled(&admin, &id, "update").await;
    let second_secret = secret_name(&d);
    assert_ne!(second_secret, first_secret);
    assert_eq!(secret_value(&secrets, &second_secret).await, second);
    assert!(
        secrets.get_opt(&first_secret).await.unwrap().is_none(),
        "the old Secret {first_secret} is pruned"
    );

    // Searched for everywhere.
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let needles = [first.to_owned(), second.to_owned(), b64(first), b64(second)];
    let api = ok(&admin, "query($id: ID!) { deployment(id: $id) { id name parameters secretParameters config lastError status { status message urls } instances { id state context renderedValues } flowRuns { id kind state payload error logs { level message } } } auditLog { action detail } }", json!({"id": id})).await.to_string();
    let mut searched = vec![("the API's answers".to_owned(), api)];
    searched.extend(every_non_secret_object(&kube).await);
    assert!(
        searched
            .iter()
            .any(|(name, _)| name.starts_with("StyrminDeployment/")),
        "the search covers the StyrminDeployment"
    );
    let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(!log.is_empty(), "the process's log was captured");
    searched.push(("the process's log".to_owned(), log));
    for (place, text) in &searched {
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "{needle} found in {place}");
        }
    }

    agent.stop().await;
    stack.stop().await;
}
