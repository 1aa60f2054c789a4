//! Evaluates every objective of a target over a window, from the hourly rollups (default) or from every raw
//! check (`exact`). The math is the same either way (`arithmetic.rs`); only where the counts come from differs.
//!
//! Rollups and maintenance: an hour entirely inside the window and outside every maintenance window is taken
//! from its rollup row; an hour entirely inside a maintenance window is dropped whole (its checks are
//! `excluded`); an hour cut by the window's edges or by a maintenance window is counted from its raw
//! checks. Raw checks are kept `storage.retention_days` (30 by default): for an hour older than that, whose
//! raw checks are gone, the rollup row is taken whole when the hour starts inside the window, and whole as
//! valid unless a maintenance window covers the entire hour.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, SloConfig};
use crate::records::histogram::LatencyHistogram;
use crate::records::Outcome;
use crate::slo::arithmetic::{self, CheckCounts, HourSource, LatencyCounts};
use crate::slo::maintenance::{config_windows, Exclusions, MaintenanceWindow};
use crate::slo::model::{RetroactiveMaintenance, SloMethod, SloWindow, TargetSlo};
use crate::store::rollups::HourlyRollup;
use crate::store::slo::ScheduledCheck;
use crate::store::{Store, StoreError};

const HOUR_MS: i64 = 3_600_000;
/// The spans burn rates are reported over besides the whole window, in hours, each ending at the window's
/// end (whatever the window's length).
pub(crate) const BURN_SPANS_H: [i64; 3] = [1, 6, 24];
pub use crate::slo::arithmetic::AT_RISK_MARGIN;

#[derive(Debug, thiserror::Error)]
pub enum SloError {
    #[error("no target named {0:?}")]
    UnknownTarget(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The counts of one span of one target.
#[derive(Debug, Clone, Default)]
struct Tally {
    counts: CheckCounts,
    /// Latencies of valid checks that were made (rollup method).
    latency: LatencyHistogram,
    /// The same latencies, every one (exact method).
    exact: Vec<u64>,
}

impl Tally {
    fn add_check(&mut self, check: &ScheduledCheck, excluded: bool, exact: bool) {
        self.counts.add_check(check.outcome.is_up(), excluded);
        if excluded {
            return;
        }
        if let Some(us) = check
            .latency_us
            .filter(|_| check.outcome != Outcome::CircuitOpen)
        {
            if exact {
                self.exact.push(us);
            } else {
                self.latency.record(us);
            }
        }
    }

    fn add_rollup(&mut self, row: &HourlyRollup) {
        self.counts.add_hour(row.total, row.good);
        self.latency.merge(&row.latency);
    }

    fn exclude_rollup(&mut self, row: &HourlyRollup) {
        self.counts.excluded += row.total;
    }
}

/// What one target's evaluation reads, loaded once and cut into spans. The rollup rows are borrowed from
/// whoever read them (a report reads every target's at once), never copied.
struct TargetData<'a> {
    target: String,
    exclusions: Exclusions,
    exact: bool,
    /// Rollup rows by hour (rollup method).
    rollups: BTreeMap<i64, &'a HourlyRollup>,
    /// Raw checks of the hours that needed them, loaded on first use (rollup method).
    raw_hours: HashMap<i64, Vec<ScheduledCheck>>,
    /// Every raw check of the span loaded (exact method).
    checks: Vec<ScheduledCheck>,
}

impl<'a> TargetData<'a> {
    /// For the rollup method: `rows` holds the target's rollups of the span (others are ignored).
    fn with_rollups(
        target: &str,
        exclusions: Exclusions,
        rows: &'a [HourlyRollup],
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        let from_ms = from.timestamp_millis();
        let first_hour = crate::store::from_ms(from_ms - from_ms.rem_euclid(HOUR_MS));
        Self {
            target: target.to_owned(),
            exclusions,
            exact: false,
            rollups: rows
                .iter()
                .filter(|row| row.hour >= first_hour && row.hour < until)
                .map(|row| (row.hour.timestamp_millis(), row))
                .collect(),
            raw_hours: HashMap::new(),
            checks: Vec::new(),
        }
    }

