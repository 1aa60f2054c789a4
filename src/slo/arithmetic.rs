//! The SLO arithmetic, pure: availability, error budget, burn rates, p95 latency and restarts, and the
//! status of each objective, from counts already made (`evaluate.rs` reads the rollups and raw checks,
//! takes maintenance out and hands the counts here). Every function takes aggregated counts, never rows,
//! so the same numbers can come from counters kept up to date per check.

use chrono::Duration;

use crate::config::SloConfig;
use crate::records::histogram::LatencyHistogram;
use crate::slo::maintenance::Overlap;
use crate::slo::model::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, SloMethod, SloStatus,
    SloWindow, TargetSlo,
};

/// The latency and restarts objectives are `at_risk` within this share of their limit.
pub const AT_RISK_MARGIN: f64 = 0.10;
/// The quantile the latency objective is about.
pub const QUANTILE: f64 = 0.95;

/// The scheduled checks of one target over one span, maintenance taken out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Checks that answered up.
    pub good: u64,
    /// Checks outside every maintenance window.
    pub valid: u64,
    /// Checks inside a maintenance window (they count for nothing).
    pub excluded: u64,
}

impl CheckCounts {
    /// Valid checks that did not answer up (never below zero, whatever the counts say).
    pub fn bad(&self) -> u64 {
        self.valid.saturating_sub(self.good)
    }

    /// Counts one check: excluded when a maintenance window covers it, else valid (and good when up).
    pub fn add_check(&mut self, up: bool, excluded: bool) {
        if excluded {
            self.excluded += 1;
        } else {
            self.valid += 1;
            self.good += u64::from(up);
        }
    }

    /// Takes out one check counted before by `add_check` with the same arguments (a sliding window's oldest
    /// check leaving). False, with nothing changed, when there is no such check to take out.
    pub fn remove_check(&mut self, up: bool, excluded: bool) -> bool {
        if excluded {
            if self.excluded == 0 {
                return false;
            }
            self.excluded -= 1;
        } else {
            if self.valid == 0 || (up && self.good == 0) {
                return false;
            }
            self.valid -= 1;
            self.good -= u64::from(up);
        }
        true
    }

    /// Counts an hour's rollup row (`total` checks, `good` of them up) as valid.
    pub fn add_hour(&mut self, total: u64, good: u64) {
        self.valid += total;
        self.good += good.min(total);
    }

    /// Sums two spans' counts.
    pub fn merge(&mut self, other: &CheckCounts) {
        self.good += other.good;
        self.valid += other.valid;
        self.excluded += other.excluded;
    }
}

/// Where one hour of a span is counted from, by the maintenance rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourSource {
    /// Its rollup row as it is: the hour lies whole inside the span, outside every maintenance window.
    Rollup,
    /// Nothing valid: the hour lies whole inside the span and inside maintenance (its checks `excluded`).
    Excluded,
    /// Its raw checks, one by one: the span's edges or a maintenance window cut the hour.
    RawChecks,
}

/// How an hour with a rollup row is counted: `whole` when the span covers all of it, `overlap` how the
/// target's maintenance windows meet the part of it inside the span.
pub fn hour_source(whole: bool, overlap: Overlap) -> HourSource {
    match (whole, overlap) {
        (true, Overlap::None) => HourSource::Rollup,
        (true, Overlap::Full) => HourSource::Excluded,
        _ => HourSource::RawChecks,
    }
}

/// How an hour that needs its raw checks is counted once they are past retention: whole, by where it
/// starts (None: it starts before the span, so it does not count), and excluded only when maintenance
/// covers the entire hour (`overlap` is over the whole hour).
pub fn hour_past_retention(starts_in_span: bool, overlap: Overlap) -> Option<HourSource> {
    if !starts_in_span {
        return None;
    }
    Some(if overlap == Overlap::Full {
        HourSource::Excluded
    } else {
        HourSource::Rollup
    })
}

