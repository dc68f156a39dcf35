//! `styrmin up`: Styrmin on this machine in one command. The server runs on SQLite in the
//! data directory, every bundled driver is checked and loaded, and a `local` cluster with
//! a `dev` environment is registered, so a second `up` resumes where the first stopped.
//! (The local cluster and its agent join with the agent issue.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use styrmin_bundle::Bundle;
use styrmin_core::driver::{self, SPEC_FILE};
use styrmin_server::auth::{Principal, Role};
use styrmin_server::store::drivers::Source;
use styrmin_server::{admin, driver_versions, resolve};

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
    let running = styrmin_server::server::start(options).await?;
    let admin_token = remember_admin_token(&data_dir, running.new_admin_token.as_deref())?;
    let system = Principal {
        token_id: String::new(),
        name: "styrmin-up".into(),
        role: Role::Admin,
        cluster_id: None,
    };
    let state = &running.state;

    println!(
        "Styrmin {} — data in {}",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    println!("Bundled drivers ({}):", args.drivers.display());
    for dir in &dirs {
        let path = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        let bundle = Bundle::read_dir(&path)?;
        let outcome = driver_versions::load_bundle(
            state,
            &system,
            bundle,
            Source::Local {
                path: path.display().to_string(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", dir.display()))?;
        let v = &outcome.version;
        println!(
            "  {:<10} version {:<4} digest {}  {}",
            v.driver_name,
            v.version,
            &v.digest[..12],
            if outcome.created {
                "loaded"
            } else {
                "unchanged"
            }
        );
    }

    let cluster = {
        let mut c = state.db.read().await?;
        resolve::cluster(&mut c, LOCAL_CLUSTER).await.ok()
    };
    let cluster = match cluster {
        Some(cluster) => cluster,
        None => {
            admin::create_cluster(state, &system, LOCAL_CLUSTER, serde_json::json!({}))
                .await
                .map_err(|e| anyhow::anyhow!("creating the local cluster: {e}"))?
                .0
        }
    };
    let environment = {
        let mut c = state.db.read().await?;
        resolve::environment(&mut c, &format!("{LOCAL_CLUSTER}/{DEV_ENVIRONMENT}"))
            .await
            .ok()
    };
    let environment = match environment {
        Some(env) => env,
        None => admin::create_environment(
            state,
            &system,
            DEV_ENVIRONMENT,
            &cluster.id,
            serde_json::json!({}),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the dev environment: {e}"))?,
    };

    println!(
        "Cluster `{}` ({}), environment `{}` (namespace {})",
        cluster.name, cluster.id, environment.name, environment.namespace
    );
    let local = if args.no_cluster {
        None
    } else {
        let local = start_local_cluster().await?;
        // `up` owns the local cluster's agent: a fresh token each start.
        let (_, token) = admin::rotate_agent_token(state, &system, &cluster.id)
            .await
            .map_err(|e| anyhow::anyhow!("issuing the local agent's token: {e}"))?;
        let config = styrmin_agent::AgentConfig::new(&running.url(), &token);
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = tokio::spawn(styrmin_agent::run(config, local.client(), async {
            let _ = agent_stopped.await;
        }));
        println!(
            "Local cluster: kubectl --kubeconfig {}",
            local.kubeconfig().display()
        );
        Some((local, stop_agent, agent))
    };
    println!();
    println!(
        "Server:   {}  (GraphQL and GraphiQL at {}/graphql)",
        running.url(),
        running.url()
    );
    match &admin_token {
        Some(token) => println!("Admin token: {token}"),
        None => println!("Admin token: the one in STYRMIN_ADMIN_TOKEN"),
    }
    println!();
    println!("Try:");
    println!("  export STYRMIN_SERVER_ADDRESS={}", running.url());
    if let Some(token) = &admin_token {
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

/// `up` is for one person on one machine: it keeps the bootstrap admin token in the data
/// directory (mode 0600) so every `up` can print it. `styrmin server` never does.
fn remember_admin_token(data_dir: &Path, new: Option<&str>) -> Result<Option<String>> {
    if std::env::var("STYRMIN_ADMIN_TOKEN").is_ok_and(|t| !t.is_empty()) {
        return Ok(None);
    }
    let path = data_dir.join("admin.token");
    if let Some(token) = new {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write as _;
        writeln!(
            options
                .open(&path)
                .with_context(|| format!("cannot write {}", path.display()))?,
            "{token}"
        )?;
        return Ok(Some(token.to_owned()));
    }
    Ok(fs::read_to_string(&path).ok().map(|t| t.trim().to_owned()))
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
