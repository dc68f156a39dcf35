//! The agent's Prometheus metrics (docs/agent.md#metrics), served by [`crate::http`].
//!
//! One registry per process, reached through [`global`]: the operator's `reconcile` and
//! `error_policy`, the worker and the reporter each record with one call line, so the
//! shapes of their contexts (which other work is reshaping) need not carry it. Everything
//! here is in memory and counts from the process's start.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of what [`Metrics::encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A reconcile: one render-and-apply takes milliseconds to seconds.
const RECONCILE_SECONDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// A flow run: from a stop (seconds) to a create that waits up to the core timeout.
const RUN_SECONDS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];
/// A `claimFlowRuns` call: runs waiting come back at once, an idle one after its
/// 20 s long-poll.
const CLAIM_SECONDS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];
/// Pods or statuses in one report.
const REPORT_SIZES: [f64; 13] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Everything the agent measures.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histograms<KindLabels>,
    flow_runs: Family<OutcomeLabels, Counter>,
    flow_run_duration: Histograms<KindLabels>,
    flow_runs_in_flight: Gauge,
    claim_duration: Histograms<ResultLabels>,
    reports: Family<ResultLabels, Counter>,
    reported_pods: Histogram,
    reported_statuses: Histogram,
    kube_requests: Family<VerbLabels, Counter>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration: Histograms<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_SECONDS));
        let flow_runs = Family::<OutcomeLabels, Counter>::default();
        let flow_run_duration: Histograms<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(RUN_SECONDS));
        let flow_runs_in_flight = Gauge::default();
        let claim_duration: Histograms<ResultLabels> =
            Family::new_with_constructor(|| Histogram::new(CLAIM_SECONDS));
        let reports = Family::<ResultLabels, Counter>::default();
        let reported_pods = Histogram::new(REPORT_SIZES);
        let reported_statuses = Histogram::new(REPORT_SIZES);
        let kube_requests = Family::<VerbLabels, Counter>::default();

        let mut registry = Registry::with_prefix("styrmin_agent");
        registry.register(
            "reconciles",
            "Reconciles the operator ran, by the kind of object reconciled",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind of object and of error (kube_api: the API server refused; kube_client: it could not be reached or answered oddly; other: render, driver or Helm errors)",
            reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "How long reconciles took, by kind of object",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "flow_runs",
            "Flow runs the worker finished, by flow kind and outcome (succeeded, failed, handed_back)",
            flow_runs.clone(),
        );
        registry.register_with_unit(
            "flow_run_duration",
            "How long the worker spent on each flow run it finished, by flow kind",
            Unit::Seconds,
            flow_run_duration.clone(),
        );
        registry.register(
            "flow_runs_in_flight",
            "Flow runs the worker is executing now",
            flow_runs_in_flight.clone(),
        );
        registry.register_with_unit(
            "claim_duration",
            "How long claimFlowRuns calls took as the agent saw them, long-poll included, by result (runs, empty, error)",
            Unit::Seconds,
            claim_duration.clone(),
        );
        registry.register(
            "reports",
            "Status snapshots the reporter sent, by result (ok, error)",
            reports.clone(),
        );
        registry.register(
            "reported_pods",
            "Pods in each status snapshot the server accepted",
            reported_pods.clone(),
        );
        registry.register(
            "reported_deployment_statuses",
            "Deployment statuses in each status snapshot the server accepted",
            reported_statuses.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests the agent sent to the Kubernetes API server, by verb (get, watch, create, update, patch, delete)",
            kube_requests.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            flow_runs,
            flow_run_duration,
            flow_runs_in_flight,
            claim_duration,
            reports,
            reported_pods,
            reported_statuses,
            kube_requests,
        }
    }

    /// A request to the API server is being sent.
    pub fn kube_request(&self, verb: &'static str) {
        self.kube_requests.get_or_create(&VerbLabels { verb }).inc();
    }

    /// A reconcile of a `K` began; it is counted and timed when the guard drops.
    pub fn reconcile_started<K>(&self) -> ReconcileTimer<'_>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        ReconcileTimer {
            metrics: self,
            kind: K::kind(&()).into_owned(),
            started: Instant::now(),
        }
    }

    /// A reconcile of `kind` took `took`.
    pub fn reconciled(&self, kind: &str, took: Duration) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A reconcile of a `K` failed with `error` (called from the operator's error policy).
    pub fn reconcile_failed<K>(&self, error: &(dyn StdError + 'static))
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: K::kind(&()).into_owned(),
                error: error_class(error),
            })
            .inc();
    }

    /// The worker began a run of `kind`: in flight until the guard drops, counted with
    /// its outcome by [`RunTimer::finished`] or [`RunTimer::handed_back`].
    pub fn flow_run_started(&self, kind: impl ToString) -> RunTimer<'_> {
        self.flow_runs_in_flight.inc();
        RunTimer {
            metrics: self,
            kind: kind.to_string(),
            started: Instant::now(),
        }
    }

    /// Times a `claimFlowRuns` call and files it under its result.
    pub async fn claim<T, E>(
        &self,
        call: impl Future<Output = Result<Vec<T>, E>>,
    ) -> Result<Vec<T>, E> {
        let started = Instant::now();
        let claimed = call.await;
        let result = match &claimed {
            Ok(runs) if runs.is_empty() => "empty",
            Ok(_) => "runs",
            Err(_) => "error",
        };
        self.claim_duration
            .get_or_create(&ResultLabels { result })
            .observe(started.elapsed().as_secs_f64());
        claimed
    }

    /// The server accepted a snapshot of `pods` pods and `statuses` deployment statuses.
    pub fn reported(&self, pods: usize, statuses: usize) {
        self.reports
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
        self.reported_pods.observe(pods as f64);
        self.reported_statuses.observe(statuses as f64);
    }

    /// A snapshot did not reach the server.
    pub fn report_failed(&self) {
        self.reports
            .get_or_create(&ResultLabels { result: "error" })
            .inc();
    }

    /// The exposition text, Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts and times one reconcile when dropped, however the reconcile ended.
