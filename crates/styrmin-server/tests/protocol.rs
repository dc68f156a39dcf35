//! The server↔agent contract: an agent of another protocol major version, or one that does
//! not say which it speaks, is refused at `claimFlowRuns` with a message naming both
//! versions; the refusal is shown on its cluster and cleared once a compatible agent claims.
//! The payload a run carries reads back as the typed `styrmin_core::protocol` payload.

use serde_json::json;
use styrmin_client::ErrorKind;
use styrmin_core::protocol::{ClaimedRun, FlowRunPayload, PROTOCOL_VERSION};
use styrmin_testkit::*;

const CLAIM: &str = "mutation($p: String) { claimFlowRuns(max: 5, waitSeconds: 0, protocolVersion: $p) { id kind attempt deploymentId payload leaseSeconds } }";

async fn refusal(h: &Harness, cluster: &str) -> serde_json::Value {
    ok(
        &h.admin,
        "query($c: ID!) { cluster(id: $c) { agentProtocolVersion agentRefusal } }",
        json!({"c": cluster}),
    )
    .await["cluster"]
        .clone()
}

#[tokio::test]
async fn an_agent_of_another_major_version_is_refused_with_both_versions_named() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    create_example(&h.admin, &env, "shop").await;

    let ours = PROTOCOL_VERSION.to_string();
    let theirs = format!("{}.0", PROTOCOL_VERSION.major + 1);
    let e = fails(&agent, CLAIM, json!({"p": theirs})).await;
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(
        e.message.contains(&format!("protocol {theirs}")) && e.message.contains(&ours),
        "the message names both versions: {e}"
    );
    let shown = refusal(&h, &cluster).await;
    assert_eq!(shown["agentProtocolVersion"], theirs);
    assert_eq!(shown["agentRefusal"], e.message.as_str());

    // The cluster's page says so too.
    let page = reqwest::Client::new()
        .get(format!("{}/clusters/{cluster}", h.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Agent refused"), "{page}");
    assert!(page.contains(&format!("protocol {theirs}")), "{page}");

    let e = fails(&agent, CLAIM, json!({"p": null})).await;
    assert!(e.message.contains("did not say which protocol"), "{e}");

    // Nothing was handed out while refused: a compatible agent gets the create run, and the
    // refusal is gone from the cluster.
    let runs = ok(&agent, CLAIM, json!({"p": ours})).await["claimFlowRuns"].clone();
    let runs: Vec<ClaimedRun> = serde_json::from_value(runs).unwrap();
    assert_eq!(runs.len(), 1);
    let shown = refusal(&h, &cluster).await;
    assert_eq!(shown["agentProtocolVersion"], ours);
    assert!(shown["agentRefusal"].is_null());

    // The payload is the typed create payload: the Instance with its Context and values.
    let FlowRunPayload::Create(apply) = runs[0].payload().unwrap() else {
        panic!("a create payload");
    };
    assert_eq!(apply.deployment.deployment_name, "shop");
    assert_eq!(apply.instance.context.instance.release_name, "shop");
    assert!(apply.instance.values.is_object());
}
