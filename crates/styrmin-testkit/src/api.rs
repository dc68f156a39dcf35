//! GraphQL as the tests speak it: operations that must succeed or must fail, the example
//! deployment, and a fake agent (a client holding a cluster's agent token) that claims,
//! logs, completes and fails flow runs by hand.

use serde_json::{Value, json};
use styrmin_client::{Client, Error, ErrorKind};

/// Runs an operation that must succeed; returns its `data`.
pub async fn ok(client: &Client, query: &str, vars: Value) -> Value {
    match client.request(query, vars).await {
        Ok(data) => data,
        Err(e) => panic!("{query} failed: {e} ({:?})", e.kind),
    }
}

/// Runs an operation that must fail, returning the error.
pub async fn fails(client: &Client, query: &str, vars: Value) -> Error {
    match client.request(query, vars).await {
        Ok(data) => panic!("{query} should have failed, returned {data}"),
        Err(e) => e,
    }
}

/// Runs an operation that must fail with an error of `kind`, returning the error.
pub async fn fails_with(client: &Client, kind: ErrorKind, query: &str, vars: Value) -> Error {
    let e = fails(client, query, vars).await;
    assert_eq!(e.kind, kind, "{query}: {e}");
    e
}

/// The fields of a flow run the fake agent reads.
pub const RUN: &str = "id kind state attempt instanceId error deploymentId payload";

/// Claims with a long-poll of `wait` seconds, as agent version `test-agent`.
pub async fn claim(agent: &Client, max: i32, wait: f64) -> Vec<Value> {
    let v = ok(agent, &format!("mutation($m: Int!, $w: Float!) {{ claimFlowRuns(max: $m, waitSeconds: $w, agentVersion: \"test-agent\", protocolVersion: \"1.0\") {{ {RUN} }} }}"), json!({"m": max, "w": wait})).await;
    v["claimFlowRuns"]
        .as_array()
        .expect("a list of runs")
        .clone()
}

/// Claims the one run that is scheduled (waiting up to 5 s for it).
pub async fn claim_one(agent: &Client) -> Value {
    let mut runs = claim(agent, 1, 5.0).await;
    assert_eq!(runs.len(), 1, "expected one run, got {runs:?}");
    runs.remove(0)
}

/// Appends one log line to the run's current attempt.
pub async fn log(agent: &Client, run: &Value, message: &str) {
    ok(agent, "mutation($id: ID!, $a: Int!, $m: String!) { appendFlowRunLogs(id: $id, attempt: $a, lines: [{message: $m}]) }", json!({"id": run["id"], "a": run["attempt"], "m": message})).await;
}

pub async fn complete(agent: &Client, run: &Value) -> Value {
    ok(agent, "mutation($id: ID!, $a: Int!) { completeFlowRun(id: $id, attempt: $a, result: {ok: true}) { state } }", json!({"id": run["id"], "a": run["attempt"]})).await
}

pub async fn fail(agent: &Client, run: &Value, error: &str) -> Value {
    ok(agent, "mutation($id: ID!, $a: Int!, $e: String!) { failFlowRun(id: $id, attempt: $a, error: $e) { state } }", json!({"id": run["id"], "a": run["attempt"], "e": error})).await
}

/// Claims the next run, checks its kind, logs `KIND done` and completes it.
pub async fn finish(agent: &Client, kind: &str) -> Value {
    let run = claim_one(agent).await;
    assert_eq!(run["kind"], kind, "{run}");
    log(agent, &run, &format!("{kind} done")).await;
    complete(agent, &run).await;
    run
}

/// The fields of a deployment the tests read.
pub const DEPLOYMENT: &str = "id name phase appVersion lastError activeInstance { id appVersion } instances { id state appVersion } flowRuns { id kind state attempt error } status { status message urls }";

pub async fn deployment(client: &Client, id: &str) -> Value {
    ok(
        client,
        &format!("query($id: ID!) {{ deployment(id: $id) {{ {DEPLOYMENT} }} }}"),
        json!({"id": id}),
    )
    .await["deployment"]
        .clone()
}

/// The example driver's deployment `name` at 2.3.1 in `env`; returns `createDeployment`.
pub async fn create_example(client: &Client, env: &str, name: &str) -> Value {
    ok(client, "mutation($env: ID!, $name: String!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: $name, parameters: {admin_email: \"ops@example.com\"}) { noop deployment { id } instance { id state } flowRun { id kind state } } }", json!({"env": env, "name": name})).await["createDeployment"].clone()
}

/// As [`create_example`]; returns the new deployment's id.
pub async fn example_deployment(client: &Client, env: &str, name: &str) -> String {
    create_example(client, env, name).await["deployment"]["id"]
        .as_str()
        .expect("a deployment id")
        .to_owned()
}