/// The latencies of one target's valid checks over one span, measured against the objective.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencyCounts {
    /// Checks with a latency (a check an open breaker skipped has none).
    pub measured: u64,
    /// Their 95th percentile, in µs; None without any.
    pub p95_us: Option<f64>,
    /// Those at or under the target.
    pub under: u64,
}

impl LatencyCounts {
    /// From the hourly histograms merged over the span (the rollup method).
    pub fn from_histogram(histogram: &LatencyHistogram, target_us: f64) -> Self {
        Self {
            measured: histogram.total(),
            p95_us: histogram.quantile_us(QUANTILE),
            under: histogram.count_at_or_under(target_us),
        }
    }

    /// From every latency, in µs (the exact method): the nearest-rank p95.
    pub fn from_exact(latencies_us: &mut [u64], target_us: f64) -> Self {
        latencies_us.sort_unstable();
        let n = latencies_us.len();
        let p95_us = (n > 0).then(|| {
            let rank = ((QUANTILE * n as f64).ceil() as usize).clamp(1, n);
            latencies_us[rank - 1] as f64
        });
        let under = latencies_us.partition_point(|&us| us as f64 <= target_us);
        Self {
            measured: n as u64,
            p95_us,
            under: under as u64,
        }
    }
}

/// The bad ratio of a span over the ratio the objective allows (1.0: the budget is spent exactly at the
/// end of the window); None without any check.
pub fn burn_rate(bad: u64, total: u64, target_ratio: f64) -> Option<f64> {
    (total > 0).then(|| (bad as f64 / total as f64) / (1.0 - target_ratio))
}

/// The availability objective over `counts`: NO DATA without a valid check, breached under the target,
/// at risk once less than `at_risk_budget_share` of the error budget is left.
pub fn availability(
    counts: CheckCounts,
    target_ratio: f64,
    at_risk_budget_share: f64,
) -> (AvailabilitySlo, ErrorBudget) {
    let ratio = (counts.valid > 0).then(|| counts.good as f64 / counts.valid as f64);
    let allowed_bad = (1.0 - target_ratio) * counts.valid as f64;
    let consumed_bad = counts.bad();
    let remaining_ratio = ratio.map(|r| {
        let remaining = 1.0 - consumed_bad as f64 / allowed_bad;
        // Rounding must not show an objective met exactly as overspent.
        if r >= target_ratio {
            remaining.max(0.0)
        } else {
            remaining
        }
    });
    let status = match (ratio, remaining_ratio) {
        (Some(r), _) if r < target_ratio => SloStatus::Breached,
        (Some(_), Some(left)) if left < at_risk_budget_share => SloStatus::AtRisk,
        (Some(_), _) => SloStatus::Met,
        (None, _) => SloStatus::NoData,
    };
    (
        AvailabilitySlo {
            good: counts.good,
            valid: counts.valid,
            excluded: counts.excluded,
            ratio,
            target_ratio,
            status,
        },
        ErrorBudget {
            allowed_bad,
            consumed_bad,
            remaining_ratio,
            burn_rates: BurnRates {
                h1: None,
                h6: None,
                d1: None,
                window: burn_rate(consumed_bad, counts.valid, target_ratio),
            },
        },
    )
}

/// The latency objective: breached over the target p95, at risk within `AT_RISK_MARGIN` of it.
pub fn latency(counts: LatencyCounts, target_ms: u64) -> LatencySlo {
    let target_us = target_ms as f64 * 1_000.0;
    let status = match counts.p95_us {
        None => SloStatus::NoData,
        Some(p) if p > target_us => SloStatus::Breached,
        Some(p) if p > (1.0 - AT_RISK_MARGIN) * target_us => SloStatus::AtRisk,
        Some(_) => SloStatus::Met,
    };
    LatencySlo {
        p95_ms: counts.p95_us.map(|us| us / 1_000.0),
        target_ms,
        under_target_ratio: (counts.measured > 0)
            .then(|| counts.under as f64 / counts.measured as f64),
        measured: counts.measured,
        status,
    }
}

