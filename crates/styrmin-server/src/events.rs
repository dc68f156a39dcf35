//! Wake-ups: "runs were scheduled on cluster X", "run Y has new log lines", "deployment Z
//! changed". They only wake waiters, who then read the database, so a lost or duplicated
//! event costs a query, never correctness. Within one process they travel on a broadcast
//! channel; on PostgreSQL every event is also sent with `NOTIFY` and every server `LISTEN`s,
//! so a change made through one server wakes long-polls held by another.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::store::{Backend, Conn, Db};

const CHANNEL: &str = "styrmin_events";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    RunsScheduled { cluster_id: String },
    RunLog { run_id: String },
    Deployment { deployment_id: String },
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    backend: Backend,
}

impl Events {
    pub fn new(backend: Backend) -> Events {
        let (tx, _) = broadcast::channel(4096);
        Events { tx, backend }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Announces an event after the transaction that caused it committed. On PostgreSQL the
    /// event goes out through `NOTIFY` (and comes back to this process through LISTEN);
    /// `conn` must then be outside any transaction or the notice waits for its commit.
    pub async fn publish(&self, conn: &mut Conn, event: Event) {
        match self.backend {
            Backend::Sqlite => {
                let _ = self.tx.send(event);
            }
            Backend::Postgres => {
                // Deliver locally at once as well: the LISTEN round trip is for other servers.
                let _ = self.tx.send(event.clone());
                let payload = serde_json::to_string(&event).expect("events serialise");
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(conn)
                    .await
                {
                    tracing::warn!(error = %e, "cannot NOTIFY other servers");
                }
            }
        }
    }

    /// Local delivery only (events that came in from another server).
    fn deliver(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// On PostgreSQL, forwards notices from other servers until the process ends. The
    /// listener reconnects by itself; while it is away, long-polls still wake on their own
    /// timers, so nothing is lost.
    pub async fn listen(self, db: Db) {
        if db.backend() != Backend::Postgres {
            return;
        }
        loop {
            match PgListener::connect(db.url()).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "cannot LISTEN for events");
                    } else {
                        loop {
                            match listener.recv().await {
                                Ok(n) => {
                                    if let Ok(event) = serde_json::from_str(n.payload()) {
                                        self.deliver(event);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "event listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect the event listener"),
            }
            // Reconnect pacing, not synchronisation.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// Waits until an event `wanted` accepts arrives, or `limit` passes. A receiver that fell
/// behind counts as woken: what it missed may have been wanted.
pub async fn wait_for(
    events: &mut broadcast::Receiver<Event>,
    limit: Duration,
    wanted: impl Fn(&Event) -> bool,
) {
    let wake = async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(limit, wake).await;
}
