//! The SLO refresher: every `slo.refresh_interval_s` (on the `Clock`) evaluates every target over the configured window and
//! sets the `slo_*` gauges and `maintenance_active`, so a scrape never waits on an evaluation.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Ticker};
use crate::config::Config;
use crate::metrics::{SloGauges, SloMetrics};
use crate::slo::{evaluate, maintenance_windows, SloWindow, TargetSlo};
use crate::store::Store;
use crate::worker::Worker;

#[derive(Debug)]
pub struct SloRefresher {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: SloMetrics,
}

impl SloRefresher {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: SloMetrics,
    ) -> Self {
        Self {
            config,
            store,
            clock,
            metrics,
        }
    }

    /// One refresh: every target's SLO and maintenance state.
    pub async fn refresh(&self) {
        let now = self.clock.now();
        let window = SloWindow::last_days(self.config.slo.window_days, now);
        match evaluate(&self.store, &self.config, &window, None, false).await {
            Ok(results) => {
                for slo in &results {
                    self.metrics.set(&gauges(slo));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot evaluate the SLOs; the slo_* gauges keep their last values")
            }
        }
        let second = chrono::Duration::seconds(1);
        match maintenance_windows(&self.store, &self.config, now - second, now + second).await {
            Ok(windows) => {
                for target in &self.config.services {
                    let active = windows
                        .iter()
                        .any(|w| w.covers_target(target.name.as_str()) && w.is_active(now));
                    self.metrics
                        .maintenance_active(target.name.as_str(), active);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the maintenance windows"),
        }
    }
}

impl Worker for SloRefresher {
    fn name(&self) -> &'static str {
        "slo"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let period = Duration::from_secs(self.config.slo.refresh_interval_s);
            let mut ticker = Ticker::immediate(self.clock.clone(), period);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => self.refresh().await,
                }
            }
        })
    }
}

/// What the `slo_*` gauges show of one target's evaluation.
fn gauges(slo: &TargetSlo) -> SloGauges<'_> {
    let burns = &slo.error_budget.burn_rates;
    SloGauges {
        target: slo.target.as_str(),
        availability_ratio: slo.availability.ratio,
        p95_seconds: slo.latency.p95_ms.map(|ms| ms / 1_000.0),
        budget_remaining_ratio: slo.error_budget.remaining_ratio,
        restarts: slo.restarts.count,
        burn_rates: [burns.h1, burns.h6, burns.d1, burns.window],
    }
}