    /// For the exact method: every raw check of the span.
    async fn with_checks(
        store: &Store,
        target: &str,
        exclusions: Exclusions,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            target: target.to_owned(),
            exclusions,
            exact: true,
            rollups: BTreeMap::new(),
            raw_hours: HashMap::new(),
            checks: store.scheduled_checks(target, from, until).await?,
        })
    }

    /// The counts of `[from_ms, until_ms)`.
    async fn tally(
        &mut self,
        store: &Store,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        if self.exact {
            for check in self
                .checks
                .iter()
                .filter(|c| c.at_ms >= from_ms && c.at_ms < until_ms)
            {
                tally.add_check(check, self.exclusions.covers(check.at_ms), true);
            }
            return Ok(tally);
        }
        let mut hour = from_ms - from_ms.rem_euclid(HOUR_MS);
        while hour < until_ms {
            let next = hour + HOUR_MS;
            let (lo, hi) = (from_ms.max(hour), until_ms.min(next));
            let whole = lo == hour && hi == next;
            let overlap = self.exclusions.overlap(lo, hi);
            let Some(row) = self.rollups.get(&hour) else {
                // No row: the hour had no scheduled check.
                hour = next;
                continue;
            };
            match arithmetic::hour_source(whole, overlap) {
                HourSource::Rollup => tally.add_rollup(row),
                HourSource::Excluded => tally.exclude_rollup(row),
                HourSource::RawChecks => {
                    if !self.raw_hours.contains_key(&hour) {
                        let checks = store
                            .scheduled_checks(
                                &self.target,
                                crate::store::from_ms(hour),
                                crate::store::from_ms(next),
                            )
                            .await?;
                        self.raw_hours.insert(hour, checks);
                    }
                    let row = self.rollups[&hour];
                    let checks = &self.raw_hours[&hour];
                    if checks.is_empty() {
                        // Past raw retention: the hour counts whole, by where it starts.
                        let overlap = self.exclusions.overlap(hour, next);
                        match arithmetic::hour_past_retention(hour >= from_ms, overlap) {
                            Some(HourSource::Excluded) => tally.exclude_rollup(row),
                            Some(_) => tally.add_rollup(row),
                            None => {}
                        }
                    } else {
                        for check in checks.iter().filter(|c| c.at_ms >= lo && c.at_ms < hi) {
                            tally.add_check(check, self.exclusions.covers(check.at_ms), false);
                        }
                    }
                }
            }
            hour = next;
        }
        Ok(tally)
    }
}

/// One hour of one target as the SLO counts it, maintenance taken out.
#[derive(Debug, Clone, Default)]
pub struct HourCounts {
    pub valid: u64,
    pub good: u64,
    /// Checks inside a maintenance window.
    pub excluded: u64,
    pub latency: LatencyHistogram,
}

/// The counts of the whole hour of `row` (a rollup of `target`) that a maintenance window touches, by the
/// rules `evaluate` follows: nothing valid when a window covers the hour, else its raw checks outside the
/// windows (or the whole row, once its raw checks are past retention). An hour no window touches is its
/// rollup row as it is; callers use the row directly.
pub async fn hour_outside_maintenance(
    store: &Store,
    target: &str,
    exclusions: &Exclusions,
    row: &HourlyRollup,
) -> Result<HourCounts, StoreError> {
    let hour = row.hour.timestamp_millis();
    let mut data = TargetData::with_rollups(
        target,
        exclusions.clone(),
        std::slice::from_ref(row),
        row.hour,
        crate::store::from_ms(hour + HOUR_MS),
    );
    let tally = data.tally(store, hour, hour + HOUR_MS).await?;
    Ok(HourCounts {
        valid: tally.counts.valid,
        good: tally.counts.good,
        excluded: tally.counts.excluded,
        latency: tally.latency,
    })
}

