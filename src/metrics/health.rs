//! The Health Proxy's own metrics: probes (made, shared, in flight), targets, the score, breakers, the writer.

use std::time::Duration;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::breaker::BreakerState;
use crate::metrics::names;
use crate::records::Outcome;

/// Probe latency buckets in seconds: dense around the 200 ms p95 target.
const CHECK_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.0, 5.0, 10.0,
];

/// A running probe, counted in `probes_in_flight` until dropped.
#[derive(Debug)]
#[must_use = "the probe counts as running only while this guard lives"]
pub struct ProbeInFlight(IntGauge);

impl Drop for ProbeInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug, Clone)]
pub struct HealthMetrics {
    checks: IntCounterVec,
    check_durations: HistogramVec,
    shared: IntCounterVec,
    not_stored: IntCounterVec,
    in_flight: IntGauge,
    concurrency_limit: IntGauge,
    target_up: IntGaugeVec,
    score: Gauge,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    rows_written: IntCounter,
    rows_dropped: IntCounter,
    queue_depth: IntGauge,
    write_errors: IntCounterVec,
}

impl HealthMetrics {
    /// Registers the Health Proxy's collectors on its service registry.
    pub fn register(registry: &Registry) -> Self {
        let valid = "static metric definition is valid";
        let metrics = Self {
            checks: IntCounterVec::new(
                Opts::new(
                    names::HEALTH_CHECK_TOTAL,
                    "Health checks made, by target and outcome.",
                ),
                &["target", "outcome"],
            )
            .expect(valid),
            check_durations: HistogramVec::new(
                HistogramOpts::new(
                    names::HEALTH_CHECK_DURATION_SECONDS,
                    "Time a health check took, by target, in seconds.",
                )
                .buckets(CHECK_BUCKETS.to_vec()),
                &["target"],
            )
            .expect(valid),
            shared: IntCounterVec::new(
                Opts::new(
                    names::HEALTH_CHECK_SHARED_TOTAL,
                    "Check requests answered with the result of a check of the target already in flight.",
                ),
                &["target"],
            )
            .expect(valid),
            not_stored: IntCounterVec::new(
                Opts::new(
                    names::HEALTH_CHECK_NOT_STORED_TOTAL,
                    "On-demand checks answered but not stored: the target had an on-demand row within its interval.",
                ),
                &["target"],
            )
            .expect(valid),
            in_flight: IntGauge::new(
                names::PROBES_IN_FLIGHT,
                "Probes running now, background and on-demand.",
            )
            .expect(valid),
            concurrency_limit: IntGauge::new(
                names::PROBE_CONCURRENCY_LIMIT,
                "The most probes that may run at once (monitor.max_in_flight, lowered to fit the open-file limit).",
            )
            .expect(valid),
            target_up: IntGaugeVec::new(
                Opts::new(
                    names::TARGET_UP,
                    "1 if the target's latest check was up, else 0.",
                ),
                &["target"],
            )
            .expect(valid),
            score: Gauge::new(
                names::HEALTH_SCORE,
                "Weighted health of all targets, 0 to 100.",
            )
            .expect(valid),
            breaker_state: IntGaugeVec::new(
                Opts::new(
                    names::CIRCUIT_BREAKER_STATE,
                    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                ),
                &["breaker"],
            )
            .expect(valid),
            breaker_transitions: IntCounterVec::new(
                Opts::new(
                    names::CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
                    "Circuit breaker transitions, by breaker and new state.",
                ),
                &["breaker", "to"],
            )
            .expect(valid),
            rows_written: IntCounter::new(
                names::STORE_ROWS_WRITTEN_TOTAL,
                "Health-check rows written to the database.",
            )
            .expect(valid),
            rows_dropped: IntCounter::new(
                names::STORE_ROWS_DROPPED_TOTAL,
                "Health-check rows given up on: past the in-memory hold while the database failed, or unwritten at shutdown.",
            )
            .expect(valid),
            queue_depth: IntGauge::new(
                names::STORE_QUEUE_DEPTH,
                "Health-check rows waiting for the batching writer.",
            )
            .expect(valid),
            write_errors: IntCounterVec::new(
                Opts::new(
                    names::STORE_WRITE_ERRORS_TOTAL,
                    "Failed database writes of health checks, by kind (full, read_only, locked, file_gone, io_error, other); each is retried.",
                ),
                &["kind"],
            )
            .expect(valid),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(metrics.checks.clone()),
            Box::new(metrics.check_durations.clone()),
            Box::new(metrics.shared.clone()),
            Box::new(metrics.not_stored.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.concurrency_limit.clone()),
            Box::new(metrics.target_up.clone()),
            Box::new(metrics.score.clone()),
            Box::new(metrics.breaker_state.clone()),
            Box::new(metrics.breaker_transitions.clone()),
            Box::new(metrics.rows_written.clone()),
            Box::new(metrics.rows_dropped.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.write_errors.clone()),
        ];
        for collector in collectors {
            // Each name is a distinct constant, registered once per registry.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// Records one finished check. Checks skipped by an open breaker have no latency.
    pub fn check_finished(&self, target: &str, outcome: Outcome, elapsed: Option<Duration>) {
        self.checks
            .with_label_values(&[target, outcome.as_str()])
            .inc();
        if let Some(elapsed) = elapsed {
            self.check_durations
                .with_label_values(&[target])
                .observe(elapsed.as_secs_f64());
        }
        self.target_up
            .with_label_values(&[target])
            .set(i64::from(outcome.is_up()));
    }

    /// A check request that got the result of a check already in flight instead of starting one.
    pub fn check_shared(&self, target: &str) {
        self.shared.with_label_values(&[target]).inc();
    }

    /// An on-demand check whose row was not stored (one per target per interval).
    pub fn check_not_stored(&self, target: &str) {
        self.not_stored.with_label_values(&[target]).inc();
    }

    pub fn set_probe_concurrency_limit(&self, limit: usize) {
        self.concurrency_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Counts a probe as running until the returned guard is dropped.
    pub fn probe_started(&self) -> ProbeInFlight {
        self.in_flight.inc();
        ProbeInFlight(self.in_flight.clone())
    }

    pub fn set_score(&self, score: f64) {
        self.score.set(score);
    }

    pub fn breaker_state(&self, breaker: &str, state: BreakerState) {
        self.breaker_state
            .with_label_values(&[breaker])
            .set(state.gauge_value());
    }

    pub fn breaker_transition(&self, breaker: &str, to: BreakerState) {
        self.breaker_transitions
            .with_label_values(&[breaker, to.as_str()])
            .inc();
        self.breaker_state(breaker, to);
    }

    /// Brings the writer metrics up to date with the writer's own counters (called at scrape time). `errors`
    /// holds the failed writes so far by kind label.
    pub fn writer_observed(
        &self,
        written: u64,
        dropped: u64,
        queued: usize,
        errors: &[(&'static str, u64)],
    ) {
        self.rows_written
            .inc_by(written.saturating_sub(self.rows_written.get()));
        self.rows_dropped
            .inc_by(dropped.saturating_sub(self.rows_dropped.get()));
        self.queue_depth
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        for (kind, count) in errors {
            let counter = self.write_errors.with_label_values(&[kind]);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }
}
