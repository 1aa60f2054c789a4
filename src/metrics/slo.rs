//! The SLO engine's view of every target, set by the SLO refresher in the background (never computed per
//! scrape): availability, p95, error budget left and its burn rates, restarts, and maintenance in progress.

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use crate::metrics::names;
use crate::slo::TargetSlo;

/// The `window` label values of `slo_error_budget_burn_rate`.
pub const BURN_WINDOWS: [&str; 4] = ["1h", "6h", "1d", "window"];

#[derive(Debug, Clone)]
pub struct SloMetrics {
    availability: GaugeVec,
    p95: GaugeVec,
    budget_remaining: GaugeVec,
    restarts: IntGaugeVec,
    burn: GaugeVec,
    maintenance: IntGaugeVec,
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid")
}

impl SloMetrics {
    /// Registers the collectors on the Health Proxy's registry, where the targets are.
    pub fn register(registry: &Registry) -> Self {
        let target = [names::LABEL_TARGET];
        let availability = gauge(
            names::SLO_AVAILABILITY_RATIO,
            "Good / valid scheduled checks of a target over the SLO window (maintenance excluded).",
            &target,
        );
        let p95 = gauge(
            names::SLO_LATENCY_P95_SECONDS,
            "95th percentile latency of a target's valid checks over the SLO window, from the hourly rollups (within 1%).",
            &target,
        );
        let budget_remaining = gauge(
            names::SLO_ERROR_BUDGET_REMAINING_RATIO,
            "Share of a target's availability error budget left over the SLO window; negative once overspent.",
            &target,
        );
        let restarts = IntGaugeVec::new(
            Opts::new(
                names::SLO_RESTARTS,
                "Restarts of a target over the SLO window (child restarts and heal commands that ran).",
            ),
            &target,
        )
        .expect("static metric definition is valid");
        let burn = gauge(
            names::SLO_ERROR_BUDGET_BURN_RATE,
            "How fast a target spends its error budget over the last 1h, 6h, 1d or the whole SLO window (1 = exactly on budget).",
            &[names::LABEL_TARGET, names::LABEL_WINDOW],
        );
        let maintenance = IntGaugeVec::new(
            Opts::new(
                names::MAINTENANCE_ACTIVE,
                "1 while a maintenance window covers a target, else 0.",
            ),
            &target,
        )
        .expect("static metric definition is valid");
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
    pub fn set(&self, slo: &TargetSlo) {
        let target = slo.target.as_str();
        set_or_remove(&self.availability, &[target], slo.availability.ratio);
        set_or_remove(
            &self.p95,
            &[target],
            slo.latency.p95_ms.map(|ms| ms / 1_000.0),
        );
        set_or_remove(
            &self.budget_remaining,
            &[target],
            slo.error_budget.remaining_ratio,
        );
        self.restarts
            .with_label_values(&[target])
            .set(i64::from(slo.restarts.count));
        let burns = &slo.error_budget.burn_rates;
        for (window, value) in
            BURN_WINDOWS
                .into_iter()
                .zip([burns.h1, burns.h6, burns.d1, burns.window])
        {
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
