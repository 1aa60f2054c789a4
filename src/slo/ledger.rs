//! The SLO ledger: every configured target's SLO over the configured window, kept up to date in memory as
//! the window slides. `evaluate` stays the source of truth: the ledger starts from it, and its answer as of
//! `t` equals `evaluate(last_days(slo.window_days, t))` (the same counts, p95, burn rates, restarts and
//! retroactive maintenance).
//!
//! What it keeps per target: the window's counts (valid, good, excluded) and latency histogram, the counts
//! of each burn-rate span (1 h, 6 h, 24 h), and the checks each retroactive maintenance window removed. A
//! pass from `t` to `t'` reads only what changed, as raw scheduled checks:
//! - the leading edge `[t, t')`, added to everything (one index seek);
//! - each trailing edge `[t - span, t' - span)` (the window and the three burn spans), taken out. These
//!   lie an hour or more behind `t'`, over rows that no longer change, so each is read ahead up to
//!   `READ_AHEAD_ROWS` checks (never past `t'`) and the next passes take their checks from that buffer:
//!   one seek per edge every few passes.
//!
//! A check counts by its time, so with the maintenance windows unchanged, adding and taking out checks
//! gives what counting afresh gives. When a window is posted or removed (the stored windows are read once
//! per pass and compared), the targets it covers are evaluated afresh, as are all targets at the first
//! pass, after a step back or a step longer than `MAX_STEP`, and a target whose counts ever disagree with
//! what leaves them. Restarts are read afresh each pass (one grouped count).
//!
//! The caller picks `t'`: checks are stored after they finish and after the writer's flush, so `t'` must
//! lag the clock by at least the longest probe timeout and a flush (see `SloRefresher`), or a check stored
//! late would never be counted.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::config::Config;
use crate::records::Outcome;
use crate::slo::evaluate::{
    evaluate_counted, from_counted, maintenance_windows, retroactive, rollup_span, Counted,
    BURN_SPANS_H,
};
use crate::slo::maintenance::{Exclusions, MaintenanceWindow};
use crate::slo::model::{SloWindow, TargetSlo};
use crate::slo::SloError;
use crate::store::ledger::{CheckRange, ReadAhead};
use crate::store::slo::ScheduledCheck;
use crate::store::Store;

/// The longest step a pass takes incrementally; a longer one (hale was stopped, the clock jumped) is
/// evaluated afresh.
pub const MAX_STEP: Duration = Duration::hours(1);
/// Targets evaluated afresh together (`SloLedger::new`): their rollups over the window are read, held and
/// dropped together, about 50 KB per target over 7 days of hourly rows with their latency histograms, so
/// a first pass over every target holds about 13 MB of rollups at a time, whatever the number of targets.
pub const REBUILD_CHUNK: usize = 256;

/// One target's share of the ledger.
#[derive(Debug, Clone)]
struct TargetLedger {
    name: String,
    exclusions: Exclusions,
    counted: Counted,
    /// The retroactive windows that cover the target, in `SloLedger::windows` order, each with the checks
    /// of the SLO window it removes.
    retroactive: Vec<(MaintenanceWindow, u64)>,
    /// Its counts disagreed with a check leaving them: evaluated afresh at the next pass.
    stale: bool,
}

/// What one pass did, for the refresher's log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Targets evaluated afresh from the database.
    pub rebuilt: usize,
    /// Targets moved incrementally.
    pub advanced: usize,
    /// Raw checks read for the incremental targets.
    pub checks_read: usize,
}

/// Every configured target's counts over `[until - window, until)`, in config order.
#[derive(Debug, Clone)]
pub struct SloLedger {
    window_days: u32,
    /// The end of the window the counts are for; None before the first pass.
    until: Option<DateTime<Utc>>,
    /// Maintenance windows (config and stored) that end after the oldest check the ledger may still take
    /// out, by start and end as `evaluate` lists them.
    windows: Vec<MaintenanceWindow>,
    targets: Vec<TargetLedger>,
    /// The trailing edges' read-ahead: `TRAILING_EDGES` slots per target, in `targets` order.
    ahead: ReadAhead,
    /// Stale targets evaluated afresh together (`REBUILD_CHUNK`).
    rebuild_chunk: usize,
}

