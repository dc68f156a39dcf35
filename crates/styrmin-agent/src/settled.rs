//! One watch of every `StyrminDeployment` for all the runs that wait on one: a run waiting
//! for the operator's verdict costs an entry in a map, not a watch (a connection) of its
//! own, and finding a deployment's object reads the cache instead of listing them all.
//! Each waiter is woken only by events of its own object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use styrmin_core::crd::StyrminDeployment;
use tokio::sync::Notify;

/// How long a lookup waits for the first listing before it asks the API server itself.
const FIRST_LIST: Duration = Duration::from_secs(10);

pub struct Settled {
    store: Store<StyrminDeployment>,
    /// Waiters by `namespace/name`: woken when that object changes or goes.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Settled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Settled {
    /// Starts the watch (a task that ends when this is dropped).
    pub fn start(client: Client) -> Arc<Settled> {
        let (store, writer) = reflector::store();
        Arc::new_cyclic(|me: &std::sync::Weak<Settled>| {
            let me = me.clone();
            let stream = watcher(
                Api::<StyrminDeployment>::all(client),
                watcher::Config::default(),
            )
            .default_backoff()
            .reflect(writer)
            .touched_objects();
            let task = tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    let Some(settled) = me.upgrade() else { return };
                    match event {
                        Ok(sd) => settled.wake(&sd.namespace().unwrap_or_default(), &sd.name_any()),
                        // A relist may have dropped objects: every waiter looks again.
                        Err(_) => settled.wake_all(),
                    }
                }
            });
            Settled {
                store,
                waiters: Mutex::default(),
                task,
            }
        })
    }

    fn wake(&self, namespace: &str, name: &str) {
        let waiters = self.waiters.lock().expect("not poisoned");
        if let Some(notify) = waiters.get(&key(namespace, name)) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for notify in self.waiters.lock().expect("not poisoned").values() {
            notify.notify_waiters();
        }
    }

    fn listed(&self) -> bool {
        use futures::FutureExt as _;
        self.store
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }

    async fn ready(&self) -> bool {
        tokio::time::timeout(FIRST_LIST, self.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The cached object, once the watch has listed; `None` when it does not exist.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<StyrminDeployment>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// The `(namespace, name)` of the deployment's object, from the cache; `None` when the
    /// cache has not listed yet or holds none.
    pub async fn find(&self, deployment_id: &str) -> Option<(String, String)> {
        if !self.ready().await {
            return None;
        }
        self.store
            .find(|sd| sd.spec.deployment_id == deployment_id)
            .map(|sd| (sd.namespace().unwrap_or_default(), sd.name_any()))
    }

    /// Waits until `done` holds for the object (`None`: it does not exist), checking now
    /// and after each of its events. The caller bounds the wait.
    pub async fn until<F>(
        &self,
        namespace: &str,
        name: &str,
        done: F,
    ) -> Option<Arc<StyrminDeployment>>
    where
        F: Fn(Option<&StyrminDeployment>) -> bool,
    {
        let key = key(namespace, name);
        let notify = self
            .waiters
            .lock()
            .expect("not poisoned")
            .entry(key.clone())
            .or_default()
            .clone();
        let found = loop {
            let notified = notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self.listed() {
                // Before the first listing the cache says nothing, not "absent".
                tokio::select! {
                    () = notified => {}
                    listed = self.store.wait_until_ready() => if listed.is_err() {
                        // The watch task is gone (the agent is stopping).
                        break None;
                    }
                }
                continue;
            }
            let current = self.get(namespace, name);
            if done(current.as_deref()) {
                break current;
            }
            notified.await;
        };
        let mut waiters = self.waiters.lock().expect("not poisoned");
        // The map's reference and ours: no other waiter on this object.
        if Arc::strong_count(&notify) == 2 {
            waiters.remove(&key);
        }
        found
    }
}
