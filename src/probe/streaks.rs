//! What auto-heal and the alert manager both need to know of each target from the scheduled checks: how
//! many failed (or succeeded) in a row, and how many targets fail right now. On-demand checks are left out:
//! polling `/health/all` during an outage must change neither a heal nor an alert. A failed check made inside
//! a maintenance window of its target counts for nothing (`observe_in_maintenance`).
//!
//! How many targets fail is a running count, moved when a target starts or stops failing, so reading it (the
//! mass-failure test, made on every check) costs the same at 10 targets as at 10,000.

use std::collections::HashMap;
use std::sync::Arc;

use crate::events::CheckFinished;
use crate::records::CheckSource;

/// One target's run of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

impl Streak {
    /// The latest scheduled check failed.
    pub fn failing(&self) -> bool {
        self.consecutive_failures > 0
    }
}

/// Every configured target's streak.
#[derive(Debug, Clone)]
pub struct Streaks {
    by_target: HashMap<Arc<str>, Streak>,
    /// How many of them are `failing`: kept as streaks change, never counted over the map.
    failing: usize,
}

impl Streaks {
    pub fn new(targets: impl IntoIterator<Item = Arc<str>>) -> Self {
        Self {
            by_target: targets
                .into_iter()
                .map(|t| (t, Streak::default()))
                .collect(),
            failing: 0,
        }
    }

    /// Counts a check; returns the target's streak after it, or None when the check does not count (on
    /// demand, or a target not configured).
    pub fn observe(&mut self, check: &CheckFinished) -> Option<Streak> {
        self.count(check, false)
    }

    /// Counts a check made while a maintenance window covers its target. A success counts as usual (it may
    /// end an alert that fired before the window); a failure is not counted and ends both runs: failures
    /// inside the window reach no threshold, add nothing to the failures before or after it (the run starts
    /// again after the window), and a target failing in maintenance is not `failing`.
    pub fn observe_in_maintenance(&mut self, check: &CheckFinished) -> Option<Streak> {
        self.count(check, true)
    }

    fn count(&mut self, check: &CheckFinished, in_maintenance: bool) -> Option<Streak> {
        if check.source != CheckSource::Monitor {
            return None;
        }
        let streak = self.by_target.get_mut(&check.target)?;
        let was_failing = streak.failing();
        if !check.outcome.is_up() && in_maintenance {
            *streak = Streak::default();
        } else if check.outcome.is_up() {
            streak.consecutive_failures = 0;
            streak.consecutive_successes = streak.consecutive_successes.saturating_add(1);
        } else {
            streak.consecutive_successes = 0;
            streak.consecutive_failures = streak.consecutive_failures.saturating_add(1);
        }
        match (was_failing, streak.failing()) {
            (false, true) => self.failing += 1,
            (true, false) => self.failing -= 1,
            _ => {}
        }
        Some(*streak)
    }

    pub fn get(&self, target: &str) -> Streak {
        self.by_target.get(target).copied().unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.by_target.len()
    }

    /// How many targets fail now (their latest scheduled check failed). O(1).
    pub fn failing(&self) -> usize {
        self.failing
    }

    /// Targets whose latest scheduled check failed, sorted by name. O(targets): for a notice's text, not
    /// for every check.
    pub fn failing_targets(&self) -> Vec<Arc<str>> {
        let mut failing: Vec<Arc<str>> = self
            .by_target
            .iter()
            .filter(|(_, s)| s.failing())
            .map(|(t, _)| t.clone())
            .collect();
        failing.sort();
        failing
    }

    /// More than `share` of at least `min_targets` targets fail at once.
    pub fn mass_failure(&self, share: f64, min_targets: usize) -> bool {
        is_mass_failure(self.failing(), self.total(), share, min_targets)
    }
}

