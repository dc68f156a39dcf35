//! Waiting on a condition with a deadline: tests never sleep to synchronise, they look
//! again at a short interval until what they wait for holds, and fail naming it (and what
//! they saw last) when the deadline passes.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// Looks with `probe` every `every` until it returns `Ok`, and returns that value; fails
/// after `limit` with `what` and the last `Err` the probe gave (the state it saw).
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: F,
) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}: {seen}"
            ),
        }
        tokio::time::sleep(every).await; // poll interval within a deadline
    }
}

/// Looks with `check` every 50 ms until it returns true; fails after `limit` naming `what`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, limit, Duration::from_millis(50), || {
        let checked = check();
        async move {
            if checked.await {
                Ok(())
            } else {
                Err("still not so")
            }
        }
    })
    .await;
}
