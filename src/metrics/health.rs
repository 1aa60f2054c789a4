//! The Health Proxy's own metrics: probes (made, shared, in flight), targets, the score and breakers.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge};

use crate::breaker::BreakerState;
use crate::metrics::catalog;
use crate::metrics::targets::{CheckCount, TargetTable};
use crate::metrics::ServiceMetrics;
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

/// The Health Proxy's metrics. The series of each target (checks by outcome, checks within the latency
/// objective, `target_up`, `circuit_breaker_state`) are in the `TargetTable`, rendered by the service's
/// `ServiceMetrics`; everything else is in the service's registry.
#[derive(Debug, Clone)]
pub struct HealthMetrics {
    targets: Arc<TargetTable>,
    /// `health_check_on_demand_total` by `Outcome::ALL` index.
    on_demand: Vec<IntCounter>,
    /// `health_check_duration_seconds` by `CheckSource::ALL` index.
    durations: Vec<Histogram>,
    shared: IntCounter,
    not_stored: IntCounter,
    in_flight: IntGauge,
    concurrency_limit: IntGauge,
    score: Gauge,
    breaker_transitions: IntCounterVec,
}

impl HealthMetrics {
    /// Registers the Health Proxy's collectors on its service's registry, and its per-target table (a row
    /// at 0 for every target known at start) on the service's `/metrics`.
    pub fn register(service: &ServiceMetrics, known: &catalog::StartLabels) -> Self {
        let registry = service.registry();
        let on_demand = catalog::HEALTH_CHECK_ON_DEMAND_TOTAL_DEF.int_counter_vec();
        let durations =
            catalog::HEALTH_CHECK_DURATION_SECONDS_DEF.histogram_vec(&catalog::CHECK_BUCKETS);
        let shared = catalog::HEALTH_CHECK_SHARED_TOTAL_DEF.int_counter();
        let not_stored = catalog::HEALTH_CHECK_NOT_STORED_TOTAL_DEF.int_counter();
        let in_flight = catalog::PROBES_IN_FLIGHT_DEF.int_gauge();
        let concurrency_limit = catalog::PROBE_CONCURRENCY_LIMIT_DEF.int_gauge();
        let score = catalog::HEALTH_SCORE_DEF.gauge();
        let breaker_transitions = catalog::CIRCUIT_BREAKER_TRANSITIONS_TOTAL_DEF.int_counter_vec();
        let collectors: [Box<dyn prometheus::core::Collector>; 8] = [
            Box::new(on_demand.clone()),
            Box::new(durations.clone()),
            Box::new(shared.clone()),
            Box::new(not_stored.clone()),
            Box::new(in_flight.clone()),
            Box::new(concurrency_limit.clone()),
            Box::new(score.clone()),
            Box::new(breaker_transitions.clone()),
        ];
        for collector in collectors {
            // Each name is a distinct constant, registered once per registry.
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let targets = Arc::new(TargetTable::new(known));
        service.render_targets(targets.clone());
        // Every outcome and source at 0 from the start (catalog: `at_start`), looked up once here rather than
        // hashed at each check.
        let on_demand = Outcome::ALL
            .iter()
            .map(|o| on_demand.with_label_values(&[o.as_str()]))
            .collect();
        let durations = CheckSource::ALL
            .iter()
            .map(|s| durations.with_label_values(&[s.as_str()]))
            .collect();
        Self {
            targets,
            on_demand,
            durations,
            shared,
            not_stored,
            in_flight,
            concurrency_limit,
            score,
            breaker_transitions,
        }
    }

    /// Records one finished check, scheduled (`monitor`) or asked for (`on_demand`). Checks skipped by an
    /// open breaker have no latency. Per target, only scheduled checks are counted (what the SLIs read);
    /// on-demand ones are counted for all targets together, so a `/health/all` does not add series.
    pub fn check_finished(
        &self,
        target: &str,
        source: CheckSource,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        let scheduled = match source {
            CheckSource::Monitor => Some(outcome),
            CheckSource::OnDemand => {
                if let Some(counter) = self.on_demand.get(index_of(&Outcome::ALL, outcome)) {
                    counter.inc();
                }
                None
            }
        };
        if let (Some(elapsed), Some(histogram)) = (
            elapsed,
            self.durations.get(index_of(&CheckSource::ALL, source)),
        ) {
            histogram.observe(elapsed.as_secs_f64());
        }
        self.targets.check_finished(
            target,
            CheckCount {
                scheduled,
                elapsed,
                up: outcome.is_up(),
            },
        );
    }

    /// A check request that got the result of a check already in flight instead of starting one. Counted
    /// for all targets together (`target` is not a label: docs/metrics.md, the cardinality budget).
    pub fn check_shared(&self, _target: &str) {
        self.shared.inc();
    }

    /// An on-demand check whose row was not stored (one per target per interval). Counted for all targets
    /// together.
    pub fn check_not_stored(&self, _target: &str) {
        self.not_stored.inc();
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
        self.targets.set_breaker(target, state.gauge_value());
    }

    pub fn breaker_transition(&self, target: &str, to: BreakerState) {
        self.breaker_transitions
            .with_label_values(&[target, to.as_str()])
            .inc();
        self.breaker_state(target, to);
    }
}

/// The position of a value in its closed set's `ALL`.
fn index_of<T: PartialEq>(all: &[T], value: T) -> usize {
    all.iter().position(|v| *v == value).unwrap_or_default()
}
