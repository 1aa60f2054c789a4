//! The SLO engine's view of the fleet, set by the SLO refresher in the background (never computed per
//! scrape): how many targets have spent their availability error budget, and how many are in maintenance.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntGauge, Registry};

use crate::metrics::catalog;

/// One target's SLO numbers as the SLO engine hands them to the metrics, in plain values so that metrics
/// need not know the SLO engine's types. `None` is a number the window has no data for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloGauges<'a> {
    pub target: &'a str,
    pub availability_ratio: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub budget_remaining_ratio: Option<f64>,
    pub restarts: u32,
    /// Burn rates over the last 1h, 6h, 1d and the whole window.
    pub burn_rates: [Option<f64>; 4],
}

/// The SLO engine's fleet-wide gauges. Per target, SLOs are not exported: at 10,000 targets the nine
/// gauges a target had cost more than the whole `/metrics` budget (docs/metrics.md), and the exported
/// recording rules compute each target's SLIs and burn rates from the counters (`hale export alerts`).
#[derive(Debug, Clone)]
pub struct SloMetrics {
    budget_exhausted: IntGauge,
    in_maintenance: IntGauge,
    fleet: Arc<Mutex<Fleet>>,
}

/// The targets each fleet gauge counts, so that setting one target again does not count it twice.
#[derive(Debug, Default)]
struct Fleet {
    budget_exhausted: HashSet<String>,
    in_maintenance: HashSet<String>,
}

impl SloMetrics {
    /// Registers the collectors on the Health Proxy's registry, where the targets are.
    pub fn register(registry: &Registry) -> Self {
        let budget_exhausted = catalog::SLO_BUDGET_EXHAUSTED_TARGETS_DEF.int_gauge();
        let in_maintenance = catalog::MAINTENANCE_ACTIVE_TARGETS_DEF.int_gauge();
        for collector in [
            Box::new(budget_exhausted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(in_maintenance.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            budget_exhausted,
            in_maintenance,
            fleet: Arc::new(Mutex::new(Fleet::default())),
        }
    }

    /// Takes one target's evaluation into the fleet gauges: its availability budget is spent when none of
    /// it remains (a window without valid checks has no budget figure and does not count).
    pub fn set(&self, slo: &SloGauges<'_>) {
        let exhausted = slo.budget_remaining_ratio.is_some_and(|r| r <= 0.0);
        let mut fleet = self.fleet.lock().unwrap_or_else(PoisonError::into_inner);
        let count = mark(&mut fleet.budget_exhausted, slo.target, exhausted);
        self.budget_exhausted.set(count);
    }

    pub fn maintenance_active(&self, target: &str, active: bool) {
        let mut fleet = self.fleet.lock().unwrap_or_else(PoisonError::into_inner);
        let count = mark(&mut fleet.in_maintenance, target, active);
        self.in_maintenance.set(count);
    }
}

/// Adds or removes `target`; the size of the set after.
fn mark(set: &mut HashSet<String>, target: &str, member: bool) -> i64 {
    if member {
        if !set.contains(target) {
            set.insert(target.to_owned());
        }
    } else {
        set.remove(target);
    }
    i64::try_from(set.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(target: &str, remaining: Option<f64>) -> SloGauges<'_> {
        SloGauges {
            target,
            availability_ratio: None,
            p95_seconds: None,
            budget_remaining_ratio: remaining,
            restarts: 0,
            burn_rates: [None; 4],
        }
    }

    #[test]
    fn the_fleet_gauges_count_each_target_once() {
        let metrics = SloMetrics::register(&Registry::new());
        metrics.set(&gauges("a", Some(-0.5)));
        metrics.set(&gauges("a", Some(0.0)));
        metrics.set(&gauges("b", Some(0.3)));
        metrics.set(&gauges("c", None));
        assert_eq!(metrics.budget_exhausted.get(), 1);
        metrics.set(&gauges("a", Some(0.1)));
        assert_eq!(metrics.budget_exhausted.get(), 0);
        metrics.maintenance_active("a", true);
        metrics.maintenance_active("a", true);
        metrics.maintenance_active("b", true);
        metrics.maintenance_active("b", false);
        assert_eq!(metrics.in_maintenance.get(), 1);
    }
}
