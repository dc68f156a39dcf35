//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::SecretKey;
use crate::events::Events;
use crate::ids::new_id;
use crate::metrics::ServerMetrics;
use crate::render::{RenderLimits, Renderer};
use crate::store::Db;
use crate::throttle::Throttle;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a claim holds a run without a heartbeat.
    pub lease: Duration,
    /// Attempts a run gets when its lease keeps expiring (the agent keeps dying).
    pub max_attempts: i64,
    /// An agent silent for this long is shown offline and its deployments `UNKNOWN`.
    pub agent_offline_after: Duration,
    /// The longest a `claimFlowRuns` long-poll may hold.
    pub max_claim_wait: Duration,
    /// How often a waiting long-poll looks at the database without being woken: covers
    /// expiring leases and a lost LISTEN connection.
    pub recheck: Duration,
    /// Names this server process in leases, for diagnosis.
    pub server_id: String,
    /// The URL clusters reach this server by (for the chart repository at `/charts/`);
    /// the listening address when not set.
    pub public_url: Option<String>,
    /// Fuel, time and concurrency of values-template renders.
    pub render: RenderLimits,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a GraphQL WebSocket may stay open without its `connection_init`.
    pub ws_init_timeout: Duration,
    /// Git drivers may come from `file://` URLs (the server's own disk): tests and local
    /// development only.
    pub allow_local_git: bool,
    /// Refused tokens (sign-in or API) an address may send a minute before it gets 429s.
    pub sign_in_failures_per_minute: u32,
    /// How often the server looks for environments whose backup schedule is due.
    pub schedule_tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_secs(30),
            max_attempts: 3,
            agent_offline_after: Duration::from_secs(60),
            max_claim_wait: Duration::from_secs(60),
            recheck: Duration::from_secs(1),
            server_id: format!("server-{}", &new_id()[..8]),
            public_url: None,
            render: RenderLimits::default(),
            header_timeout: Duration::from_secs(30),
            ws_init_timeout: Duration::from_secs(10),
            allow_local_git: false,
            sign_in_failures_per_minute: 20,
            schedule_tick: Duration::from_secs(15),
        }
    }
}

pub struct Inner {
    pub db: Db,
    pub key: SecretKey,
    pub events: Events,
    pub settings: Settings,
    /// What this process measures, for `/metrics`.
    pub metrics: ServerMetrics,
    /// Where values templates render (off the async runtime).
    pub renderer: Renderer,
    /// Failed sign-ins by address.
    pub throttle: Throttle,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Where clusters find the chart repository, with a trailing slash.
    pub fn chart_repository_url(&self) -> String {
        format!(
            "{}/charts/",
            self.settings
                .public_url
                .as_deref()
                .unwrap_or("http://127.0.0.1:8080")
                .trim_end_matches('/')
        )
    }

    pub fn new(db: Db, key: SecretKey, settings: Settings) -> AppState {
        let events = Events::new(db.backend());
        AppState(Arc::new(Inner {
            db,
            key,
            events,
            renderer: Renderer::new(settings.render),
            throttle: Throttle::new(settings.sign_in_failures_per_minute),
            settings,
            metrics: ServerMetrics::new(),
        }))
    }
}
