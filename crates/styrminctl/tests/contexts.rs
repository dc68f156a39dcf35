//! Which server styrminctl talks to, through the binary: `login` checks a token and saves
//! it as a context in the configuration file (mode 0600, moved by STYRMIN_CONFIG), later
//! commands need no flag or variable, `context use` switches, flags and environment
//! variables still win, a context's token never goes to another server; `version` shows
//! both versions and `completion` prints scripts for bash, zsh and fish.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use styrmin_testkit::{ADMIN_TOKEN, Harness, Kind};
use tokio::io::AsyncWriteExt as _;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// styrminctl with only the configuration file set: none of the suite's variables.
async fn ctl(config: &Path, env: &[(&str, &str)], stdin: Option<&str>, args: &[&str]) -> Out {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_styrminctl"));
    command
        .args(args)
        .env_remove("STYRMIN_SERVER_ADDRESS")
        .env_remove("STYRMIN_TOKEN")
        .env_remove("STYRMIN_CONTEXT")
        .env("STYRMIN_CONFIG", config)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("styrminctl runs");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(out: &Out) -> Value {
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn config_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested/styrmin.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_context_that_later_commands_use_and_flags_still_win() {
    let h = Harness::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_path(&dir);
    let url = h.server.url();

    // A refused token is not saved.
    let out = ctl(&config, &[], None, &["login", &url, "--token", "stm_wrong"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(!config.exists(), "nothing written for a refused token");

    // The token on stdin, as a person pastes it.
    let out = ctl(
        &config,
        &[],
        Some(&format!("{ADMIN_TOKEN}\n")),
        &["login", &url, "--name", "test"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("context `test` is current"),
        "{}",
        out.stdout
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner may read the tokens");

    // No flag, no variable: the current context's server and token.
    let me = json(&ctl(&config, &[], None, &["tokens", "whoami", "-o", "json"]).await);
    assert_eq!(me["name"], "bootstrap-admin");
    let version = json(&ctl(&config, &[], None, &["version", "-o", "json"]).await);
    assert_eq!(version["client"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["server"], env!("CARGO_PKG_VERSION"));
    let listed = json(&ctl(&config, &[], None, &["context", "list", "-o", "json"]).await);
    assert_eq!(
        listed,
        serde_json::json!([{"name": "test", "server": url, "current": true}])
    );

    // A second context, switched to and back; an unknown one is "not found".
    let other = format!("http://127.0.0.1:{}", styrmin_testkit::free_port());
    let out = ctl(&config, &[], None, &["context", "use", "nowhere"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let mut saved: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    saved["contexts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "offline", "server": other, "token": "stm_other"}));
    std::fs::write(&config, serde_yaml_ng::to_string(&saved).unwrap()).unwrap();
    assert_eq!(
        ctl(&config, &[], None, &["context", "use", "offline"])
            .await
            .code,
        0
    );
    let out = ctl(&config, &[], None, &["tokens", "whoami"]).await;
    assert_eq!(
        out.code, 2,
        "the offline server is unreachable: {}",
        out.stderr
    );
    // --context picks another context for one command.
    let me = json(
        &ctl(
            &config,
            &[],
            None,
            &["--context", "test", "tokens", "whoami", "-o", "json"],
        )
        .await,
    );
    assert_eq!(me["name"], "bootstrap-admin");
    // Variables win over the current context.
    let env = [
        ("STYRMIN_SERVER_ADDRESS", url.as_str()),
        ("STYRMIN_TOKEN", ADMIN_TOKEN),
    ];
    let me = json(&ctl(&config, &env, None, &["tokens", "whoami", "-o", "json"]).await);
    assert_eq!(me["name"], "bootstrap-admin");
    // A context's token is never sent to another server: here the test server, reached
    // by --server while the current context names the offline one.
    let out = ctl(&config, &[], None, &["--server", &url, "tokens", "whoami"]).await;
    assert_eq!(out.code, 5, "no token sent: {}", out.stderr);
    assert_eq!(
        ctl(&config, &[], None, &["context", "use", "test"])
            .await
            .code,
        0
    );
    let me = json(&ctl(&config, &[], None, &["tokens", "whoami", "-o", "json"]).await);
    assert_eq!(me["name"], "bootstrap-admin");

    // A broken file is named, not guessed around.
    std::fs::write(&config, "contexts: {").unwrap();
    let out = ctl(&config, &[], None, &["tokens", "whoami"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&config.display().to_string()),
        "{}",
        out.stderr
    );
    h.server.stop().await.unwrap();
}

#[tokio::test]
async fn version_without_a_server_and_completion_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_path(&dir);
    let out = ctl(&config, &[], None, &["version", "--client"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.stdout
    );
    let port = styrmin_testkit::free_port();
    let env = [("STYRMIN_SERVER_ADDRESS", format!("http://127.0.0.1:{port}"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = ctl(&config, &env, None, &["version"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("client"),
        "the client's version first: {}",
        out.stdout
    );
    assert!(out.stderr.contains("cannot ask"), "{}", out.stderr);
    for (shell, expected) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef styrminctl"),
        ("fish", "complete -c styrminctl"),
    ] {
        let out = ctl(&config, &[], None, &["completion", shell]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains(expected) && out.stdout.contains("login"),
            "{shell}: {}",
            &out.stdout[..out.stdout.len().min(300)]
        );
    }
    assert!(!config.exists(), "nothing here writes the configuration");
}
