//! Python actions (`actions.py::fn`): each runs as a `python3` subprocess with the helper
//! package shipped in `python/` on its path — `styrmin_backend.actions`, and a stand-in
//! for Prefect's `flow` and `get_run_logger` used only when Prefect is not installed — so
//! existing drivers run unchanged. The primitives call back to the agent over a Unix
//! socket in a private directory, each request carrying a token made for this one call.
//! Output and the logger's lines stream into the flow-run log; a non-zero exit fails the
//! action with the traceback.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize as _;
use serde_json::{Value, json};
use styrmin_core::driver::Location;
use styrmin_core::planner::FlowKind;
use styrmin_core::protocol::{ActionCall, ActionReply};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::OnceCell;

use super::ActionHost;

/// The helper package, built into the agent: (path under the runtime directory, text).
const PACKAGE: [(&str, &str); 6] = [
    (
        "lib/styrmin_backend/__init__.py",
        include_str!("../../../../python/styrmin_backend/__init__.py"),
    ),
    (
        "lib/styrmin_backend/_agent.py",
        include_str!("../../../../python/styrmin_backend/_agent.py"),
    ),
    (
        "lib/styrmin_backend/_run.py",
        include_str!("../../../../python/styrmin_backend/_run.py"),
    ),
    (
        "lib/styrmin_backend/actions.py",
        include_str!("../../../../python/styrmin_backend/actions.py"),
    ),
    (
        "shim/prefect/__init__.py",
        include_str!("../../../../python/shim/prefect/__init__.py"),
    ),
    (
        "shim/prefect/logging.py",
        include_str!("../../../../python/shim/prefect/logging.py"),
    ),
];
/// Lines of stderr kept for the failure message (the traceback's end).
const STDERR_TAIL: usize = 40;
/// The longest request line an action may send.
const MAX_REQUEST: usize = 1 << 20;

/// The helper package and the drivers' files on disk, written once per agent process.
pub struct Runtime {
    root: tempfile::TempDir,
    drivers: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

impl Runtime {
    pub fn new() -> Result<Runtime> {
        let root = tempfile::Builder::new()
            .prefix("styrmin-actions-")
            .tempdir()
            .context("cannot make a directory for Python actions")?;
        for (path, text) in PACKAGE {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a parent"))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Runtime {
            root,
            drivers: Default::default(),
        })
    }

    /// The driver version's files, written once under its digest.
    async fn driver_dir(&self, digest: &str, files: &crate::bundle::Files) -> Result<PathBuf> {
        let dir = self.root.path().join("drivers").join(digest);
        let mut written = self.drivers.lock().await;
        if !written.contains(digest) {
            for (path, content) in files {
                if path.split('/').any(|part| part == ".." || part.is_empty()) {
                    bail!("the driver bundle holds an unsafe path {path:?}");
                }
                let target = dir.join(path);
                tokio::fs::create_dir_all(target.parent().expect("a parent")).await?;
                tokio::fs::write(&target, content).await?;
            }
            written.insert(digest.to_owned());
        }
        Ok(dir)
    }
}

static RUNTIME: OnceCell<Runtime> = OnceCell::const_new();

async fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| async { Runtime::new() }).await
}

