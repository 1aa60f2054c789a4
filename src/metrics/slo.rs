//! The SLO engine's view of every target, set by the SLO refresher in the background (never computed per
//! scrape): availability, p95, error budget left and its burn rates, restarts, and maintenance in progress.

use prometheus::{GaugeVec, IntGaugeVec, Registry};

use crate::metrics::catalog;

/// The `window` label values of `slo_error_budget_burn_rate`.
pub const BURN_WINDOWS: [&str; 4] = ["1h", "6h", "1d", "window"];

/// One target's SLO numbers as the gauges show them, in plain values so that metrics need not know the SLO
/// engine's types. `None` is a number the window has no data for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloGauges<'a> {
    pub target: &'a str,
    pub availability_ratio: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub budget_remaining_ratio: Option<f64>,
    pub restarts: u32,
    /// Burn rates in the order of `BURN_WINDOWS`.
    pub burn_rates: [Option<f64>; 4],
}

#[derive(Debug, Clone)]
pub struct SloMetrics {
    availability: GaugeVec,
    p95: GaugeVec,
    budget_remaining: GaugeVec,
    restarts: IntGaugeVec,
    burn: GaugeVec,
    maintenance: IntGaugeVec,
}

impl SloMetrics {
    /// Registers the collectors on the Health Proxy's registry, where the targets are.
    pub fn register(registry: &Registry) -> Self {
        let availability = catalog::SLO_AVAILABILITY_RATIO_DEF.gauge_vec();
        let p95 = catalog::SLO_LATENCY_P95_SECONDS_DEF.gauge_vec();
        let budget_remaining = catalog::SLO_ERROR_BUDGET_REMAINING_RATIO_DEF.gauge_vec();
        let restarts = catalog::SLO_RESTARTS_DEF.int_gauge_vec();
        let burn = catalog::SLO_ERROR_BUDGET_BURN_RATE_DEF.gauge_vec();
        let maintenance = catalog::MAINTENANCE_ACTIVE_DEF.int_gauge_vec();
        for collector in [
            Box::new(availability.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(p95.clone()),
            Box::new(budget_remaining.clone()),
            Box::new(restarts.clone()),
            Box::new(burn.clone()),
            Box::new(maintenance.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            availability,
            p95,
            budget_remaining,
            restarts,
            burn,
            maintenance,
        }
    }

    /// Sets every gauge of one target from its evaluation. A number the window has no data for (no valid
    /// checks) removes its series rather than report a made-up value.
    pub fn set(&self, slo: &SloGauges<'_>) {
        let target = slo.target;
        set_or_remove(&self.availability, &[target], slo.availability_ratio);
        set_or_remove(&self.p95, &[target], slo.p95_seconds);
        set_or_remove(
            &self.budget_remaining,
            &[target],
            slo.budget_remaining_ratio,
        );
        self.restarts
            .with_label_values(&[target])
            .set(i64::from(slo.restarts));
        for (window, value) in BURN_WINDOWS.into_iter().zip(slo.burn_rates) {
            set_or_remove(&self.burn, &[target, window], value);
        }
    }

    pub fn maintenance_active(&self, target: &str, active: bool) {
        self.maintenance
            .with_label_values(&[target])
            .set(i64::from(active));
    }
}

fn set_or_remove(gauge: &GaugeVec, labels: &[&str], value: Option<f64>) {
    match value {
        Some(v) => gauge.with_label_values(labels).set(v),
        None => {
            let _ = gauge.remove_label_values(labels);
        }
    }
}
