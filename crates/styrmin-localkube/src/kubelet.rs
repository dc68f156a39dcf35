//! TEST DOUBLE — the simulated kubelet's API: `exec`. The API server proxies `kubectl exec`
//! and kube-rs exec to `https://<node>:<port>/exec/<namespace>/<pod>/<container>` as a
//! WebSocket upgrade (subprotocols `v4.channel.k8s.io` and `v5.channel.k8s.io`). The
//! command runs as a host process, in the pod's own directory, with the container's
//! environment variables, so a `pg_dump` in a "postgres pod" dumps the local PostgreSQL
//! (a database pod's connection is added to it: [`crate::databases`]).
//!
//! Volumes: a container's `volumeMounts` of claims (the volume simulator's host
//! directories) and `emptyDir`s (`<pod dir>/volumes/<name>`) are not mounted; instead every
//! argument of the command that names a path under a mount path (`/backup`,
//! `/backup/db.dump`, also inside a shell script: `cat > /backup/db.dump`) has that
//! prefix replaced by the volume's host directory. So `sh -c 'cat > /backup/x'` in a pod
//! mounting a claim at `/backup` writes into the claim's files.
//!
//! Channel protocol: every binary message starts with a channel byte — 0 stdin, 1 stdout,
//! 2 stderr, 3 the final status (JSON), 4 terminal resize; v5 adds 255, "close channel".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::Client;
use kube::api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::databases::DatabaseServers;

const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

pub struct Kubelet {
    pub client: Client,
    /// Each pod runs in `<pods_dir>/<namespace>/<pod>`.
    pub pods_dir: PathBuf,
    /// Searched before `PATH` for the command: the "image's" own programs.
    pub image_path: Vec<PathBuf>,
    /// The database servers behind database pods, if any.
    pub databases: Option<Arc<DatabaseServers>>,
}

/// Serves the kubelet API on `127.0.0.1:<port>` until the task is aborted.
pub async fn serve(kubelet: Arc<Kubelet>, port: u16) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("the simulated kubelet cannot listen on port {port}"))?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config()?));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let kubelet = kubelet.clone();
            tokio::spawn(async move {
                if let Err(error) = handle(kubelet, acceptor, tcp).await {
                    tracing::debug!(%error, "simulated kubelet: connection failed");
                }
            });
        }
    }))
}

/// A self-signed certificate: the API server does not verify kubelets it was given no CA for.
fn tls_config() -> Result<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    Ok(config)
}

#[derive(Debug, Default)]
struct ExecRequest {
    namespace: String,
    pod: String,
    container: String,
    command: Vec<String>,
    stdin: bool,
    protocol: String,
}

// tungstenite's handshake callback type returns its error response by value.
#[allow(clippy::result_large_err)]
async fn handle(
    kubelet: Arc<Kubelet>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Result<()> {
    let tls = acceptor.accept(tcp).await?;
    let mut exec = ExecRequest::default();
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        exec = parse_request(request).map_err(|e| {
            let mut refusal = ErrorResponse::new(Some(e.to_string()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            refusal
        })?;
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&exec.protocol).expect("a known protocol"),
        );
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(tls, callback).await?;
    run_exec(&kubelet, exec, ws).await
}

fn parse_request(request: &Request) -> Result<ExecRequest> {
    let path: Vec<&str> = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let ["exec", namespace, pod, container] = path.as_slice() else {
        return Err(anyhow!(
            "the simulated kubelet serves only /exec/NAMESPACE/POD/CONTAINER"
        ));
    };
    let offered: Vec<String> = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let protocol = PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .ok_or_else(|| anyhow!("no supported exec protocol among {offered:?}"))?;
    let mut exec = ExecRequest {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
        protocol: protocol.to_string(),
        ..ExecRequest::default()
    };
    for pair in request.uri().query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "command" => exec.command.push(value),
            "stdin" | "input" => exec.stdin = matches!(value.as_str(), "1" | "true"),
            _ => {}
        }
    }
    if exec.command.is_empty() {
        return Err(anyhow!("no command given"));
    }
    Ok(exec)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a command runs with: the container's environment, the pod's directory, and the
/// container's mounts (mount path, host directory), longest mount path first.
struct Prepared {
    env: BTreeMap<String, String>,
    dir: PathBuf,
    mounts: Vec<(String, PathBuf)>,
}

