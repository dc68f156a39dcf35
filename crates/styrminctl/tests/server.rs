//! styrminctl against a real server, the way a user works: every step goes through the
//! command line; a fake agent (a test client holding the cluster's agent token, which
//! styrminctl printed) claims, completes and fails the runs. Runs on SQLite and PostgreSQL.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use styrmin_client::Client;
use styrmin_testkit::{
    ADMIN_TOKEN, Harness, Kind, claim_one, commit_all, complete, example_driver,
    example_driver_copy, fail, finish, log,
};
use tempfile::TempDir;

struct Ctl {
    h: Harness,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Ctl {
    async fn run_as(&self, token: &str, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"))
            .args(args)
            .env("STYRMIN_SERVER_ADDRESS", self.h.server.url())
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

    async fn run(&self, args: &[&str]) -> Out {
        self.run_as(ADMIN_TOKEN, args).await
    }

    /// Runs a command that must succeed.
    async fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args).await;
        assert_eq!(
            out.code, 0,
            "styrminctl {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out
    }

    /// Runs a command that must succeed with `-o json`; returns what it printed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        self.ok(&args).await.json()
    }

    /// Runs a command that must fail with `code`, with a one-line error.
    async fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(
            out.code, code,
            "styrminctl {args:?}: {}{}",
            out.stdout, out.stderr
        );
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        out.stderr
    }

    /// A client acting as the agent whose token a `clusters create` printed.
    fn agent(&self, created: &Value) -> Client {
        self.h
            .client(created["agentToken"].as_str().expect("an agent token"))
    }
}

async fn setup(postgres: bool) -> Ctl {
    let kind = if postgres {
        Kind::Postgres
    } else {
        Kind::Sqlite
    };
    Ctl {
        h: Harness::new(kind).await,
    }
}

/// A git repository holding the example driver as spec.version 2.
fn driver_repo() -> TempDir {
    let repo = example_driver_copy();
    let spec = repo.path().join("driver.styrmin.yml");
    let text =
        std::fs::read_to_string(&spec)
            .unwrap()
            .replacen("version: \"1\"", "version: \"2\"", 1);
    std::fs::write(&spec, text).unwrap();
    commit_all(repo.path(), "v2");
    repo
}

