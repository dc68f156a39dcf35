//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::SecretKey;
use crate::events::Events;
use crate::ids::new_id;
use crate::metrics::ServerMetrics;
use crate::store::Db;

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
            settings,
            metrics: ServerMetrics::new(),
        }))
    }
}