/// The restarts objective: fewer than `max_per_week` a week, scaled to the window's length; 0 sets none.
pub fn restarts(count: u32, max_per_week: u32, window_length: Duration) -> RestartsSlo {
    let weeks =
        window_length.num_milliseconds() as f64 / Duration::weeks(1).num_milliseconds() as f64;
    let limit = f64::from(max_per_week) * weeks;
    let status = if max_per_week == 0 {
        SloStatus::Met
    } else if f64::from(count) >= limit {
        SloStatus::Breached
    } else if f64::from(count) >= (1.0 - AT_RISK_MARGIN) * limit {
        SloStatus::AtRisk
    } else {
        SloStatus::Met
    };
    RestartsSlo {
        count,
        max_per_week,
        status,
    }
}

/// A target's status: NO DATA without availability data, else the worst of its objectives.
pub fn overall(availability: SloStatus, latency: SloStatus, restarts: SloStatus) -> SloStatus {
    if availability == SloStatus::NoData {
        return SloStatus::NoData;
    }
    [availability, latency, restarts]
        .into_iter()
        .max_by_key(|s| rank(*s))
        .unwrap_or(SloStatus::Met)
}

fn rank(status: SloStatus) -> u8 {
    match status {
        SloStatus::NoData | SloStatus::Met => 0,
        SloStatus::AtRisk => 1,
        SloStatus::Breached => 2,
    }
}

