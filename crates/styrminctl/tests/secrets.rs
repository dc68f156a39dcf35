//! Secret parameters through the command line (SPEC §8): `-p NAME=@secret:VALUE` and
//! `--secret-file NAME=PATH` set a driver's `secret` parameter; the value is in no answer
//! of the API to people (the deployment, its Instances, its runs and their payloads, the
//! audit log), only in what the agent of the deployment's cluster fetches; the Context
//! holds a reference to a Secret whose name changes with the value, so a new value
//! re-plans the deployment. Plain values, and secrets for parameters that are not secret,
//! are refused naming the field and never repeating the value.

use std::process::Stdio;

use serde_json::{Value, json};
use styrmin_client::ErrorKind;
use styrmin_testkit::{
    ADMIN_TOKEN, Harness, Kind, claim_one, complete, fails_with, ok, secret_driver_copy,
};

async fn ctl(h: &Harness, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"))
        .args(args)
        .env("STYRMIN_SERVER_ADDRESS", h.server.url())
        .env("STYRMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("styrminctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every answer a person can get about the deployment, as one text.
async fn everything_people_see(h: &Harness, id: &str) -> String {
    let deployment = ok(&h.admin, "query($id: ID!) { deployment(id: $id) { id name parameters secretParameters config components lastError instances { id state context renderedValues contextDigest } flowRuns { id kind state payload error logs { message } } } }", json!({"id": id})).await;
    let audit = ok(&h.admin, "{ auditLog { action detail } }", json!({})).await;
    format!("{deployment}\n{audit}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_parameters_are_write_only_through_the_command_line() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, agent) = h.cluster_with_environment("c1", "prod").await;
    let driver = secret_driver_copy();
    ok(
        &h.admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await;
    let first = "first-Secret-7f3a9c";
    let second = "second-Secret-2b8e41\n";

    // A plain value, and a secret for a parameter that is not secret: refused, naming the
    // field, without the value.
    let before = h.row_counts().await;
    let (code, _, stderr) = ctl(
        &h,
        &[
            "deployments",
            "create",
            "my-app-secret",
            "2.3.1",
            &env,
            "--name",
            "shop",
            "-p",
            "admin_email=ops@example.com",
            "-p",
            "password=plain-Text-91d2",
        ],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("parameters.password") && stderr.contains("secretParameters"),
        "{stderr}"
    );
    assert!(!stderr.contains("plain-Text-91d2"), "{stderr}");
    let (code, _, stderr) = ctl(
        &h,
        &[
            "deployments",
            "create",
            "my-app-secret",
            "2.3.1",
            &env,
            "--name",
            "shop",
            "-p",
            &format!("password=@secret:{first}"),
            "-p",
            "admin_email=@secret:not-a-secret-7c1d",
        ],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("secretParameters.admin_email"), "{stderr}");
    assert!(!stderr.contains("not-a-secret-7c1d"), "{stderr}");
    assert_eq!(
        h.row_counts().await,
        before,
        "a refused create wrote nothing"
    );

    // Created with -p NAME=@secret:VALUE: the output shows the name, never the value.
    let (code, stdout, stderr) = ctl(
        &h,
        &[
            "deployments",
            "create",
            "my-app-secret",
            "2.3.1",
            &env,
            "--name",
            "shop",
            "-p",
            "admin_email=ops@example.com",
            "-p",
            &format!("password=@secret:{first}"),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(first), "{stdout}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["deployment"]["secretParameters"],
        json!(["password"])
    );

    // The agent's run carries a reference; the agent of the cluster fetches the value.
    let run = claim_one(&agent).await;
    let reference = run["payload"]["context"]["parameters"]["password"].clone();
    let secret_name = reference["secretRef"]["name"].as_str().unwrap().to_owned();
    assert!(secret_name.starts_with("shop-secrets-"), "{reference}");
    assert_eq!(reference["secretRef"]["key"], "password");
    assert_eq!(
        run["payload"]["values"]["postgresql"]["existingSecret"],
        secret_name.as_str()
    );
    assert!(!run.to_string().contains(first));
    let fetch = "query($d: ID!) { secretParameterValues(deploymentId: $d) { secretName values } }";
    let fetched = ok(&agent, fetch, json!({"d": id})).await;
    assert_eq!(
        fetched["secretParameterValues"],
        json!({"secretName": secret_name, "values": {"password": first}})
    );
    // Nobody else may fetch it, not even an admin.
    fails_with(&h.admin, ErrorKind::Forbidden, fetch, json!({"d": id})).await;
    complete(&agent, &run).await;

    // A new value from a file (its final newline kept): an update run, a new Secret name.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), second).unwrap();
    let (code, stdout, stderr) = ctl(
        &h,
        &[
            "deployments",
            "update",
            &id,
            "--secret-file",
            &format!("password={}", file.path().display()),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(second.trim()), "{stdout}");
    let run = claim_one(&agent).await;
    assert_eq!(run["kind"], "update");
    let renamed = run["payload"]["context"]["parameters"]["password"]["secretRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(renamed, secret_name);
    let fetched = ok(&agent, fetch, json!({"d": id})).await;
    assert_eq!(
        fetched["secretParameterValues"]["secretName"],
        renamed.as_str()
    );
    assert_eq!(
        fetched["secretParameterValues"]["values"]["password"],
        second
    );
    complete(&agent, &run).await;

    let seen = everything_people_see(&h, &id).await;
    for value in [first, second.trim()] {
        assert!(!seen.contains(value), "{value} found in {seen}");
    }
    let (_, shown, _) = ctl(&h, &["deployments", "show", &id]).await;
    assert!(shown.contains("[\"password\"]"), "{shown}");
    assert!(
        !shown.contains(first) && !shown.contains(second.trim()),
        "{shown}"
    );
}
