//! The Health Proxy's own metrics: probes (made, shared, in flight), targets, the score and breakers.

use std::time::Duration;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
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
                &[names::LABEL_TARGET, names::LABEL_OUTCOME],
            )
            .expect(valid),
            check_durations: HistogramVec::new(
                HistogramOpts::new(
                    names::HEALTH_CHECK_DURATION_SECONDS,
                    "Time a health check took, by target, in seconds.",
                )
                .buckets(CHECK_BUCKETS.to_vec()),
                &[names::LABEL_TARGET],
            )
            .expect(valid),
            shared: IntCounterVec::new(
                Opts::new(
                    names::HEALTH_CHECK_SHARED_TOTAL,
                    "Check requests answered with the result of a check of the target already in flight.",
                ),
                &[names::LABEL_TARGET],
            )
            .expect(valid),
            not_stored: IntCounterVec::new(
                Opts::new(
                    names::HEALTH_CHECK_NOT_STORED_TOTAL,
                    "On-demand checks answered but not stored: the target had an on-demand row within its interval.",
                ),
                &[names::LABEL_TARGET],
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
                &[names::LABEL_TARGET],
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
                    "Circuit breaker state of each target: 0 closed, 1 half-open, 2 open.",
                ),
                &[names::LABEL_TARGET],
            )
            .expect(valid),
            breaker_transitions: IntCounterVec::new(
                Opts::new(
                    names::CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
                    "Circuit breaker transitions, by target and new state.",
                ),
                &[names::LABEL_TARGET, names::LABEL_TO],
            )
            .expect(valid),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 10] = [
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

    pub fn breaker_state(&self, target: &str, state: BreakerState) {
        self.breaker_state
            .with_label_values(&[target])
            .set(state.gauge_value());
    }

    pub fn breaker_transition(&self, target: &str, to: BreakerState) {
        self.breaker_transitions
            .with_label_values(&[target, to.as_str()])
            .inc();
        self.breaker_state(target, to);
    }
}
