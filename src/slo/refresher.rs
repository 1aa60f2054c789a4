//! The SLO refresher: every `slo.refresh_interval_s` (on the `Clock`), or sooner when nudged, moves the SLO
//! ledger to `now - lag`, publishes every target's SLO on the `SloBoard` (what `/slo` and the status page
//! show) and sets the `slo_*` gauges and `maintenance_active`, so neither a request nor a scrape waits on an
//! evaluation.
//!
//! The lag: a check is stored once it finished (up to its timeout after it started) and the writer
//! flushed it, so the ledger stays the longest probe timeout, a flush interval and `LAG_SLACK` behind the
//! clock, behind the oldest check the writer still holds unwritten (while the disk refuses writes), and
//! behind the oldest check not yet settled into `checks` and the rollups (`store/settle.rs`), which is
//! what it reads.
//! What the ledger counted is never counted again, so a check stored after the ledger passed its time
//! would be missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Ticker};
use crate::config::Config;
use crate::metrics::{SloGauges, SloMetrics};
use crate::slo::board::SloBoard;
use crate::slo::ledger::SloLedger;
use crate::slo::{evaluate, maintenance_windows, SloWindow, TargetSlo};
use crate::store::writer::CheckWriter;
use crate::store::Store;
use crate::worker::Worker;

/// Added to the longest probe timeout and the writer's flush interval in the ledger's lag.
pub const LAG_SLACK: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct SloRefresher {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: SloMetrics,
    board: Arc<SloBoard>,
    writer: CheckWriter,
    ledger: tokio::sync::Mutex<SloLedger>,
}

impl SloRefresher {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: SloMetrics,
        board: Arc<SloBoard>,
        writer: CheckWriter,
    ) -> Self {
        let ledger = tokio::sync::Mutex::new(SloLedger::new(&config));
        Self {
            config,
            store,
            clock,
            metrics,
            board,
            writer,
            ledger,
        }
    }

    /// How far the ledger stays behind the clock: the longest probe timeout, a flush, and `LAG_SLACK`.
    pub fn lag(config: &Config) -> Duration {
        let longest_timeout = config
            .services
            .iter()
            .map(|t| t.timeout())
            .max()
            .unwrap_or_default();
        longest_timeout + Duration::from_millis(config.storage.flush_interval_ms) + LAG_SLACK
    }

    /// The end of the window a pass at `now` may count up to: `now - lag` (returned first), and not past the
    /// oldest check the writer holds unwritten or has not settled (returned second).
    fn counted_until(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let lag = chrono::Duration::from_std(Self::lag(&self.config)).unwrap_or_default();
        let natural = now - lag;
        let stats = self.writer.stats();
        let behind = [stats.first_unwritten(), stats.first_unsettled()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at - lag);
        (natural, behind.map_or(natural, |b| b.min(natural)))
    }

    /// One refresh: every target's SLO, published and in the gauges, and the maintenance state.
    pub async fn refresh(&self) {
        let now = self.clock.now();
        match self.pass(now).await {
            Ok(()) => {
                for slo in self.board.latest().iter().flat_map(|s| s.slos.iter()) {
                    self.metrics.set(&gauges(slo));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot evaluate the SLOs; /slo, the status page and the slo_* gauges keep their last values")
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
        // What the pass read and built for a moment is freed by now, but glibc keeps it in the arena of
        // whichever thread ran each part; given back, RSS stays at what hale holds.
        let trim = Instant::now();
        let released = crate::process::release_free_memory();
        tracing::debug!(
            released,
            elapsed_us = trim.elapsed().as_micros() as u64,
            "free memory given back after the slo pass"
        );
    }

    /// Moves the ledger (or, when raw checks are not kept as long as the window, evaluates afresh) and
    /// publishes the result.
    async fn pass(&self, now: DateTime<Utc>) -> Result<(), crate::slo::SloError> {
        let started = Instant::now();
        let (natural, mut until) = self.counted_until(now);
        let results = if self.config.storage.retention_days > self.config.slo.window_days {
            let mut ledger = self.ledger.lock().await;
            if let Some(before) = ledger.until() {
                // Rows the writer holds keep the ledger where it was; only a clock stepped back moves it
                // back (and so evaluates afresh).
                if until < before && natural >= before {
                    until = before;
                }
            }
            let (results, stats) = ledger.advance(&self.store, &self.config, until).await?;
            tracing::debug!(
                rebuilt = stats.rebuilt,
                advanced = stats.advanced,
                checks_read = stats.checks_read,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "slo ledger pass"
            );
            results
        } else {
            // Raw checks leave before the window does: the ledger could not take them out; evaluate.
            let window = SloWindow::last_days(self.config.slo.window_days, until);
            evaluate(&self.store, &self.config, &window, None, false).await?
        };
        self.board.publish(until, now, started.elapsed(), results);
        Ok(())
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
                    _ = self.board.nudged() => self.refresh().await,
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
