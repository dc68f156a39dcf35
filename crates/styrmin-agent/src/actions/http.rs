//! `http_check`: a plain HTTP GET to one of the deployment's services, sent straight to a
//! ready pod of the service's component on the service's port, as the Service would route
//! it (the agent runs inside the cluster, so pod addresses are reachable; no DNS or
//! API-server proxy in between).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::components::Component;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a check keeps trying before it reports the last answer as the failure.
pub const CHECK_WINDOW: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(500);

/// GETs `path` until the service answers `expect`, or fails at `deadline` with what it
/// answered last. Returns the status.
pub async fn check(
    component: &Component<'_>,
    service: &str,
    port: u16,
    path: &str,
    expect: u16,
    deadline: Instant,
) -> Result<u16> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    loop {
        let last = match component.ready_pod_ip().await {
            Ok(ip) => {
                let address = format!("{ip}:{port}");
                match tokio::time::timeout(ATTEMPT_TIMEOUT, get(&address, &path)).await {
                    Ok(Ok(status)) if status == expect => return Ok(status),
                    Ok(Ok(status)) => format!(
                        "GET {path} on service {service} ({address}) answered {status}, expected {expect}"
                    ),
                    Ok(Err(e)) => format!("GET {path} on service {service} ({address}): {e:#}"),
                    Err(_) => format!(
                        "GET {path} on service {service} ({address}): no answer within {ATTEMPT_TIMEOUT:?}"
                    ),
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() + RETRY >= deadline {
            bail!("{last}");
        }
        tokio::time::sleep(RETRY).await; // retry interval within a deadline
    }
}

/// The status code of `GET path` (HTTP/1.1, connection closed after).
async fn get(address: &str, path: &str) -> Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: styrmin-agent\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() && !head[..read].contains(&b'\n') {
        let n = stream.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or_default()
            )
        })
}