/// Every maintenance window (config and API) that overlaps `[from, until)`.
pub async fn maintenance_windows(
    store: &Store,
    config: &Config,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<MaintenanceWindow>, StoreError> {
    maintenance_windows_of(store, &config.slo, from, until).await
}

/// `maintenance_windows` with only the config's `slo` section, for a holder that keeps no more of the
/// config than it needs (the config's targets are a few hundred bytes each).
pub async fn maintenance_windows_of(
    store: &Store,
    slo: &SloConfig,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<MaintenanceWindow>, StoreError> {
    let mut windows: Vec<MaintenanceWindow> = config_windows(slo)
        .into_iter()
        .filter(|w| w.ends_at > from && w.starts_at < until)
        .collect();
    windows.extend(store.maintenance_windows(from, until).await?);
    windows.sort_by_key(|w| (w.starts_at, w.ends_at));
    Ok(windows)
}

/// The SLOs of every configured target (or only `target`) over `window`, in config order. `exact` reads
/// every raw check instead of the hourly rollups (exact p95; only as far back as raw checks are kept).
pub async fn evaluate(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    target: Option<&str>,
    exact: bool,
) -> Result<Vec<TargetSlo>, SloError> {
    let targets: Vec<&str> = match target {
        Some(name) => {
            if !config.services.iter().any(|t| t.name.as_str() == name) {
                return Err(SloError::UnknownTarget(name.to_owned()));
            }
            vec![name]
        }
        None => config.services.iter().map(|t| t.name.as_str()).collect(),
    };
    evaluate_names(store, config, window, &targets, exact).await
}

/// `evaluate` for these targets by name, configured or not (a report may cover services that have history
/// in the database but are no longer in the config), in the order given.
pub async fn evaluate_names(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    targets: &[&str],
    exact: bool,
) -> Result<Vec<TargetSlo>, SloError> {
    evaluate_preloaded(store, config, window, targets, exact, None).await
}

/// The span of rollups an evaluation of `window` reads: the window and the longest burn-rate span before
/// its end, from the start of its first hour.
pub fn rollup_span(window: &SloWindow) -> (DateTime<Utc>, DateTime<Utc>) {
    let longest_span = Duration::hours(BURN_SPANS_H[BURN_SPANS_H.len() - 1]);
    let from_ms = window
        .from
        .min(window.until - longest_span)
        .timestamp_millis();
    (
        crate::store::from_ms(from_ms - from_ms.rem_euclid(HOUR_MS)),
        window.until,
    )
}

/// `evaluate_names` with the rollups of `rollup_span(window)` already read (one query for every target,
/// by `Store::rollups_between`), for a caller that reads them for more than the SLOs (the report).
pub async fn evaluate_preloaded(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    targets: &[&str],
    exact: bool,
    rollups: Option<&HashMap<String, Vec<HourlyRollup>>>,
) -> Result<Vec<TargetSlo>, SloError> {
    let evaluated = evaluate_counted(store, config, window, targets, exact, rollups, false).await?;
    Ok(evaluated.into_iter().map(|(slo, _)| slo).collect())
}

/// One target's counts behind its `TargetSlo` by the rollup method: the whole window's counts and latency
/// histogram, and the counts of each burn-rate span (`BURN_SPANS_H`). The SLO ledger starts from them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counted {
    pub whole: CheckCounts,
    pub latency: LatencyHistogram,
    pub spans: [CheckCounts; 3],
}

/// `evaluate_preloaded`, and with `keep` (rollup method only) the counts behind each result.
pub(crate) async fn evaluate_counted(
    store: &Store,
    config: &Config,
    window: &SloWindow,
    targets: &[&str],
    exact: bool,
    rollups: Option<&HashMap<String, Vec<HourlyRollup>>>,
    keep: bool,
) -> Result<Vec<(TargetSlo, Option<Counted>)>, SloError> {
    let until = window.until;
    let longest_span = Duration::hours(BURN_SPANS_H[BURN_SPANS_H.len() - 1]);
    let load_from = window.from.min(until - longest_span);
    let windows = maintenance_windows(store, config, load_from, until).await?;
    let restarts = store.restarts_between(window.from, until).await?;
    let mut results = Vec::with_capacity(targets.len());
    for &name in targets {
        let exclusions = Exclusions::for_target(&windows, name);
        let read_here: Vec<HourlyRollup>;
        let mut data = if exact {
            TargetData::with_checks(store, name, exclusions, load_from, until).await?
        } else {
            let rows = match rollups {
                Some(all) => all.get(name).map_or(&[][..], Vec::as_slice),
                None => {
                    let (first_hour, _) = rollup_span(window);
                    read_here = store.hourly_rollups(name, first_hour, until).await?;
                    &read_here
                }
            };
            TargetData::with_rollups(name, exclusions, rows, load_from, until)
        };
        let until_ms = until.timestamp_millis();
        let mut whole = data
            .tally(store, window.from.timestamp_millis(), until_ms)
            .await?;
        let target_ratio = config.slo.availability_target_ratio();
        let mut burns = [None; 3];
        let mut spans = [CheckCounts::default(); 3];
        for ((burn, counts), hours) in burns.iter_mut().zip(spans.iter_mut()).zip(BURN_SPANS_H) {
            let span = data
                .tally(store, until_ms - hours * HOUR_MS, until_ms)
                .await?;
            *burn = burn_rate(&span, target_ratio);
            *counts = span.counts;
        }
        let restarts = restarts.get(name).copied().unwrap_or(0);
        let counted = (keep && !exact).then(|| Counted {
            whole: whole.counts,
            latency: whole.latency.clone(),
            spans,
        });
        let target_us = config.slo.p95_latency_target_ms as f64 * 1_000.0;
        let (latency, method) = if exact {
            (
                LatencyCounts::from_exact(&mut whole.exact, target_us),
                SloMethod::Exact,
            )
        } else {
            (
                LatencyCounts::from_histogram(&whole.latency, target_us),
                SloMethod::Rollups,
            )
        };
        let mut result = arithmetic::target_slo(
            name,
            window,
            &config.slo,
            whole.counts,
            latency,
            burns,
            restarts,
            method,
        );
        for w in windows
            .iter()
            .filter(|w| w.retroactive && w.covers_target(name))
        {
            let lo = w.starts_at.max(window.from).timestamp_millis();
            let hi = w.ends_at.min(until).timestamp_millis();
            if lo >= hi {
                continue;
            }
            // The checks this window alone excludes: tallied with only its own span as maintenance.
            let own = Exclusions::for_target(std::slice::from_ref(w), name);
            let kept = std::mem::replace(&mut data.exclusions, own);
            let tally = data.tally(store, lo, hi).await;
            data.exclusions = kept;
            result
                .retroactive_maintenance
                .push(retroactive(w, tally?.counts.excluded));
        }
        results.push((result, counted));
    }
    Ok(results)
}

/// How `/slo` lists a retroactive window that removed `removed_checks` checks from the window.
pub(crate) fn retroactive(w: &MaintenanceWindow, removed_checks: u64) -> RetroactiveMaintenance {
    RetroactiveMaintenance {
        id: w.id,
        target: w.target.clone(),
        starts_at: w.starts_at,
        ends_at: w.ends_at,
        reason: w.reason.clone(),
        created_at: w.created_at,
        removed_checks,
    }
}

/// A target's numbers by the rollup method from counts kept elsewhere (the SLO ledger), by the same
/// arithmetic `evaluate` uses: equal counts give equal numbers.
pub(crate) fn from_counted(
    target: &str,
    window: &SloWindow,
    slo: &SloConfig,
    counted: &Counted,
    restarts: u32,
) -> TargetSlo {
    let target_ratio = slo.availability_target_ratio();
    let burns = counted
        .spans
        .map(|span| arithmetic::burn_rate(span.bad(), span.valid, target_ratio));
    let target_us = slo.p95_latency_target_ms as f64 * 1_000.0;
    arithmetic::target_slo(
        target,
        window,
        slo,
        counted.whole,
        LatencyCounts::from_histogram(&counted.latency, target_us),
        burns,
        restarts,
        SloMethod::Rollups,
    )
}

/// The bad ratio of a span over the ratio the objective allows; null without valid checks.
fn burn_rate(tally: &Tally, target_ratio: f64) -> Option<f64> {
    arithmetic::burn_rate(tally.counts.bad(), tally.counts.valid, target_ratio)
}
