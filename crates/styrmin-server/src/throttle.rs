//! Guessing tokens at sign-in is slowed down: a client address refused `limit` times
//! within a minute gets `429 Too Many Requests` until the minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it the expired ones are forgotten, then all.
const MAX_ADDRESSES: usize = 10_000;

struct Window {
    started: Instant,
    failures: u32,
}

pub struct Throttle {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl Throttle {
    pub fn new(limit: u32) -> Throttle {
        Throttle {
            limit: limit.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must wait, when it is over the limit.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.get(&ip)?;
        let left = WINDOW.checked_sub(window.started.elapsed())?;
        (window.failures >= self.limit).then_some(left)
    }

    /// Counts a refusal of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, w| w.started.elapsed() < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                windows.clear();
            }
        }
        let window = windows.entry(ip).or_insert(Window {
            started: Instant::now(),
            failures: 0,
        });
        if window.started.elapsed() >= WINDOW {
            *window = Window {
                started: Instant::now(),
                failures: 0,
            };
        }
        window.failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_limit_of_failures_and_others_are_not() {
        let t = Throttle::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..2 {
            t.failed(a);
        }
        assert!(t.blocked(a).is_none());
        t.failed(a);
        assert!(t.blocked(a).is_some_and(|d| d <= WINDOW));
        assert!(t.blocked(b).is_none());
    }
}
