//! Two server processes on one PostgreSQL behave like one: a run is handed to exactly one
//! agent, and work scheduled through one server wakes a long-poll held by the other
//! (LISTEN/NOTIFY).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use styrmin_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_hand_one_run_to_two_agents() {
    let db = database(Kind::Postgres).await;
    // Long-polls re-check the database only every minute here, so a prompt wake-up on
    // server two can only come from server one's NOTIFY.
    let settings = styrmin_server::Settings {
        recheck: Duration::from_secs(60),
        ..fast_settings()
    };
    let one = server_on(&db, settings.clone()).await;
    let two = server_on(&db, settings).await;
    let admin_one = styrmin_client::Client::new(&one.url(), Some(ADMIN_TOKEN.into())).unwrap();
    let h = Harness {
        server: one,
        db,
        admin: admin_one.clone(),
    };
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let token = h.agent_token("c1").await;
    let agent_one = h.client(&token);
    let agent_two = styrmin_client::Client::new(&two.url(), Some(token)).unwrap();

    const DEPLOYMENTS: usize = 40;
    for i in 0..DEPLOYMENTS {
        create_example(&admin_one, &env, &format!("app-{i}")).await;
    }
    // Two agents, one per server, claim as fast as they can until the queue is empty.
    let drain = |agent: styrmin_client::Client| async move {
        let mut mine = Vec::new();
        loop {
            let runs = claim(&agent, 3, 0.0).await;
            if runs.is_empty() {
                return mine;
            }
            mine.extend(
                runs.into_iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned()),
            );
        }
    };
    let (a, b) = tokio::join!(drain(agent_one.clone()), drain(agent_two.clone()));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in a.iter().chain(b.iter()) {
        *seen.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), DEPLOYMENTS, "every run was claimed");
    assert!(seen.values().all(|n| *n == 1), "a run was handed out twice");
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both servers handed out work ({} / {})",
        a.len(),
        b.len()
    );

    // A long-poll held on server two wakes for work scheduled through server one.
    let waiting = tokio::spawn(async move {
        let q = "mutation { claimFlowRuns(max: 1, waitSeconds: 30, agentVersion: \"long-poller\", protocolVersion: \"1.0\") { id } }";
        let runs = ok(&agent_two, q, json!({})).await["claimFlowRuns"]
            .as_array()
            .unwrap()
            .clone();
        (runs, Instant::now())
    });
    // The claim records the agent's version as it starts waiting.
    eventually("the long-poll to be waiting", Duration::from_secs(5), || async {
        ok(&admin_one, "{ clusters { agentVersion } }", json!({})).await["clusters"][0]["agentVersion"] == "long-poller"
    })
    .await;
    let scheduled = Instant::now();
    create_example(&admin_one, &env, "late").await;
    let (runs, woke) = waiting.await.unwrap();
    assert_eq!(runs.len(), 1);
    let latency = woke.duration_since(scheduled);
    assert!(
        latency < Duration::from_millis(900),
        "woke {latency:?} after the run was scheduled"
    );
    two.stop().await.unwrap();
}
