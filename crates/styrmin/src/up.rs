//! `styrmin up`: Styrmin on this machine in one command. The server runs on SQLite in the
//! data directory, every bundled driver is checked and loaded, and a `local` cluster with
//! a `dev` environment is registered, so a second `up` resumes where the first stopped.
//! (The local cluster and its agent join with the agent issue.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use styrmin_bundle::Bundle;
use styrmin_core::driver::{self, SPEC_FILE};
use styrmin_server::{LocalSetup, bootstrap};

use crate::server::ServerArgs;

#[derive(Args, Clone)]
pub struct UpArgs {
    /// The directory of bundled drivers.
    #[arg(long, env = "STYRMIN_DRIVERS", default_value = "drivers")]
    pub drivers: PathBuf,
    /// Run only the server: no local cluster, no agent (runs stay scheduled).
    #[arg(long)]
    pub no_cluster: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

const LOCAL_CLUSTER: &str = "local";
const DEV_ENVIRONMENT: &str = "dev";

pub async fn run(args: UpArgs) -> Result<ExitCode> {
    let dirs = driver_dirs(&args.drivers)?;
    let mut invalid = 0;
    for dir in &dirs {
        let bundle = Bundle::read_dir(dir)?;
        let loaded = driver::load(&bundle.driver_files()?);
        if loaded.driver.is_none() {
            invalid += 1;
            eprintln!("{} is invalid:", dir.display());
            for d in loaded.errors() {
                eprintln!("  {d}");
            }
        }
    }
    if invalid > 0 {
        return Ok(ExitCode::from(1));
    }

    let stop = crate::shutdown_signal();
    let options = args.server.options();
    let data_dir = options.data_dir.clone();
    let running = styrmin_server::start(options).await?;
    let setup = bootstrap(
        &running,
        &LocalSetup {
            drivers: &dirs,
            cluster: LOCAL_CLUSTER,
            environment: DEV_ENVIRONMENT,
            // `up` owns the local cluster's agent: a fresh token each start.
            agent_token: !args.no_cluster,
        },
    )
    .await?;

    println!(
        "Styrmin {} — data in {}",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    println!("Bundled drivers ({}):", args.drivers.display());
    for d in &setup.drivers {
        println!(
            "  {:<10} version {:<4} digest {}  {}",
            d.name,
            d.version,
            &d.digest[..12],
            if d.created { "loaded" } else { "unchanged" }
        );
    }
    println!(
        "Cluster `{}` ({}), environment `{}` (namespace {})",
        setup.cluster_name, setup.cluster_id, setup.environment_name, setup.namespace
    );
    // A token was issued exactly when `up` runs the local cluster and its agent.
    let local = if let Some(token) = &setup.agent_token {
        let local = start_local_cluster().await?;
        let config = styrmin_agent::AgentConfig::new(&running.url(), token);
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = tokio::spawn(styrmin_agent::run(config, local.client(), async {
            let _ = agent_stopped.await;
        }));
        println!(
            "Local cluster: kubectl --kubeconfig {}",
            local.kubeconfig().display()
        );
        Some((local, stop_agent, agent))
    } else {
        None
    };
    println!();
    println!(
        "Server:   {}  (GraphQL and GraphiQL at {}/graphql)",
        running.url(),
        running.url()
    );
    match &setup.admin_token {
        Some(token) => println!("Admin token: {token}"),
        None => println!("Admin token: the one in STYRMIN_ADMIN_TOKEN"),
    }
    println!();
    println!("Try:");
    println!("  export STYRMIN_SERVER_ADDRESS={}", running.url());
    if let Some(token) = &setup.admin_token {
        println!("  export STYRMIN_TOKEN={token}");
    }
    println!(
        "  styrminctl deployments create my-app 2.3.1 {DEV_ENVIRONMENT} -p admin_email=you@example.com"
    );
    println!("  styrminctl deployments list");
    println!("\nCtrl-C stops Styrmin.");
    stop.await;
    crate::say("stopping");
    if let Some((local, stop_agent, agent)) = local {
        let _ = stop_agent.send(());
        if let Ok(Err(e)) = agent.await {
            eprintln!("the agent ended with an error: {e:#}");
        }
        running.stop().await?;
        local.stop().await;
    } else {
        running.stop().await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The local cluster, after making sure its tools are there (`scripts/prepare-local.sh`
/// builds the control plane once, printing progress). Set STYRMIN_KUBE_BIN and
/// STYRMIN_HELM to skip the script.
async fn start_local_cluster() -> Result<styrmin_localkube::LocalCluster> {
    let mut options = styrmin_localkube::Options::default();
    let preset = std::env::var_os("STYRMIN_KUBE_BIN").is_some() && options.helm.is_some();
    if !preset {
        let script = std::env::current_dir()?.join("scripts/prepare-local.sh");
        if !script.is_file() {
            anyhow::bail!(
                "the local cluster needs its tools: run `styrmin up` from the repository root \
                 (it runs scripts/prepare-local.sh), set STYRMIN_KUBE_BIN and STYRMIN_HELM, or use --no-cluster"
            );
        }
        println!(
            "Preparing the local cluster's tools (the first time builds Kubernetes, about 5 minutes)…"
        );
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .context("cannot run scripts/prepare-local.sh")?;
        if !out.status.success() {
            anyhow::bail!("scripts/prepare-local.sh failed (its output is above)");
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.split_once('=') {
                Some(("STYRMIN_KUBE_BIN", v)) => options.bin_dir = PathBuf::from(v),
                Some(("STYRMIN_HELM", v)) => options.helm = Some(PathBuf::from(v)),
                Some(("STYRMIN_RCLONE", v)) => options.rclone = Some(PathBuf::from(v)),
                _ => {}
            }
        }
    }
    // Stand-ins for the example images' commands (what lifecycle actions exec in pods).
    let image_bin = std::env::current_dir()?.join("scripts/sim-image-bin");
    if options.image_path.is_empty() && image_bin.is_dir() {
        options.image_path.push(image_bin);
    }
    println!("Starting the local cluster…");
    styrmin_localkube::LocalCluster::start(options)
        .await
        .context("cannot start the local cluster")
}

/// Every directory below `root` that holds a driver spec.
fn driver_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        if dir.join(SPEC_FILE).is_file() {
            found.push(dir);
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir()
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
