//! Metrics (Prometheus text format through the `metrics` facade), the names wxpush records
//! under, and [`Metrics`], the registry each server owns. Health and readiness endpoints live in [`crate::server`].

use std::sync::Arc;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Requests by `app` (`-` when none was resolved) and `outcome`: `ok`, `duplicate`, `replay`,
/// `quarantined`, `bad_signature`, `unencrypted`, `bad_request`, `not_found`, `too_large`,
/// `store_error`, `url_check`.
pub const REQUESTS: &str = "wxpush_requests_total";
/// Request latency in seconds, by route kind; buckets bracket the platform's 5 s deadline.
pub const REQUEST_DURATION: &str = "wxpush_request_duration_seconds";
/// New events stored, by `app`, `event` name and category-audit `result`.
pub const EVENTS: &str = "wxpush_events_total";
/// Handler calls (probes of paused routes included), by `route`.
pub const DELIVERY_ATTEMPTS: &str = "wxpush_delivery_attempts_total";
/// Handler calls that failed or timed out, by `route` and `outcome` (`retry`, `dead`, or `probe`: a failed probe of a paused route).
pub const DELIVERY_FAILURES: &str = "wxpush_delivery_failures_total";
/// Handler call latency in seconds, by `route`.
pub const DELIVERY_DURATION: &str = "wxpush_delivery_duration_seconds";
/// 1 while a route is paused by its breaker, else 0, by `route`.
pub const ROUTE_PAUSED: &str = "wxpush_route_paused";
/// Deliveries (an event and a route) waiting.
pub const PENDING: &str = "wxpush_events_pending";
/// Deliveries whose schedule is used up (not discarded).
pub const DEAD: &str = "wxpush_events_dead";
/// Pushes in quarantine (not discarded).
pub const QUARANTINED: &str = "wxpush_events_quarantined";
/// Deliveries and quarantined pushes discarded by an operator, kept until retention.
pub const DISCARDED: &str = "wxpush_events_discarded";
/// Gauge: seconds until a managed token (`appid`, `kind`) expires (negative: expired).
pub const TOKEN_EXPIRES_IN: &str = "wxpush_token_expires_in_seconds";
/// Counter: token refresh calls, by `kind` and `outcome` (`ok`, `error`).
pub const TOKEN_REFRESHES: &str = "wxpush_token_refresh_total";
/// Gauge: seconds since the latest `component_verify_ticket` of a `component` was pushed.
pub const TICKET_AGE: &str = "wxpush_ticket_age_seconds";
/// Counter: failed logins to the console.
pub const CONSOLE_LOGIN_FAILURES: &str = "wxpush_console_login_failures_total";
/// Pushes that still used an app's previous token or key, by `app` and `credential`.
pub const PREVIOUS_CREDENTIALS: &str = "wxpush_previous_credentials_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.0, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// One server's metrics: a Prometheus registry of its own, so that two servers in one
/// process (tests, or a program embedding wxpush) count apart. Cloning shares the registry.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with wxpush's metrics described and latency buckets set.
    pub fn new() -> Self {
        // The buckets are constant and valid; a builder refusing them keeps the defaults.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = Arc::new(builder.build_recorder());
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.record(describe);
        metrics
    }

    /// Runs `emit` (which uses the `metrics` macros) against this registry.
    pub fn record<T>(&self, emit: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, emit)
    }

    /// Counts one request outcome for `app` (a configured name, or `-`).
    pub fn request(&self, app: &str, outcome: &'static str) {
        self.record(|| {
            metrics::counter!(REQUESTS, "app" => app.to_owned(), "outcome" => outcome).increment(1);
        });
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds histogram samples into their buckets; without it, memory grows with every
    /// request between scrapes (found by the soak benchmark). Run it every [`UPKEEP_EVERY`].
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Push and URL-check requests by outcome");
    describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Request latency (the platform waits 5 s)"
    );
    describe_counter!(
        EVENTS,
        "New events stored, by event and category-audit result"
    );
    describe_counter!(DELIVERY_ATTEMPTS, "Handler calls");
    describe_counter!(DELIVERY_FAILURES, "Handler calls that failed or timed out");
    describe_histogram!(
        DELIVERY_DURATION,
        metrics::Unit::Seconds,
        "Handler call latency"
    );
    describe_gauge!(
        ROUTE_PAUSED,
        "1 while a route is paused after consecutive failures"
    );
    describe_gauge!(PENDING, "Deliveries (event and route) waiting");
    describe_gauge!(DEAD, "Deliveries whose retry schedule is used up");
    describe_gauge!(
        QUARANTINED,
        "Pushes kept aside: genuine but not processable"
    );
    describe_gauge!(
        DISCARDED,
        "Deliveries and quarantined pushes discarded by an operator"
    );
    describe_counter!(CONSOLE_LOGIN_FAILURES, "Failed logins to the console");
    describe_gauge!(TOKEN_EXPIRES_IN, "Seconds until a managed token expires");
    describe_counter!(
        TOKEN_REFRESHES,
        "Token refresh calls to the platform, by outcome"
    );
    describe_gauge!(
        TICKET_AGE,
        "Seconds since the latest component_verify_ticket was pushed"
    );
    describe_counter!(
        PREVIOUS_CREDENTIALS,
        "Pushes that still used an app's previous token or key"
    );
}
