//! The `styrmin` binary as an operator runs it: `server` prints the bootstrap admin token
//! on its first start only and stops cleanly on SIGTERM; `up` loads the bundled drivers and
//! registers `local`/`dev`, and a second `up` resumes from the same data directory; a
//! busy address and an unusable database URL are errors that say what to change.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use styrmin_client::Client;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    lines: Vec<String>,
    rest: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// Starts the binary and reads its stdout until a line contains `ready_marker`.
async fn start(args: &[&str], data_dir: &Path, ready_marker: &str) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_styrmin"))
        .args(args)
        .env("STYRMIN_DATA_DIR", data_dir)
        .env_remove("STYRMIN_ADMIN_TOKEN")
        .env_remove("STYRMIN_DATABASE_URL")
        // `up` saves styrminctl's `local` context: never into the real home.
        .env("STYRMIN_CONFIG", data_dir.join("client-config.yaml"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("styrmin starts");
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    let read = async {
        while let Some(line) = reader.next_line().await.unwrap() {
            let done = line.contains(ready_marker);
            lines.push(line);
            if done {
                return;
            }
        }
        panic!("styrmin exited before `{ready_marker}`: {lines:?}");
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("styrmin became ready");
    Running {
        child,
        lines,
        rest: reader,
    }
}

impl Running {
    fn after(&self, prefix: &str) -> Option<String> {
        self.lines
            .iter()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.trim().to_owned()))
    }

    async fn terminate(mut self) -> i32 {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        while let Ok(Some(line)) = self.rest.next_line().await {
            self.lines.push(line);
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("stops within 20 s")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_prints_its_admin_token_once_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", styrmin_testkit::free_port());
    let first = start(&["server", "--listen", &listen], data.path(), "GraphQL:").await;
    let first_lines = first.lines.clone();
    let token = first.after("Bootstrap admin token (shown once, store it now):");
    assert_eq!(first.terminate().await, 0);
    let token = token.unwrap_or_else(|| panic!("no token printed: {first_lines:?}"));

    let second = start(&["server", "--listen", &listen], data.path(), "GraphQL:").await;
    assert!(
        second.after("Bootstrap admin token").is_none(),
        "printed again: {:?}",
        second.lines
    );
    let client = Client::new(&format!("http://{listen}"), Some(token)).unwrap();
    let me = client
        .request("{ me { name role } }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        me["me"],
        json!({"name": "bootstrap-admin", "role": "admin"})
    );
    assert!(data.path().join("styrmin.db").exists() && data.path().join("server.key").exists());
    assert_eq!(second.terminate().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_loads_the_bundled_drivers_and_resumes_from_its_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", styrmin_testkit::free_port());
    let first = start(
        &["up", "--listen", &listen],
        data.path(),
        "Ctrl-C stops Styrmin",
    )
    .await;
    let token = first.after("Admin token:").expect("a token");
    assert!(
        first
            .lines
            .iter()
            .any(|l| l.contains("my-app") && l.ends_with("loaded")),
        "{:?}",
        first.lines
    );
    let client = Client::new(&format!("http://{listen}"), Some(token.clone())).unwrap();
    let v = client
        .request(
            "{ clusters { id name environments { name namespace } } applicationDrivers { name } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(v["clusters"][0]["name"], "local");
    assert_eq!(
        v["clusters"][0]["environments"],
        json!([{"name": "dev", "namespace": "styrmin-dev"}])
    );
    let drivers: Vec<&str> = v["applicationDrivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(drivers, ["my-app", "traefik"]);
    let cluster_id = v["clusters"][0]["id"].clone();
    assert_eq!(first.terminate().await, 0);

    let second = start(
        &["up", "--listen", &listen],
        data.path(),
        "Ctrl-C stops Styrmin",
    )
    .await;
    assert_eq!(
        second.after("Admin token:").as_deref(),
        Some(token.as_str())
    );
    assert!(
        second
            .lines
            .iter()
            .any(|l| l.contains("my-app") && l.ends_with("unchanged")),
        "{:?}",
        second.lines
    );
    let v = client
        .request("{ clusters { id } environments { id } }", json!({}))
        .await
        .unwrap();
    assert_eq!(v["clusters"], json!([{"id": cluster_id}]));
    assert_eq!(v["environments"].as_array().unwrap().len(), 1);
    assert_eq!(second.terminate().await, 0);
}

/// `styrmin ARGS` run to its end: exit code and stderr.
async fn run_to_end(args: &[&str], data_dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_styrmin"))
        .args(args)
        .env("STYRMIN_DATA_DIR", data_dir)
        .env("STYRMIN_CONFIG", data_dir.join("client-config.yaml"))
        .env_remove("STYRMIN_DATABASE_URL")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ends within 30 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_address_is_an_error_naming_it_and_the_flag_that_changes_it() {
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    for command in ["server", "up"] {
        let mut args = vec![command, "--listen", &listen];
        if command == "up" {
            args.push("--no-cluster");
        }
        let (code, stderr) = run_to_end(&args, data.path()).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(&format!("{listen} is already in use")) && stderr.contains("--listen"),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_urls_create_their_file_and_unusable_urls_name_the_wrong_part() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", styrmin_testkit::free_port());
    // `sqlite://PATH` as --help documents it: the file and its directories are created.
    let file = data.path().join("new/dir/styrmin.db");
    let url = format!("sqlite://{}", file.display());
    let server = start(
        &["server", "--listen", &listen, "--database", &url],
        data.path(),
        "GraphQL:",
    )
    .await;
    assert!(file.is_file(), "{} was created", file.display());
    assert_eq!(server.terminate().await, 0);

    let (code, stderr) = run_to_end(
        &["server", "--database", "mysql://u@localhost/db"],
        data.path(),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("scheme `mysql`"), "{stderr}");
    let blocked = data.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let url = format!("sqlite://{}/x.db", blocked.display());
    let (code, stderr) = run_to_end(&["server", "--database", &url], data.path()).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&blocked.display().to_string()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reset_starts_clean_only_when_confirmed() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", styrmin_testkit::free_port());
    let up = ["up", "--no-cluster", "--listen", &listen];
    let first = start(&up, data.path(), "Ctrl-C stops Styrmin").await;
    let token = first.after("Admin token:").expect("a token");
    assert_eq!(first.terminate().await, 0);

    // Not in a terminal and no --yes: refused, nothing deleted.
    let (code, stderr) = run_to_end(
        &["up", "--no-cluster", "--listen", &listen, "--reset"],
        data.path(),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(data.path().join("styrmin.db").exists());

    let reset = [
        "up",
        "--no-cluster",
        "--listen",
        &listen,
        "--reset",
        "--yes",
    ];
    let second = start(&reset, data.path(), "Ctrl-C stops Styrmin").await;
    assert!(
        second.lines.iter().any(|l| l.starts_with("Reset: deleted")),
        "{:?}",
        second.lines
    );
    let new_token = second.after("Admin token:").expect("a token");
    assert_ne!(new_token, token, "a clean start has a new admin");
    assert_eq!(second.terminate().await, 0);
}