/// Checks read ahead per trailing edge (the window's and each burn span's) of a target: at a check every
/// 10 s and a pass a minute, one seek every 5 passes instead of one a pass.
pub const READ_AHEAD_ROWS: usize = 32;
/// The edges read ahead per target: the window's and the three burn spans'.
pub const TRAILING_EDGES: usize = 1 + BURN_SPANS_H.len();

impl SloLedger {
    pub fn new(config: &Config) -> Self {
        Self::with_rebuild_chunk(config, REBUILD_CHUNK)
    }

    /// `new`, evaluating afresh `rebuild_chunk` targets at a time (at least one): the same numbers whatever
    /// the chunk, a smaller one holds less at once.
    pub fn with_rebuild_chunk(config: &Config, rebuild_chunk: usize) -> Self {
        Self {
            rebuild_chunk: rebuild_chunk.max(1),
            window_days: config.slo.window_days,
            until: None,
            windows: Vec::new(),
            targets: config
                .services
                .iter()
                .map(|t| TargetLedger {
                    name: t.name.as_str().to_owned(),
                    exclusions: Exclusions::default(),
                    counted: Counted::default(),
                    retroactive: Vec::new(),
                    stale: true,
                })
                .collect(),
            ahead: ReadAhead::new(READ_AHEAD_ROWS),
        }
    }

    /// A ledger that reads ahead `rows` checks per trailing edge instead of `READ_AHEAD_ROWS`; 0 reads each
    /// edge as it is, one seek per pass (what the benchmark compares).
    pub fn with_read_ahead(config: &Config, rows: usize) -> Self {
        Self {
            ahead: ReadAhead::new(rows),
            ..Self::new(config)
        }
    }

    /// The most memory the trailing edges' read-ahead takes per target, in bytes.
    pub fn read_ahead_bytes_per_target() -> usize {
        TRAILING_EDGES * ReadAhead::new(READ_AHEAD_ROWS).bytes_per_slot()
    }

    /// The read-ahead's slots, as allocated (`TRAILING_EDGES` per target once a pass has moved).
    pub fn read_ahead_slots(&self) -> usize {
        self.ahead.slot_capacity()
    }

    /// The end of the window of the last pass (the numbers are "as of" it); None before the first.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// The first instant the ledger may still take checks out from, for a window ending at `until`.
    fn load_from(&self, until: DateTime<Utc>) -> DateTime<Utc> {
        let longest_span = Duration::hours(BURN_SPANS_H[BURN_SPANS_H.len() - 1]);
        (until - Duration::days(i64::from(self.window_days))).min(until - longest_span)
    }

    /// Makes every target evaluated afresh at the next pass.
    pub fn invalidate(&mut self) {
        for target in &mut self.targets {
            target.stale = true;
        }
    }

    /// Moves the window to end at `until` and returns every target's SLO over it, in config order. A step
    /// back, or one longer than `MAX_STEP`, evaluates everything afresh.
    pub async fn advance(
        &mut self,
        store: &Store,
        config: &Config,
        until: DateTime<Utc>,
    ) -> Result<(Vec<TargetSlo>, PassStats), SloError> {
        let window = SloWindow::last_days(self.window_days, until);
        let fresh = maintenance_windows(
            store,
            config,
            self.load_from(self.until.unwrap_or(until).min(until)),
            DateTime::<Utc>::MAX_UTC,
        )
        .await?;
        let from = match self.until {
            Some(t) if t <= until && until - t <= MAX_STEP => t,
            _ => {
                self.invalidate();
                until
            }
        };
        self.mark_changed_windows(&fresh, from);
        for target in &mut self.targets {
            target.exclusions = Exclusions::for_target(&fresh, &target.name);
            target.retroactive = retroactive_of(&fresh, &target.name, &target.retroactive);
        }
        self.windows = fresh;
        let mut stats = PassStats::default();
        if from < until {
            stats = self.step(store, from, until).await?;
        }
        stats.rebuilt = self.rebuild_stale(store, config, &window).await?;
        self.until = Some(until);
        let restarts = store.restarts_between(window.from, until).await?;
        let results = self
            .targets
            .iter()
            .map(|target| {
                let count = restarts.get(&target.name).copied().unwrap_or(0);
                let mut slo =
                    from_counted(&target.name, &window, &config.slo, &target.counted, count);
                for (w, removed) in &target.retroactive {
                    if w.starts_at.max(window.from) < w.ends_at.min(until) {
                        slo.retroactive_maintenance.push(retroactive(w, *removed));
                    }
                }
                slo
            })
            .collect();
        Ok((results, stats))
    }

