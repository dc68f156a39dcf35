//! The local cluster's tools, found the same way by `styrmin up` and the benchmarks: the
//! control plane (etcd, kube-apiserver, kube-controller-manager), helm (the Flux
//! stand-in's engine) and rclone (the Velero stand-in's S3 client).
//!
//! With STYRMIN_KUBE_BIN and STYRMIN_HELM both set, those are used as they are. Otherwise
//! the preparation script packed into the binary (`scripts/prepare-local.sh`) runs: it
//! installs what is missing and builds the control plane the first time (about 5
//! minutes), printing its steps, and returns at once when everything is there. A missing
//! tool is an error that says what to do, never a cluster that waits for ever.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::binaries;
use crate::packed;

/// How often a running preparation says it is still at work.
const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub bin_dir: PathBuf,
    pub helm: PathBuf,
    pub rclone: Option<PathBuf>,
}

impl Tools {
    /// STYRMIN_KUBE_BIN and STYRMIN_HELM (and STYRMIN_RCLONE, optional), when both are set.
    pub fn from_env() -> Option<Tools> {
        let bin_dir = std::env::var_os("STYRMIN_KUBE_BIN").filter(|v| !v.is_empty())?;
        let helm = std::env::var_os("STYRMIN_HELM").filter(|v| !v.is_empty())?;
        Some(Tools {
            bin_dir: bin_dir.into(),
            helm: helm.into(),
            rclone: crate::s3::default_rclone(),
        })
    }

    /// Fails, naming the tool and what to do, when one is not there.
    pub fn check(&self) -> Result<()> {
        binaries::check(&self.bin_dir)?;
        if !self.helm.is_file() {
            bail!(
                "helm is not at {} (STYRMIN_HELM); unset STYRMIN_KUBE_BIN and STYRMIN_HELM to \
                 let the preparation install it",
                self.helm.display()
            );
        }
        Ok(())
    }

    /// These tools in cluster options.
    pub fn apply(&self, options: &mut crate::Options) {
        options.bin_dir = self.bin_dir.clone();
        options.helm = Some(self.helm.clone());
        if self.rclone.is_some() {
            options.rclone = self.rclone.clone();
        }
    }
}

/// Where the preparation installs and builds: STYRMIN_CACHE when set; else
/// `~/.cache/styrmin` when the test suite's preparation already built the control plane
/// there (nothing is built twice); else `fallback`.
pub fn cache_dir(fallback: &Path) -> PathBuf {
    if let Some(cache) = std::env::var_os("STYRMIN_CACHE").filter(|v| !v.is_empty()) {
        return cache.into();
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        let shared = PathBuf::from(home).join(".cache/styrmin");
        let bin = shared.join(format!("kubernetes-{}/bin", binaries::KUBERNETES_VERSION));
        if binaries::check(&bin).is_ok() {
            return shared;
        }
    }
    fallback.to_owned()
}

/// The tools from the environment when set there, else from the preparation script run
/// with its scripts unpacked into `work_dir`, its cache in `cache` and its output (shown
/// as it comes) kept in `work_dir/prepare.log`.
pub async fn find_or_prepare(work_dir: &Path, cache: &Path) -> Result<Tools> {
    if let Some(tools) = Tools::from_env() {
        tools.check()?;
        return Ok(tools);
    }
    let tools = prepare(work_dir, cache).await?;
    tools.check()?;
    Ok(tools)
}

/// Runs the packed `prepare-local.sh`. Its progress lines go to stderr as they come and
/// into the log; while it works, a line every 30 s says how long it has run.
pub async fn prepare(work_dir: &Path, cache: &Path) -> Result<Tools> {
    let scripts = work_dir.join("scripts");
    packed::unpack(packed::PREPARE_SCRIPTS, &scripts, false)?;
    let log_path = work_dir.join("prepare.log");
    let mut log = tokio::fs::File::create(&log_path)
        .await
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    eprintln!(
        "Preparing the local cluster's tools in {} (the first time installs helm and rclone \
         and builds Kubernetes' control plane, about 5 minutes; log: {})",
        cache.display(),
        log_path.display()
    );
    let mut child = tokio::process::Command::new("bash")
        .arg(scripts.join("prepare-local.sh"))
        .env("STYRMIN_CACHE", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run bash for the preparation script")?;
    let stdout = child.stdout.take().expect("piped");
    let collect_stdout = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut out = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            out.push(line);
        }
        out
    });
    let mut progress = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            line = progress.next_line() => match line {
                Ok(Some(line)) => {
                    eprintln!("  {line}");
                    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                }
                _ => break,
            },
            _ = heartbeat.tick() => eprintln!(
                "  … still preparing, {} so far (log: {})",
                elapsed(started),
                log_path.display()
            ),
        }
    }
    let status = child
        .wait()
        .await
        .context("waiting for the preparation script")?;
    let stdout = collect_stdout.await.unwrap_or_default();
    let _ = log.write_all(stdout.join("\n").as_bytes()).await;
    if !status.success() {
        bail!(
            "preparing the local cluster's tools failed after {} ({status}); its output is \
             above and in {}. Fix what it names and run the command again (finished steps \
             are kept), or set STYRMIN_KUBE_BIN and STYRMIN_HELM to tools you already have",
            elapsed(started),
            log_path.display()
        );
    }
    let value = |key: &str| {
        stdout
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let (Some(bin_dir), Some(helm)) = (value("STYRMIN_KUBE_BIN"), value("STYRMIN_HELM")) else {
        bail!(
            "the preparation script named no STYRMIN_KUBE_BIN or STYRMIN_HELM (see {})",
            log_path.display()
        );
    };
    eprintln!("Tools ready in {}", elapsed(started));
    Ok(Tools {
        bin_dir,
        helm,
        rclone: value("STYRMIN_RCLONE"),
    })
}

/// `4.2s`, `3m07s`.
pub fn elapsed(since: Instant) -> String {
    let d = since.elapsed();
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
