//! `styrmin server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use styrmin_server::{ServerOptions, Settings, start};

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; a SQLite file in the data
    /// directory when absent.
    #[arg(long, env = "STYRMIN_DATABASE_URL")]
    pub database: Option<String>,
    /// Address to serve the API on.
    #[arg(long, env = "STYRMIN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the SQLite database and the generated server key live.
    #[arg(long, env = "STYRMIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The URL clusters reach this server by; their Flux fetches charts shipped inside
    /// drivers from `PUBLIC_URL/charts/`. Defaults to the listening address.
    #[arg(long, env = "STYRMIN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds a claimed flow run stays leased without a heartbeat.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Attempts a flow run gets when its agent keeps disappearing.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: i64,
    /// Seconds without a call from an agent before its cluster shows offline.
    #[arg(long, default_value_t = 60)]
    pub agent_offline_after: u64,
}

impl ServerArgs {
    pub fn options(&self) -> ServerOptions {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        let mut options = ServerOptions::new(data_dir);
        options.database_url = self.database.clone();
        options.listen = self.listen;
        options.admin_token = std::env::var("STYRMIN_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        options.secret_key = std::env::var("STYRMIN_SECRET_KEY").ok();
        options.settings = Settings {
            lease: Duration::from_secs(self.lease_seconds.max(1)),
            max_attempts: self.max_attempts.max(1),
            agent_offline_after: Duration::from_secs(self.agent_offline_after.max(1)),
            public_url: self.public_url.clone(),
            ..Settings::default()
        };
        options
    }
}

/// `$XDG_DATA_HOME/styrmin`, else `~/.local/share/styrmin`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("styrmin");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".local/share/styrmin")
}

/// A busy address, said the way a person can act on: which address, and the flag that
/// changes it.
pub fn explain_start_error(error: anyhow::Error, listen: SocketAddr) -> anyhow::Error {
    let in_use = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
    });
    if in_use {
        anyhow::anyhow!(
            "{listen} is already in use (another `styrmin up` or `styrmin server`?): stop \
             that process, or choose another address with --listen, e.g. --listen 127.0.0.1:8081"
        )
    } else {
        error
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::shutdown_signal();
    let running = start(args.options())
        .await
        .map_err(|e| explain_start_error(e, args.listen))?;
    if let Some(token) = &running.new_admin_token {
        println!("Bootstrap admin token (shown once, store it now): {token}");
    }
    println!(
        "Styrmin server {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        running.url()
    );
    println!("GraphQL: {}/graphql", running.url());
    stop.await;
    crate::say("shutting down");
    running.stop().await?;
    Ok(ExitCode::SUCCESS)
}