async fn the_whole_lifecycle_through_the_command_line(postgres: bool) {
    let ctl = setup(postgres).await;

    // Catalogue: a cluster (its agent token is printed once), an environment, a bucket.
    let cluster = ctl
        .json(&[
            "clusters",
            "create",
            "prod-eu",
            "-c",
            r#"{"fqdn_suffix": "example.test"}"#,
        ])
        .await;
    let agent = ctl.agent(&cluster);
    let table = ctl.ok(&["clusters", "list"]).await.stdout;
    assert!(
        table.starts_with("ID") && table.contains("prod-eu") && table.contains("offline"),
        "{table}"
    );
    let err = ctl
        .fails(1, &["clusters", "create", "broken", "-c", "{not json"])
        .await;
    assert!(err.contains("-c: not valid JSON"), "{err}");
    assert_eq!(err.lines().count(), 1);
    ctl.ok(&["environments", "create", "prod", "prod-eu", "-c", "{}"])
        .await;
    ctl.fails(1, &["environments", "create", "prod", "prod-eu"])
        .await;
    ctl.ok(&[
        "backup-locations",
        "create",
        "s3-main",
        "--endpoint",
        "http://127.0.0.1:9000",
        "--bucket",
        "backups",
        "--region",
        "eu-1",
        "--access-key-id",
        "AKIA1",
        "--secret-access-key",
        "hunter2-secret",
    ])
    .await;
    let assigned = ctl
        .json(&["backup-locations", "assign", "prod", "s3-main"])
        .await;
    assert_eq!(assigned["backupStorageLocation"]["name"], "s3-main");
    let shown = ctl
        .ok(&["backup-locations", "list", "-o", "yaml"])
        .await
        .stdout;
    assert!(
        shown.contains("s3-main") && !shown.contains("hunter2"),
        "{shown}"
    );

    // Drivers: from a directory (twice: the second is a no-op), then from a git branch.
    let driver = example_driver();
    let loaded = ctl
        .json(&["drivers", "load-local-version", driver.to_str().unwrap()])
        .await;
    assert_eq!(loaded["created"], true);
    let again = ctl
        .ok(&["drivers", "load-local-version", driver.to_str().unwrap()])
        .await
        .stdout;
    assert!(again.contains("Already loaded"), "{again}");
    let repo = driver_repo();
    let from_git = ctl
        .json(&[
            "drivers",
            "load-version",
            &format!("file://{}", repo.path().display()),
            "main",
        ])
        .await;
    assert_eq!(from_git["version"]["version"], "2");
    assert_eq!(from_git["version"]["source"]["kind"], "git");
    let versions = ctl.json(&["drivers", "show", "my-app"]).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);

    // Create: a create run on the latest driver version; the agent completes it.
    let created = ctl
        .json(&[
            "deployments",
            "create",
            "my-app",
            "2.3.1",
            "prod",
            "--name",
            "shop",
            "-p",
            "admin_email=ops@example.com",
            "--env",
            "server.FEATURE_FLAGS=beta",
        ])
        .await;
    assert_eq!(created["flowRun"]["kind"], "create");
    let run = claim_one(&agent).await;
    assert_eq!(run["payload"]["driverVersion"], "2");
    assert_eq!(
        run["payload"]["context"]["components"]["server"]["env_vars"],
        json!([{"name": "FEATURE_FLAGS", "value": "beta"}])
    );
    log(&agent, &run, "StyrminDeployment applied").await;
    complete(&agent, &run).await;
    let logs = ctl.ok(&["deployments", "logs", "shop"]).await.stdout;
    assert!(logs.contains("StyrminDeployment applied"), "{logs}");

    // Plan, then update: a typed parameter from the command line.
    let plan = ctl
        .json(&["deployments", "plan", "shop", "-p", "replicas=4"])
        .await;
    assert_eq!(plan["kind"], "update");
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "server.replicas" && c["after"] == 4),
        "{plan}"
    );
    let nothing = ctl.ok(&["deployments", "plan", "shop"]).await.stdout;
    assert!(nothing.contains("Remediation: none"), "{nothing}");
    let updated = ctl
        .json(&["deployments", "update", "shop", "-p", "replicas=4"])
        .await;
    assert_eq!(updated["flowRun"]["kind"], "update");
    assert_eq!(
        finish(&agent, "update").await["payload"]["context"]["parameters"]["replicas"],
        4
    );
    let same = ctl
        .ok(&["deployments", "update", "shop", "-p", "replicas=4"])
        .await
        .stdout;
    assert!(same.contains("No change"), "{same}");

    // Upgrade fails on the agent: the old Instance stays active, the error shows; retry.
    ctl.ok(&["deployments", "upgrade", "shop", "--app-version", "2.4.0"])
        .await;
    let run = claim_one(&agent).await;
    assert_eq!(run["kind"], "upgrade");
    fail(&agent, &run, "helm upgrade: image 2.4.0 not found").await;
    let shown = ctl.json(&["deployments", "show", "shop"]).await;
    assert!(
        shown["lastError"]
            .as_str()
            .unwrap()
            .contains("image 2.4.0 not found")
    );
    let instances = ctl.json(&["deployments", "instances", "shop"]).await;
    let states: Vec<(&str, &str)> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["state"].as_str().unwrap(),
                i["appVersion"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("failed", "2.4.0"),
            ("active", "2.3.1"),
            ("superseded", "2.3.1")
        ]
    );
    let table = ctl.ok(&["deployments", "list"]).await.stdout;
    assert!(
        table.contains("shop") && table.contains("image 2.4.0 not found"),
        "{table}"
    );
    ctl.ok(&["deployments", "retry", "shop"]).await;
    let run = claim_one(&agent).await;
    assert_eq!(
        (run["kind"].as_str(), run["attempt"].as_i64()),
        (Some("upgrade"), Some(2))
    );
    complete(&agent, &run).await;
    let shown = ctl.json(&["deployments", "show", "shop"]).await;
    assert_eq!(shown["activeInstance"]["id"], run["payload"]["instanceId"]);
    assert!(shown["lastError"].is_null());

    // Stop, then delete.
    ctl.ok(&["deployments", "stop", "prod/shop"]).await;
    finish(&agent, "stop").await;
    ctl.ok(&["deployments", "delete", "shop"]).await;
    ctl.fails(4, &["deployments", "start", "shop"]).await;
    finish(&agent, "delete").await;
    assert_eq!(ctl.json(&["deployments", "list"]).await, json!([]));
    let runs = ctl.json(&["flow-runs", "list"]).await;
    let kinds: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["delete", "stop", "upgrade", "update", "create"]);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "completed")
    );

    // Exit codes scripts rely on.
    ctl.fails(3, &["deployments", "show", "nope"]).await;
    let err = ctl
        .fails(
            1,
            &[
                "deployments",
                "create",
                "my-app",
                "9.0.0",
                "prod",
                "-p",
                "admin_email=a@b.c",
            ],
        )
        .await;
    assert!(err.contains("app_version: 9.0.0 is outside"), "{err}");
    let err = ctl
        .fails(
            1,
            &[
                "deployments",
                "create",
                "my-app",
                "2.3.1",
                "prod",
                "--name",
                "x",
                "-p",
                "replicas=two",
                "-p",
                "admin_email=a@b.c",
            ],
        )
        .await;
    assert!(err.contains("parameters.replicas"), "{err}");
    ctl.fails(
        1,
        &[
            "deployments",
            "create",
            "my-app",
            "2.3.1",
            "prod",
            "-p",
            "novalue",
        ],
    )
    .await;
    let denied = ctl.run_as("stm_wrong", &["clusters", "list"]).await;
    assert_eq!(denied.code, 5, "{}", denied.stderr);
    let viewer = ctl
        .json(&["tokens", "create", "reader", "--role", "viewer"])
        .await;
    let as_viewer = ctl
        .run_as(
            viewer["secret"].as_str().unwrap(),
            &["clusters", "create", "x"],
        )
        .await;
    assert_eq!(as_viewer.code, 5, "{}", as_viewer.stderr);
    let whoami = ctl
        .run_as(viewer["secret"].as_str().unwrap(), &["tokens", "whoami"])
        .await;
    assert!(whoami.stdout.contains("viewer"), "{}", whoami.stdout);
    let unreachable = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"))
        .args(["clusters", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2));
    let audit = ctl.json(&["audit"]).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "deleteDeployment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_through_the_command_line_on_sqlite() {
    the_whole_lifecycle_through_the_command_line(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_through_the_command_line_on_postgres() {
    the_whole_lifecycle_through_the_command_line(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_until_the_run_ends_and_exits_by_its_outcome() {
    let ctl = setup(false).await;
    let cluster = ctl.json(&["clusters", "create", "c1"]).await;
    let agent = ctl.agent(&cluster);
    ctl.ok(&["environments", "create", "dev", "c1"]).await;
    ctl.ok(&[
        "drivers",
        "load-local-version",
        example_driver().to_str().unwrap(),
    ])
    .await;
    ctl.ok(&[
        "deployments",
        "create",
        "my-app",
        "2.3.1",
        "dev",
        "-p",
        "admin_email=a@b.c",
    ])
    .await;
    let run = claim_one(&agent).await;

    let follow = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"))
        .args(["deployments", "logs", "my-app", "--follow"])
        .env("STYRMIN_SERVER_ADDRESS", ctl.h.server.url())
        .env("STYRMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    log(&agent, &run, "pre hooks: none").await;
    log(&agent, &run, "core: applied").await;
    complete(&agent, &run).await;
    let out = tokio::time::timeout(Duration::from_secs(30), follow.wait_with_output())
        .await
        .expect("follow ends with the run")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pre hooks: none") && stdout.contains("core: applied"),
        "{stdout}"
    );

    ctl.ok(&["deployments", "update", "my-app", "-p", "replicas=5"])
        .await;
    let run = claim_one(&agent).await;
    fail(&agent, &run, "helm: timed out waiting for the condition").await;
    let failed = ctl
        .run(&["deployments", "logs", "my-app", "--follow"])
        .await;
    assert_eq!(failed.code, 6, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("timed out waiting"),
        "{}",
        failed.stderr
    );
}
