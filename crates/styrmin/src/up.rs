//! `styrmin up`: Styrmin on this machine in one command, from any directory. The server
//! runs on SQLite in the data directory, the bundled drivers (packed into the binary) are
//! checked and loaded, a `local` cluster with a `dev` environment is registered, and the
//! local cluster runs with its agent. Everything it writes lives in the data directory:
//!
//! ```text
//! styrmin.db, server.key   the server's state
//! drivers/                 the bundled drivers, unpacked at each start
//! local/scripts/           the local cluster's preparation scripts; local/prepare.log
//! local/sim-image-bin/     the simulated image's commands
//! local/cluster/           the local cluster: etcd's data, certificates, kubeconfig, logs
//! tools/                   helm and the control plane, when not already built in ~/.cache/styrmin
//! ```

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
    /// A directory of drivers to load instead of the bundled ones.
    #[arg(long, env = "STYRMIN_DRIVERS")]
    pub drivers: Option<PathBuf>,
    /// Run only the server: no local cluster, no agent (runs stay scheduled).
    #[arg(long)]
    pub no_cluster: bool,
    /// Start clean: delete the server's state and the local cluster from the data
    /// directory first (asks for confirmation unless --yes).
    #[arg(long)]
    pub reset: bool,
    /// Answer yes to --reset's question.
    #[arg(long, requires = "reset")]
    pub yes: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

const LOCAL_CLUSTER: &str = "local";
const DEV_ENVIRONMENT: &str = "dev";
/// The styrminctl context `up` writes for itself.
const LOCAL_CONTEXT: &str = "local";

mod packed {
    include!(concat!(env!("OUT_DIR"), "/drivers.rs"));
}

