//! TEST DOUBLE — a Helm chart repository over plain HTTP on loopback: serves the files of
//! one directory (packaged charts and their `index.yaml`), as a chart museum would.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `dir` at the returned `http://127.0.0.1:PORT` until the task is aborted.
pub async fn serve(dir: PathBuf) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("the chart repository cannot listen")?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = respond(&dir, &String::from_utf8_lossy(&request)).await;
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((url, task))
}

async fn respond(dir: &Path, request: &str) -> Vec<u8> {
    let mut parts = request.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("/"),
    );
    let path = target
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let file = safe_join(dir, path);
    let body = match (method, file) {
        ("GET" | "HEAD", Some(file)) => tokio::fs::read(&file).await.ok(),
        _ => None,
    };
    let (status, content_type, body) = match body {
        Some(body) => {
            let kind = if path.ends_with(".yaml") {
                "application/x-yaml"
            } else {
                "application/gzip"
            };
            ("200 OK", kind, body)
        }
        None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    let mut response =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&body);
    }
    response
}

/// `dir/relative`, unless `relative` climbs out of `dir`.
fn safe_join(dir: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_directory() {
        assert!(safe_join(Path::new("/srv"), "index.yaml").is_some());
        assert!(safe_join(Path::new("/srv"), "../etc/passwd").is_none());
        assert!(safe_join(Path::new("/srv"), "/etc/passwd").is_none());
    }
}
