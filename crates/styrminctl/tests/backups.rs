//! Backups, restores and environment clones through the command line (issue 15), against a
//! real server with a fake agent (a test client holding the cluster's agent token) that
//! claims the runs and completes them as the real agent would. Runs on SQLite and
//! PostgreSQL.

use std::process::Stdio;

use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_testkit::{
    ADMIN_TOKEN, Harness, Kind, claim_one, complete, example_deployment, fail, finish, ok,
};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
}

/// Runs styrminctl against `url` with `token`.
async fn ctl(url: &str, token: &str, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"))
        .args(args)
        .env("STYRMIN_SERVER_ADDRESS", url)
        .env("STYRMIN_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("styrminctl runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn expect(out: &Out, code: i32, args: &[&str]) {
    assert_eq!(
        out.code, code,
        "styrminctl {args:?}: {}{}",
        out.stdout, out.stderr
    );
}

/// Completes a run with the agent's result.
async fn complete_with(agent: &Client, run: &Value, result: Value) {
    ok(agent, "mutation($id: ID!, $a: Int!, $r: JSON) { completeFlowRun(id: $id, attempt: $a, result: $r) { state } }", json!({"id": run["id"], "a": run["attempt"], "r": result})).await;
}

fn backup_result() -> Value {
    json!({
        "state": "completed",
        "sizeBytes": 4096,
        "components": [{"component": "postgresql", "kind": "postgres", "bytes": 2048, "durationMs": 150, "error": null}],
        "errors": [],
    })
}

/// The backup commands as a user types them: a backup refused while the environment has no
/// location (naming the command that assigns one); `backups create --wait` following the
/// run to a completed backup; list and show with per-component results; a restore whose
/// run fails exiting 6 under `--wait`; schedule and retention set with `environments
/// update`; an environment backup partially failed exiting 6 under `--wait`; `environments clone --with-data --wait` following the clone's create and
/// restore runs; a delete removing the backup once its run completes; a viewer refused.
async fn backups_through_the_command_line(kind: Kind) {
    let h = Harness::new(kind).await;
    let url = h.server.url();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let out = ctl(&url, ADMIN_TOKEN, args).await;
            (out, args)
        }
    };
    let (_, _env, agent) = h.cluster_with_environment("c1", "prod").await;
    h.load_example_driver().await;
    let shop = example_deployment(&h.admin, "prod", "shop").await;
    finish(&agent, "create").await;

    let (out, args) = run(&["backups", "create", "--deployment", "prod/shop"]).await;
    expect(&out, 4, args);
    assert!(
        out.stderr
            .contains("styrminctl backup-locations assign prod LOCATION"),
        "{}",
        out.stderr
    );
    let (out, args) = run(&["backups", "create"]).await;
    expect(&out, 2, args);

    for args in [
        &[
            "backup-locations",
            "create",
            "s3-main",
            "--endpoint",
            "http://127.0.0.1:9000",
            "--bucket",
            "backups",
            "--region",
            "us-east-1",
            "--access-key-id",
            "AKIA1",
            "--secret-access-key",
            "s3cr3t",
        ][..],
        &["backup-locations", "assign", "prod", "s3-main"],
    ] {
        let out = ctl(&url, ADMIN_TOKEN, args).await;
        expect(&out, 0, args);
    }

    // --wait follows the backup run to its end and prints the completed backup.
    let waiting = tokio::spawn(run(&[
        "backups",
        "create",
        "--deployment",
        "prod/shop",
        "--wait",
        "-o",
        "json",
    ]));
    let backup_run = claim_one(&agent).await;
    assert_eq!(backup_run["kind"], "backup");
    complete_with(&agent, &backup_run, backup_result()).await;
    let (out, args) = waiting.await.unwrap();
    expect(&out, 0, args);
    let b = out.json();
    assert_eq!(b["state"], "completed");
    assert_eq!(b["sizeBytes"], 4096);
    assert_eq!(b["deploymentId"], shop.as_str());
    let id = b["id"].as_str().unwrap().to_owned();

    let list = ctl(&url, ADMIN_TOKEN, &["backups", "list"]).await;
    expect(&list, 0, &["backups", "list"]);
    assert!(
        list.stdout.contains(&id)
            && list.stdout.contains("completed")
            && list.stdout.contains("4096"),
        "{}",
        list.stdout
    );
    let shown = ctl(&url, ADMIN_TOKEN, &["backups", "show", &id]).await;
    expect(&shown, 0, &["backups", "show"]);
    assert!(
        shown.stdout.contains("postgresql")
            && shown.stdout.contains("postgres")
            && shown.stdout.contains("2048"),
        "{}",
        shown.stdout
    );
    let yaml = ctl(&url, ADMIN_TOKEN, &["backups", "show", &id, "-o", "yaml"]).await;
    expect(&yaml, 0, &["backups", "show", "-o", "yaml"]);
    assert!(yaml.stdout.contains("state: completed"), "{}", yaml.stdout);

    // A restore whose run fails: --wait exits 6, naming the state.
    let restoring = {
        let (url, id) = (url.clone(), id.clone());
        tokio::spawn(
            async move { ctl(&url, ADMIN_TOKEN, &["backups", "restore", &id, "--wait"]).await },
        )
    };
    let restore_run = claim_one(&agent).await;
    assert_eq!(restore_run["kind"], "restore");
    fail(&agent, &restore_run, "velero: restore PartiallyFailed").await;
    let out = restoring.await.unwrap();
    expect(&out, 6, &["backups", "restore", "--wait"]);
    assert!(out.stderr.contains("ended failed"), "{}", out.stderr);
    let restores = ctl(&url, ADMIN_TOKEN, &["backups", "restores", "-o", "json"]).await;
    assert_eq!(restores.json()[0]["state"], "failed");

    // Schedule and retention.
    let (out, args) = run(&[
        "environments",
        "update",
        "prod",
        "--backup-schedule",
        "0 3 * * *",
        "--backup-keep",
        "2",
        "-o",
        "json",
    ])
    .await;
    expect(&out, 0, args);
    assert_eq!(out.json()["backupSchedule"], "0 3 * * *");
    assert_eq!(out.json()["backupKeep"], 2);
    let (out, args) = run(&[
        "environments",
        "update",
        "prod",
        "--backup-schedule",
        "0 3 * *",
    ])
    .await;
    expect(&out, 1, args);
    assert!(out.stderr.contains("backupSchedule"), "{}", out.stderr);

    // A clone with data, followed to its end.
    let cloning = tokio::spawn(run(&[
        "environments",
        "clone",
        "prod",
        "rehearsal",
        "--with-data",
        "--wait",
        "-o",
        "json",
    ]));
    let create = claim_one(&agent).await;
    assert_eq!(create["kind"], "create");
    complete(&agent, &create).await;
    let restore = claim_one(&agent).await;
    assert_eq!(restore["kind"], "restore");
    assert_eq!(restore["payload"]["namespace"], "styrmin-rehearsal");
    complete_with(
        &agent,
        &restore,
        json!({"state": "completed", "components": [], "errors": []}),
    )
    .await;
    let (out, args) = cloning.await.unwrap();
    expect(&out, 0, args);
    let made = out.json();
    assert_eq!(made["environment"]["name"], "rehearsal");
    assert_eq!(made["restores"][0]["backupId"], id.as_str());

    // An environment backup followed to its end: partially failed exits 6, and the
    // backup is still printed with its parts.
    let waiting = tokio::spawn(run(&[
        "backups",
        "create",
        "--environment",
        "prod",
        "--wait",
        "-o",
        "json",
    ]));
    let part = claim_one(&agent).await;
    assert_eq!(part["kind"], "backup");
    complete_with(
        &agent,
        &part,
        json!({"state": "partially_failed", "sizeBytes": 10, "components": [{"component": "postgresql", "kind": "postgres", "bytes": null, "durationMs": 5, "error": "pg_dump: permission denied"}], "errors": []}),
    )
    .await;
    let (out, args) = waiting.await.unwrap();
    expect(&out, 6, args);
    assert!(
        out.stderr.contains("ended partially_failed"),
        "{}",
        out.stderr
    );
    let env_backup = out.json();
    assert_eq!(env_backup["deploymentId"], Value::Null);
    assert_eq!(env_backup["state"], "partially_failed");
    assert_eq!(env_backup["parts"][0]["state"], "partially_failed");

    // A viewer may look but not back up.
    let secret = ok(
        &h.admin,
        "mutation { createToken(name: \"ro2\", role: viewer) { secret } }",
        json!({}),
    )
    .await["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ctl(
        &url,
        &secret,
        &["backups", "create", "--environment", "prod"],
    )
    .await;
    expect(&out, 5, &["backups", "create", "(viewer)"]);
    let out = ctl(&url, &secret, &["backups", "list"]).await;
    expect(&out, 0, &["backups", "list", "(viewer)"]);

    // Delete: the backup goes once its delete_backup run completes.
    let out = ctl(&url, ADMIN_TOKEN, &["backups", "delete", &id, "-o", "json"]).await;
    expect(&out, 0, &["backups", "delete"]);
    assert_eq!(out.json()["deleting"], true);
    let deletion = claim_one(&agent).await;
    assert_eq!(deletion["kind"], "delete_backup");
    complete(&agent, &deletion).await;
    let out = ctl(&url, ADMIN_TOKEN, &["backups", "show", &id]).await;
    expect(&out, 3, &["backups", "show", "(deleted)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_through_the_command_line_on_sqlite() {
    backups_through_the_command_line(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_through_the_command_line_on_postgres() {
    backups_through_the_command_line(Kind::Postgres).await;
}