pub async fn run(args: UpArgs) -> Result<ExitCode> {
    let options = args.server.options();
    let data_dir = options.data_dir.clone();
    if args.reset {
        if !confirm_reset(&data_dir, args.yes)? {
            eprintln!("nothing was deleted");
            return Ok(ExitCode::from(1));
        }
        reset(&data_dir)?;
    }
    let drivers_root = match &args.drivers {
        Some(dir) => dir.clone(),
        None => {
            let dir = data_dir.join("drivers");
            styrmin_localkube::packed::unpack(packed::DRIVERS, &dir, false)
                .context("cannot unpack the bundled drivers into the data directory")?;
            dir
        }
    };
    let dirs = driver_dirs(&drivers_root)?;
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
    let listen = args.server.listen;
    let running = styrmin_server::start(options)
        .await
        .map_err(|e| crate::server::explain_start_error(e, listen))?;
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
    println!("Drivers ({}):", drivers_root.display());
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
        let (local, rclone) = start_local_cluster(&data_dir).await?;
        let store = match rclone {
            Some(rclone) => {
                Some(start_local_store(&running, &rclone, &data_dir, &setup.cluster_id).await?)
            }
            None => {
                println!("Backups: no rclone, so no local S3 store (set STYRMIN_RCLONE)");
                None
            }
        };
        let config = styrmin_agent::AgentConfig::new(&running.url(), token);
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = tokio::spawn(styrmin_agent::run(config, local.client(), async {
            let _ = agent_stopped.await;
        }));
        println!(
            "Local cluster: kubectl --kubeconfig {}",
            local.kubeconfig().display()
        );
        Some((local, stop_agent, agent, store))
    } else {
        None
    };
    println!();
    println!(
        "Server:   {}  (GraphQL and its console at {}/graphql)",
        running.url(),
        running.url()
    );
    match &setup.admin_token {
        Some(token) => println!("Admin token: {token}"),
        None => println!("Admin token: the one in STYRMIN_ADMIN_TOKEN"),
    }
    let admin_token = setup.admin_token.clone().or_else(|| {
        std::env::var("STYRMIN_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
    });
    match admin_token.map(|token| save_local_context(&running.url(), token)) {
        Some(Ok(path)) => {
            println!(
                "styrminctl: context `{LOCAL_CONTEXT}` (current) saved in {}",
                path.display()
            );
            println!();
            println!("Try:");
            println!("  styrminctl drivers list");
            println!(
                "  styrminctl deployments create my-app 2.3.1 {DEV_ENVIRONMENT} --name shop -p admin_email=you@example.com"
            );
            println!("  styrminctl deployments list");
        }
        Some(Err(e)) => eprintln!(
            "warning: the `{LOCAL_CONTEXT}` context could not be saved ({e:#}); use \
             `styrminctl login {}`",
            running.url()
        ),
        None => {}
    }
    println!("\nCtrl-C stops Styrmin.");
    stop.await;
    crate::say("stopping");
    if let Some((local, stop_agent, agent, store)) = local {
        drop(store);
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

/// The local cluster, after making sure its tools are there (the packed preparation
/// script installs and builds what is missing, printing progress; STYRMIN_KUBE_BIN and
/// STYRMIN_HELM skip it).
async fn start_local_cluster(
    data_dir: &Path,
) -> Result<(styrmin_localkube::LocalCluster, Option<PathBuf>)> {
    use styrmin_localkube::{packed, tools};
    let local_dir = data_dir.join("local");
    let cache = tools::cache_dir(&data_dir.join("tools"));
    let found = tools::find_or_prepare(&local_dir, &cache).await.context(
        "the local cluster has no tools (`styrmin up --no-cluster` runs the server alone)",
    )?;
    let mut options = styrmin_localkube::Options {
        dir: Some(local_dir.join("cluster")),
        ..styrmin_localkube::Options::default()
    };
    found.apply(&mut options);
    // Stand-ins for the example images' commands (what lifecycle actions exec in pods).
    if options.image_path.is_empty() {
        let image_bin = local_dir.join("sim-image-bin");
        packed::unpack(packed::SIM_IMAGE_BIN, &image_bin, true)?;
        options.image_path.push(image_bin);
    }
    let rclone = options.rclone.clone();
    // Pods of a PostgreSQL or MariaDB image get a real database of their own on this
    // machine's servers, when there are any: what backups dump and restores load.
    options.database_prefix = "styrmin_up_".into();
    options.postgres = database_server(
        "STYRMIN_LOCAL_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "psql",
        |url| vec![url.to_owned(), "-qAtc".into(), "select 1".into()],
    )
    .await;
    options.mariadb = database_server(
        "STYRMIN_LOCAL_MARIADB_URL",
        "mysql://root@127.0.0.1:3306",
        "mariadb",
        |_| {
            ["-h127.0.0.1", "-P3306", "-uroot", "-e", "select 1"]
                .map(str::to_owned)
                .to_vec()
        },
    )
    .await;
    for (engine, server) in [
        ("PostgreSQL", &options.postgres),
        ("MariaDB", &options.mariadb),
    ] {
        match server {
            Some(url) => println!(
                "Database pods: {engine} images get a database on {}",
                redact(url)
            ),
            None => println!(
                "Database pods: no {engine} server reached, so {engine} pods hold no data (set STYRMIN_LOCAL_{}_URL)",
                engine.to_uppercase()
            ),
        }
    }
    let started = std::time::Instant::now();
    println!("Starting the local cluster…");
    let cluster = styrmin_localkube::LocalCluster::start(options)
        .await
        .context("cannot start the local cluster")?;
    println!(
        "Local cluster ready in {} (logs in {})",
        tools::elapsed(started),
        cluster.dir().display()
    );
    Ok((cluster, rclone))
}

/// The database server for database pods: the URL in `variable`, else `default` when
/// `client` (with `args` of the URL) can log in to it within 3 seconds.
async fn database_server(
    variable: &str,
    default: &str,
    client: &str,
    args: impl Fn(&str) -> Vec<String>,
) -> Option<String> {
    if let Some(url) = std::env::var(variable).ok().filter(|v| !v.is_empty()) {
        return Some(url);
    }
    let probe = tokio::process::Command::new(client)
        .args(args(default))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(status)) if status.success() => Some(default.to_owned()),
        _ => None,
    }
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (user_info, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The bucket `up`'s local S3 store keeps backups in.
const LOCAL_BUCKET: &str = "styrmin-backups";

/// The local S3 store (the real `rclone serve s3` the tests use), kept in the data
/// directory on the port it had last time when that is free, and registered as the `dev`
/// environment's backup location `local`, so backups, restores and clones work at once.
async fn start_local_store(
    running: &styrmin_server::RunningServer,
    rclone: &Path,
    data_dir: &Path,
    cluster_id: &str,
) -> Result<styrmin_localkube::s3::S3Server> {
    use styrmin_localkube::s3::S3Server;
    let dir = data_dir.join("local/s3");
    let port_file = data_dir.join("local/s3.port");
    let preferred = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let store = S3Server::start_on(rclone, &dir, preferred)
        .await
        .context("cannot start the local S3 store")?;
    store.create_bucket(LOCAL_BUCKET)?;
    let port = store.target.endpoint.rsplit(':').next().unwrap_or_default();
    std::fs::write(&port_file, port)
        .with_context(|| format!("cannot write {}", port_file.display()))?;
    let used = styrmin_server::bootstrap::local_location(
        running,
        &format!("{cluster_id}/{DEV_ENVIRONMENT}"),
        &styrmin_server::bootstrap::LocalStore {
            endpoint: &store.target.endpoint,
            bucket: LOCAL_BUCKET,
            region: &store.target.region,
            access_key_id: &store.target.access_key,
            secret_access_key: &store.target.secret_key,
        },
    )
    .await?;
    if used {
        println!(
            "Backups: S3 store at {} (bucket {LOCAL_BUCKET}, files in {}), location `{}` of `{DEV_ENVIRONMENT}`",
            store.target.endpoint,
            dir.display(),
            styrmin_server::bootstrap::LOCAL_LOCATION
        );
    }
    Ok(store)
}

/// Saves the server and admin token as styrminctl's `local` context and makes it current,
/// so `styrminctl` works with no flag or environment variable. Returns the file's path.
fn save_local_context(url: &str, token: String) -> Result<PathBuf> {
    use styrmin_client::config::{self, Config, Context};
    let path = config::path()?;
    let mut config = Config::load(&path)?;
    config.upsert(Context {
        name: LOCAL_CONTEXT.into(),
        server: url.into(),
        token: Some(token),
    })?;
    config.current_context = Some(LOCAL_CONTEXT.into());
    config.save(&path)?;
    Ok(path)
}

/// What --reset deletes from the data directory: everything but the tools it built.
const KEPT_BY_RESET: &[&str] = &["tools"];

fn confirm_reset(data_dir: &Path, yes: bool) -> Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "--reset deletes the server's state and the local cluster in {}; add --yes to \
             confirm when not running in a terminal",
            data_dir.display()
        );
    }
    print!(
        "--reset deletes the server's state (deployments, tokens, the admin token) and the \
         local cluster in {}. Continue? [y/N] ",
        data_dir.display()
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn reset(data_dir: &Path) -> Result<()> {
    // Never pull the state from under a running `up`.
    let cluster = data_dir.join("local/cluster");
    let _lock = if cluster.is_dir() {
        Some(styrmin_localkube::cluster::lock_dir(&cluster).context("--reset refused")?)
    } else {
        None
    };
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", data_dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| KEPT_BY_RESET.iter().any(|k| n == *k))
        {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot delete {}", path.display()))?;
    }
    println!("Reset: deleted the state in {}", data_dir.display());
    Ok(())
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
