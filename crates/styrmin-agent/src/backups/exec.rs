//! Streams between pods through exec, as on any cluster: a dump's stdout in one pod
//! becomes the stdin of a command in another (the backup volume's holder pod), without
//! touching the agent's disk. Every stream is bounded by a deadline.

use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::actions::api_error;

/// Stderr kept for an error message.
const STDERR_LIMIT: usize = 8 * 1024;

/// A container to exec in.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pod {}/{} ({})",
            self.namespace, self.pod, self.container
        )
    }
}

fn shell(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

async fn start(
    client: &Client,
    target: &Target,
    script: &str,
    stdin: bool,
) -> Result<AttachedProcess> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let params = AttachParams::default()
        .container(target.container.clone())
        .stdin(stdin)
        .stdout(true)
        .stderr(true);
    pods.exec(&target.pod, shell(script), &params)
        .await
        .map_err(api_error)
        .with_context(|| format!("exec in {target}"))
}

/// Reads a stream to its end, keeping at most `limit` bytes.
async fn drain(reader: Option<impl AsyncRead + Unpin>, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = reader.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    kept
}

/// `Ok` for a successful exit, else the exit code (or the reason) and stderr.
fn outcome(what: &str, target: &Target, status: Option<Status>, stderr: &[u8]) -> Result<()> {
    let stderr = String::from_utf8_lossy(stderr);
    let status = status.ok_or_else(|| {
        anyhow!(
            "{what} in {target} ended without a status: {}",
            stderr.trim()
        )
    })?;
    if status.status.as_deref() == Some("Success") {
        return Ok(());
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.clone());
    match code {
        Some(code) => bail!(
            "{what} in {target} exited with code {code}: {}",
            stderr.trim()
        ),
        None => bail!(
            "{what} in {target} failed ({}): {}",
            status.message.unwrap_or_default(),
            stderr.trim()
        ),
    }
}

/// Runs `script` in `target` and returns its stdout (at most `limit` bytes kept).
pub async fn output(
    client: &Client,
    target: &Target,
    what: &str,
    script: &str,
    limit: usize,
    deadline: Instant,
) -> Result<String> {
    let run = async {
        let mut process = start(client, target, script, false).await?;
        let status = process.take_status().context("no exec status")?;
        let (out, err) = tokio::join!(
            drain(process.stdout(), limit),
            drain(process.stderr(), STDERR_LIMIT)
        );
        let status = status.await;
        outcome(what, target, status, &err)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    within(deadline, what, target, run).await
}

/// Streams the stdout of `from_script` in `from` into the stdin of `to_script` in `to`;
/// returns the bytes streamed. Both must succeed.
pub async fn pipe(
    client: &Client,
    (from, from_what, from_script): (&Target, &str, &str),
    (to, to_what, to_script): (&Target, &str, &str),
    deadline: Instant,
) -> Result<u64> {
    let run = async {
        let mut writer = start(client, to, to_script, true).await?;
        let mut reader = start(client, from, from_script, false).await?;
        let (from_status, to_status) = (
            reader.take_status().context("no exec status")?,
            writer.take_status().context("no exec status")?,
        );
        let mut source = reader.stdout().context("no stdout")?;
        let mut sink = writer.stdin().context("no stdin")?;
        let copy = async {
            let copied = tokio::io::copy(&mut source, &mut sink).await;
            // The reader's end closes the writer's stdin: the command sees end of input.
            let _ = sink.shutdown().await;
            drop(sink);
            copied
        };
        let (copied, from_err, to_out, to_err) = tokio::join!(
            copy,
            drain(reader.stderr(), STDERR_LIMIT),
            drain(writer.stdout(), STDERR_LIMIT),
            drain(writer.stderr(), STDERR_LIMIT),
        );
        if copied.is_err() {
            // The writer gave up: stop the reader rather than leave it blocked.
            reader.abort();
        }
        let (from_status, to_status) = tokio::join!(from_status, to_status);
        outcome(from_what, from, from_status, &from_err)?;
        let mut to_err = to_err;
        if to_err.is_empty() {
            to_err = to_out;
        }
        outcome(to_what, to, to_status, &to_err)?;
        copied.with_context(|| format!("streaming from {from} to {to}"))
    };
    within(deadline, from_what, from, run).await
}

async fn within<T>(
    deadline: Instant,
    what: &str,
    target: &Target,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, work).await {
        Ok(result) => result,
        Err(_) => bail!("{what} in {target} did not finish before the deadline"),
    }
}