/// Puts one target's numbers together over `window`: `burns` are the burn rates of the last 1 h, 6 h and
/// 24 h before the window's end.
#[allow(clippy::too_many_arguments)]
pub fn target_slo(
    target: &str,
    window: &SloWindow,
    slo: &SloConfig,
    checks: CheckCounts,
    latency_counts: LatencyCounts,
    burns: [Option<f64>; 3],
    restart_count: u32,
    method: SloMethod,
) -> TargetSlo {
    let (availability, mut error_budget) = availability(
        checks,
        slo.availability_target_ratio(),
        slo.at_risk_budget_share,
    );
    error_budget.burn_rates.h1 = burns[0];
    error_budget.burn_rates.h6 = burns[1];
    error_budget.burn_rates.d1 = burns[2];
    let latency = latency(latency_counts, slo.p95_latency_target_ms);
    let restarts = restarts(restart_count, slo.max_restarts_per_week, window.length());
    TargetSlo {
        target: target.to_owned(),
        window: window.clone(),
        status: overall(availability.status, latency.status, restarts.status),
        availability,
        latency,
        restarts,
        error_budget,
        method,
        retroactive_maintenance: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    const TARGET: f64 = 0.999;

    fn counts(good: u64, valid: u64) -> CheckCounts {
        CheckCounts {
            good,
            valid,
            excluded: 0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn no_valid_check_is_no_data_with_no_ratio_budget_or_burn() {
        let (a, budget) = availability(
            CheckCounts {
                good: 0,
                valid: 0,
                excluded: 50,
            },
            TARGET,
            0.25,
        );
        assert_eq!(a.status, SloStatus::NoData);
        assert_eq!(a.ratio, None);
        assert_eq!(a.excluded, 50, "excluded checks are reported, not counted");
        assert_eq!(budget.remaining_ratio, None);
        assert_eq!(budget.burn_rates.window, None);
        assert_eq!(burn_rate(0, 0, TARGET), None);
    }

    #[test]
    fn all_good_is_met_with_the_whole_budget_left() {
        let (a, budget) = availability(counts(1_000, 1_000), TARGET, 0.25);
        assert_eq!(a.status, SloStatus::Met);
        assert_eq!(a.ratio, Some(1.0));
        assert!(close(budget.allowed_bad, 1.0));
        assert_eq!(budget.consumed_bad, 0);
        assert_eq!(budget.remaining_ratio, Some(1.0));
        assert_eq!(budget.burn_rates.window, Some(0.0));
    }

    #[test]
    fn availability_exactly_at_target_is_met_not_overspent() {
        // 999 of 1000 is 99.9 %: the whole budget spent, which rounding must not show as below zero.
        let (a, budget) = availability(counts(999, 1_000), TARGET, 0.25);
        assert_eq!(a.status, SloStatus::AtRisk, "no budget left is at risk");
        assert!(budget
            .remaining_ratio
            .is_some_and(|r| (0.0..1e-9).contains(&r)));
        assert!(budget.burn_rates.window.is_some_and(|b| close(b, 1.0)));
    }

    #[test]
    fn below_target_is_breached_with_a_negative_budget() {
        let (a, budget) = availability(counts(997, 1_000), TARGET, 0.25);
        assert_eq!(a.status, SloStatus::Breached);
        assert!(budget.remaining_ratio.is_some_and(|r| close(r, -2.0)));
        assert!(budget.burn_rates.window.is_some_and(|b| close(b, 3.0)));
    }

    #[test]
    fn at_risk_once_less_than_the_share_of_budget_is_left() {
        // 10,000 valid allow 10 bad: 7 bad leave 30 %, 8 bad leave 20 % (under a 25 % share).
        let (seven, _) = availability(counts(9_993, 10_000), TARGET, 0.25);
        assert_eq!(seven.status, SloStatus::Met);
        let (eight, _) = availability(counts(9_992, 10_000), TARGET, 0.25);
        assert_eq!(eight.status, SloStatus::AtRisk);
    }

    #[test]
    fn more_good_than_valid_counts_no_bad_check() {
        let c = counts(12, 10);
        assert_eq!(c.bad(), 0);
    }

    #[test]
    fn checks_in_maintenance_are_excluded_and_rollups_count_as_valid() {
        let mut c = CheckCounts::default();
        c.add_check(true, false);
        c.add_check(false, false);
        c.add_check(false, true);
        c.add_check(true, true);
        assert_eq!(
            c,
            CheckCounts {
                good: 1,
                valid: 2,
                excluded: 2
            }
        );
        c.add_hour(10, 12);
        assert_eq!(
            (c.good, c.valid),
            (11, 12),
            "good never above the row's total"
        );
        let mut sum = CheckCounts::default();
        sum.merge(&c);
        sum.merge(&c);
        assert_eq!((sum.good, sum.valid, sum.excluded), (22, 24, 4));
    }

    #[test]
    fn an_hour_is_taken_whole_excluded_whole_or_counted_check_by_check() {
        assert_eq!(hour_source(true, Overlap::None), HourSource::Rollup);
        assert_eq!(hour_source(true, Overlap::Full), HourSource::Excluded);
        assert_eq!(hour_source(true, Overlap::Partial), HourSource::RawChecks);
        for overlap in [Overlap::None, Overlap::Partial, Overlap::Full] {
            assert_eq!(
                hour_source(false, overlap),
                HourSource::RawChecks,
                "an hour cut by the span's edge"
            );
        }
    }

    #[test]
    fn an_hour_past_retention_counts_whole_by_where_it_starts() {
        assert_eq!(hour_past_retention(false, Overlap::None), None);
        assert_eq!(
            hour_past_retention(true, Overlap::Partial),
            Some(HourSource::Rollup),
            "valid unless maintenance covers the entire hour"
        );
        assert_eq!(
            hour_past_retention(true, Overlap::Full),
            Some(HourSource::Excluded)
        );
    }

    #[test]
    fn burn_rate_is_the_bad_ratio_over_the_allowed_ratio() {
        assert!(burn_rate(1, 100, 0.99).is_some_and(|b| close(b, 1.0)));
        assert!(burn_rate(10, 100, 0.99).is_some_and(|b| close(b, 10.0)));
        assert_eq!(burn_rate(0, 100, 0.99), Some(0.0));
    }

    #[test]
    fn exact_p95_is_the_nearest_rank() {
        let mut us: Vec<u64> = (1..=100).rev().map(|ms| ms * 1_000).collect();
        let l = LatencyCounts::from_exact(&mut us, 50_000.0);
        assert_eq!(l.measured, 100);
        assert_eq!(l.p95_us, Some(95_000.0));
        assert_eq!(l.under, 50, "at or under the target counts");
        let mut one = vec![7];
        assert_eq!(LatencyCounts::from_exact(&mut one, 1.0).p95_us, Some(7.0));
        assert_eq!(LatencyCounts::from_exact(&mut [], 1.0).p95_us, None);
    }

    #[test]
    fn histogram_latency_counts_come_from_the_histogram() {
        let mut h = LatencyHistogram::default();
        for _ in 0..10 {
            h.record(1_000);
        }
        let l = LatencyCounts::from_histogram(&h, 500_000.0);
        assert_eq!(l.measured, 10);
        assert_eq!(l.under, 10);
        assert!(l.p95_us.is_some());
        let empty = LatencyCounts::from_histogram(&LatencyHistogram::default(), 1.0);
        assert_eq!((empty.measured, empty.p95_us), (0, None));
    }

    #[test]
    fn latency_status_breached_over_target_at_risk_within_ten_percent() {
        let status = |p95_ms: f64| {
            latency(
                LatencyCounts {
                    measured: 1,
                    p95_us: Some(p95_ms * 1_000.0),
                    under: 1,
                },
                500,
            )
            .status
        };
        assert_eq!(status(450.0), SloStatus::Met);
        assert_eq!(status(451.0), SloStatus::AtRisk);
        assert_eq!(status(500.0), SloStatus::AtRisk);
        assert_eq!(status(501.0), SloStatus::Breached);
        let none = latency(LatencyCounts::default(), 500);
        assert_eq!(none.status, SloStatus::NoData);
        assert_eq!(none.under_target_ratio, None);
    }

    #[test]
    fn restarts_limit_scales_with_the_window() {
        let week = Duration::weeks(1);
        assert_eq!(restarts(2, 3, week).status, SloStatus::Met);
        assert_eq!(restarts(3, 3, week).status, SloStatus::Breached);
        // Ten restarts a week allowed: 9 is within 10 % of the limit.
        assert_eq!(restarts(9, 10, week).status, SloStatus::AtRisk);
        assert_eq!(restarts(8, 10, week).status, SloStatus::Met);
        // Half a week allows half as many.
        assert_eq!(
            restarts(5, 10, Duration::days(3) + Duration::hours(12)).status,
            SloStatus::Breached
        );
        assert_eq!(
            restarts(1_000, 0, week).status,
            SloStatus::Met,
            "0 sets no objective"
        );
    }

    #[test]
    fn overall_is_no_data_without_availability_else_the_worst() {
        use SloStatus::{AtRisk, Breached, Met, NoData};
        assert_eq!(overall(NoData, Breached, Breached), NoData);
        assert_eq!(overall(Met, NoData, Met), Met);
        assert_eq!(overall(Met, AtRisk, Met), AtRisk);
        assert_eq!(overall(AtRisk, Met, Breached), Breached);
    }

    #[test]
    fn target_slo_puts_the_burns_and_method_in_place() {
        let until = DateTime::<Utc>::UNIX_EPOCH + Duration::days(30);
        let window = SloWindow {
            label: "30d".to_owned(),
            from: until - Duration::days(30),
            until,
        };
        let slo = SloConfig::default();
        let t = target_slo(
            "api",
            &window,
            &slo,
            counts(100, 100),
            LatencyCounts::default(),
            [Some(1.0), None, Some(3.0)],
            0,
            SloMethod::Exact,
        );
        assert_eq!(t.target, "api");
        assert_eq!(t.error_budget.burn_rates.h1, Some(1.0));
        assert_eq!(t.error_budget.burn_rates.h6, None);
        assert_eq!(t.error_budget.burn_rates.d1, Some(3.0));
        assert_eq!(t.error_budget.burn_rates.window, Some(0.0));
        assert_eq!(t.method, SloMethod::Exact);
        assert_eq!(
            t.status,
            SloStatus::Met,
            "no latency data does not spoil a met target"
        );
    }
}
