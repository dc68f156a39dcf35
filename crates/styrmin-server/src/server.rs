//! Starting a server: database, keys, bootstrap admin, background tasks and the listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::ensure_bootstrap_admin;
use crate::crypto::SecretKey;
use crate::http::router;
use crate::queue;
use crate::state::{AppState, Settings};
use crate::store::Db;

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `sqlite://…` or `postgres://…`; a SQLite file in `data_dir` when absent.
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    /// Holds the SQLite database and the generated server key.
    pub data_dir: PathBuf,
    /// `STYRMIN_ADMIN_TOKEN`: the bootstrap admin's token.
    pub admin_token: Option<String>,
    /// `STYRMIN_SECRET_KEY`: encrypts secrets at rest; a generated key file otherwise.
    pub secret_key: Option<String>,
    pub settings: Settings,
}

impl ServerOptions {
    pub fn new(data_dir: PathBuf) -> ServerOptions {
        ServerOptions {
            database_url: None,
            listen: ([127, 0, 0, 1], 8080).into(),
            data_dir,
            admin_token: None,
            secret_key: None,
            settings: Settings::default(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("styrmin.db").display()
            )
        })
    }
}

pub struct RunningServer {
    pub addr: SocketAddr,
    /// A new admin token when this start created the bootstrap admin (print it once).
    pub new_admin_token: Option<String>,
    pub(crate) state: AppState,
    /// Where this server keeps its files ([`ServerOptions::data_dir`]).
    pub(crate) data_dir: PathBuf,
    /// The operator gave the bootstrap admin's token ([`ServerOptions::admin_token`]).
    pub(crate) admin_token_given: bool,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, stops background tasks.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for task in &self.background {
            task.abort();
        }
        // Long-polls may hold up to their wait; do not let them hold shutdown.
        match tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.serve).await {
            Ok(joined) => joined.context("server task")?.context("serving")?,
            Err(_) => self.serve.abort(),
        }
        Ok(())
    }

    /// Serves until the task ends (it does not on its own).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.serve).await.context("server task")??;
        Ok(())
    }
}

pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            options.data_dir.display()
        )
    })?;
    let db = Db::connect(&options.database_url()).await?;
    let key = match options.secret_key.as_deref().filter(|k| !k.is_empty()) {
        Some(text) => SecretKey::from_passphrase(text),
        None => SecretKey::load_or_create(&options.data_dir.join("server.key"))?,
    };
    let new_admin_token = ensure_bootstrap_admin(&db, options.admin_token.as_deref()).await?;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let mut settings = options.settings.clone();
    settings
        .public_url
        .get_or_insert_with(|| format!("http://{addr}"));
    let state = AppState::new(db.clone(), key, settings);
    let background = vec![
        tokio::spawn(state.events.clone().listen(db)),
        tokio::spawn(queue::reaper(state.clone())),
        tokio::spawn(crate::services::schedules::scheduler_loop(
            state.clone(),
            state.settings.schedule_tick,
        )),
    ];
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let header_timeout = state.settings.header_timeout;
    let serve = tokio::spawn(crate::listen::serve(listener, app, header_timeout, async {
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        addr,
        new_admin_token,
        state,
        data_dir: options.data_dir.clone(),
        admin_token_given: options.admin_token.is_some(),
        shutdown: Some(shutdown),
        serve,
        background,
    })
}