pub struct ReconcileTimer<'m> {
    metrics: &'m Metrics,
    kind: String,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconciled(&self.kind, self.started.elapsed());
    }
}

/// One flow run in the worker's hands.
pub struct RunTimer<'m> {
    metrics: &'m Metrics,
    kind: String,
    started: Instant,
}

impl RunTimer<'_> {
    /// The run ended: `ok` succeeded, otherwise failed.
    pub fn finished(self, ok: bool) {
        self.count(if ok { "succeeded" } else { "failed" });
    }

    /// The run went back to the server unfinished (the agent is stopping).
    pub fn handed_back(self) {
        self.count("handed_back");
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .flow_runs
            .get_or_create(&OutcomeLabels {
                kind: self.kind.clone(),
                outcome,
            })
            .inc();
        self.metrics
            .flow_run_duration
            .get_or_create(&KindLabels {
                kind: self.kind.clone(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for RunTimer<'_> {
    fn drop(&mut self) {
        self.metrics.flow_runs_in_flight.dec();
    }
}

/// Which part failed: the first Kubernetes client error in the chain decides.
fn error_class(error: &(dyn StdError + 'static)) -> &'static str {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(kube) = e.downcast_ref::<kube::Error>() {
            return match kube {
                kube::Error::Api(_) => "kube_api",
                _ => "kube_client",
            };
        }
        next = e.source();
    }
    "other"
}

#[cfg(test)]
mod tests {
    use styrmin_core::crd::StyrminDeployment;

    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[derive(Debug, thiserror::Error)]
    enum Wrapper {
        #[error("{0}")]
        Kube(#[from] kube::Error),
        #[error("{0:#}")]
        Other(#[from] anyhow::Error),
    }

    fn api_error() -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("conflict", "Conflict").with_code(409),
        ))
    }

    /// A reconcile guard counts and times its reconcile under the object's kind whichever
    /// way it ends; failures are counted by the kind of error found in their chain.
    #[test]
    fn reconciles_are_counted_timed_and_their_errors_classified() {
        let m = Metrics::new();
        drop(m.reconcile_started::<StyrminDeployment>());
        drop(m.reconcile_started::<StyrminDeployment>());
        m.reconcile_failed::<StyrminDeployment>(&Wrapper::Kube(api_error()));
        m.reconcile_failed::<StyrminDeployment>(&Wrapper::Other(
            anyhow::Error::new(api_error()).context("applying HelmRelease shop"),
        ));
        m.reconcile_failed::<StyrminDeployment>(&Wrapper::Other(anyhow::anyhow!(
            "values.j2.yml: undefined variable"
        )));
        let text = m.encode();
        let kind = "kind=\"StyrminDeployment\"";
        assert_eq!(
            sample(&text, &format!("styrmin_agent_reconciles_total{{{kind}}}")),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("styrmin_agent_reconcile_duration_seconds_count{{{kind}}}")
            ),
            Some(2.0)
        );
        for (error, n) in [("kube_api", 2.0), ("other", 1.0)] {
            assert_eq!(
                sample(
                    &text,
                    &format!("styrmin_agent_reconcile_errors_total{{{kind},error=\"{error}\"}}")
                ),
                Some(n),
                "{error}: {text}"
            );
        }
    }

    /// A run is in flight from its start until its guard drops, and counted once under its
    /// outcome; claims are filed under what they returned.
    #[tokio::test]
    async fn runs_claims_and_reports_are_recorded() {
        let m = Metrics::new();
        let create = m.flow_run_started("create");
        let stop = m.flow_run_started("stop");
        let in_flight = |m: &Metrics| sample(&m.encode(), "styrmin_agent_flow_runs_in_flight");
        assert_eq!(in_flight(&m), Some(2.0));
        create.finished(true);
        stop.handed_back();
        m.flow_run_started("delete").finished(false);
        assert_eq!(in_flight(&m), Some(0.0));

        let _ = m.claim(async { Ok::<_, ()>(vec![1]) }).await;
        let _ = m.claim(async { Ok::<Vec<u8>, ()>(vec![]) }).await;
        let _ = m.claim(async { Err::<Vec<u8>, _>("refused") }).await;
        m.reported(3, 1);
        m.report_failed();

        let text = m.encode();
        for (series, value) in [
            (
                "styrmin_agent_flow_runs_total{kind=\"create\",outcome=\"succeeded\"}",
                1.0,
            ),
            (
                "styrmin_agent_flow_runs_total{kind=\"stop\",outcome=\"handed_back\"}",
                1.0,
            ),
            (
                "styrmin_agent_flow_runs_total{kind=\"delete\",outcome=\"failed\"}",
                1.0,
            ),
            (
                "styrmin_agent_flow_run_duration_seconds_count{kind=\"create\"}",
                1.0,
            ),
            (
                "styrmin_agent_claim_duration_seconds_count{result=\"runs\"}",
                1.0,
            ),
            (
                "styrmin_agent_claim_duration_seconds_count{result=\"empty\"}",
                1.0,
            ),
            (
                "styrmin_agent_claim_duration_seconds_count{result=\"error\"}",
                1.0,
            ),
            ("styrmin_agent_reports_total{result=\"ok\"}", 1.0),
            ("styrmin_agent_reports_total{result=\"error\"}", 1.0),
            ("styrmin_agent_reported_pods_sum", 3.0),
            ("styrmin_agent_reported_deployment_statuses_count", 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }
}