/// The container's environment, as the kubelet would set it, its directory and mounts.
async fn container_env(kubelet: &Kubelet, exec: &ExecRequest) -> Result<Prepared> {
    let pods: Api<Pod> = Api::namespaced(kubelet.client.clone(), &exec.namespace);
    let pod = pods
        .get(&exec.pod)
        .await
        .with_context(|| format!("pod {}/{}", exec.namespace, exec.pod))?;
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == exec.container)
        .ok_or_else(|| anyhow!("pod {} has no container {}", exec.pod, exec.container))?;
    let mut env = BTreeMap::new();
    for var in container.env.clone().unwrap_or_default() {
        let value = match (var.value, var.value_from) {
            (Some(v), _) => Some(v),
            (None, Some(from)) => {
                if let Some(r) = from.secret_key_ref {
                    let api: Api<Secret> = Api::namespaced(kubelet.client.clone(), &exec.namespace);
                    api.get_opt(&r.name).await?.and_then(|s| {
                        s.data?
                            .get(&r.key)
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    })
                } else if let Some(r) = from.config_map_key_ref {
                    let api: Api<ConfigMap> =
                        Api::namespaced(kubelet.client.clone(), &exec.namespace);
                    api.get_opt(&r.name)
                        .await?
                        .and_then(|c| c.data?.get(&r.key).cloned())
                } else if let Some(r) = from.field_ref {
                    match r.field_path.as_str() {
                        "metadata.name" => Some(exec.pod.clone()),
                        "metadata.namespace" => Some(exec.namespace.clone()),
                        "status.podIP" => pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
                        _ => None,
                    }
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(value) = value {
            env.insert(var.name, value);
        }
    }
    if let Some(databases) = &kubelet.databases {
        env.extend(
            databases
                .exec_env(&exec.namespace, &exec.pod, container)
                .await?,
        );
    }
    let dir = pod_dir(&kubelet.pods_dir, &exec.namespace, &exec.pod);
    tokio::fs::create_dir_all(&dir).await?;
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.clone().unwrap_or_default() {
        let Some(volume) = spec.volumes.iter().flatten().find(|v| v.name == mount.name) else {
            continue;
        };
        let host = if let Some(claim) = &volume.persistent_volume_claim {
            claim_dir(&kubelet.client, &exec.namespace, &claim.claim_name)
                .await?
                .with_context(|| {
                    format!(
                        "the claim {}/{} of volume {} is not bound",
                        exec.namespace, claim.claim_name, volume.name
                    )
                })?
        } else if volume.empty_dir.is_some() {
            let host = dir.join("volumes").join(&volume.name);
            tokio::fs::create_dir_all(&host).await?;
            host
        } else {
            continue;
        };
        let host = match &mount.sub_path {
            Some(sub) if !sub.is_empty() => host.join(sub),
            _ => host,
        };
        mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), host));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(Prepared { env, dir, mounts })
}

/// The host directory behind a bound claim (the volume simulator's hostPath).
async fn claim_dir(client: &Client, namespace: &str, claim: &str) -> Result<Option<PathBuf>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(volume) = claims
        .get_opt(claim)
        .await?
        .and_then(|c| c.spec)
        .and_then(|s| s.volume_name)
    else {
        return Ok(None);
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    Ok(volumes
        .get_opt(&volume)
        .await?
        .and_then(|pv| pv.spec)
        .and_then(|s| s.host_path)
        .map(|h| PathBuf::from(h.path)))
}

