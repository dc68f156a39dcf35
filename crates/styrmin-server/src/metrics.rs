//! The server's Prometheus metrics (docs/server.md#metrics). Two sources: what this process
//! measures as it serves (claims, reports, HTTP requests: histograms and counters kept in
//! memory since it started), and what the store holds (flow runs by kind and state, the
//! queue of each cluster: counted with one query at every scrape, so every replica reports
//! the same numbers and a restart loses none).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::store::flow_runs::{FlowRunRow, RunCount};

/// The `Content-Type` of what [`ServerMetrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const PREFIX: &str = "styrmin_server";

/// A `claimFlowRuns` call: from a few milliseconds (work was waiting) to the longest
/// long-poll (60 s).
const CLAIM_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// A run's wait in `scheduled`: behind an agent that claims at once, up to one stuck
/// behind a long run of its deployment.
const QUEUE_WAIT_SECONDS: [f64; 15] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Pods or statuses in one report: one deployment up to a large cluster.
const REPORT_SIZES: [f64; 13] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];
const HTTP_SECONDS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    /// `runs` when the call leased at least one run, `empty` when its wait ran out.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

/// What this process measures; one per [`crate::state::AppState`].
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    claim_duration: Histograms<ClaimLabels>,
    queue_wait: Histograms<KindLabels>,
    reported_pods: Histogram,
    reported_statuses: Histogram,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        let claim_duration: Histograms<ClaimLabels> =
            Family::new_with_constructor(|| Histogram::new(CLAIM_SECONDS));
        let queue_wait: Histograms<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(QUEUE_WAIT_SECONDS));
        let reported_pods = Histogram::new(REPORT_SIZES);
        let reported_statuses = Histogram::new(REPORT_SIZES);
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: Histograms<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(HTTP_SECONDS));

        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_with_unit(
            "claim_duration",
            "How long claimFlowRuns calls took, long-poll wait included, by whether they leased runs",
            Unit::Seconds,
            claim_duration.clone(),
        );
        registry.register_with_unit(
            "flow_run_queue_wait",
            "How long first attempts of flow runs waited in scheduled before an agent claimed them, by kind",
            Unit::Seconds,
            queue_wait.clone(),
        );
        registry.register(
            "reported_pods",
            "Pods in each accepted reportPodStatuses call",
            reported_pods.clone(),
        );
        registry.register(
            "reported_deployment_statuses",
            "Deployment statuses in each accepted reportDeploymentStatuses call",
            reported_statuses.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status code",
            http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "How long HTTP requests took until their response began (a stream or WebSocket: until it opened), by method and route",
            Unit::Seconds,
            http_duration.clone(),
        );
        ServerMetrics {
            registry,
            claim_duration,
            queue_wait,
            reported_pods,
            reported_statuses,
            http_requests,
            http_duration,
        }
    }

    /// A `claimFlowRuns` call returned `claimed` after `took`; `now` is the claim's time
    /// (ms), from which each first attempt's wait since it was scheduled is measured.
    pub fn claimed(&self, took: Duration, claimed: &[FlowRunRow], now: i64) {
        let result = if claimed.is_empty() { "empty" } else { "runs" };
        self.claim_duration
            .get_or_create(&ClaimLabels { result })
            .observe(took.as_secs_f64());
        // A later attempt was re-queued at a time the row no longer keeps once claimed.
        for run in claimed.iter().filter(|r| r.attempt == 1) {
            let waited = (now - run.created_at).max(0) as f64 / 1000.0;
            self.queue_wait
                .get_or_create(&KindLabels {
                    kind: run.kind.as_str().to_owned(),
                })
                .observe(waited);
        }
    }

    /// An accepted `reportPodStatuses` with `pods` pods.
    pub fn pods_reported(&self, pods: usize) {
        self.reported_pods.observe(pods as f64);
    }

    /// An accepted `reportDeploymentStatuses` with `statuses` statuses.
    pub fn statuses_reported(&self, statuses: usize) {
        self.reported_statuses.observe(statuses as f64);
    }

    /// An HTTP request to `route` (the router's pattern, e.g. `/deployments/{id}`).
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The exposition text (Prometheus text format 0.0.4): this process's metrics, then
    /// the store's counts `runs` (from [`crate::store::flow_runs::counts`]).
    pub fn render(&self, runs: &[RunCount]) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        let _ = prometheus_text::encode(&mut text, &store_registry(runs));
        text
    }
}

