//! The burn-rate table: the multiwindow, multi-burn-rate pairs of the Google SRE workbook, scaled to
//! `slo.window_days`. One list, read by hale's own `slo_burn` alerts (their defaults, and any rule whose
//! windows are a pair of it) and by the exported Prometheus rules (`hale export alerts`), so both page at
//! the same rate after the same time.

/// How loud a pair's alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnSeverity {
    /// Someone must act now (`severity: critical`).
    Page,
    /// Someone should look within a day (`severity: warning`).
    Ticket,
}

/// One pair: an alert fires when both windows spend the error budget faster than the pair's burn rate, and
/// keeps doing so for `for_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnPair {
    pub long_s: u64,
    pub short_s: u64,
    /// The share of the whole window's error budget the long window spends at the threshold (the workbook's
    /// 2 % in 1 h): what stays the same when the SLO window changes.
    pub budget_share: f64,
    pub severity: BurnSeverity,
    /// How long both windows must stay above the threshold before the alert fires (Prometheus's `for:`).
    /// Equal for the pairs of one severity, so an alert that ORs them keeps each pair's delay.
    pub for_s: u64,
}

/// The workbook's four pairs (for a 30-day window: 14.4, 6, 3 and 1 times the budget rate).
pub const BURN_PAIRS: [BurnPair; 4] = [
    BurnPair {
        long_s: 3_600,
        short_s: 300,
        budget_share: 0.02,
        severity: BurnSeverity::Page,
        for_s: 120,
    },
    BurnPair {
        long_s: 21_600,
        short_s: 1_800,
        budget_share: 0.05,
        severity: BurnSeverity::Page,
        for_s: 120,
    },
    BurnPair {
        long_s: 86_400,
        short_s: 7_200,
        budget_share: 0.10,
        severity: BurnSeverity::Ticket,
        for_s: 900,
    },
    BurnPair {
        long_s: 259_200,
        short_s: 21_600,
        budget_share: 0.10,
        severity: BurnSeverity::Ticket,
        for_s: 900,
    },
];

impl BurnPair {
    /// The burn rate the pair alerts above, for an SLO window of `window_days`: spending `budget_share` of
    /// the window's budget within the long window (`budget_share × window / long`; 14.4 for 1 h of 30 days,
    /// 3.36 for 1 h of 7 days), rounded to 4 decimals.
    pub fn burn_rate(&self, window_days: u32) -> f64 {
        let window_s = f64::from(window_days) * 86_400.0;
        let rate = self.budget_share * window_s / self.long_s as f64;
        (rate * 10_000.0).round() / 10_000.0
    }

    /// The long window as Prometheus writes a duration (`1h`, `3d`).
    pub fn long(&self) -> String {
        duration(self.long_s)
    }

    /// The short window as Prometheus writes a duration (`5m`, `6h`).
    pub fn short(&self) -> String {
        duration(self.short_s)
    }
}

/// The pair of the table with these windows.
pub fn pair(long_s: u64, short_s: u64) -> Option<&'static BurnPair> {
    BURN_PAIRS
        .iter()
        .find(|p| p.long_s == long_s && p.short_s == short_s)
}

/// Seconds as a Prometheus duration in the largest whole unit (`120` is `2m`, `86400` is `1d`).
pub fn duration(seconds: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds > 0 && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The threshold and `for` of an `slo_burn` rule: its own `burn_rate` and `for_s` when given, else the
/// table's for its window pair (a rule without `burn_rate` must use a pair of the table: validated at
/// load). A pair outside the table without `for_s` waits for nothing.
pub fn resolve(
    long_s: u64,
    short_s: u64,
    burn_rate: Option<f64>,
    for_s: Option<u64>,
    window_days: u32,
) -> (f64, u64) {
    let table = pair(long_s, short_s);
    let rate = burn_rate
        .or_else(|| table.map(|p| p.burn_rate(window_days)))
        // Unreachable after validation; a rule that cannot be resolved never fires.
        .unwrap_or(f64::INFINITY);
    let for_s = for_s.or_else(|| table.map(|p| p.for_s)).unwrap_or(0);
    (rate, for_s)
}

/// The table's pairs, as `1h/5m, 6h/30m, ...`, for error messages.
pub fn pairs_text() -> String {
    BURN_PAIRS
        .iter()
        .map(|p| format!("{}/{}", p.long(), p.short()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workbook_factors_at_30_days_scale_to_the_window() {
        let at = |days| BURN_PAIRS.map(|p| p.burn_rate(days));
        assert_eq!(at(30), [14.4, 6.0, 3.0, 1.0]);
        assert_eq!(at(7), [3.36, 1.4, 0.7, 0.2333]);
        assert_eq!(at(28), [13.44, 5.6, 2.8, 0.9333]);
    }

    #[test]
    fn the_pairs_of_one_severity_share_their_for() {
        for a in BURN_PAIRS {
            for b in BURN_PAIRS.iter().filter(|b| b.severity == a.severity) {
                assert_eq!(a.for_s, b.for_s, "{}/{}", a.long(), a.short());
            }
            assert!(a.short_s < a.long_s && a.for_s < a.short_s);
        }
    }

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(259_200), "3d");
        assert_eq!(duration(21_600), "6h");
        assert_eq!(duration(90), "90s");
        assert_eq!(pairs_text(), "1h/5m, 6h/30m, 1d/2h, 3d/6h");
    }

    #[test]
    fn a_five_percent_error_rate_pages_at_the_default_objective_and_window() {
        // 99.5 % over 7 days: a budget of 0.5 %, so 5 % failed checks burn it 10 times too fast.
        let burn = 0.05 / (1.0 - 0.995);
        let (rate, for_s) = resolve(3_600, 300, None, None, 7);
        assert!(burn > rate, "{burn} <= {rate}");
        assert_eq!(for_s, 120);
        assert_eq!(resolve(3_600, 600, Some(2.0), None, 7), (2.0, 0));
    }
}
