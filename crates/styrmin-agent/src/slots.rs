//! The worker's limit on runs that work at once, and the rule that a run waiting for the
//! cluster (the operator's verdict, a deletion) gives its slot back while it waits: a
//! waiting run costs an entry in the shared watch, so slow releases never keep other
//! deployments' runs from being claimed.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A run's hold on a working slot.
pub struct Slot {
    slots: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    /// The slot of the run this task executes, if it runs under one.
    static CURRENT: Arc<Slot>;
}

impl Slot {
    pub fn new(slots: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Arc<Slot> {
        Arc::new(Slot {
            slots,
            permit: Mutex::new(Some(permit)),
        })
    }

    /// Runs `work` as the run holding this slot.
    pub async fn scope<F: std::future::Future>(self: Arc<Self>, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

/// Awaits `wait` without holding the current run's slot, then takes a slot again before
/// the run goes on. Outside a run (an action's own task, a test) it just awaits.
pub async fn waiting<F: std::future::Future>(wait: F) -> F::Output {
    let Ok(slot) = CURRENT.try_with(Arc::clone) else {
        return wait.await;
    };
    let held = slot.permit.lock().expect("not poisoned").take();
    let Some(held) = held else {
        // Already waiting (a nested wait): nothing to give back.
        return wait.await;
    };
    drop(held);
    let output = wait.await;
    // A closed semaphore means the worker is gone; the run ends without a slot.
    if let Ok(permit) = slot.slots.clone().acquire_owned().await {
        *slot.permit.lock().expect("not poisoned") = Some(permit);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While a run waits, its slot is free for another; after the wait it holds one again.
    #[tokio::test]
    async fn a_waiting_run_gives_its_slot_back() {
        let slots = Arc::new(Semaphore::new(1));
        let permit = slots.clone().acquire_owned().await.unwrap();
        let slot = Slot::new(slots.clone(), permit);
        let during = slot
            .clone()
            .scope(async { waiting(async { slots.available_permits() }).await })
            .await;
        assert_eq!(during, 1, "the slot is free during the wait");
        assert_eq!(slots.available_permits(), 0, "and held again after it");
        drop(slot);
        assert_eq!(slots.available_permits(), 1, "and released with the run");
    }
}