/// More than `share` of at least `min_targets` targets fail at once, with `failing` of `total` failing.
pub fn is_mass_failure(failing: usize, total: usize, share: f64, min_targets: usize) -> bool {
    total >= min_targets && (failing as f64) > share * total as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::records::Outcome;

    fn check(target: &str, outcome: Outcome, source: CheckSource) -> CheckFinished {
        CheckFinished {
            target: Arc::from(target),
            outcome,
            http_status: None,
            latency: Some(Duration::from_millis(1)),
            source,
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn streaks_count_scheduled_checks_only_and_reset_on_the_other_outcome() {
        let mut streaks = Streaks::new(["a", "b", "c"].map(Arc::from));
        for _ in 0..3 {
            streaks.observe(&check("a", Outcome::Down, CheckSource::Monitor));
        }
        assert_eq!(streaks.get("a").consecutive_failures, 3);
        assert_eq!(
            streaks.observe(&check("a", Outcome::Up, CheckSource::OnDemand)),
            None
        );
        assert_eq!(streaks.get("a").consecutive_failures, 3);
        let after = streaks
            .observe(&check("a", Outcome::Up, CheckSource::Monitor))
            .unwrap();
        assert_eq!(
            after,
            Streak {
                consecutive_failures: 0,
                consecutive_successes: 1
            }
        );
        assert_eq!(
            streaks.observe(&check("unknown", Outcome::Down, CheckSource::Monitor)),
            None
        );
    }

    #[test]
    fn a_failure_in_maintenance_ends_both_runs_and_a_success_counts() {
        let mut streaks = Streaks::new(["a", "b", "c"].map(Arc::from));
        for _ in 0..2 {
            streaks.observe(&check("a", Outcome::Down, CheckSource::Monitor));
        }
        let during = streaks
            .observe_in_maintenance(&check("a", Outcome::Down, CheckSource::Monitor))
            .unwrap();
        assert_eq!(
            during,
            Streak::default(),
            "not counted, and the run is over"
        );
        assert!(
            !streaks.get("a").failing(),
            "not failing while in maintenance"
        );
        // After the window the run starts again from the first failure.
        let after = streaks
            .observe(&check("a", Outcome::Down, CheckSource::Monitor))
            .unwrap();
        assert_eq!(after.consecutive_failures, 1);
        // A success inside a window counts as one.
        streaks.observe_in_maintenance(&check("b", Outcome::Up, CheckSource::Monitor));
        let up = streaks
            .observe_in_maintenance(&check("b", Outcome::Up, CheckSource::Monitor))
            .unwrap();
        assert_eq!(up.consecutive_successes, 2);
        assert_eq!(
            streaks.observe_in_maintenance(&check("c", Outcome::Down, CheckSource::OnDemand)),
            None
        );
    }

    #[test]
    fn a_mass_failure_is_more_than_the_share_of_enough_targets() {
        let mut streaks = Streaks::new(["a", "b", "c", "d"].map(Arc::from));
        streaks.observe(&check("a", Outcome::Timeout, CheckSource::Monitor));
        streaks.observe(&check("b", Outcome::Down, CheckSource::Monitor));
        // 2 of 4 is not more than half.
        assert!(!streaks.mass_failure(0.5, 3));
        streaks.observe(&check("c", Outcome::CircuitOpen, CheckSource::Monitor));
        assert!(streaks.mass_failure(0.5, 3));
        assert_eq!(streaks.failing_targets().len(), 3);
        // Too few targets configured for the rule to apply.
        assert!(!streaks.mass_failure(0.5, 5));
    }

    /// What the running count must always equal.
    fn counted(streaks: &Streaks) -> usize {
        streaks.by_target.values().filter(|s| s.failing()).count()
    }

    #[test]
    fn the_failing_count_follows_every_start_and_end_of_a_failure() {
        let mut streaks = Streaks::new(["a", "b", "c", "d"].map(Arc::from));
        let steps: [(&str, Outcome, CheckSource, bool); 12] = [
            ("a", Outcome::Down, CheckSource::Monitor, false),
            ("a", Outcome::Down, CheckSource::Monitor, false),
            ("b", Outcome::Timeout, CheckSource::Monitor, false),
            ("b", Outcome::Up, CheckSource::OnDemand, false),
            ("c", Outcome::Down, CheckSource::Monitor, true),
            ("a", Outcome::Down, CheckSource::Monitor, true),
            ("c", Outcome::Down, CheckSource::Monitor, false),
            ("zzz", Outcome::Down, CheckSource::Monitor, false),
            ("b", Outcome::Up, CheckSource::Monitor, false),
            ("b", Outcome::Up, CheckSource::Monitor, false),
            ("d", Outcome::Up, CheckSource::Monitor, true),
            ("d", Outcome::CircuitOpen, CheckSource::Monitor, false),
        ];
        // After each step: a and b, then b alone (a in maintenance), then c and d.
        let expected = [1, 1, 2, 2, 2, 1, 2, 2, 1, 1, 1, 2];
        for ((target, outcome, source, maintenance), want) in steps.into_iter().zip(expected) {
            let c = check(target, outcome, source);
            if maintenance {
                streaks.observe_in_maintenance(&c);
            } else {
                streaks.observe(&c);
            }
            assert_eq!(streaks.failing(), want, "after {target} {outcome:?}");
            assert_eq!(streaks.failing(), counted(&streaks));
        }
        let failing: Vec<String> = streaks
            .failing_targets()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(failing, ["c", "d"]);
    }
}
