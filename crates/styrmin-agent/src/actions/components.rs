//! What actions do to a component's workloads and pods (SPEC §5 primitives): stop and start
//! (scale to 0 and back, the replicas remembered in an annotation), wait until ready, and
//! exec a command in a ready pod. Components are found by their label selectors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use super::api_error;
use crate::workloads::{ACTION_STOPPED_ANNOTATION, Replicas, selector};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// One component's workloads in a namespace.
pub struct Component<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl Component<'_> {
    fn params(&self) -> ListParams {
        ListParams::default().labels(&selector(self.labels))
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    fn sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    /// Desired and ready replicas over the component's Deployments and StatefulSets.
    pub async fn replicas(&self) -> Result<Replicas> {
        let mut total = Replicas::default();
        for d in self
            .deployments()
            .list(&self.params())
            .await
            .map_err(api_error)?
        {
            total.add_deployment(&d);
        }
        for s in self.sets().list(&self.params()).await.map_err(api_error)? {
            total.add_stateful_set(&s);
        }
        Ok(total)
    }

    /// Every workload to 0 replicas (their count remembered), then waits until no pod of
    /// the component is left.
    pub async fn stop(&self, deadline: Instant) -> Result<()> {
        for d in self
            .deployments()
            .list(&self.params())
            .await
            .map_err(api_error)?
        {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            stop_one(
                &self.deployments(),
                &d.name_any(),
                replicas,
                d.annotations(),
            )
            .await?;
        }
        for s in self.sets().list(&self.params()).await.map_err(api_error)? {
            let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            stop_one(&self.sets(), &s.name_any(), replicas, s.annotations()).await?;
        }
        self.until(deadline, "its pods to stop", || self.no_pods())
            .await
    }

    /// Restores what `stop` remembered, then waits until the component is ready.
    pub async fn start(&self, deadline: Instant) -> Result<()> {
        for d in self
            .deployments()
            .list(&self.params())
            .await
            .map_err(api_error)?
        {
            start_one(&self.deployments(), &d.name_any(), d.annotations()).await?;
        }
        for s in self.sets().list(&self.params()).await.map_err(api_error)? {
            start_one(&self.sets(), &s.name_any(), s.annotations()).await?;
        }
        self.wait_ready(deadline).await
    }

    /// Waits until the component has workloads and all their replicas are ready.
    pub async fn wait_ready(&self, deadline: Instant) -> Result<()> {
        self.until(deadline, "its replicas to be ready", || self.all_ready())
            .await
    }

    async fn no_pods(&self) -> Result<bool> {
        Ok(self
            .pods()
            .list(&self.params())
            .await
            .map_err(api_error)?
            .items
            .is_empty())
    }

    async fn all_ready(&self) -> Result<bool> {
        let r = self.replicas().await?;
        Ok(r.workloads > 0 && !r.stale && r.ready == r.desired)
    }

    async fn until<F>(&self, deadline: Instant, what: &str, check: impl Fn() -> F) -> Result<()>
    where
        F: std::future::Future<Output = Result<bool>>,
    {
        loop {
            if check().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "component `{}` in {}: timed out waiting for {what}",
                    self.name,
                    self.namespace
                );
            }
            tokio::time::sleep(POLL).await; // poll interval within a deadline
        }
    }

    /// The address of a ready pod of the component.
    pub async fn ready_pod_ip(&self) -> Result<String> {
        let pod = self.a_ready_pod().await?;
        pod.status.and_then(|s| s.pod_ip).with_context(|| {
            format!(
                "pod {}/{} has no address yet",
                self.namespace,
                pod.metadata.name.unwrap_or_default()
            )
        })
    }

    pub async fn a_ready_pod(&self) -> Result<Pod> {
        let pods = self.pods().list(&self.params()).await.map_err(api_error)?;
        pods.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .with_context(|| {
                format!(
                    "component `{}` has no ready pod in {}",
                    self.name, self.namespace
                )
            })
    }

    /// A ready pod of the component and the container to exec in (the one named by
    /// `kubectl.kubernetes.io/default-container`, else the first).
    pub async fn ready_pod(&self) -> Result<(String, String)> {
        let pod = self.a_ready_pod().await?;
        let container = pod
            .annotations()
            .get("kubectl.kubernetes.io/default-container")
            .cloned()
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .map(|c| c.name.clone())
            })
            .context("the pod has no container")?;
        Ok((pod.name_any(), container))
    }

    /// Runs `argv` in a ready pod; a non-zero exit is an error carrying the output.
    /// Returns stdout and stderr together.
    pub async fn exec(&self, argv: &[String]) -> Result<String> {
        let command = argv.join(" ");
        let (pod, container) = self.ready_pod().await?;
        let params = AttachParams::default()
            .container(container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pods()
            .exec(&pod, argv.to_vec(), &params)
            .await
            .map_err(api_error)
            .with_context(|| format!("exec in pod {}/{pod} ({container})", self.namespace))?;
        let status = process.take_status();
        let (mut stdout, mut stderr) = (process.stdout(), process.stderr());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                s.read_to_end(&mut out).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                s.read_to_end(&mut err).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        tokio::try_join!(read_out, read_err)?;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.ok();
        let mut output = String::from_utf8_lossy(&out).into_owned();
        output.push_str(&String::from_utf8_lossy(&err));
        let status = status.context("the exec ended without a status")?;
        if status.status.as_deref() == Some("Success") {
            return Ok(output);
        }
        let exit_code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.clone());
        bail!(
            "`{command}` in pod {}/{pod} {}: {}",
            self.namespace,
            match exit_code {
                Some(code) => format!("exited with code {code}"),
                None => format!("failed ({})", status.message.unwrap_or_default()),
            },
            output.trim()
        )
    }
}

async fn stop_one<K>(
    api: &Api<K>,
    name: &str,
    replicas: i32,
    annotations: &BTreeMap<String, String>,
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if replicas == 0 {
        return Ok(());
    }
    // Stopped twice: the first count is the one to restore.
    let remember = annotations
        .get(ACTION_STOPPED_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| replicas.to_string());
    let patch = json!({"metadata": {"annotations": {ACTION_STOPPED_ANNOTATION: remember}}, "spec": {"replicas": 0}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(api_error)
        .with_context(|| format!("scaling {name} to 0"))?;
    Ok(())
}

async fn start_one<K>(
    api: &Api<K>,
    name: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(remembered) = annotations.get(ACTION_STOPPED_ANNOTATION) else {
        return Ok(());
    };
    let replicas: i32 = remembered.parse().unwrap_or(1);
    let patch = json!({"metadata": {"annotations": {ACTION_STOPPED_ANNOTATION: null}}, "spec": {"replicas": replicas}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(api_error)
        .with_context(|| format!("scaling {name} back to {replicas}"))?;
    Ok(())
}
