//! Environments as the home of deployments (issue 14, items 3 and 7), against the API
//! with a fake agent: a change to an environment's or a cluster's config re-plans each
//! deployment whose Context changes (one run each, none for the others); a change that
//! breaks a deployment is refused naming it, and changes nothing; an environment with
//! deployments is not deleted.

use serde_json::{Value, json};
use styrmin_client::ErrorKind;
use styrmin_testkit::*;

async fn runs(h: &Harness, id: &str) -> Vec<Value> {
    let v = ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { flowRuns { kind state } } }",
        json!({"id": id}),
    )
    .await;
    v["deployment"]["flowRuns"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_replan_the_deployments_whose_context_changes() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, prod, agent) = h.cluster_with_environment("c1", "prod").await;
    let staging = h.create_environment("staging", &cluster).await;
    h.load_example_driver().await;
    let shop = example_deployment(&h.admin, &prod, "shop").await;
    finish(&agent, "create").await;
    let other = example_deployment(&h.admin, &staging, "shop").await;
    finish(&agent, "create").await;

    // prod's allow-list: one update for prod's deployment, carrying it; staging's is
    // left alone.
    let update_env = "mutation($id: ID!, $name: String, $config: JSON) { updateEnvironment(id: $id, name: $name, config: $config) { name config } }";
    let allow = json!({"ip_whitelist": ["10.0.0.0/8"]});
    ok(&h.admin, update_env, json!({"id": prod, "config": allow})).await;
    let run = claim_one(&agent).await;
    assert_eq!(run["kind"], "update");
    assert_eq!(run["deploymentId"], shop.as_str());
    assert_eq!(
        run["payload"]["context"]["instance"]["config"]["ip_whitelist"],
        json!(["10.0.0.0/8"])
    );
    complete(&agent, &run).await;
    assert_eq!(runs(&h, &other).await.len(), 1, "staging is not re-planned");

    // The same config again changes no Context: no run.
    ok(&h.admin, update_env, json!({"id": prod, "config": allow})).await;
    assert!(claim(&agent, 1, 0.0).await.is_empty());

    // The cluster's config reaches both environments' deployments.
    ok(
        &h.admin,
        "mutation($id: ID!) { updateCluster(id: $id, config: {fqdn_suffix: \"apps.example.test\"}) { id } }",
        json!({"id": cluster}),
    )
    .await;
    let mut replanned = Vec::new();
    for _ in 0..2 {
        let run = claim_one(&agent).await;
        assert_eq!(run["kind"], "update");
        replanned.push(run["deploymentId"].as_str().unwrap().to_owned());
        complete(&agent, &run).await;
    }
    replanned.sort();
    let mut both = vec![shop.clone(), other.clone()];
    both.sort();
    assert_eq!(replanned, both);

    // A name that makes a host name of shop's too long: refused naming the deployment and
    // its service; nothing changed.
    let before = h.row_counts().await;
    let long = format!("p{}", "r".repeat(49));
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        update_env,
        json!({"id": prod, "name": long}),
    )
    .await;
    assert_eq!(
        e.fields[0].field, "deployments.shop.services.my-app-db",
        "{e}"
    );
    assert_eq!(h.row_counts().await, before);
    let envs = ok(&h.admin, "{ environments { name } }", json!({})).await;
    assert!(envs.to_string().contains("\"prod\""), "{envs}");

    // Deleting an environment that has deployments is refused.
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($id: ID!) { deleteEnvironment(id: $id) { id } }",
        json!({"id": prod}),
    )
    .await;
    assert!(e.message.contains("still has 1 deployment"), "{e}");

    // With cascade: a delete run for the deployment; the environment takes no new
    // deployment meanwhile, and goes when the run completes. staging stays.
    let deleting = ok(
        &h.admin,
        "mutation($id: ID!) { deleteEnvironment(id: $id, cascade: true) { name deleting } }",
        json!({"id": prod}),
    )
    .await;
    assert_eq!(deleting["deleteEnvironment"]["deleting"], true);
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($env: ID!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: \"late\", parameters: {admin_email: \"a@b.c\"}) { deployment { id } } }",
        json!({"env": prod}),
    )
    .await;
    assert!(e.message.contains("is being deleted"), "{e}");
    let run = claim_one(&agent).await;
    assert_eq!(run["kind"], "delete");
    assert_eq!(run["deploymentId"], shop.as_str());
    complete(&agent, &run).await;
    let envs = ok(&h.admin, "{ environments { name } }", json!({})).await;
    assert_eq!(envs["environments"], json!([{"name": "staging"}]));
}

/// A second deployment whose discovery Service would take the name of another's is
/// refused at creation, naming both deployments and the Service; nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colliding_service_name_is_refused_naming_both_deployments() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, prod, _agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    example_deployment(&h.admin, &prod, "my-app").await;
    // Another release's Services are scoped by its name: no collision.
    example_deployment(&h.admin, &prod, "shop").await;
    let before = h.row_counts().await;
    // `my-app-db` is its own release name, so its database Service is `my-app-db`:
    // the name the `my-app` deployment's database Service already has.
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation($env: ID!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: \"my-app-db\", parameters: {admin_email: \"ops@example.com\"}) { deployment { id } } }",
        json!({"env": prod}),
    )
    .await;
    assert_eq!(e.fields[0].field, "services.my-app-db");
    let message = &e.fields[0].message;
    assert!(
        message.contains("deployment `my-app-db`")
            && message.contains("deployment `my-app`")
            && message.contains("Service `my-app-db`"),
        "{message}"
    );
    assert_eq!(h.row_counts().await, before);
}