/// Gauges over the store's counts, made afresh for one scrape: flow runs by kind and state
/// (every cluster together), and the scheduled runs of each cluster (0 for a cluster with
/// none, so a queue that empties reads 0 rather than vanishing).
fn store_registry(runs: &[RunCount]) -> Registry {
    let by_kind_state = Family::<RunLabels, Gauge>::default();
    let scheduled = Family::<ClusterLabels, Gauge>::default();
    for count in runs {
        let queued = scheduled.get_or_create(&ClusterLabels {
            cluster: count.cluster.clone(),
        });
        let (Some(kind), Some(state)) = (&count.kind, &count.state) else {
            continue; // a cluster without runs
        };
        if state == "scheduled" {
            queued.inc_by(count.count);
        }
        drop(queued);
        by_kind_state
            .get_or_create(&RunLabels {
                kind: kind.clone(),
                state: state.clone(),
            })
            .inc_by(count.count);
    }
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register(
        "flow_runs",
        "Flow runs in the store by kind and state (counted at scrape time)",
        by_kind_state,
    );
    registry.register(
        "flow_run_queue_depth",
        "Flow runs waiting in scheduled, by cluster name: the cluster's queue depth (counted at scrape time)",
        scheduled,
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(cluster: &str, kind: Option<&str>, state: Option<&str>, n: i64) -> RunCount {
        RunCount {
            cluster: cluster.into(),
            kind: kind.map(str::to_owned),
            state: state.map(str::to_owned),
            count: n,
        }
    }

    fn sample<'t>(text: &'t str, series: &str) -> Option<&'t str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    /// The store's counts become runs by kind and state summed over clusters, and each
    /// cluster's queue depth, 0 for a cluster with nothing scheduled or no runs at all.
    #[test]
    fn store_counts_become_runs_by_kind_and_state_and_queue_depth_per_cluster() {
        let text = ServerMetrics::new().render(&[
            count("a", Some("create"), Some("completed"), 2),
            count("b", Some("create"), Some("completed"), 3),
            count("a", Some("update"), Some("scheduled"), 4),
            count("b", Some("delete"), Some("running"), 1),
            count("empty", None, None, 0),
        ]);
        let runs = |kind: &str, state: &str| {
            sample(
                &text,
                &format!("styrmin_server_flow_runs{{kind=\"{kind}\",state=\"{state}\"}}"),
            )
        };
        assert_eq!(runs("create", "completed"), Some("5"), "{text}");
        assert_eq!(runs("update", "scheduled"), Some("4"));
        assert_eq!(runs("delete", "running"), Some("1"));
        let queue = |cluster: &str| {
            sample(
                &text,
                &format!("styrmin_server_flow_run_queue_depth{{cluster=\"{cluster}\"}}"),
            )
        };
        assert_eq!(queue("a"), Some("4"), "{text}");
        assert_eq!(queue("b"), Some("0"));
        assert_eq!(queue("empty"), Some("0"));
        assert!(text.contains("# TYPE styrmin_server_flow_runs gauge\n"));
    }

    /// A claim's duration is filed under whether it leased runs; queue waits are measured
    /// for first attempts only; report sizes and HTTP requests land in their series.
    #[test]
    fn claims_reports_and_requests_are_recorded() {
        let m = ServerMetrics::new();
        m.claimed(Duration::from_millis(20), &[], 0);
        m.pods_reported(3);
        m.statuses_reported(1);
        m.http_request("POST", "/graphql", 200, Duration::from_millis(4));
        let text = m.render(&[]);
        for (series, value) in [
            (
                "styrmin_server_claim_duration_seconds_count{result=\"empty\"}",
                "1",
            ),
            (
                "styrmin_server_claim_duration_seconds_bucket{result=\"empty\",le=\"0.025\"}",
                "1",
            ),
            ("styrmin_server_reported_pods_sum", "3.0"),
            ("styrmin_server_reported_pods_count", "1"),
            ("styrmin_server_reported_deployment_statuses_count", "1"),
            (
                "styrmin_server_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}",
                "1",
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(
            !text.contains("styrmin_server_flow_run_queue_wait_seconds_count"),
            "no run was claimed: {text}"
        );
    }
}