    /// Marks stale every target a window posted or removed since the last pass covers. `from` is where
    /// the pass starts: windows that ended before the ledger's reach at `from` no longer matter.
    fn mark_changed_windows(&mut self, fresh: &[MaintenanceWindow], from: DateTime<Utc>) {
        let reach = self.load_from(from);
        let known: Vec<&MaintenanceWindow> =
            self.windows.iter().filter(|w| w.ends_at > reach).collect();
        let now: Vec<&MaintenanceWindow> = fresh.iter().filter(|w| w.ends_at > reach).collect();
        if known == now {
            return;
        }
        let changed: Vec<&MaintenanceWindow> = known
            .iter()
            .filter(|w| !now.contains(w))
            .chain(now.iter().filter(|w| !known.contains(w)))
            .copied()
            .collect();
        let everyone = changed.iter().any(|w| w.target.is_none());
        let names: HashSet<&str> = changed.iter().filter_map(|w| w.target.as_deref()).collect();
        for target in &mut self.targets {
            if everyone || names.contains(target.name.as_str()) {
                target.stale = true;
            }
        }
    }

    /// Adds the checks of `[from, until)` and takes out those that left each span, for every target not
    /// stale. Returns what it read.
    async fn step(
        &mut self,
        store: &Store,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<PassStats, SloError> {
        let (from_ms, until_ms) = (from.timestamp_millis(), until.timestamp_millis());
        let window_ms = Duration::days(i64::from(self.window_days)).num_milliseconds();
        // Per target: the leading edge, then the trailing edges of the window and of each burn span.
        let shifts: [i64; 1 + TRAILING_EDGES] = [
            0,
            window_ms,
            BURN_SPANS_H[0] * HOUR_MS,
            BURN_SPANS_H[1] * HOUR_MS,
            BURN_SPANS_H[2] * HOUR_MS,
        ];
        let moving: Vec<usize> = (0..self.targets.len())
            .filter(|&i| !self.targets[i].stale)
            .collect();
        if self.ahead.rows() > 0 {
            // Every target's slots at once, sized exactly: grown as targets first move, the table doubled.
            self.ahead
                .reserve_slots(self.targets.len() * TRAILING_EDGES);
        }
        let mut ranges = Vec::with_capacity(moving.len() * shifts.len());
        let mut slots = Vec::with_capacity(ranges.capacity());
        for &i in &moving {
            for (k, shift) in shifts.into_iter().enumerate() {
                ranges.push(CheckRange {
                    target: &self.targets[i].name,
                    from_ms: from_ms - shift,
                    until_ms: until_ms - shift,
                });
                // The trailing edges lie an hour or more behind `until`, over rows that no longer change:
                // read ahead, one slot per (target, edge). The leading edge is read as it is.
                let read_ahead = self.ahead.rows() > 0;
                slots.push(
                    k.checked_sub(1)
                        .filter(|_| read_ahead)
                        .map(|edge| i * TRAILING_EDGES + edge),
                );
            }
        }
        let read = store
            .scheduled_checks_ahead(&ranges, &slots, &mut self.ahead, until_ms)
            .await?;
        drop(ranges);
        let mut stats = PassStats {
            advanced: moving.len(),
            ..PassStats::default()
        };
        for (&i, edges) in moving.iter().zip(read.chunks(shifts.len())) {
            stats.checks_read += edges.iter().map(Vec::len).sum::<usize>();
            let target = &mut self.targets[i];
            if !target.apply(edges) {
                tracing::debug!(
                    target = %target.name,
                    "the slo ledger's counts disagree with the checks leaving them; evaluated afresh"
                );
                target.stale = true;
            }
        }
        Ok(stats)
    }

    /// Evaluates the stale targets afresh at the end of `window`, `rebuild_chunk` of them at a time (each
    /// chunk's rollups read, evaluated and dropped before the next is read, so a first pass over every
    /// target holds one chunk's rollups at most); returns how many.
    async fn rebuild_stale(
        &mut self,
        store: &Store,
        config: &Config,
        window: &SloWindow,
    ) -> Result<usize, SloError> {
        let stale: Vec<usize> = (0..self.targets.len())
            .filter(|&i| self.targets[i].stale)
            .collect();
        let (since, until) = rollup_span(window);
        for chunk in stale.chunks(self.rebuild_chunk) {
            let evaluated = {
                let names: Vec<&str> = chunk
                    .iter()
                    .map(|&i| self.targets[i].name.as_str())
                    .collect();
                let rollups = store.rollups_of(&names, since, until).await?;
                evaluate_counted(store, config, window, &names, false, Some(&rollups), true).await?
            };
            for (&i, (slo, counted)) in chunk.iter().zip(evaluated) {
                let Some(counted) = counted else {
                    continue;
                };
                let target = &mut self.targets[i];
                target.counted = counted;
                for (w, removed) in &mut target.retroactive {
                    *removed = slo
                        .retroactive_maintenance
                        .iter()
                        .find(|r| r.id == w.id)
                        .map_or(0, |r| r.removed_checks);
                }
                target.stale = false;
            }
        }
        Ok(stale.len())
    }
}

const HOUR_MS: i64 = 3_600_000;

impl TargetLedger {
    /// Applies one step's edges: `[leading, window, 1 h, 6 h, 24 h]` as `step` reads them. False when a
    /// check leaving was never counted (the caller evaluates the target afresh).
    fn apply(&mut self, edges: &[Vec<ScheduledCheck>]) -> bool {
        let [leading, window, spans @ ..] = edges else {
            return false;
        };
        let mut consistent = true;
        for check in leading {
            let excluded = self.exclusions.covers(check.at_ms);
            let up = check.outcome.is_up();
            self.counted.whole.add_check(up, excluded);
            for span in &mut self.counted.spans {
                span.add_check(up, excluded);
            }
            if let Some(us) = latency(check, excluded) {
                self.counted.latency.record(us);
            }
            for (w, removed) in &mut self.retroactive {
                *removed += u64::from(w.is_active(crate::store::from_ms(check.at_ms)));
            }
        }
        for check in window {
            let excluded = self.exclusions.covers(check.at_ms);
            consistent &= self
                .counted
                .whole
                .remove_check(check.outcome.is_up(), excluded);
            if let Some(us) = latency(check, excluded) {
                consistent &= self.counted.latency.unrecord(us);
            }
            for (w, removed) in &mut self.retroactive {
                if w.is_active(crate::store::from_ms(check.at_ms)) {
                    consistent &= *removed > 0;
                    *removed = removed.saturating_sub(1);
                }
            }
        }
        for (span, leaving) in self.counted.spans.iter_mut().zip(spans) {
            for check in leaving {
                let excluded = self.exclusions.covers(check.at_ms);
                consistent &= span.remove_check(check.outcome.is_up(), excluded);
            }
        }
        consistent
    }
}

/// The latency a check adds to the window's histogram: valid checks that were made.
fn latency(check: &ScheduledCheck, excluded: bool) -> Option<u64> {
    check
        .latency_us
        .filter(|_| !excluded && check.outcome != Outcome::CircuitOpen)
}

/// The retroactive windows of `windows` that cover `target`, in order, each with the count it had in
/// `before` (0 for a new one).
fn retroactive_of(
    windows: &[MaintenanceWindow],
    target: &str,
    before: &[(MaintenanceWindow, u64)],
) -> Vec<(MaintenanceWindow, u64)> {
    windows
        .iter()
        .filter(|w| w.retroactive && w.covers_target(target))
        .map(|w| {
            let removed = before.iter().find(|(b, _)| b == w).map_or(0, |(_, n)| *n);
            (w.clone(), removed)
        })
        .collect()
}