fn python() -> String {
    std::env::var("STYRMIN_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `location` for the host's run and waits for it (the caller bounds the time; the
/// process is killed when this future is dropped).
pub async fn run(host: &Arc<ActionHost>, location: &Location, deadline: Instant) -> Result<()> {
    let runtime = runtime().await?;
    let driver_dir = runtime.driver_dir(&host.driver_digest, &host.files).await?;
    let call_dir = tempfile::Builder::new()
        .prefix("call-")
        .tempdir_in(runtime.root.path())?;
    let socket = call_dir.path().join("agent.sock");
    let token = random_token()?;
    let context_file = call_dir.path().join("context.json");
    tokio::fs::write(&context_file, serde_json::to_vec(&host.context)?).await?;
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;

    let deployment_id = host.run.deployment_id.clone().unwrap_or_default();
    let mut arguments = json!({"deployment_id": deployment_id});
    if host.run.kind == FlowKind::Upgrade {
        arguments["target_version"] = Value::String(host.apply.instance.app_version.clone());
    }
    let mut child = tokio::process::Command::new(python())
        .args(["-m", "styrmin_backend._run"])
        .current_dir(&driver_dir)
        .env("PYTHONPATH", runtime.root.path().join("lib"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("STYRMIN_PREFECT_SHIM", runtime.root.path().join("shim"))
        .env("STYRMIN_ACTION_SOCKET", &socket)
        .env("STYRMIN_ACTION_TOKEN", &token)
        .env("STYRMIN_ACTION_FILE", driver_dir.join(&location.file))
        .env("STYRMIN_ACTION_FUNCTION", &location.function)
        .env("STYRMIN_ACTION_ARGUMENTS", arguments.to_string())
        .env("STYRMIN_CONTEXT_FILE", &context_file)
        .env("STYRMIN_DEPLOYMENT_ID", &deployment_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} for {location}", python()))?;

    let serve = {
        let host = host.clone();
        let token = token.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let host = host.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(&host, &token, connection, deadline).await {
                        tracing::debug!(error = %e, "action channel");
                    }
                });
            }
        })
    };
    let _serve = AbortOnDrop(serve);

    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let log = host.log.clone();
    let out = async {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.line("info", line);
        }
    };
    let log = host.log.clone();
    let err = async {
        let mut tail = VecDeque::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.line("warning", line.clone());
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail
    };
    let ((), tail, status) = tokio::join!(out, err, child.wait());
    let status = status?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail.into_iter().collect();
    bail!(
        "{location} {}:\n{}",
        match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed".to_owned(),
        },
        tail.join("\n")
    )
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request from the action: a JSON line in, a JSON line out.
async fn answer(
    host: &Arc<ActionHost>,
    token: &str,
    connection: UnixStream,
    deadline: Instant,
) -> Result<()> {
    let (read, mut write) = connection.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST as u64));
    tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line).await?;
    let reply = match serde_json::from_str::<Value>(&line) {
        Err(e) => ActionReply::refused(format!("not a JSON request: {e}")),
        Ok(request) if request.get("token").and_then(Value::as_str) != Some(token) => {
            ActionReply::refused("wrong token")
        }
        Ok(request) => match ActionCall::deserialize(&request) {
            Err(e) => ActionReply::refused(format!("not a request the agent knows: {e}")),
            Ok(call) => match dispatch(host, call, deadline).await {
                Ok(result) => ActionReply::done(result),
                Err(e) => ActionReply::refused(format!("{e:#}")),
            },
        },
    };
    let reply = serde_json::to_string(&reply)?;
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    write.shutdown().await.ok();
    Ok(())
}

async fn dispatch(host: &Arc<ActionHost>, call: ActionCall, deadline: Instant) -> Result<Value> {
    match call {
        ActionCall::Log { level, message } => {
            host.log.line(level.as_str(), message);
        }
        ActionCall::StopComponents { components } => {
            host.stop_components(&components, deadline).await?;
        }
        ActionCall::StartComponents { components } => {
            host.start_components(&components, deadline).await?;
        }
        ActionCall::WaitReady { components } => {
            host.wait_ready(&components, deadline).await?;
        }
        ActionCall::ExecuteCommands {
            component,
            commands,
        } => {
            let commands: Vec<Vec<String>> = commands
                .into_iter()
                .map(|c| vec!["sh".into(), "-c".into(), c])
                .collect();
            let outputs = host.execute_commands(&component, &commands).await?;
            return Ok(json!(outputs));
        }
        ActionCall::UpgradeDeploymentVersion { version } => {
            host.upgrade_deployment_version(&version).await?;
        }
        ActionCall::HttpCheck {
            service,
            path,
            expect_status,
        } => {
            host.http_check(&service, &path, expect_status, deadline)
                .await?;
        }
    }
    Ok(Value::Null)
}
