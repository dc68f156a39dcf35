//! Subscriptions: they wake on server events and read the database, so what they stream is
//! always what a query would return.

use async_graphql::{Context, ID, Subscription as SubscriptionDerive};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::deployments::Deployment;
use super::flow_runs::FlowRunLogLine;
use super::{reader, state};
use crate::error::IntoGql as _;
use crate::events::{Event, wait_for};
use crate::queue;
use crate::resolve;
use crate::store::{deployments, flow_runs};

pub struct Subscription;

#[SubscriptionDerive]
impl Subscription {
    /// The deployment (or every deployment, without `id`) each time its desired state,
    /// runs or observed status change.
    async fn deployment_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Deployment> + use<>> {
        reader(ctx)?;
        let s = state(ctx).clone();
        let only = match id {
            Some(r) => {
                let mut c = s.db.read().await?;
                Some(resolve::deployment(&mut c, &r).await.gql()?.id)
            }
            None => None,
        };
        let mut events = s.events.subscribe();
        Ok(async_stream(move |tx| async move {
            loop {
                let id = match events.recv().await {
                    Ok(Event::Deployment { deployment_id }) => deployment_id,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                if only.as_ref().is_some_and(|o| *o != id) {
                    continue;
                }
                let Ok(mut c) = s.db.read().await else {
                    continue;
                };
                if let Ok(Some(row)) = deployments::get(&mut c, &id).await
                    && tx.send(Deployment(row)).await.is_err()
                {
                    return;
                }
            }
        }))
    }

    /// The run's log lines after `after`, as they arrive; ends when the run has finished
    /// and every line was sent.
    async fn flow_run_logs(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = 0)] after: i64,
    ) -> async_graphql::Result<impl Stream<Item = FlowRunLogLine> + use<>> {
        reader(ctx)?;
        let s = state(ctx).clone();
        let run_id = id.0;
        let mut events = s.events.subscribe();
        Ok(async_stream(move |tx| async move {
            let mut last = after;
            loop {
                let finished = match s.db.read().await {
                    Ok(mut c) => flow_runs::get(&mut c, &run_id)
                        .await
                        .ok()
                        .flatten()
                        .is_none_or(|r| r.state.is_terminal()),
                    Err(_) => false,
                };
                let lines = queue::logs(&s, &run_id, last, 1000)
                    .await
                    .unwrap_or_default();
                let drained = lines.len() < 1000;
                for line in lines {
                    last = line.seq;
                    if tx.send(line.into()).await.is_err() {
                        return;
                    }
                }
                if finished && drained {
                    return;
                }
                // Wake on this run's events, or re-read every recheck interval.
                wait_for(&mut events, s.settings.recheck, |e| {
                    queue::run_moved(e, &run_id)
                })
                .await;
            }
        }))
    }
}

/// A stream fed by a task through a small channel; the task ends when the stream is
/// dropped (its next send fails).
fn async_stream<T, F, Fut>(producer: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
