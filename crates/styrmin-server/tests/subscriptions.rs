//! Subscriptions over WebSocket (graphql-transport-ws), as GraphiQL or the UI use them:
//! a run's log lines arrive as the agent appends them, and the stream ends with the run;
//! deployment changes arrive as they happen. Tokens are checked on these too.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use styrmin_testkit::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(h: &Harness, token: &str) -> Socket {
    let url = format!("ws://{}/graphql/ws", h.server.addr);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message (`None` once the server closed the connection); fails
/// after 10 s.
async fn next_any(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")?;
        match message {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The next message that is not a ping or pong.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let v = next_any(socket).await.expect("the socket stays open");
        if v["type"] != "ping" && v["type"] != "pong" {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_run_logs_stream_as_they_are_appended_and_end_with_the_run() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    create_example(&h.admin, &env, "shop").await;
    let run = claim(&agent, 1, 0.0).await.remove(0);
    let append = "mutation($id: ID!, $m: String!) { appendFlowRunLogs(id: $id, attempt: 1, lines: [{level: \"info\", message: $m}]) }";
    ok(
        &agent,
        append,
        json!({"id": run["id"], "m": "ensuring namespace styrmin-prod"}),
    )
    .await;

    let mut socket = connect(&h, ADMIN_TOKEN).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({"id": "logs", "type": "subscribe", "payload": {"query": "subscription($id: ID!) { flowRunLogs(id: $id) { seq message } }", "variables": {"id": run["id"]}}})).await;
    let first = next(&mut socket).await;
    assert_eq!(
        first["payload"]["data"]["flowRunLogs"],
        json!({"seq": 1, "message": "ensuring namespace styrmin-prod"})
    );

    ok(
        &agent,
        append,
        json!({"id": run["id"], "m": "StyrminDeployment applied"}),
    )
    .await;
    let second = next(&mut socket).await;
    assert_eq!(second["payload"]["data"]["flowRunLogs"]["seq"], 2);
    complete(&agent, &run).await;
    assert_eq!(
        next(&mut socket).await["type"],
        "complete",
        "the stream ends with the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_changes_are_pushed_and_a_bad_token_is_refused() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let id = example_deployment(&h.admin, &env, "shop").await;

    let mut socket = connect(&h, ADMIN_TOKEN).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({"id": "d", "type": "subscribe", "payload": {"query": "subscription($id: ID) { deploymentChanged(id: $id) { name status { status } } }", "variables": {"id": id}}})).await;
    // The subscription starts listening when the server first polls it, which the client
    // cannot observe: report until a push arrives (each report is a real change event).
    let report = "mutation($c: ID!, $d: ID!) { reportDeploymentStatuses(clusterId: $c, statuses: [{deploymentId: $d, status: \"DEPLOYING\"}]) }";
    let mut pushed = None;
    for _ in 0..20 {
        ok(&agent, report, json!({"c": cluster, "d": id})).await;
        if let Ok(v) = tokio::time::timeout(Duration::from_millis(500), next(&mut socket)).await {
            pushed = Some(v);
            break;
        }
    }
    let pushed = pushed.expect("a deployment change was pushed");
    assert_eq!(
        pushed["payload"]["data"]["deploymentChanged"],
        json!({"name": "shop", "status": {"status": "DEPLOYING"}})
    );

    let mut refused = connect(&h, "stm_forged").await;
    let answer = next_any(&mut refused).await;
    assert!(
        answer
            .as_ref()
            .is_none_or(|a| a["type"] != "connection_ack"),
        "a forged token was acknowledged: {answer:?}"
    );
}

/// A socket that never sends `connection_init` is closed after the init timeout instead
/// of being kept open indefinitely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_connection_init_is_closed() {
    let settings = styrmin_server::Settings {
        ws_init_timeout: Duration::from_millis(300),
        ..fast_settings()
    };
    let h = Harness::with(Kind::Sqlite, settings).await;
    let url = format!("ws://{}/graphql/ws", h.server.addr);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(next_any(&mut socket).await, None, "the socket was closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A token revoked while its socket is open stops working there: each operation checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_on_an_open_socket() {
    let h = Harness::new(Kind::Sqlite).await;
    let v = ok(
        &h.admin,
        "mutation { createToken(name: \"watcher\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
    let token = v["createToken"]["secret"].as_str().unwrap().to_owned();
    let mut socket = connect(&h, &token).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    let me = json!({"id": "1", "type": "subscribe", "payload": {"query": "{ me { name } }"}});
    send(&mut socket, me.clone()).await;
    let answer = next(&mut socket).await;
    assert_eq!(
        answer["payload"]["data"]["me"]["name"], "watcher",
        "{answer}"
    );
    assert_eq!(next(&mut socket).await["type"], "complete");

    ok(
        &h.admin,
        "mutation { deleteToken(id: \"watcher\") { name } }",
        json!({}),
    )
    .await;
    let mut again = me;
    again["id"] = json!("2");
    send(&mut socket, again).await;
    let answer = next(&mut socket).await;
    assert!(
        answer.to_string().contains("revoked") && answer["payload"]["data"]["me"].is_null(),
        "{answer}"
    );
}

/// A running subscription ends once its token is revoked: the next change it would send
/// is an error instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_subscription_ends_when_its_token_is_revoked() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let id = example_deployment(&h.admin, &env, "shop").await;
    let v = ok(
        &h.admin,
        "mutation { createToken(name: \"watcher\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
    let mut socket = connect(&h, v["createToken"]["secret"].as_str().unwrap()).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({"id": "d", "type": "subscribe", "payload": {"query": "subscription($id: ID) { deploymentChanged(id: $id) { name } }", "variables": {"id": id}}})).await;
    // Report until the subscription is seen listening (as in the test above).
    let report = "mutation($c: ID!, $d: ID!) { reportDeploymentStatuses(clusterId: $c, statuses: [{deploymentId: $d, status: \"DEPLOYING\"}]) }";
    let mut pushed = None;
    for _ in 0..20 {
        ok(&agent, report, json!({"c": cluster, "d": id})).await;
        if let Ok(v) = tokio::time::timeout(Duration::from_millis(500), next(&mut socket)).await {
            pushed = Some(v);
            break;
        }
    }
    assert_eq!(
        pushed.expect("a change was pushed")["payload"]["data"]["deploymentChanged"]["name"],
        "shop"
    );

    ok(
        &h.admin,
        "mutation { deleteToken(id: \"watcher\") { name } }",
        json!({}),
    )
    .await;
    ok(&agent, report, json!({"c": cluster, "d": id})).await;
    let after = next(&mut socket).await;
    assert!(after.to_string().contains("revoked"), "{after}");
}
