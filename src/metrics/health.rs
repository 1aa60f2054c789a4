//! The Health Proxy's own metrics: probes (made, shared, in flight), targets, the score and breakers.

use std::time::Duration;

use prometheus::{Gauge, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use crate::breaker::BreakerState;
use crate::metrics::catalog;
use crate::records::{CheckSource, Outcome};

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
        let metrics = Self {
            checks: catalog::HEALTH_CHECK_TOTAL_DEF.int_counter_vec(),
            check_durations: catalog::HEALTH_CHECK_DURATION_SECONDS_DEF
                .histogram_vec(&catalog::CHECK_BUCKETS),
            shared: catalog::HEALTH_CHECK_SHARED_TOTAL_DEF.int_counter_vec(),
            not_stored: catalog::HEALTH_CHECK_NOT_STORED_TOTAL_DEF.int_counter_vec(),
            in_flight: catalog::PROBES_IN_FLIGHT_DEF.int_gauge(),
            concurrency_limit: catalog::PROBE_CONCURRENCY_LIMIT_DEF.int_gauge(),
            target_up: catalog::TARGET_UP_DEF.int_gauge_vec(),
            score: catalog::HEALTH_SCORE_DEF.gauge(),
            breaker_state: catalog::CIRCUIT_BREAKER_STATE_DEF.int_gauge_vec(),
            breaker_transitions: catalog::CIRCUIT_BREAKER_TRANSITIONS_TOTAL_DEF.int_counter_vec(),
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

    /// Creates at 0 every target's check series, by outcome and source, and its latency histograms (catalog:
    /// `health_check_total`, `health_check_duration_seconds`), so a target's first failure is an increase
    /// Prometheus can see.
    pub fn start_series(&self, known: &catalog::StartLabels) {
        for labels in catalog::HEALTH_CHECK_TOTAL_DEF.series_at_start(None, known) {
            self.checks.with_label_values(&labels);
        }
        for labels in catalog::HEALTH_CHECK_DURATION_SECONDS_DEF.series_at_start(None, known) {
            self.check_durations.with_label_values(&labels);
        }
    }

    /// Records one finished check, scheduled (`monitor`) or asked for (`on_demand`). Checks skipped by an
    /// open breaker have no latency.
    pub fn check_finished(
        &self,
        target: &str,
        source: CheckSource,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        self.checks
            .with_label_values(&[target, outcome.as_str(), source.as_str()])
            .inc();
        if let Some(elapsed) = elapsed {
            self.check_durations
                .with_label_values(&[target, source.as_str()])
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