/// `arg` with every path under a mount path pointed at the mount's host directory. A
/// mount path counts where it starts a word (after the start, whitespace, a quote, `=`,
/// `<`, `>` or `:`) and ends at a `/` or the end of a word.
fn rewrite_mounts(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut i = 0;
    'scan: while i < arg.len() {
        let starts_word = i == 0
            || arg[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || "'\"=<>:".contains(c));
        if starts_word {
            for (path, host) in mounts {
                if path.is_empty() || !arg[i..].starts_with(path.as_str()) {
                    continue;
                }
                let end = i + path.len();
                let ends_word = arg[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == '/' || c.is_whitespace() || "'\";&|)".contains(c));
                if ends_word {
                    out.push_str(&host.display().to_string());
                    i = end;
                    continue 'scan;
                }
            }
        }
        let c = arg[i..].chars().next().expect("inside the string");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

pub fn pod_dir(pods_dir: &Path, namespace: &str, pod: &str) -> PathBuf {
    pods_dir.join(namespace).join(pod)
}

async fn run_exec<S>(
    kubelet: &Kubelet,
    exec: ExecRequest,
    ws: tokio_tungstenite::WebSocketStream<S>,
) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let Prepared { env, dir, mounts } = match container_env(kubelet, &exec).await {
        Ok(found) => found,
        Err(e) => {
            let status = failure_status("InternalError", &format!("{e:#}"), None);
            sink.send(channel_message(STATUS, status.as_bytes()))
                .await?;
            close_normally(&mut sink).await;
            return Ok(());
        }
    };
    let path = {
        let base = env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        let mut dirs = kubelet.image_path.clone();
        dirs.extend(std::env::split_paths(&base));
        std::env::join_paths(dirs).unwrap_or_default()
    };
    let argv: Vec<String> = exec
        .command
        .iter()
        .map(|a| rewrite_mounts(a, &mounts))
        .collect();
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(&env)
        .env("PATH", path)
        .env("STYRMIN_SIM_POD_DIR", &dir)
        .current_dir(&dir)
        .stdin(if exec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let message = format!("exec {:?}: {e}", exec.command[0]);
            sink.send(channel_message(
                STATUS,
                failure_status("InternalError", &message, None).as_bytes(),
            ))
            .await?;
            close_normally(&mut sink).await;
            return Ok(());
        }
    };

    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
    for (channel, reader) in [
        (
            STDOUT,
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            STDERR,
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ] {
        let Some(mut reader) = reader else { continue };
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 || tx.send((channel, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(out_tx);

    let mut stdin = child.stdin.take();
    let pump_stdin = async {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Binary(data) = message else {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match data.first() {
                Some(&STDIN) => {
                    if let Some(input) = stdin.as_mut()
                        && input.write_all(&data[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(&CLOSE) if data.get(1) == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
        stdin = None;
    };
    let forward_output = async {
        while let Some((channel, data)) = out_rx.recv().await {
            sink.send(channel_message(channel, &data)).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = forward_output => result?,
        () = pump_stdin => {
            // stdin ended first: keep forwarding output until the process is done.
            while let Some((channel, data)) = out_rx.recv().await {
                sink.send(channel_message(channel, &data)).await?;
            }
        }
    }
    let status = child.wait().await?;
    let report = match status.code() {
        Some(0) => r#"{"metadata":{},"status":"Success"}"#.to_owned(),
        Some(code) => failure_status(
            "NonZeroExitCode",
            &format!("command terminated with non-zero exit code: exit status {code}"),
            Some(code),
        ),
        None => failure_status("InternalError", "the command was killed by a signal", None),
    };
    sink.send(channel_message(STATUS, report.as_bytes()))
        .await?;
    close_normally(&mut sink).await;
    Ok(())
}

/// client-go reads a close frame without a status code (1005) as an error.
async fn close_normally<S>(sink: &mut S)
where
    S: futures::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

fn failure_status(reason: &str, message: &str, exit_code: Option<i32>) -> String {
    let mut status = serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    });
    if let Some(code) = exit_code {
        status["details"] =
            serde_json::json!({"causes": [{"reason": "ExitCode", "message": code.to_string()}]});
    }
    status.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths under a mount path point at the volume's host directory, in plain arguments
    /// and inside shell scripts; look-alikes (`/backups`, `x/backup`) stay.
    #[test]
    fn mount_paths_are_rewritten_to_host_directories() {
        let mounts = vec![
            ("/backup/deep".to_owned(), PathBuf::from("/h/deep")),
            ("/backup".to_owned(), PathBuf::from("/h/b")),
        ];
        assert_eq!(rewrite_mounts("/backup", &mounts), "/h/b");
        assert_eq!(
            rewrite_mounts(
                "cat > /backup/db.dump.tmp && mv '/backup/db.dump.tmp' /backup/db.dump",
                &mounts
            ),
            "cat > /h/b/db.dump.tmp && mv '/h/b/db.dump.tmp' /h/b/db.dump"
        );
        assert_eq!(rewrite_mounts("/backup/deep/x", &mounts), "/h/deep/x");
        assert_eq!(rewrite_mounts("--file=/backup/x", &mounts), "--file=/h/b/x");
        assert_eq!(
            rewrite_mounts("/backups x/backup", &mounts),
            "/backups x/backup"
        );
    }

    #[test]
    fn query_strings_decode_like_urls() {
        assert_eq!(percent_decode("echo%20hi%2Bthere+x"), "echo hi+there x");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn exec_requests_name_pod_container_command_and_protocol() {
        let request = Request::builder()
            .uri("/exec/shop/web-1/server?command=sh&command=-c&command=echo%20hi&stdin=1&stdout=1")
            .header(
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            )
            .body(())
            .unwrap();
        let exec = parse_request(&request).unwrap();
        assert_eq!(
            (
                exec.namespace.as_str(),
                exec.pod.as_str(),
                exec.container.as_str()
            ),
            ("shop", "web-1", "server")
        );
        assert_eq!(exec.command, vec!["sh", "-c", "echo hi"]);
        assert!(exec.stdin);
        assert_eq!(exec.protocol, "v5.channel.k8s.io");
    }
}
